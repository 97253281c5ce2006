import LatheIR

/// The plan of a quantized contraction: conv2d, dense or matmul on uint8 x and int8 weights
/// (Op.isIntegerContraction), alone or under a fused epilogue. Its exact int32 sums come from
/// the integer GEMM (Int8Gemm.swift), which multiplies 4 byte pairs a lane per instruction:
///
/// - A convolution is a GEMM per image, group and tile of output rows: the weights are its A
///   (int8), in panels of MR rows packed at compile time when constant (WeightLayout.int8Rows);
///   the input is its B (uint8), in one of these forms (ConvolutionInput):
///   - shifted copies, for a convolution with constant weights and whole groups of 4 input
///     channels (or few words more than its unfold): the tile's input copied once per tap,
///     shifted and strided by it, with the padding at `padValue`, 4 channels a word
///     (IRBuilder.int8ShiftedCopies), and read in place by the micro-kernel, whose K runs tap
///     by tap (WeightLayout.int8TapRows). With a vertical stride of 1, taps of one column share
///     a copy (tap (ky, kx) reads copy kx from row ky on): KW x C bytes a column, where the
///     unfold and its packing move 2 x KH x KW x C; with a larger one, each tap has its own.
///   - pixel rows: the shifted copies of a small image are the GEMM's A instead, its output
///     pixels the rows (blocks of 7), and the weights its B, in panels of NR output channels
///     (WeightLayout.int8TapColumns); the product is stored transposed (prefersPixelRows).
///   - packed: unfolded as bytes a tile at a time with the padding at `padValue` (a 1x1,
///     stride-1, unpadded one read in place), then packed a tile at a time (the unfolded tile
///     and its packed copy stay in L2).
///   The tile height pads the fewest columns. Split by units (images x groups x tiles) when
///   they divide evenly enough, else by chunks of output channels (whole panels), as the
///   float convolution is.
/// - dense and matmul: x is A (uint8), packed at run time a block of rows at a time; constant
///   2-D weights are B (int8), in panels of NR columns packed at compile time
///   (WeightLayout.int8Columns), else packed at run time a block of columns at a time. Split: a
///   batched matmul by whole products; a single product by chunks of rows or of columns.
///
/// Scratch: each thread's shifted copies, or its unfolded tile and packed panels.
struct Int8Contraction: Sendable {
    enum Form: Sendable {
        case convolution(ConvGeometry, tileRows: Int, input: ConvolutionInput)
        /// `batch` products of m x k by k x n.
        case product(m: Int, n: Int, k: Int, batch: Int)
    }
    let form: Form
    /// Rows of the register block (MR), which the packed weights' panels have too.
    let rows: Int

    /// How a convolution's input enters the GEMM.
    enum ConvolutionInput: Sendable, Equatable {
        /// Unfolded (or read in place) and packed, the GEMM's B.
        case packed
        /// Shifted copies, read in place as the GEMM's B.
        case shiftedCopies
        /// Shifted copies read in place as the GEMM's A, its rows the output pixels (unsigned,
        /// broadcast), the weights its B in panels of NR output channels, the product stored
        /// transposed: for small images, whose pixels fill panels of NR columns badly (a 7 x 7
        /// image's 49 pixels take 64 columns, 7 rows of 7).
        case pixelRows

        var readsCopies: Bool { self != .packed }
    }

    /// Rows of the register block of a convolution with its pixels as rows: 7 x 2 vectors, 14
    /// accumulators (7 divides the 49 and 196 pixels of 7 x 7 and 14 x 14 images).
    static let pixelRowBlock = 7

    /// Whether a convolution on shifted copies computes fewer padded multiply-adds with its
    /// pixels as rows (panels of 7 pixels and of NR output channels) than as columns (panels
    /// of NR pixels and MR channels), by a fifth or more, each form in the tiles it would take:
    /// the smaller register block and the transposed stores cost about that much: ResNet's
    /// 7 x 7 layers (64 columns for 49 pixels) gain, its 14 x 14 (224 for 196) and 28 x 28 ones
    /// (416 for 392) do not (benchmarks/RESULTS.md, "Measurements behind choices in the code").
    /// Needs AVX-512's 32 registers (the block of 7 x 2 vectors and its operands).
    static func prefersPixelRows(_ g: ConvGeometry, threads: Int, vectorWidth: Int) -> Bool {
        guard vectorWidth >= 16 else { return false }
        let columnBlocking = blocking(m: g.groupOutChannels, vectorWidth: vectorWidth)
        func work(panel: Int, channels: Int) -> Int {
            let rows = tileRows(g, panelColumns: panel, threads: threads, input: .shiftedCopies)
            return paddedColumns(g, tileRows: rows, panelColumns: panel, threads: threads, input: .shiftedCopies) * channels
        }
        let asRows = work(panel: pixelRowBlock, channels: roundUp(g.groupOutChannels, columnBlocking.columns))
        let asColumns = work(panel: columnBlocking.columns, channels: roundUp(g.groupOutChannels, columnBlocking.rows))
        return asRows * 5 <= asColumns * 4
    }

    /// Whether a convolution reads shifted copies of its input: constant weights, and K in words
    /// of 4 channels at most an eighth longer than K in words of the unfold's rows (a 3x3
    /// convolution of 3 channels would take 9 words for 7).
    static func readsShiftedCopies(_ g: ConvGeometry, constantWeights: Bool) -> Bool {
        guard constantWeights && g.needsUnfold else { return false }
        return ShiftedCopies(g, tileRows: 1).words * 8 <= words(g.unfoldedRows) * 9
    }

    /// The layout of a tile's shifted copies, in 4-byte words (each 4 channels of one pixel):
    /// copy (cy, kx), then channel group c4, then row r, then column x, holding input row
    /// (firstRow + r) x strideY - padTop + cy x dilationY, column x x strideX - padLeft + kx x
    /// dilationX. With a vertical stride of 1 there is one row of copies (cy = 0), whose rows run
    /// past the tile's by the kernel's reach, and tap (ky, kx)'s B starts `ky * dilationY *
    /// outW` words into copy kx; with a larger one, a copy a tap (cy = ky).
    struct ShiftedCopies {
        let g: ConvGeometry
        /// Groups of 4 input channels, the last padded (its extra channels meet zero weights).
        let channelWords: Int
        /// Rows of copies: 1, or KH.
        let copiesY: Int
        /// Rows of a copy beyond the tile's.
        let reach: Int
        /// Words of one channel group's rows of one copy (a whole tile's, the last tile's too).
        let planeWords: Int

        init(_ g: ConvGeometry, tileRows: Int) {
            self.g = g
            channelWords = (g.groupChannels + 3) / 4
            let sharesRows = g.attributes.strides[0] == 1
            copiesY = sharesRows ? 1 : g.kernelH
            reach = sharesRows ? (g.kernelH - 1) * g.attributes.dilations[0] : 0
            planeWords = (tileRows + reach) * g.outW
        }

        /// Words of one copy.
        var copyWords: Int { channelWords * planeWords }
        /// Words of K: a tap's channel groups, tap by tap.
        var words: Int { g.kernelH * g.kernelW * channelWords }
        /// Words from tap (ky, 0)'s B to tap (ky + 1, 0)'s.
        var tapStrideY: Int { copiesY == 1 ? g.attributes.dilations[0] * g.outW : g.kernelW * copyWords }
        /// The copies' words with the slack that the copying's last whole vector and the GEMM's
        /// last panel (up to 32 columns past the tile's end) may touch.
        var scratchWords: Int { copiesY * g.kernelW * copyWords + 64 }
        /// Bytes of a tile of `rows` output rows.
        static func bytes(_ g: ConvGeometry, rows: Int) -> Int { ShiftedCopies(g, tileRows: rows).scratchWords * 4 }
    }

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
    /// the output channels, which counts a quarter more (shifted copies, a twentieth: they move
    /// a KH-th of the unfold's bytes and are not packed). ResNet's 28 x 28 images in tiles of 4
    /// rows (112 columns, 4 panels of 32) computed 14% more columns than there are; in tiles of
    /// 8 rows, 2%. Its 14 x 14 images in two tiles of 7 rows compute 256 columns for 196; one
    /// tile whose output channels two threads share, 224.
    /// `input` says which of the tile's forms must fit: its unfold, or its shifted copies.
    static func tileRows(_ g: ConvGeometry, panelColumns: Int, threads: Int, input: ConvolutionInput) -> Int {
        guard g.needsUnfold else { return g.outH }
        var best = (cost: Int.max, rows: 1)
        for rows in 1...max(g.outH, 1) {
            let bytes = input.readsCopies ? ShiftedCopies.bytes(g, rows: rows) : g.unfoldedRows * rows * g.outW
            if rows > 1 && bytes > tileBytes { break }
            let cost = paddedColumns(g, tileRows: rows, panelColumns: panelColumns, threads: threads, input: input)
            if cost <= best.cost { best = (cost, rows) }
        }
        return best.rows
    }

    /// The columns (pixels) the busiest of `threads` computes in tiles of `tileRows` output rows,
    /// each tile's rounded up to whole panels, tiles shared among threads counted as
    /// `tileRows` says.
    static func paddedColumns(_ g: ConvGeometry, tileRows rows: Int, panelColumns: Int, threads: Int, input: ConvolutionInput) -> Int {
        let tiles = (g.outH + rows - 1) / rows, last = g.outH - (tiles - 1) * rows
        let tile = roundUp(rows * g.outW, panelColumns)
        let columns = (tiles - 1) * tile + roundUp(last * g.outW, panelColumns)
        let shared = input.readsCopies ? columns * 21 / (20 * threads) : columns * 5 / (4 * threads)
        return tiles >= threads ? (tiles + threads - 1) / threads * tile : shared
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
        case let .convolution(g, tileRows, input):
            if input.readsCopies { return (ShiftedCopies(g, tileRows: tileRows).scratchWords * 4, 0, 0) }
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
            var blocking = Int8Contraction.blocking(m: g.groupOutChannels, vectorWidth: c.vectorWidth)
            var input: Int8Contraction.ConvolutionInput = Int8Contraction.readsShiftedCopies(g, constantWeights: c.constantWeights) ? .shiftedCopies : .packed
            if input == .shiftedCopies && Int8Contraction.prefersPixelRows(g, threads: c.threads, vectorWidth: c.vectorWidth) {
                (input, blocking) = (.pixelRows, GemmBlocking(vectorWidth: c.vectorWidth, rows: Int8Contraction.pixelRowBlock))
            }
            let pixelRows = input == .pixelRows
            let tileRows = Int8Contraction.tileRows(g, panelColumns: pixelRows ? blocking.rows : blocking.columns, threads: c.threads, input: input)
            let form = Int8Contraction.Form.convolution(g, tileRows: tileRows, input: input)
            let layout: WeightLayout
            switch input {
            case .pixelRows:
                layout = .int8TapColumns(groups: g.groups, columns: g.groupOutChannels, channels: g.groupChannels, taps: g.kernelH * g.kernelW,
                                         panel: blocking.columns)
            case .shiftedCopies:
                layout = .int8TapRows(groups: g.groups, rows: g.groupOutChannels, channels: g.groupChannels, taps: g.kernelH * g.kernelW, panel: blocking.rows)
            case .packed:
                layout = c.constantWeights ? .int8Rows(groups: g.groups, rows: g.groupOutChannels, depth: g.unfoldedRows, panel: blocking.rows) : .plain
            }
            let units = g.batch * g.groups * Int8Contraction.tiles(g, tileRows: tileRows)
            // Chunks of output channels are whole panels: of MR rows, or with pixels as rows, of NR columns.
            let channelBlocking = pixelRows ? GemmBlocking(vectorWidth: c.vectorWidth, rows: blocking.columns) : blocking
            let split = ThreadSplit.plan(units: units, rows: g.groupOutChannels, flops: c.flops, threads: c.threads, blocking: channelBlocking)
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
