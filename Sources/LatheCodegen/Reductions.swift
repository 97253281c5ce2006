import CLLVM
import LatheIR

/// Reductions, pooling and softmax.
extension IRBuilder {
    /// Fills the output with the identity, then walks the input in its own order and folds each
    /// element into its output cell (the output seen with stride 0 on the reduced axes), so the
    /// input is read contiguously and the loop vectorizes whenever the last axis is kept.
    func reduce(_ kind: ReduceKind, axes: [Int], output: LLVMValue, input: LLVMValue, inShape: [Int], type: DType = .float32) {
        var kept = inShape
        for axis in axes { kept[axis] = 1 }
        let count = kept.reduce(1, *)
        guard type == .float32 else { return integerReduce(kind, output: output, input: input, inShape: inShape, kept: kept, type: type) }
        let identity: Float = kind == .max ? -.infinity : kind == .min ? .infinity : kind == .prod ? 1 : 0
        elementwise(shape: [count], output: StridedView(base: output, strides: [1]), inputs: []) { _, lanes in float(identity, lanes: lanes) }
        // The reduced axes at the end make contiguous runs (a convolution's bias gradient sums
        // each channel's plane): fold each run in vectors, then into its output once.
        var split = inShape.count, run = 1
        while split > 0, axes.contains(split - 1) { split -= 1; run *= inShape[split] }
        let combine: (LLVMValue, LLVMValue) -> LLVMValue = {
            switch kind {
            case .max: self.maximum($1, $0)
            case .min: self.minimum($1, $0)
            case .prod: self.mul($0, $1)
            case .sum, .mean: self.add($0, $1)
            }
        }
        if run >= 2 * vectorWidth {
            let prefix = Array(inShape[..<split])
            let outStrides = broadcastStrides(of: Array(kept[..<split]), to: prefix)
            let inner = prefix.indices.map { prefix[($0 + 1)...].reduce(1, *) }
            loop(0, prefix.reduce(1, *), unroll: false) { row in
                let value = foldRow(input, start: imul(row, int(run)), length: run, identity: identity, combine: combine)
                var at = int(0)
                for i in prefix.indices where outStrides[i] != 0 {
                    let index = LLVMBuildURem(builder, LLVMBuildUDiv(builder, row, int(inner[i]), "")!, int(prefix[i]), "")!
                    at = iadd(at, imul(index, int(outStrides[i])))
                }
                store(combine(load(output, at), value), output, at)
            }
        } else {
            let cell = StridedView(base: output, strides: broadcastStrides(of: kept, to: inShape))
            elementwise(shape: inShape, output: cell, inputs: [cell, StridedView(base: input, strides: contiguousStrides(inShape))]) { v, _ in combine(v[0], v[1]) }
        }
        if kind == .mean {
            let scale = Float(1) / Float(inShape.reduce(1, *) / max(count, 1))
            let all = StridedView(base: output, strides: [1])
            elementwise(shape: [count], output: all, inputs: [all]) { v, _ in mul(v[0], float(scale, like: v[0])) }
        }
    }

    /// An integer reduction, in its type (integers wrap): the output filled with the identity
    /// (the type's least or greatest value for max and min), then each input element folded into
    /// its cell, one at a time.
    private func integerReduce(_ kind: ReduceKind, output: LLVMValue, input: LLVMValue, inShape: [Int], kept: [Int], type: DType) {
        let bits = type.byteSize * 8
        let identity: UInt64
        switch kind {
        case .sum, .mean: identity = 0
        case .prod: identity = 1
        case .max: identity = type.isSigned ? UInt64(1) << (bits - 1) : 0
        case .min: identity = type.isSigned ? (UInt64(1) << (bits - 1)) - 1 : UInt64.max
        }
        let fn: ScalarBinary = kind == .max ? .max : kind == .min ? .min : kind == .prod ? .mul : .add
        let start = LLVMConstInt(integerType(bits, lanes: 1), identity, 0)!
        let all = StridedView(base: output, strides: [1], dtype: type)
        elementwise(shape: [kept.reduce(1, *)], output: all, inputs: []) { _, lanes in constant(start, lanes: lanes) }
        let cell = StridedView(base: output, strides: broadcastStrides(of: kept, to: inShape), dtype: type)
        elementwise(shape: inShape, output: cell, inputs: [cell, StridedView(base: input, strides: contiguousStrides(inShape), dtype: type)]) { v, lanes in
            emit(.binary(fn, .arg(0), .arg(1)), v, types: [type, type], context: type, lanes: lanes)
        }
    }

    /// Max or average over each window. The window is unrolled; a tap is bounds-checked only
    /// where the padding can reach it. Split among threads (`.units`), a thread takes a run of
    /// the N x C planes.
    func pool2d(_ a: Pool2DAttributes, output: LLVMValue, input: LLVMValue, inShape: [Int], outShape: [Int],
                split: ThreadSplit = .single, thread: LLVMValue? = nil, threads: Int = 1) {
        let (h, w, oh, ow) = (inShape[2], inShape[3], outShape[2], outShape[3])
        let padded = a.pads.contains { $0 > 0 }
        let planes = inShape[0] * inShape[1]
        // Interior outputs, whose taps all fall inside the input, run whole vectors at a time
        // (with a horizontal stride of 1 or 2, no horizontal dilation): rows [yFirst, yStop),
        // columns [xFirst, xStop). The outputs that reach into the padding go one at a time.
        let (stride, width) = (a.strides[1], vectorWidth)
        let vectorizes = stride <= 2 && a.dilations[1] == 1 && width > 1
        /// From the first output whose first tap is inside the input to the last whose last is.
        func interior(size: Int, outputs: Int, pad: Int, stride: Int, reach: Int) -> (first: Int, stop: Int) {
            (ConvGeometry.validRange(count: outputs, size: size, stride: stride, pad: pad, tap: 0).lowerBound,
             ConvGeometry.validRange(count: outputs, size: size, stride: stride, pad: pad, tap: reach).upperBound)
        }
        let (yFirst, yStop) = interior(size: h, outputs: oh, pad: a.pads[0], stride: a.strides[0], reach: (a.kernel[0] - 1) * a.dilations[0])
        let (xFirst, xStop) = interior(size: w, outputs: ow, pad: a.pads[1], stride: stride, reach: a.kernel[1] - 1)
        /// Whether a vector of outputs ending before `end` reads inside the row (a stride-2 vector
        /// reads one float past its last output's last tap, the odd lane after it).
        func inside(_ end: Int) -> Bool { end <= xStop && stride * end - 1 + (stride - 1) + a.kernel[1] - 1 - a.pads[1] <= w - 1 }
        var vectorEnd = xFirst
        if vectorizes {
            while inside(vectorEnd + width) { vectorEnd += width }
        }
        // The interior outputs left after the whole vectors: one more vector ending at the last
        // of them, overlapping the one before (it writes the same values again: 13 outputs of
        // a 26-wide row are 0..7, then 5..12). Its loads end at its last output's last tap.
        let overlapped = vectorizes && vectorEnd < xStop && xStop - xFirst >= width
        // Rows of fewer interior outputs than a vector (the Keras CNN's 11 x 11 planes pooled to
        // 5 x 5) run one masked vector, not one output at a time (benchmarks/RESULTS.md, "Measurements behind
        // choices in the code").
        let shortRow = vectorizes && xStop - xFirst > 1 && xStop - xFirst < width ? xStop - xFirst : nil
        forEachPlane(count: planes, split: split, thread: thread, threads: threads) { plane in
            let inPlane = imul(plane, int(h * w))
            let outPlane = imul(plane, int(oh * ow))
            /// `atRowEnd`: the last vector of the row, whose stride-2 taps read the second
            /// vector one float early, so as not to read past the last tap.
            /// `valid`: only the first `valid` outputs exist, and only their taps are read.
            func vectorOutputs(_ oy: LLVMValue, _ ox: LLVMValue, atRowEnd: Bool = false, valid: Int? = nil) {
                let rowStart = iadd(inPlane, isub(imul(ox, int(stride)), int(a.pads[1])))
                var acc = float(a.kind == .max ? -.infinity : 0, lanes: width)
                func combine(_ x: LLVMValue, _ y: LLVMValue) -> LLVMValue { a.kind == .max ? maximum(x, y) : add(x, y) }
                func rowIndex(_ ky: Int) -> LLVMValue {
                    iadd(rowStart, imul(iadd(imul(oy, int(a.strides[0])), int(ky * a.dilations[0] - a.pads[0])), int(w)))
                }
                if valid == nil && stride == 2 && a.kernel[1] <= 3 {
                    // Rows first, then taps: the window's rows are reduced over the 2 x width
                    // inputs the outputs read (and, for a third tap, the one after them), and
                    // each tap is every other lane of that, from its offset: 2 or 3 loads a row
                    // and a shuffle a tap, where each tap of each row took two loads and a
                    // shuffle (ResNet-50's 3 x 3 max pool: 18 loads and 9 shuffles a vector).
                    // A max pool takes MAXPS, which drops a NaN, and checks the loads for NaNs
                    // apart: only a vector whose inputs hold one takes NumPy's maximum (ResNet's
                    // and SqueezeNet's first pools: 2.3 to 3 times faster).
                    let rows = (0..<a.kernel[0]).map { ky -> (LLVMValue, LLVMValue, LLVMValue?) in
                        let row = rowIndex(ky)
                        return (load(input, row, lanes: width), load(input, iadd(row, int(width)), lanes: width),
                                a.kernel[1] == 3 ? load(input, iadd(row, int(2 * width))) : nil)
                    }
                    func window(_ combine: (LLVMValue, LLVMValue) -> LLVMValue) -> LLVMValue {
                        var (low, high, next) = rows[0]
                        for (l, h, n) in rows.dropFirst() {
                            (low, high) = (combine(low, l), combine(high, h))
                            if let n { next = combine(next!, n) }
                        }
                        var acc: LLVMValue?
                        for kx in 0..<a.kernel[1] {
                            var tap = shuffle(low, with: high, (0..<width).map { min(kx + 2 * $0, 2 * width - 1) })
                            if kx == 2 { tap = LLVMBuildInsertElement(builder, tap, next!, LLVMConstInt(i32, UInt64(width - 1), 0), "")! }
                            acc = acc.map { combine(tap, $0) } ?? tap
                        }
                        return acc!
                    }
                    let at = iadd(outPlane, iadd(imul(oy, int(ow)), ox))
                    guard a.kind == .max else {
                        return store(div(window(add), float(Float(a.kernel[0] * a.kernel[1]), lanes: width)), output, at)
                    }
                    let fast = window(maxOrSecond)
                    return ifElse(anyNaN(rows.flatMap { [$0.0, $0.1] + ($0.2.map { [$0] } ?? []) }),
                                  then: { store(window(maximum), output, at) }, else: { store(fast, output, at) })
                }
                for ky in 0..<a.kernel[0] {
                    let row = rowIndex(ky)
                    for kx in 0..<a.kernel[1] {
                        let at = iadd(row, int(kx))
                        let value: LLVMValue
                        if let valid {
                            // Output i reads lane stride * i: lanes up to stride * (valid - 1).
                            let reach = stride * (valid - 1) + 1
                            let low = partialLoad(input, at, lanes: width, valid: min(reach, width))
                            value = stride == 1 ? low : evenLanes(low, partialLoad(input, iadd(at, int(width)), lanes: width, valid: max(0, reach - width)))
                        } else if stride == 1 {
                            value = load(input, at, lanes: width)
                        } else if atRowEnd {
                            let low = load(input, at, lanes: width), high = load(input, iadd(at, int(width - 1)), lanes: width)
                            value = shuffle(low, with: high, (0..<width).map { $0 < width / 2 ? 2 * $0 : 2 * $0 + 1 })
                        } else {
                            value = evenLanes(load(input, at, lanes: width), load(input, iadd(at, int(width)), lanes: width))
                        }
                        acc = a.kind == .max ? maximum(value, acc) : add(acc, value)
                    }
                }
                if a.kind == .average { acc = div(acc, float(Float(a.kernel[0] * a.kernel[1]), lanes: width)) }
                partialStore(acc, output, iadd(outPlane, iadd(imul(oy, int(ow)), ox)), valid: valid ?? width)
            }
            func scalarOutputs(_ oy: LLVMValue, from: Int, to: Int) {
                loop(from, to) { ox in
                    let baseY = iadd(imul(oy, int(a.strides[0])), int(-a.pads[0]))
                    let baseX = iadd(imul(ox, int(a.strides[1])), int(-a.pads[1]))
                    var acc = float(a.kind == .max ? -.infinity : 0)
                    var count: LLVMValue = float(0)
                    for ky in 0..<a.kernel[0] {
                        for kx in 0..<a.kernel[1] {
                            let iy = iadd(baseY, int(ky * a.dilations[0])), ix = iadd(baseX, int(kx * a.dilations[1]))
                            var index = iadd(inPlane, iadd(imul(iy, int(w)), ix))
                            var value: LLVMValue
                            if padded {
                                let valid = inBounds(iy, h, ix, w)
                                index = LLVMBuildSelect(builder, valid, index, inPlane, "")
                                value = select(valid, load(input, index), float(a.kind == .max ? -.infinity : 0))
                                count = add(count, LLVMBuildUIToFP(builder, valid, f32, ""))
                            } else {
                                value = load(input, index)
                            }
                            acc = a.kind == .max ? maximum(value, acc) : add(acc, value)
                        }
                    }
                    if a.kind == .average {
                        let divisor = padded && !a.countIncludePad ? count : float(Float(a.kernel[0] * a.kernel[1]))
                        acc = div(acc, divisor)
                    }
                    store(acc, output, iadd(outPlane, iadd(imul(oy, int(ow)), ox)))
                }
            }
            if let shortRow, yFirst < yStop {
                loop(0, yFirst, unroll: false) { oy in scalarOutputs(oy, from: 0, to: ow) }
                loop(yFirst, yStop, unroll: false) { oy in
                    scalarOutputs(oy, from: 0, to: xFirst)
                    vectorOutputs(oy, int(xFirst), valid: shortRow)
                    scalarOutputs(oy, from: xStop, to: ow)
                }
                return loop(yStop, oh, unroll: false) { oy in scalarOutputs(oy, from: 0, to: ow) }
            }
            guard vectorizes, yFirst < yStop, vectorEnd > xFirst || overlapped else {
                return loop(0, oh, unroll: false) { oy in scalarOutputs(oy, from: 0, to: ow) }
            }
            loop(0, yFirst, unroll: false) { oy in scalarOutputs(oy, from: 0, to: ow) }
            loop(yFirst, yStop, unroll: false) { oy in
                scalarOutputs(oy, from: 0, to: xFirst)
                loop(xFirst, vectorEnd, step: width, unroll: false) { ox in vectorOutputs(oy, ox) }
                if overlapped { vectorOutputs(oy, int(xStop - width), atRowEnd: true) }
                scalarOutputs(oy, from: overlapped ? xStop : vectorEnd, to: ow)
            }
            loop(yStop, oh, unroll: false) { oy in scalarOutputs(oy, from: 0, to: ow) }
        }
    }

    /// Lanes 0, 2, 4, ... of the two vectors end to end: every other input, for stride 2.
    private func evenLanes(_ low: LLVMValue, _ high: LLVMValue) -> LLVMValue {
        shuffle(low, with: high, (0..<lanes(of: low)).map { 2 * $0 })
    }

    func inBounds(_ y: LLVMValue, _ h: Int, _ x: LLVMValue, _ w: Int) -> LLVMValue {
        // Unsigned compare: a negative index wraps to a huge one and fails the same test.
        let yOK = LLVMBuildICmp(builder, LLVMIntULT, y, int(h), "")!
        let xOK = LLVMBuildICmp(builder, LLVMIntULT, x, int(w), "")!
        return LLVMBuildAnd(builder, yOK, xOK, "")
    }

    /// Softmax along one axis, numerically stable: subtract the row's max before exp.
    /// log-softmax is x - max - log(sum(exp(x - max))).
    func softmax(axis: Int, log: Bool, output: LLVMValue, input: LLVMValue, shape: [Int]) {
        let length = shape[axis]
        let inner = shape.dropFirst(axis + 1).reduce(1, *)
        let outer = shape.prefix(axis).reduce(1, *)
        loop(0, outer, unroll: false) { o in
            loop(0, inner, unroll: false) { i in
                let base = iadd(imul(o, int(length * inner)), i)
                let at = { (j: LLVMValue) in self.offset(base, j, times: inner) }
                let largest = variable(float(-.infinity))
                loop(0, length) { j in write(maximum(load(input, at(j)), read(largest, type: f32)), largest) }
                let m = read(largest, type: f32)
                let sum = variable(float(0))
                loop(0, length) { j in
                    let e = exp(sub(load(input, at(j)), m))
                    if !log { store(e, output, at(j)) }
                    write(add(read(sum, type: f32), e), sum)
                }
                let total = read(sum, type: f32)
                if log {
                    let shift = add(m, intrinsic("llvm.log", total))
                    loop(0, length) { j in store(sub(load(input, at(j)), shift), output, at(j)) }
                } else {
                    let scale = div(float(1), total)
                    loop(0, length) { j in store(mul(load(output, at(j)), scale), output, at(j)) }
                }
            }
        }
    }

    /// arg_max / arg_min along an axis, one output at a time: the index of the first (or, with
    /// `lastIndex`, the last) extreme element, a NaN counting as extreme (the interpreter's rule).
    func argExtreme(_ kind: ArgKind, axis: Int, lastIndex: Bool, output: LLVMValue, input: LLVMValue, inShape: [Int]) {
        let (outer, length) = (inShape[..<axis].reduce(1, *), inShape[axis])
        let inner = inShape[(axis + 1)...].reduce(1, *)
        loop(0, outer, unroll: false) { o in
            loop(0, inner, unroll: false) { i in
                let base = iadd(imul(o, int(length * inner)), i)
                let bestSlot = variable(load(input, base)), indexSlot = variable(int(0))
                loop(1, length, unroll: false) { k in
                    let v = load(input, offset(base, k, times: inner))
                    let best = read(bestSlot, type: f32)
                    let (vNaN, bestNaN) = (compare(LLVMRealUNO, v, v), compare(LLVMRealUNO, best, best))
                    let better = compare(kind == .max ? LLVMRealOGT : LLVMRealOLT, v, best)
                    var take = LLVMBuildAnd(builder, LLVMBuildNot(builder, bestNaN, "")!, LLVMBuildOr(builder, better, vNaN, "")!, "")!
                    if lastIndex {
                        let tie = LLVMBuildOr(builder, compare(LLVMRealOEQ, v, best), LLVMBuildAnd(builder, vNaN, bestNaN, "")!, "")!
                        take = LLVMBuildOr(builder, take, tie, "")!
                    }
                    write(select(take, v, best), bestSlot)
                    write(select(take, k, read(indexSlot, type: i64)), indexSlot)
                }
                store(read(indexSlot, type: i64), output, iadd(imul(o, int(inner)), i), .int64)
            }
        }
    }

    /// Running sums (or products) along an axis, one line at a time, in the element type
    /// (TypedFormula's add, mul).
    func cumulativeSum(axis: Int, exclusive: Bool, reverse: Bool, product: Bool, output: LLVMValue, input: LLVMValue, shape: [Int], type: DType) {
        let (outer, length) = (shape[..<axis].reduce(1, *), shape[axis])
        let inner = shape[(axis + 1)...].reduce(1, *)
        loop(0, outer, unroll: false) { o in
            loop(0, inner, unroll: false) { i in
                let base = iadd(imul(o, int(length * inner)), i)
                let total = variable(constant(product ? 1 : 0, type, lanes: 1))
                loop(0, length, unroll: false) { step in
                    let k = reverse ? isub(int(length - 1), step) : step
                    let at = offset(base, k, times: inner)
                    let before = read(total, type: computeType(type))
                    let sum = emit(.binary(product ? .mul : .add, .arg(0), .arg(1)), [before, load(input, at, type)], types: [type, type], context: type, lanes: 1)
                    write(sum, total)
                    store(exclusive ? before : sum, output, at, type)
                }
            }
        }
    }

    /// top_k's positions: k scans of the line, each taking the best element that comes after
    /// the one taken before in top_k's order (LatheIR's Interpreter.topKPrecedes), so that no
    /// working memory is needed. Elements compare in their type's compute type: floats with
    /// NaN above every number, integers signed or not by their type.
    func topK(k: Int, axis: Int, largest: Bool, output: LLVMValue, input: LLVMValue, inShape: [Int], type: DType) {
        let (outer, length) = (inShape[..<axis].reduce(1, *), inShape[axis])
        let inner = inShape[(axis + 1)...].reduce(1, *)
        func load(_ base: LLVMValue, _ index: LLVMValue) -> LLVMValue { self.load(base, index, type) }
        /// (a at i) before (b at j), for a and b of `type` and i64 positions.
        func precedes(_ a: LLVMValue, _ i: LLVMValue, _ b: LLVMValue, _ j: LLVMValue) -> LLVMValue {
            let earlier = LLVMBuildICmp(builder, LLVMIntSLT, i, j, "")!
            guard type.isFloatingPoint else {
                let better = LLVMBuildICmp(builder, largest ? (type.isSigned ? LLVMIntSGT : LLVMIntUGT) : (type.isSigned ? LLVMIntSLT : LLVMIntULT), a, b, "")!
                return select(LLVMBuildICmp(builder, LLVMIntEQ, a, b, "")!, earlier, better)
            }
            let (aNaN, bNaN) = (compare(LLVMRealUNO, a, a), compare(LLVMRealUNO, b, b))
            let better = compare(largest ? LLVMRealOGT : LLVMRealOLT, a, b)
            let numbers = select(compare(LLVMRealOEQ, a, b), earlier, better)
            let bothNaN = LLVMBuildAnd(builder, aNaN, bNaN, "")!
            let oneNaN = LLVMBuildXor(builder, aNaN, bNaN, "")!
            let nanFirst = largest ? aNaN : bNaN
            return select(bothNaN, earlier, select(oneNaN, nanFirst, numbers))
        }
        loop(0, outer, unroll: false) { o in
            loop(0, inner, unroll: false) { i in
                let base = iadd(imul(o, int(length * inner)), i)
                let previous = variable(int(-1))
                loop(0, k, unroll: false) { r in
                    let best = variable(int(-1))
                    loop(0, length, unroll: false) { p in
                        let v = load(input, offset(base, p, times: inner))
                        let last = read(previous, type: i64), chosen = read(best, type: i64)
                        let first = LLVMBuildICmp(builder, LLVMIntSLT, last, int(0), "")!
                        let lastValue = load(input, offset(base, imax(last, int(0)), times: inner))
                        let after = LLVMBuildOr(builder, first, precedes(lastValue, last, v, p), "")!
                        let none = LLVMBuildICmp(builder, LLVMIntSLT, chosen, int(0), "")!
                        let chosenValue = load(input, offset(base, imax(chosen, int(0)), times: inner))
                        let beats = LLVMBuildOr(builder, none, precedes(v, p, chosenValue, chosen), "")!
                        write(select(LLVMBuildAnd(builder, after, beats, "")!, p, chosen), best)
                    }
                    let taken = read(best, type: i64)
                    write(taken, previous)
                    store(taken, output, iadd(imul(iadd(imul(o, int(k)), r), int(inner)), i), .int64)
                }
            }
        }
    }
}
