/// Keras-style layers. Each records where it was created (#fileID, #line), and the nodes it
/// makes carry that location, so a shape error points at the layer in the user's model.

/// A fully connected layer: y = activation(x W + b), W [inFeatures, units], applied to the last
/// axis (an input [batch, time, features] gives [batch, time, units]).
public final class Dense: Layer {
    public var trainable = true
    public let units: Int
    public let activation: Activation
    public private(set) var parameters: WeightAndBias
    let location: SourceLocation

    public init(_ units: Int, activation: Activation = .linear, useBias: Bool = true, weight: HostTensor? = nil, bias: HostTensor? = nil,
                fileID: String = #fileID, line: Int = #line) {
        self.units = units
        self.activation = activation
        parameters = WeightAndBias(weight: weight, bias: bias, useBias: useBias)
        location = SourceLocation(fileID: fileID, line: line)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard units > 0 else { throw LatheError.invalidAttribute(op: "dense", reason: "units must be positive, got \(units)", location: location) }
        guard x.rank >= 2 else {
            throw LatheError.shapeMismatch(op: "dense", shapes: [x.shape], reason: "Dense takes [batch, ..., features]", location: location)
        }
        let features = x.shape[x.rank - 1]
        try parameters.prepare(weightShape: [features, units], biasShape: [units], fanIn: features, fanOut: units, he: activation.prefersHeInit,
                               graph: x.graph, op: "dense", location)
        let name = x.graph.freshName("dense")
        let rows = x.rank == 2 ? x : try x.apply(.reshape(shape: [x.type.count / features, features]), [], name: "\(name).rows", location)
        var y = try rows.apply(.dense, parameters.tensors(in: x.graph, layer: name, trainable: trainable, location, current: { [weak self] in self?.parameters.value($0) }) {
            [weak self] in self?.parameters.set($0, $1)
        }, name: name, location)
        if x.rank > 2 { y = try y.apply(.reshape(shape: Array(x.shape.dropLast()) + [units]), [], name: "\(name).unrows", location) }
        return try activation.apply(y, location, layer: name)
    }
}

/// Zero padding for a convolution or pooling window.
public enum Padding: Hashable, Sendable {
    /// No padding.
    case valid
    /// Enough padding that the output is ceil(input / stride); the odd cell goes at the end.
    case same
    /// [top, left, bottom, right].
    case explicit([Int])

    func pads(input: [Int], kernel: [Int], strides: [Int], dilations: [Int]) -> [Int] {
        switch self {
        case .valid: return [0, 0, 0, 0]
        case let .explicit(p): return p
        case .same:
            // Bad strides are reported by the op's shape rule; here they only must not trap.
            guard strides.allSatisfy({ $0 > 0 }) else { return [0, 0, 0, 0] }
            let total = (0..<2).map { i -> Int in
                let out = (input[i] + strides[i] - 1) / strides[i]
                return max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - input[i], 0)
            }
            return [total[0] / 2, total[1] / 2, total[0] - total[0] / 2, total[1] - total[1] / 2]
        }
    }
}

/// A 2-D convolution over NCHW input: `filters` output channels, a kernel x kernel window.
public final class Conv2D: Layer {
    public var trainable = true
    public let filters: Int
    public let kernel: [Int]
    public let strides: [Int]
    public let padding: Padding
    public let dilations: [Int]
    public let groups: Int
    public let activation: Activation
    public private(set) var parameters: WeightAndBias
    let location: SourceLocation

    public init(_ filters: Int, kernel: Int, stride: Int = 1, padding: Padding = .valid, dilation: Int = 1, groups: Int = 1,
                activation: Activation = .linear, useBias: Bool = true, weight: HostTensor? = nil, bias: HostTensor? = nil,
                fileID: String = #fileID, line: Int = #line) {
        self.filters = filters
        self.kernel = [kernel, kernel]
        self.strides = [stride, stride]
        self.padding = padding
        self.dilations = [dilation, dilation]
        self.groups = groups
        self.activation = activation
        parameters = WeightAndBias(weight: weight, bias: bias, useBias: useBias)
        location = SourceLocation(fileID: fileID, line: line)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard filters > 0, groups > 0, filters % groups == 0, (kernel + strides + dilations).allSatisfy({ $0 > 0 }) else {
            throw LatheError.invalidAttribute(op: "conv2d", reason: "filters, kernel, stride, dilation and groups must be positive, and filters (\(filters)) must divide by groups (\(groups))", location: location)
        }
        guard x.rank == 4, x.shape[1] % groups == 0 else {
            throw LatheError.shapeMismatch(op: "conv2d", shapes: [x.shape], reason: "Conv2D takes NCHW input whose channels divide by groups (\(groups))", location: location)
        }
        let inPerGroup = x.shape[1] / groups
        let window = kernel[0] * kernel[1]
        try parameters.prepare(weightShape: [filters, inPerGroup] + kernel, biasShape: [filters], fanIn: inPerGroup * window, fanOut: filters / groups * window,
                               he: activation.prefersHeInit, graph: x.graph, op: "conv2d", location)
        let name = x.graph.freshName("conv")
        let pads = padding.pads(input: Array(x.shape[2...]), kernel: kernel, strides: strides, dilations: dilations)
        let attributes = Conv2DAttributes(strides: strides, pads: pads, dilations: dilations, groups: groups)
        let y = try x.apply(.conv2d(attributes), parameters.tensors(in: x.graph, layer: name, trainable: trainable, location, current: { [weak self] in self?.parameters.value($0) }) {
            [weak self] in self?.parameters.set($0, $1)
        }, name: name, location)
        return try activation.apply(y, location, layer: name)
    }
}

/// Pooling over pool x pool windows, `stride` apart (the pool size by default).
public class Pool2D: Layer {
    /// Has no weights: `trainable` changes nothing.
    public var trainable = true
    public let kind: PoolKind
    public let kernel: [Int]
    public let strides: [Int]
    public let padding: Padding
    let location: SourceLocation

    public init(_ kind: PoolKind, _ pool: Int, stride: Int? = nil, padding: Padding = .valid, fileID: String = #fileID, line: Int = #line) {
        self.kind = kind
        kernel = [pool, pool]
        strides = [stride ?? pool, stride ?? pool]
        self.padding = padding
        location = SourceLocation(fileID: fileID, line: line)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard x.rank == 4 else {
            throw LatheError.shapeMismatch(op: kind == .max ? "max_pool2d" : "avg_pool2d", shapes: [x.shape], reason: "pooling takes NCHW input", location: location)
        }
        let pads = padding.pads(input: Array(x.shape[2...]), kernel: kernel, strides: strides, dilations: [1, 1])
        let name = x.graph.freshName(kind == .max ? "maxpool" : "avgpool")
        return try x.apply(.pool2d(Pool2DAttributes(kind: kind, kernel: kernel, strides: strides, pads: pads)), [], name: name, location)
    }
}

/// Max pooling (Keras' MaxPooling2D).
public final class MaxPool2D: Pool2D {
    public init(_ pool: Int, stride: Int? = nil, padding: Padding = .valid, fileID: String = #fileID, line: Int = #line) {
        super.init(.max, pool, stride: stride, padding: padding, fileID: fileID, line: line)
    }
}

/// Average pooling; padded cells do not count in the mean.
public final class AvgPool2D: Pool2D {
    public init(_ pool: Int, stride: Int? = nil, padding: Padding = .valid, fileID: String = #fileID, line: Int = #line) {
        super.init(.average, pool, stride: stride, padding: padding, fileID: fileID, line: line)
    }
}

public final class GlobalAveragePooling2D: Layer {
    /// Has no weights: `trainable` changes nothing.
    public var trainable = true
    let location: SourceLocation
    public init(fileID: String = #fileID, line: Int = #line) { location = SourceLocation(fileID: fileID, line: line) }
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let name = x.graph.freshName("gap")
        return try x.apply(.globalAveragePool, [], name: name, location).apply(.flatten(axis: 1), [], name: "\(name).flatten", location)
    }
}

/// [N, d1, d2, ...] to [N, d1*d2*...].
public final class Flatten: Layer {
    /// Has no weights: `trainable` changes nothing.
    public var trainable = true
    let location: SourceLocation
    public init(fileID: String = #fileID, line: Int = #line) { location = SourceLocation(fileID: fileID, line: line) }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.apply(.flatten(axis: 1), [], name: x.graph.freshName("flatten"), location) }
}

/// Randomly zeroes inputs while training; the identity when compiled for inference.
public final class Dropout: Layer {
    /// Has no weights: `trainable` changes nothing.
    public var trainable = true
    public let rate: Float
    let location: SourceLocation
    public init(_ rate: Float, fileID: String = #fileID, line: Int = #line) {
        self.rate = rate
        location = SourceLocation(fileID: fileID, line: line)
    }
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let g = x.graph, name = g.freshName("dropout")
        guard g.isTraining, rate > 0 else { return try x.apply(.dropout(rate: rate), [], name: name, location) }
        guard rate < 1 else { throw LatheError.invalidAttribute(op: "dropout", reason: "rate \(rate) is not in [0, 1)", location: location) }
        let seed = UInt32.random(in: 0...UInt32.max, using: &g.random)
        let mask = try g.trainingStep(location).apply(.dropoutMask(shape: x.shape, rate: rate, seed: seed), [], name: "\(name).mask", location)
        return try x.apply(.binary(.mul), [mask], name: name, location)
    }
}

extension Graph {
    /// The name of the input that numbers a training graph's steps (it seeds Dropout's masks).
    public static let trainingStepInput = "training_step"

    /// The training graph's step-number input [1], made on first use.
    func trainingStep(_ location: SourceLocation) throws -> Tensor {
        if let existing = inputs.first(where: { $0.name == Graph.trainingStepInput }) { return Tensor(graph: self, id: existing.id) }
        return try input(Graph.trainingStepInput, shape: [1], fileID: location.fileID, line: location.line)
    }
}

/// BatchNorm over the channel axis (1), with learned scale and bias and running statistics; new
/// layers start as the identity (scale 1, bias 0, mean 0, variance 1). In a training graph it
/// normalizes by the batch's statistics and updates the running ones, unless it is frozen
/// (`trainable` false): then it normalizes by the running ones and keeps them, as Keras does.
public final class BatchNorm: Layer {
    public var trainable = true
    public let epsilon: Float
    /// How much of the running statistics each training step keeps (Keras' momentum).
    public let momentum: Float
    public private(set) var parameters: (scale: HostTensor, bias: HostTensor, mean: HostTensor, variance: HostTensor)?
    let location: SourceLocation

    private let given: [HostTensor?]

    /// Give all four of scale, bias, mean and variance, or none.
    public init(epsilon: Float = 1e-3, momentum: Float = 0.99, scale: HostTensor? = nil, bias: HostTensor? = nil, mean: HostTensor? = nil, variance: HostTensor? = nil,
                fileID: String = #fileID, line: Int = #line) {
        self.epsilon = epsilon
        self.momentum = momentum
        location = SourceLocation(fileID: fileID, line: line)
        given = [scale, bias, mean, variance]
        if let scale, let bias, let mean, let variance { parameters = (scale, bias, mean, variance) }
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard x.rank >= 2 else {
            throw LatheError.shapeMismatch(op: "batch_norm", shapes: [x.shape], reason: "BatchNorm takes [N, C, ...]", location: location)
        }
        let c = x.shape[1]
        let count = given.compactMap { $0 }.count
        guard count == 0 || count == 4 else {
            throw LatheError.invalidAttribute(op: "batch_norm", reason: "give all of scale, bias, mean and variance, or none (got \(count))", location: location)
        }
        if parameters == nil {
            parameters = (HostTensor(shape: [c], repeating: 1), HostTensor(shape: [c]), HostTensor(shape: [c]), HostTensor(shape: [c], repeating: 1))
        }
        let p = parameters!
        for (tensor, what) in zip([p.scale, p.bias, p.mean, p.variance], ["scale", "bias", "mean", "variance"]) {
            try checkWeight(tensor, [c], what, "batch_norm", location)
        }
        let g = x.graph
        let name = g.freshName("batchnorm")
        let scale = g.parameter(p.scale, name: "\(name).scale", trainable: trainable, location, penalized: false,
                                current: { [weak self] in self?.parameters?.scale }) { [weak self] in self?.parameters?.scale = $0 }
        let bias = g.parameter(p.bias, name: "\(name).bias", trainable: trainable, location, penalized: false,
                               current: { [weak self] in self?.parameters?.bias }) { [weak self] in self?.parameters?.bias = $0 }
        // Frozen, it normalizes as for inference, by its running statistics (constants, or
        // variables refreshed from the layer).
        guard g.learns(trainable: trainable) else {
            let statistics = [(p.mean, "mean"), (p.variance, "variance")].map { value, role in
                g.parameter(value, name: "\(name).\(role)", trainable: false, location, current: { [weak self] in
                    role == "mean" ? self?.parameters?.mean : self?.parameters?.variance
                }) { _ in }
            }
            return try x.apply(.batchNorm(epsilon: epsilon), [scale, bias] + statistics, name: name, location)
        }
        return try trainingBatchNorm(x, scale: scale, bias: bias, name: name)
    }

    /// Normalizes by the batch's mean and (biased) variance over every axis but 1, and moves
    /// the running statistics toward the batch's (the variance unbiased, as Keras and PyTorch do).
    private func trainingBatchNorm(_ x: Tensor, scale: Tensor, bias: Tensor, name: String) throws -> Tensor {
        let g = x.graph, c = x.shape[1], p = parameters!
        let axes = [0] + Array(2..<x.rank)
        let perChannel = [1, c] + Array(repeating: 1, count: x.rank - 2)
        let (file, line) = (location.fileID, location.line)
        let (normalized, mean, variance) = try x.standardized(axes: axes, epsilon: epsilon, name: name, location)
        let y = try normalized
            .multiplied(by: scale.reshaped(perChannel, fileID: file, line: line), fileID: file, line: line)
            .adding(bias.reshaped(perChannel, fileID: file, line: line), fileID: file, line: line)
        let n = Float(x.type.count / c)
        for (statistic, batch, correction, role) in [(p.mean, mean, Float(1), "mean"), (p.variance, variance, n / max(n - 1, 1), "variance")] {
            let running = Tensor(graph: g, id: g.addStateVariable(statistic, name: "\(name).\(role)", location: location) { [weak self] value in
                if role == "mean" { self?.parameters?.mean = value } else { self?.parameters?.variance = value }
            })
            let update = ScalarExpr.const(momentum) * .arg(0) + .const((1 - momentum) * correction) * .arg(1)
            let moved = try running.apply(.fusedElementwise(update), [batch.reshaped([c], fileID: file, line: line)], name: "\(name).moved_\(role)", location)
            _ = try running.apply(.assign, [moved], name: "\(name).update_\(role)", location)
        }
        return y
    }
}

/// An activation as a layer of its own.
public final class ActivationLayer: Layer {
    /// Has no weights: `trainable` changes nothing.
    public var trainable = true
    public let activation: Activation
    let location: SourceLocation
    public init(_ activation: Activation, fileID: String = #fileID, line: Int = #line) {
        self.activation = activation
        location = SourceLocation(fileID: fileID, line: line)
    }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try activation.apply(x, location, layer: nil) }
}

/// A transposed 2-D convolution (Keras' Conv2DTranspose) over NCHW input: with `.same` padding
/// the output is the input times the stride. Weights [C, filters, kernel, kernel].
public final class ConvTranspose2D: Layer {
    public var trainable = true
    public let filters: Int
    public let kernel: [Int]
    public let strides: [Int]
    public let padding: Padding
    public let activation: Activation
    public private(set) var parameters: WeightAndBias
    let location: SourceLocation

    public init(_ filters: Int, kernel: Int, stride: Int = 1, padding: Padding = .valid, activation: Activation = .linear,
                useBias: Bool = true, weight: HostTensor? = nil, bias: HostTensor? = nil, fileID: String = #fileID, line: Int = #line) {
        self.filters = filters
        self.kernel = [kernel, kernel]
        strides = [stride, stride]
        self.padding = padding
        self.activation = activation
        parameters = WeightAndBias(weight: weight, bias: bias, useBias: useBias)
        location = SourceLocation(fileID: fileID, line: line)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard filters > 0, (kernel + strides).allSatisfy({ $0 > 0 }) else {
            throw LatheError.invalidAttribute(op: "conv_transpose2d", reason: "filters, kernel and stride must be positive", location: location)
        }
        guard x.rank == 4 else {
            throw LatheError.shapeMismatch(op: "conv_transpose2d", shapes: [x.shape], reason: "ConvTranspose2D takes NCHW input", location: location)
        }
        let channels = x.shape[1], window = kernel[0] * kernel[1]
        try parameters.prepare(weightShape: [channels, filters] + kernel, biasShape: [filters], fanIn: channels * window, fanOut: filters * window,
                               he: activation.prefersHeInit, graph: x.graph, op: "conv_transpose2d", location)
        var pads = [0, 0, 0, 0], outputPadding = [0, 0]
        switch padding {
        case .valid: break
        case let .explicit(p): pads = p
        case .same:
            // Output = input x stride: trim the full output's excess, or pad it out at the end.
            for i in 0..<2 {
                let excess = kernel[i] - strides[i]
                if excess >= 0 { (pads[i], pads[i + 2]) = (excess / 2, excess - excess / 2) } else { outputPadding[i] = -excess }
            }
        }
        let name = x.graph.freshName("deconv")
        let attributes = ConvTranspose2DAttributes(strides: strides, pads: pads, outputPadding: outputPadding)
        let y = try x.apply(.convTranspose2d(attributes), parameters.tensors(in: x.graph, layer: name, trainable: trainable, location, current: { [weak self] in self?.parameters.value($0) }) {
            [weak self] in self?.parameters.set($0, $1)
        }, name: name, location)
        return try activation.apply(y, location, layer: name)
    }
}

/// Nearest-neighbour upsampling of NCHW input by a whole factor: each pixel becomes a
/// factor x factor block. (A reshape to [N, C, H, 1, W, 1], a broadcast against ones, a reshape back.)
public final class Upsample2D: Layer {
    /// Has no weights: `trainable` changes nothing.
    public var trainable = true
    public let factor: Int
    let location: SourceLocation

    public init(_ factor: Int, fileID: String = #fileID, line: Int = #line) {
        self.factor = factor
        location = SourceLocation(fileID: fileID, line: line)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard factor > 0 else { throw LatheError.invalidAttribute(op: "upsample", reason: "the factor must be positive", location: location) }
        guard x.rank == 4 else { throw LatheError.shapeMismatch(op: "upsample", shapes: [x.shape], reason: "Upsample2D takes NCHW input", location: location) }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let name = x.graph.freshName("upsample")
        let spread = try x.apply(.reshape(shape: [n, c, h, 1, w, 1]), [], name: "\(name).spread", location)
        let ones = x.graph.constant(HostTensor(shape: [1, 1, 1, factor, 1, factor], repeating: 1), name: "\(name).ones", fileID: location.fileID, line: location.line)
        let blocks = try spread.apply(.binary(.mul), [ones], name: "\(name).blocks", location)
        return try blocks.apply(.reshape(shape: [n, c, h * factor, w * factor]), [], name: name, location)
    }
}

/// Reshapes each example (the batch axis stays): Reshape([128, 7, 7]) turns [N, 6272] into
/// [N, 128, 7, 7]. One dimension may be -1.
public final class Reshape: Layer {
    /// Has no weights: `trainable` changes nothing.
    public var trainable = true
    public let shape: [Int]
    let location: SourceLocation

    public init(_ shape: [Int], fileID: String = #fileID, line: Int = #line) {
        self.shape = shape
        location = SourceLocation(fileID: fileID, line: line)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard x.rank >= 1 else { throw LatheError.shapeMismatch(op: "reshape", shapes: [x.shape], reason: "Reshape needs a batch axis", location: location) }
        return try x.reshaped([x.shape[0]] + shape, fileID: location.fileID, line: location.line)
    }
}
