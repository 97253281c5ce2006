import Foundation
import LatheIR

/// ONNX ops that are written with the IR's own ops: activations as one elementwise formula,
/// the trigonometric and hyperbolic functions from sin, cos, exp, log and sqrt, and
/// normalizations and Hardmax from reductions. Each formula follows the op's definition in
/// ONNX's operator docs; constants take the operand's type.
extension OpHandlers {
    static let composed: [String: Handler] = [
        "Sin": { c in [try formula(.unary(.sin, .arg(0)), c)] },
        "Cos": { c in [try formula(.unary(.cos, .arg(0)), c)] },
        "Tan": { c in [try formula(.unary(.sin, .arg(0)) / .unary(.cos, .arg(0)), c)] },
        "Sinh": { c in [try formula((.exp(.arg(0)) - .exp(-.arg(0))) * .const(0.5), c)] },
        "Cosh": { c in [try formula((.exp(.arg(0)) + .exp(-.arg(0))) * .const(0.5), c)] },
        "Asinh": { c in [try formula(.unary(.log, .arg(0) + .unary(.sqrt, .arg(0) * .arg(0) + .const(1))), c)] },
        "Acosh": { c in [try formula(.unary(.log, .arg(0) + .unary(.sqrt, .arg(0) * .arg(0) - .const(1))), c)] },
        "Atanh": { c in [try formula(.unary(.log, (.const(1) + .arg(0)) / (.const(1) - .arg(0))) * .const(0.5), c)] },
        "Atan": { c in [try formula(arctangent(.arg(0)), c)] },
        // asin x = atan(x / sqrt(1 - x^2)); acos x = 2 atan(sqrt((1 - x) / (1 + x))), exact at
        // both ends (where the divisions give infinities, whose arctangent is pi / 2).
        "Asin": { c in [try formula(arctangent(.arg(0) / .unary(.sqrt, .const(1) - .arg(0) * .arg(0))), c)] },
        "Acos": { c in [try formula(.const(2) * arctangent(.unary(.sqrt, (.const(1) - .arg(0)) / (.const(1) + .arg(0)))), c)] },
        "Swish": { c in
            let alpha = ScalarExpr.const(c.node.float("alpha", 1))
            return [try formula(.arg(0) / (.const(1) + .exp(-(alpha * .arg(0)))), c)]
        },
        "Mish": { c in
            // x tanh(softplus(x)), softplus written as it cannot overflow.
            let softplus = ScalarExpr.max(.arg(0), .const(0)) + .unary(.log, .const(1) + .exp(-.unary(.abs, .arg(0))))
            return [try formula(.arg(0) * .unary(.tanh, softplus), c)]
        },
        "Celu": { c in
            let alpha = ScalarExpr.const(c.node.float("alpha", 1))
            return [try formula(.max(.arg(0), .const(0)) + .min(.const(0), alpha * (.exp(.arg(0) / alpha) - .const(1))), c)]
        },
        "ThresholdedRelu": { c in
            let alpha = ScalarExpr.const(c.node.float("alpha", 1))
            return [try formula(.select(.binary(.greater, .arg(0), alpha), .arg(0), .const(0)), c)]
        },
        "Shrink": { c in
            let (lambd, bias) = (ScalarExpr.const(c.node.float("lambd", 0.5)), ScalarExpr.const(c.node.float("bias", 0)))
            let below = ScalarExpr.binary(.less, .arg(0), -lambd), above = ScalarExpr.binary(.greater, .arg(0), lambd)
            return [try formula(.select(below, .arg(0) + bias, .select(above, .arg(0) - bias, .const(0))), c)]
        },
        "RMSNormalization": rmsNorm,
        "CumSum": { c in [try cumulative(product: false, c)] },
        "CumProd": { c in [try cumulative(product: true, c)] },
        "OneHot": { c in
            // on where the (wrapped) index equals the position along the new axis, else off.
            let indices = try c.required(0)
            guard let depth = try c.constantInput(1, "depth")?.floats.first.map({ Int($0) }), depth > 0 else { throw c.fail("needs a positive depth") }
            let values = try c.required(2)
            guard c.shape(values).reduce(1, *) == 2 else { throw c.fail("needs values [off, on], got \(c.shape(values))") }
            let rank = c.shape(indices).count + 1
            let axis = try c.axis(c.node.int("axis", -1), rank: rank)
            let type = c.dtype(indices)
            let wrapped = try c.apply(.fusedElementwise(.select(.binary(.less, .arg(0), .const(0)), .arg(0) + .const(Float(depth)), .arg(0))), [indices], name: "wrapped")
            var expanded = c.shape(indices)
            expanded.insert(1, at: axis)
            var positionShape = Array(repeating: 1, count: rank)
            positionShape[axis] = depth
            let positions = ImportedValue.constant(ConstantTensor(shape: positionShape, ints: (0..<depth).map(Int64.init), dtype: type))
            let hot = try c.apply(.binary(.equal), [try reshape(wrapped, to: expanded, c), positions], name: "hot")
            let flat = try reshape(values, to: [2], c)
            let off = try c.apply(.slice(starts: [0], ends: [1], steps: [1]), [flat], name: "off")
            let on = try c.apply(.slice(starts: [1], ends: [2], steps: [1]), [flat], name: "on")
            return [try c.apply(.select, [hot, on, off])]
        },
        "LpNormalization": { c in
            // x / (sum over the axis of |x|^p)^(1/p), p 1 or 2; 0 where the norm is 0.
            let x = try c.required(0)
            let axis = try c.axis(c.node.int("axis", -1), rank: c.shape(x).count)
            let p = c.node.int("p", 2)
            guard p == 1 || p == 2 else { throw c.fail("has p = \(p); ONNX defines 1 and 2") }
            let terms = try c.apply(.fusedElementwise(p == 1 ? .unary(.abs, .arg(0)) : .arg(0) * .arg(0)), [x], name: "terms")
            let sum = try c.apply(.reduce(.sum, axes: [axis], keepDims: true), [terms], name: "sum")
            let norm = p == 1 ? sum : try c.apply(.unary(.sqrt), [sum], name: "norm")
            // A zero norm gives 0 (ONNX's reference), not NaN.
            return [try c.apply(.fusedElementwise(.select(.binary(.equal, .arg(1), .const(0)), .const(0), .arg(0) / .arg(1))), [x, norm])]
        },
        "Hardmax": { c in
            // 1 at the first largest element along the axis, else 0: its index compared with each position's.
            let x = try c.required(0)
            let shape = c.shape(x)
            let axis = try c.axis(c.node.int("axis", -1), rank: shape.count)
            let index = try c.apply(.argExtreme(.max, axis: axis, keepDims: true, lastIndex: false), [x], name: "index")
            var positionShape = Array(repeating: 1, count: shape.count)
            positionShape[axis] = shape[axis]
            let positions = ImportedValue.constant(ConstantTensor(shape: positionShape, ints: (0..<shape[axis]).map(Int64.init)))
            let picked = try c.apply(.binary(.equal), [index, positions], name: "picked")
            return [try cast(picked, to: c.dtype(x), c)]
        },
        "Trilu": { c in
            // The kept triangle of the last two axes (upper: column - row >= k; lower: <= k), zero elsewhere.
            let x = try c.required(0)
            let shape = c.shape(x)
            guard shape.count >= 2 else { throw c.fail("needs a rank of 2 or more, got \(shape)") }
            let k = try c.constantInput(1, "k")?.ints.first ?? 0
            let (rows, columns) = (shape[shape.count - 2], shape[shape.count - 1])
            let upper = c.node.int("upper", 1) != 0
            let keep = (0..<(rows * columns)).map { i -> Bool in
                let offset = Int64(i % columns) - Int64(i / columns)
                return upper ? offset >= k : offset <= k
            }
            let mask = ImportedValue.constant(ConstantTensor(try HostTensor(shape: [rows, columns], values: keep)))
            return [try c.apply(.select, [mask, x, c.scalar(0, c.dtype(x))])]
        },
    ]

    /// The node's operand 0 through a formula of it alone.
    /// CumSum and CumProd: running sums or products along the axis (operand 2, known at import).
    static func cumulative(product: Bool, _ c: ImportContext) throws -> ImportedValue {
        let x = try c.required(0)
        guard let axis = try c.constantInput(1, "axis")?.intValues.first else { throw c.fail("has no axis") }
        return try c.apply(.cumulativeSum(axis: try c.axis(axis, rank: c.shape(x).count), exclusive: c.node.int("exclusive", 0) != 0,
                                          reverse: c.node.int("reverse", 0) != 0, product: product), [x])
    }

    static func formula(_ f: ScalarExpr, _ c: ImportContext) throws -> ImportedValue {
        try c.apply(.fusedElementwise(f), [try c.required(0)])
    }

    /// RMSNormalization over the axes from `axis` on: x / sqrt(mean(x^2) + epsilon) * scale.
    static func rmsNorm(_ c: ImportContext) throws -> [ImportedValue] {
        let x = try c.required(0), scale = try c.required(1)
        let rank = c.shape(x).count
        let axis = try c.axis(c.node.int("axis", -1), rank: rank)
        let epsilon = ScalarExpr.const(c.node.float("epsilon", 1e-5))
        let squared = try c.apply(.fusedElementwise(.arg(0) * .arg(0)), [x], name: "squared")
        let meanSquare = try c.apply(.reduce(.mean, axes: Array(axis..<rank), keepDims: true), [squared], name: "mean_square")
        let inverse = try c.apply(.fusedElementwise(.const(1) / .unary(.sqrt, .arg(0) + epsilon)), [meanSquare], name: "inverse_rms")
        let normalized = try c.apply(.binary(.mul), [x, inverse], name: "normalized")
        return [try c.apply(.binary(.mul), [normalized, scale])]
    }
}

extension OpHandlers {
    static let losses: [String: Handler] = [
        "NegativeLogLikelihoodLoss": { c in [try negativeLogLikelihood(try c.required(0), c)] },
        "SoftmaxCrossEntropyLoss": { c in
            let logProbabilities = try c.apply(.logSoftmax(axis: 1), [try c.required(0)], name: "log_prob")
            return [try negativeLogLikelihood(logProbabilities, c), logProbabilities]
        },
    ]

    /// ONNX's NegativeLogLikelihoodLoss of `input` [N, C, d...] (log-probabilities) with the
    /// node's integer target [N, d...], optional weight [C], ignore_index and reduction:
    /// loss = -input[n, target, d...] * weight[target], 0 where the target is ignore_index;
    /// "mean" divides the sum by the sum of the weights taken.
    static func negativeLogLikelihood(_ input: ImportedValue, _ c: ImportContext) throws -> ImportedValue {
        let target = try c.required(1)
        let (shape, targetShape) = (c.shape(input), c.shape(target))
        guard shape.count >= 2, targetShape == [shape[0]] + Array(shape.dropFirst(2)) else {
            throw c.fail("takes input [N, C, d...] and target [N, d...], got \(shape) and \(targetShape)")
        }
        let type = c.dtype(input)
        var ignored: ImportedValue?
        var index = target
        if let ignore = c.node.attribute("ignore_index") {
            // Ignored targets (which may lie outside the classes) pick class 0, weighted 0.
            let isIgnored = try c.apply(.binary(.equal), [target, c.scalar(Float(ignore.i), c.dtype(target))], name: "ignored")
            index = try c.apply(.select, [isIgnored, c.scalar(0, c.dtype(target)), target], name: "target")
            ignored = isIgnored
        }
        var unsqueezed = targetShape
        unsqueezed.insert(1, at: 1)
        let picked = try c.apply(.gatherElements(axis: 1), [input, try reshape(index, to: unsqueezed, c)], name: "picked")
        var weight: ImportedValue = try c.input(2).map { try c.apply(.gather(axis: 0), [$0, index], name: "weight") } ?? c.scalar(1, type)
        if let ignored { weight = try c.apply(.select, [ignored, c.scalar(0, type), weight], name: "taken") }
        if c.shape(weight) != targetShape {
            weight = try c.apply(.fusedElementwise(.arg(0)), [weight, try c.apply(.cast(to: type), [index], name: "shape")], name: "weights")
        }
        let loss = try c.apply(.fusedElementwise(-(.arg(0) * .arg(1))), [try reshape(picked, to: targetShape, c), weight], name: "losses")
        let all = Array(0..<targetShape.count)
        switch c.node.string("reduction", "mean") {
        case "none": return loss
        case "sum": return try c.apply(.reduce(.sum, axes: all, keepDims: false), [loss])
        case "mean":
            let total = try c.apply(.reduce(.sum, axes: all, keepDims: false), [loss], name: "total")
            let weights = try c.apply(.reduce(.sum, axes: all, keepDims: false), [weight], name: "weight_total")
            return try c.apply(.binary(.div), [total, weights])
        case let other: throw c.fail("has reduction '\(other)' (none, sum or mean)")
        }
    }

    /// atan x as Cephes' atanf computes it (about one unit in the last place of f32): |x| taken
    /// to [0, tan(pi/8)] by atan a = pi/2 + atan(-1/a) past tan(3pi/8) and pi/4 + atan((a - 1) /
    /// (a + 1)) past tan(pi/8), then an odd polynomial, and x's sign.
    static func arctangent(_ x: ScalarExpr) -> ScalarExpr {
        let a = ScalarExpr.unary(.abs, x)
        let big = ScalarExpr.binary(.greater, a, .const(2.414213562373095)), mid = ScalarExpr.binary(.greater, a, .const(0.4142135623730950))
        let base = ScalarExpr.select(big, .const(Float.pi / 2), .select(mid, .const(Float.pi / 4), .const(0)))
        let t = ScalarExpr.select(big, .const(-1) / a, .select(mid, (a - .const(1)) / (a + .const(1)), a))
        let z = t * t
        let p = (((.const(8.05374449538e-2) * z - .const(1.38776856032e-1)) * z + .const(1.99777106478e-1)) * z - .const(3.33329491539e-1)) * z * t + t
        return .unary(.sign, x) * (base + p)
    }
}
