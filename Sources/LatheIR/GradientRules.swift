/// The gradient rule of every op, in one switch: given dy, the gradient of the node's result,
/// each operand's contribution (nil where the op is not differentiable in that operand).
/// Elementwise ops need no rule of their own: their formula is differentiated (ScalarDerivative).
extension Op {
    public func gradients(_ c: GradientContext) throws -> [ValueID?] {
        let x = c.x, dy = c.dy
        func unsupported(_ why: String) -> LatheError {
            .invalidGraph(node: "\(c.node.name) (\(name)\(c.node.location.isKnown ? " at \(c.node.location)" : ""))", reason: "no gradient: \(why)")
        }
        switch self {
        case .input, .constant, .variable, .assign, .dropoutMask:
            return x.map { _ in nil }
        case let .unary(fn):
            // Where the slope is a function of the result, read the result: the input can then
            // die at the op, and a convolution's ReLU stays fused into it.
            if let slope = fn.slopeFromResult { return [try c.elementwise(.arg(0) * slope.substituting([.arg(1)]), [dy, c.node.id], "dx")] }
            return try elementwiseGradients(formula!, operands: x, c)
        case .binary, .fusedElementwise, .select, .cast:
            return try elementwiseGradients(formula!, operands: x, c)
        case let .batchNorm(epsilon):
            // Parameters [C] read along axis 1: as [1, C, 1, ...] they broadcast the NumPy way.
            let rank = c.shape(x[0]).count
            let perChannel = try x.dropFirst().map { p in
                try c.reshape(p, to: [1, c.shape(p)[0]] + Array(repeating: 1, count: rank - 2), "channel")
            }
            return try elementwiseGradients(batchNormFormula(epsilon: epsilon), operands: [x[0]] + perChannel, c, targets: x)
        case .matmul:
            guard c.shape(x[0]).count >= 2, c.shape(x[1]).count >= 2 else { throw unsupported("matmul of a rank-1 operand") }
            let da = c.wanted[0] ? try c.unbroadcast(c.add(.matmul, [dy, c.transposeLastTwo(x[1], "bT")], "da"), to: c.shape(x[0]), "da") : nil
            let db = c.wanted[1] ? try c.unbroadcast(c.add(.matmul, [c.transposeLastTwo(x[0], "aT"), dy], "db"), to: c.shape(x[1]), "db") : nil
            return [da, db]
        case .dense:
            let dx = c.wanted[0] ? try c.add(.matmul, [dy, c.transposeLastTwo(x[1], "wT")], "dx") : nil
            let dw = c.wanted[1] ? try c.add(.matmul, [c.transposeLastTwo(x[0], "xT"), dy], "dw") : nil
            let db = x.count == 3 && c.wanted[2] ? try c.add(.reduce(.sum, axes: [0], keepDims: false), [dy], "db") : nil
            return [dx, dw] + (x.count == 3 ? [db] : [])
        case let .conv2d(a):
            let input = c.shape(x[0]), w = c.shape(x[1])
            var dx: ValueID?
            if c.wanted[0] {
                let out = c.shape(dy)
                let outputPadding = (0..<2).map { (i: Int) -> Int in
                    let covered: Int = (out[2 + i] - 1) * a.strides[i] - a.pads[i] - a.pads[i + 2] + a.dilations[i] * (w[2 + i] - 1) + 1
                    return input[2 + i] - covered
                }
                let t = ConvTranspose2DAttributes(strides: a.strides, pads: a.pads, outputPadding: outputPadding, dilations: a.dilations, groups: a.groups)
                dx = try c.add(.convTranspose2d(t), [dy, x[1]], "dx")
            }
            var dw: ValueID?
            if c.wanted[1] {
                dw = try filterGradient(input: x[0], outputGradient: dy, kernel: Array(w[2...]), a, c)
            }
            let db = x.count == 3 && c.wanted[2] ? try c.add(.reduce(.sum, axes: [0, 2, 3], keepDims: false), [dy], "db") : nil
            return [dx, dw] + (x.count == 3 ? [db] : [])
        case let .convTranspose2d(a):
            let w = c.shape(x[1])
            let conv = Conv2DAttributes(strides: a.strides, pads: a.pads, dilations: a.dilations, groups: a.groups)
            let dx = c.wanted[0] ? try c.add(.conv2d(conv), [dy, x[1]], "dx") : nil
            var dw: ValueID?
            if c.wanted[1] {
                // A transposed convolution is the input gradient of a convolution from its output
                // to its input, so its weights' gradient is that convolution's, roles swapped.
                dw = try filterGradient(input: dy, outputGradient: x[0], kernel: Array(w[2...]), conv, c)
            }
            let db = x.count == 3 && c.wanted[2] ? try c.add(.reduce(.sum, axes: [0, 2, 3], keepDims: false), [dy], "db") : nil
            return [dx, dw] + (x.count == 3 ? [db] : [])
        case let .pool2d(a):
            return [try c.add(.pool2dGrad(a), [x[0], dy], "dx")]
        case .globalAveragePool:
            let s = c.shape(x[0])
            return [try c.expand(dy, like: x[0], scale: 1 / Float(s.dropFirst(2).reduce(1, *)), "dx")]
        case .reshape, .flatten, .dropout:
            return [try c.reshape(dy, to: c.shape(x[0]), "dx")]
        case let .transpose(perm):
            var inverse = perm
            for (i, p) in perm.enumerated() { inverse[p] = i }
            return [try c.add(.transpose(perm: inverse), [dy], "dx")]
        case let .slice(starts, ends, steps):
            guard steps.allSatisfy({ $0 == 1 }) else { throw unsupported("a slice with steps \(steps)") }
            let s = c.shape(x[0])
            return [try c.add(.pad(pads: starts + zip(s, ends).map { $0 - $1 }, value: 0), [dy], "dx")]
        case let .concat(axis):
            let out = c.shape(dy)
            var start = 0
            return try x.map { operand in
                let size = c.shape(operand)[axis]
                defer { start += size }
                var starts = [Int](repeating: 0, count: out.count), ends = out
                (starts[axis], ends[axis]) = (start, start + size)
                return try c.add(.slice(starts: starts, ends: ends, steps: Array(repeating: 1, count: out.count)), [dy], "dx")
            }
        case let .pad(pads, _):
            let s = c.shape(x[0])
            let starts = Array(pads.prefix(s.count))
            return [try c.add(.slice(starts: starts, ends: zip(starts, s).map(+), steps: Array(repeating: 1, count: s.count)), [dy], "dx")]
        case let .softmax(axis):
            // dx = y * (dy - sum(dy * y))
            let y = c.node.id
            let dot = try c.add(.reduce(.sum, axes: [axis], keepDims: true), [c.add(.binary(.mul), [dy, y], "dy_y")], "dot")
            return [try c.elementwise(.arg(1) * (.arg(0) - .arg(2)), [dy, y, dot], "dx")]
        case let .logSoftmax(axis):
            // dx = dy - exp(y) * sum(dy)
            let total = try c.add(.reduce(.sum, axes: [axis], keepDims: true), [dy], "dy_sum")
            return [try c.elementwise(.arg(0) - .exp(.arg(1)) * .arg(2), [dy, c.node.id, total], "dx")]
        case let .reduce(kind, axes, keepDims):
            var kept = c.shape(x[0])
            for axis in axes { kept[axis] = 1 }
            let g = keepDims ? dy : try c.reshape(dy, to: kept, "kept")
            switch kind {
            case .sum: return [try c.expand(g, like: x[0], "dx")]
            case .mean: return [try c.expand(g, like: x[0], scale: Float(kept.reduce(1, *)) / Float(max(c.shape(x[0]).reduce(1, *), 1)), "dx")]
            case .max:
                // Every element equal to the maximum gets dy.
                let m = keepDims ? c.node.id : try c.reshape(c.node.id, to: kept, "max_kept")
                return [try c.elementwise(.arg(0) * (.const(1) - .step(.arg(1) - .arg(2))), [g, m, x[0]], "dx")]
            case .min:
                let m = keepDims ? c.node.id : try c.reshape(c.node.id, to: kept, "min_kept")
                return [try c.elementwise(.arg(0) * (.const(1) - .step(.arg(2) - .arg(1))), [g, m, x[0]], "dx")]
            case .prod:
                throw unsupported("reduce_prod has no gradient rule yet")
            }
        case let .layerNorm(axis, epsilon):
            // x̂ = (x - mean) / sqrt(var + ε), g = dy * scale:
            // dx = (g - mean(g) - x̂ mean(g x̂)) / sqrt(var + ε); dscale = Σ dy x̂; dbias = Σ dy.
            let axes = Array(axis..<c.shape(x[0]).count)
            func mean(_ v: ValueID, _ role: String) throws -> ValueID { try c.add(.reduce(.mean, axes: axes, keepDims: true), [v], role) }
            let centered = try c.add(.binary(.sub), [x[0], mean(x[0], "mean")], "centered")
            let variance = try mean(c.elementwise(.arg(0) * .arg(0), [centered], "squared"), "variance")
            let inverse = try c.elementwise(.const(1) / .unary(.sqrt, .arg(0) + .const(epsilon)), [variance], "inverse_std")
            let normalized = try c.add(.binary(.mul), [centered, inverse], "normalized")
            let g = try c.add(.binary(.mul), [dy, x[1]], "g")
            let gMean = try mean(g, "g_mean"), gxMean = try mean(c.add(.binary(.mul), [g, normalized], "g_x"), "g_x_mean")
            let dx = try c.elementwise((.arg(0) - .arg(1) - .arg(2) * .arg(3)) * .arg(4), [g, gMean, normalized, gxMean, inverse], "dx")
            let dscale = c.wanted[1] ? try c.unbroadcast(c.add(.binary(.mul), [dy, normalized], "dy_x"), to: c.shape(x[1]), "dscale") : nil
            let dbias = x.count == 3 && c.wanted[2] ? try c.unbroadcast(dy, to: c.shape(x[2]), "dbias") : nil
            return [dx, dscale] + (x.count == 3 ? [dbias] : [])
        case .epilogue, .pooled:
            throw unsupported("a fused kernel has no gradient rule: differentiate the graph before the passes fuse it")
        case let .gather(axis):
            return [c.wanted[0] ? try c.add(.gatherGrad(axis: axis, size: c.shape(x[0])[axis]), [x[1], dy], "ddata") : nil, nil]
        case let .lrn(size, alpha, beta, bias):
            return [try lrnGradient(size: size, alpha: alpha, beta: beta, bias: bias, c)]
        case let .augment(a):
            let s = c.shape(x[0])
            return [try c.add(.augmentGrad(a, inputSize: Array(s.suffix(2))), [dy, x[1]], "dx"), nil]
        case .pool2dGrad, .conv2dWeightGrad, .gatherGrad, .augmentGrad:
            throw unsupported("\(name) has no gradient rule (a gradient's gradient)")
        case .recurrent:
            throw unsupported("the fused \(name) has no gradient rule: train the LSTM layer, which is unrolled into steps")
        case .argExtreme, .topK:
            return [nil]   // an index: no slope
        case .gatherElements:
            throw unsupported("gather_elements has no gradient rule yet")
        case .cumulativeSum:
            throw unsupported("\(name) has no gradient rule yet")
        case .gatherND:
            throw unsupported("gather_nd has no gradient rule yet")
        case .scatter:
            throw unsupported("scatter has no gradient rule yet")
        }
    }

    /// An elementwise op's operand gradients: dy times the formula's derivative, summed over the
    /// axes the operand was broadcast along. `targets` are the shapes' owners (by default the
    /// operands themselves).
    private func elementwiseGradients(_ formula: ScalarExpr, operands: [ValueID], _ c: GradientContext, targets: [ValueID]? = nil) throws -> [ValueID?] {
        let shifted = formula.substituting(operands.indices.map { .arg($0 + 1) })
        return try operands.indices.map { k in
            guard c.wanted[k] else { return nil }
            let slope = shifted.derivative(wrt: k + 1)
            if slope == .const(0) { return nil }
            let g = try c.elementwise(ScalarExpr.product(.arg(0), slope), [c.dy] + operands, "d\(k)")
            let summed = try c.unbroadcast(g, to: c.shape(operands[k]), "d\(k)")
            return try c.reshape(summed, to: c.shape((targets ?? operands)[k]), "d\(k)")
        }
    }

    /// LRN: y = x d^-β with d = bias + α/size S(x²), S the sum over the channel window
    /// [c - lo, c + hi] (lo = (size-1)/2, hi = size-1-lo). Then
    /// dx = dy d^-β - (2αβ/size) x T(dy x d^(-β-1)), T the sum over the mirrored window [c - hi, c + lo].
    private func lrnGradient(size: Int, alpha: Float, beta: Float, bias: Float, _ c: GradientContext) throws -> ValueID {
        let x = c.x[0], shape = c.shape(x), rank = shape.count
        let lo = (size - 1) / 2, hi = size - 1 - lo
        /// Σ t[c + j] for j in -before...after, zero outside the channels.
        func windowSum(_ t: ValueID, before: Int, after: Int, _ role: String) throws -> ValueID {
            var pads = [Int](repeating: 0, count: 2 * rank)
            (pads[1], pads[rank + 1]) = (before, after)
            let padded = try c.add(.pad(pads: pads, value: 0), [t], role + "_padded")
            var total: ValueID?
            for m in 0...(before + after) {
                var starts = [Int](repeating: 0, count: rank), ends = shape
                (starts[1], ends[1]) = (m, m + shape[1])
                let part = try c.add(.slice(starts: starts, ends: ends, steps: Array(repeating: 1, count: rank)), [padded], role)
                total = try total.map { try c.add(.binary(.add), [$0, part], role) } ?? part
            }
            return total!
        }
        let squares = try c.elementwise(.arg(0) * .arg(0), [x], "squares")
        let d = try c.elementwise(.const(bias) + .const(alpha / Float(size)) * .arg(0), [windowSum(squares, before: lo, after: hi, "window")], "d")
        let spread = try c.elementwise(.arg(0) * .arg(1) * .binary(.pow, .arg(2), .const(-beta - 1)), [c.dy, x, d], "spread")
        let gathered = try windowSum(spread, before: hi, after: lo, "mirrored")
        let k = 2 * alpha * beta / Float(size)
        return try c.elementwise(.arg(0) * .binary(.pow, .arg(1), .const(-beta)) - .const(k) * .arg(2) * .arg(3), [c.dy, d, x, gathered], "dx")
    }

    /// A convolution's weight gradient, for `input` and the gradient of its output.
    private func filterGradient(input: ValueID, outputGradient dy: ValueID, kernel: [Int], _ a: Conv2DAttributes, _ c: GradientContext) throws -> ValueID {
        try c.add(.conv2dWeightGrad(a, kernel: kernel), [input, dy], "dw")
    }
}

extension UnaryFn {
    /// The slope as a formula of the result $0, for the functions that have one.
    var slopeFromResult: ScalarExpr? {
        let y = ScalarExpr.arg(0)
        switch self {
        case .relu: return .step(y)
        case .sigmoid: return y * (.const(1) - y)
        case .tanh: return .const(1) - y * y
        case .exp: return y
        default: return nil
        }
    }
}
