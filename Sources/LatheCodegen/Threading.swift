import CLLVM
import LatheIR

/// How a kernel's work is divided among the threads of a run, decided at compile time by the
/// kernel's plan (Lowering/): the units, rows or columns it is cut along, and a thread's share. Each thread calls the kernel
/// with its index; with a counter (`claimsUnits`) the threads claim the shares as they come,
/// else each takes its own. Contractions, their gradients, pooling and large elementwise ops
/// are split, when they are large enough to pay for handing work to another thread; the rest
/// run on the calling thread.
public enum ThreadSplit: Hashable, Sendable, CustomStringConvertible {
    case single
    /// Independent units, a contiguous run of them a thread: a convolution's images x groups x
    /// row tiles (Winograd's strips; the direct kernel's images x groups), the matrices of a
    /// batched matmul, the planes of a pooling or its gradient, a transposed convolution's images
    /// x groups, a weight gradient's groups.
    case units(Int)
    /// The GEMM's rows (a convolution's output channels; a direct convolution's output rows; a
    /// weight gradient's output channels; an elementwise op's outermost axis) in chunks of `chunk`.
    case rows(total: Int, chunk: Int)
    /// The GEMM's columns in chunks of `chunk`.
    case columns(total: Int, chunk: Int)

    /// Below this many FLOPs a kernel runs on one thread.
    public static let minimumFlops = 400_000
    /// A pooling, transpose or softmax of at least this many input elements is split among threads.
    public static let minimumPoolInput = 65_536
    /// A layer_norm is split from this many elements: ConvNeXt's 56 x 56 x 96 and 28 x 28 x 192
    /// channel norms, not a ViT-S's 197 x 384 tokens, which ran no faster split
    /// (benchmarks/RESULTS.md, "Measurements behind choices in the code").
    public static let minimumLayerNormInput = 131_072

    public var description: String {
        switch self {
        case .single: return "1 thread"
        case let .units(n): return "\(n) units"
        case let .rows(total, chunk): return "rows \(total) in chunks of \(chunk)"
        case let .columns(total, chunk): return "columns \(total) in chunks of \(chunk)"
        }
    }

    /// A convolution's split: whole units when they divide evenly enough, else chunks of the
    /// output positions of a 1x1 convolution (`columns`, 0 for others) or of its output channels
    /// in every unit (`matrix`).
    static func plan(units: Int, rows: Int, columns: Int = 0, flops: Int, threads: Int, blocking: GemmBlocking) -> ThreadSplit {
        guard threads > 1, flops >= minimumFlops else { return .single }
        if units >= 2 * threads || units % threads == 0 { return .units(units) }
        let split = matrix(rows: rows, columns: columns >= threads * 2 * blocking.columns ? columns : 0, threads: threads, blocking: blocking)
        if split != .single { return split }
        return units > 1 ? .units(units) : .single
    }

    /// Chunks of a GEMM's rows or columns, whole register blocks of the target's GEMM
    /// (`blocking`; a B packed at compile time is cut only at its panels): the columns, where
    /// each thread then packs only its own part of B, unless their chunks are less even than the
    /// rows' (196 columns in panels of 16 split 112 + 84, a thread 57% of the work; 1024 rows
    /// split 516 + 508: ResNet-50's 14 x 14 1024 -> 256 1x1 convolution, measured in
    /// benchmarks/RESULTS.md, "Measurements behind choices in the code"). `columns` 0: rows only.
    static func matrix(rows: Int, columns: Int, threads: Int, blocking: GemmBlocking) -> ThreadSplit {
        let byColumns = columns >= threads * blocking.columns ? chunk(columns, threads: threads, align: blocking.columns) : nil
        let byRows = rows >= threads * blocking.rows ? chunk(rows, threads: threads, align: blocking.rows) : nil
        /// The largest share of the work, as a fraction of it.
        func largest(_ chunk: Int, of total: Int) -> Double { Double(min(chunk, total)) / Double(total) }
        switch (byColumns, byRows) {
        case let (c?, r?) where largest(r, of: rows) + 0.02 < largest(c, of: columns): return .rows(total: rows, chunk: r)
        case let (c?, _): return .columns(total: columns, chunk: c)
        case let (nil, r?): return .rows(total: rows, chunk: r)
        case (nil, nil): return .single
        }
    }

    /// Floats at the start of a unit-claiming kernel's scratch for its counter: a cache line, so
    /// that the scratch after it stays aligned.
    static let unitCounterFloats = 16

    /// Whether a kernel of this split and thread count has a counter to claim its work as it
    /// goes (forEachUnit, forClaimedShares) instead of taking a fixed share of it: a thread
    /// whose worker wakes late, or whose core another process holds, leaves its work to the
    /// others. (Kernels whose shares must be contiguous, such as the LSTM's batch rows, leave
    /// it unused.)
    static func claimsUnits(_ split: ThreadSplit, threads: Int) -> Bool {
        split != .single && threads > 1
    }

    /// A thread's share of `total`, rounded up to a multiple of `align`.
    static func chunk(_ total: Int, threads: Int, align: Int) -> Int { ((total + threads - 1) / threads + align - 1) / align * align }
}

extension IRBuilder {
    /// body(plane) for this thread's planes of a pooling (N x C of them): its units under a
    /// `.units` split, else every plane.
    func forEachPlane(count: Int, split: ThreadSplit, thread: LLVMValue?, threads: Int, _ body: (LLVMValue) -> Void) {
        if case .units = split, let thread { return forEachUnit(count: count, thread: thread, threads: threads, body) }
        loop(from: int(0), to: int(count), body)
    }

    /// body(u) for this thread's units of a `.units` split: with a unit counter (the kernel
    /// claims units), each thread takes the next unclaimed run of units until none is left, so a
    /// thread slowed by another process on its core leaves its units to the others (on a shared
    /// 2-core machine a static half can take twice as long as the other); without one, a fixed
    /// share. A run is about an eighth of a thread's share: small units (a pooling's planes) are
    /// not claimed one atomic add at a time.
    func forEachUnit(count: Int, thread: LLVMValue, threads: Int, _ body: (LLVMValue) -> Void) {
        guard let counter = unitCounter else {
            let (start, end) = unitRange(count: count, thread: thread, threads: threads)
            return loop(from: start, to: end, body)
        }
        let grain = max(1, count / (8 * threads))
        claimEach((count + grain - 1) / grain, from: counter) { run in
            let start = imul(run, int(grain))
            loop(from: start, to: imin(iadd(start, int(grain)), int(count)), body)
        }
    }

    /// body(i) for each index i in 0..<count this thread claims from `counter`, one atomic add
    /// each, until every index is taken.
    private func claimEach(_ count: Int, from counter: LLVMValue, _ body: (LLVMValue) -> Void) {
        let function = LLVMGetBasicBlockParent(LLVMGetInsertBlock(builder))
        let header = LLVMAppendBasicBlockInContext(context, function, "claim")
        let work = LLVMAppendBasicBlockInContext(context, function, "claimed")
        let exit = LLVMAppendBasicBlockInContext(context, function, "claim.exit")
        LLVMBuildBr(builder, header)
        LLVMPositionBuilderAtEnd(builder, header)
        let claimed = LLVMBuildAtomicRMW(builder, LLVMAtomicRMWBinOpAdd, counter, int(1), LLVMAtomicOrderingMonotonic, 0)!
        LLVMBuildCondBr(builder, LLVMBuildICmp(builder, LLVMIntSLT, claimed, int(count), ""), work, exit)
        LLVMPositionBuilderAtEnd(builder, work)
        body(claimed)
        LLVMBuildBr(builder, header)
        LLVMPositionBuilderAtEnd(builder, exit)
    }

    /// This thread's share [start, end) of `count` units split evenly among `threads`.
    func unitRange(count: Int, thread: LLVMValue, threads: Int) -> (start: LLVMValue, end: LLVMValue) {
        let start = LLVMBuildSDiv(builder, imul(thread, int(count)), int(threads), "")!
        let end = LLVMBuildSDiv(builder, imul(iadd(thread, int(1)), int(count)), int(threads), "")!
        return (start, end)
    }

    /// Runs `body(start, size)` on this thread's chunks of 0..<total (chunks of `chunk`, the last
    /// one shorter, claimed as in forClaimedShares). `size` is known at compile time: the full
    /// chunk, or the last chunk's size.
    func forThreadChunk(total: Int, chunk: Int, thread: LLVMValue, _ body: (LLVMValue, Int) -> Void) {
        forThreadChunk(total: total, chunk: chunk, thread: thread, outer: 1) { _, start, size in body(start, size) }
    }

    /// The same for each of `outer` repeats: body(outer, start, size).
    func forThreadChunk(total: Int, chunk: Int, thread: LLVMValue, outer: Int, _ body: (LLVMValue, LLVMValue, Int) -> Void) {
        let count = (total + chunk - 1) / chunk
        let last = total - (count - 1) * chunk
        forClaimedShares(count, outer: outer, thread: thread) { o, index in
            let start = imul(index, int(chunk))
            ifElse(LLVMBuildICmp(builder, LLVMIntSLT, index, int(count - 1), "")!, then: {
                body(o, start, chunk)
            }, else: {
                ifElse(LLVMBuildICmp(builder, LLVMIntEQ, index, int(count - 1), "")!, then: { body(o, start, last) }, else: {})
            })
        }
    }

    /// body(outer, share) for the shares 0..<shares of each of `outer` repeats that fall to this
    /// thread: with a counter, every (outer, share) pair it claims, one atomic add each, so a
    /// thread that finishes first takes the share of one that has not started; without one,
    /// share `thread` of every repeat. The shares stay whole: cut into halves or quarters to
    /// balance a slowed core, SqueezeNet ran slower on a quiet machine (each piece packs its part
    /// of B and reads all of A again; benchmarks/RESULTS.md, "Measurements behind choices in the code").
    func forClaimedShares(_ shares: Int, outer: Int = 1, thread: LLVMValue, _ body: (LLVMValue, LLVMValue) -> Void) {
        guard let counter = unitCounter else {
            return loop(from: int(0), to: int(outer)) { o in body(o, thread) }
        }
        claimEach(outer * shares, from: counter) { claimed in
            body(LLVMBuildUDiv(builder, claimed, int(shares), "")!, LLVMBuildURem(builder, claimed, int(shares), "")!)
        }
    }

    /// body() on thread 0 only: a kernel's whole work, when no share of it is given to other
    /// threads, is never done twice (an in-place epilogue would read what another thread wrote).
    func onThreadZero(_ thread: LLVMValue, _ body: () -> Void) {
        ifElse(LLVMBuildICmp(builder, LLVMIntEQ, thread, int(0), "")!, then: body, else: {})
    }

    /// body(first row, rows) for this thread's chunk of `rows` under a `.rows` split; under any
    /// other split, all of them on thread 0 (row kernels: softmax's, layer_norm's).
    func forRowShare(_ split: ThreadSplit, rows: Int, thread: LLVMValue, _ body: (LLVMValue, Int) -> Void) {
        if case let .rows(total, chunk) = split {
            forThreadChunk(total: total, chunk: chunk, thread: thread, body)
        } else {
            onThreadZero(thread) { body(int(0), rows) }
        }
    }

    /// This thread's share of `count` units under a `.units` split; under any other split, all of
    /// them on thread 0 and none on the others, so that no work is done twice.
    func unitShare(_ split: ThreadSplit, count: Int, thread: LLVMValue, threads: Int) -> (start: LLVMValue, end: LLVMValue) {
        if case .units = split { return unitRange(count: count, thread: thread, threads: threads) }
        let first = LLVMBuildICmp(builder, LLVMIntEQ, thread, int(0), "")!
        return (int(0), LLVMBuildSelect(builder, first, int(count), int(0), "")!)
    }

    /// body(shape, views) on this thread's rows of the outermost axis (a `.rows` split), the views
    /// moved to the chunk's first row; under any other split, the whole shape on thread 0.
    func forOuterRows(_ split: ThreadSplit, thread: LLVMValue, shape: [Int], views: [StridedView], _ body: ([Int], [StridedView]) -> Void) {
        let units = shape.prefix { $0 == 1 }.count
        if units > 0, units < shape.count {
            return forOuterRows(split, thread: thread, shape: Array(shape.dropFirst(units)),
                                views: views.map { StridedView(base: $0.base, offset: $0.offset, strides: Array($0.strides.dropFirst(units)), dtype: $0.dtype) }, body)
        }
        guard case let .rows(total, chunk) = split, shape.first == total else { return onThreadZero(thread) { body(shape, views) } }
        forThreadChunk(total: total, chunk: chunk, thread: thread) { start, size in
            body([size] + shape.dropFirst(), views.map { v in
                StridedView(base: pointer(v.base, imul(start, int(v.strides[0])), v.dtype), offset: v.offset, strides: v.strides, dtype: v.dtype)
            })
        }
    }

    /// The same with the chunk's size as a run-time value (one copy of `body` for every chunk),
    /// for each of `outer` repeats: body(outer, start, size).
    func forThreadShare(total: Int, chunk: Int, thread: LLVMValue, outer: Int = 1, _ body: (LLVMValue, LLVMValue, LLVMValue) -> Void) {
        forClaimedShares((total + chunk - 1) / chunk, outer: outer, thread: thread) { o, index in
            let start = imul(index, int(chunk))
            ifElse(LLVMBuildICmp(builder, LLVMIntSLT, start, int(total), "")!, then: {
                body(o, start, imin(int(chunk), isub(int(total), start)))
            }, else: {})
        }
    }
}
