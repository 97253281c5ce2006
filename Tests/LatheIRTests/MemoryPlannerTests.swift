import LathePasses
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

@Suite("Memory planner: drawn lifetimes")
struct MemoryPlannerTests {
    @Test func chainReusesDeadBuffers() {
        // A chain a -> b -> c -> d: each buffer dies when the next is made, so two slots suffice.
        let plan = MemoryPlanner.plan(buffers("""
            aa.. | 4
            .bb. | 4
            ..cc | 4
            ...d | 4
            """))
        #expect(plan.offsets == [0, 256, 0, 256])
        #expect(plan.arenaBytes == 512)
        #expect(plan.lowerBoundBytes == 512)
        #expect(plan.naiveBytes == 1024)
    }

    @Test func freedNeighboursMergeIntoOneHole() {
        // a and b die after step 1; their two ranges merge, and c (2 + 3 units) fits at 0.
        let plan = MemoryPlanner.plan(buffers("""
            aa.. | 2
            bb.. | 3
            ..cc | 5
            .ddd | 1
            """))
        #expect(plan.offsets == [0, 128, 0, 320])
        #expect(plan.arenaBytes == 384)
        #expect(plan.lowerBoundBytes == 384)
    }

    @Test func aHoleTooSmallIsSkipped() {
        // At step 2 the hole left by a is too small for c, which goes past the end; d then
        // takes c's place, the first hole that fits.
        let plan = MemoryPlanner.plan(buffers("""
            aa... | 1
            bbbb. | 2
            ..c.. | 4
            ...dd | 3
            """))
        #expect(plan.offsets == [0, 64, 192, 192])
        #expect(plan.arenaBytes == 448)
    }

    @Test func aFreeRangeAtTheEndGrowsInPlace() {
        // b, on top, dies before c is made: c starts where b was and the arena grows by the rest.
        let plan = MemoryPlanner.plan(buffers("""
            aa | 1
            b. | 1
            .c | 3
            """))
        #expect(plan.offsets == [0, 64, 64])
        #expect(plan.arenaBytes == 256)
        #expect(plan.lowerBoundBytes == 256)
    }

    @Test func arenaIsBetweenLowerBoundAndNaiveSum() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            let requests = (0..<12).map { _ -> BufferRequest in
                let first = Int.random(in: 0..<10, using: &rng)
                return BufferRequest(bytes: Int.random(in: 1...5000, using: &rng), firstUse: first, lastUse: first + Int.random(in: 0..<4, using: &rng))
            }
            let plan = MemoryPlanner.plan(requests)
            #expect(plan.arenaBytes <= plan.naiveBytes)
            // No two buffers live at one step overlap in memory.
            for i in requests.indices {
                for j in requests.indices where j > i {
                    let overlapInTime = requests[i].firstUse <= requests[j].lastUse && requests[j].firstUse <= requests[i].lastUse
                    let a = plan.offsets[i]..<(plan.offsets[i] + MemoryPlanner.align(requests[i].bytes))
                    let b = plan.offsets[j]..<(plan.offsets[j] + MemoryPlanner.align(requests[j].bytes))
                    #expect(!(overlapInTime && a.overlaps(b)))
                }
            }
        }
    }
}
