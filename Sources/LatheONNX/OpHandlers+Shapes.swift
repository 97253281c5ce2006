import LatheIR

extension OpHandlers {
    static let shapes: [String: Handler] = [
        "Identity": { c in [try c.required(0)] },
        "Dropout": { c in
            if let training = try c.constantInput(2, "training_mode"), training.ints.first ?? 0 != 0 {
                // Training with a ratio of 0 drops nothing; any other draws a random mask.
                let ratio = try c.constantInput(1, "ratio")?.floats.first ?? 0.5
                guard ratio == 0 else { throw c.unsupported("training_mode=true with ratio \(ratio) draws a random mask; export the model for inference") }
            }
            // For inference the output is the input and the mask keeps everything.
            let x = try c.required(0)
            let shape = c.shape(x)
            return [x, .constant(ConstantTensor(shape: shape, ints: Array(repeating: 1, count: shape.reduce(1, *)), dtype: .bool))]
        },
        "Reshape": { c in
            let x = try c.required(0)
            guard let target = try c.constantInput(1, "shape") ?? c.node.ints("shape").map({ ConstantTensor(shape: [$0.count], ints: $0.map(Int64.init)) }) else {
                throw c.fail("has no shape")
            }
            return [try reshape(x, to: try resolveShape(target.intValues, of: c.shape(x), allowZero: c.node.int("allowzero", 0) != 0, c), c)]
        },
        "Flatten": { c in
            let x = try c.required(0)
            let shape = c.shape(x)
            let axis = c.node.int("axis", 1) < 0 ? c.node.int("axis", 1) + shape.count : c.node.int("axis", 1)
            guard (0...shape.count).contains(axis) else { throw c.fail("has axis \(c.node.int("axis", 1)) out of range") }
            return [try reshape(x, to: [shape.prefix(axis).reduce(1, *), shape.dropFirst(axis).reduce(1, *)], c)]
        },
        "Squeeze": { c in
            let x = try c.required(0)
            let shape = c.shape(x)
            let axes = try (axesOperand(c, inputIndex: 1, since: 13) ?? shape.indices.filter { shape[$0] == 1 }).map { try c.axis($0, rank: shape.count) }
            for a in axes where shape[a] != 1 { throw c.fail("squeezes axis \(a) of size \(shape[a])") }
            return [try reshape(x, to: shape.indices.filter { !axes.contains($0) }.map { shape[$0] }, c)]
        },
        "Unsqueeze": { c in
            let x = try c.required(0)
            var shape = c.shape(x)
            guard let raw = try axesOperand(c, inputIndex: 1, since: 13) else { throw c.fail("has no axes") }
            let rank = shape.count + raw.count
            for a in try raw.map({ try c.axis($0, rank: rank) }).sorted() { shape.insert(1, at: a) }
            return [try reshape(x, to: shape, c)]
        },
        "Transpose": { c in
            let x = try c.required(0)
            let perm = c.node.ints("perm") ?? Array((0..<c.shape(x).count).reversed())
            if case let .constant(k) = x, k.isInteger { return [.constant(k.gathered(transpose: perm))] }
            return [try c.apply(.transpose(perm: perm), [x])]
        },
        "Concat": { c in
            let parts = try (0..<c.node.input.count).compactMap { try c.input($0) }
            guard let first = parts.first else { throw c.fail("has no operands") }
            let axis = try c.axis(c.node.int("axis", 0), rank: c.shape(first).count)
            let constants = parts.compactMap { if case let .constant(k) = $0, k.isInteger { return k } else { return nil } }
            if constants.count == parts.count, axis == 0, constants.allSatisfy({ $0.shape.count == 1 && $0.dtype == constants[0].dtype }) {
                return [.constant(ConstantTensor(shape: [constants.reduce(0) { $0 + $1.count }], ints: constants.flatMap(\.ints), dtype: constants[0].dtype))]
            }
            return [try c.apply(.concat(axis: axis), parts)]
        },
        "Slice": slice,
        "Pad": pad,
        "Shape": { c in
            let shape = c.shape(try c.required(0))
            let rank = shape.count
            func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + rank : v, 0), rank) }
            let start = clamp(c.node.int("start", 0)), end = max(start, clamp(c.node.int("end", rank)))
            return [.constant(ConstantTensor(shape: [end - start], ints: shape[start..<end].map(Int64.init)))]
        },
        "Size": { c in [.constant(ConstantTensor(shape: [], ints: [Int64(c.shape(try c.required(0)).reduce(1, *))]))] },
        "Constant": { c in
            let n = c.node
            var value: ConstantTensor
            if let t = n.attribute("value") { value = try ConstantTensor(t.t, name: n.displayName) }
            else if let f = n.attribute("value_float") { value = ConstantTensor(shape: [], floats: [f.f]) }
            else if let f = n.attribute("value_floats") { value = ConstantTensor(shape: [f.floats.count], floats: f.floats) }
            else if let i = n.attribute("value_int") { value = ConstantTensor(shape: [], ints: [i.i]) }
            else if let i = n.attribute("value_ints") { value = ConstantTensor(shape: [i.ints.count], ints: i.ints) }
            else { throw c.unsupported("only tensor, float and int values are supported") }
            value.origin = n.output.first
            return [.constant(value)]
        },
        "ConstantOfShape": { c in
            guard let shape = try c.constantInput(0, "shape") else { throw c.fail("has no shape") }
            let dims = shape.intValues
            guard let count = elementCount(dims) else { throw c.fail("has shape \(dims): a negative dimension or too many elements") }
            guard let t = c.node.attribute("value") else { return [.constant(ConstantTensor(shape: dims, floats: Array(repeating: 0, count: count)))] }
            let fill = try ConstantTensor(t.t, name: c.node.displayName)
            guard fill.count == 1 else { throw c.fail("has a value of \(fill.count) elements, not one") }
            return [.constant(ConstantTensor(fill.tensor.picking(Array(repeating: 0, count: count), shape: dims)))]
        },
        "Range": { c in
            guard let start = try c.constantInput(0, "start"), let limit = try c.constantInput(1, "limit"), let delta = try c.constantInput(2, "delta") else {
                throw c.fail("needs start, limit and delta")
            }
            let (s, l, d) = (Double(start.floats.first ?? 0), Double(limit.floats.first ?? 0), Double(delta.floats.first ?? 1))
            guard d != 0 else { throw c.fail("has delta 0") }
            let steps = ((l - s) / d).rounded(.up)
            guard steps.isFinite, steps <= Double(maximumElementCount) else { throw c.fail("makes \(steps) elements") }
            let count = max(Int(steps), 0)
            if start.isInteger {
                let (first, step) = (start.ints.first ?? 0, delta.ints.first ?? 1)
                return [.constant(ConstantTensor(shape: [count], ints: (0..<count).map { first &+ Int64($0) &* step }, dtype: start.dtype))]
            }
            let values = ConstantTensor(shape: [count], floats: (0..<count).map { Float(s + Double($0) * d) })
            return [.constant(ConstantTensor((try? values.tensor.converted(to: start.dtype)) ?? values.tensor))]
        },
        "Cast": { c in
            guard let to = DType(onnxCode: c.node.int("to", 1)) else { throw c.unsupported("casts to ONNX type \(c.node.int("to", 1)), which Lathe does not compute on") }
            return [try cast(try c.required(0), to: to, rule: try castRule(c), c)]
        },
        "CastLike": { c in [try cast(try c.required(0), to: c.dtype(try c.required(1)), rule: try castRule(c), c)] },
        "Split": split,
        "Expand": { c in
            let x = try c.required(0)
            guard let target = try c.constantInput(1, "shape") else { throw c.fail("has no shape") }
            let shape: [Int]
            do throws(OpRuleFailure) { shape = try broadcastShapes(c.shape(x), target.intValues) } catch { throw c.fail(error.reason) }
            if case let .constant(k) = x, k.isInteger {
                return [.constant(k.gathered(shape: shape, strides: broadcastStrides(of: k.shape, to: shape), base: 0))]
            }
            return [try broadcast(x, to: shape, c)]
        },
        "ReduceSum": { c in [try reduce(.sum, c, axesInputSince: 13)] },
        "ReduceProd": { c in [try reduce(.prod, c, axesInputSince: 18)] },
        "ReduceMean": { c in [try reduce(.mean, c, axesInputSince: 18)] },
        "ReduceMax": { c in
            // Bools through f32: any true is a maximum above 0 (an empty set's is -inf: false).
            let x = try c.required(0)
            guard c.dtype(x) == .bool else { return [try reduce(.max, c, axesInputSince: 18)] }
            let largest = try reduce(.max, c, axesInputSince: 18, of: try cast(x, to: .float32, c), name: "max")
            return [try c.apply(.binary(.greater), [largest, c.scalar(0)])]
        },
        "ArgMax": { c in [try argExtreme(.max, c)] },
        "ArgMin": { c in [try argExtreme(.min, c)] },
        // The others, from the IR's reductions and elementwise ops.
        "ReduceMin": { c in
            // Bools through f32: all true is a minimum above 0 (an empty set's is +inf: true).
            let x = try c.required(0)
            guard c.dtype(x) == .bool else { return [try reduce(.min, c, axesInputSince: 18)] }
            let least = try reduce(.min, c, axesInputSince: 18, of: try cast(x, to: .float32, c), name: "min")
            return [try c.apply(.binary(.greater), [least, c.scalar(0)])]
        },
        "ReduceL1": { c in [try reduce(.sum, c, axesInputSince: 18, of: try c.apply(.unary(.abs), [try c.required(0)], name: "abs"))] },
        "ReduceSumSquare": { c in [try reduce(.sum, c, axesInputSince: 18, of: try squared(c))] },
        "ReduceL2": { c in [try c.apply(.unary(.sqrt), [try reduce(.sum, c, axesInputSince: 18, of: try squared(c), name: "sum")])] },
        "ReduceLogSum": { c in [try c.apply(.unary(.log), [try reduce(.sum, c, axesInputSince: 18, name: "sum")])] },
        "ReduceLogSumExp": { c in
            // log(sum(exp(x - m))) + m, m the maximum: no exp overflows.
            let x = try c.required(0)
            let m = try reduce(.max, c, axesInputSince: 18, keepDims: true, name: "max")
            let shifted = try c.apply(.unary(.exp), [try c.apply(.binary(.sub), [x, m], name: "shifted")], name: "exp")
            let logSum = try c.apply(.unary(.log), [try reduce(.sum, c, axesInputSince: 18, of: shifted, name: "sum")], name: "log")
            return [try c.apply(.binary(.add), [logSum, try reshape(m, to: c.shape(logSum), c)])]
        },
    ]

    /// Axes from an attribute (before `since`) or from operand `inputIndex` (from `since` on).
    static func axesOperand(_ c: ImportContext, inputIndex: Int, since: Int) throws -> [Int]? {
        if c.opset < since { return c.node.ints("axes") }
        return try c.constantInput(inputIndex, "axes")?.intValues
    }

    /// ONNX Reshape's target: 0 copies the input's dimension (unless allowzero), -1 is inferred.
    static func resolveShape(_ target: [Int], of input: [Int], allowZero: Bool, _ c: ImportContext) throws -> [Int] {
        var shape = target
        for (i, d) in target.enumerated() where d == 0 && !allowZero {
            guard i < input.count else { throw c.fail("copies dimension \(i), which the input \(input) does not have") }
            shape[i] = input[i]
        }
        let count = input.reduce(1, *)
        if let unknown = shape.firstIndex(of: -1) {
            guard let known = elementCount(shape.enumerated().filter { $0.offset != unknown }.map(\.element)), known > 0, count % known == 0 else {
                throw c.fail("cannot reshape \(input) to \(target)")
            }
            shape[unknown] = count / known
        }
        return shape
    }

    /// x broadcast (NumPy) to `shape`, by a formula that reads x alone with a second operand
    /// whose shape has the expanded axes only (and so holds few elements): any element type.
    static func broadcast(_ x: ImportedValue, to shape: [Int], _ c: ImportContext, name: String? = nil) throws -> ImportedValue {
        guard c.shape(x) != shape else { return x }
        let own = Array(repeating: 1, count: shape.count - c.shape(x).count) + c.shape(x)
        let carrier = shape.indices.map { own[$0] == 1 ? shape[$0] : 1 }
        guard let count = elementCount(carrier) else { throw c.fail("expands to \(shape), too many elements") }
        let zeros = ConstantTensor(shape: carrier, floats: Array(repeating: 0, count: count))
        return try c.apply(.fusedElementwise(.arg(0)), [x, .constant(ConstantTensor((try? zeros.tensor.converted(to: c.dtype(x))) ?? zeros.tensor))], name: name)
    }

    /// x's positions from..<to (every `step`-th) along one axis, the other axes whole; x itself
    /// when that is all of it.
    static func sliced(_ x: ImportedValue, axis: Int, from: Int, to: Int, step: Int = 1, _ c: ImportContext, name: String? = nil) throws -> ImportedValue {
        let shape = c.shape(x)
        guard from != 0 || to != shape[axis] || step != 1 else { return x }
        var (starts, ends, steps) = (Array(repeating: 0, count: shape.count), shape, Array(repeating: 1, count: shape.count))
        (starts[axis], ends[axis], steps[axis]) = (from, to, step)
        return try c.apply(.slice(starts: starts, ends: ends, steps: steps), [x], name: name)
    }

    /// x's slice at `index` along `axis`, that axis dropped.
    static func taken(_ x: ImportedValue, axis: Int, at index: Int, _ c: ImportContext, name: String? = nil) throws -> ImportedValue {
        var shape = c.shape(x)
        shape.remove(at: axis)
        return try reshape(try sliced(x, axis: axis, from: index, to: index + 1, c, name: name), to: shape, c)
    }

    /// A reshape that keeps constants constant (integer ones included).
    static func reshape(_ x: ImportedValue, to shape: [Int], _ c: ImportContext) throws -> ImportedValue {
        if case let .constant(k) = x {
            guard elementCount(shape) == k.count else { throw c.fail("cannot reshape \(k.shape) to \(shape)") }
            return .constant(k.reshaped(shape))
        }
        return try c.apply(.reshape(shape: shape), [x])
    }

    /// The node's reduction of `x` (by default its operand 0) over its axes; `keepDims` overrides
    /// the node's keepdims (a reduction that feeds the rest of a composite one).
    static func reduce(_ kind: ReduceKind, _ c: ImportContext, axesInputSince: Int, of operand: ImportedValue? = nil, keepDims: Bool? = nil,
                       name: String? = nil) throws -> ImportedValue {
        let x = try operand ?? c.required(0)
        let rank = c.shape(x).count
        var axes = try (axesOperand(c, inputIndex: 1, since: axesInputSince) ?? []).map { try c.axis($0, rank: rank) }
        if axes.isEmpty {
            if c.node.int("noop_with_empty_axes", 0) != 0 { return x }
            axes = Array(0..<rank)
        }
        return try c.apply(.reduce(kind, axes: axes.sorted(), keepDims: keepDims ?? (c.node.int("keepdims", 1) != 0)), [x], name: name)
    }

    static func argExtreme(_ kind: ArgKind, _ c: ImportContext) throws -> ImportedValue {
        let x = try c.required(0)
        let axis = try c.axis(c.node.int("axis", 0), rank: c.shape(x).count)
        return try c.apply(.argExtreme(kind, axis: axis, keepDims: c.node.int("keepdims", 1) != 0, lastIndex: c.node.int("select_last_index", 0) != 0), [x])
    }

    /// The node's operand 0 times itself.
    static func squared(_ c: ImportContext) throws -> ImportedValue {
        let x = try c.required(0)
        return try c.apply(.binary(.mul), [x, x], name: "squared")
    }

    /// Slice with per-axis starts, ends and positive steps, clamped as ONNX says.
    static func slice(_ c: ImportContext) throws -> [ImportedValue] {
        let x = try c.required(0)
        let shape = c.shape(x)
        let starts: [Int], ends: [Int], axesGiven: [Int]?, stepsGiven: [Int]?
        if c.opset < 10 {
            starts = c.node.ints("starts") ?? []
            ends = c.node.ints("ends") ?? []
            axesGiven = c.node.ints("axes")
            stepsGiven = nil
        } else {
            starts = try c.constantInput(1, "starts")?.intValues ?? []
            ends = try c.constantInput(2, "ends")?.intValues ?? []
            axesGiven = try c.constantInput(3, "axes")?.intValues
            stepsGiven = try c.constantInput(4, "steps")?.intValues
        }
        let axes = try (axesGiven ?? Array(0..<starts.count)).map { try c.axis($0, rank: shape.count) }
        let steps = stepsGiven ?? Array(repeating: 1, count: starts.count)
        guard starts.count == ends.count, axes.count == starts.count, steps.count == starts.count else {
            throw c.fail("has starts, ends, axes and steps of different lengths")
        }
        var (s, e, st) = (Array(repeating: 0, count: shape.count), shape, Array(repeating: 1, count: shape.count))
        // Axes walked backwards (a negative step): the positions picked, gathered after the slice.
        var backwards: [(axis: Int, positions: [Int])] = []
        for (k, axis) in axes.enumerated() {
            guard steps[k] != 0 else { throw c.fail("has a zero step") }
            let d = shape[axis]
            if steps[k] < 0 {
                // ONNX: start clamped to [0, d - 1], end to [-1, d - 1], negatives counted from d.
                let start = min(max(starts[k] < 0 ? starts[k] + d : starts[k], 0), d - 1)
                let end = min(max(ends[k] < 0 ? ends[k] + d : ends[k], -1), d - 1)
                backwards.append((axis, Array(stride(from: start, to: end, by: steps[k]))))
                continue
            }
            func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + d : v, 0), d) }
            (s[axis], e[axis], st[axis]) = (clamp(starts[k]), max(clamp(starts[k]), clamp(ends[k])), steps[k])
        }
        if !backwards.isEmpty {
            var y = s == Array(repeating: 0, count: shape.count) && e == shape && st.allSatisfy({ $0 == 1 }) ? x
                : try c.apply(.slice(starts: s, ends: e, steps: st), [x], name: "forward")
            for (axis, positions) in backwards {
                let indices = ConstantTensor(shape: [positions.count], ints: positions.map(Int64.init))
                y = try c.apply(.gather(axis: axis), [y, .constant(indices)], name: "backward\(axis)")
            }
            return [y]
        }
        if case let .constant(k) = x, k.isInteger {
            let strides = contiguousStrides(shape)
            let outShape = shape.indices.map { (e[$0] - s[$0] + st[$0] - 1) / st[$0] }
            return [.constant(k.gathered(shape: outShape, strides: zip(st, strides).map(*), base: zip(s, strides).map(*).reduce(0, +)))]
        }
        return [try c.apply(.slice(starts: s, ends: e, steps: st), [x])]
    }

    /// Pad: constant mode by the pad op; edge, reflect and wrap by gathers (below). Negative pads
    /// crop, as a slice before the padding.
    static func pad(_ c: ImportContext) throws -> [ImportedValue] {
        var x = try c.required(0)
        let shape = c.shape(x)
        let rank = shape.count
        let mode = c.node.string("mode", "constant")
        guard ["constant", "edge", "reflect", "wrap"].contains(mode) else { throw c.fail("has unknown mode '\(mode)'") }
        var raw: [Int]
        var value: Float = 0
        if c.opset < 11 {
            raw = c.node.ints("pads") ?? []
            value = c.node.float("value", 0)
        } else {
            raw = try c.constantInput(1, "pads")?.intValues ?? []
            value = try c.constantInput(2, "constant value")?.floats.first ?? 0
        }
        var pads = Array(repeating: 0, count: 2 * rank)
        if let axes = try c.constantInput(3, "axes")?.intValues {
            guard raw.count == 2 * axes.count else { throw c.fail("has \(raw.count) pads for \(axes.count) axes") }
            for (k, axis) in try axes.map({ try c.axis($0, rank: rank) }).enumerated() { (pads[axis], pads[axis + rank]) = (raw[k], raw[k + axes.count]) }
        } else {
            guard raw.count == 2 * rank else { throw c.fail("has \(raw.count) pads for rank \(rank)") }
            pads = raw
        }
        if pads.contains(where: { $0 < 0 }) {
            let starts = (0..<rank).map { max(-pads[$0], 0) }, ends = (0..<rank).map { shape[$0] - max(-pads[$0 + rank], 0) }
            guard zip(starts, ends).allSatisfy({ $0 <= $1 }) else { throw c.fail("crops more than the input has") }
            x = try c.apply(.slice(starts: starts, ends: ends, steps: Array(repeating: 1, count: rank)), [x], name: "crop")
            pads = pads.map { max($0, 0) }
        }
        guard mode != "constant" else { return [try c.apply(.pad(pads: pads, value: value), [x])] }
        // Edge, reflect and wrap: along each padded axis, a gather of the positions each output
        // row copies (clamped; mirrored about the ends, which are not repeated; wrapped).
        let cropped = c.shape(x)
        for axis in 0..<rank where pads[axis] > 0 || pads[axis + rank] > 0 {
            let size = cropped[axis]
            guard size > 0, mode != "reflect" || (size > 1 && max(pads[axis], pads[axis + rank]) < size) else {
                throw c.fail("pads axis \(axis) of size \(size) by \(pads[axis]) and \(pads[axis + rank]) in mode \(mode)")
            }
            let positions = (-pads[axis]..<(size + pads[axis + rank])).map { i -> Int64 in
                switch mode {
                case "edge": return Int64(min(max(i, 0), size - 1))
                case "reflect": return Int64(i < 0 ? -i : i >= size ? 2 * (size - 1) - i : i)
                default: return Int64(((i % size) + size) % size)
                }
            }
            x = try c.apply(.gather(axis: axis), [x, .constant(ConstantTensor(shape: [positions.count], ints: positions))], name: "\(mode)\(axis)")
        }
        return [x]
    }

    /// Split into the node's outputs along an axis: sizes from the `split` operand (or
    /// attribute before opset 13), else equal parts (the last smaller when they do not divide,
    /// as opset 18's num_outputs says).
    static func split(_ c: ImportContext) throws -> [ImportedValue] {
        let x = try c.required(0)
        let shape = c.shape(x)
        let axis = try c.axis(c.node.int("axis", 0), rank: shape.count)
        let parts = c.node.output.count
        guard parts > 0 else { throw c.fail("has no outputs") }
        var sizes: [Int]
        if let given = c.opset < 13 ? c.node.ints("split") : try c.constantInput(1, "split")?.intValues {
            sizes = given
        } else {
            let chunk = (shape[axis] + parts - 1) / parts
            sizes = (0..<parts).map { max(0, min(chunk, shape[axis] - $0 * chunk)) }
        }
        guard sizes.count == parts, sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == shape[axis] else {
            throw c.fail("splits axis \(axis) of size \(shape[axis]) into \(sizes) for \(parts) outputs")
        }
        var start = 0
        return try sizes.enumerated().map { k, size in
            var (s, e) = (Array(repeating: 0, count: shape.count), shape)
            (s[axis], e[axis]) = (start, start + size)
            start += size
            if case let .constant(t) = x {
                let strides = contiguousStrides(shape)
                return .constant(t.gathered(shape: zip(s, e).map { $1 - $0 }, strides: strides, base: zip(s, strides).map(*).reduce(0, +)))
            }
            return try c.apply(.slice(starts: s, ends: e, steps: Array(repeating: 1, count: shape.count)), [x], name: "part\(k)")
        }
    }

    /// Cast: a constant converted now, a computed value by the cast op.
    static func cast(_ x: ImportedValue, to dtype: DType, rule: CastRule = .standard, _ c: ImportContext) throws -> ImportedValue {
        if case let .constant(k) = x { return .constant(ConstantTensor(try k.tensor.converted(to: dtype, rule: rule))) }
        return c.dtype(x) == dtype ? x : try c.apply(.cast(to: dtype, rule: rule), [x])
    }

    /// Cast's and CastLike's `saturate` (8-bit floats) and `round_mode` (FLOAT8E8M0).
    static func castRule(_ c: ImportContext) throws -> CastRule {
        let mode = c.node.string("round_mode", "up")
        guard let rounding = PowerOfTwoRounding(rawValue: mode) else { throw c.fail("has round_mode '\(mode)'; ONNX's are up, down and nearest") }
        return CastRule(saturate: c.node.int("saturate", 1) != 0, powerOfTwoRounding: rounding)
    }
}

extension ConstantTensor {
    /// Elements read through strides from `base`: the constant form of a slice, transpose or broadcast.
    func gathered(shape: [Int], strides: [Int], base: Int) -> ConstantTensor {
        ConstantTensor(tensor.picking(shape: shape, strides: strides, base: base))
    }

    func gathered(transpose perm: [Int]) -> ConstantTensor {
        let strides = contiguousStrides(shape)
        return gathered(shape: perm.map { shape[$0] }, strides: perm.map { strides[$0] }, base: 0)
    }

    /// Joins constants of one element type along an axis.
    static func concatenated(_ parts: [ConstantTensor], axis: Int) -> ConstantTensor {
        guard var shape = parts.first?.shape, let dtype = parts.first?.dtype else { return ConstantTensor(shape: [0], floats: []) }
        shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
        let outer = shape.prefix(axis).reduce(1, *)
        let size = dtype.byteSize
        let own = parts.map { ((try? $0.tensor.converted(to: dtype)) ?? $0.tensor).rawBytes }
        var bytes: [UInt8] = []
        for o in 0..<outer {
            for (p, part) in zip(parts, own) {
                let chunk = p.count / max(outer, 1) * size
                bytes += part[(o * chunk)..<((o + 1) * chunk)]
            }
        }
        return ConstantTensor((try? HostTensor(shape: shape, dtype: dtype, bytes: bytes)) ?? HostTensor(shape: [0]))
    }
}
