/// The op table: for every op, its printed name, operand count, fusion class, scalar formula
/// (elementwise ops) and shape rule. Everything else (interpreter, codegen, printer) reads
/// these; nothing else restates them.

/// TVM's OpPatternKind lattice: what fusion may do with an op.
public enum FusionClass: Int, Comparable, Sendable {
    case elementwise, broadcast, injective, reduction, contraction, opaque
    public static func < (a: FusionClass, b: FusionClass) -> Bool { a.rawValue < b.rawValue }
}

/// Why an op rejected its operands or attributes; the graph adds the node and the location.
public struct OpRuleFailure: Error {
    public var reason: String
    public var isAttribute: Bool
    /// The operands' element types, not their shapes, are wrong.
    public var isElementType = false
    static func shape(_ reason: String) -> OpRuleFailure { OpRuleFailure(reason: reason, isAttribute: false) }
    static func attribute(_ reason: String) -> OpRuleFailure { OpRuleFailure(reason: reason, isAttribute: true) }
    static func elementType(_ reason: String) -> OpRuleFailure { OpRuleFailure(reason: reason, isAttribute: false, isElementType: true) }
}

extension UnaryFn {
    public var name: String {
        switch self {
        case .neg: return "neg"
        case .abs: return "abs"
        case .exp: return "exp"
        case .log: return "log"
        case .sqrt: return "sqrt"
        case .reciprocal: return "reciprocal"
        case .relu: return "relu"
        case .sigmoid: return "sigmoid"
        case .tanh: return "tanh"
        case .gelu: return "gelu"
        case .geluTanh: return "gelu_tanh"
        case .leakyRelu: return "leaky_relu"
        case .clip: return "clip"
        case .erf: return "erf"
        case .floor: return "floor"
        case .ceil: return "ceil"
        case .step: return "step"
        case .round: return "round"
        case .sign: return "sign"
        case .not: return "not"
        case .isNaN: return "is_nan"
        case .bitNot: return "bit_not"
        case .sin: return "sin"
        case .cos: return "cos"
        case .softplus: return "softplus"
        case .softsign: return "softsign"
        case .hardSwish: return "hard_swish"
        case .elu: return "elu"
        case .selu: return "selu"
        case .hardSigmoid: return "hard_sigmoid"
        }
    }

    /// The formula over operand 0.
    public var formula: ScalarExpr {
        let x = ScalarExpr.arg(0)
        switch self {
        case .neg: return -x
        case .abs: return .unary(.abs, x)
        case .exp: return .exp(x)
        case .log: return .unary(.log, x)
        case .sqrt: return .unary(.sqrt, x)
        case .reciprocal: return .const(1) / x
        case .relu: return .max(x, .const(0))
        case .sigmoid: return .const(1) / (.const(1) + .exp(-x))
        case .tanh: return .unary(.tanh, x)
        case .gelu: return .const(0.5) * x * (.const(1) + .unary(.erf, x * .const(0.70710678118654752)))
        case .geluTanh:
            return .const(0.5) * x * (.const(1) + .unary(.tanh, .const(0.79788456080286536) * (x + .const(0.044715) * x * x * x)))
        case let .leakyRelu(alpha): return .max(x, .const(0)) + .const(alpha) * .min(x, .const(0))
        case let .clip(lo, hi): return .min(.max(x, .const(lo)), .const(hi))
        case .erf: return .unary(.erf, x)
        case .floor: return .unary(.floor, x)
        case .ceil: return .unary(.ceil, x)
        case .step: return .step(x)
        case .round: return .unary(.round, x)
        case .sign: return .unary(.sign, x)
        case .not: return .unary(.not, x)
        case .isNaN: return .unary(.isNaN, x)
        case .bitNot: return .unary(.bitNot, x)
        case .sin: return .unary(.sin, x)
        case .cos: return .unary(.cos, x)
        // log(1 + exp(x)) written as max(x, 0) + log(1 + exp(-|x|)), which cannot overflow.
        case .softplus: return .max(x, .const(0)) + .unary(.log, .const(1) + .exp(-.unary(.abs, x)))
        case .softsign: return x / (.const(1) + .unary(.abs, x))
        case .hardSwish: return x * .max(.const(0), .min(.const(1), x * .const(1.0 / 6) + .const(0.5)))
        case let .elu(alpha): return .max(x, .const(0)) + .const(alpha) * (.exp(.min(x, .const(0))) - .const(1))
        case let .selu(alpha, gamma):
            return .const(gamma) * (.max(x, .const(0)) + .const(alpha) * (.exp(.min(x, .const(0))) - .const(1)))
        case let .hardSigmoid(alpha, beta): return .max(.const(0), .min(.const(1), .const(alpha) * x + .const(beta)))
        }
    }
}

extension BinaryFn {
    public var formula: ScalarExpr {
        let scalar: ScalarBinary
        switch self {
        case .add: scalar = .add
        case .sub: scalar = .sub
        case .mul: scalar = .mul
        case .div: scalar = .div
        case .max: scalar = .max
        case .min: scalar = .min
        case .pow: scalar = .pow
        case .mod: scalar = .mod
        case .fmod: scalar = .fmod
        case .equal: scalar = .equal
        case .less: scalar = .less
        case .lessOrEqual: scalar = .lessOrEqual
        case .greater: scalar = .greater
        case .greaterOrEqual: scalar = .greaterOrEqual
        case .and: scalar = .and
        case .or: scalar = .or
        case .xor: scalar = .xor
        case .bitAnd: scalar = .bitAnd
        case .bitOr: scalar = .bitOr
        case .bitXor: scalar = .bitXor
        case .shiftLeft: scalar = .shiftLeft
        case .shiftRight: scalar = .shiftRight
        }
        return .binary(scalar, .arg(0), .arg(1))
    }
}

/// BatchNorm's formula over (x, scale, bias, mean, variance), each parameter broadcast along axis 1.
public func batchNormFormula(epsilon: Float) -> ScalarExpr {
    let (x, scale, bias, mean, variance) = (ScalarExpr.arg(0), ScalarExpr.arg(1), ScalarExpr.arg(2), ScalarExpr.arg(3), ScalarExpr.arg(4))
    return (x - mean) * (scale / .unary(.sqrt, variance + .const(epsilon))) + bias
}

extension Op {
    public var name: String {
        switch self {
        case .input: return "input"
        case .constant: return "constant"
        case .variable: return "variable"
        case .assign: return "assign"
        case .pool2dGrad: return "pool2d_grad"
        case .conv2dWeightGrad: return "conv2d_weight_grad"
        case .gatherGrad: return "gather_grad"
        case .dropoutMask: return "dropout_mask"
        case .augment: return "augment"
        case .augmentGrad: return "augment_grad"
        case let .unary(fn): return fn.name
        case let .binary(fn): return fn.rawValue
        case .fusedElementwise: return "fused_elementwise"
        case .select: return "where"
        case let .epilogue(base, _, _): return "\(base.name)_epilogue"
        case let .pooled(base, a): return "\(base.name)_\(Op.pool2d(a).name)"
        case .matmul: return "matmul"
        case .dense: return "dense"
        case .conv2d: return "conv2d"
        case .batchNorm: return "batch_norm"
        case let .pool2d(a): return a.kind == .max ? "max_pool2d" : "avg_pool2d"
        case .globalAveragePool: return "global_avg_pool"
        case .reshape: return "reshape"
        case .flatten: return "flatten"
        case .transpose: return "transpose"
        case .concat: return "concat"
        case .slice: return "slice"
        case .softmax: return "softmax"
        case .logSoftmax: return "log_softmax"
        case .layerNorm: return "layer_norm"
        case let .reduce(kind, _, _): return "reduce_\(kind.rawValue)"
        case .dropout: return "dropout"
        case .lrn: return "lrn"
        case let .argExtreme(kind, _, _, _): return "arg_\(kind.rawValue)"
        case .cast: return "cast"
        case .convTranspose2d: return "conv_transpose2d"
        case .gather: return "gather"
        case .gatherElements: return "gather_elements"
        case .gatherND: return "gather_nd"
        case let .cumulativeSum(_, _, _, product): return product ? "cumprod" : "cumsum"
        case .topK: return "top_k"
        case let .scatter(axis, _): return axis == nil ? "scatter_nd" : "scatter_elements"
        case .pad: return "pad"
        case let .recurrent(cell): return cell.kind.rawValue
        }
    }

    public var fusionClass: FusionClass {
        switch self {
        case .input, .constant, .variable, .assign, .dropoutMask: return .opaque
        case .pool2dGrad: return .reduction
        case .unary, .cast: return .elementwise
        case .binary, .batchNorm, .fusedElementwise, .select: return .broadcast
        case .reshape, .flatten, .transpose, .concat, .slice, .dropout, .gather, .gatherElements, .gatherND, .pad: return .injective
        case .gatherGrad, .recurrent, .scatter, .augment, .augmentGrad: return .opaque
        case .pool2d, .globalAveragePool, .softmax, .logSoftmax, .layerNorm, .reduce, .lrn, .argExtreme, .cumulativeSum, .topK: return .reduction
        case .matmul, .dense, .conv2d, .convTranspose2d, .epilogue, .pooled, .conv2dWeightGrad: return .contraction
        }
    }

    /// The elementwise formula, for ops that are one.
    public var formula: ScalarExpr? {
        switch self {
        case let .unary(fn): return fn.formula
        case let .binary(fn): return fn.formula
        case let .fusedElementwise(formula): return formula
        case .select: return .select(.arg(0), .arg(1), .arg(2))
        case let .cast(to, rule): return .cast(to, .arg(0), rule)
        case let .batchNorm(eps): return batchNormFormula(epsilon: eps)
        default: return nil
        }
    }

    /// The operand counts the op accepts.
    public var arity: ClosedRange<Int> {
        switch self {
        case .input, .constant, .variable: return 0...0
        case .unary, .reshape, .flatten, .transpose, .slice, .softmax, .logSoftmax, .reduce,
             .dropout, .pool2d, .globalAveragePool, .lrn, .pad, .dropoutMask, .cast, .argExtreme, .cumulativeSum, .topK: return 1...1
        case .binary, .matmul, .gather, .gatherElements, .gatherND, .assign, .pool2dGrad, .conv2dWeightGrad, .gatherGrad, .augment, .augmentGrad: return 2...2
        case .dense, .conv2d, .convTranspose2d, .layerNorm, .pooled: return 2...3
        case .select: return 3...3
        case .scatter: return 3...3
        case let .recurrent(cell): return cell.operandCounts
        case .batchNorm: return 5...5
        case .concat, .fusedElementwise, .epilogue: return 1...Int.max
        }
    }

    /// Attributes as printed in the IR text, empty for ops without any.
    public var attributeText: String {
        func list(_ v: [Int]) -> String { "[" + v.map(String.init).joined(separator: ",") + "]" }
        switch self {
        case let .input(name): return "name=\"\(name)\""
        case let .constant(slot), let .variable(slot): return "slot=\(slot)"
        case let .dropoutMask(shape, rate, seed): return "shape=\(list(shape)), rate=\(rate), seed=\(seed)"
        case let .augment(a): return a.attributeText
        case let .augmentGrad(a, inputSize): return a.attributeText + ", input_size=\(list(inputSize))"
        case let .unary(.leakyRelu(alpha)): return "alpha=\(alpha)"
        case let .unary(.clip(lo, hi)): return "min=\(lo), max=\(hi)"
        case let .unary(.elu(alpha)): return "alpha=\(alpha)"
        case let .unary(.selu(alpha, gamma)): return "alpha=\(alpha), gamma=\(gamma)"
        case let .unary(.hardSigmoid(alpha, beta)): return "alpha=\(alpha), beta=\(beta)"
        case let .lrn(size, alpha, beta, bias): return "size=\(size), alpha=\(alpha), beta=\(beta), bias=\(bias)"
        case let .argExtreme(_, axis, keep, last): return "axis=\(axis), keep_dims=\(keep)" + (last ? ", last_index=true" : "")
        case let .cast(to, rule): return "to=\(to.rawValue)" + (rule == .standard ? "" : ", " + rule.description.replacingOccurrences(of: " ", with: ", "))
        case let .conv2dWeightGrad(a, kernel):
            return "kernel=\(list(kernel)), strides=\(list(a.strides)), pads=\(list(a.pads)), dilations=\(list(a.dilations)), groups=\(a.groups)"
        case let .conv2d(a):
            return "strides=\(list(a.strides)), pads=\(list(a.pads)), dilations=\(list(a.dilations)), groups=\(a.groups)" + (a.exactSums ? ", exact_sums=true" : "") + (a.padValue != 0 ? ", pad_value=\(a.padValue)" : "")
        case let .batchNorm(eps): return "epsilon=\(eps)"
        case let .layerNorm(axis, eps): return "axis=\(axis), epsilon=\(eps)"
        case let .convTranspose2d(a):
            return "strides=\(list(a.strides)), pads=\(list(a.pads)), output_padding=\(list(a.outputPadding)), dilations=\(list(a.dilations)), groups=\(a.groups)"
        case let .gather(axis), let .gatherElements(axis): return "axis=\(axis)"
        case let .gatherND(batchDims): return "batch_dims=\(batchDims)"
        case let .topK(k, axis, largest): return "k=\(k), axis=\(axis), largest=\(largest)"
        case let .scatter(axis, reduction):
            return (axis.map { "axis=\($0), " } ?? "") + "reduction=\(reduction.rawValue)"
        case let .cumulativeSum(axis, exclusive, reverse, _):
            return "axis=\(axis)" + (exclusive ? ", exclusive=true" : "") + (reverse ? ", reverse=true" : "")
        case let .gatherGrad(axis, size): return "axis=\(axis), size=\(size)"
        case let .fusedElementwise(formula): return "\(formula)"
        case let .epilogue(base, _, formula):
            let inner = base.attributeText
            return (inner.isEmpty ? "" : inner + ", ") + "epilogue=\(formula)"
        case let .pooled(base, a):
            return base.attributeText + ", pool=\(Op.pool2d(a).name)(\(Op.pool2d(a).attributeText))"
        case let .pad(pads, value): return "pads=\(list(pads)), value=\(value)"
        case let .pool2d(a), let .pool2dGrad(a):
            let include = a.kind == .average ? ", count_include_pad=\(a.countIncludePad)" : ""
            let dilated = a.dilations == [1, 1] ? "" : ", dilations=\(list(a.dilations))"
            return "kernel=\(list(a.kernel)), strides=\(list(a.strides)), pads=\(list(a.pads))\(dilated)\(include)"
        case let .reshape(shape): return "shape=\(list(shape))"
        case let .flatten(axis), let .concat(axis), let .softmax(axis), let .logSoftmax(axis): return "axis=\(axis)"
        case let .transpose(perm): return "perm=\(list(perm))"
        case let .slice(starts, ends, steps): return "starts=\(list(starts)), ends=\(list(ends)), steps=\(list(steps))"
        case let .reduce(_, axes, keep): return "axes=\(list(axes)), keep_dims=\(keep)"
        case let .dropout(rate): return "rate=\(rate)"
        case let .recurrent(cell):
            var parts = cell.reverse ? ["reverse=true"] : []
            if cell.activations != cell.kind.defaultActivations {
                parts.append("activations=[" + cell.activations.map { Op.unary($0).attributeText.isEmpty ? $0.name : "\($0.name)(\(Op.unary($0).attributeText))" }.joined(separator: ",") + "]")
            }
            if cell.linearBeforeReset { parts.append("linear_before_reset=true") }
            return parts.joined(separator: ", ")
        default: return ""
        }
    }
}
