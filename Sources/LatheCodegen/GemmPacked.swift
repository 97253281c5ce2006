import CLLVM
import LatheIR

/// The packed, cache-blocked GEMM (Goto's loop nest, with the two inner loops of MLAS):
///
///     for jc in 0..<N step NC                 columns of B and C
///       for pc in 0..<K step KC               pack B[pc.., jc..] as KC x NR micro-panels
///         for ic in 0..<M step MC             pack A[ic.., pc..] as MR x KC micro-panels
///           for jb in 0..<NC step NB
///             for ir in 0..<MC step MR        an A micro-panel (6 KB on AVX2) stays in L1
///               for jr in jb..<jb+NB step NR  micro-kernel: C[MR x NR] += A panel x B panel
///
/// The micro-kernel streams KC x NR micro-panels of B from the NB columns held in L2 and walks
/// C along its rows. (With the B panel in L1 and the A panel loop inside, C was walked down its
/// columns, rows a page apart, and GEMM-1024 ran slower: benchmarks/RESULTS.md, "Measurements behind choices in the code".) Both operands are read
/// contiguously, whatever their strides. The micro-kernel keeps its MR x NR sums in registers
/// through KC steps of one broadcast of A and NR / width vector loads of B. Panels at the edges
/// are zero-padded, so the micro-kernel always runs whole; only its store is cut to the rows
/// and columns that exist. The first K block stores, the others add, and only the last applies
/// the bias and the epilogue.
func roundUp(_ x: Int, _ to: Int) -> Int { (x + to - 1) / to * to }

struct GemmBlocking {
    static let kc = 256
    static let mc = 120
    static let nc = 1024
    /// Columns of packed B swept per A panel: at most 160 KB of B panels, held in L2.
    static let nb = 128
    /// Up to this many rows, a 1x1 convolution's GEMM reads its input (B) in place rather than
    /// packing it: with so few row panels to reuse it, packing cost more than it saved, and more
    /// rows were no faster (MobileNet v2's 1x1 layers: benchmarks/RESULTS.md, "Measurements behind choices in the code").
    static let inPlaceRows = 64
    /// The largest register block any target uses (AVX-512: 12 x 32), for sizing buffers
    /// without knowing the target.
    static let largestRows = 12, largestColumns = 32

    private(set) var rows: Int       // MR
    let columns: Int    // NR

    /// 6 x 2 vectors: 12 accumulators, two B vectors and one broadcast A value in 15 of AVX2's 16
    /// registers. AVX-512's 32 registers hold 12 x 2 vectors.
    init(vectorWidth: Int) {
        columns = 2 * vectorWidth
        rows = vectorWidth >= 16 ? 12 : 6
    }

    /// A register block of `rows` rows (the integer GEMM's, chosen by its plan).
    init(vectorWidth: Int, rows: Int) {
        self.init(vectorWidth: vectorWidth)
        self.rows = rows
    }

    /// The register block for products of at most `m` rows: the usual one, or one of 4 rows where
    /// that pads fewer rows (8 rows: two blocks of 4, not 6 and a mostly empty 6).
    init(vectorWidth: Int, rowsAtMost m: Int) {
        self.init(vectorWidth: vectorWidth)
        if roundUp(m, 4) < roundUp(m, rows) { rows = 4 }
    }

    /// The K block: K itself up to `kc` + `kc` / 4, else K cut into equal blocks of at most
    /// that, so that no product ends with a sliver of a block that pays a whole pass over C.
    static func depth(_ k: Int) -> Int {
        let most = kc + kc / 4
        guard k > most else { return k }
        let blocks = (k + most - 1) / most
        return (k + blocks - 1) / blocks
    }

    /// Whether the GEMM of these sizes stores each result once, after reading its epilogue
    /// operands: not over several K blocks, nor when it streams B into a few rows of C.
    static func writesResultOnce(_ sizes: (m: Int, k: Int)) -> Bool {
        depth(sizes.k) == sizes.k && !(sizes.m < IRBuilder.gemmRows && sizes.k >= IRBuilder.streamingDepth)
    }

    /// Packing pays once the operands are reused: at least a register block of rows and columns.
    /// (Buffers are sized by the smallest block any target uses, 6 x 8 with 4-float vectors, so
    /// that every target that packs finds its buffer.)
    func packs(m: Int, n: Int, k: Int) -> Bool { m >= rows && n >= columns && k >= 8 }

    /// Floats of packing buffer a GEMM of these sizes may use on any target: one block of A and
    /// one of B. Zero when no target packs it.
    /// Without `packsA` (`packsB`), A (B) comes packed at compile time and needs no buffer; a
    /// GEMM whose B comes packed always packs A, whatever its size.
    /// `always`: for a caller that packs whatever the sizes.
    static func packingFloats(m: Int, n: Int, k: Int, packsA: Bool = true, packsB: Bool = true, always: Bool = false) -> Int {
        let smallest = GemmBlocking(vectorWidth: 4)
        guard always || smallest.packs(m: m, n: n, k: k) || !packsB else { return 0 }
        return depth(k) * ((packsA ? roundUp(min(mc, m), largestRows) : 0) + (packsB ? roundUp(min(nc, n), largestColumns) : 0))
    }
}

extension IRBuilder {
    /// C[m, n] = A[m, K] x B[K, n] with m and n known only at run time (a thread's chunk, a
    /// convolution's last tile): one copy of the loop nest serves every size. The K blocks run in
    /// one loop; the first stores, later ones add, and the last applies bias and epilogue.
    /// `prepackedA`: A is already in micro-panels of MR rows over all of K (WeightLayout
    /// .gemmPanels), `a.offset` at the first row's panel, so its packing is skipped.
    /// `prepackedB`: B is already in micro-panels of NR columns over all of K (WeightLayout
    /// .gemmColumnPanels), `b.offset` the first column (a multiple of NR).
    /// `accumulate` (an i1): when true, C += A x B from the first K block on.
    /// `bInPlace`: B (row-major, its row stride fixed) is read where it lies, not packed: for
    /// products of a few row panels (a 1x1 convolution to at most `inPlaceRows` channels),
    /// which would reuse a packed B too little to pay for packing it.
    func packedGemm(_ blocking: GemmBlocking, m: LLVMValue, n: LLVMValue, maxM: Int, k: Int, a: MatrixView, b: MatrixView, c: MatrixView,
                    bias: GemmBias, epilogue: GemmEpilogue?, packing: LLVMValue, prepackedA: Bool = false, prepackedB: Bool = false,
                    bInPlace: Bool = false, accumulate accumulateAll: LLVMValue? = nil) {
        let (mr, nr) = (blocking.rows, blocking.columns)
        let kc = GemmBlocking.depth(k)
        let packedA = packing
        let packedB = prepackedA ? packing : pointer(packing, int(kc * roundUp(min(GemmBlocking.mc, maxM), GemmBlocking.largestRows)))
        loop(from: int(0), to: n, step: GemmBlocking.nc) { jc in
            let ncHere = imin(int(GemmBlocking.nc), isub(n, jc))
            loop(from: int(0), to: int(k), step: kc) { pc in
                let depth = imin(int(kc), isub(int(k), pc))
                var accumulate = LLVMBuildICmp(builder, LLVMIntSGT, pc, int(0), "")!
                if let accumulateAll { accumulate = LLVMBuildOr(builder, accumulate, accumulateAll, "") }
                let finish = LLVMBuildICmp(builder, LLVMIntSGE, iadd(pc, int(kc)), int(k), "")!
                if !prepackedB && !bInPlace { packB(b, into: packedB, rowStart: pc, depth: depth, columnStart: jc, columns: ncHere, panel: nr) }
                loop(from: int(0), to: m, step: GemmBlocking.mc) { ic in
                    let mcHere = imin(int(GemmBlocking.mc), isub(m, ic))
                    if !prepackedA { packA(a, into: packedA, rowStart: ic, rows: mcHere, m: m, columnStart: pc, depth: depth, panel: mr) }
                    func aPanel(_ ir: LLVMValue) -> LLVMValue {
                        prepackedA ? pointer(a.base, iadd(a.offset, iadd(imul(iadd(ic, ir), int(k)), imul(pc, int(mr))))) : pointer(packedA, imul(ir, depth))
                    }
                    if bInPlace {
                        // A strip of B read where it lies, by every row panel in turn while it
                        // is in L1; the last strip, cut by the edge, packed with zero padding.
                        let rowStride = int(b.rowStride)
                        loop(from: int(0), to: ncHere, step: nr) { jr in
                            let columns = imin(int(nr), isub(ncHere, jr))
                            let whole = LLVMBuildICmp(builder, LLVMIntEQ, columns, int(nr), "")!
                            ifElse(whole, then: {}, else: {
                                packB(b, into: packedB, rowStart: pc, depth: depth, columnStart: iadd(jc, jr), columns: columns, panel: nr)
                            })
                            let inPlace = pointer(b.base, iadd(b.offset, iadd(imul(pc, rowStride), iadd(jc, jr))))
                            let strip = LLVMBuildSelect(builder, whole, inPlace, packedB, "")!
                            let stripStride = select(whole, rowStride, int(nr))
                            loop(from: int(0), to: mcHere, step: mr) { ir in
                                microKernel(blocking, depth: depth, a: aPanel(ir), next: pointer(strip, int(2 * nr)), b: strip, bStride: stripStride,
                                            row: iadd(ic, ir), column: iadd(jc, jr), rows: imin(int(mr), isub(mcHere, ir)), columns: columns,
                                            c: c, accumulate: accumulate, finish: finish, bias: bias, epilogue: epilogue)
                            }
                        }
                        return
                    }
                    loop(from: int(0), to: ncHere, step: GemmBlocking.nb) { jb in
                        let nbEnd = imin(iadd(jb, int(GemmBlocking.nb)), ncHere)
                        loop(from: int(0), to: mcHere, step: mr) { ir in
                            let panel = aPanel(ir)
                            // Weights packed at compile time come from memory: the next panel is
                            // fetched while this one is used (a packed A is already in L2).
                            let nextPanel = prepackedA ? pointer(panel, int(mr * k)) : panel
                            loop(from: jb, to: nbEnd, step: nr) { jr in
                                let bPanel = prepackedB
                                    ? pointer(b.base, imul(iadd(imul(LLVMBuildUDiv(builder, iadd(b.offset, iadd(jc, jr)), int(nr), "")!, int(k)), pc), int(nr)))
                                    : pointer(packedB, imul(jr, depth))
                                microKernel(blocking, depth: depth, a: panel, next: nextPanel, b: bPanel,
                                            row: iadd(ic, ir), column: iadd(jc, jr), rows: imin(int(mr), isub(mcHere, ir)), columns: imin(int(nr), isub(ncHere, jr)),
                                            c: c, accumulate: accumulate, finish: finish, bias: bias, epilogue: epilogue)
                            }
                        }
                    }
                }
            }
        }
    }

    /// packed[jr * depth + p * panel + j] = B[rowStart + p, columnStart + jr + j], zero past the
    /// last column: micro-panels of `panel` columns, each `depth` rows deep.
    private func packB(_ b: MatrixView, into packed: LLVMValue, rowStart: LLVMValue, depth: LLVMValue, columnStart: LLVMValue, columns: LLVMValue, panel: Int) {
        let rowStride = b.runtimeRowStride ?? int(b.rowStride)
        let source = iadd(b.offset, iadd(imul(rowStart, rowStride), imul(columnStart, int(b.columnStride))))
        call(packBFunction(panel: panel), [pointer(b.base, source), packed, rowStride, int(b.columnStride), depth, columns])
    }

    /// `void lathe_pack_b_NR(float* source, float* packed, i64 rowStride, i64 columnStride,
    /// i64 depth, i64 columns)`: one function a module, for every GEMM's B.
    private func packBFunction(panel: Int) -> LLVMValue {
        sharedFunction("lathe_pack_b_\(panel)", pointerCount: 2, integerCount: 4) { function in
            let (base, packed) = (LLVMGetParam(function, 0)!, LLVMGetParam(function, 1)!)
            let (rowStride, columnStride, depth, columns) = (LLVMGetParam(function, 2)!, LLVMGetParam(function, 3)!, LLVMGetParam(function, 4)!, LLVMGetParam(function, 5)!)
            let width = vectorWidth
            let contiguous = LLVMBuildICmp(builder, LLVMIntEQ, columnStride, int(1), "")!
            loop(from: int(0), to: columns, step: panel) { jr in
                let source = imul(jr, columnStride)
                let target = imul(jr, depth)
                let valid = isub(columns, jr)
                let whole = LLVMBuildAnd(builder, contiguous, LLVMBuildICmp(builder, LLVMIntSGE, valid, int(panel), ""), "")!
                ifElse(whole, then: {
                    loop(from: int(0), to: depth) { p in
                        let from = iadd(source, imul(p, rowStride)), to = offset(target, p, times: panel)
                        for v in 0..<(panel / width) { store(load(base, iadd(from, int(v * width)), lanes: width), packed, iadd(to, int(v * width))) }
                    }
                }, else: {
                    loop(from: int(0), to: depth) { p in
                        let from = iadd(source, imul(p, rowStride)), to = offset(target, p, times: panel)
                        for j in 0..<panel {
                            let inside = LLVMBuildICmp(builder, LLVMIntSLT, int(j), valid, "")!
                            let at = select(inside, iadd(from, imul(int(j), columnStride)), from)
                            store(select(inside, load(base, at), float(0)), packed, iadd(to, int(j)))
                        }
                    }
                })
            }
        }
    }

    /// packed[ir * depth + p * panel + r] = A[rowStart + ir + r, columnStart + p], zero past the
    /// last row: micro-panels of `panel` rows.
    private func packA(_ a: MatrixView, into packed: LLVMValue, rowStart: LLVMValue, rows: LLVMValue, m: LLVMValue, columnStart: LLVMValue, depth: LLVMValue, panel: Int) {
        let source = iadd(a.offset, iadd(imul(rowStart, int(a.rowStride)), imul(columnStart, int(a.columnStride))))
        call(packAFunction(panel: panel), [pointer(a.base, source), packed, int(a.rowStride), int(a.columnStride), depth, rows, isub(m, rowStart)])
    }

    /// `void lathe_pack_a_MR(float* source, float* packed, i64 rowStride, i64 columnStride,
    /// i64 depth, i64 rows, i64 validRows)`: one function a module, for every GEMM's A. A whole
    /// panel of contiguous rows goes a vector of each row at a time, transposed in registers and
    /// stored as `panel` whole vectors; the rest of the depth, and panels cut by the last row or
    /// with strided rows, a value at a time.
    private func packAFunction(panel: Int) -> LLVMValue {
        sharedFunction("lathe_pack_a_\(panel)", pointerCount: 2, integerCount: 5) { function in
            let (base, packed) = (LLVMGetParam(function, 0)!, LLVMGetParam(function, 1)!)
            let (rowStride, columnStride, depth) = (LLVMGetParam(function, 2)!, LLVMGetParam(function, 3)!, LLVMGetParam(function, 4)!)
            let (rows, validRows) = (LLVMGetParam(function, 5)!, LLVMGetParam(function, 6)!)
            let width = vectorWidth
            let contiguous = LLVMBuildICmp(builder, LLVMIntEQ, columnStride, int(1), "")!
            loop(from: int(0), to: rows, step: panel) { ir in
                let target = imul(ir, depth)
                let whole = LLVMBuildAnd(builder, contiguous, LLVMBuildICmp(builder, LLVMIntSLE, iadd(ir, int(panel)), validRows, ""), "")!
                let transposedDepth = select(whole, LLVMBuildAnd(builder, depth, int(-width), "")!, int(0))
                loop(from: int(0), to: transposedDepth, step: width) { p in
                    let block = (0..<panel).map { r in load(base, iadd(imul(iadd(ir, int(r)), rowStride), p), lanes: width) }
                    store(transpose(block), packed, iadd(target, imul(p, int(panel))))
                }
                for r in 0..<panel {
                    let row = iadd(ir, int(r))
                    let inside = LLVMBuildICmp(builder, LLVMIntSLT, row, validRows, "")!
                    let source = imul(select(inside, row, int(0)), rowStride)
                    loop(from: transposedDepth, to: depth) { p in
                        let value = load(base, iadd(source, imul(p, columnStride)))
                        store(select(inside, value, float(0)), packed, iadd(target, offset(int(r), p, times: panel)))
                    }
                }
            }
        }
    }

    /// One vector of `rows.count * width` lanes: lane p * rows.count + r is lane p of rows[r]. The
    /// rows are concatenated pairwise (padded to a power of two) and then shuffled once; LLVM
    /// lowers that to unpacks, permutes and blends.
    func transpose(_ rows: [LLVMValue]) -> LLVMValue {
        let width = lanes(of: rows[0])
        var level = rows
        while level.count & (level.count - 1) != 0 { level.append(LLVMGetUndef(LLVMTypeOf(rows[0]))) }
        while level.count > 1 {
            let lanesNow = lanes(of: level[0])
            level = stride(from: 0, to: level.count, by: 2).map { shuffle(level[$0], with: level[$0 + 1], Array(0..<(2 * lanesNow))) }
        }
        return shuffle(level[0], (0..<(rows.count * width)).map { i in i % rows.count * width + i / rows.count })
    }

    /// C[row.., column..] (+)= A panel x B panel over `depth` steps; when `finish`, plus the bias
    /// and through the epilogue. Whole blocks store vectors; a block cut by the edge of C goes
    /// through the sums buffer a value at a time. `bStride`: B's rows lie that far apart (B read
    /// in place), not NR; `next` is then B's next strip, else A's next panel.
    private func microKernel(_ blocking: GemmBlocking, depth: LLVMValue, a: LLVMValue, next: LLVMValue, b: LLVMValue, bStride: LLVMValue? = nil,
                             row: LLVMValue, column: LLVMValue,
                             rows: LLVMValue, columns: LLVMValue, c: MatrixView, accumulate: LLVMValue, finish: LLVMValue,
                             bias: GemmBias, epilogue: GemmEpilogue?) {
        let (mr, width) = (blocking.rows, vectorWidth)
        let vectors = blocking.columns / width
        let sums = arrayVariable(floats: mr * blocking.columns)
        // A last panel of at most half its columns (49 = 3 x 16 + 1) runs the half-width kernel:
        // the other half would only multiply the panel's zero padding.
        let half = blocking.columns / 2
        let arguments = [a, b, depth] + (bStride.map { [$0] } ?? []) + [sums, next]
        ifElse(LLVMBuildICmp(builder, LLVMIntSLE, columns, int(half), "")!, then: {
            call(microKernelFunction(blocking, columns: half, strided: bStride != nil), arguments)
        }, else: {
            call(microKernelFunction(blocking, strided: bStride != nil), arguments)
        })

        /// The value to store at C[i, j] for the block's sum there (lanes wide, or 1): the sum so
        /// far added when accumulating, and with `finished`, the bias and the epilogue.
        func result(_ sum: LLVMValue, i: LLVMValue, j: LLVMValue, lanes: Int, finished: Bool) -> LLVMValue {
            let at = iadd(iadd(c.offset, imul(i, int(c.rowStride))), j)
            var value = select(accumulate, add(sum, load(c.base, at, lanes: lanes)), sum)
            guard finished else { return value }
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
        func wholeBlock(finished: Bool) {
            for r in 0..<mr {
                let i = iadd(row, int(r))
                for v in 0..<vectors {
                    let j = iadd(column, int(v * width))
                    store(result(load(sums, int((r * vectors + v) * width), lanes: width), i: i, j: j, lanes: width, finished: finished),
                          c.base, iadd(iadd(c.offset, imul(i, int(c.rowStride))), j))
                }
            }
        }
        func cutBlock(finished: Bool) {
            loop(from: int(0), to: rows) { r in
                let i = iadd(row, r)
                loop(from: int(0), to: columns) { j in
                    let at = iadd(column, j)
                    store(result(load(sums, offset(j, r, times: blocking.columns)), i: i, j: at, lanes: 1, finished: finished),
                          c.base, iadd(iadd(c.offset, imul(i, int(c.rowStride))), at))
                }
            }
        }
        let whole = LLVMBuildAnd(builder, LLVMBuildICmp(builder, LLVMIntEQ, rows, int(mr), ""),
                                 LLVMBuildICmp(builder, LLVMIntEQ, columns, int(blocking.columns), ""), "")!
        ifElse(whole, then: {
            ifElse(finish, then: { wholeBlock(finished: true) }, else: { wholeBlock(finished: false) })
        }, else: {
            ifElse(finish, then: { cutBlock(finished: true) }, else: { cutBlock(finished: false) })
        })
    }

    /// `void lathe_micro_MRxNR(float* a, float* b, i64 depth, float* sums, float* nextA)`:
    /// sums[r * NR + j] = sum over p of a[p * MR + r] * b[p * NR + j], the MR x NR sums held in
    /// registers through the loop (unrolled by 4), one broadcast of A feeding NR / width FMAs;
    /// each step of 4 prefetches as many lines of `nextA` as it reads of `a`, so that the next
    /// panel of weights streamed from memory is in L1 when its first call starts (ResNet-50:
    /// benchmarks/RESULTS.md, "Measurements behind choices in the code"). One
    /// function a module, called by every packed GEMM: a copy inlined in every GEMM variant made
    /// LLVM's optimization several times slower. `columns` (a multiple of the vector width, at
    /// most NR): only the first columns of each panel row (`lathe_micro_MRxNR_C`).
    /// `strided` (`lathe_micro_MRxNR_s`, one more i64 after `depth`): B's rows lie that many
    /// floats apart, and each step prefetches the line of `next` (B's next strip) in its row.
    func microKernelFunction(_ blocking: GemmBlocking, columns: Int? = nil, strided: Bool = false) -> LLVMValue {
        let (mr, nr, width) = (blocking.rows, blocking.columns, vectorWidth)
        let used = columns ?? nr
        let name = "lathe_micro_\(mr)x\(nr)\(used == nr ? "" : "_\(used)")\(strided ? "_s" : "")"
        return sharedFunction(name, pointerCount: 2, integerCount: strided ? 2 : 1, trailingPointers: 2) { function in
            let (a, b, depth) = (LLVMGetParam(function, 0)!, LLVMGetParam(function, 1)!, LLVMGetParam(function, 2)!)
            let bStride = strided ? LLVMGetParam(function, 3)! : int(nr)
            let (sums, next) = (LLVMGetParam(function, strided ? 4 : 3)!, LLVMGetParam(function, strided ? 5 : 4)!)
            let vectors = used / width
            let type = floatType(lanes: width)
            let accumulators = (0..<mr * vectors).map { _ in variable(float(0, lanes: width)) }
            func step(_ p: LLVMValue) {
                let row = imul(p, bStride)
                if strided { prefetch(next, row) }
                let bValues = (0..<vectors).map { v in load(b, iadd(row, int(v * width)), lanes: width) }
                for r in 0..<mr {
                    let aValue = splat(load(a, offset(int(r), p, times: mr)), lanes: width)
                    for v in 0..<vectors {
                        let slot = accumulators[r * vectors + v]
                        write(fma(aValue, bValues[v], read(slot, type: type)), slot)
                    }
                }
            }
            let unrolled = LLVMBuildAnd(builder, depth, int(-4), "")!
            loop(from: int(0), to: unrolled, step: 4) { p in
                if !strided { for line in 0..<(4 * mr + 15) / 16 { prefetch(next, iadd(imul(p, int(mr)), int(16 * line))) } }
                for u in 0..<4 { step(iadd(p, int(u))) }
            }
            loop(from: unrolled, to: depth) { p in step(p) }
            for (i, slot) in accumulators.enumerated() { store(read(slot, type: type), sums, int(i / vectors * nr + i % vectors * width)) }
        }
    }
}
