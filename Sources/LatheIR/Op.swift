/// Every op of the IR, with its attributes. What each op means (its shape rule, fusion class
/// and formula) is declared once, in OpTable.swift; the interpreter and the code generator
/// each hold one switch over this enum, so the compiler points at every place a new op needs.
public enum Op: Hashable, Sendable {
    /// A graph input, fed at run time under `name`.
    case input(name: String)
    /// Constant data; the tensor is `Graph.constants[slot]`.
    case constant(slot: Int)
    /// State that a compiled training step keeps between runs (a trainable weight, an
    /// optimizer's moment, a running mean): starts as `Graph.constants[slot]`, changes only
    /// through `assign`, and is never folded.
    case variable(slot: Int)
    /// Operands (variable, value): after the run the variable holds `value`. Its result is
    /// `value`; an assign is always live. Every other reader of the variable runs before it.
    case assign
    /// One operand, one scalar formula (NumPy semantics).
    case unary(UnaryFn)
    /// Two operands with NumPy broadcasting.
    case binary(BinaryFn)
    /// Operands (condition, a, b), broadcast (NumPy): a where the bool condition holds, else b
    /// (ONNX's Where).
    case select
    /// Elementwise ops fused into one loop: a composed formula over any number of operands,
    /// each broadcast (NumPy) to the result's shape. Made by the elementwise fusion pass.
    case fusedElementwise(ScalarExpr)
    /// A contraction (conv2d, dense, matmul) whose result goes through an elementwise formula
    /// before it is stored: $0 is the contraction's result, $1... the extra operands, which
    /// follow the contraction's own `baseOperands` and have the result's shape. Made by the
    /// epilogue fusion pass (bias + activation + residual Add in the kernel).
    indirect case epilogue(base: Op, baseOperands: Int, formula: ScalarExpr)
    /// A convolution (`base`: conv2d, or conv2d with an epilogue of no extra operands) whose
    /// result is pooled before it is stored: each image's result is made and pooled while it is
    /// in cache, and never written whole. Made by the conv-pool fusion pass.
    indirect case pooled(base: Op, pool: Pool2DAttributes)
    /// Batched matrix product, batch dimensions broadcast: [..., M, K] x [..., K, N].
    /// On f32 operands, or on 8-bit integers (see `conv2d`).
    case matmul
    /// x[M, K] * w[K, N] (+ b[N]): a fully connected layer (Keras weight layout). On f32
    /// operands, or on 8-bit integers (see `conv2d`).
    case dense
    /// NCHW convolution; weights [OC, IC/groups, KH, KW], optional bias [OC]. On f32 operands,
    /// or on quantized integers: uint8 x, int8 weights and an int32 bias give the exact int32
    /// sums (a quantized model's zero points are applied by whoever builds it: the padding
    /// holds `padValue`, the input's zero point).
    case conv2d(Conv2DAttributes)
    /// Inference BatchNorm over axis 1: operands x, scale, bias, mean, variance.
    case batchNorm(epsilon: Float)
    case pool2d(Pool2DAttributes)
    /// The gradient of conv2d's weights: operands (x, dy), result [OC, IC/groups, KH, KW]
    /// (`kernel` is [KH, KW]): dW[o, c, i, j] = sum over n, y, x of dy[n, o, y, x] times the input
    /// tap x[n, c, y*sh - pt + i*dh, x*sw - pl + j*dw].
    case conv2dWeightGrad(Conv2DAttributes, kernel: [Int])
    /// The gradient of gather with respect to its data: operands (indices, dy), result the data's
    /// shape (`size` its length along `axis`): each dy slice added at the row its index picked
    /// (indices clamped as gather clamps them; repeated indices add up).
    case gatherGrad(axis: Int, size: Int)
    /// The gradient of pool2d: operands (x, dy), result shaped as x. Max pooling routes each dy
    /// to the first largest input of its window; average pooling spreads it over the window.
    case pool2dGrad(Pool2DAttributes)
    /// Inverted dropout's mask: each element `1 / (1 - rate)` with probability 1 - rate, else 0,
    /// from a counter-based hash of (seed, operand 0, index). Operand 0 is a one-element step
    /// counter, so each step draws a new mask and the same step the same one.
    case dropoutMask(shape: [Int], rate: Float, seed: UInt32)
    /// Operands (images [N, ..., H, W], a one-element step counter): each image randomly
    /// flipped, shifted or cropped to [height, width], as ImageAugment says, a new draw each
    /// step (data augmentation in a training step).
    case augment(ImageAugment)
    /// augment's gradient: operands (dy, step counter), result shaped as augment's input, whose
    /// last two axes are `inputSize`: each dy element added to the input pixel it was read from.
    case augmentGrad(ImageAugment, inputSize: [Int])
    /// Mean over H and W of NCHW, keeping them as 1x1.
    case globalAveragePool
    case reshape(shape: [Int])
    /// [d0, ..., dn] to [d0*...*d(axis-1), d(axis)*...*dn].
    case flatten(axis: Int)
    case transpose(perm: [Int])
    case concat(axis: Int)
    /// Per-axis [start, end) with a positive step; every axis listed, already clamped.
    case slice(starts: [Int], ends: [Int], steps: [Int])
    case softmax(axis: Int)
    case logSoftmax(axis: Int)
    /// Normalization over the axes from `axis` on: (x - mean) / sqrt(variance + epsilon) * scale
    /// + bias. Operands x, scale and an optional bias, each the shape of the normalized axes (or
    /// one element).
    case layerNorm(axis: Int, epsilon: Float)
    case reduce(ReduceKind, axes: [Int], keepDims: Bool)
    /// Identity when compiled for inference.
    case dropout(rate: Float)
    /// Transposed NCHW convolution (a convolution's gradient with respect to its input; the
    /// decoder half of autoencoders and GAN generators). Weights [C, OC/groups, KH, KW], optional
    /// bias [OC].
    case convTranspose2d(ConvTranspose2DAttributes)
    /// Picks slices of the data along `axis` by index: output data[:axis] + indices + data[axis+1:].
    /// Indices are float operands holding whole numbers; out-of-range ones are clamped.
    case gather(axis: Int)
    /// Operands (data, indices [..., k]): the slices of the data that the last axis of the indices
    /// picks among its axes after the first `batchDims` (which data and indices share), shaped
    /// indices[..., :-1] + data[batchDims + k...] (ONNX's GatherND). Integer indices, checked
    /// as the model runs.
    case gatherND(batchDims: Int)
    /// Operands (data, indices, updates): the data with each update written, or combined by
    /// `reduction`, at its index (ONNX's ScatterElements, along `axis`: indices and updates of
    /// one shape, each update going to its own position with its axis coordinate replaced by its
    /// index; ScatterND, `axis` nil: indices [..., k] pick slices of the data's first k axes,
    /// updates [..., the slice's shape]). Updates land in order, so a repeated index takes the
    /// last update, or all of them combined. Integer indices, checked as the model runs.
    case scatter(axis: Int?, reduction: ScatterReduction)
    /// The positions, as int64, of the `k` largest (or smallest) elements along `axis`, best
    /// first; equal elements by position, and a NaN larger than any number (ONNX's TopK
    /// indices; its values are a gather_elements of them).
    case topK(k: Int, axis: Int, largest: Bool)
    /// Running sums along `axis` (ONNX's CumSum), or products with `product` (CumProd): each
    /// element the sum of those before it and itself, or before it alone when `exclusive` (an
    /// empty sum 0, an empty product 1); from the end when `reverse`. Any numeric type,
    /// computed in it (integers wrap).
    case cumulativeSum(axis: Int, exclusive: Bool, reverse: Bool, product: Bool = false)
    /// Operands (data, indices) of one rank: out[p] = data[p with its `axis` coordinate replaced
    /// by indices[p]], for every position p of the indices (ONNX's GatherElements). Integer
    /// indices, checked as the model runs as gather's are.
    case gatherElements(axis: Int)
    /// Constant padding: `pads` lists the cells added before each axis, then after each axis
    /// (ONNX's order), all non-negative.
    case pad(pads: [Int], value: Float)
    /// A whole recurrent layer over its time steps, one direction: ONNX's LSTM, GRU or RNN cell
    /// (RecurrentCell says which, and its operands and result).
    case recurrent(RecurrentCell)
    /// Local response normalization across channels (axis 1):
    /// y = x / (bias + alpha / size * sum of x^2 over the size channels around c)^beta.
    case lrn(size: Int, alpha: Float, beta: Float, bias: Float)
    /// Element type conversion, as ONNX's Cast: floats rounded to nearest-even (f16, bf16),
    /// integers truncated toward zero and saturated at the type's range (NaN to 0), integers
    /// wrapped to a narrower integer type, bool true for any non-zero value; to and from the
    /// narrow types as NarrowTypes.swift says, by `rule` where ONNX leaves a choice. Its operand
    /// may be of any element type; an elementwise op, it fuses with its neighbours.
    case cast(to: DType, rule: CastRule = .standard)
    /// The position of the largest (or smallest) element along `axis`, as int64: the first
    /// one, or the last with `lastIndex`; a NaN counts as the largest and the smallest (NumPy's
    /// argmax and argmin). The axis is kept as 1 with `keepDims`, else dropped.
    case argExtreme(ArgKind, axis: Int, keepDims: Bool, lastIndex: Bool)
}

/// How a scatter's update meets the element it lands on: replaces it, or is added, multiplied,
/// or taken the larger or smaller of.
public enum ScatterReduction: String, Hashable, Sendable, CaseIterable {
    case none, add, mul, max, min

    /// The combining formula ($0 the element, $1 the update), nil for none.
    public var formula: ScalarExpr? {
        switch self {
        case .none: return nil
        case .add: return .arg(0) + .arg(1)
        case .mul: return .arg(0) * .arg(1)
        case .max: return .max(.arg(0), .arg(1))
        case .min: return .min(.arg(0), .arg(1))
        }
    }
}

public enum ArgKind: String, Hashable, Sendable {
    case max, min
}

public enum UnaryFn: Hashable, Sendable {
    case neg, abs, exp, log, sqrt, reciprocal, erf, floor, ceil, step
    /// Half to even; -1, 0 or 1; bool negation; a bool, true for NaN; every bit of an integer flipped.
    case round, sign, not, isNaN, bitNot
    /// Sine and cosine.
    case sin, cos
    case relu, sigmoid, tanh, gelu, geluTanh, softplus, softsign, hardSwish
    case leakyRelu(alpha: Float)
    case clip(min: Float, max: Float)
    case elu(alpha: Float)
    case selu(alpha: Float, gamma: Float)
    case hardSigmoid(alpha: Float, beta: Float)
}

public enum BinaryFn: String, Hashable, Sendable, CaseIterable {
    case add, sub, mul, div, max, min, pow
    /// Floored (the divisor's sign) and truncated (C's fmod) remainders: ONNX's Mod.
    case mod, fmod
    /// Comparisons, giving bool.
    case equal, less, lessOrEqual = "less_or_equal", greater, greaterOrEqual = "greater_or_equal"
    /// On bools.
    case and, or, xor
    /// On integers: bitwise and, or, xor; shifts (every bit out past the type's width).
    case bitAnd = "bit_and", bitOr = "bit_or", bitXor = "bit_xor", shiftLeft = "shift_left", shiftRight = "shift_right"
}

/// The cell of a recurrent op, run over every time step in one direction. Operands: the input's
/// share of every step's gates, gates_x = x W^T plus biases, [T, B, G*H] (G gates of H units, in
/// ONNX's order); the recurrent weights transposed, R^T [H, G*H]; the initial state h0 [B, H];
/// then, for an LSTM, the initial cell c0 [B, H], and for a GRU the candidate gate's recurrent
/// bias Rb_h [H] (gates_x holds both biases of z and r, and Wb_h). At each step, with f, g, h
/// the `activations`, prev = t - 1 (t + 1 when `reverse`: steps run from T - 1 down to 0) and
/// gates = gates_x[t] + h_prev R^T:
///
///   lstm (i, o, f, c; result [2, T, B, H], [0, t] h_t, [1, t] c_t; a fifth operand, the
///   peepholes P [3H] (P_i, P_o, P_f), adds P_i c_prev to i, P_f c_prev to f, P_o c_t to o):
///     c_t = f(f) c_prev + f(i) g(c);  h_t = f(o) h(c_t)
///   gru (z, r, h; result [T, B, H]):
///     z = f(z), r = f(r);  n = g(gates_x[t]_h + r (h_prev R_h^T + Rb_h))   linear_before_reset
///                          n = g(gates_x[t]_h + (r h_prev) R_h^T + Rb_h)   otherwise
///     h_t = (1 - z) n + z h_prev
///   rnn (one gate; result [T, B, H]): h_t = f(gates)
public struct RecurrentCell: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable { case lstm, gru, rnn }
    public var kind: Kind
    public var reverse: Bool
    /// f, g and h (as many as the kind uses).
    public var activations: [UnaryFn]
    public var linearBeforeReset: Bool

    public init(_ kind: Kind, reverse: Bool = false, activations: [UnaryFn]? = nil, linearBeforeReset: Bool = false) {
        self.kind = kind
        self.reverse = reverse
        self.activations = activations ?? kind.defaultActivations
        self.linearBeforeReset = linearBeforeReset
    }

    /// Gates a step computes.
    public var gates: Int {
        switch kind {
        case .lstm: return 4
        case .gru: return 3
        case .rnn: return 1
        }
    }

    /// The operands it takes: gates_x, R^T and h0, then c0 and optional peepholes (lstm), Rb_h (gru).
    public var operandCounts: ClosedRange<Int> {
        switch kind {
        case .lstm: return 4...5
        case .gru: return 4...4
        case .rnn: return 3...3
        }
    }
}

extension RecurrentCell.Kind {
    /// ONNX's defaults: sigmoid gates, tanh candidates.
    public var defaultActivations: [UnaryFn] {
        switch self {
        case .lstm: return [.sigmoid, .tanh, .tanh]
        case .gru: return [.sigmoid, .tanh]
        case .rnn: return [.tanh]
        }
    }
}

extension Op {
    /// An LSTM layer with ONNX's default activations.
    public static func lstm(reverse: Bool) -> Op { .recurrent(RecurrentCell(.lstm, reverse: reverse)) }
}

public enum ReduceKind: String, Hashable, Sendable, CaseIterable {
    case sum, mean, max, prod, min
}

public enum PoolKind: String, Hashable, Sendable {
    case max, average
}

public struct Conv2DAttributes: Hashable, Sendable {
    public var strides: [Int]      // [sh, sw]
    public var pads: [Int]         // [top, left, bottom, right] (ONNX order)
    public var dilations: [Int]    // [dh, dw]
    public var groups: Int
    /// The operands hold integers (a quantized convolution's, less their zero points) whose
    /// sums must come out exact: no algorithm that transforms them (Winograd).
    public var exactSums: Bool
    /// The value the padding holds, for a convolution of 8-bit integers (a quantized input's
    /// zero point, which stands for 0); 0 for floats.
    public var padValue: Int

    public init(strides: [Int] = [1, 1], pads: [Int] = [0, 0, 0, 0], dilations: [Int] = [1, 1], groups: Int = 1, exactSums: Bool = false,
                padValue: Int = 0) {
        self.strides = strides
        self.pads = pads
        self.dilations = dilations
        self.groups = groups
        self.exactSums = exactSums
        self.padValue = padValue
    }
}

public struct ConvTranspose2DAttributes: Hashable, Sendable {
    public var strides: [Int]
    public var pads: [Int]           // [top, left, bottom, right], taken off the full output
    public var outputPadding: [Int]  // extra rows and columns at the bottom and right
    public var dilations: [Int]
    public var groups: Int

    public init(strides: [Int] = [1, 1], pads: [Int] = [0, 0, 0, 0], outputPadding: [Int] = [0, 0], dilations: [Int] = [1, 1], groups: Int = 1) {
        self.strides = strides
        self.pads = pads
        self.outputPadding = outputPadding
        self.dilations = dilations
        self.groups = groups
    }
}

public struct Pool2DAttributes: Hashable, Sendable {
    public var kind: PoolKind
    public var kernel: [Int]       // [kh, kw]
    public var strides: [Int]
    public var pads: [Int]         // [top, left, bottom, right]
    /// Average pooling only: whether padded cells count in the divisor (ONNX's count_include_pad).
    public var countIncludePad: Bool
    /// Gaps between the window's taps: [dh, dw].
    public var dilations: [Int]

    public init(kind: PoolKind, kernel: [Int], strides: [Int], pads: [Int] = [0, 0, 0, 0], countIncludePad: Bool = false, dilations: [Int] = [1, 1]) {
        self.kind = kind
        self.kernel = kernel
        self.strides = strides
        self.pads = pads
        self.countIncludePad = countIncludePad
        self.dilations = dilations
    }

    /// The window's extent on the input: (kernel - 1) * dilation + 1.
    public var extent: [Int] { (0..<2).map { (kernel[$0] - 1) * dilations[$0] + 1 } }
}
