import CLLVM
import LatheIR

/// The integer GEMM of quantized contractions (planned by KernelPlan.int8Contraction,
/// Lowering/Int8Plan.swift):
///
///     C[m, n] = sum over k of A[m, k] B[k, n]      (int32 sums; one operand uint8, the other int8)
///
/// Both operands are packed in panels whose elements are 4-byte words of 4 consecutive values
/// along K: an A panel is [K/4][MR] words, a B panel [K/4][NR]. One instruction then multiplies
/// 4 byte pairs in each 32-bit lane and adds them to the lane's sum: vpdpbusd (uint8 x int8,
/// AVX-512 VNNI or AVX-VNNI) where the host has it, else the same arithmetic on widened lanes.
/// The micro-kernel (MR x NR: 12 or 8 rows by 2 vectors, the plan's) holds its sums in registers
/// through all of K, one broadcast word of A feeding NR / width dot products with B, as the float
/// GEMM's does through a K block. K is not blocked: the sums never leave the registers before
/// the last word, and the deepest panels (ResNet's 3x3x512: 1,152 words, 37 KB of A in panels
/// of 8 rows, 147 KB of B in panels of 32 columns) stream from L2. The loops take a B panel
/// and run every A panel over it, as Goto's GEMM does, so that the B panel just read is read
/// again, from L1 where it fits, while A's panels come as one contiguous stream: a
/// convolution's B, read in place from its shifted copies, lies in as many streams as K has
/// channel groups (benchmarks/RESULTS.md, "Measurements behind choices in the code").
/// A block's sums go through the stack once, to add the int32 bias, apply the epilogue in
/// whatever element types it has (a quantized model's requantization to uint8), and store the
/// result in its type.
extension IRBuilder {
    /// Where the block's results go and what is done to them first.
    struct Int8Output {
        /// C's elements (of `dtype`), the view's first at `offset`, rows `rowStride` apart.
        let c: MatrixView
        let dtype: DType
        let bias: GemmBias
        let epilogue: GemmEpilogue?
        /// The element types of the epilogue's extra operands.
        let extraTypes: [DType]
        /// A convolution's: its extras not laid out like C are one value per output channel,
        /// read at this offset plus the row (else one per column, read at the column).
        var channelOffset: LLVMValue? = nil
    }

    /// How the micro-kernel walks K: tap by tap (taps y by taps x), `wordsPerTap` words a tap.
    /// Packed operands on both sides are one tap of all of K's words.
    struct Int8Walk {
        let wordsPerTap, tapsY, tapsX: Int
    }

    /// Where the micro-kernel reads one operand. Row (of A) or column (of B) i starts at
    /// `i * indexStride` words from `base`; tap (ty, tx) `ty * tapStrideY + tx * tapStrideX`
    /// words further, and its word rows `wordStride` words apart. Packed panels of P rows or
    /// columns hold K's words in order, P a word row; a convolution's shifted copies
    /// (Lowering/Int8Plan.swift) are read in place, a tap's word rows a channel group's plane
    /// apart, an output pixel a word from the next.
    struct Int8Operand {
        let base: LLVMValue
        let indexStride, tapStrideY, tapStrideX, wordStride: Int

        /// Panels of `panel` rows or columns over `walk`'s words, packed in K's order.
        static func packed(_ base: LLVMValue, _ walk: Int8Walk, panel: Int) -> Int8Operand {
            let tapWords = walk.wordsPerTap * panel
            return Int8Operand(base: base, indexStride: walk.wordsPerTap * walk.tapsY * walk.tapsX, tapStrideY: walk.tapsX * tapWords, tapStrideX: tapWords,
                               wordStride: panel)
        }

        static func shiftedCopies(_ base: LLVMValue, _ copies: Int8Contraction.ShiftedCopies) -> Int8Operand {
            Int8Operand(base: base, indexStride: 1, tapStrideY: copies.tapStrideY, tapStrideX: copies.copyWords, wordStride: copies.planeWords)
        }
    }

    /// A (rows 0..<m, by panels of MR) times B (columns 0..<n, by panels of NR), walking K as
    /// `walk` says, into `output`'s view; with `transposed`, C's row i is the view's column and
    /// C's column j the view's row (a convolution computed with its output pixels as rows).
    func int8PanelProduct(_ blocking: GemmBlocking, m: LLVMValue, n: LLVMValue, walk: Int8Walk, a: Int8Operand, b: Int8Operand,
                          unsignedA: Bool, transposed: Bool = false, output: Int8Output) {
        let (mr, nr) = (blocking.rows, blocking.columns)
        let sums = arrayVariable(floats: mr * nr)
        let vectors = nr / vectorWidth
        let micro = int8MicroKernelFunction(blocking, unsignedA: unsignedA, vectors: vectors)
        // A last panel of at most one vector's columns (ResNet's 196 pixels: 6 panels of 32 and
        // 4) runs a kernel of one vector: the others would only multiply padding.
        let narrow = vectors > 1 ? int8MicroKernelFunction(blocking, unsignedA: unsignedA, vectors: 1) : micro
        let steps = [walk.wordsPerTap, walk.tapsY, walk.tapsX, a.tapStrideY, a.tapStrideX, a.wordStride, b.tapStrideY, b.tapStrideX, b.wordStride].map(int)
        loop(from: int(0), to: n, step: nr) { jr in
            let fewColumns = LLVMBuildICmp(builder, LLVMIntSLE, isub(n, jr), int(vectorWidth), "")!
            loop(from: int(0), to: m, step: mr) { ir in
                let arguments = [pointer(a.base, imul(ir, int(a.indexStride))), pointer(b.base, imul(jr, int(b.indexStride)))] + steps + [sums]
                ifElse(fewColumns, then: { call(narrow, arguments) }, else: { call(micro, arguments) })
                let (rows, columns) = (imin(int(mr), isub(m, ir)), imin(int(nr), isub(n, jr)))
                if transposed {
                    storeInt8BlockTransposed(blocking, sums: sums, row: ir, column: jr, rows: rows, columns: columns, output)
                } else {
                    storeInt8Block(blocking, sums: sums, row: ir, column: jr, rows: rows, columns: columns, output)
                }
            }
        }
    }

    /// The sums at the view's (i, j) (vectors of `lanes` along j), with the bias and through the
    /// epilogue, at the view's index `at`.
    private func int8Result(_ sum: LLVMValue, i: LLVMValue, j: LLVMValue, at: LLVMValue, lanes: Int, _ output: Int8Output) -> LLVMValue {
        var value = sum
        switch output.bias {
        case .none: break
        case let .perRow(base, offset): value = iadd(value, splat(load(base, iadd(offset, i), .int32), lanes: lanes))
        case let .perColumn(base, offset): value = iadd(value, load(base, iadd(offset, j), lanes: lanes, .int32))
        }
        guard let epilogue = output.epilogue else { return value }
        let extras = zip(epilogue.extras, output.extraTypes).map { extra, type in
            guard extra.perColumn else { return load(extra.base, at, lanes: lanes, type) }
            guard let channel = output.channelOffset else { return load(extra.base, j, lanes: lanes, type) }
            return splat(load(extra.base, iadd(channel, i), type), lanes: lanes)
        }
        return emit(epilogue.formula, [value] + extras, types: [.int32] + output.extraTypes, context: output.dtype, lanes: lanes)
    }

    /// Stores the block of sums at (row, column) of the output view: a block of whole panel
    /// columns by vectors, one cut by the last column a value at a time.
    private func storeInt8Block(_ blocking: GemmBlocking, sums: LLVMValue, row: LLVMValue, column: LLVMValue, rows: LLVMValue, columns: LLVMValue,
                                _ output: Int8Output) {
        let (nr, width) = (blocking.columns, vectorWidth)
        let c = output.c
        // A block cut only by the last rows (M not a multiple of MR) stores its rows by vectors too.
        ifElse(LLVMBuildICmp(builder, LLVMIntEQ, columns, int(nr), "")!, then: {
            loop(from: int(0), to: rows) { r in
                let i = iadd(row, r)
                for v in 0..<(nr / width) {
                    let j = iadd(column, int(v * width))
                    let at = iadd(iadd(c.offset, imul(i, int(c.rowStride))), j)
                    let sum = load(sums, iadd(imul(r, int(nr)), int(v * width)), lanes: width, .int32)
                    store(int8Result(sum, i: i, j: j, at: at, lanes: width, output), c.base, at, output.dtype)
                }
            }
        }, else: {
            loop(from: int(0), to: rows) { r in
                loop(from: int(0), to: columns) { jj in storeInt8Value(sums, iadd(imul(r, int(nr)), jj), i: iadd(row, r), j: iadd(column, jj), output) }
            }
        })
    }

    /// One sum (sums[index]) stored at the view's (i, j), with the bias and through the epilogue.
    private func storeInt8Value(_ sums: LLVMValue, _ index: LLVMValue, i: LLVMValue, j: LLVMValue, _ output: Int8Output) {
        let c = output.c
        let at = iadd(iadd(c.offset, imul(i, int(c.rowStride))), j)
        store(int8Result(load(sums, index, .int32), i: i, j: j, at: at, lanes: 1, output), c.base, at, output.dtype)
    }

    /// Stores the block of sums of the transposed product (sums[r][cc] is the view's (column +
    /// cc, row + r)): each of its columns a vector of MR lanes along a row of the view, gathered
    /// from the sums; a block cut by the last rows a value at a time.
    private func storeInt8BlockTransposed(_ blocking: GemmBlocking, sums: LLVMValue, row: LLVMValue, column: LLVMValue, rows: LLVMValue,
                                          columns: LLVMValue, _ output: Int8Output) {
        let (mr, nr) = (blocking.rows, blocking.columns)
        let c = output.c
        ifElse(LLVMBuildICmp(builder, LLVMIntEQ, rows, int(mr), "")!, then: {
            loop(from: int(0), to: columns) { cc in
                let channel = iadd(column, cc)
                let at = iadd(iadd(c.offset, imul(channel, int(c.rowStride))), row)
                var sum = LLVMGetUndef(integerType(32, lanes: mr))!
                for r in 0..<mr {
                    sum = LLVMBuildInsertElement(builder, sum, load(sums, iadd(int(r * nr), cc), .int32), LLVMConstInt(i32, UInt64(r), 0), "")!
                }
                store(int8Result(sum, i: channel, j: row, at: at, lanes: mr, output), c.base, at, output.dtype)
            }
        }, else: {
            loop(from: int(0), to: columns) { cc in
                loop(from: int(0), to: rows) { r in storeInt8Value(sums, iadd(imul(r, int(nr)), cc), i: iadd(column, cc), j: iadd(row, r), output) }
            }
        })
    }

    /// `void lathe_i8micro_MRxNR_(ua|ub)(i32* a, i32* b, i64 wordsPerTap, i64 tapsY, i64 tapsX,
    /// i64 aTapStrideY, i64 aTapStrideX, i64 aWordStride, i64 bTapStrideY, i64 bTapStrideX, i64
    /// bWordStride, i32* sums)`: sums[r * NR + j] = the sum over K's words of the 4 byte
    /// products of A's word of row r and B's of column j, each operand laid out as Int8Operand
    /// says (from a and b, its row or column 0). `ua`: A's bytes are the unsigned ones (a
    /// product's x, a convolution's input with its pixels as rows), `ub`: B's (a convolution's
    /// input). `vectors`: the vectors of columns it computes, NR / width or fewer (its sums'
    /// rows stay NR apart). One function a module, as the float micro-kernel.
    private func int8MicroKernelFunction(_ blocking: GemmBlocking, unsignedA: Bool, vectors: Int) -> LLVMValue {
        let (mr, nr, width) = (blocking.rows, blocking.columns, vectorWidth)
        let name = "lathe_i8micro_\(mr)x\(vectors * width)_\(unsignedA ? "ua" : "ub")\(hasInt8DotProduct ? "" : "_widened")"
        return sharedFunction(name, pointerCount: 2, integerCount: 9, trailingPointers: 1) { function in
            let (a, b) = (LLVMGetParam(function, 0)!, LLVMGetParam(function, 1)!)
            let p = (2..<11).map { LLVMGetParam(function, UInt32($0))! }
            let (wordsPerTap, tapsY, tapsX) = (p[0], p[1], p[2])
            let (aTapY, aTapX, aWord, bTapY, bTapX, bWord) = (p[3], p[4], p[5], p[6], p[7], p[8])
            let sums = LLVMGetParam(function, 11)!
            let type = integerType(32, lanes: width)
            let accumulators = (0..<mr * vectors).map { _ in variable(LLVMConstNull(type)) }
            /// The A word row at aRow against the B word row at bRow.
            func step(_ aRow: LLVMValue, _ bRow: LLVMValue) {
                let bValues = (0..<vectors).map { v in load(b, iadd(bRow, int(v * width)), lanes: width, .int32) }
                for r in 0..<mr {
                    let aWord = splat(load(a, iadd(aRow, int(r)), .int32), lanes: width)
                    for v in 0..<vectors {
                        let slot = accumulators[r * vectors + v]
                        let (unsigned, signed) = unsignedA ? (aWord, bValues[v]) : (bValues[v], aWord)
                        write(dotProduct(read(slot, type: type), unsigned: unsigned, signed: signed), slot)
                    }
                }
            }
            let unrolled = LLVMBuildAnd(builder, wordsPerTap, int(-2), "")!
            loop(from: int(0), to: tapsY) { ty in
                loop(from: int(0), to: tapsX) { tx in
                    let tapA = iadd(imul(ty, aTapY), imul(tx, aTapX)), tapB = iadd(imul(ty, bTapY), imul(tx, bTapX))
                    func word(_ w: LLVMValue) { step(iadd(tapA, imul(w, aWord)), iadd(tapB, imul(w, bWord))) }
                    loop(from: int(0), to: unrolled, step: 2) { w in
                        word(w)
                        word(iadd(w, int(1)))
                    }
                    loop(from: unrolled, to: wordsPerTap) { w in word(w) }
                }
            }
            for (i, slot) in accumulators.enumerated() { store(read(slot, type: type), sums, int(i / vectors * nr + i % vectors * width), .int32) }
        }
    }

    /// sum + the 4 products of each lane's bytes, `unsigned`'s as uint8 and `signed`'s as int8
    /// (vectors of i32 words).
    private func dotProduct(_ sum: LLVMValue, unsigned: LLVMValue, signed: LLVMValue) -> LLVMValue {
        let lanes = self.lanes(of: sum)
        if hasInt8DotProduct {
            let type = integerType(32, lanes: lanes)
            return callIntrinsic("llvm.x86.avx512.vpdpbusd.\(lanes * 32)", overloads: [], returning: type, [sum, unsigned, signed])
        }
        let bytes = integerType(8, lanes: 4 * lanes), wide = integerType(32, lanes: 4 * lanes)
        let u = LLVMBuildZExt(builder, LLVMBuildBitCast(builder, unsigned, bytes, ""), wide, "")!
        let s = LLVMBuildSExt(builder, LLVMBuildBitCast(builder, signed, bytes, ""), wide, "")!
        let products = imul(u, s)
        let quarters = (0..<4).map { q in shuffle(products, (0..<lanes).map { 4 * $0 + q }) }
        return iadd(sum, iadd(iadd(quarters[0], quarters[1]), iadd(quarters[2], quarters[3])))
    }

    /// Packs `columns` columns of a byte matrix (rows `depth` along K, `rowStride` bytes apart)
    /// into B panels at `packed`.
    func int8PackColumns(_ blocking: GemmBlocking, source: LLVMValue, into packed: LLVMValue, rowStride: LLVMValue, depth: Int, columns: LLVMValue) {
        call(int8PackColumnsFunction(panel: blocking.columns), [source, packed, rowStride, int(depth), columns])
    }

    /// Packs `rows` rows of a byte matrix ([rows][depth], rows `rowStride` bytes apart) into A
    /// panels at `packed`, the last one padded with zero rows.
    func int8PackRows(_ blocking: GemmBlocking, source: LLVMValue, into packed: LLVMValue, rowStride: LLVMValue, depth: Int, rows: LLVMValue) {
        call(int8PackRowsFunction(panel: blocking.rows), [source, packed, rowStride, int(depth), rows])
    }

    /// `void lathe_i8pack_columns_NR(i8* source, i32* packed, i64 rowStride, i64 depth, i64
    /// columns)`: word p of column jr + j of panel jr / NR (at packed[jr * words + p * NR + j])
    /// holds source rows 4p..4p+3 of that column, zero past the last row and column. A word row
    /// of a panel is 4 vector loads (masked in the last panel: nothing past the last column is
    /// read) interleaved by one shuffle; rows past the last are zero vectors.
    private func int8PackColumnsFunction(panel: Int) -> LLVMValue {
        sharedFunction("lathe_i8pack_columns_\(panel)", pointerCount: 2, integerCount: 3) { function in
            let (source, packed) = (LLVMGetParam(function, 0)!, LLVMGetParam(function, 1)!)
            let (rowStride, depth, columns) = (LLVMGetParam(function, 2)!, LLVMGetParam(function, 3)!, LLVMGetParam(function, 4)!)
            let words = LLVMBuildSDiv(builder, iadd(depth, int(3)), int(4), "")!
            let zero = LLVMConstNull(integerType(8, lanes: panel))!
            loop(from: int(0), to: columns, step: panel) { jr in
                let valid = isub(columns, jr)
                let target = imul(jr, words)
                func packWords(_ load: @escaping (LLVMValue) -> LLVMValue) {
                    loop(from: int(0), to: words) { p in
                        let rows = (0..<4).map { q -> LLVMValue in
                            let k = iadd(imul(p, int(4)), int(q))
                            let inside = LLVMBuildICmp(builder, LLVMIntSLT, k, depth, "")!
                            return select(inside, load(iadd(imul(select(inside, k, int(0)), rowStride), jr)), zero)
                        }
                        store(transpose(rows), packed, imul(iadd(target, imul(p, int(panel))), int(4)), .uint8)
                    }
                }
                ifElse(LLVMBuildICmp(builder, LLVMIntSGE, valid, int(panel), "")!, then: {
                    packWords { at in self.load(source, at, lanes: panel, .uint8) }
                }, else: {
                    packWords { at in self.firstBytes(source, at, lanes: panel, valid: valid) }
                })
            }
        }
    }

    /// `lanes` bytes at source[at...], the first `valid` of them read and the others zero.
    private func firstBytes(_ source: LLVMValue, _ at: LLVMValue, lanes: Int, valid: LLVMValue) -> LLVMValue {
        let type = integerType(8, lanes: lanes)
        let limit = splat(LLVMBuildTrunc(builder, valid, i32, "")!, lanes: lanes)
        let mask = LLVMBuildICmp(builder, LLVMIntSLT, integerVector(Array(0..<lanes), bits: 32), limit, "")!
        return maskedBytes(source, at: at, type, mask: mask, passthru: LLVMConstNull(type))
    }

    /// `void lathe_i8pack_rows_MR(i8* source, i32* packed, i64 rowStride, i64 depth, i64 rows)`:
    /// word p of row ir + r of panel ir / MR (at packed[ir * words + p * MR + r]) holds the row's
    /// bytes 4p..4p+3, zero past the last byte and row.
    private func int8PackRowsFunction(panel: Int) -> LLVMValue {
        sharedFunction("lathe_i8pack_rows_\(panel)", pointerCount: 2, integerCount: 3) { function in
            let (source, packed) = (LLVMGetParam(function, 0)!, LLVMGetParam(function, 1)!)
            let (rowStride, depth, rows) = (LLVMGetParam(function, 2)!, LLVMGetParam(function, 3)!, LLVMGetParam(function, 4)!)
            let words = LLVMBuildSDiv(builder, iadd(depth, int(3)), int(4), "")!
            let wholeWords = LLVMBuildSDiv(builder, depth, int(4), "")!
            let wordType = integerType(32, lanes: 1)
            loop(from: int(0), to: roundUpValue(rows, panel)) { row in
                let r = LLVMBuildSRem(builder, row, int(panel), "")!
                let panelStart = imul(isub(row, r), words)
                let inside = LLVMBuildICmp(builder, LLVMIntSLT, row, rows, "")!
                let rowSource = imul(select(inside, row, int(0)), rowStride)
                let wholeEnd = select(inside, wholeWords, int(0))
                loop(from: int(0), to: wholeEnd) { p in
                    let address = LLVMBuildPointerCast(builder, pointer(source, iadd(rowSource, imul(p, int(4))), .uint8), LLVMPointerType(wordType, 0), "")!
                    let word = LLVMBuildLoad2(builder, wordType, address, "")!
                    LLVMSetAlignment(word, 1)
                    store(word, packed, iadd(panelStart, iadd(imul(p, int(panel)), r)), .int32)
                }
                loop(from: wholeEnd, to: words) { p in
                    for q in 0..<4 {
                        let k = iadd(imul(p, int(4)), int(q))
                        let valid = LLVMBuildAnd(builder, inside, LLVMBuildICmp(builder, LLVMIntSLT, k, depth, ""), "")!
                        let byte = select(valid, load(source, select(valid, iadd(rowSource, k), int(0)), .uint8), LLVMConstInt(computeType(.uint8), 0, 0))
                        store(byte, packed, iadd(imul(iadd(panelStart, iadd(imul(p, int(panel)), r)), int(4)), int(q)), .uint8)
                    }
                }
            }
        }
    }

    /// x rounded up to a multiple of `to`, at run time.
    private func roundUpValue(_ x: LLVMValue, _ to: Int) -> LLVMValue {
        imul(LLVMBuildSDiv(builder, iadd(x, int(to - 1)), int(to), "")!, int(to))
    }
}
