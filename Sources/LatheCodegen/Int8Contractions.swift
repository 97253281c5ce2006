import CLLVM
import LatheIR

/// Quantized convolutions and matrix products on the integer GEMM (Int8Gemm.swift), as their
/// plan (Lowering/Int8Plan.swift) lays them out: a thread's share of the work, its operands
/// packed into its part of the scratch, the results stored through the epilogue.
extension IRBuilder {
    /// A kernel's parts of the scratch: the unfolded tile, the packed B panels, the packed A panels.
    private func int8Scratch(_ form: Int8Contraction.Form, scratch: LLVMValue?, threadScratchFloats: Int, thread: LLVMValue, packsA: Bool,
                             packsB: Bool) throws -> (unfold: LLVMValue, packedB: LLVMValue, packedA: LLVMValue) {
        guard let scratch else { throw LatheError.backend("a quantized contraction without scratch") }
        let mine = pointer(scratch, imul(thread, int(threadScratchFloats)))
        let bytes = Int8Contraction.scratchBytes(form, packsA: packsA, packsB: packsB)
        let packedB = pointer(mine, int(bytes.unfold / 4))
        return (mine, packedB, pointer(packedB, int(bytes.packedB / 4)))
    }

    /// conv2d of uint8 x and int8 weights: a GEMM (weights x the tile's input, shifted copies or
    /// unfolded and packed, as `form` says; with its pixels as rows, the tile's copies x the
    /// weights) per image, group and tile of output rows, or this thread's chunk of output
    /// channels of each.
    func int8Convolution(_ g: ConvGeometry, tileRows: Int, reading form: Int8Contraction.ConvolutionInput, registerRows: Int, output: LLVMValue,
                         resultType: DType, input: LLVMValue, weights: LLVMValue, bias: LLVMValue?, epilogue: GemmEpilogue?, extraTypes: [DType],
                         scratch: LLVMValue?, plan: KernelPlan, thread: LLVMValue) throws {
        let prepacked = plan.weightLayout.isPacked
        let parts = try int8Scratch(.convolution(g, tileRows: tileRows, input: form), scratch: scratch, threadScratchFloats: plan.scratchFloatsPerThread,
                                    thread: thread, packsA: !prepacked, packsB: true)
        let blocking = GemmBlocking(vectorWidth: vectorWidth, rows: registerRows)
        let copies = Int8Contraction.ShiftedCopies(g, tileRows: tileRows)
        if form.readsCopies && !prepacked { throw LatheError.backend("conv2d \(g.window): shifted copies need weights packed at compile time") }
        let k = g.unfoldedRows
        let walk = form.readsCopies ? Int8Walk(wordsPerTap: copies.channelWords, tapsY: g.kernelH, tapsX: g.kernelW)
            : Int8Walk(wordsPerTap: Int8Contraction.words(k), tapsY: 1, tapsX: 1)
        let words = walk.wordsPerTap * walk.tapsY * walk.tapsX
        let tiles = Int8Contraction.tiles(g, tileRows: tileRows)
        let lastRows = g.outH - (tiles - 1) * tileRows
        // Each group's output channels padded to whole panels: of MR rows, or with pixels as
        // rows, of NR columns.
        let channelPanel = form == .pixelRows ? blocking.columns : blocking.rows

        /// Output channels [channel, channel + count) of the group (count at most its channels,
        /// channel a multiple of the panel), output rows of the tile.
        func product(image: LLVMValue, group: LLVMValue, tile: LLVMValue, channel: LLVMValue, count: LLVMValue) {
            let channelInput = pointer(input, imul(iadd(imul(image, int(g.channels)), imul(group, int(g.groupChannels))), int(g.inputPlane)), .uint8)
            let firstChannel = iadd(imul(group, int(g.groupOutChannels)), channel)
            let columns: LLVMValue, firstColumn: LLVMValue
            let tileInput: Int8Operand
            if g.needsUnfold {
                let rows = select(LLVMBuildICmp(builder, LLVMIntSLT, tile, int(tiles - 1), "")!, int(tileRows), int(lastRows))
                let firstRow = imul(tile, int(tileRows))
                (columns, firstColumn) = (imul(rows, int(g.outW)), imul(firstRow, int(g.outW)))
                if form.readsCopies {
                    int8ShiftedCopies(copies, input: channelInput, into: parts.unfold, firstRow: firstRow, rows: rows)
                    tileInput = .shiftedCopies(parts.unfold, copies)
                } else {
                    unfold(g, input: channelInput, into: parts.unfold, firstRow: firstRow, rows: rows, dtype: .uint8)
                    int8PackColumns(blocking, source: parts.unfold, into: parts.packedB, rowStride: columns, depth: k, columns: columns)
                    tileInput = .packed(parts.packedB, walk, panel: blocking.columns)
                }
            } else {
                (columns, firstColumn) = (int(g.outputPlane), int(0))
                int8PackColumns(blocking, source: channelInput, into: parts.packedB, rowStride: int(g.inputPlane), depth: k, columns: columns)
                tileInput = .packed(parts.packedB, walk, panel: blocking.columns)
            }
            let c = MatrixView(base: output, offset: iadd(imul(iadd(imul(image, int(g.outChannels)), firstChannel), int(g.outputPlane)), firstColumn),
                               rowStride: g.outputPlane)
            let out = Int8Output(c: c, dtype: resultType, bias: bias.map { .perRow($0, offset: firstChannel) } ?? .none, epilogue: epilogue,
                                 extraTypes: extraTypes, channelOffset: firstChannel)
            if prepacked {
                let panels = Int8Operand.packed(pointer(weights, imul(iadd(imul(group, int(roundUp(g.groupOutChannels, channelPanel))), channel), int(words))),
                                                walk, panel: channelPanel)
                if form == .pixelRows {
                    int8PanelProduct(blocking, m: columns, n: count, walk: walk, a: tileInput, b: panels, unsignedA: true, transposed: true, output: out)
                } else {
                    int8PanelProduct(blocking, m: count, n: columns, walk: walk, a: panels, b: tileInput, unsignedA: false, output: out)
                }
            } else {
                // Weights that are not constant: one panel of MR rows packed at a time.
                loop(from: int(0), to: count, step: blocking.rows) { ir in
                    let rows = imin(int(blocking.rows), isub(count, ir))
                    let source = pointer(weights, imul(iadd(firstChannel, ir), int(k)), .int8)
                    int8PackRows(blocking, source: source, into: parts.packedA, rowStride: int(k), depth: k, rows: rows)
                    let panelOut = Int8Output(c: MatrixView(base: c.base, offset: iadd(c.offset, imul(ir, int(g.outputPlane))), rowStride: g.outputPlane),
                                              dtype: resultType, bias: bias.map { .perRow($0, offset: iadd(firstChannel, ir)) } ?? .none,
                                              epilogue: epilogue, extraTypes: extraTypes, channelOffset: iadd(firstChannel, ir))
                    int8PanelProduct(blocking, m: rows, n: columns, walk: walk, a: .packed(parts.packedA, walk, panel: blocking.rows), b: tileInput,
                                     unsignedA: false, output: panelOut)
                }
            }
        }
        func unit(_ u: LLVMValue, channel: LLVMValue, count: LLVMValue) {
            let (image, group, tile) = convolutionUnit(u, tiles: tiles, groups: g.groups)
            product(image: image, group: group, tile: tile, channel: channel, count: count)
        }
        let units = g.batch * g.groups * tiles
        switch plan.split {
        case .units:
            forEachUnit(count: units, thread: thread, threads: plan.threads) { u in unit(u, channel: int(0), count: int(g.groupOutChannels)) }
        case let .rows(total, chunk):
            forThreadShare(total: total, chunk: chunk, thread: thread, outer: units) { u, start, count in unit(u, channel: start, count: count) }
        case .single, .columns:
            onThreadZero(thread) { loop(from: int(0), to: int(units)) { u in unit(u, channel: int(0), count: int(g.groupOutChannels)) } }
        }
    }

    /// dense or matmul of uint8 x and int8 weights: this thread's products, or its chunk of rows
    /// or columns of each, a block of NC columns and MC rows at a time.
    func int8Product(m: Int, n: Int, k: Int, batch: Int, registerRows: Int, output: LLVMValue, resultType: DType, x: LLVMValue, w: LLVMValue, shapes: [[Int]],
                     bias: LLVMValue?, epilogue: GemmEpilogue?, extraTypes: [DType], scratch: LLVMValue?, plan: KernelPlan, thread: LLVMValue) throws {
        let form = Int8Contraction.Form.product(m: m, n: n, k: k, batch: batch)
        let prepacked = plan.weightLayout.isPacked
        let parts = try int8Scratch(form, scratch: scratch, threadScratchFloats: plan.scratchFloatsPerThread, thread: thread, packsA: true, packsB: !prepacked)
        let blocking = GemmBlocking(vectorWidth: vectorWidth, rows: registerRows)
        let words = Int8Contraction.words(k)
        let walk = Int8Walk(wordsPerTap: words, tapsY: 1, tapsX: 1)
        let offsets = matmulBatchOffsets(shapes[0], shapes[1])

        /// Rows [rowStart, rowStart + rows) and columns [columnStart, columnStart + columns) of
        /// product o; columnStart a multiple of NR.
        func block(_ o: LLVMValue, rowStart: LLVMValue, rows: LLVMValue, columnStart: LLVMValue, columns: LLVMValue) {
            let (cOffset, xOffset, wOffset) = offsets(o)
            loop(from: int(0), to: columns, step: Int8Contraction.columnBlock) { jc in
                let column = iadd(columnStart, jc)
                let blockColumns = imin(int(Int8Contraction.columnBlock), isub(columns, jc))
                let bPanels: LLVMValue
                if prepacked {
                    bPanels = pointer(w, imul(column, int(words)))
                } else {
                    int8PackColumns(blocking, source: pointer(w, iadd(wOffset, column), .int8), into: parts.packedB, rowStride: int(n), depth: k, columns: blockColumns)
                    bPanels = parts.packedB
                }
                loop(from: int(0), to: rows, step: Int8Contraction.rowBlock) { ic in
                    let row = iadd(rowStart, ic)
                    let blockRows = imin(int(Int8Contraction.rowBlock), isub(rows, ic))
                    int8PackRows(blocking, source: pointer(x, iadd(xOffset, imul(row, int(k))), .uint8), into: parts.packedA, rowStride: int(k), depth: k, rows: blockRows)
                    let c = MatrixView(base: output, offset: iadd(cOffset, iadd(imul(row, int(n)), column)), rowStride: n)
                    // Per-column operands are read at the block's columns; the others at C's index.
                    let shifted = epilogue.map { e in
                        GemmEpilogue(formula: e.formula, extras: zip(e.extras, extraTypes).map { extra, type in
                            (extra.perColumn ? pointer(extra.base, column, type) : extra.base, extra.perColumn)
                        })
                    }
                    let out = Int8Output(c: c, dtype: resultType, bias: bias.map { .perColumn($0, offset: column) } ?? .none, epilogue: shifted,
                                         extraTypes: extraTypes)
                    int8PanelProduct(blocking, m: blockRows, n: blockColumns, walk: walk, a: .packed(parts.packedA, walk, panel: blocking.rows),
                                     b: .packed(bPanels, walk, panel: blocking.columns), unsignedA: true, output: out)
                }
            }
        }
        switch plan.split {
        case .units:
            forEachUnit(count: batch, thread: thread, threads: plan.threads) { o in block(o, rowStart: int(0), rows: int(m), columnStart: int(0), columns: int(n)) }
        case let .rows(total, chunk):
            forThreadShare(total: total, chunk: chunk, thread: thread, outer: batch) { o, start, count in
                block(o, rowStart: start, rows: count, columnStart: int(0), columns: int(n))
            }
        case let .columns(total, chunk):
            forThreadShare(total: total, chunk: chunk, thread: thread, outer: batch) { o, start, count in
                block(o, rowStart: int(0), rows: int(m), columnStart: start, columns: count)
            }
        case .single:
            onThreadZero(thread) {
                loop(from: int(0), to: int(batch)) { o in block(o, rowStart: int(0), rows: int(m), columnStart: int(0), columns: int(n)) }
            }
        }
    }
}
