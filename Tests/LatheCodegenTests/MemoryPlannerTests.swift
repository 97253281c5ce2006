import LatheCodegen
import Testing

/// Lifetimes are drawn one buffer a line: a letter per step where the buffer is live, '.'
/// elsewhere; the number after the bar is its size in 64-byte units.
func buffers(_ drawing: String) -> [BufferRequest] {
    drawing.split(separator: "\n").map { line in
        let parts = line.split(separator: "|")
        let steps = Array(parts[0].trimmingCharacters(in: .whitespaces))
        let first = steps.firstIndex { $0 != "." }!, last = steps.lastIndex { $0 != "." }!
        return BufferRequest(bytes: Int(parts[1].trimmingCharacters(in: .whitespaces))! * 64, firstUse: first, lastUse: last)
    }
}

/// Offsets in 64-byte units.
func units(_ plan: MemoryPlan) -> [Int] { plan.offsets.map { $0 / 64 } }

@Suite("Memory planner: drawn lifetimes")
struct MemoryPlannerTests {
    @Test func chainNeedsTwoSlots() {
        // A chain a -> b -> c -> d: each buffer dies when the next is made.
        let plan = MemoryPlanner.plan(buffers("""
            aa.. | 4
            .bb. | 4
            ..cc | 4
            ...d | 4
            """))
        #expect(units(plan) == [0, 4, 0, 4])
        #expect(plan.arenaBytes == 8 * 64)
        #expect(plan.lowerBoundBytes == 8 * 64)
        #expect(plan.naiveBytes == 16 * 64)
    }

    @Test func largestFirstThenSmallOnesFillTheHoles() {
        // b, the largest, takes 0. a and d stack above it; c above d; e, alive only before b
        // is made, reuses the bottom.
        let plan = MemoryPlanner.plan(buffers("""
            aa.... | 2
            .bbbb. | 8
            ...cc. | 1
            ....dd | 2
            a..... | 1
            """))
        #expect(units(plan) == [8, 0, 10, 8, 0])
        #expect(plan.arenaBytes == 11 * 64)
        #expect(plan.lowerBoundBytes == 11 * 64)
    }

    @Test func lowestFitBetweenLiveNeighbours() {
        // a takes 0..<6; b, never alive with a, also 0..<4; c goes above a at 6..<9. At step 1
        // b (0..<4) and c (6..<9) are alive: e fits the 2-unit hole at 4. d, alive only with b,
        // takes the lowest fit after b: 4.
        let plan = MemoryPlanner.plan(buffers("""
            a.. | 6
            .bb | 4
            cc. | 3
            ..d | 2
            .e. | 2
            """))
        #expect(units(plan) == [0, 0, 6, 4, 4])
        #expect(plan.arenaBytes == 9 * 64)
        #expect(plan.lowerBoundBytes == 9 * 64)
    }

    @Test func buffersThatNeverMeetShareMemory() {
        let plan = MemoryPlanner.plan(buffers("""
            a.... | 6
            ..b.. | 6
            ....c | 6
            """))
        #expect(units(plan) == [0, 0, 0])
        #expect(plan.arenaBytes == 6 * 64)
    }

    @Test func arenaStaysBetweenLowerBoundAndNaiveSumAndNothingOverlaps() {
        var rng = SystemRandomNumberGenerator()
        var worst = 0.0
        for _ in 0..<200 {
            let requests = (0..<20).map { _ -> BufferRequest in
                let first = Int.random(in: 0..<15, using: &rng)
                return BufferRequest(bytes: Int.random(in: 1...50_000, using: &rng), firstUse: first, lastUse: first + Int.random(in: 0..<4, using: &rng))
            }
            let plan = MemoryPlanner.plan(requests)
            #expect(plan.arenaBytes >= plan.lowerBoundBytes)
            #expect(plan.arenaBytes <= plan.naiveBytes)
            worst = max(worst, Double(plan.arenaBytes) / Double(plan.lowerBoundBytes))
            for i in requests.indices {
                for j in requests.indices where j > i {
                    let overlapInTime = requests[i].firstUse <= requests[j].lastUse && requests[j].firstUse <= requests[i].lastUse
                    let a = plan.offsets[i]..<(plan.offsets[i] + MemoryPlanner.align(requests[i].bytes))
                    let b = plan.offsets[j]..<(plan.offsets[j] + MemoryPlanner.align(requests[j].bytes))
                    #expect(!(overlapInTime && a.overlaps(b)))
                }
            }
        }
        #expect(worst < 1.6)
    }
}
