/// The shape rule of every op: operand types in, result type out, or the reason they do not fit.
extension Op {
    public func inferType(_ operands: [TensorType]) throws(OpRuleFailure) -> TensorType {
        let result = try inferUncheckedType(operands)
        guard elementCount(result.shape) != nil else {
            throw .shape("the result \(result.shape) has negative dimensions or more than \(maximumElementCount) elements")
        }
        return result
    }

    private func inferUncheckedType(_ operands: [TensorType]) throws(OpRuleFailure) -> TensorType {
        guard arity.contains(operands.count) else {
            throw .shape("takes \(arity.lowerBound == arity.upperBound ? "\(arity.lowerBound)" : "\(arity.lowerBound)...\(arity.upperBound)") operands, got \(operands.count)")
        }
        try checkElementTypes(operands)
        let shapes = operands.map(\.shape)
        // Ops that move data keep its type; elementwise ones type their formula (TypedScalar).
        let dtype = operands.first?.dtype ?? .float32
        switch self {
        case .input, .constant, .variable:
            throw .shape("inputs, constants and variables carry their own type")
        case .assign:
            guard operands[0] == operands[1] else { throw .shape("the variable is \(operands[0]), the value \(operands[1])") }
            return operands[1]
        case let .conv2dWeightGrad(a, kernel):
            let (x, dy) = (shapes[0], shapes[1])
            guard kernel.count == 2, kernel.allSatisfy({ $0 > 0 }) else { throw .attribute("kernel \(kernel) must be 2 positive numbers") }
            guard x.count == 4, dy.count == 4, a.groups > 0, x[1] % a.groups == 0, dy[1] % a.groups == 0 else {
                throw .shape("x and dy must be NCHW with channels that divide by groups \(a.groups)")
            }
            let w = [dy[1], x[1] / a.groups] + kernel
            guard try conv2dShape([x, w], a) == dy else { throw .shape("dy \(dy) is not the output of a \(w) convolution of x \(x)") }
            return TensorType(.float32, w)
        case let .gatherGrad(axis, size):
            let (indices, dy) = (shapes[0], shapes[1])
            guard size > 0, axis >= 0, axis + indices.count <= dy.count else {
                throw .attribute("axis \(axis) and size \(size) do not fit dy \(dy) with indices \(indices)")
            }
            guard Array(dy[axis..<(axis + indices.count)]) == indices else { throw .shape("dy \(dy) does not hold indices \(indices) at axis \(axis)") }
            return TensorType(.float32, Array(dy[..<axis]) + [size] + Array(dy[(axis + indices.count)...]))
        case let .pool2dGrad(a):
            guard try pool2dShape(shapes[0], a) == shapes[1] else {
                throw .shape("dy \(shapes[1]) is not the pooled shape of x \(shapes[0])")
            }
            return operands[0]
        case let .dropoutMask(shape, rate, _):
            guard (0..<1).contains(rate) else { throw .attribute("rate \(rate) is not in [0, 1)") }
            try Op.checkStepCounter(operands[0])
            guard elementCount(shape) != nil else { throw .attribute("shape \(shape) has a negative dimension or too many elements") }
            return TensorType(.float32, shape)
        case let .augment(a):
            return try a.resultType(operands[0], step: operands[1])
        case let .augmentGrad(a, inputSize):
            guard inputSize.count == 2, inputSize.allSatisfy({ $0 > 0 }) else { throw .attribute("input_size \(inputSize) must be 2 positive numbers") }
            let input = TensorType(.float32, shapes[0].dropLast(2) + inputSize)
            guard try a.resultType(input, step: operands[1]) == operands[0] else {
                throw .shape("dy \(shapes[0]) is not augment's result from \(input.shape)")
            }
            return input
        case let .epilogue(base, count, formula):
            switch base {
            case .conv2d, .dense, .matmul: break
            default: throw .attribute("only conv2d, dense and matmul take an epilogue, not \(base.name)")
            }
            guard count <= operands.count else { throw .shape("the base takes \(count) operands, the node has \(operands.count)") }
            let result = try base.inferType(Array(operands.prefix(count)))
            for extra in operands.dropFirst(count) where extra.shape != result.shape {
                guard Op.epilogueReadsPerColumn(base: base, operand: extra.shape, result: result.shape)
                        || Op.epilogueReadsPerChannel(base: base, resultType: result, operand: extra.shape) else {
                    throw .shape("an epilogue operand has shape \(extra.shape), the result \(result.shape)")
                }
            }
            guard formula.arity <= 1 + operands.count - count else { throw .shape("the epilogue reads more operands than it has") }
            // A float contraction's epilogue computes in f32; an integer one's in any types.
            let types = [result.dtype] + operands.dropFirst(count).map(\.dtype)
            let type = try formula.elementType(types) ?? result.dtype
            if result.dtype == .float32, type != .float32 || types.contains(where: { $0 != .float32 }) || !formula.isFloat32Only {
                throw .elementType("the epilogue of an f32 contraction computes on f32 alone")
            }
            return TensorType(type, result.shape)
        case let .pooled(base, a):
            switch base {
            case .conv2d, .epilogue(.conv2d, _, _): break
            default: throw .attribute("only conv2d, with or without an epilogue, is pooled in its kernel, not \(base.name)")
            }
            if case let .epilogue(_, count, _) = base, count != operands.count { throw .attribute("a pooled convolution's epilogue reads no other operands") }
            return try Op.pool2d(a).inferType([base.inferType(operands)])
        case .dropout(let rate):
            guard (0..<1).contains(rate) else { throw .attribute("rate \(rate) is not in [0, 1)") }
            return operands[0]
        case let .unary(fn):
            return TensorType(try fn.formula.elementType([dtype]) ?? dtype, shapes[0])
        case let .binary(fn):
            return TensorType(try fn.formula.elementType(operands.map(\.dtype)) ?? .float32, try broadcastShapes(shapes[0], shapes[1]))
        case let .fusedElementwise(formula):
            guard formula.arity <= operands.count else { throw .shape("the formula reads \(formula.arity) operands, the node has \(operands.count)") }
            var shape: [Int] = []
            for s in shapes { shape = try broadcastShapes(shape, s) }
            return TensorType(try formula.elementType(operands.map(\.dtype)) ?? .float32, shape)
        case .select:
            var shape: [Int] = []
            for s in shapes { shape = try broadcastShapes(shape, s) }
            return TensorType(try formula!.elementType(operands.map(\.dtype)) ?? .float32, shape)
        case let .cast(to, _):
            return TensorType(to, shapes[0])
        case .matmul:
            return TensorType(contractionType(operands), try matmulShape(shapes[0], shapes[1]))
        case .dense:
            let (x, w) = (shapes[0], shapes[1])
            guard x.count == 2, w.count == 2 else { throw .shape("dense takes x [M, K] and w [K, N]") }
            guard x[1] == w[0] else { throw .shape("x has \(x[1]) features but w expects \(w[0])") }
            if shapes.count == 3, shapes[2] != [w[1]] { throw .shape("bias must be [\(w[1])]") }
            return TensorType(contractionType(operands), [x[0], w[1]])
        case let .conv2d(a):
            return TensorType(contractionType(operands), try conv2dShape(shapes, a))
        case .batchNorm:
            let x = shapes[0]
            guard x.count >= 2 else { throw .shape("batch norm needs [N, C, ...]") }
            for p in shapes.dropFirst() where p != [x[1]] { throw .shape("scale, bias, mean and variance must be [\(x[1])]") }
            return operands[0]
        case let .pool2d(a):
            return TensorType(a.kind == .max ? dtype : .float32, try pool2dShape(shapes[0], a))
        case .globalAveragePool:
            guard shapes[0].count >= 3 else { throw .shape("global average pool needs [N, C, spatial...]") }
            return TensorType(.float32, Array(shapes[0].prefix(2)) + Array(repeating: 1, count: shapes[0].count - 2))
        case let .reshape(target):
            guard let count = elementCount(target) else { throw .attribute("shape \(target) has a negative dimension or too many elements") }
            guard count == operands[0].count else {
                throw .shape("cannot reshape \(operands[0].count) elements to \(target)")
            }
            return TensorType(dtype, target)
        case let .flatten(axis):
            let x = shapes[0]
            guard (0...x.count).contains(axis) else { throw .attribute("axis \(axis) is out of 0...\(x.count)") }
            return TensorType(dtype, [x.prefix(axis).reduce(1, *), x.dropFirst(axis).reduce(1, *)])
        case let .transpose(perm):
            guard perm.sorted() == Array(0..<shapes[0].count) else {
                throw .attribute("perm \(perm) is not a permutation of the \(shapes[0].count) axes")
            }
            return TensorType(dtype, perm.map { shapes[0][$0] })
        case let .concat(axis):
            return TensorType(dtype, try concatShape(shapes, axis: axis))
        case let .slice(starts, ends, steps):
            let x = shapes[0]
            guard starts.count == x.count, ends.count == x.count, steps.count == x.count else {
                throw .attribute("starts, ends and steps must each list all \(x.count) axes")
            }
            var out: [Int] = []
            for axis in x.indices {
                guard steps[axis] > 0 else { throw .attribute("step \(steps[axis]) on axis \(axis) must be positive") }
                guard 0 <= starts[axis], starts[axis] <= ends[axis], ends[axis] <= x[axis] else {
                    throw .attribute("range \(starts[axis])..<\(ends[axis]) on axis \(axis) is outside 0...\(x[axis])")
                }
                out.append((ends[axis] - starts[axis] + steps[axis] - 1) / steps[axis])
            }
            return TensorType(dtype, out)
        case let .convTranspose2d(a):
            return TensorType(.float32, try convTranspose2dShape(shapes, a))
        case let .gather(axis):
            let x = shapes[0]
            guard (0..<x.count).contains(axis) else { throw .attribute("axis \(axis) is out of range for rank \(x.count)") }
            guard x[axis] > 0 || shapes[1].reduce(1, *) == 0 else { throw .shape("axis \(axis) of \(x) is empty: nothing to pick") }
            return TensorType(dtype, Array(x[..<axis]) + shapes[1] + Array(x[(axis + 1)...]))
        case let .gatherElements(axis):
            let (x, indices) = (shapes[0], shapes[1])
            guard (0..<x.count).contains(axis) else { throw .attribute("axis \(axis) is out of range for rank \(x.count)") }
            guard indices.count == x.count, zip(indices, x).enumerated().allSatisfy({ $0.offset == axis || $0.element.0 <= $0.element.1 }) else {
                throw .shape("indices \(indices) must have the data's rank and no larger dimension but on axis \(axis) (data \(x))")
            }
            guard x[axis] > 0 || indices.reduce(1, *) == 0 else { throw .shape("axis \(axis) of \(x) is empty: nothing to pick") }
            return TensorType(dtype, indices)
        case let .pad(pads, _):
            let x = shapes[0]
            guard pads.count == 2 * x.count, pads.allSatisfy({ $0 >= 0 }) else {
                throw .attribute("pads \(pads) must be \(2 * x.count) non-negative numbers")
            }
            guard pads.allSatisfy({ $0 <= maximumElementCount }) else { throw .attribute("pads \(pads) are too large") }
            return TensorType(dtype, x.indices.map { x[$0] + pads[$0] + pads[$0 + x.count] })
        case let .recurrent(cell):
            let (gates, r, h0) = (shapes[0], shapes[1], shapes[2])
            let g = cell.gates
            guard gates.count == 3, r.count == 2, gates[2] % g == 0, gates[2] > 0 else {
                throw .shape("needs gates_x [T, B, \(g)H] and R^T [H, \(g)H], got \(gates) and \(r)")
            }
            let (steps, batch, hidden) = (gates[0], gates[1], gates[2] / g)
            guard r == [hidden, g * hidden] else { throw .shape("R^T must be [\(hidden), \(g * hidden)] for gates \(gates), got \(r)") }
            guard h0 == [batch, hidden] else { throw .shape("the initial state must be [\(batch), \(hidden)], got \(h0)") }
            switch cell.kind {
            case .lstm:
                guard shapes[3] == [batch, hidden] else { throw .shape("the initial cell must be [\(batch), \(hidden)], got \(shapes[3])") }
                if shapes.count > 4, shapes[4] != [3 * hidden] { throw .shape("the peepholes must be [\(3 * hidden)], got \(shapes[4])") }
                return TensorType(.float32, [2, steps, batch, hidden])
            case .gru:
                guard shapes[3] == [hidden] else { throw .shape("the candidate's recurrent bias must be [\(hidden)], got \(shapes[3])") }
                return TensorType(.float32, [steps, batch, hidden])
            case .rnn:
                return TensorType(.float32, [steps, batch, hidden])
            }
        case let .gatherND(b):
            let (x, indices) = (shapes[0], shapes[1])
            guard b >= 0, b < min(x.count, indices.count) else { throw .attribute("batch_dims \(b) must be below both ranks (\(x.count), \(indices.count))") }
            guard Array(x.prefix(b)) == Array(indices.prefix(b)) else { throw .shape("data \(x) and indices \(indices) differ on their \(b) batch axes") }
            guard let k = indices.last, k >= 1, b + k <= x.count else { throw .shape("indices \(indices) must end in k, 1 <= k <= \(x.count - b)") }
            return TensorType(dtype, Array(indices.dropLast()) + Array(x.dropFirst(b + k)))
        case let .scatter(axis, _):
            let (x, indices, updates) = (shapes[0], shapes[1], shapes[2])
            if let axis {
                guard (0..<x.count).contains(axis) else { throw .attribute("axis \(axis) is out of range for rank \(x.count)") }
                guard indices == updates, indices.count == x.count,
                      zip(indices, x).enumerated().allSatisfy({ $0.offset == axis || $0.element.0 <= $0.element.1 }) else {
                    throw .shape("indices \(indices) and updates \(updates) must have one shape, the data's rank, and no larger dimension but on axis \(axis) (data \(x))")
                }
            } else {
                guard let k = indices.last, !indices.isEmpty, k >= 1, k <= x.count else {
                    throw .shape("indices \(indices) must end in k, 1 <= k <= the data's rank \(x.count)")
                }
                guard updates == Array(indices.dropLast()) + Array(x.dropFirst(k)) else {
                    throw .shape("updates must be \(Array(indices.dropLast()) + Array(x.dropFirst(k))) for indices \(indices) into data \(x), got \(updates)")
                }
            }
            return operands[0]
        case let .topK(k, axis, _):
            var out = shapes[0]
            guard (0..<out.count).contains(axis) else { throw .attribute("axis \(axis) is out of range for rank \(out.count)") }
            guard k >= 0, k <= out[axis] else { throw .attribute("k \(k) must be in 0...\(out[axis]), the axis's size") }
            out[axis] = k
            return TensorType(.int64, out)
        case let .cumulativeSum(axis, _, _, _):
            guard (0..<shapes[0].count).contains(axis) else { throw .attribute("axis \(axis) is out of range for rank \(shapes[0].count)") }
            return operands[0]
        case let .argExtreme(_, axis, keepDims, _):
            let x = shapes[0]
            guard (0..<x.count).contains(axis) else { throw .attribute("axis \(axis) is out of range for rank \(x.count)") }
            guard x[axis] > 0 else { throw .shape("axis \(axis) of \(x) is empty: no element to pick") }
            var out = x
            if keepDims { out[axis] = 1 } else { out.remove(at: axis) }
            return TensorType(.int64, out)
        case let .lrn(size, _, _, _):
            guard size > 0 else { throw .attribute("size \(size) must be positive") }
            guard shapes[0].count >= 2 else { throw .shape("LRN needs [N, C, ...]") }
            return operands[0]
        case let .softmax(axis), let .logSoftmax(axis):
            guard (0..<shapes[0].count).contains(axis) else { throw .attribute("axis \(axis) is out of range for rank \(shapes[0].count)") }
            return operands[0]
        case let .layerNorm(axis, epsilon):
            let x = shapes[0]
            guard (0..<x.count).contains(axis) else { throw .attribute("axis \(axis) is out of range for rank \(x.count)") }
            guard epsilon >= 0 else { throw .attribute("epsilon \(epsilon) is negative") }
            let normalized = Array(x[axis...])
            for p in shapes.dropFirst() where p.reduce(1, *) != 1 && !sameUpToLeadingOnes(p, normalized) {
                throw .shape("scale and bias must have the normalized shape \(normalized) or one element, got \(p)")
            }
            return operands[0]
        case let .reduce(_, axes, keepDims):
            let x = shapes[0]
            guard Set(axes).count == axes.count, axes.allSatisfy({ (0..<x.count).contains($0) }) else {
                throw .attribute("axes \(axes) must be distinct axes of rank \(x.count)")
            }
            var out: [Int] = []
            for (axis, d) in x.enumerated() {
                if !axes.contains(axis) { out.append(d) } else if keepDims { out.append(1) }
            }
            return TensorType(dtype, out)
        }
    }
}

extension Op {
    /// The element types the op takes: ops that move data take any (concat and assign one for
    /// all operands), gather's indices are i32, i64 or f32 (whole numbers), elementwise ops'
    /// formulas check their own (ScalarExpr.elementType), cumsum and top_k take any number
    /// type they compute on, the reductions but the mean integers too, a max pool 8-bit
    /// integers too (a quantized model's); every other op computes on f32.
    /// A training step's counter (dropout_mask's and augment's operand): one element.
    static func checkStepCounter(_ counter: TensorType) throws(OpRuleFailure) {
        guard counter.count == 1 else { throw .shape("the step counter must have one element, got \(counter.shape)") }
    }

    private func checkElementTypes(_ operands: [TensorType]) throws(OpRuleFailure) {
        let types = operands.map(\.dtype)
        let indexTypes: [DType] = [.int32, .int64, .float32]
        switch self {
        case .unary, .binary, .fusedElementwise, .select, .cast, .reshape, .flatten, .dropout, .transpose, .slice, .pad:
            return
        case let .pool2d(a):
            guard types[0] == .float32 || (a.kind == .max && [.uint8, .int8].contains(types[0])) else {
                throw .elementType("\(name) takes f32\(a.kind == .max ? ", uint8 or int8" : ""), got \(types[0].rawValue)")
            }
        case .cumulativeSum, .topK:
            guard types[0] != .bool, types[0].isComputed else { throw .elementType("\(name) takes numbers it computes on, got \(types[0].rawValue)") }
        case let .reduce(kind, _, _):
            guard types[0] == .float32 || (types[0].isInteger && types[0].isComputed && kind != .mean) else {
                throw .elementType("\(name) takes f32\(kind == .mean ? "" : " or integers"), got \(types[0].rawValue)")
            }
        case .concat, .assign:
            if let other = types.first(where: { $0 != types[0] }) {
                throw .elementType("takes operands of one element type, got \(types[0].rawValue) and \(other.rawValue)")
            }
        case .gather:
            guard indexTypes.contains(types[1]) else { throw .elementType("indices must be i32, i64 or f32, got \(types[1].rawValue)") }
        case .gatherElements, .gatherND:
            guard [.int32, .int64].contains(types[1]) else { throw .elementType("indices must be i32 or i64, got \(types[1].rawValue)") }
        case let .scatter(_, reduction):
            guard [.int32, .int64].contains(types[1]) else { throw .elementType("indices must be i32 or i64, got \(types[1].rawValue)") }
            guard types[2] == types[0] else { throw .elementType("updates must be of the data's type \(types[0].rawValue), got \(types[2].rawValue)") }
            if reduction != .none, types[0] == .bool || !types[0].isComputed {
                throw .elementType("a \(reduction.rawValue) reduction takes numbers it computes on, got \(types[0].rawValue)")
            }
        case .conv2d, .dense, .matmul:
            let integers = Op.isIntegerContraction(types)
            guard integers || types.allSatisfy({ $0 == .float32 }) else {
                throw .elementType("takes f32 operands, or uint8 x, int8 weights and an int32 bias; got \(types.map(\.rawValue).joined(separator: ", "))")
            }
            if case let .conv2d(a) = self, a.padValue != 0, !integers || !(0...255).contains(a.padValue) {
                throw .attribute("pad_value \(a.padValue) is for a uint8 input, and one of its values")
            }
        case .epilogue:
            return   // the base's rule checks its operands; the formula types the others
        case .augment:
            guard types[1] == .float32 else { throw .elementType("the step counter must be f32, got \(types[1].rawValue)") }
        case .gatherGrad:
            guard indexTypes.contains(types[0]) else { throw .elementType("indices must be i32, i64 or f32, got \(types[0].rawValue)") }
            guard types[1] == .float32 else { throw .elementType("dy must be f32, got \(types[1].rawValue)") }
        default:
            for (i, t) in operands.enumerated() where t.dtype != .float32 {
                throw .elementType("takes f32 operands; operand \(i) is \(t)")
            }
        }
    }

    /// A contraction's operands are quantized integers: uint8 x, int8 weights, an int32 bias.
    public static func isIntegerContraction(_ types: [DType]) -> Bool {
        types.count >= 2 && types[0] == .uint8 && types[1] == .int8 && (types.count < 3 || types[2] == .int32)
    }

    /// The result type of a contraction: int32 sums of integers, else f32.
    private func contractionType(_ operands: [TensorType]) -> DType {
        Op.isIntegerContraction(operands.map(\.dtype)) ? .int32 : .float32
    }

    /// Whether an epilogue operand of this shape is one value per output channel of a quantized
    /// convolution ([1, C, 1, 1] or [C, 1, 1]: a per-channel requantization's multiplier), which
    /// the integer GEMM reads at each result's row.
    public static func epilogueReadsPerChannel(base: Op, resultType result: TensorType, operand: [Int]) -> Bool {
        guard case .conv2d = base, result.dtype == .int32, result.shape.count == 4, (3...4).contains(operand.count) else { return false }
        return operand.enumerated().allSatisfy { i, size in size == (i == operand.count - 3 ? result.shape[1] : 1) }
    }

    /// Whether an epilogue operand of this shape is a vector along the result's last axis,
    /// which a Dense or MatMul reads at each result's column (a bias added after a MatMul).
    public static func epilogueReadsPerColumn(base: Op, operand: [Int], result: [Int]) -> Bool {
        switch base {
        case .dense, .matmul:
            guard let n = result.last, result.count >= 2 else { return false }
            return Array(operand.drop { $0 == 1 }) == [n] || (n == 1 && operand.allSatisfy { $0 == 1 } && !operand.isEmpty)
        default:
            return false
        }
    }
}

/// [1, 1, 64] and [64] name the same elements in the same order.
func sameUpToLeadingOnes(_ a: [Int], _ b: [Int]) -> Bool { a.drop { $0 == 1 }.elementsEqual(b.drop { $0 == 1 }) }

/// NumPy broadcasting: align from the right; each pair of dimensions is equal or one is 1.
public func broadcastShapes(_ a: [Int], _ b: [Int]) throws(OpRuleFailure) -> [Int] {
    let rank = max(a.count, b.count)
    let pa = Array(repeating: 1, count: rank - a.count) + a
    let pb = Array(repeating: 1, count: rank - b.count) + b
    var out: [Int] = []
    for (x, y) in zip(pa, pb) {
        if x == y || y == 1 { out.append(x) } else if x == 1 { out.append(y) } else {
            throw .shape("shapes \(a) and \(b) do not broadcast")
        }
    }
    return out
}

/// NumPy matmul: rank-1 operands gain and then lose a unit axis; batch axes broadcast.
public func matmulShape(_ a: [Int], _ b: [Int]) throws(OpRuleFailure) -> [Int] {
    guard !a.isEmpty, !b.isEmpty else { throw .shape("matmul operands must have rank 1 or more") }
    let a2 = a.count == 1 ? [1] + a : a
    let b2 = b.count == 1 ? b + [1] : b
    let (m, k) = (a2[a2.count - 2], a2[a2.count - 1])
    let (k2, n) = (b2[b2.count - 2], b2[b2.count - 1])
    guard k == k2 else { throw .shape("inner dimensions differ: \(k) and \(k2)") }
    var out = try broadcastShapes(Array(a2.dropLast(2)), Array(b2.dropLast(2)))
    if a.count > 1 { out.append(m) }
    if b.count > 1 { out.append(n) }
    return out
}

func conv2dShape(_ shapes: [[Int]], _ a: Conv2DAttributes) throws(OpRuleFailure) -> [Int] {
    let (x, w) = (shapes[0], shapes[1])
    guard a.strides.count == 2, a.dilations.count == 2, a.pads.count == 4,
          a.strides.allSatisfy({ $0 > 0 }), a.dilations.allSatisfy({ $0 > 0 }), a.pads.allSatisfy({ $0 >= 0 }), a.groups > 0 else {
        throw .attribute("strides and dilations must be 2 positive numbers, pads 4 non-negative ones, groups positive")
    }
    guard x.count == 4 else { throw .shape("input must be NCHW (rank 4), got rank \(x.count)") }
    guard w.count == 4 else { throw .shape("weights must be [OC, IC/groups, KH, KW], got rank \(w.count)") }
    guard x[1] % a.groups == 0, w[0] % a.groups == 0 else { throw .shape("channels \(x[1]) and \(w[0]) must divide by groups \(a.groups)") }
    guard w[1] == x[1] / a.groups else {
        throw .shape("input has \(x[1]) channels; weights expect \(w[1] * a.groups) (\(w[1]) per group)")
    }
    if shapes.count == 3, shapes[2] != [w[0]] { throw .shape("bias must be [\(w[0])]") }
    let oh = (x[2] + a.pads[0] + a.pads[2] - a.dilations[0] * (w[2] - 1) - 1) / a.strides[0] + 1
    let ow = (x[3] + a.pads[1] + a.pads[3] - a.dilations[1] * (w[3] - 1) - 1) / a.strides[1] + 1
    guard oh > 0, ow > 0 else { throw .shape("the \(w[2])x\(w[3]) kernel does not fit the \(x[2])x\(x[3]) input") }
    return [x[0], w[0], oh, ow]
}

func convTranspose2dShape(_ shapes: [[Int]], _ a: ConvTranspose2DAttributes) throws(OpRuleFailure) -> [Int] {
    let (x, w) = (shapes[0], shapes[1])
    guard a.strides.count == 2, a.dilations.count == 2, a.pads.count == 4, a.outputPadding.count == 2,
          a.strides.allSatisfy({ $0 > 0 }), a.dilations.allSatisfy({ $0 > 0 }), a.pads.allSatisfy({ $0 >= 0 }),
          a.outputPadding.allSatisfy({ $0 >= 0 }), a.groups > 0 else {
        throw .attribute("strides and dilations must be 2 positive numbers, pads 4 and output_padding 2 non-negative ones, groups positive")
    }
    guard x.count == 4, w.count == 4 else { throw .shape("input must be NCHW and weights [C, OC/groups, KH, KW]") }
    guard w[0] == x[1], x[1] % a.groups == 0 else { throw .shape("input has \(x[1]) channels, weights expect \(w[0]) (divisible by groups \(a.groups))") }
    let oc = w[1] * a.groups
    if shapes.count == 3, shapes[2] != [oc] { throw .shape("bias must be [\(oc)]") }
    let oh = a.strides[0] * (x[2] - 1) + a.outputPadding[0] + a.dilations[0] * (w[2] - 1) + 1 - a.pads[0] - a.pads[2]
    let ow = a.strides[1] * (x[3] - 1) + a.outputPadding[1] + a.dilations[1] * (w[3] - 1) + 1 - a.pads[1] - a.pads[3]
    guard oh > 0, ow > 0 else { throw .shape("the padding leaves no output") }
    return [x[0], oc, oh, ow]
}

func pool2dShape(_ x: [Int], _ a: Pool2DAttributes) throws(OpRuleFailure) -> [Int] {
    guard a.kernel.count == 2, a.strides.count == 2, a.pads.count == 4, a.dilations.count == 2, a.kernel.allSatisfy({ $0 > 0 }),
          a.strides.allSatisfy({ $0 > 0 }), a.pads.allSatisfy({ $0 >= 0 }), a.dilations.allSatisfy({ $0 > 0 }) else {
        throw .attribute("kernel, strides and dilations must be 2 positive numbers, pads 4 non-negative ones")
    }
    let extent = a.extent
    guard a.pads[0] < extent[0], a.pads[2] < extent[0], a.pads[1] < extent[1], a.pads[3] < extent[1] else {
        throw .attribute("pads \(a.pads) must be smaller than the window \(extent)")
    }
    guard x.count == 4 else { throw .shape("input must be NCHW (rank 4), got rank \(x.count)") }
    let oh = (x[2] + a.pads[0] + a.pads[2] - extent[0]) / a.strides[0] + 1
    let ow = (x[3] + a.pads[1] + a.pads[3] - extent[1]) / a.strides[1] + 1
    guard oh > 0, ow > 0 else { throw .shape("the \(a.kernel[0])x\(a.kernel[1]) window does not fit the \(x[2])x\(x[3]) input") }
    return [x[0], x[1], oh, ow]
}

func concatShape(_ shapes: [[Int]], axis: Int) throws(OpRuleFailure) -> [Int] {
    let first = shapes[0]
    guard (0..<first.count).contains(axis) else { throw .attribute("axis \(axis) is out of range for rank \(first.count)") }
    var out = first
    for s in shapes.dropFirst() {
        guard s.count == first.count else { throw .shape("all operands must have rank \(first.count)") }
        for d in s.indices where d != axis && s[d] != first[d] {
            throw .shape("operands differ on axis \(d), which is not the concat axis \(axis)")
        }
        out[axis] += s[axis]
    }
    return out
}
