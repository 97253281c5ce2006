import CLLVM
import LatheIR

/// Kernels for the ops only training graphs use: pooling's gradient and a convolution's weight
/// gradient (dropout's mask and augmentation are in AugmentKernels.swift).
extension IRBuilder {
    /// pool2d_grad: each plane of dx is zeroed, then each output cell adds its dy to the first
    /// largest tap of its window (max) or dy / divisor to every tap (average), exactly as the
    /// interpreter does. Planes are split among threads.
    func pool2dGradient(_ a: Pool2DAttributes, dx: LLVMValue, x: LLVMValue, dy: LLVMValue, inShape: [Int], outShape: [Int],
                        split: ThreadSplit, thread: LLVMValue, threads: Int) {
        let (h, w, oh, ow) = (inShape[2], inShape[3], outShape[2], outShape[3])
        let padded = a.pads.contains { $0 > 0 }
        let planes = inShape[0] * inShape[1]
        let range = unitShare(split, count: planes, thread: thread, threads: threads)
        if a.kind == .max, !padded, a.kernel == [2, 2], a.strides == [2, 2], a.dilations == [1, 1] {
            return loop(from: range.start, to: range.end) { plane in
                maxPool2x2Gradient(dx: pointer(dx, imul(plane, int(h * w))), x: pointer(x, imul(plane, int(h * w))),
                                   dy: pointer(dy, imul(plane, int(oh * ow))), h: h, w: w, oh: oh, ow: ow)
            }
        }
        loop(from: range.start, to: range.end) { plane in
            let inPlane = imul(plane, int(h * w))
            let outPlane = imul(plane, int(oh * ow))
            fill(pointer(dx, inPlane), count: int(h * w), with: 0)
            loop(0, oh, unroll: false) { oy in
                loop(0, ow, unroll: false) { ox in
                    let g = load(dy, iadd(outPlane, iadd(imul(oy, int(ow)), ox)))
                    let baseY = iadd(imul(oy, int(a.strides[0])), int(-a.pads[0]))
                    let baseX = iadd(imul(ox, int(a.strides[1])), int(-a.pads[1]))
                    var taps: [(index: LLVMValue, valid: LLVMValue?)] = []
                    for ky in 0..<a.kernel[0] {
                        for kx in 0..<a.kernel[1] {
                            let iy = iadd(baseY, int(ky * a.dilations[0])), ix = iadd(baseX, int(kx * a.dilations[1]))
                            let index = iadd(inPlane, iadd(imul(iy, int(w)), ix))
                            if padded {
                                let valid = inBounds(iy, h, ix, w)
                                taps.append((LLVMBuildSelect(builder, valid, index, inPlane, "")!, valid))
                            } else {
                                taps.append((index, nil))
                            }
                        }
                    }
                    if a.kind == .max {
                        var best = float(-.infinity), bestIndex = taps[0].index
                        var found: LLVMValue = LLVMConstInt(i1, padded ? 0 : 1, 0)
                        for (n, tap) in taps.enumerated() {
                            let value = load(x, tap.index)
                            var better: LLVMValue = n == 0 && !padded ? LLVMConstInt(i1, 1, 0) : compare(LLVMRealOGT, value, best)
                            if let valid = tap.valid {
                                // The first valid tap is taken whatever its value.
                                better = LLVMBuildAnd(builder, valid, LLVMBuildOr(builder, better, LLVMBuildNot(builder, found, ""), ""), "")
                                found = LLVMBuildOr(builder, found, valid, "")
                            }
                            best = select(better, value, best)
                            bestIndex = LLVMBuildSelect(builder, better, tap.index, bestIndex, "")
                        }
                        store(add(load(dx, bestIndex), select(found, g, float(0))), dx, bestIndex)
                    } else {
                        var share = g
                        if padded && !a.countIncludePad {
                            let count = taps.reduce(float(0)) { add($0, LLVMBuildUIToFP(builder, $1.valid!, f32, "")) }
                            share = div(g, count)
                        } else {
                            share = div(g, float(Float(a.kernel[0] * a.kernel[1])))
                        }
                        for tap in taps {
                            let part = tap.valid.map { select($0, share, float(0)) } ?? share
                            store(add(load(dx, tap.index), part), dx, tap.index)
                        }
                    }
                }
            }
        }
    }

    /// One plane of a 2x2, stride-2 max pool's gradient, whose windows tile the plane: each
    /// window's four taps (a b / c d) are compared in the forward pass's order, the first largest
    /// gets dy and the others 0, written straight (no zeroing, no adding) a vector of windows at
    /// a time; only the row and column no window covers (odd sizes) are zeroed.
    private func maxPool2x2Gradient(dx: LLVMValue, x: LLVMValue, dy: LLVMValue, h: Int, w: Int, oh: Int, ow: Int) {
        func windows(_ oy: LLVMValue, _ ox: LLVMValue, lanes: Int) {
            let top = iadd(imul(oy, int(2 * w)), imul(ox, int(2))), bottom = iadd(top, int(w))
            func taps(_ at: LLVMValue) -> (LLVMValue, LLVMValue) {
                if lanes == 1 { return (load(x, at), load(x, iadd(at, int(1)))) }
                let (low, high) = (load(x, at, lanes: lanes), load(x, iadd(at, int(lanes)), lanes: lanes))
                return (shuffle(low, with: high, (0..<lanes).map { 2 * $0 }), shuffle(low, with: high, (0..<lanes).map { 2 * $0 + 1 }))
            }
            let (a, b) = taps(top), (c, d) = taps(bottom)
            let g = load(dy, iadd(imul(oy, int(ow)), ox), lanes: lanes)
            let zero = float(0, lanes: lanes)
            let isB = compare(LLVMRealOGT, b, a)
            let best = select(isB, b, a)
            let isC = compare(LLVMRealOGT, c, best)
            let isD = compare(LLVMRealOGT, d, select(isC, c, best))
            let notD = LLVMBuildNot(builder, isD, "")!, notCD = LLVMBuildAnd(builder, notD, LLVMBuildNot(builder, isC, ""), "")!
            let da = select(LLVMBuildAnd(builder, notCD, LLVMBuildNot(builder, isB, ""), "")!, g, zero)
            let db = select(LLVMBuildAnd(builder, notCD, isB, "")!, g, zero)
            let dc = select(LLVMBuildAnd(builder, notD, isC, "")!, g, zero)
            let dd = select(isD, g, zero)
            for (row, (left, right)) in [(top, (da, db)), (bottom, (dc, dd))] {
                if lanes == 1 {
                    store(left, dx, row)
                    store(right, dx, iadd(row, int(1)))
                } else {
                    store(shuffle(left, with: right, (0..<lanes).flatMap { [$0, $0 + lanes] }.prefix(lanes).map { $0 }), dx, row)
                    store(shuffle(left, with: right, (0..<lanes).flatMap { [$0, $0 + lanes] }.suffix(lanes).map { $0 }), dx, iadd(row, int(lanes)))
                }
            }
        }
        loop(0, oh, unroll: false) { oy in
            // Whole vectors of windows, then half vectors (a 5-window row: 4 + 1), then single ones.
            var done = 0
            for lanes in [vectorWidth, vectorWidth / 2] where lanes >= 4 {
                let end = done + (ow - done) / lanes * lanes
                loop(done, end, step: lanes, unroll: false) { ox in windows(oy, ox, lanes: lanes) }
                done = end
            }
            loop(done, ow, unroll: false) { ox in windows(oy, ox, lanes: 1) }
            if w > 2 * ow {
                store(float(0), dx, iadd(imul(oy, int(2 * w)), int(w - 1)))
                store(float(0), dx, iadd(imul(oy, int(2 * w)), int(2 * w - 1)))
            }
        }
        fill(pointer(dx, int(2 * oh * w)), count: int((h - 2 * oh) * w), with: 0)
    }

    /// conv2d_weight_grad as a GEMM per image and group, summed over the images in C:
    /// dW[OCg, ICg*KH*KW] += dy[OCg, OH*OW] x unfolded[ICg*KH*KW, OH*OW]^T (the unfolded image
    /// read down its columns by the packing of B). Threads take groups; or input channels, each
    /// unfolding and packing only its own (`.columns`); or rows of dW.
    func convolutionWeightGradient(_ g: ConvGeometry, transposed: Bool, dw: LLVMValue, x: LLVMValue, dy: LLVMValue, scratch: LLVMValue, threadScratchFloats: Int,
                                   split: ThreadSplit, thread: LLVMValue, threads: Int) {
        let (depth, plane, rowsPerGroup, taps) = (g.unfoldedRows, g.outputPlane, g.groupOutChannels, g.kernelH * g.kernelW)
        let layout = g.weightGradientScratch
        let unfolded = pointer(scratch, imul(thread, int(threadScratchFloats)))
        let packing = pointer(unfolded, int(layout.packing)), partial = pointer(unfolded, int(layout.partial))
        var groups = unitShare(split, count: g.groups, thread: thread, threads: threads)
        var rows = (start: int(0), end: int(rowsPerGroup)), channels = (start: int(0), end: int(g.groupChannels))
        func share(_ total: Int, _ chunk: Int) -> (LLVMValue, LLVMValue) {
            let start = imin(imul(thread, int(chunk)), int(total))
            return (start, imin(iadd(start, int(chunk)), int(total)))
        }
        switch split {
        case let .rows(total, chunk): (groups, rows) = ((int(0), int(g.groups)), share(total, chunk))
        case let .columns(total, chunk): (groups, channels) = ((int(0), int(g.groups)), share(total, chunk))
        default: break
        }
        let m = isub(rows.end, rows.start), channelCount = isub(channels.end, channels.start)
        let unfoldedHere = imul(channelCount, int(taps))
        let blocking = GemmBlocking(vectorWidth: vectorWidth)
        // `transposed` (the plan's, for fewer output channels than a register block's rows): the
        // product dW^T[K, OCg] += unfolded x dy^T fills the register blocks and packs the
        // unfolded image contiguously; dW^T is kept in scratch and transposed at the end.
        let work = LLVMBuildAnd(builder, LLVMBuildICmp(builder, LLVMIntSGT, m, int(0), "")!, LLVMBuildICmp(builder, LLVMIntSGT, channelCount, int(0), "")!, "")!
        ifElse(work, then: {
            loop(from: groups.start, to: groups.end) { group in
                let firstRow = iadd(imul(group, int(rowsPerGroup)), rows.start)
                loop(0, g.batch, unroll: false) { n in
                    let firstChannel = iadd(iadd(imul(n, int(g.channels)), imul(group, int(g.groupChannels))), channels.start)
                    let image = pointer(x, imul(firstChannel, int(g.inputPlane)))
                    if g.needsUnfold { unfold(g, input: image, into: unfolded, firstRow: int(0), rows: int(g.outH), channels: channelCount) }
                    let columns = g.needsUnfold ? unfolded : image
                    let gradient = imul(iadd(imul(n, int(g.outChannels)), firstRow), int(plane))
                    let accumulate = LLVMBuildICmp(builder, LLVMIntSGT, n, int(0), "")!
                    if transposed {
                        packedGemm(blocking, m: unfoldedHere, n: m, maxM: depth, k: plane, a: MatrixView(base: columns, offset: int(0), rowStride: plane),
                                   b: MatrixView(base: dy, offset: gradient, rowStride: 1, columnStride: plane),
                                   c: MatrixView(base: partial, offset: int(0), rowStride: rowsPerGroup), bias: .none, epilogue: nil,
                                   packing: packing, accumulate: accumulate)
                    } else {
                        packedGemm(blocking, m: m, n: unfoldedHere, maxM: rowsPerGroup, k: plane, a: MatrixView(base: dy, offset: gradient, rowStride: plane),
                                   b: MatrixView(base: columns, offset: int(0), rowStride: 1, columnStride: plane),
                                   c: MatrixView(base: dw, offset: iadd(imul(firstRow, int(depth)), imul(channels.start, int(taps))), rowStride: depth),
                                   bias: .none, epilogue: nil, packing: packing, accumulate: accumulate)
                    }
                }
                if transposed {
                    loop(from: int(0), to: m) { o in
                        loop(from: int(0), to: unfoldedHere) { j in
                            let at = iadd(imul(iadd(firstRow, o), int(depth)), iadd(imul(channels.start, int(taps)), j))
                            store(load(partial, iadd(imul(j, int(rowsPerGroup)), o)), dw, at)
                        }
                    }
                }
            }
        }, else: {})
    }
}
