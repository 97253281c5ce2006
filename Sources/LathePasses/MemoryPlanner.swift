/// Static memory planning: every intermediate buffer gets a fixed offset in one arena, decided
/// at compile time, so a run allocates nothing.
///
/// Algorithm: greedy by size, lowest fit (XLA's heap simulator, OpenVINO's MemorySolver).
/// Each buffer lives from the step that writes it to the last step that reads it. Buffers are
/// placed largest first (ties: earlier first). A buffer may not overlap in memory any placed
/// buffer whose life overlaps its own; it goes at the lowest offset where it fits between
/// them. Large buffers placed first claim the bottom of the arena, and the many small ones fill
/// the holes between them, which keeps the arena near the lower bound (the most bytes live at
/// one step). Offsets are aligned to 64 bytes: a cache line and a full AVX-512 vector.
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

    func livesWith(_ other: BufferRequest) -> Bool { firstUse <= other.lastUse && other.firstUse <= lastUse }
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
        let order = buffers.indices.sorted { (-sizes[$0], buffers[$0].firstUse, $0) < (-sizes[$1], buffers[$1].firstUse, $1) }
        var offsets = [Int](repeating: 0, count: buffers.count)
        var placed: [Int] = []
        var arena = 0
        for i in order {
            let neighbours = placed.filter { buffers[$0].livesWith(buffers[i]) }
                .map { offsets[$0]..<(offsets[$0] + sizes[$0]) }.sorted { $0.lowerBound < $1.lowerBound }
            var candidate = 0
            for taken in neighbours {
                if candidate + sizes[i] <= taken.lowerBound { break }
                candidate = max(candidate, taken.upperBound)
            }
            offsets[i] = candidate
            placed.append(i)
            arena = max(arena, candidate + sizes[i])
        }
        let steps = buffers.map(\.lastUse).max().map { $0 + 1 } ?? 0
        var liveBytes = [Int](repeating: 0, count: steps)
        for (b, size) in zip(buffers, sizes) { for s in b.firstUse...max(b.firstUse, b.lastUse) { liveBytes[s] += size } }
        return MemoryPlan(offsets: offsets, arenaBytes: arena, lowerBoundBytes: liveBytes.max() ?? 0, naiveBytes: sizes.reduce(0, +))
    }

    public static func align(_ bytes: Int) -> Int { (max(bytes, 1) + alignment - 1) / alignment * alignment }
}
