/// Keras-style layers. Each records where it was created (#fileID, #line), and the nodes it
/// makes carry that location, so a shape error points at the layer in the user's model.

/// A fully connected layer: y = activation(x W + b), W [inFeatures, units].
public final class Dense: Layer {
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
        guard x.rank == 2 else {
            throw LatheError.shapeMismatch(op: "dense", shapes: [x.shape], reason: "Dense takes [batch, features]; flatten the input first", location: location)
        }
        let features = x.shape[1]
        try parameters.prepare(weightShape: [features, units], biasShape: [units], fanIn: features, fanOut: units, he: activation.prefersHeInit,
                               graph: x.graph, op: "dense", location)
        let name = x.graph.freshName("dense")
        let y = try x.apply(.dense, parameters.constants(in: x.graph, layer: name, location), name: name, location)
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
        let y = try x.apply(.conv2d(attributes), parameters.constants(in: x.graph, layer: name, location), name: name, location)
        return try activation.apply(y, location, layer: name)
    }
}

/// Pooling over pool x pool windows, `stride` apart (the pool size by default).
public class Pool2D: Layer {
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
    let location: SourceLocation
    public init(fileID: String = #fileID, line: Int = #line) { location = SourceLocation(fileID: fileID, line: line) }
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let name = x.graph.freshName("gap")
        return try x.apply(.globalAveragePool, [], name: name, location).apply(.flatten(axis: 1), [], name: "\(name).flatten", location)
    }
}

/// [N, d1, d2, ...] to [N, d1*d2*...].
public final class Flatten: Layer {
    let location: SourceLocation
    public init(fileID: String = #fileID, line: Int = #line) { location = SourceLocation(fileID: fileID, line: line) }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.apply(.flatten(axis: 1), [], name: x.graph.freshName("flatten"), location) }
}

/// Randomly zeroes inputs while training; the identity when compiled for inference.
public final class Dropout: Layer {
    public let rate: Float
    let location: SourceLocation
    public init(_ rate: Float, fileID: String = #fileID, line: Int = #line) {
        self.rate = rate
        location = SourceLocation(fileID: fileID, line: line)
    }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.apply(.dropout(rate: rate), [], name: x.graph.freshName("dropout"), location) }
}

/// Inference BatchNorm over the channel axis (1), with learned scale and bias and running
/// statistics; new layers start as the identity (scale 1, bias 0, mean 0, variance 1).
public final class BatchNorm: Layer {
    public let epsilon: Float
    public private(set) var parameters: (scale: HostTensor, bias: HostTensor, mean: HostTensor, variance: HostTensor)?
    let location: SourceLocation

    private let given: [HostTensor?]

    /// Give all four of scale, bias, mean and variance, or none.
    public init(epsilon: Float = 1e-3, scale: HostTensor? = nil, bias: HostTensor? = nil, mean: HostTensor? = nil, variance: HostTensor? = nil,
                fileID: String = #fileID, line: Int = #line) {
        self.epsilon = epsilon
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
        let operands = zip([p.scale, p.bias, p.mean, p.variance], ["scale", "bias", "mean", "variance"]).map {
            g.constant($0, name: "\(name).\($1)", fileID: location.fileID, line: location.line)
        }
        return try x.apply(.batchNorm(epsilon: epsilon), operands, name: name, location)
    }
}

/// An activation as a layer of its own.
public final class ActivationLayer: Layer {
    public let activation: Activation
    let location: SourceLocation
    public init(_ activation: Activation, fileID: String = #fileID, line: Int = #line) {
        self.activation = activation
        location = SourceLocation(fileID: fileID, line: line)
    }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try activation.apply(x, location, layer: nil) }
}
