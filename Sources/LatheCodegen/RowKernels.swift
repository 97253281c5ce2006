import CLLVM
import LatheIR

/// Kernels that work a contiguous row at a time, reading it a few times while it is in cache:
/// layer normalization, and softmax over the last axis. Each pass over a row runs on full
/// vectors with a scalar remainder.
extension IRBuilder {
    /// Folds `map(row[j])` over row = base[start ..< start + length] with `combine`: vector
    /// accumulators over the full vectors, then across their lanes, then the scalar remainder.
    func foldRow(_ base: LLVMValue, start: LLVMValue, length: Int, identity: Float,
                 map: (LLVMValue) -> LLVMValue = { $0 }, combine: (LLVMValue, LLVMValue) -> LLVMValue) -> LLVMValue {
        let width = vectorWidth
        let vectorEnd = width > 1 ? length / width * width : 0
        var total = float(identity)
        if vectorEnd > 0 {
            let type = floatType(lanes: width)
            let accumulator = variable(float(identity, lanes: width))
            loop(0, vectorEnd, step: width) { j in
                write(combine(read(accumulator, type: type), map(load(base, iadd(start, j), lanes: width))), accumulator)
            }
            let sums = read(accumulator, type: type)
            for lane in 0..<width {
                total = combine(total, LLVMBuildExtractElement(builder, sums, LLVMConstInt(i32, UInt64(lane), 0), ""))
            }
        }
        let accumulator = variable(total)
        loop(vectorEnd, length) { j in
            write(combine(read(accumulator, type: f32), map(load(base, iadd(start, j)))), accumulator)
        }
        return read(accumulator, type: f32)
    }

    /// y = (x - mean) / sqrt(variance + epsilon) * scale + bias over each row of the axes from
    /// `axis` on: one pass for the mean, one for the variance (of the centered values, which keeps
    /// it exact for rows far from zero), one to write. Scale and bias hold a value per row
    /// element, or one for all.
    func layerNorm(axis: Int, epsilon: Float, output: LLVMValue, x: [LLVMValue], counts: [Int], shape: [Int], firstRow: LLVMValue, rows: Int) {
        let length = shape.dropFirst(axis).reduce(1, *)
        let parameters = (1..<x.count).map { StridedView(base: x[$0], strides: [counts[$0] == 1 ? 0 : 1]) }
        loop(from: firstRow, to: iadd(firstRow, int(rows))) { r in
            let start = imul(r, int(length))
            let scale = float(1 / Float(length))
            let mean = mul(foldRow(x[0], start: start, length: length, identity: 0, combine: add), scale)
            let squares = foldRow(x[0], start: start, length: length, identity: 0, map: { v in
                let centered = sub(v, splat(mean, lanes: lanes(of: v)))
                return mul(centered, centered)
            }, combine: add)
            let inverse = div(float(1), intrinsic("llvm.sqrt", add(mul(squares, scale), float(epsilon))))
            elementwise(shape: [length], output: StridedView(base: pointer(output, start), strides: [1]),
                        inputs: [StridedView(base: pointer(x[0], start), strides: [1])] + parameters) { v, lanes in
                var y = mul(sub(v[0], splat(mean, lanes: lanes)), splat(inverse, lanes: lanes))
                if v.count > 1 { y = mul(y, v[1]) }
                if v.count > 2 { y = add(y, v[2]) }
                return y
            }
        }
    }

    /// Softmax (or log-softmax) over contiguous rows: the row's max, then exp(x - max) and its
    /// sum, then the scaling, each pass vectorized.
    func softmaxRows(log: Bool, output: LLVMValue, input: LLVMValue, rows: Int, length: Int) {
        loop(0, rows, unroll: false) { r in
            let start = imul(r, int(length))
            let row = { (base: LLVMValue) in StridedView(base: self.pointer(base, start), strides: [1]) }
            let largest = foldRow(input, start: start, length: length, identity: -.infinity, combine: maximum)
            if log {
                let sum = foldRow(input, start: start, length: length, identity: 0,
                                  map: { self.exp(self.sub($0, self.splat(largest, lanes: self.lanes(of: $0)))) }, combine: add)
                let shift = add(largest, intrinsic("llvm.log", sum))
                elementwise(shape: [length], output: row(output), inputs: [row(input)]) { v, lanes in sub(v[0], splat(shift, lanes: lanes)) }
            } else {
                elementwise(shape: [length], output: row(output), inputs: [row(input)]) { v, lanes in exp(sub(v[0], splat(largest, lanes: lanes))) }
                let inverse = div(float(1), foldRow(output, start: start, length: length, identity: 0, combine: add))
                elementwise(shape: [length], output: row(output), inputs: [row(output)]) { v, lanes in mul(v[0], splat(inverse, lanes: lanes)) }
            }
        }
    }
}
