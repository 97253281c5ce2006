/// Static memory planning: every intermediate buffer gets a fixed offset in one arena, decided
/// at compile time, so a run allocates nothing.
///
/// Algorithm: greedy, lowest fit (XLA's heap simulator, OpenVINO's MemorySolver). Each buffer
/// lives from the step that writes it to the last step that reads it. Buffers are placed one at
/// a time; a buffer may not overlap in memory any placed buffer whose life overlaps its own,
/// and goes at the lowest offset where it fits between them. The placing order decides the
/// result, so the planner tries a few (largest first; longest-lived first; largest area of
/// bytes x steps first; in time order; one-step buffers such as kernel scratch last), each with
/// the lowest hole that fits and with the tightest one, and keeps the smallest arena. Large
/// buffers placed first claim the bottom of the arena and the small ones fill the holes between
/// them, which keeps the arena near the lower bound (the most bytes live at one step). Offsets
/// are aligned to 64 bytes: a cache line and a full AVX-512 vector.
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
        let length = buffers.map { $0.lastUse - $0.firstUse + 1 }
        let orders: [(Int) -> (Int, Int, Int)] = [
            { (-sizes[$0], buffers[$0].firstUse, $0) },
            { (-length[$0], -sizes[$0], $0) },
            { (-sizes[$0] * length[$0], buffers[$0].firstUse, $0) },
            { (buffers[$0].firstUse, -sizes[$0], $0) },
            { (length[$0] == 1 ? 1 : 0, -sizes[$0], $0) },
        ]
        let candidates = orders.map { key in buffers.indices.sorted { key($0) < key($1) } }
        var best: (offsets: [Int], arena: Int)?
        for order in candidates {
            for tightest in [false, true] {
                let placed = place(buffers, sizes: sizes, order: order, tightest: tightest)
                if best == nil || placed.arena < best!.arena { best = placed }
            }
        }
        let steps = buffers.map(\.lastUse).max().map { $0 + 1 } ?? 0
        var liveBytes = [Int](repeating: 0, count: steps)
        for (b, size) in zip(buffers, sizes) { for s in b.firstUse...max(b.firstUse, b.lastUse) { liveBytes[s] += size } }
        return MemoryPlan(offsets: best?.offsets ?? [], arenaBytes: best?.arena ?? 0, lowerBoundBytes: liveBytes.max() ?? 0, naiveBytes: sizes.reduce(0, +))
    }

    /// Places the buffers in `order`, each clear of the placed buffers it lives with: at the
    /// lowest offset that fits, or (`tightest`) in the smallest hole that fits, else on top.
    static func place(_ buffers: [BufferRequest], sizes: [Int], order: [Int], tightest: Bool) -> (offsets: [Int], arena: Int) {
        var offsets = [Int](repeating: 0, count: buffers.count)
        var placed: [Int] = []
        var arena = 0
        for i in order {
            let neighbours = placed.filter { buffers[$0].livesWith(buffers[i]) }
                .map { offsets[$0]..<(offsets[$0] + sizes[$0]) }.sorted { $0.lowerBound < $1.lowerBound }
            // The holes between the live neighbours, lowest first, then the open space above them.
            var holes: [Range<Int>] = []
            var start = 0
            for taken in neighbours {
                if taken.lowerBound > start { holes.append(start..<taken.lowerBound) }
                start = max(start, taken.upperBound)
            }
            let fitting = holes.filter { $0.count >= sizes[i] }
            let candidate = (tightest ? fitting.min { $0.count < $1.count } : fitting.first)?.lowerBound ?? start
            offsets[i] = candidate
            placed.append(i)
            arena = max(arena, candidate + sizes[i])
        }
        return (offsets, arena)
    }

    public static func align(_ bytes: Int) -> Int { (max(bytes, 1) + alignment - 1) / alignment * alignment }
}
