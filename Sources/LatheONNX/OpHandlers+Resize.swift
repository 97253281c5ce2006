import Foundation
import LatheIR

/// Resize (opsets 10 to 19) and Upsample, as ONNX's reference computes them, one axis at a time
/// from the innermost: each output position o along an axis maps to a position in the input
/// (the coordinate transformation mode), whose neighbours (the taps: 1 or 2 for nearest, 2 for
/// linear, 4 for cubic, more for antialiased downsampling) each weigh by the mode's filter;
/// neighbours past an edge read the edge (or weigh 0, renormalized, with exclude_outside), and
/// with tf_crop_and_resize a position outside the input takes extrapolation_value. The sizes,
/// scales and roi are known at import, so every tap's indices and weights are constants: an axis
/// is a gather per tap, each times its weights, summed (elementwise, so fused); an axis whose
/// output is its input is left out. Weights are computed in double, as the reference computes
/// the whole interpolation.
extension OpHandlers {
    static let resize: [String: Handler] = ["Resize": resize, "Upsample": upsample]

    /// How one axis is resampled.
    struct ResizeRule {
        enum Filter { case nearest(String), linear, cubic(Double) }
        var filter: Filter
        var coordinates: String
        var excludeOutside: Bool
        var antialias: Bool
    }

    static func resize(_ c: ImportContext) throws -> [ImportedValue] {
        let x = try c.required(0)
        let shape = c.shape(x), rank = shape.count
        let (roiIndex, scalesIndex, sizesIndex) = c.opset >= 11 ? (1, 2, 3) : (-1, 1, -1)
        let roi = roiIndex < 0 ? nil : try c.constantInput(roiIndex, "roi").map { $0.floats.map(Double.init) }
        let givenScales = try c.constantInput(scalesIndex, "scales").map { $0.floats.map(Double.init) }
        let givenSizes = sizesIndex < 0 ? nil : try c.constantInput(sizesIndex, "sizes")?.intValues
        let axes = try (c.node.ints("axes") ?? Array(0..<rank)).map { try c.axis($0, rank: rank) }
        guard Set(axes).count == axes.count else { throw c.fail("has repeated axes \(axes)") }

        var scales = Array(repeating: 1.0, count: rank), sizes = shape
        if let givenSizes, !givenSizes.isEmpty {
            guard givenSizes.count == axes.count, givenSizes.allSatisfy({ $0 >= 0 }) else {
                throw c.fail("has sizes \(givenSizes), not one non-negative size for each of its \(axes.count) axes")
            }
            for (size, axis) in zip(givenSizes, axes) {
                guard shape[axis] > 0 || size == 0 else { throw c.fail("resizes the empty axis \(axis) to \(size)") }
                sizes[axis] = size
                scales[axis] = shape[axis] > 0 ? Double(size) / Double(shape[axis]) : 1
            }
            let policy = c.node.string("keep_aspect_ratio_policy", "stretch")
            if policy != "stretch" {
                guard policy == "not_larger" || policy == "not_smaller" else { throw c.fail("has keep_aspect_ratio_policy '\(policy)'") }
                let picked = axes.map { scales[$0] }
                let scale = policy == "not_larger" ? picked.min() ?? 1 : picked.max() ?? 1
                for axis in axes {
                    guard let size = Int(exactly: (scale * Double(shape[axis]) + 0.5).rounded(.down)) else { throw c.fail("has sizes \(givenSizes) that give no size") }
                    (scales[axis], sizes[axis]) = (scale, size)
                }
            }
        } else if let givenScales, !givenScales.isEmpty {
            guard givenScales.count == axes.count, givenScales.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw c.fail("has scales \(givenScales), not one positive scale for each of its \(axes.count) axes")
            }
            for (scale, axis) in zip(givenScales, axes) {
                scales[axis] = scale
                guard let size = Int(exactly: (scale * Double(shape[axis])).rounded(.down)) else { throw c.fail("has scale \(scale), too large") }
                sizes[axis] = size
            }
        } else {
            throw c.fail("has neither scales nor sizes")
        }
        guard elementCount(sizes) != nil else { throw c.fail("resizes \(shape) to \(sizes), too many elements") }
        var regions: [(Double, Double)]? = nil
        if let roi, !roi.isEmpty {
            guard roi.count == 2 * axes.count, roi.allSatisfy(\.isFinite) else {
                throw c.fail("has roi \(roi), not a finite start and end for each of its \(axes.count) axes")
            }
            var full = Array(repeating: (0.0, 1.0), count: rank)
            for (i, axis) in axes.enumerated() { full[axis] = (roi[i], roi[axes.count + i]) }
            regions = full
        }
        let rule = try resizeRule(c)
        if rule.coordinates == "tf_crop_and_resize", regions == nil { throw c.fail("has tf_crop_and_resize without a roi") }
        let extrapolation = c.node.float("extrapolation_value", 0)
        var y = x
        for axis in (0..<rank).reversed() {
            let taps = try resizeTaps(input: shape[axis], output: sizes[axis], scale: scales[axis], roi: regions?[axis], rule, c)
            y = try interpolate(y, axis: axis, taps, extrapolation: extrapolation, c)
        }
        return [y]
    }

    /// Upsample (opsets 7 to 9): Resize with scales for every axis, asymmetric coordinates.
    static func upsample(_ c: ImportContext) throws -> [ImportedValue] {
        let x = try c.required(0)
        let scales = try c.opset >= 9 ? c.constantInput(1, "scales")?.floats : c.node.floats("scales")
        guard let scales, scales.count == c.shape(x).count else { throw c.fail("needs a scale for each of the input's \(c.shape(x).count) axes") }
        let mode = c.node.string("mode", "nearest")
        let filter: ResizeRule.Filter
        switch mode {
        case "nearest": filter = .nearest("simple")
        case "linear", "bilinear": filter = .linear
        default: throw c.fail("has mode '\(mode)' (nearest or linear)")
        }
        let rule = ResizeRule(filter: filter, coordinates: "asymmetric", excludeOutside: false, antialias: false)
        var y = x
        for axis in (0..<scales.count).reversed() {
            let input = c.shape(x)[axis], scale = Double(scales[axis])
            guard scale > 0, let output = Int(exactly: (scale * Double(input)).rounded(.down)), output <= maximumElementCount else { throw c.fail("has scale \(scale)") }
            y = try interpolate(y, axis: axis, try resizeTaps(input: input, output: output, scale: scale, roi: nil, rule, c), extrapolation: 0, c)
        }
        return [y]
    }

    static func resizeRule(_ c: ImportContext) throws -> ResizeRule {
        let mode = c.node.string("mode", "nearest")
        let filter: ResizeRule.Filter
        switch mode {
        case "nearest":
            let nearest = c.opset >= 11 ? c.node.string("nearest_mode", "round_prefer_floor") : "simple"
            guard ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple"].contains(nearest) else {
                throw c.fail("has nearest_mode '\(nearest)'")
            }
            filter = .nearest(nearest)
        case "linear": filter = .linear
        case "cubic": filter = .cubic(Double(c.node.float("cubic_coeff_a", -0.75)))
        default: throw c.fail("has mode '\(mode)' (nearest, linear or cubic)")
        }
        let coordinates = c.opset >= 11 ? c.node.string("coordinate_transformation_mode", "half_pixel") : "asymmetric"
        let known = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize", "tf_half_pixel_for_nn"]
        guard known.contains(coordinates) else { throw c.fail("has coordinate_transformation_mode '\(coordinates)'") }
        let antialias = c.node.int("antialias", 0) != 0
        if antialias, case .nearest = filter { throw c.fail("has antialias with mode nearest, which ONNX does not define") }
        return ResizeRule(filter: filter, coordinates: coordinates, excludeOutside: c.node.int("exclude_outside", 0) != 0, antialias: antialias)
    }

    /// One axis's taps: for each tap, the input index each output position reads and its
    /// weight; and which output positions lie outside the input (tf_crop_and_resize).
    struct AxisTaps {
        var indices: [[Int]]
        var weights: [[Double]]
        var outside: [Bool]
        let input: Int
        let output: Int

        /// Whether every output position is its input position's value.
        var isIdentity: Bool {
            guard input == output, !outside.contains(true) else { return false }
            return (0..<output).allSatisfy { o in
                indices.indices.allSatisfy { t in weights[t][o] == 0 || (weights[t][o] == 1 && indices[t][o] == o) }
            }
        }
    }

    static func resizeTaps(input: Int, output: Int, scale: Double, roi: (Double, Double)?, _ rule: ResizeRule, _ c: ImportContext) throws -> AxisTaps {
        guard input > 0 || output == 0 else { throw c.fail("resizes an empty axis to \(output)") }
        let width = scale * Double(input)
        var perPosition: [(indices: [Int], weights: [Double])] = []
        var outside: [Bool] = []
        for o in 0..<output {
            let x = Double(o)
            let original: Double
            switch rule.coordinates {
            case "align_corners": original = width == 1 ? 0 : x * Double(input - 1) / (width - 1)
            case "asymmetric": original = x / scale
            case "tf_half_pixel_for_nn": original = (x + 0.5) / scale
            case "pytorch_half_pixel": original = width == 1 ? -0.5 : (x + 0.5) / scale - 0.5
            case "half_pixel_symmetric":
                let offset = Double(input) / 2 * (1 - Double(output) / width)
                original = offset + (x + 0.5) / scale - 0.5
            case "tf_crop_and_resize":
                let (start, end) = roi ?? (0, 1)
                let span = (end - start) * Double(input - 1)
                original = (width == 1 ? span / 2 : x * span / (width - 1)) + start * Double(input - 1)
            default: original = (x + 0.5) / scale - 0.5
            }
            if rule.coordinates == "tf_crop_and_resize", original < 0 || original > Double(input - 1) {
                perPosition.append(([0], [0]))
                outside.append(true)
                continue
            }
            outside.append(false)
            // The reference's neighbours: the ratio in (0, 1] past the tap before the point.
            let isWhole = original == original.rounded(.down)
            let before = isWhole ? original - 1 : original.rounded(.down)
            let ratio = original - before
            let filter = resizeFilter(rule, ratio: ratio, scale: scale)
            var weights = filter.weights
            var indices = (0..<weights.count).map { Int(before) + filter.first + $0 }
            if rule.excludeOutside {
                for (t, i) in indices.enumerated() where i < 0 || i >= input { weights[t] = 0 }
                let total = weights.reduce(0, +)
                if total != 0 { weights = weights.map { $0 / total } }
            }
            indices = indices.map { min(max($0, 0), input - 1) }
            perPosition.append((indices, weights))
        }
        let taps = perPosition.map(\.weights.count).max() ?? 0
        var indices = Array(repeating: Array(repeating: 0, count: output), count: taps)
        var weights = Array(repeating: Array(repeating: 0.0, count: output), count: taps)
        for (o, position) in perPosition.enumerated() {
            for t in position.weights.indices { (indices[t][o], weights[t][o]) = (position.indices[t], position.weights[t]) }
        }
        return AxisTaps(indices: indices, weights: weights, outside: outside, input: input, output: output)
    }

    /// The filter's weights for a point `ratio` past the tap before it, and the offset of its
    /// first tap from that one.
    static func resizeFilter(_ rule: ResizeRule, ratio: Double, scale: Double) -> (first: Int, weights: [Double]) {
        switch rule.filter {
        case let .nearest(mode):
            let after: Bool
            switch mode {
            case _ where ratio == 1: after = true
            case "round_prefer_ceil": after = ratio >= 0.5
            case "floor": after = false
            case "ceil": after = true
            // ONNX Runtime's rule before opset 11: down when enlarging, up when shrinking.
            case "simple": after = scale < 1
            default: after = ratio > 0.5
            }
            return (0, after ? [0, 1] : [1, 0])
        case .linear:
            guard rule.antialias, scale < 1 else { return (0, [1 - ratio, ratio]) }
            let start = Int((-1 / scale).rounded(.down)) + 1
            let weights = (0..<(2 - 2 * start)).map { max(0, 1 - abs((Double(start + $0) - ratio) * scale)) }
            return (start, normalized(weights))
        case let .cubic(a):
            guard rule.antialias, scale < 1 else {
                let (r, s) = (ratio, 1 - ratio)
                return (-1, [((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
                             ((a + 2) * r - (a + 3)) * r * r + 1,
                             ((a + 2) * s - (a + 3)) * s * s + 1,
                             ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a])
            }
            func kernel(_ value: Double) -> Double {
                let x = abs(value)
                if x <= 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
                if x < 2 { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
                return 0
            }
            let start = Int((-2 / scale).rounded(.down)) + 1
            return (start, normalized((start..<(2 - start)).map { kernel(scale * (Double($0) - ratio)) }))
        }
    }

    private static func normalized(_ weights: [Double]) -> [Double] {
        let total = weights.reduce(0, +)
        return total == 0 ? weights : weights.map { $0 / total }
    }

    /// Resamples one axis: the sum over taps of the gathered input times the tap's weights,
    /// extrapolation_value where the position is outside the input.
    static func interpolate(_ x: ImportedValue, axis: Int, _ taps: AxisTaps, extrapolation: Float, _ c: ImportContext) throws -> ImportedValue {
        guard !taps.isIdentity else { return x }
        var weightShape = Array(repeating: 1, count: c.shape(x).count)
        weightShape[axis] = taps.output
        let type = c.dtype(x)
        let interpolates = taps.weights.contains { $0.contains { $0 != 0 && $0 != 1 } }
        // Weighted sums compute in f32 for types that are not floats (the reference in double).
        let source = interpolates && !type.isFloatingPoint ? try cast(x, to: .float32, c) : x
        let computeType = c.dtype(source)
        var sum: ImportedValue?
        for t in taps.indices.indices where taps.weights[t].contains(where: { $0 != 0 }) {
            let indices = ConstantTensor(shape: [taps.output], ints: taps.indices[t].map(Int64.init))
            var term = try c.apply(.gather(axis: axis), [source, .constant(indices)], name: "axis\(axis)_tap\(t)")
            if taps.weights[t].contains(where: { $0 != 1 }) {
                let weights = ConstantTensor(shape: weightShape, floats: taps.weights[t].map { Float($0) })
                term = try c.apply(.binary(.mul), [term, .constant(ConstantTensor(try weights.tensor.converted(to: computeType)))], name: "axis\(axis)_weighed\(t)")
            }
            sum = try sum.map { try c.apply(.binary(.add), [$0, term], name: "axis\(axis)_sum") } ?? term
        }
        var outShape = c.shape(x)
        outShape[axis] = taps.output
        // Every position outside the input: nothing to read.
        var y = try sum ?? .constant(ConstantTensor(try HostTensor(shape: outShape, repeating: 0).converted(to: computeType)))
        if taps.outside.contains(true) {
            let inside = ConstantTensor(try HostTensor(shape: weightShape, values: taps.outside.map { !$0 }))
            y = try c.apply(.select, [.constant(inside), y, c.scalar(extrapolation, computeType)], name: "axis\(axis)_cropped")
        }
        guard computeType != type else { return y }
        // As the reference: rounded to the nearest (ties to even), then saturated by the cast.
        return try cast(try c.apply(.unary(.round), [y], name: "axis\(axis)_rounded"), to: type, c)
    }
}
