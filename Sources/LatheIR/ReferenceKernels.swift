import Foundation

/// The interpreter's kernels. Accumulations run in Double so that the oracle is more exact
/// than what it checks.
extension Interpreter {
    static func elementwise(_ formula: ScalarExpr, _ x: [HostTensor], type: TensorType, strides: [[Int]]) -> HostTensor {
        guard type.dtype == .float32, x.allSatisfy({ $0.dtype == .float32 }), formula.isFloat32Only else {
            return typedElementwise(formula, x, type: type, strides: strides)
        }
        let f = formula.makeEvaluator()
        var out = HostTensor(shape: type.shape)
        var args = [Float](repeating: 0, count: x.count)
        var i = 0
        forEachOffset(shape: type.shape, strides: strides) { offsets in
            for k in x.indices { args[k] = x[k].scalars[offsets[k]] }
            out.scalars[i] = f(args)
            i += 1
        }
        return out
    }

    /// A contraction's result from its exact sums: f32, or the int32 sums of 8-bit integers
    /// (which never pass 2^31: 255 x 128 x K for K below 65,000).
    private static func contractionResult(_ sums: [Double], shape: [Int], integers: Bool) throws -> HostTensor {
        guard integers else { return try HostTensor(shape: shape, scalars: sums.map { Float($0) }) }
        return try HostTensor(shape: shape, values: sums.map { Int32(clamping: Int64($0)) })
    }

    static func matmul(_ a: HostTensor, _ b: HostTensor, shape: [Int]) throws -> HostTensor {
        try contractionResult(matmulSums(a, b, shape: shape), shape: shape, integers: Op.isIntegerContraction([a.dtype, b.dtype]))
    }

    private static func matmulSums(_ a: HostTensor, _ b: HostTensor, shape: [Int]) -> [Double] {
        let a2 = a.shape.count == 1 ? [1] + a.shape : a.shape
        let b2 = b.shape.count == 1 ? b.shape + [1] : b.shape
        let (m, k, n) = (a2[a2.count - 2], a2[a2.count - 1], b2[b2.count - 1])
        let batch = (try? broadcastShapes(Array(a2.dropLast(2)), Array(b2.dropLast(2)))) ?? []
        let aStrides = broadcastStrides(of: Array(a2.dropLast(2)), to: batch).map { $0 * m * k }
        let bStrides = broadcastStrides(of: Array(b2.dropLast(2)), to: batch).map { $0 * k * n }
        let (av, bv) = (a.scalars, b.scalars)
        var out = [Double](repeating: 0, count: shape.reduce(1, *))
        var c = 0
        forEachOffset(shape: batch, strides: [aStrides, bStrides]) { offsets in
            for i in 0..<m {
                for j in 0..<n {
                    var sum = 0.0
                    for p in 0..<k { sum += Double(av[offsets[0] + i * k + p]) * Double(bv[offsets[1] + p * n + j]) }
                    out[c + i * n + j] = sum
                }
            }
            c += m * n
        }
        return out
    }

    static func dense(_ x: [HostTensor], shape: [Int]) throws -> HostTensor {
        var sums = matmulSums(x[0], x[1], shape: shape)
        if x.count == 3 {
            let (n, bias) = (shape[1], x[2].scalars)
            for i in sums.indices { sums[i] += Double(bias[i % n]) }
        }
        return try contractionResult(sums, shape: shape, integers: Op.isIntegerContraction(x.map(\.dtype)))
    }

    /// Positions in the padding hold `a.padValue` (0 but for a quantized input's zero point).
    static func conv2d(_ x: [HostTensor], _ a: Conv2DAttributes, shape: [Int]) throws -> HostTensor {
        let (input, w) = (x[0].scalars, x[1].scalars)
        let bias = x.count == 3 ? x[2].scalars : []
        let (n, c, h, wd) = (x[0].shape[0], x[0].shape[1], x[0].shape[2], x[0].shape[3])
        let (oc, icg, kh, kw) = (x[1].shape[0], x[1].shape[1], x[1].shape[2], x[1].shape[3])
        let (oh, ow) = (shape[2], shape[3])
        let ocg = oc / a.groups
        let pad = Double(a.padValue)
        var out = [Double](repeating: 0, count: shape.reduce(1, *))
        for b in 0..<n {
            for o in 0..<oc {
                let g = o / ocg
                for y in 0..<oh {
                    for xo in 0..<ow {
                        var sum = bias.isEmpty ? 0 : Double(bias[o])
                        for ci in 0..<icg {
                            let ch = g * icg + ci
                            for ky in 0..<kh {
                                let iy = y * a.strides[0] - a.pads[0] + ky * a.dilations[0]
                                for kx in 0..<kw {
                                    let ix = xo * a.strides[1] - a.pads[1] + kx * a.dilations[1]
                                    let value = iy >= 0 && iy < h && ix >= 0 && ix < wd ? Double(input[((b * c + ch) * h + iy) * wd + ix]) : pad
                                    sum += value * Double(w[((o * icg + ci) * kh + ky) * kw + kx])
                                }
                            }
                        }
                        out[((b * oc + o) * oh + y) * ow + xo] = sum
                    }
                }
            }
        }
        return try contractionResult(out, shape: shape, integers: Op.isIntegerContraction(x.map(\.dtype)))
    }

    /// A max pool of integers (8-bit: Op.pool2d's type rule) picks in f32, which holds them
    /// exactly, and converts back; a window wholly in the padding gives the type's least value.
    static func pool2d(_ x: HostTensor, _ a: Pool2DAttributes, shape: [Int]) throws -> HostTensor {
        let (h, w) = (x.shape[2], x.shape[3])
        let source = x.scalars
        let (oh, ow) = (shape[2], shape[3])
        var out = HostTensor(shape: shape)
        for plane in 0..<(shape[0] * shape[1]) {
            for y in 0..<oh {
                for xo in 0..<ow {
                    var best = -Float.infinity
                    var sum = 0.0
                    var count = 0
                    for ky in 0..<a.kernel[0] {
                        for kx in 0..<a.kernel[1] {
                            let iy = y * a.strides[0] - a.pads[0] + ky * a.dilations[0]
                            let ix = xo * a.strides[1] - a.pads[1] + kx * a.dilations[1]
                            guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                            let v = source[(plane * h + iy) * w + ix]
                            best = v.isNaN || best.isNaN ? .nan : max(best, v)
                            sum += Double(v)
                            count += 1
                        }
                    }
                    let divisor = a.countIncludePad ? a.kernel[0] * a.kernel[1] : count
                    out.scalars[(plane * oh + y) * ow + xo] = a.kind == .max ? best : Float(sum / Double(divisor))
                }
            }
        }
        return x.dtype == .float32 ? out : try out.converted(to: x.dtype)
    }

    static func reduce(_ x: HostTensor, _ kind: ReduceKind, axes: [Int], shape: [Int]) -> HostTensor {
        // Accumulate into an output laid out with reduced axes of stride 0.
        var keptShape = x.shape
        for axis in axes { keptShape[axis] = 1 }
        let outStrides = broadcastStrides(of: keptShape, to: x.shape)
        let count = keptShape.reduce(1, *)
        if x.dtype != .float32 { return typedReduce(x, kind, outStrides: outStrides, count: count, shape: shape) }
        var acc = [Double](repeating: kind == .max ? -.infinity : kind == .min ? .infinity : kind == .prod ? 1 : 0, count: count)
        var i = 0
        forEachOffset(shape: x.shape, strides: [outStrides]) { offsets in
            let v = Double(x.scalars[i])
            switch kind {
            case .sum, .mean: acc[offsets[0]] += v
            case .max: acc[offsets[0]] = v.isNaN || acc[offsets[0]].isNaN ? .nan : max(acc[offsets[0]], v)
            case .min: acc[offsets[0]] = v.isNaN || acc[offsets[0]].isNaN ? .nan : min(acc[offsets[0]], v)
            case .prod: acc[offsets[0]] *= v
            }
            i += 1
        }
        let reducedCount = Double(x.count / max(count, 1))
        var out = HostTensor(shape: shape)
        for j in 0..<count { out.scalars[j] = Float(kind == .mean ? acc[j] / reducedCount : acc[j]) }
        return out
    }

    static func softmax(_ x: HostTensor, axis: Int, log: Bool) -> HostTensor {
        let length = x.shape[axis]
        let inner = x.shape.dropFirst(axis + 1).reduce(1, *)
        let outer = x.shape.prefix(axis).reduce(1, *)
        var out = HostTensor(shape: x.shape)
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * length * inner + i
                var m = -Float.infinity
                for j in 0..<length { m = max(m, x.scalars[base + j * inner]) }
                var sum = 0.0
                for j in 0..<length { sum += Foundation.exp(Double(x.scalars[base + j * inner] - m)) }
                for j in 0..<length {
                    let shifted = Double(x.scalars[base + j * inner] - m)
                    out.scalars[base + j * inner] = Float(log ? shifted - Foundation.log(sum) : Foundation.exp(shifted) / sum)
                }
            }
        }
        return out
    }

    /// Each row (the axes from `axis` on) normalized by its mean and variance, both in double.
    static func layerNorm(_ x: [HostTensor], axis: Int, epsilon: Float) -> HostTensor {
        let length = x[0].shape.dropFirst(axis).reduce(1, *)
        var out = HostTensor(shape: x[0].shape)
        func parameter(_ k: Int, _ j: Int, _ absent: Float) -> Float {
            guard k < x.count else { return absent }
            return x[k].count == 1 ? x[k].scalars[0] : x[k].scalars[j]
        }
        for start in stride(from: 0, to: x[0].count, by: max(length, 1)) {
            let row = x[0].scalars[start..<(start + length)].map(Double.init)
            let mean = row.reduce(0, +) / Double(length)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(length)
            let inverse = 1 / (variance + Double(epsilon)).squareRoot()
            for j in 0..<length {
                out.scalars[start + j] = Float((row[j] - mean) * inverse) * parameter(1, j, 1) + parameter(2, j, 0)
            }
        }
        return out
    }

    /// Op.recurrent, step by step in double precision (the activations in f32, as formulas).
    static func recurrent(_ cell: RecurrentCell, _ x: [HostTensor], shape: [Int]) -> HostTensor {
        let (steps, batch, hidden) = (x[0].shape[0], x[0].shape[1], x[2].shape[1])
        let columns = cell.gates * hidden
        var out = HostTensor(shape: shape)
        let gatesX = x[0].scalars, weights = x[1].scalars
        var h = x[2].scalars.map(Double.init)
        var c = cell.kind == .lstm ? x[3].scalars.map(Double.init) : []
        let candidateBias = cell.kind == .gru ? x[3].scalars.map(Double.init) : []
        let activations = cell.activations.map { fn in
            let evaluate = fn.formula.makeEvaluator()
            return { (v: Double) in Double(evaluate([Float(v)])) }
        }
        /// v R^T over columns [first, first + count): v [hidden] times R^T's rows.
        func product(_ v: ArraySlice<Double>, first: Int, count: Int) -> [Double] {
            var sum = [Double](repeating: 0, count: count)
            for (k, vk) in v.enumerated() where vk != 0 {
                for j in 0..<count { sum[j] += vk * Double(weights[k * columns + first + j]) }
            }
            return sum
        }
        for s in 0..<steps {
            let t = cell.reverse ? steps - 1 - s : s
            var nextH = h, nextC = c
            for b in 0..<batch {
                let row = (t * batch + b) * columns
                let previous = h[(b * hidden)..<((b + 1) * hidden)]
                func input(_ j: Int) -> Double { Double(gatesX[row + j]) }
                switch cell.kind {
                case .lstm:
                    let recurrent = product(previous, first: 0, count: columns)
                    let (f, g, hAct) = (activations[0], activations[1], activations[2])
                    let peephole = x.count > 4 ? x[4].scalars.map(Double.init) : Array(repeating: 0, count: 3 * hidden)
                    for j in 0..<hidden {
                        func gate(_ k: Int) -> Double { input(k * hidden + j) + recurrent[k * hidden + j] }
                        let cPrev = c[b * hidden + j]
                        let (i, forget, candidate) = (f(gate(0) + peephole[j] * cPrev), f(gate(2) + peephole[2 * hidden + j] * cPrev), g(gate(3)))
                        nextC[b * hidden + j] = forget * cPrev + i * candidate
                        let o = f(gate(1) + peephole[hidden + j] * nextC[b * hidden + j])
                        nextH[b * hidden + j] = o * hAct(nextC[b * hidden + j])
                    }
                case .gru:
                    let (f, g) = (activations[0], activations[1])
                    let zr = product(previous, first: 0, count: 2 * hidden)
                    let z = (0..<hidden).map { f(input($0) + zr[$0]) }, r = (0..<hidden).map { f(input(hidden + $0) + zr[hidden + $0]) }
                    let candidate: [Double]
                    if cell.linearBeforeReset {
                        let recurrent = product(previous, first: 2 * hidden, count: hidden)
                        candidate = (0..<hidden).map { g(input(2 * hidden + $0) + r[$0] * (recurrent[$0] + candidateBias[$0])) }
                    } else {
                        let reset = zip(r, previous).map { $0 * $1 }
                        let recurrent = product(reset[...], first: 2 * hidden, count: hidden)
                        candidate = (0..<hidden).map { g(input(2 * hidden + $0) + recurrent[$0] + candidateBias[$0]) }
                    }
                    for j in 0..<hidden { nextH[b * hidden + j] = (1 - z[j]) * candidate[j] + z[j] * previous[previous.startIndex + j] }
                case .rnn:
                    let recurrent = product(previous, first: 0, count: hidden)
                    for j in 0..<hidden { nextH[b * hidden + j] = activations[0](input(j) + recurrent[j]) }
                }
            }
            (h, c) = (nextH, nextC)
            for k in 0..<batch * hidden {
                out.scalars[t * batch * hidden + k] = Float(h[k])
                if cell.kind == .lstm { out.scalars[(steps + t) * batch * hidden + k] = Float(c[k]) }
            }
        }
        return out
    }

    /// Every input element scatters its products with the kernel into the output.
    static func convTranspose2d(_ x: [HostTensor], _ a: ConvTranspose2DAttributes, shape: [Int]) -> HostTensor {
        let (n, c, h, w) = (x[0].shape[0], x[0].shape[1], x[0].shape[2], x[0].shape[3])
        let (ocg, kh, kw) = (x[1].shape[1], x[1].shape[2], x[1].shape[3])
        let (oc, oh, ow) = (shape[1], shape[2], shape[3])
        let cg = c / a.groups
        var acc = [Double](repeating: 0, count: shape.reduce(1, *))
        for b in 0..<n {
            for ch in 0..<c {
                let g = ch / cg
                for iy in 0..<h {
                    for ix in 0..<w {
                        let v = Double(x[0].scalars[((b * c + ch) * h + iy) * w + ix])
                        for o in 0..<ocg {
                            for ky in 0..<kh {
                                let oy = iy * a.strides[0] + ky * a.dilations[0] - a.pads[0]
                                guard oy >= 0, oy < oh else { continue }
                                for kx in 0..<kw {
                                    let ox = ix * a.strides[1] + kx * a.dilations[1] - a.pads[1]
                                    guard ox >= 0, ox < ow else { continue }
                                    acc[((b * oc + g * ocg + o) * oh + oy) * ow + ox] += v * Double(x[1].scalars[((ch * ocg + o) * kh + ky) * kw + kx])
                                }
                            }
                        }
                    }
                }
            }
        }
        var out = HostTensor(shape: shape)
        for i in acc.indices { out.scalars[i] = Float(acc[i] + (x.count == 3 ? Double(x[2].scalars[(i / (oh * ow)) % oc]) : 0)) }
        return out
    }

    static func gather(_ x: HostTensor, indices: [Int], axis: Int, shape: [Int]) -> HostTensor {
        var sources = [Int](repeating: 0, count: shape.reduce(1, *))
        forEachGathered(dataShape: x.shape, axis: axis, indices: indices) { data, gathered in sources[gathered] = data }
        return x.picking(sources, shape: shape)
    }

    /// Calls `body(data offset, gathered offset)` for each element gather copies: the walk that
    /// gather and its gradient share.
    /// `indices` are in range (`checkedIndices`).
    static func forEachGathered(dataShape: [Int], axis: Int, indices: [Int], _ body: (Int, Int) -> Void) {
        let outer = dataShape[..<axis].reduce(1, *), inner = dataShape[(axis + 1)...].reduce(1, *)
        let size = dataShape[axis]
        var i = 0
        for o in 0..<outer {
            for k in indices {
                for j in 0..<inner { body((o * size + k) * inner + j, i); i += 1 }
            }
        }
    }

    static func lrn(_ x: HostTensor, size: Int, alpha: Float, beta: Float, bias: Float) -> HostTensor {
        let channels = x.shape[1]
        let plane = x.shape.dropFirst(2).reduce(1, *)
        var out = HostTensor(shape: x.shape)
        let before = (size - 1) / 2, after = size - 1 - before
        for n in 0..<x.shape[0] {
            for c in 0..<channels {
                for p in 0..<plane {
                    var sum = 0.0
                    for k in max(0, c - before)...min(channels - 1, c + after) {
                        let v = Double(x.scalars[(n * channels + k) * plane + p])
                        sum += v * v
                    }
                    let i = (n * channels + c) * plane + p
                    out.scalars[i] = Float(Double(x.scalars[i]) / Foundation.pow(Double(bias) + Double(alpha) / Double(size) * sum, Double(beta)))
                }
            }
        }
        return out
    }

    static func concat(_ x: [HostTensor], axis: Int, shape: [Int]) -> HostTensor {
        // The operands' elements one after another, then each output element picked from them.
        let joined = (try? HostTensor(shape: [x.reduce(0) { $0 + $1.count }], dtype: x[0].dtype, bytes: x.flatMap(\.rawBytes)))
            ?? HostTensor(shape: [0])
        var sources = [Int](repeating: 0, count: shape.reduce(1, *))
        let outer = shape.prefix(axis).reduce(1, *)
        let inner = shape.dropFirst(axis + 1).reduce(1, *)
        var (offset, start) = (0, 0)
        for t in x {
            let chunk = t.shape[axis] * inner
            for o in 0..<outer {
                for j in 0..<chunk { sources[o * shape[axis] * inner + offset + j] = start + o * chunk + j }
            }
            offset += chunk
            start += t.count
        }
        return joined.picking(sources, shape: shape)
    }
}

/// A float index as gather reads it: truncated toward zero, negative counted from the end as in
/// NumPy, then clamped into 0..<size.
public func gatherIndex(_ value: Float, size: Int) -> Int {
    guard value.isFinite else { return 0 }
    var k = Int(max(min(value, 1e9), -1e9))
    if k < 0 { k += size }
    return min(max(k, 0), size - 1)
}
