import CLLVM
import LatheIR

/// Direct convolution, for the convolutions whose GEMM would be too shallow to run well:
/// depthwise layers (one input channel a group: MobileNet's 3x3 layers) and first layers over a
/// few image channels (depth 27 for RGB and a 3x3 window, 9 for gray). Each group's input planes
/// are copied, zero-padded, into scratch, so the inner loop has no bounds checks; with a
/// horizontal stride s, each row is dealt into s phases (every s-th column), so that a tap reads
/// contiguous vectors whatever the stride. Then, for a block of up to 6 output channels and two
/// vectors of outputs along a row, every tap loads two vectors of input and adds them, times the
/// tap's weight of each channel, into 12 accumulators: two loads and six broadcasts feed twelve
/// FMAs (3 channels x 4 vectors measured slower on MobileNet and the Keras CNN). Then bias and
/// epilogue, and the stores; the last outputs of a row that fill no vector go one at a time.
extension IRBuilder {
    func directConvolution(_ g: ConvGeometry, output: LLVMValue, input: LLVMValue, weights: LLVMValue, bias: LLVMValue?, scratch: LLVMValue,
                           epilogue: GemmEpilogue?, split: ThreadSplit, thread: LLVMValue, threads: Int) {
        let planes = pointer(scratch, imul(thread, int(g.directScratchFloats)))
        let units = g.batch * g.groups
        let perGroup = g.groupOutChannels
        let block = min(6, perGroup)
        func unit(_ u: LLVMValue, firstRow: LLVMValue, rows: LLVMValue) {
            let image = LLVMBuildUDiv(builder, u, int(g.groups), "")!
            let group = LLVMBuildURem(builder, u, int(g.groups), "")!
            let firstPlane = iadd(imul(image, int(g.channels)), imul(group, int(g.groupChannels)))
            loop(from: int(0), to: int(g.groupChannels)) { c in
                copyPadded(g, from: pointer(input, imul(iadd(firstPlane, c), int(g.inputPlane))), to: pointer(planes, imul(c, int(g.paddedPlaneFloats))),
                           temp: pointer(planes, int(g.groupChannels * g.paddedPlaneFloats)))
            }
            // Each output row for every block of channels in turn, while the input rows it reads
            // stay in L1 (SqueezeNet's first layer: 700 KB of padded input, streamed again for
            // each block of channels when the blocks were the outer loop).
            loop(from: firstRow, to: iadd(firstRow, rows)) { oy in
                func channels(_ first: LLVMValue, count: Int) {
                    let o = iadd(imul(group, int(perGroup)), first)
                    let planeOutput = imul(iadd(imul(image, int(g.outChannels)), o), int(g.outputPlane))
                    directRow(g, planes: planes, oy: oy, weights: weights, firstChannel: o, count: count, bias: bias, output: output,
                              at: iadd(planeOutput, imul(oy, int(g.outW))), epilogue: epilogue)
                }
                loop(from: int(0), to: int(perGroup / block * block), step: block) { first in channels(first, count: block) }
                if perGroup % block > 0 { channels(int(perGroup / block * block), count: perGroup % block) }
            }
        }
        switch split {
        case let .rows(total, chunk):
            forThreadShare(total: total, chunk: chunk, thread: thread) { _, start, count in
                loop(from: int(0), to: int(units)) { u in unit(u, firstRow: start, rows: count) }
            }
        case .units:
            forEachUnit(count: units, thread: thread, threads: threads) { u in unit(u, firstRow: int(0), rows: int(g.outH)) }
        case .single, .columns:
            onThreadZero(thread) { loop(from: int(0), to: int(units)) { u in unit(u, firstRow: int(0), rows: int(g.outH)) } }
        }
    }

    /// padded[r][x] = plane[r - padTop][x - padLeft], zero outside the plane, each row stored
    /// as its stride phases: column X at [X % sx][X / sx], so that a strided tap reads a
    /// contiguous vector. A row is padded in `temp` first, then dealt into its phases.
    private func copyPadded(_ g: ConvGeometry, from plane: LLVMValue, to padded: LLVMValue, temp: LLVMValue) {
        let (top, left, sx) = (g.attributes.pads[0], g.attributes.pads[1], g.attributes.strides[1])
        let (length, phase) = (g.paddedRowLength, g.phaseLength)
        let rowFloats = sx * phase
        fill(padded, count: int(top * rowFloats), with: 0)
        // A strided row goes through `temp`, whose padding is the same for every row: zeroed
        // once a plane, then only the row's values are copied in (the fills were a third of the
        // work of MobileNet's stride-2 depthwise layers).
        if sx > 1 { fill(temp, count: int(rowFloats + vectorWidth * sx), with: 0) }
        loop(from: int(0), to: int(g.height)) { y in
            let row = pointer(padded, imul(iadd(y, int(top)), int(rowFloats)))
            let source = pointer(plane, imul(y, int(g.width)))
            if sx == 1 {
                copyPaddedRow(from: source, width: g.width, into: row, left: left, length: length)
            } else {
                elementwise(shape: [g.width], output: StridedView(base: pointer(temp, int(left)), strides: [1]),
                            inputs: [StridedView(base: source, strides: [1])]) { v, _ in v[0] }
                loop(from: int(0), to: int(phase), step: vectorWidth) { j in
                    let wide = load(temp, imul(j, int(sx)), lanes: vectorWidth * sx)
                    for p in 0..<sx { store(lanes(of: wide, from: p, step: sx), row, iadd(int(p * phase), j)) }
                }
            }
        }
        let below = g.paddedRows - top - g.height
        fill(pointer(padded, int((top + g.height) * rowFloats)), count: int(below * rowFloats), with: 0)
    }

    /// Output row oy of output channels firstChannel..<firstChannel+count: two vectors of outputs
    /// at a time, then one, then the row's end as one partial vector.
    private func directRow(_ g: ConvGeometry, planes: LLVMValue, oy: LLVMValue, weights: LLVMValue, firstChannel: LLVMValue, count: Int, bias: LLVMValue?,
                           output: LLVMValue, at rowOutput: LLVMValue, epilogue: GemmEpilogue?) {
        let a = g.attributes
        let (sy, sx, dy, dx) = (a.strides[0], a.strides[1], a.dilations[0], a.dilations[1])
        let width = vectorWidth
        let window = g.kernelH * g.kernelW
        /// `valid`: only the first `valid` lanes exist (the end of a row that fills no vector): the
        /// taps still run on whole vectors, since the padded rows have room past their end, and
        /// only the stores, and the epilogue operands' loads, go a lane at a time.
        func outputs(_ ox: LLVMValue, lanes: Int, vectors: Int, valid: Int? = nil) {
            let initial = (0..<count).map { r -> LLVMValue in
                guard let bias else { return float(0, lanes: lanes) }
                let b = load(bias, iadd(firstChannel, int(r)))
                return lanes == 1 ? b : splat(b, lanes: lanes)
            }
            let type = floatType(lanes: lanes)
            let sums = (0..<count).map { r in (0..<vectors).map { _ in variable(initial[r]) } }
            // With every tap unrolled, LLVM keeps each tap's weights in a register through the
            // loop over the outputs: right for a depthwise layer's 9, but with more weights than
            // free registers it spilled the accumulators (SqueezeNet's first layer, 6 x 27, ran at
            // a third of the FMA rate). Then the window's rows (of every input channel) run in a
            // loop, their columns unrolled.
            let registers = vectorWidth >= 16 ? 32 : 16
            let windowRows = g.groupChannels * g.kernelH
            func forEachWindowRow(_ body: (LLVMValue) -> Void) {
                if count * windowRows * g.kernelW <= registers - (count + 1) * vectors - 1 {
                    for cy in 0..<windowRows { body(int(cy)) }
                } else {
                    loop(0, windowRows, unroll: false, body)
                }
            }
            forEachWindowRow { cy in
                let c = LLVMBuildUDiv(builder, cy, int(g.kernelH), "")!
                let ky = LLVMBuildURem(builder, cy, int(g.kernelH), "")!
                let row = pointer(planes, iadd(imul(c, int(g.paddedPlaneFloats)),
                                               imul(iadd(imul(oy, int(sy)), imul(ky, int(dy))), int(sx * g.phaseLength))))
                for kx in 0..<g.kernelW {
                    // Column (ox + i) * sx + kx * dx is in phase (kx * dx) % sx, at ox + i + (kx * dx) / sx.
                    let phaseStart = (kx * dx) % sx * g.phaseLength + (kx * dx) / sx
                    let x = (0..<vectors).map { v in load(row, iadd(ox, int(v * lanes + phaseStart)), lanes: lanes) }
                    let tap = iadd(imul(cy, int(g.kernelW)), int(kx))
                    for r in 0..<count {
                        let w = load(weights, iadd(imul(iadd(firstChannel, int(r)), int(g.groupChannels * window)), tap))
                        let wide = lanes == 1 ? w : splat(w, lanes: lanes)
                        for v in 0..<vectors { write(fma(wide, x[v], read(sums[r][v], type: type)), sums[r][v]) }
                    }
                }
            }
            for r in 0..<count {
                for v in 0..<vectors {
                    let index = iadd(iadd(rowOutput, imul(int(r), int(g.outputPlane))), iadd(ox, int(v * lanes)))
                    var value = read(sums[r][v], type: type)
                    // A convolution's epilogue operands are laid out like its result.
                    if let epilogue {
                        value = emit(epilogue.formula, [value] + epilogue.extras.map { extra in
                            valid.map { partialLoad(extra.base, index, lanes: lanes, valid: $0) } ?? load(extra.base, index, lanes: lanes)
                        })
                    }
                    if let valid {
                        partialStore(value, output, index, valid: valid)
                    } else {
                        store(value, output, index)
                    }
                }
            }
        }
        let blockEnd = g.outW / (2 * width) * (2 * width)
        let vectorEnd = g.outW / width * width
        loop(0, blockEnd, step: 2 * width, unroll: false) { ox in outputs(ox, lanes: width, vectors: 2) }
        loop(blockEnd, vectorEnd, step: width, unroll: false) { ox in outputs(ox, lanes: width, vectors: 1) }
        if vectorEnd < g.outW {
            if width > 1 {
                outputs(int(vectorEnd), lanes: width, vectors: 1, valid: g.outW - vectorEnd)
            } else {
                loop(vectorEnd, g.outW, unroll: false) { ox in outputs(ox, lanes: 1, vectors: 1) }
            }
        }
    }
}

extension ConvGeometry {
    /// The direct kernel runs it: one input channel a group (depthwise, any channel multiplier)
    /// and a window of at most 7 x 7, or one group of at most 4 channels and a window of at most 9
    /// (a first layer: RGB or gray). Its taps are unrolled, so the windows are bounded.
    var runsDirect: Bool {
        (groups == channels && groups > 1 && outChannels % channels == 0 && kernelH * kernelW <= 49)
            || (groups == 1 && channels <= 4 && kernelH * kernelW <= 9)
    }
    /// Rows and row length of a padded plane, with room after each row for the phases' rounding.
    var paddedRows: Int { max(height + attributes.pads[0] + attributes.pads[2], (outH - 1) * attributes.strides[0] + (kernelH - 1) * attributes.dilations[0] + 1) }
    var paddedRowLength: Int { width + attributes.pads[1] + attributes.pads[3] + (kernelW - 1) * attributes.dilations[1] + 16 * attributes.strides[1] }
    /// A padded row's length in each of its stride phases: whole vectors of the widest target, so
    /// that dealing a row into phases a vector at a time never writes into the next phase.
    var phaseLength: Int { roundUp((paddedRowLength + attributes.strides[1] - 1) / attributes.strides[1], 16) }
    var paddedPlaneFloats: Int { paddedRows * attributes.strides[1] * phaseLength }
    /// A thread's scratch: the padded planes of one group, and a row to deal into phases.
    var directScratchFloats: Int { groupChannels * paddedPlaneFloats + attributes.strides[1] * (phaseLength + 16) }
}
