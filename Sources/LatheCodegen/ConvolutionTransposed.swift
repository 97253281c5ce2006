import CLLVM
import LatheIR

/// The sizes of a transposed convolution, and how it maps onto a GEMM per image and group:
/// columns[OCg*KH*KW, H*W] = W_g^T x input_g[Cg, H*W], then each column scatters into the
/// output (col2im): the transpose of the convolution's unfold-and-multiply.
struct ConvTransposeGeometry {
    let batch, channels, height, width: Int
    let outChannels, kernelH, kernelW, outH, outW: Int
    let attributes: ConvTranspose2DAttributes

    init?(input x: [Int], weights w: [Int], output: [Int], _ attributes: ConvTranspose2DAttributes) {
        guard x.count == 4, w.count == 4, output.count == 4 else { return nil }
        (batch, channels, height, width) = (x[0], x[1], x[2], x[3])
        (kernelH, kernelW) = (w[2], w[3])
        (outChannels, outH, outW) = (output[1], output[2], output[3])
        self.attributes = attributes
    }

    var groups: Int { attributes.groups }
    var groupChannels: Int { channels / groups }
    var groupOutChannels: Int { outChannels / groups }
    var columnRows: Int { groupOutChannels * kernelH * kernelW }
    var inputPlane: Int { height * width }
    var outputPlane: Int { outH * outW }
    /// Per thread: one unit's columns, then the GEMM's packing buffers.
    var scratchFloats: Int { columnRows * inputPlane + GemmBlocking.packingFloats(m: columnRows, n: inputPlane, k: groupChannels) }
}

extension IRBuilder {
    /// One unit (image and group) at a time, units split among threads: its output planes start
    /// as the bias (or zero), the GEMM makes its columns in this thread's scratch, and each
    /// column adds into the output.
    func convolutionTransposed(_ g: ConvTransposeGeometry, output: LLVMValue, input: LLVMValue, weights: LLVMValue, bias: LLVMValue?, scratch: LLVMValue,
                               threadScratchFloats: Int, split: ThreadSplit, thread: LLVMValue, threads: Int) {
        let a = g.attributes
        let mine = pointer(scratch, imul(thread, int(threadScratchFloats)))
        let columns = mine, packing = pointer(mine, int(g.columnRows * g.inputPlane))
        let units = unitShare(split, count: g.batch * g.groups, thread: thread, threads: threads)
        loop(from: units.start, to: units.end) { unit in
            let image = LLVMBuildUDiv(builder, unit, int(g.groups), "")!, group = LLVMBuildURem(builder, unit, int(g.groups), "")!
            let firstOutChannel = iadd(imul(image, int(g.outChannels)), imul(group, int(g.groupOutChannels)))
            let planes = StridedView(base: pointer(output, imul(firstOutChannel, int(g.outputPlane))), strides: [g.outputPlane, 1])
            let biasView = bias.map { [StridedView(base: pointer($0, imul(group, int(g.groupOutChannels))), strides: [1, 0])] } ?? []
            elementwise(shape: [g.groupOutChannels, g.outputPlane], output: planes, inputs: biasView) { v, lanes in v.first ?? float(0, lanes: lanes) }
            let inputChannel = iadd(imul(image, int(g.channels)), imul(group, int(g.groupChannels)))
            gemm(m: g.columnRows, n: g.inputPlane, k: g.groupChannels,
                 a: MatrixView(base: weights, offset: imul(group, int(g.groupChannels * g.columnRows)), rowStride: 1, columnStride: g.columnRows),
                 b: MatrixView(base: input, offset: imul(inputChannel, int(g.inputPlane)), rowStride: g.inputPlane),
                 c: MatrixView(base: columns, offset: int(0), rowStride: g.inputPlane), bias: .none, packing: packing)
            loop(0, g.groupOutChannels, unroll: false) { o in
                let plane = pointer(output, imul(iadd(firstOutChannel, o), int(g.outputPlane)))
                for ky in 0..<g.kernelH {
                    let rowsY = ConvGeometry.validRange(count: g.height, size: g.outH, stride: a.strides[0], pad: a.pads[0], tap: ky * a.dilations[0])
                    for kx in 0..<g.kernelW {
                        let rowsX = ConvGeometry.validRange(count: g.width, size: g.outW, stride: a.strides[1], pad: a.pads[1], tap: kx * a.dilations[1])
                        guard !rowsY.isEmpty, !rowsX.isEmpty else { continue }
                        let row = iadd(imul(o, int(g.kernelH * g.kernelW)), int(ky * g.kernelW + kx))
                        let column = StridedView(base: pointer(columns, imul(row, int(g.inputPlane))),
                                                 offset: rowsY.lowerBound * g.width + rowsX.lowerBound, strides: [g.width, 1])
                        let oy = rowsY.lowerBound * a.strides[0] - a.pads[0] + ky * a.dilations[0]
                        let ox = rowsX.lowerBound * a.strides[1] - a.pads[1] + kx * a.dilations[1]
                        let target = StridedView(base: plane, offset: oy * g.outW + ox, strides: [a.strides[0] * g.outW, a.strides[1]])
                        elementwise(shape: [rowsY.count, rowsX.count], output: target, inputs: [target, column]) { v, _ in add(v[0], v[1]) }
                    }
                }
            }
        }
    }
}
