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
    /// conv2d = (unfold, GEMM) for each image and group.
    func convolution(_ g: ConvGeometry, output: LLVMValue, input: LLVMValue, weights: LLVMValue, bias: LLVMValue?, scratch: LLVMValue?,
                     epilogue: GemmEpilogue? = nil) {
        loop(0, g.batch, unroll: false) { image in
            loop(0, g.groups, unroll: false) { group in
                let imageChannel = iadd(imul(image, int(g.channels)), imul(group, int(g.groupChannels)))
                let inputOffset = imul(imageChannel, int(g.inputPlane))
                let b: MatrixView
                if let scratch, g.needsUnfold {
                    unfold(g, input: pointer(input, inputOffset), into: scratch)
                    b = MatrixView(base: scratch, offset: int(0), rowStride: g.outputPlane)
                } else {
                    b = MatrixView(base: input, offset: inputOffset, rowStride: g.outputPlane)
                }
                let outChannel = iadd(imul(image, int(g.outChannels)), imul(group, int(g.groupOutChannels)))
                let biasOffset = imul(group, int(g.groupOutChannels))
                gemm(m: g.groupOutChannels, n: g.outputPlane, k: g.unfoldedRows,
                     a: MatrixView(base: weights, offset: imul(group, int(g.groupOutChannels * g.unfoldedRows)), rowStride: g.unfoldedRows),
                     b: b,
                     c: MatrixView(base: output, offset: imul(outChannel, int(g.outputPlane)), rowStride: g.outputPlane),
                     bias: bias.map { .perRow($0, offset: biasOffset) } ?? .none, epilogue: epilogue)
            }
        }
    }

    /// im2col: row (c, ky, kx) of the scratch holds input[c, oy*sh - pt + ky*dh, ox*sw - pl + kx*dw]
    /// for every output (oy, ox), zero where that falls in the padding. The in-bounds rectangle of
    /// each tap is known at compile time, so the copy loops carry no bounds checks.
    private func unfold(_ g: ConvGeometry, input: LLVMValue, into scratch: LLVMValue) {
        let a = g.attributes
        if g.hasPadding {
            elementwise(shape: [g.unfoldedRows * g.outputPlane], output: StridedView(base: scratch, strides: [1]), inputs: []) { _, lanes in
                float(0, lanes: lanes)
            }
        }
        loop(0, g.groupChannels, unroll: false) { c in
            let channelInput = pointer(input, imul(c, int(g.inputPlane)))
            for ky in 0..<g.kernelH {
                let rowsY = ConvGeometry.validRange(count: g.outH, size: g.height, stride: a.strides[0], pad: a.pads[0], tap: ky * a.dilations[0])
                for kx in 0..<g.kernelW {
                    let rowsX = ConvGeometry.validRange(count: g.outW, size: g.width, stride: a.strides[1], pad: a.pads[1], tap: kx * a.dilations[1])
                    guard !rowsY.isEmpty, !rowsX.isEmpty else { continue }
                    let row = iadd(imul(c, int(g.kernelH * g.kernelW)), int(ky * g.kernelW + kx))
                    let rowBase = pointer(scratch, imul(row, int(g.outputPlane)))
                    let iy = rowsY.lowerBound * a.strides[0] - a.pads[0] + ky * a.dilations[0]
                    let ix = rowsX.lowerBound * a.strides[1] - a.pads[1] + kx * a.dilations[1]
                    elementwise(shape: [rowsY.count, rowsX.count],
                                output: StridedView(base: rowBase, offset: rowsY.lowerBound * g.outW + rowsX.lowerBound, strides: [g.outW, 1]),
                                inputs: [StridedView(base: channelInput, offset: iy * g.width + ix, strides: [a.strides[0] * g.width, a.strides[1]])]) { v, _ in v[0] }
                }
            }
        }
    }
}
