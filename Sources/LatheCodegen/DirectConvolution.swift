import CLLVM
import LatheIR

/// Direct convolution, for the convolutions whose GEMM would be too shallow to run well:
/// depthwise layers (one input channel a group: MobileNet's 3x3 layers) and first layers over a
/// few image channels (depth 27 for RGB and a 3x3 window, 9 for gray). With a horizontal stride
/// of 1, each group's input planes are copied, zero-padded, into scratch, so the inner loop has
/// no bounds checks. With a stride s > 1 the planes are read in place: a tap's vector is every
/// s-th lane of a load s vectors wide, masked at the row's ends, and rows outside the plane are
/// skipped. Then, for a block of output channels and vectors of outputs along a row
/// (its plan's DirectBlock: mostly 6 channels x 2 vectors), every tap loads the vectors of input and adds
/// them, times the tap's weight of each channel, into the block's accumulators: with 6 x 2, two
/// loads and six broadcasts feed twelve FMAs (3 channels x 4 vectors measured slower on MobileNet
/// and the Keras CNN). Then bias and epilogue, and the stores; the last outputs of a row that
/// fill no vector go as one masked vector.
extension IRBuilder {
    func directConvolution(_ g: ConvGeometry, block registerBlock: DirectBlock, output: LLVMValue, input: LLVMValue, weights: LLVMValue, bias: LLVMValue?, scratch: LLVMValue?, threadScratchFloats: Int,
                           epilogue: GemmEpilogue?, split: ThreadSplit, thread: LLVMValue, threads: Int) {
        // Padded copies of the group's planes, unless it reads them in place (and has no scratch).
        let planes = scratch.map { pointer($0, imul(thread, int(threadScratchFloats))) } ?? input
        let units = g.batch * g.groups
        let perGroup = g.groupOutChannels
        let block = registerBlock.channels
        func unit(_ u: LLVMValue, firstRow: LLVMValue, rows: LLVMValue) {
            let image = LLVMBuildUDiv(builder, u, int(g.groups), "")!
            let group = LLVMBuildURem(builder, u, int(g.groups), "")!
            let firstPlane = iadd(imul(image, int(g.channels)), imul(group, int(g.groupChannels)))
            let source = g.readsInPlace ? pointer(input, imul(firstPlane, int(g.inputPlane))) : planes
            if !g.readsInPlace {
                loop(from: int(0), to: int(g.groupChannels)) { c in
                    copyInterior(g, from: pointer(input, imul(iadd(firstPlane, c), int(g.inputPlane))), to: pointer(planes, imul(c, int(g.paddedPlaneFloats))))
                }
            }
            // Each output row for every block of channels in turn, while the input rows it reads
            // stay in L1 (SqueezeNet's first layer: 700 KB of padded input, streamed again for
            // each block of channels when the blocks were the outer loop).
            loop(from: firstRow, to: iadd(firstRow, rows)) { oy in
                func channels(_ first: LLVMValue, count: Int) {
                    let o = iadd(imul(group, int(perGroup)), first)
                    let planeOutput = imul(iadd(imul(image, int(g.outChannels)), o), int(g.outputPlane))
                    directRow(g, block: registerBlock, planes: source, oy: oy, weights: weights, firstChannel: o, count: count, bias: bias,
                              output: output, at: iadd(planeOutput, imul(oy, int(g.outW))), epilogue: epilogue)
                }
                loop(from: int(0), to: int(perGroup / block * block), step: block) { first in channels(first, count: block) }
                if perGroup % block > 0 { channels(int(perGroup / block * block), count: perGroup % block) }
            }
        }
        // The padding is zeroed once a run, by each thread in its own planes; each unit then
        // copies only the planes' interiors over it. (Zeroing every padded plane for every
        // depthwise channel wrote 4 times the input on 14 x 14 planes.)
        func zeroPadding() {
            if !g.readsInPlace { fill(planes, count: int(g.directScratchFloats), with: 0) }
        }
        switch split {
        case let .rows(total, chunk):
            zeroPadding()
            forThreadShare(total: total, chunk: chunk, thread: thread) { _, start, count in
                loop(from: int(0), to: int(units)) { u in unit(u, firstRow: start, rows: count) }
            }
        case .units:
            zeroPadding()
            forEachUnit(count: units, thread: thread, threads: threads) { u in unit(u, firstRow: int(0), rows: int(g.outH)) }
        case .single, .columns:
            onThreadZero(thread) {
                zeroPadding()
                loop(from: int(0), to: int(units)) { u in unit(u, firstRow: int(0), rows: int(g.outH)) }
            }
        }
    }

    /// padded[r][x] = plane[r - padTop][x - padLeft] inside the plane; the padding around it
    /// is left as it is (zero: zeroPadding). Stride 1 only.
    private func copyInterior(_ g: ConvGeometry, from plane: LLVMValue, to padded: LLVMValue) {
        let (top, left, rowFloats) = (g.attributes.pads[0], g.attributes.pads[1], g.paddedRowFloats)
        loop(from: int(0), to: int(g.height)) { y in
            copyPaddedRow(from: pointer(plane, imul(y, int(g.width))), width: g.width,
                          into: pointer(padded, iadd(imul(iadd(y, int(top)), int(rowFloats)), int(left))), left: 0, length: g.width)
        }
    }

    /// Output row oy of output channels firstChannel..<firstChannel+count: two vectors of outputs
    /// at a time, then one, then the row's end as one partial vector.
    private func directRow(_ g: ConvGeometry, block: DirectBlock, planes: LLVMValue, oy: LLVMValue, weights: LLVMValue, firstChannel: LLVMValue, count: Int, bias: LLVMValue?,
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
            let partials = block.partials
            // sums[r][v][p]: partial p of vector v of channel r; the bias starts partial 0.
            let sums = (0..<count).map { r in (0..<vectors).map { _ in (0..<partials).map { p in variable(p == 0 ? initial[r] : float(0, lanes: lanes)) } } }
            // With every tap unrolled, LLVM keeps each tap's weights in a register through the
            // loop over the outputs: right for a depthwise layer's 9, but with more weights than
            // free registers it spilled the accumulators (SqueezeNet's first layer, 6 x 27, ran at
            // a third of the FMA rate). Then the window's rows (of every input channel) run in a
            // loop, their columns unrolled.
            let windowRows = g.groupChannels * g.kernelH
            func forEachWindowRow(_ body: (LLVMValue) -> Void) {
                if block.keepsWeights(count: count, vectors: vectors, taps: windowRows * g.kernelW, vectorWidth: vectorWidth) {
                    for cy in 0..<windowRows { body(int(cy)) }
                } else {
                    loop(0, windowRows, unroll: false, body)
                }
            }
            /// The window row's taps, given each tap's input vectors.
            func taps(_ cy: LLVMValue, _ inputs: (_ kx: Int) -> [LLVMValue]) {
                for kx in 0..<g.kernelW {
                    let x = inputs(kx)
                    let tap = iadd(imul(cy, int(g.kernelW)), int(kx))
                    for r in 0..<count {
                        let w = load(weights, iadd(imul(iadd(firstChannel, int(r)), int(g.groupChannels * window)), tap))
                        let wide = lanes == 1 ? w : splat(w, lanes: lanes)
                        for v in 0..<vectors {
                            let sum = sums[r][v][kx % partials]
                            write(fma(wide, x[v], read(sum, type: type)), sum)
                        }
                    }
                }
            }
            func paddedWindowRow(_ cy: LLVMValue) {
                let c = LLVMBuildUDiv(builder, cy, int(g.kernelH), "")!
                let ky = LLVMBuildURem(builder, cy, int(g.kernelH), "")!
                let row = pointer(planes, iadd(imul(c, int(g.paddedPlaneFloats)), imul(iadd(imul(oy, int(sy)), imul(ky, int(dy))), int(g.paddedRowFloats))))
                taps(cy) { kx in (0..<vectors).map { v in load(row, iadd(ox, int(v * lanes + kx * dx)), lanes: lanes) } }
            }
            /// In place: input row iy = oy * sy + ky * dy - top of channel c, skipped outside the
            /// plane. Output lane i of tap kx reads column (ox + i) * sx + kx * dx - left: lane
            /// (kx * dx) % sx, step sx, of the sx * lanes columns from (ox * sx - left) + (kx * dx)
            /// / sx * sx, so a 3x3 stride-2 window row is two loads and three shuffles. Columns
            /// outside the row are masked off (zero), unless the whole block is inside.
            func inPlaceWindowRow(_ cy: LLVMValue, masked: Bool) {
                let c = LLVMBuildUDiv(builder, cy, int(g.kernelH), "")!
                let ky = LLVMBuildURem(builder, cy, int(g.kernelH), "")!
                let iy = isub(iadd(imul(oy, int(sy)), imul(ky, int(dy))), int(a.pads[0]))
                let inside = LLVMBuildICmp(builder, LLVMIntULT, iy, int(g.height), "")!
                ifElse(inside, then: {
                    let row = iadd(imul(c, int(g.inputPlane)), imul(iy, int(g.width)))
                    var loaded: [Int: LLVMValue] = [:]
                    taps(cy) { kx in
                        (0..<vectors).map { v in
                            let shift = (kx * dx) / sx * sx
                            let key = v * g.kernelW * dx + shift
                            let wide = loaded[key] ?? {
                                let column = iadd(imul(iadd(ox, int(v * lanes)), int(sx)), int(shift - a.pads[1]))
                                let value = masked ? maskedLoad(planes, iadd(row, column), lanes: sx * lanes, validFrom: column, below: g.width)
                                                   : load(planes, iadd(row, column), lanes: sx * lanes)
                                loaded[key] = value
                                return value
                            }()
                            return sx == 1 ? wide : self.lanes(of: wide, from: (kx * dx) % sx, step: sx)
                        }
                    }
                }, else: {})
            }
            if g.readsInPlace {
                // The block reads columns first ..< last of each row; it is inside the row when
                // both ends are.
                let first = isub(imul(ox, int(sx)), int(a.pads[1]))
                let last = iadd(first, int(((g.kernelW - 1) * dx / sx + vectors * lanes) * sx))
                let inside = LLVMBuildAnd(builder, LLVMBuildICmp(builder, LLVMIntSGE, first, int(0), "")!,
                                          LLVMBuildICmp(builder, LLVMIntSLE, last, int(g.width), "")!, "")!
                ifElse(inside, then: { forEachWindowRow { inPlaceWindowRow($0, masked: false) } },
                       else: { forEachWindowRow { inPlaceWindowRow($0, masked: true) } })
            } else {
                forEachWindowRow(paddedWindowRow)
            }
            for r in 0..<count {
                for v in 0..<vectors {
                    let index = iadd(iadd(rowOutput, imul(int(r), int(g.outputPlane))), iadd(ox, int(v * lanes)))
                    var value = read(sums[r][v][0], type: type)
                    for p in 1..<partials { value = add(value, read(sums[r][v][p], type: type)) }
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
        // Blocks of `vectors` whole vectors, then the whole vectors left as one block.
        let vectors = block.vectors
        let blockEnd = g.outW / (vectors * width) * (vectors * width)
        let vectorEnd = g.outW / width * width
        loop(0, blockEnd, step: vectors * width, unroll: false) { ox in outputs(ox, lanes: width, vectors: vectors) }
        if vectorEnd > blockEnd { outputs(int(blockEnd), lanes: width, vectors: (vectorEnd - blockEnd) / width) }
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
    /// Horizontally strided windows read the input planes where they are, each tap's vector
    /// dealt out of wider loads: a padded copy, dealt into stride phases, cost more than the
    /// convolution itself (MobileNet v2's stride-2 depthwise layers, 2-2.5x ONNX Runtime's time).
    var readsInPlace: Bool { attributes.strides[1] > 1 }
    /// Rows and row length of a padded plane (of a horizontal stride of 1). A row's last vector
    /// of outputs (of the widest target, 16 floats) reads on past the row's padding, into the
    /// next row or, after the last, into room left for it: its lanes past the row are not stored.
    var paddedRows: Int { max(height + attributes.pads[0] + attributes.pads[2], (outH - 1) * attributes.strides[0] + (kernelH - 1) * attributes.dilations[0] + 1) }
    var paddedRowFloats: Int { width + attributes.pads[1] + attributes.pads[3] }
    var paddedPlaneFloats: Int { paddedRows * paddedRowFloats + roundUp(outW, 16) + (kernelW - 1) * attributes.dilations[1] }
    /// A thread's scratch: the padded planes of one group.
    var directScratchFloats: Int { readsInPlace ? 0 : groupChannels * paddedPlaneFloats }
}
