import CLLVM
import LatheIR

/// A depthwise convolution (one input channel a group, and one or a few output channels each:
/// MobileNet's 3x3 layers, a first layer on a gray image), an input plane at a time. As a GEMM it
/// would be a product of a few rows and a depth of 9, so
/// instead each plane is copied, zero-padded, into scratch, and each output row is computed a
/// vector of outputs at a time: for each tap, one load of the padded row (for stride s, s x width
/// floats keeping every s-th) and one FMA with the tap's weight, then bias and epilogue. The
/// padded copy leaves the inner loop without bounds checks; its rows are long enough for the
/// last vector's loads, whose lanes past the row's end are never stored.
extension IRBuilder {
    func depthwiseConvolution(_ g: ConvGeometry, output: LLVMValue, input: LLVMValue, weights: LLVMValue, bias: LLVMValue?, scratch: LLVMValue,
                              epilogue: GemmEpilogue?, split: ThreadSplit, thread: LLVMValue, threads: Int) {
        let padded = pointer(scratch, imul(thread, int(g.depthwisePaddedFloats)))
        let planes = g.batch * g.channels
        let (start, end) = split == .single ? (int(0), int(planes)) : unitRange(count: planes, thread: thread, threads: threads)
        let multiplier = g.outChannels / g.channels
        let window = g.kernelH * g.kernelW
        loop(from: start, to: end) { plane in
            let image = LLVMBuildUDiv(builder, plane, int(g.channels), "")!
            let channel = LLVMBuildURem(builder, plane, int(g.channels), "")!
            copyPadded(g, from: pointer(input, imul(plane, int(g.inputPlane))), to: padded)
            loop(from: int(0), to: int(multiplier)) { q in
                let o = iadd(imul(channel, int(multiplier)), q)
                let taps = (0..<window).map { load(weights, iadd(imul(o, int(window)), int($0))) }
                let b = bias.map { load($0, o) }
                let planeOutput = imul(iadd(imul(image, int(g.outChannels)), o), int(g.outputPlane))
                loop(from: int(0), to: int(g.outH)) { oy in
                    depthwiseRow(g, padded: padded, oy: oy, taps: taps, bias: b, output: output, at: iadd(planeOutput, imul(oy, int(g.outW))), epilogue: epilogue)
                }
            }
        }
    }

    /// padded[r][x] = plane[r - padTop][x - padLeft], zero outside the plane.
    private func copyPadded(_ g: ConvGeometry, from plane: LLVMValue, to padded: LLVMValue) {
        let (top, left) = (g.attributes.pads[0], g.attributes.pads[1])
        let length = g.depthwiseRowLength
        fill(padded, count: int(top * length), with: 0)
        loop(from: int(0), to: int(g.height)) { y in
            let row = pointer(padded, imul(iadd(y, int(top)), int(length)))
            if left > 0 { fill(row, count: int(left), with: 0) }
            elementwise(shape: [g.width], output: StridedView(base: pointer(row, int(left)), strides: [1]),
                        inputs: [StridedView(base: pointer(plane, imul(y, int(g.width))), strides: [1])]) { v, _ in v[0] }
            fill(pointer(row, int(left + g.width)), count: int(length - left - g.width), with: 0)
        }
        let below = g.depthwisePaddedRows - top - g.height
        fill(pointer(padded, int((top + g.height) * length)), count: int(below * length), with: 0)
    }

    /// One output row: whole vectors, then the last few outputs one at a time.
    private func depthwiseRow(_ g: ConvGeometry, padded: LLVMValue, oy: LLVMValue, taps: [LLVMValue], bias: LLVMValue?, output: LLVMValue,
                              at rowOutput: LLVMValue, epilogue: GemmEpilogue?) {
        let a = g.attributes
        let (sy, sx, dy, dx) = (a.strides[0], a.strides[1], a.dilations[0], a.dilations[1])
        let width = vectorWidth
        let rows = (0..<g.kernelH).map { ky in pointer(padded, imul(iadd(imul(oy, int(sy)), int(ky * dy)), int(g.depthwiseRowLength))) }
        func outputs(_ ox: LLVMValue, lanes: Int) {
            var sum = bias.map { lanes == 1 ? $0 : splat($0, lanes: lanes) } ?? float(0, lanes: lanes)
            for ky in 0..<g.kernelH {
                for kx in 0..<g.kernelW {
                    let at = iadd(imul(ox, int(sx)), int(kx * dx))
                    var x = load(rows[ky], at, lanes: lanes == 1 ? 1 : lanes * sx)
                    if sx > 1 && lanes > 1 {
                        var mask = (0..<lanes).map { LLVMConstInt(LLVMInt32TypeInContext(context), UInt64($0 * sx), 0) }
                        x = LLVMBuildShuffleVector(builder, x, LLVMGetUndef(LLVMTypeOf(x)), LLVMConstVector(&mask, UInt32(lanes)), "")!
                    }
                    let w = taps[ky * g.kernelW + kx]
                    sum = fma(lanes == 1 ? w : splat(w, lanes: lanes), x, sum)
                }
            }
            let index = iadd(rowOutput, ox)
            // A convolution's epilogue operands are laid out like its result.
            if let epilogue { sum = emit(epilogue.formula, [sum] + epilogue.extras.map { load($0.base, index, lanes: lanes) }) }
            store(sum, output, index)
        }
        let vectorEnd = g.outW / width * width
        loop(0, vectorEnd, step: width, unroll: false) { ox in outputs(ox, lanes: width) }
        loop(vectorEnd, g.outW, unroll: false) { ox in outputs(ox, lanes: 1) }
    }
}

extension ConvGeometry {
    /// One input channel a group (and a whole number of output channels each): the depthwise
    /// kernel runs it, whose inner loop is the window's taps.
    var isDepthwise: Bool { groups == channels && outChannels % channels == 0 }
    /// Rows and row length of a padded plane, with room after each row for a vector of the
    /// widest target (16 floats) loaded at the largest stride.
    var depthwisePaddedRows: Int { max(height + attributes.pads[0] + attributes.pads[2], (outH - 1) * attributes.strides[0] + (kernelH - 1) * attributes.dilations[0] + 1) }
    var depthwiseRowLength: Int { width + attributes.pads[1] + attributes.pads[3] + (kernelW - 1) * attributes.dilations[1] + 16 * attributes.strides[1] }
    var depthwisePaddedFloats: Int { depthwisePaddedRows * depthwiseRowLength }
}
