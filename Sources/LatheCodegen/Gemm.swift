import CLLVM
import LatheIR

/// M, N and K of one product of a NumPy matmul (a vector operand is a one-row or one-column matrix).
func matmulSizes(_ aShape: [Int], _ bShape: [Int]) -> (m: Int, n: Int, k: Int) {
    let (a2, b2) = matrixShapes(aShape, bShape)
    return (a2[a2.count - 2], b2[b2.count - 1], a2[a2.count - 1])
}

/// The batch axes of a NumPy matmul of these operand shapes, broadcast, and each operand's own.
func matmulBatch(_ aShape: [Int], _ bShape: [Int]) -> (batch: [Int], a: [Int], b: [Int]) {
    let (a2, b2) = matrixShapes(aShape, bShape)
    let aBatch = Array(a2.dropLast(2)), bBatch = Array(b2.dropLast(2))
    return ((try? broadcastShapes(aBatch, bBatch)) ?? [], aBatch, bBatch)
}

/// The operands of a NumPy matmul as matrices: a vector A a one-row matrix, a vector B a
/// one-column one.
private func matrixShapes(_ aShape: [Int], _ bShape: [Int]) -> (a: [Int], b: [Int]) {
    (aShape.count == 1 ? [1] + aShape : aShape, bShape.count == 1 ? bShape + [1] : bShape)
}

/// A matrix operand: element (i, j) at base[offset + i * rowStride + j * columnStride]
/// (column stride 1, row-major, except for a transposed A).
struct MatrixView {
    var base: LLVMValue
    var offset: LLVMValue
    var rowStride: Int
    var columnStride = 1
    /// A row stride known only at run time (a convolution tile's width), which replaces
    /// `rowStride`; only the packed GEMM's packing reads such a view.
    var runtimeRowStride: LLVMValue? = nil
}

/// What the GEMM adds to each result before storing it.
enum GemmBias {
    var isSome: Bool { if case .none = self { return false } else { return true } }

    case none
    /// One value per row of C (a convolution's per-channel bias).
    case perRow(LLVMValue, offset: LLVMValue)
    /// One value per column of C (a dense layer's bias).
    case perColumn(LLVMValue, offset: LLVMValue)
}

/// An elementwise formula applied to each result before it is stored: $0 is the sum (bias
/// added), $1... are read from `extras`: laid out like C, or one value per column of C.
struct GemmEpilogue {
    var formula: ScalarExpr
    var extras: [(base: LLVMValue, perColumn: Bool)]
}

extension IRBuilder {
    /// Rows of the register block, and vectors across it: 6 x 2 vectors keeps 12 accumulators,
    /// two B vectors and one broadcast A value in 15 of the 16 AVX2 registers (the textbook
    /// 6x16 kernel); with AVX-512 the same shape covers 6x32.
    static let gemmRows = 6
    static let gemmVectors = 2
    /// From this K on, a product of fewer than `gemmRows` rows streams B (streamingGemm).
    static let streamingDepth = 64

    /// C[M, N] = A[M, K] * B[K, N] (+ bias), then the epilogue. Packed and cache-blocked
    /// (GemmPacked.swift) when a packing buffer is given and the sizes reuse the operands;
    /// otherwise read in place: skinny products (a batch-1 dense layer streams its weights once,
    /// where packing them would double the traffic) and tiny ones.
    /// `prepackedB`: B is in the packed GEMM's panels (`b.offset` its first column), which only
    /// the packed GEMM reads, whatever the sizes.
    func gemm(m: Int, n: Int, k: Int, a: MatrixView, b: MatrixView, c: MatrixView, bias: GemmBias, epilogue: GemmEpilogue? = nil,
              packing: LLVMValue? = nil, prepackedB: Bool = false) {
        let blocking = GemmBlocking(vectorWidth: vectorWidth)
        if prepackedB {
            // KernelProgram gives every kernel with packed B its A's packing buffer.
            guard let packing else { preconditionFailure("a GEMM with packed B and no packing buffer") }
            packedGemm(blocking, m: int(m), n: int(n), maxM: m, k: k, a: a, b: b, c: c, bias: bias, epilogue: epilogue, packing: packing, prepackedB: true)
        } else if let packing, blocking.packs(m: m, n: n, k: k) {
            packedGemm(blocking, m: int(m), n: int(n), maxM: m, k: k, a: a, b: b, c: c, bias: bias, epilogue: epilogue, packing: packing)
        } else if m < IRBuilder.gemmRows, k >= IRBuilder.streamingDepth, n >= 2 * vectorWidth, b.columnStride == 1, b.runtimeRowStride == nil {
            streamingGemm(m: m, n: n, k: k, a: a, b: b, c: c, bias: bias, epilogue: epilogue)
        } else {
            directGemm(m: m, n: n, k: k, a: a, b: b, c: c, bias: bias, epilogue: epilogue)
        }
    }

    /// A few rows of C (a batch-1 dense layer): B streamed row by row, contiguously, each row read
    /// once for all of C's rows, which stay in L1 between rows. Four rows of B a pass, so C is
    /// loaded and stored once per four. Bias and epilogue follow in a pass over C. Reading B down
    /// its columns instead (the register-blocked loop) jumps a whole row of B at every step,
    /// which the prefetchers and the TLB cannot follow once B is large (VGG's 25088 x 4096).
    private func streamingGemm(m: Int, n: Int, k: Int, a: MatrixView, b: MatrixView, c: MatrixView, bias: GemmBias, epilogue: GemmEpilogue?) {
        let width = vectorWidth
        let vectorEnd = n / width * width
        let step = 4
        let rowsOfB = k / step * step
        func cRow(_ i: Int) -> LLVMValue { offset(c.offset, int(i), times: c.rowStride) }
        for i in 0..<m {
            loop(0, vectorEnd, step: width) { j in store(float(0, lanes: width), c.base, iadd(cRow(i), j)) }
            loop(vectorEnd, n) { j in store(float(0), c.base, iadd(cRow(i), j)) }
        }
        /// C[i, j] += sum over the given rows p of B of A[i, p] * B[p, j], for every i and j.
        func accumulate(rows: [LLVMValue]) {
            for i in 0..<m {
                let aRow = offset(a.offset, int(i), times: a.rowStride)
                let coefficients = rows.map { p in load(a.base, offset(aRow, p, times: a.columnStride)) }
                let bRows = rows.map { p in offset(b.offset, p, times: b.rowStride) }
                func update(_ j: LLVMValue, lanes: Int) {
                    var sum = load(c.base, iadd(cRow(i), j), lanes: lanes)
                    for (coefficient, bRow) in zip(coefficients, bRows) {
                        sum = fma(splat(coefficient, lanes: lanes), load(b.base, iadd(bRow, j), lanes: lanes), sum)
                    }
                    store(sum, c.base, iadd(cRow(i), j))
                }
                loop(0, vectorEnd, step: width, unroll: false) { j in update(j, lanes: width) }
                loop(vectorEnd, n, unroll: false) { j in update(j, lanes: 1) }
            }
        }
        loop(0, rowsOfB, step: step, unroll: false) { p in accumulate(rows: (0..<step).map { iadd(p, int($0)) }) }
        loop(rowsOfB, k, unroll: false) { p in accumulate(rows: [p]) }
        guard bias.isSome || epilogue != nil else { return }
        for i in 0..<m {
            func finish(_ j: LLVMValue, lanes: Int) {
                let at = iadd(cRow(i), j)
                var value = load(c.base, at, lanes: lanes)
                switch bias {
                case .none: break
                case let .perRow(base, offset): value = add(value, splat(load(base, iadd(offset, int(i))), lanes: lanes))
                case let .perColumn(base, offset): value = add(value, load(base, iadd(offset, j), lanes: lanes))
                }
                if let epilogue {
                    value = emit(epilogue.formula, [value] + epilogue.extras.map { load($0.base, $0.perColumn ? j : at, lanes: lanes) })
                }
                store(value, c.base, at)
            }
            loop(0, vectorEnd, step: width, unroll: false) { j in finish(j, lanes: width) }
            loop(vectorEnd, n, unroll: false) { j in finish(j, lanes: 1) }
        }
    }

    /// Register-blocked without packing: each block of rows x columns keeps its sums in
    /// registers through the whole K loop, one broadcast of A feeding a row of FMAs. Edges use
    /// smaller blocks: single vectors, then scalars, and single rows.
    private func directGemm(m: Int, n: Int, k: Int, a: MatrixView, b: MatrixView, c: MatrixView, bias: GemmBias, epilogue: GemmEpilogue?) {
        let rows = IRBuilder.gemmRows
        let fullRows = m / rows * rows
        let width = vectorWidth
        let blockColumns = IRBuilder.gemmVectors * width
        let fullBlocks = n / blockColumns * blockColumns
        let vectorEnd = fullBlocks + (n - fullBlocks) / width * width

        func columns(row: LLVMValue, count: Int) {
            loop(0, fullBlocks, step: blockColumns, unroll: false) { j in
                gemmBlock(row: row, rows: count, column: j, vectors: IRBuilder.gemmVectors, lanes: width, k: k, a: a, b: b, c: c, bias: bias, epilogue: epilogue)
            }
            loop(fullBlocks, vectorEnd, step: width) { j in
                gemmBlock(row: row, rows: count, column: j, vectors: 1, lanes: width, k: k, a: a, b: b, c: c, bias: bias, epilogue: epilogue)
            }
            loop(vectorEnd, n) { j in
                gemmBlock(row: row, rows: count, column: j, vectors: 1, lanes: 1, k: k, a: a, b: b, c: c, bias: bias, epilogue: epilogue)
            }
        }
        loop(0, fullRows, step: rows, unroll: false) { i in columns(row: i, count: rows) }
        loop(fullRows, m, unroll: false) { i in columns(row: i, count: 1) }
    }

    private func gemmBlock(row: LLVMValue, rows: Int, column: LLVMValue, vectors: Int, lanes: Int, k: Int,
                           a: MatrixView, b: MatrixView, c: MatrixView, bias: GemmBias, epilogue: GemmEpilogue?) {
        let vectorType = floatType(lanes: lanes)
        let zero = float(0, lanes: lanes)
        let accumulators = (0..<rows * vectors).map { _ in variable(zero) }
        let aRow = (0..<rows).map { r in offset(a.offset, iadd(row, int(r)), times: a.rowStride) }
        let bColumn = iadd(b.offset, column)
        loop(0, k) { p in
            let bRow = offset(bColumn, p, times: b.rowStride)
            let bValues = (0..<vectors).map { v in load(b.base, iadd(bRow, int(v * lanes)), lanes: lanes) }
            for r in 0..<rows {
                let aValue = splat(load(a.base, offset(aRow[r], p, times: a.columnStride)), lanes: lanes)
                for v in 0..<vectors {
                    let slot = accumulators[r * vectors + v]
                    write(fma(aValue, bValues[v], read(slot, type: vectorType)), slot)
                }
            }
        }
        for r in 0..<rows {
            let cRow = offset(c.offset, iadd(row, int(r)), times: c.rowStride)
            for v in 0..<vectors {
                var sum = read(accumulators[r * vectors + v], type: vectorType)
                let columnOffset = iadd(column, int(v * lanes))
                switch bias {
                case .none: break
                case let .perRow(base, offset):
                    sum = add(sum, splat(load(base, iadd(offset, iadd(row, int(r)))), lanes: lanes))
                case let .perColumn(base, offset):
                    sum = add(sum, load(base, iadd(offset, columnOffset), lanes: lanes))
                }
                let at = iadd(cRow, columnOffset)
                if let epilogue {
                    sum = emit(epilogue.formula, [sum] + epilogue.extras.map { load($0.base, $0.perColumn ? columnOffset : at, lanes: lanes) })
                }
                store(sum, c.base, at)
            }
        }
    }
}
