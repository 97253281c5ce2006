import Foundation
import LatheIR

/// ONNX ops written with reshapes, transposes, concatenations, reductions and elementwise ops:
/// Tile, DepthToSpace and SpaceToDepth; InstanceNormalization, GroupNormalization and
/// MeanVarianceNormalization; LpPool (through an average pool); and the ops whose result the shapes alone decide (EyeLike, the
/// window functions), computed at import. Each follows its definition in ONNX's operator docs.
extension OpHandlers {
    static let layout: [String: Handler] = [
        "Tile": { c in
            let x = try c.required(0)
            guard let repeats = try c.constantInput(1, "repeats")?.intValues, repeats.count == c.shape(x).count, repeats.allSatisfy({ $0 >= 0 }) else {
                throw c.fail("needs a non-negative repeat for each of the input's \(c.shape(x).count) axes")
            }
            guard elementCount(zip(c.shape(x), repeats).map { $0 * $1 }) != nil, repeats.allSatisfy({ $0 <= maximumElementCount }) else {
                throw c.fail("tiles \(c.shape(x)) by \(repeats), too many elements")
            }
            var y = x
            for (axis, times) in repeats.enumerated() where times != 1 {
                if times == 0 {
                    var shape = c.shape(y)
                    shape[axis] = 0
                    y = try c.apply(.slice(starts: Array(repeating: 0, count: shape.count), ends: shape, steps: Array(repeating: 1, count: shape.count)), [y],
                                    name: "tile\(axis)")
                } else {
                    y = try c.apply(.concat(axis: axis), Array(repeating: y, count: times), name: "tile\(axis)")
                }
            }
            return [y]
        },
        "DepthToSpace": { c in
            // [N, C, H, W] to [N, C / b^2, H b, W b]; DCR: depth is (b, b, C'), CRD: (C', b, b).
            let x = try c.required(0)
            let (n, channels, h, w) = try nchw(x, c)
            let b = c.node.int("blocksize", 0)
            guard b > 0, b <= channels, channels % b == 0, (channels / b) % b == 0, elementCount([n, channels, h, b, w, b]) != nil else {
                throw c.fail("has blocksize \(b), which must be positive and divide \(channels) channels twice")
            }
            let depth = channels / (b * b)
            let crd = try depthMode(c)
            let split = try reshape(x, to: crd ? [n, depth, b, b, h, w] : [n, b, b, depth, h, w], c)
            let moved = try c.apply(.transpose(perm: crd ? [0, 1, 4, 2, 5, 3] : [0, 3, 4, 1, 5, 2]), [split], name: "blocks")
            return [try reshape(moved, to: [n, depth, h * b, w * b], c)]
        },
        "SpaceToDepth": { c in
            // [N, C, H, W] to [N, C b^2, H / b, W / b]; DCR: depth is (b, b, C), CRD: (C, b, b).
            let x = try c.required(0)
            let (n, channels, h, w) = try nchw(x, c)
            let b = c.node.int("blocksize", 0)
            guard b > 0, h % b == 0, w % b == 0, elementCount([n, channels, b, b, h, w]) != nil else {
                throw c.fail("has blocksize \(b), which must be positive and divide height \(h) and width \(w)")
            }
            let crd = try depthMode(c)
            let split = try reshape(x, to: [n, channels, h / b, b, w / b, b], c)
            let moved = try c.apply(.transpose(perm: crd ? [0, 1, 3, 5, 2, 4] : [0, 3, 5, 1, 2, 4]), [split], name: "blocks")
            return [try reshape(moved, to: [n, channels * b * b, h / b, w / b], c)]
        },
        "InstanceNormalization": { c in
            // Each (sample, channel) normalized over its spatial axes, then scale[c] x + bias[c].
            let x = try c.required(0)
            let shape = c.shape(x)
            guard shape.count >= 3 else { throw c.fail("needs [N, C, spatial...], got \(shape)") }
            let normalized = try normalize(x, axes: Array(2..<shape.count), epsilon: c.node.float("epsilon", 1e-5), c)
            let perChannel = [shape[1]] + Array(repeating: 1, count: shape.count - 2)
            let scaled = try c.apply(.binary(.mul), [normalized, try reshape(try c.required(1), to: perChannel, c)], name: "scaled")
            return [try c.apply(.binary(.add), [scaled, try reshape(try c.required(2), to: perChannel, c)])]
        },
        "GroupNormalization": { c in
            // Channels in num_groups groups, each (sample, group) normalized over its channels'
            // spatial extent; scale and bias per channel (opset 21), per group before.
            let x = try c.required(0)
            let shape = c.shape(x)
            let groups = c.node.int("num_groups", 0)
            guard shape.count >= 2, groups > 0, shape[1] % groups == 0 else {
                throw c.fail("needs [N, C, ...] with C divisible by num_groups \(groups), got \(shape)")
            }
            let grouped = try reshape(x, to: [shape[0], groups, shape.dropFirst().reduce(1, *) / groups], c)
            let normalized = try reshape(try normalize(grouped, axes: [2], epsilon: c.node.float("epsilon", 1e-5), c), to: shape, c)
            let (scale, bias) = (try c.required(1), try c.required(2))
            let perGroup = c.shape(scale).reduce(1, *) == groups && groups != shape[1]
            func perChannel(_ v: ImportedValue, _ name: String) throws -> ImportedValue {
                let rest = Array(repeating: 1, count: shape.count - 2)
                guard perGroup else { return try reshape(v, to: [shape[1]] + rest, c) }
                let column = try reshape(v, to: [groups, 1], c)
                let spread = try c.apply(.concat(axis: 1), Array(repeating: column, count: shape[1] / groups), name: name)
                return try reshape(spread, to: [shape[1]] + rest, c)
            }
            let scaled = try c.apply(.binary(.mul), [normalized, try perChannel(scale, "scale_per_channel")], name: "scaled")
            return [try c.apply(.binary(.add), [scaled, try perChannel(bias, "bias_per_channel")])]
        },
        "MeanVarianceNormalization": { c in
            // ONNX's function: (X - E[X]) / (sqrt(E[X^2] - E[X]^2) + 1e-9) over the axes.
            let x = try c.required(0)
            let rank = c.shape(x).count
            let axes = try (c.node.ints("axes") ?? [0, 2, 3]).map { try c.axis($0, rank: rank) }.sorted()
            let mean = try c.apply(.reduce(.mean, axes: axes, keepDims: true), [x], name: "mean")
            let meanOfSquares = try c.apply(.reduce(.mean, axes: axes, keepDims: true), [try c.apply(.binary(.mul), [x, x], name: "squares")], name: "mean_squares")
            let variance = try c.apply(.binary(.sub), [meanOfSquares, try c.apply(.binary(.mul), [mean, mean], name: "mean_squared")], name: "variance")
            let deviation = try c.apply(.binary(.add), [try c.apply(.unary(.sqrt), [variance], name: "deviation"), c.scalar(1e-9, c.dtype(x))], name: "deviation_eps")
            return [try c.apply(.binary(.div), [try c.apply(.binary(.sub), [x, mean], name: "centered"), deviation])]
        },
        "EyeLike": { c in
            // Ones on the k-th diagonal of the input's 2-D shape, of dtype (else the input's type).
            let x = try c.required(0)
            let shape = c.shape(x)
            guard shape.count == 2 else { throw c.fail("needs a 2-D input, got \(shape)") }
            let k = c.node.int("k", 0)
            let type = try c.node.attribute("dtype").map { attribute -> DType in
                guard let t = DType(onnxCode: Int(attribute.i)) else { throw c.fail("has dtype \(attribute.i), which Lathe does not compute") }
                return t
            } ?? c.dtype(x)
            let ones = (0..<shape[0]).flatMap { i in (0..<shape[1]).map { j in Float(j - i == k ? 1 : 0) } }
            return [.constant(ConstantTensor(try HostTensor(shape: shape, scalars: ones).converted(to: type)))]
        },
        "LpPool": { c in
            // (sum over the window of |x|^p)^(1/p): an average pool of |x|^p, pads counted as
            // zeros, times the window's cells.
            let p = c.node.int("p", 2)
            guard p >= 1 else { throw c.fail("has p \(p); it must be at least 1") }
            guard c.node.int("ceil_mode", 0) == 0 else { throw c.unsupported("ceil_mode is not supported for LpPool") }
            let magnitude: ScalarExpr = p == 1 ? .unary(.abs, .arg(0)) : p == 2 ? .arg(0) * .arg(0) : .binary(.pow, .unary(.abs, .arg(0)), .const(Float(p)))
            let powered = try c.apply(.fusedElementwise(magnitude), [try c.required(0)], name: "powered")
            let mean = try pool(.average, c, of: powered, countsPads: true)
            let cells = (c.node.ints("kernel_shape") ?? []).reduce(1, *)
            let root: ScalarExpr = p == 1 ? .arg(0) * .const(Float(cells)) : p == 2 ? .unary(.sqrt, .arg(0) * .const(Float(cells)))
                : .binary(.pow, .arg(0) * .const(Float(cells)), .const(1 / Float(p)))
            return [try c.apply(.fusedElementwise(root), [mean])]
        },
        "HannWindow": { c in try [window(c) { n, size in 0.5 - 0.5 * cos(2 * .pi * n / size) }] },
        "HammingWindow": { c in try [window(c) { n, size in 25.0 / 46 - 21.0 / 46 * cos(2 * .pi * n / size) }] },
        "BlackmanWindow": { c in try [window(c) { n, size in 0.42 - 0.5 * cos(2 * .pi * n / size) + 0.08 * cos(4 * .pi * n / size) }] },
    ]

    /// Whether DepthToSpace's or SpaceToDepth's mode is CRD (else DCR, the default).
    private static func depthMode(_ c: ImportContext) throws -> Bool {
        let mode = c.node.string("mode", "DCR")
        guard mode == "DCR" || mode == "CRD" else { throw c.fail("has mode '\(mode)' (DCR or CRD)") }
        return mode == "CRD"
    }

    /// An input's [N, C, H, W].
    private static func nchw(_ x: ImportedValue, _ c: ImportContext) throws -> (Int, Int, Int, Int) {
        let shape = c.shape(x)
        guard shape.count == 4 else { throw c.fail("needs [N, C, H, W], got \(shape)") }
        return (shape[0], shape[1], shape[2], shape[3])
    }

    /// (x - mean) / sqrt(variance + epsilon) over the axes (variance as the mean squared
    /// deviation).
    private static func normalize(_ x: ImportedValue, axes: [Int], epsilon: Float, _ c: ImportContext) throws -> ImportedValue {
        let mean = try c.apply(.reduce(.mean, axes: axes, keepDims: true), [x], name: "mean")
        let centered = try c.apply(.binary(.sub), [x, mean], name: "centered")
        let variance = try c.apply(.reduce(.mean, axes: axes, keepDims: true), [try c.apply(.binary(.mul), [centered, centered], name: "squared")], name: "variance")
        let shifted = try c.apply(.binary(.add), [variance, c.scalar(epsilon, c.dtype(x))], name: "variance_eps")
        return try c.apply(.binary(.div), [centered, try c.apply(.unary(.sqrt), [shifted], name: "deviation")], name: "normalized")
    }

    /// A window of `size` (operand 1, known at import) values f(n, N) for n in 0..<size, N the
    /// size, or size - 1 when periodic is 0 (symmetric), in output_datatype (f32 by default).
    private static func window(_ c: ImportContext, _ f: (Double, Double) -> Double) throws -> ImportedValue {
        guard let size = try c.constantInput(0, "size")?.intValues.first, size >= 0, size <= maximumElementCount else { throw c.fail("needs a non-negative size") }
        let periodic = c.node.int("periodic", 1) != 0
        let denominator = Double(periodic ? size : size - 1)
        let code = c.node.int("output_datatype", 1)
        guard let type = DType(onnxCode: code) else { throw c.fail("has output_datatype \(code), which Lathe does not compute") }
        let values = (0..<size).map { Float(f(Double($0), denominator)) }
        return .constant(ConstantTensor(try HostTensor(shape: [size], scalars: values).converted(to: type)))
    }
}
