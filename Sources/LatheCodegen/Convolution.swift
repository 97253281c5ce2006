import CLLVM
import LatheIR

/// The sizes of a 2-D convolution, and how it maps onto a GEMM per image and group:
/// out[OCg, OH*OW] = W[OCg, ICg*KH*KW] x unfolded[ICg*KH*KW, OH*OW] (+ bias per row).
struct ConvGeometry {
    let batch, channels, height, width: Int
    let outChannels, kernelH, kernelW, outH, outW: Int
    let attributes: Conv2DAttributes

    init?(_ node: Node, _ graph: Graph, _ attributes: Conv2DAttributes) {
        let x = graph[node.operands[0]].type.shape, w = graph[node.operands[1]].type.shape
        self.init(input: x, weights: w, output: node.type.shape, attributes)
    }

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
    /// full register blocks when K is large and the image small.
    var tileRows: Int {
        let rowBytes = unfoldedRows * outW * 4
        let rows = max(IRBuilder.unfoldTileBytes / max(rowBytes, 1), (64 + outW - 1) / max(outW, 1))
        return min(outH, max(1, rows))
    }
    /// The floats of working memory the convolution needs: one unfolded tile.
    var scratchFloats: Int { needsUnfold ? unfoldedRows * tileRows * outW : 0 }

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
    /// About half the L2 cache of current x86 cores.
    static let unfoldTileBytes = 256 * 1024

    /// conv2d = (unfold, GEMM) for each image, group and tile of output rows.
    func convolution(_ g: ConvGeometry, output: LLVMValue, input: LLVMValue, weights: LLVMValue, bias: LLVMValue?, scratch: LLVMValue?,
                     epilogue: GemmEpilogue? = nil) {
        loop(0, g.batch, unroll: false) { image in
            loop(0, g.groups, unroll: false) { group in
                let imageChannel = iadd(imul(image, int(g.channels)), imul(group, int(g.groupChannels)))
                let channelInput = pointer(input, imul(imageChannel, int(g.inputPlane)))
                let outChannel = iadd(imul(image, int(g.outChannels)), imul(group, int(g.groupOutChannels)))
                let outputOffset = imul(outChannel, int(g.outputPlane))
                let weightsView = MatrixView(base: weights, offset: imul(group, int(g.groupOutChannels * g.unfoldedRows)), rowStride: g.unfoldedRows)
                let rowBias = bias.map { GemmBias.perRow($0, offset: imul(group, int(g.groupOutChannels))) } ?? .none
                guard let scratch, g.needsUnfold else {
                    gemm(m: g.groupOutChannels, n: g.outputPlane, k: g.unfoldedRows, a: weightsView,
                         b: MatrixView(base: channelInput, offset: int(0), rowStride: g.outputPlane),
                         c: MatrixView(base: output, offset: outputOffset, rowStride: g.outputPlane), bias: rowBias, epilogue: epilogue)
                    return
                }
                func tile(firstRow: LLVMValue, rows: Int) {
                    let columns = rows * g.outW
                    unfold(g, input: channelInput, into: scratch, firstRow: firstRow, rows: rows)
                    gemm(m: g.groupOutChannels, n: columns, k: g.unfoldedRows, a: weightsView,
                         b: MatrixView(base: scratch, offset: int(0), rowStride: columns),
                         c: MatrixView(base: output, offset: iadd(outputOffset, imul(firstRow, int(g.outW))), rowStride: g.outputPlane),
                         bias: rowBias, epilogue: epilogue)
                }
                let rows = g.tileRows
                let fullTiles = g.outH / rows * rows
                loop(0, fullTiles, step: rows, unroll: false) { tile(firstRow: $0, rows: rows) }
                if fullTiles < g.outH { tile(firstRow: int(fullTiles), rows: g.outH - fullTiles) }
            }
        }
    }

    /// im2col of output rows firstRow..<firstRow+rows: row (c, ky, kx) of the scratch holds
    /// input[c, oy*sh - pt + ky*dh, ox*sw - pl + kx*dw] for each output (oy, ox) of the tile,
    /// zero where that falls in the padding. The in-bounds columns of each tap are known at
    /// compile time and its in-bounds rows are clamped once per tile, so the copy loops carry no
    /// bounds checks.
    private func unfold(_ g: ConvGeometry, input: LLVMValue, into scratch: LLVMValue, firstRow: LLVMValue, rows: Int) {
        let a = g.attributes
        let columns = rows * g.outW
        if g.hasPadding {
            elementwise(shape: [g.unfoldedRows * columns], output: StridedView(base: scratch, strides: [1]), inputs: []) { _, lanes in
                float(0, lanes: lanes)
            }
        }
        let endRow = iadd(firstRow, int(rows))
        loop(0, g.groupChannels, unroll: false) { c in
            let channelInput = pointer(input, imul(c, int(g.inputPlane)))
            for ky in 0..<g.kernelH {
                let rowsY = ConvGeometry.validRange(count: g.outH, size: g.height, stride: a.strides[0], pad: a.pads[0], tap: ky * a.dilations[0])
                for kx in 0..<g.kernelW {
                    let rowsX = ConvGeometry.validRange(count: g.outW, size: g.width, stride: a.strides[1], pad: a.pads[1], tap: kx * a.dilations[1])
                    guard !rowsY.isEmpty, !rowsX.isEmpty else { continue }
                    let row = iadd(imul(c, int(g.kernelH * g.kernelW)), int(ky * g.kernelW + kx))
                    let rowBase = pointer(scratch, imul(row, int(columns)))
                    let ix = rowsX.lowerBound * a.strides[1] - a.pads[1] + kx * a.dilations[1]
                    let iy0 = -a.pads[0] + ky * a.dilations[0]
                    loop(from: imax(firstRow, int(rowsY.lowerBound)), to: imin(endRow, int(rowsY.upperBound))) { oy in
                        let source = pointer(channelInput, iadd(imul(oy, int(a.strides[0] * g.width)), int(iy0 * g.width + ix)))
                        let target = pointer(rowBase, iadd(imul(isub(oy, firstRow), int(g.outW)), int(rowsX.lowerBound)))
                        elementwise(shape: [rowsX.count], output: StridedView(base: target, strides: [1]),
                                    inputs: [StridedView(base: source, strides: [a.strides[1]])]) { v, _ in v[0] }
                    }
                }
            }
        }
    }
}
