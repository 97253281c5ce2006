import CLLVM
import LatheIR

/// The packed, cache-blocked GEMM (the loop nest of BLIS and of Goto's paper):
///
///     for jc in 0..<N step NC               columns of B and C
///       for pc in 0..<K step KC             pack B[pc.., jc..] as KC x NR micro-panels
///         for ic in 0..<M step MC           pack A[ic.., pc..] as MR x KC micro-panels
///           for jr in 0..<NC step NR
///             for ir in 0..<MC step MR      micro-kernel: C[MR x NR] += A panel x B panel
///
/// A KC x NR micro-panel of B (16 KB on AVX2) stays in L1 while the micro-kernel sweeps the
/// MC x KC block of A held in L2; both are read contiguously, whatever the operands' strides.
/// The micro-kernel keeps its MR x NR sums in registers through KC steps of one broadcast of A
/// and NR / width vector loads of B. Panels at the edges are zero-padded, so the micro-kernel
/// always runs whole; only its store is cut to the rows and columns that exist. The K blocks
/// are peeled at compile time: the first stores, the others add, and only the last applies the
/// bias and the epilogue.
struct GemmBlocking {
    static let kc = 256
    static let mc = 120
    static let nc = 1024
    /// The largest register block any target uses (AVX-512: 12 x 32), for sizing buffers
    /// without knowing the target.
    static let largestRows = 12, largestColumns = 32

    let rows: Int       // MR
    let columns: Int    // NR

    /// 6 x 2 vectors: 12 accumulators, two B vectors and one broadcast A value in 15 of AVX2's 16
    /// registers. AVX-512's 32 registers hold 12 x 2 vectors.
    init(vectorWidth: Int) {
        columns = 2 * vectorWidth
        rows = vectorWidth >= 16 ? 12 : 6
    }

    /// Packing pays once the operands are reused: at least a register block of rows and columns.
    func packs(m: Int, n: Int, k: Int) -> Bool { m >= rows && n >= columns && k >= 8 }

    /// Floats of packing buffer a GEMM of these sizes may use on any target: one block of A and
    /// one of B. Zero when no target packs it.
    static func packingFloats(m: Int, n: Int, k: Int) -> Int {
        guard m >= 6, n >= 16, k >= 8 else { return 0 }
        func roundUp(_ x: Int, _ to: Int) -> Int { (x + to - 1) / to * to }
        let kc = min(kc, k)
        return kc * (roundUp(min(mc, m), largestRows) + roundUp(min(nc, n), largestColumns))
    }
}

extension IRBuilder {
    func packedGemm(_ blocking: GemmBlocking, m: Int, n: Int, k: Int, a: MatrixView, b: MatrixView, c: MatrixView,
                    bias: GemmBias, epilogue: GemmEpilogue?, packing: LLVMValue) {
        let (mr, nr) = (blocking.rows, blocking.columns)
        let kc = min(GemmBlocking.kc, k)
        let packedA = packing
        let packedB = pointer(packing, int(kc * ((min(GemmBlocking.mc, m) + GemmBlocking.largestRows - 1) / GemmBlocking.largestRows * GemmBlocking.largestRows)))
        let kBlocks = (k + kc - 1) / kc

        loop(from: int(0), to: int(n), step: GemmBlocking.nc) { jc in
            let ncHere = imin(int(GemmBlocking.nc), isub(int(n), jc))
            func kBlock(_ pc: LLVMValue, depth: Int, accumulate: Bool, finish: Bool) {
                packB(b, into: packedB, rowStart: pc, depth: depth, columnStart: jc, columns: ncHere, panel: nr)
                loop(from: int(0), to: int(m), step: GemmBlocking.mc) { ic in
                    let mcHere = imin(int(GemmBlocking.mc), isub(int(m), ic))
                    packA(a, into: packedA, rowStart: ic, rows: mcHere, m: m, columnStart: pc, depth: depth, panel: mr)
                    loop(from: int(0), to: ncHere, step: nr) { jr in
                        loop(from: int(0), to: mcHere, step: mr) { ir in
                            microKernel(blocking, depth: depth, a: pointer(packedA, imul(ir, int(depth))), b: pointer(packedB, imul(jr, int(depth))),
                                        row: iadd(ic, ir), column: iadd(jc, jr), rows: imin(int(mr), isub(mcHere, ir)), columns: imin(int(nr), isub(ncHere, jr)),
                                        c: c, accumulate: accumulate, finish: finish, bias: bias, epilogue: epilogue)
                        }
                    }
                }
            }
            kBlock(int(0), depth: kc, accumulate: false, finish: kBlocks == 1)
            if kBlocks > 2 {
                loop(from: int(kc), to: int((kBlocks - 1) * kc), step: kc) { pc in kBlock(pc, depth: kc, accumulate: true, finish: false) }
            }
            if kBlocks > 1 {
                kBlock(int((kBlocks - 1) * kc), depth: k - (kBlocks - 1) * kc, accumulate: true, finish: true)
            }
        }
    }

    /// packed[jr * depth + p * panel + j] = B[rowStart + p, columnStart + jr + j], zero past the
    /// last column: micro-panels of `panel` columns, each `depth` rows deep.
    private func packB(_ b: MatrixView, into packed: LLVMValue, rowStart: LLVMValue, depth: Int, columnStart: LLVMValue, columns: LLVMValue, panel: Int) {
        let width = vectorWidth
        let contiguous = b.columnStride == 1 && panel % width == 0
        loop(from: int(0), to: columns, step: panel) { jr in
            let source = iadd(b.offset, iadd(imul(rowStart, int(b.rowStride)), imul(iadd(columnStart, jr), int(b.columnStride))))
            let target = imul(jr, int(depth))
            let valid = isub(columns, jr)
            ifElse(LLVMBuildICmp(builder, LLVMIntSGE, valid, int(panel), "")!, then: {
                loop(0, depth, unroll: false) { p in
                    let from = offset(source, p, times: b.rowStride), to = offset(target, p, times: panel)
                    if contiguous {
                        for v in 0..<(panel / width) { store(load(b.base, iadd(from, int(v * width)), lanes: width), packed, iadd(to, int(v * width))) }
                    } else {
                        for j in 0..<panel { store(load(b.base, offset(from, int(j), times: b.columnStride)), packed, iadd(to, int(j))) }
                    }
                }
            }, else: {
                loop(0, depth, unroll: false) { p in
                    let from = offset(source, p, times: b.rowStride), to = offset(target, p, times: panel)
                    for j in 0..<panel {
                        let inside = LLVMBuildICmp(builder, LLVMIntSLT, int(j), valid, "")!
                        let at = select(inside, offset(from, int(j), times: b.columnStride), from)
                        store(select(inside, load(b.base, at), float(0)), packed, iadd(to, int(j)))
                    }
                }
            })
        }
    }

    /// packed[ir * depth + p * panel + r] = A[rowStart + ir + r, columnStart + p], zero past the
    /// last row: micro-panels of `panel` rows.
    private func packA(_ a: MatrixView, into packed: LLVMValue, rowStart: LLVMValue, rows: LLVMValue, m: Int, columnStart: LLVMValue, depth: Int, panel: Int) {
        loop(from: int(0), to: rows, step: panel) { ir in
            let target = imul(ir, int(depth))
            for r in 0..<panel {
                let row = iadd(iadd(rowStart, ir), int(r))
                let inside = LLVMBuildICmp(builder, LLVMIntSLT, row, int(m), "")!
                let source = iadd(a.offset, iadd(imul(select(inside, row, rowStart), int(a.rowStride)), imul(columnStart, int(a.columnStride))))
                loop(0, depth) { p in
                    let value = load(a.base, offset(source, p, times: a.columnStride))
                    store(select(inside, value, float(0)), packed, iadd(target, offset(int(r), p, times: panel)))
                }
            }
        }
    }

    /// C[row.., column..] (+)= A panel x B panel over `depth` steps; with `finish`, plus the bias
    /// and through the epilogue. Whole blocks store vectors; a block cut by the edge of C goes
    /// through a small buffer.
    private func microKernel(_ blocking: GemmBlocking, depth: Int, a: LLVMValue, b: LLVMValue, row: LLVMValue, column: LLVMValue,
                             rows: LLVMValue, columns: LLVMValue, c: MatrixView, accumulate: Bool, finish: Bool, bias: GemmBias, epilogue: GemmEpilogue?) {
        let (mr, width) = (blocking.rows, vectorWidth)
        let vectors = blocking.columns / width
        let vectorType = floatType(lanes: width)
        let accumulators = (0..<mr * vectors).map { _ in variable(float(0, lanes: width)) }
        loop(0, depth) { p in
            let bValues = (0..<vectors).map { v in load(b, offset(int(v * width), p, times: blocking.columns), lanes: width) }
            for r in 0..<mr {
                let aValue = splat(load(a, offset(int(r), p, times: mr)), lanes: width)
                for v in 0..<vectors {
                    let slot = accumulators[r * vectors + v]
                    write(fma(aValue, bValues[v], read(slot, type: vectorType)), slot)
                }
            }
        }

        /// The value to store at C[i, j] given the block's sum there: lanes wide, or 1.
        func result(_ sum: LLVMValue, i: LLVMValue, j: LLVMValue, lanes: Int) -> LLVMValue {
            let at = iadd(iadd(c.offset, imul(i, int(c.rowStride))), j)
            var value = sum
            if accumulate { value = add(value, load(c.base, at, lanes: lanes)) }
            guard finish else { return value }
            switch bias {
            case .none: break
            case let .perRow(base, offset): value = add(value, splat(load(base, iadd(offset, i)), lanes: lanes))
            case let .perColumn(base, offset): value = add(value, load(base, iadd(offset, j), lanes: lanes))
            }
            if let epilogue {
                value = emit(epilogue.formula, [value] + epilogue.extras.map { load($0.base, $0.perColumn ? j : at, lanes: lanes) })
            }
            return value
        }

        let whole = LLVMBuildAnd(builder, LLVMBuildICmp(builder, LLVMIntEQ, rows, int(mr), ""),
                                 LLVMBuildICmp(builder, LLVMIntEQ, columns, int(blocking.columns), ""), "")!
        ifElse(whole, then: {
            for r in 0..<mr {
                let i = iadd(row, int(r))
                for v in 0..<vectors {
                    let j = iadd(column, int(v * width))
                    store(result(read(accumulators[r * vectors + v], type: vectorType), i: i, j: j, lanes: width),
                          c.base, iadd(iadd(c.offset, imul(i, int(c.rowStride))), j))
                }
            }
        }, else: {
            let spill = arrayVariable(floats: mr * blocking.columns)
            for r in 0..<mr {
                for v in 0..<vectors { store(read(accumulators[r * vectors + v], type: vectorType), spill, int(r * blocking.columns + v * width)) }
            }
            loop(from: int(0), to: rows) { r in
                let i = iadd(row, r)
                loop(from: int(0), to: columns) { j in
                    let sum = load(spill, offset(j, r, times: blocking.columns))
                    let at = iadd(column, j)
                    store(result(sum, i: i, j: at, lanes: 1), c.base, iadd(iadd(c.offset, imul(i, int(c.rowStride))), at))
                }
            }
        })
    }
}
