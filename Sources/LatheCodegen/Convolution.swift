import CLLVM
import LatheIR

/// The sizes of a 2-D convolution, and how it maps onto a GEMM per image and group:
/// out[OCg, OH*OW] = W[OCg, ICg*KH*KW] x unfolded[ICg*KH*KW, OH*OW] (+ bias per row).
struct ConvGeometry {
    let batch, channels, height, width: Int
    let outChannels, kernelH, kernelW, outH, outW: Int
    let attributes: Conv2DAttributes

    init?(input x: [Int], weights w: [Int], output: [Int], _ attributes: Conv2DAttributes) {
        guard x.count == 4, w.count == 4, output.count == 4 else { return nil }
        (batch, channels, height, width) = (x[0], x[1], x[2], x[3])
        (outChannels, kernelH, kernelW) = (w[0], w[2], w[3])
        (outH, outW) = (output[2], output[3])
        self.attributes = attributes
    }

    var groups: Int { attributes.groups }
    var groupChannels: Int { channels / groups }
    var groupOutChannels: Int { outChannels / groups }
    var unfoldedRows: Int { groupChannels * kernelH * kernelW }
    var outputPlane: Int { outH * outW }
    var inputPlane: Int { height * width }
    /// A 1x1, stride-1, unpadded convolution reads its input as the GEMM's B directly.
    var needsUnfold: Bool {
        !(kernelH == 1 && kernelW == 1 && attributes.strides == [1, 1] && attributes.pads.allSatisfy { $0 == 0 })
    }
    var hasPadding: Bool { attributes.pads.contains { $0 > 0 } }

    /// Output rows unfolded at a time. One tile of the unfolded input (K x rows*outW floats)
    /// stays near `IRBuilder.unfoldTileBytes`, so the GEMM reads it from cache and the arena
    /// never holds a whole image's unfold (7 MB for ResNet-50's first convolution, twice the
    /// activations around it); but a tile spans at least 64 columns, so the GEMM keeps its
    /// full register blocks when K is large and the image small. The tiles are of equal height:
    /// 28 rows in tiles of at most 9 are four of 7, not 9, 9, 9 and 1, which two threads would
    /// share as 18 and 10 (and 14 rows two of 7, not 9 and 5).
    var tileRows: Int { tileRows(elementBytes: 4) }

    /// `tileRows` for an unfolded tile of elements of `elementBytes` bytes.
    func tileRows(elementBytes: Int) -> Int {
        let rowBytes = unfoldedRows * outW * elementBytes
        let fewest = (64 + outW - 1) / max(outW, 1)
        let rows = min(outH, max(1, IRBuilder.unfoldTileBytes / max(rowBytes, 1), fewest))
        let tiles = (outH + rows - 1) / rows
        let equal = (outH + tiles - 1) / tiles
        return equal >= min(fewest, rows) ? equal : rows
    }
    /// Tiles of output rows per image and group (one when the input is read in place).
    var tileCount: Int { needsUnfold ? (outH + tileRows - 1) / tileRows : 1 }
    /// Independent pieces of work: images x groups x tiles.
    var units: Int { batch * groups * tileCount }

    /// The floats of one unfolded tile.
    var unfoldFloats: Int { needsUnfold ? unfoldedRows * tileRows * outW : 0 }
    /// The floats of working memory a thread of the GEMM path needs: one unfolded tile, then the
    /// GEMM's packing buffers.
    func gemmScratchFloats(prepackedWeights: Bool) -> Int {
        unfoldFloats + GemmBlocking.packingFloats(m: groupOutChannels, n: gemmColumns, k: unfoldedRows, packsA: !prepackedWeights)
    }
    /// Columns of the GEMM of one (whole) tile.
    var gemmColumns: Int { needsUnfold ? tileRows * outW : outputPlane }

    /// Whether the packed GEMM runs it, and so can read weights packed at compile time.
    func packs(vectorWidth: Int) -> Bool { GemmBlocking(vectorWidth: vectorWidth).packs(m: groupOutChannels, n: gemmColumns, k: unfoldedRows) }

    /// The output positions o in 0..<count whose input index o*stride - pad + tap is in 0..<size.
    static func validRange(count: Int, size: Int, stride: Int, pad: Int, tap: Int) -> Range<Int> {
        func ceilDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? (a + b - 1) / b : -((-a) / b) }
        let lo = max(0, ceilDiv(pad - tap, stride))
        let hiInclusive = size - 1 + pad - tap
        let hi = hiInclusive < 0 ? 0 : min(count, hiInclusive / stride + 1)
        return lo..<max(lo, hi)
    }
}

extension IRBuilder {
    /// The image, group and tile of a convolution's unit u (units run images x groups x tiles,
    /// tiles innermost).
    func convolutionUnit(_ u: LLVMValue, tiles: Int, groups: Int) -> (image: LLVMValue, group: LLVMValue, tile: LLVMValue) {
        let imageGroup = LLVMBuildUDiv(builder, u, int(tiles), "")!
        return (LLVMBuildUDiv(builder, imageGroup, int(groups), "")!, LLVMBuildURem(builder, imageGroup, int(groups), "")!,
                LLVMBuildURem(builder, u, int(tiles), "")!)
    }

    /// About half the L2 cache of current x86 cores.
    static let unfoldTileBytes = 256 * 1024

    /// conv2d = (unfold, GEMM) for each image, group and tile of output rows: a unit each. A
    /// thread takes a run of units, or (`.rows`) a chunk of output channels of every unit; each
    /// thread has its own scratch. When the GEMM packs, one copy of the code serves every tile
    /// and chunk size (they are run-time values); the small unpacked ones are specialized.
    func convolution(_ plan: ConvolutionGemm, output: LLVMValue, input: LLVMValue, weights: LLVMValue, bias: LLVMValue?, scratch: LLVMValue?, threadScratchFloats: Int,
                     epilogue: GemmEpilogue? = nil, split: ThreadSplit = .single, thread: LLVMValue? = nil, threads: Int = 1,
                     prepackedWeights: Bool = false) {
        let g = plan.geometry
        let thread = thread ?? int(0)
        let myScratch = scratch.map { pointer($0, imul(thread, int(threadScratchFloats))) }
        let packing = myScratch.map { pointer($0, int(g.unfoldFloats)) }
        let rows = g.tileRows
        let fullTiles = plan.unfolds ? g.outH / rows : 1
        let blocking = GemmBlocking(vectorWidth: vectorWidth)
        let packs = plan.packs

        /// Output channels [channel, channel + count) of the group, output rows of the tile.
        func product(image: LLVMValue, group: LLVMValue, tile: LLVMValue, channel: LLVMValue, count: LLVMValue, fixedCount: Int?,
                     columns share: (start: LLVMValue, count: LLVMValue)? = nil) {
            let imageChannel = iadd(imul(image, int(g.channels)), imul(group, int(g.groupChannels)))
            let channelInput = pointer(input, imul(imageChannel, int(g.inputPlane)))
            let firstChannel = iadd(imul(group, int(g.groupOutChannels)), channel)
            let outputOffset = imul(iadd(imul(image, int(g.outChannels)), firstChannel), int(g.outputPlane))
            // Prepacked weights: each group's output channels padded to whole panels of MR.
            let weightRow = prepackedWeights ? iadd(imul(group, int(roundUp(g.groupOutChannels, blocking.rows))), channel) : firstChannel
            let weightsView = MatrixView(base: weights, offset: imul(weightRow, int(g.unfoldedRows)), rowStride: g.unfoldedRows)
            let rowBias = bias.map { GemmBias.perRow($0, offset: firstChannel) } ?? .none
            func multiply(b: MatrixView, c: MatrixView, columns: LLVMValue, fixedColumns: Int?) {
                if packs, let packing {
                    packedGemm(blocking, m: count, n: columns, maxM: g.groupOutChannels, k: g.unfoldedRows, a: weightsView, b: b, c: c,
                               bias: rowBias, epilogue: epilogue, packing: packing, prepackedA: prepackedWeights,
                               bInPlace: plan.readsInputInPlace)
                } else {
                    gemm(m: fixedCount ?? g.groupOutChannels, n: fixedColumns ?? g.outputPlane, k: g.unfoldedRows, a: weightsView, b: b, c: c,
                         bias: rowBias, epilogue: epilogue)
                }
            }
            guard let myScratch, plan.unfolds else {
                let (first, columns) = share ?? (int(0), int(g.outputPlane))
                multiply(b: MatrixView(base: channelInput, offset: first, rowStride: g.outputPlane),
                         c: MatrixView(base: output, offset: iadd(outputOffset, first), rowStride: g.outputPlane), columns: columns,
                         fixedColumns: share == nil ? g.outputPlane : nil)
                return
            }
            func tileProduct(rowsHere: LLVMValue, fixedRows: Int?) {
                let firstRow = imul(tile, int(rows))
                let columns = imul(rowsHere, int(g.outW))
                unfold(g, input: channelInput, into: myScratch, firstRow: firstRow, rows: rowsHere)
                let c = MatrixView(base: output, offset: iadd(outputOffset, imul(firstRow, int(g.outW))), rowStride: g.outputPlane)
                if packs {
                    // The unfolded tile's row stride is its width, known at run time: pack it as
                    // a matrix of one-column rows read with that stride.
                    multiply(b: MatrixView(base: myScratch, offset: int(0), rowStride: 0, columnStride: 1, runtimeRowStride: columns),
                             c: c, columns: columns, fixedColumns: nil)
                } else {
                    let fixed = fixedRows! * g.outW
                    multiply(b: MatrixView(base: myScratch, offset: int(0), rowStride: fixed), c: c, columns: columns, fixedColumns: fixed)
                }
            }
            let lastRows = g.outH - fullTiles * rows
            if lastRows == 0 {
                tileProduct(rowsHere: int(rows), fixedRows: rows)
            } else if packs {
                tileProduct(rowsHere: select(LLVMBuildICmp(builder, LLVMIntSLT, tile, int(fullTiles), "")!, int(rows), int(lastRows)), fixedRows: nil)
            } else {
                ifElse(LLVMBuildICmp(builder, LLVMIntSLT, tile, int(fullTiles), "")!, then: { tileProduct(rowsHere: int(rows), fixedRows: rows) },
                       else: { tileProduct(rowsHere: int(lastRows), fixedRows: lastRows) })
            }
        }
        func unit(_ u: LLVMValue, channel: LLVMValue, count: LLVMValue, fixedCount: Int?, columns: (LLVMValue, LLVMValue)? = nil) {
            let (image, group, tile) = convolutionUnit(u, tiles: g.tileCount, groups: g.groups)
            product(image: image, group: group, tile: tile, channel: channel, count: count, fixedCount: fixedCount, columns: columns)
        }
        switch split {
        case let .rows(total, chunk):
            if packs {
                forThreadShare(total: total, chunk: chunk, thread: thread, outer: g.units) { u, start, count in
                    unit(u, channel: start, count: count, fixedCount: nil)
                }
            } else {
                forThreadChunk(total: total, chunk: chunk, thread: thread, outer: g.units) { u, start, count in
                    unit(u, channel: start, count: int(count), fixedCount: count)
                }
            }
        case .units:
            forEachUnit(count: g.units, thread: thread, threads: threads) { u in
                unit(u, channel: int(0), count: int(g.groupOutChannels), fixedCount: g.groupOutChannels)
            }
        case let .columns(total, chunk) where packs && !plan.unfolds:
            // A 1x1 convolution's output positions: each thread packs only its own columns of B.
            forThreadShare(total: total, chunk: chunk, thread: thread, outer: g.units) { u, start, count in
                unit(u, channel: int(0), count: int(g.groupOutChannels), fixedCount: g.groupOutChannels, columns: (start, count))
            }
        case .single, .columns:
            // Columns are split only where the GEMM packs a 1x1 convolution's input (Threading.swift).
            onThreadZero(thread) {
                loop(from: int(0), to: int(g.units)) { u in unit(u, channel: int(0), count: int(g.groupOutChannels), fixedCount: g.groupOutChannels) }
            }
        }
    }
}
