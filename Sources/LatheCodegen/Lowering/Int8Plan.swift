import LatheIR

/// The plan of a quantized contraction: conv2d, dense or matmul on uint8 x and int8 weights
/// (Op.isIntegerContraction), alone or under a fused epilogue. Its exact int32 sums come from
/// the integer GEMM (Int8Gemm.swift), which multiplies 4 byte pairs a lane per instruction:
///
/// - A convolution is a GEMM per image, group and tile of output rows: the weights are its A
///   (int8), in panels of MR rows packed at compile time when constant (WeightLayout.int8Rows);
///   the input, unfolded as bytes a tile at a time with the padding at `padValue` (a 1x1,
///   stride-1, unpadded one read in place), is its B (uint8), packed a tile at a time (the
///   unfolded tile and its packed copy stay in L2; the tile height pads the fewest columns).
///   Split by units (images x groups x tiles) when they divide evenly enough, else by chunks
///   of output channels (whole panels), as the float convolution is.
/// - dense and matmul: x is A (uint8), packed at run time a block of rows at a time; constant
///   2-D weights are B (int8), in panels of NR columns packed at compile time
///   (WeightLayout.int8Columns), else packed at run time a block of columns at a time. Split: a
///   batched matmul by whole products; a single product by chunks of rows or of columns.
///
/// Scratch: each thread's unfolded tile and packed panels.
struct Int8Contraction: Sendable {
    enum Form: Sendable {
        case convolution(ConvGeometry, tileRows: Int)
        /// `batch` products of m x k by k x n.
        case product(m: Int, n: Int, k: Int, batch: Int)
    }
    let form: Form
    /// Rows of the register block (MR), which the packed weights' panels have too.
    let rows: Int

    /// The register block: the float GEMM's (12 x 2 vectors with AVX-512, 6 x 2 with fewer
    /// registers), or one of 8 (4) rows where that pads fewer of the m rows: ResNet's 64, 128,
    /// 256 and 512 output channels are whole panels of 8, where panels of 12 computed 72, 132,
    /// 264 and 516.
    static func blocking(m: Int, vectorWidth: Int) -> GemmBlocking {
        let usual = GemmBlocking(vectorWidth: vectorWidth)
        let fewer = usual.rows == 12 ? 8 : 4
        return roundUp(m, fewer) < roundUp(m, usual.rows) ? GemmBlocking(vectorWidth: vectorWidth, rows: fewer) : usual
    }

    /// Rows and columns of A and B packed at a time by a product (Goto's MC and NC).
    static let rowBlock = 120, columnBlock = 1024

    /// Bytes of one unfolded tile at most (unless a single output row takes more): with its
    /// packed copy, half of a 1 MB L2.
    static let tileBytes = 256 * 1024

    /// Output rows of a convolution's tile: of the heights whose unfolded tile fits `tileBytes`,
    /// the one that leaves the busiest of `threads` the fewest columns to compute, each tile's
    /// rounded up to whole panels (ties to the tallest). With at least as many tiles as threads,
    /// a thread computes its tiles; with fewer, every thread unfolds each tile for its share of
    /// the output channels, which counts a quarter more. ResNet's 28 x 28 images in tiles of 4
    /// rows (112 columns, 4 panels of 32) computed 14% more columns than there are; in tiles of
    /// 8 rows, 2%. Its 7 x 7 images are two tiles, which two threads unfold once each.
    static func tileRows(_ g: ConvGeometry, panelColumns: Int, threads: Int) -> Int {
        guard g.needsUnfold else { return g.outH }
        var best = (cost: Int.max, rows: 1)
        for rows in 1...max(g.outH, 1) {
            if rows > 1 && g.unfoldedRows * rows * g.outW > tileBytes { break }
            let tiles = (g.outH + rows - 1) / rows, last = g.outH - (tiles - 1) * rows
            let tile = roundUp(rows * g.outW, panelColumns)
            let columns = (tiles - 1) * tile + roundUp(last * g.outW, panelColumns)
            let cost = tiles >= threads ? (tiles + threads - 1) / threads * tile : columns * 5 / (4 * threads)
            if cost <= best.cost { best = (cost, rows) }
        }
        return best.rows
    }

    /// Groups of 4 along K: the words of a panel row.
    static func words(_ k: Int) -> Int { (k + 3) / 4 }

    /// Tiles of output rows per image and group of a convolution (one read in place).
    static func tiles(_ g: ConvGeometry, tileRows: Int) -> Int { g.needsUnfold ? (g.outH + tileRows - 1) / tileRows : 1 }

    /// The bytes of a thread's scratch: the unfolded tile (bytes, rounded to whole words), then
    /// the packed panels of B, then of A (where they are not packed at compile time).
    static func scratchBytes(_ form: Form, packsA: Bool, packsB: Bool) -> (unfold: Int, packedB: Int, packedA: Int) {
        let (rows, columns) = (GemmBlocking.largestRows, GemmBlocking.largestColumns)
        switch form {
        case let .convolution(g, tileRows):
            let tileColumns = g.needsUnfold ? tileRows * g.outW : g.outputPlane
            let unfold = g.needsUnfold ? roundUp(g.unfoldedRows * tileColumns, 64) : 0
            return (unfold, words(g.unfoldedRows) * roundUp(tileColumns, columns) * 4, packsA ? words(g.unfoldedRows) * rows * 4 : 0)
        case let .product(m, n, k, _):
            return (0, packsB ? words(k) * roundUp(min(n, columnBlock), columns) * 4 : 0, packsA ? words(k) * roundUp(min(m, rowBlock), rows) * 4 : 0)
        }
    }

    /// The floats of a thread's scratch: all of `scratchBytes`' parts (each a whole number of words).
    static func scratchFloats(_ form: Form, packsA: Bool, packsB: Bool) -> Int {
        let bytes = scratchBytes(form, packsA: packsA, packsB: packsB)
        return (bytes.unfold + bytes.packedB + bytes.packedA) / 4
    }
}

extension KernelPlan {
    static func int8Contraction(_ op: Op, _ c: PlanContext) -> KernelPlan? {
        guard Op.isIntegerContraction(c.operandTypes) else { return nil }
        let s = c.shapes
        switch op.unfused {
        case let .conv2d(a):
            guard let g = ConvGeometry(input: s[0], weights: s[1], output: c.resultShape, a) else { return nil }
            let blocking = Int8Contraction.blocking(m: g.groupOutChannels, vectorWidth: c.vectorWidth)
            let tileRows = Int8Contraction.tileRows(g, panelColumns: blocking.columns, threads: c.threads)
            let form = Int8Contraction.Form.convolution(g, tileRows: tileRows)
            let layout: WeightLayout = c.constantWeights
                ? .int8Rows(groups: g.groups, rows: g.groupOutChannels, depth: g.unfoldedRows, panel: blocking.rows) : .plain
            let units = g.batch * g.groups * Int8Contraction.tiles(g, tileRows: tileRows)
            let split = ThreadSplit.plan(units: units, rows: g.groupOutChannels, flops: c.flops, threads: c.threads, blocking: blocking)
            return KernelPlan(.int8Gemm(Int8Contraction(form: form, rows: blocking.rows)), weightLayout: layout, split: split, threads: c.threads,
                              scratchFloatsPerThread: Int8Contraction.scratchFloats(form, packsA: !layout.isPacked, packsB: true), flops: c.flops,
                              writesResultOnce: true)
        case .dense, .matmul:
            let (m, n, k): (Int, Int, Int)
            if case .dense = op.unfused { (m, k, n) = (s[0][0], s[0][1], s[1][1]) } else { (m, n, k) = matmulSizes(s[0], s[1]) }
            let batch = c.resultShape.dropLast(2).reduce(1, *)
            let form = Int8Contraction.Form.product(m: m, n: n, k: k, batch: batch)
            let blocking = Int8Contraction.blocking(m: m, vectorWidth: c.vectorWidth)
            let layout: WeightLayout = c.constantWeights && s[1].count == 2 ? .int8Columns(depth: k, columns: n, panel: c.blocking.columns) : .plain
            var split = ThreadSplit.single
            if c.threads > 1 && c.flops >= ThreadSplit.minimumFlops {
                split = batch >= c.threads ? .units(batch) : ThreadSplit.matrix(rows: m, columns: n, threads: c.threads, blocking: blocking)
            }
            return KernelPlan(.int8Gemm(Int8Contraction(form: form, rows: blocking.rows)), weightLayout: layout, split: split, threads: c.threads,
                              scratchFloatsPerThread: Int8Contraction.scratchFloats(form, packsA: true, packsB: !layout.isPacked), flops: c.flops,
                              writesResultOnce: true)
        default:
            return nil
        }
    }
}
