/// Static memory planning: every intermediate buffer gets a fixed offset in one arena, decided
/// at compile time, so a run allocates nothing.
///
/// Algorithm (a first version; the optimal planner is a later step): buffers are visited in the
/// order they are defined. Each buffer lives from the step that writes it to the last step that
/// reads it. When a buffer is placed, every buffer whose life has ended returns its range to a
/// free list; the new buffer takes the lowest free range that fits (first fit), else the arena
/// grows. Offsets are aligned to 64 bytes, a cache line and a full AVX-512 vector.
public struct BufferRequest: Hashable, Sendable {
    public var bytes: Int
    /// The step that writes the buffer and the last step that reads it, inclusive.
    public var firstUse: Int
    public var lastUse: Int
    public init(bytes: Int, firstUse: Int, lastUse: Int) {
        self.bytes = bytes
        self.firstUse = firstUse
        self.lastUse = lastUse
    }
}

public struct MemoryPlan: Sendable {
    public var offsets: [Int]
    public var arenaBytes: Int
    /// The most bytes live at any one step: no plan can use less.
    public var lowerBoundBytes: Int
    /// The arena if nothing were shared.
    public var naiveBytes: Int
}

public enum MemoryPlanner {
    public static let alignment = 64

    public static func plan(_ buffers: [BufferRequest]) -> MemoryPlan {
        let sizes = buffers.map { align($0.bytes) }
        var free: [Range<Int>] = []          // sorted, disjoint
        var live: [(end: Int, range: Range<Int>)] = []
        var arena = 0
        var offsets = [Int](repeating: 0, count: buffers.count)
        let order = buffers.indices.sorted { (buffers[$0].firstUse, $0) < (buffers[$1].firstUse, $1) }
        for i in order {
            let request = buffers[i]
            for dead in live where dead.end < request.firstUse { release(dead.range, into: &free) }
            live.removeAll { $0.end < request.firstUse }
            let size = sizes[i]
            if let slot = free.firstIndex(where: { $0.count >= size }) {
                let range = free[slot]
                offsets[i] = range.lowerBound
                free[slot] = (range.lowerBound + size)..<range.upperBound
                if free[slot].isEmpty { free.remove(at: slot) }
            } else if let last = free.last, last.upperBound == arena {
                // Grow the arena from the free tail instead of past it.
                offsets[i] = last.lowerBound
                free.removeLast()
                arena = offsets[i] + size
            } else {
                offsets[i] = arena
                arena += size
            }
            live.append((request.lastUse, offsets[i]..<(offsets[i] + size)))
        }
        let steps = buffers.map(\.lastUse).max().map { $0 + 1 } ?? 0
        var liveBytes = [Int](repeating: 0, count: steps)
        for (b, size) in zip(buffers, sizes) { for s in b.firstUse...max(b.firstUse, b.lastUse) { liveBytes[s] += size } }
        return MemoryPlan(offsets: offsets, arenaBytes: arena, lowerBoundBytes: liveBytes.max() ?? 0, naiveBytes: sizes.reduce(0, +))
    }

    public static func align(_ bytes: Int) -> Int { (max(bytes, 1) + alignment - 1) / alignment * alignment }

    private static func release(_ range: Range<Int>, into free: inout [Range<Int>]) {
        free.append(range)
        free.sort { $0.lowerBound < $1.lowerBound }
        var merged: [Range<Int>] = []
        for r in free {
            if let last = merged.last, last.upperBound == r.lowerBound {
                merged[merged.count - 1] = last.lowerBound..<r.upperBound
            } else {
                merged.append(r)
            }
        }
        free = merged
    }
}
