/// A layer maps a tensor to a tensor, creating its weights on the first call, when it learns
/// the input's shape. Layers are classes: they keep their weights, so one layer object applied
/// to two graphs (batch 1 and batch 64, say) computes with the same weights.
public protocol Layer: AnyObject {
    func callAsFunction(_ x: Tensor) throws -> Tensor
    /// Whether a training step learns the layer's weights (Keras' `trainable`). A frozen layer's
    /// weights are constants of the step: no gradient is computed for them and no optimizer
    /// state kept, though gradients still flow through the layer to trainable layers before it;
    /// its BatchNorms normalize by their running statistics and leave them as they are. A
    /// layer made of layers (Sequential) sets theirs with its own, and freezes them all while
    /// it is frozen.
    ///
    ///     base.trainable = false              // a pretrained base, kept as it is
    ///     let model = Sequential { base; Flatten(); Dense(10, activation: .softmax) }
    var trainable: Bool { get set }
}

/// The activation a layer applies to its output.
public enum Activation: Hashable, Sendable {
    case linear, relu, sigmoid, tanh, gelu, softmax
    case leakyRelu(alpha: Float)
    /// ReLU capped at 6 (MobileNet's).
    case relu6

    /// Applies the activation; its node is named after the layer ("dense2.relu") when there is one.
    func apply(_ x: Tensor, _ location: SourceLocation, layer: String?) throws -> Tensor {
        let op: Op
        switch self {
        case .linear: return x
        case .relu: op = .unary(.relu)
        case .sigmoid: op = .unary(.sigmoid)
        case .tanh: op = .unary(.tanh)
        case .gelu: op = .unary(.gelu)
        case let .leakyRelu(alpha): op = .unary(.leakyRelu(alpha: alpha))
        case .relu6: op = .unary(.clip(min: 0, max: 6))
        case .softmax: op = .softmax(axis: x.rank - 1)
        }
        return try x.apply(op, [], name: layer.map { "\($0).\(op.name)" }, location)
    }

    /// He initialisation suits ReLU-like activations; Glorot suits the rest.
    var prefersHeInit: Bool {
        switch self {
        case .relu, .leakyRelu, .relu6, .gelu: return true
        default: return false
        }
    }
}

/// Seeded weight initialisers, drawn from the graph's generator.
enum Initializer {
    /// Uniform in ±sqrt(6 / fanIn) (He) or ±sqrt(6 / (fanIn + fanOut)) (Glorot).
    static func weights(shape: [Int], fanIn: Int, fanOut: Int, he: Bool, using rng: inout SeededGenerator) -> HostTensor {
        let limit = he ? (6 / Float(fanIn)).squareRoot() : (6 / Float(fanIn + fanOut)).squareRoot()
        var t = HostTensor(shape: shape)
        for i in t.scalars.indices { t.scalars[i] = Float.random(in: -limit...limit, using: &rng) }
        return t
    }
}

/// The weight and optional bias of a Dense or Conv2D layer: taken as given (and checked), or
/// made on first use, the weight by a seeded initialiser and the bias as zeros.
public struct WeightAndBias {
    public private(set) var weight: HostTensor?
    public private(set) var bias: HostTensor?
    public let useBias: Bool

    init(weight: HostTensor?, bias: HostTensor?, useBias: Bool) {
        self.weight = weight
        self.bias = bias
        self.useBias = useBias || bias != nil
    }

    mutating func prepare(weightShape: [Int], biasShape: [Int], fanIn: Int, fanOut: Int, he: Bool, graph: Graph, op: String, _ location: SourceLocation) throws {
        if let weight { try checkWeight(weight, weightShape, "weight", op, location) } else {
            weight = Initializer.weights(shape: weightShape, fanIn: fanIn, fanOut: fanOut, he: he, using: &graph.random)
        }
        if useBias, bias == nil { bias = HostTensor(shape: biasShape) }
        if let bias { try checkWeight(bias, biasShape, "bias", op, location) }
    }

    /// The weight and bias as parameters of `graph` (Graph.parameter), named after the layer;
    /// `learned` receives each trained value ("weight" or "bias").
    /// `current` reads the layer's value of a role now.
    func tensors(in graph: Graph, layer: String, trainable: Bool, _ location: SourceLocation, current: @escaping (String) -> HostTensor?,
                 learned: @escaping (String, HostTensor) -> Void) -> [Tensor] {
        [(weight, "weight"), (bias, "bias")].compactMap { tensor, role in
            tensor.map { graph.parameter($0, name: "\(layer).\(role)", trainable: trainable, location, penalized: role == "weight",
                                         current: { current(role) }) { learned(role, $0) } }
        }
    }

    /// The weight or the bias.
    func value(_ role: String) -> HostTensor? { role == "weight" ? weight : bias }

    mutating func set(_ role: String, _ value: HostTensor) {
        if role == "weight" { weight = value } else { bias = value }
    }
}

extension Graph {
    /// A layer's weight: a trainable variable when the graph is built for training and the layer
    /// (`trainable`, and every layer it is built inside: Graph.isFrozen) is trainable, whose
    /// learned value `learned` hands back to the layer; else a constant.
    /// `penalized`: whether L1/L2 weight penalties apply (a kernel's weights, not a bias). For
    /// layers of one's own: `learned` keeps the value in the layer, which builds the next graph
    /// with it; `current` reads the layer's value now, for a frozen weight built as a variable
    /// (Graph.frozenWeightsAreVariables; without it, such a weight stays a constant).
    public func parameter(_ value: HostTensor, name: String, trainable: Bool, _ location: SourceLocation, penalized: Bool = true,
                          current: (() -> HostTensor?)? = nil, learned: @escaping (HostTensor) -> Void) -> Tensor {
        guard learns(trainable: trainable) else {
            if isTraining, frozenWeightsAreVariables, let current {
                return Tensor(graph: self, id: addFrozenVariable(value, name: name, location: location, current: current))
            }
            return constant(value, name: name, fileID: location.fileID, line: location.line)
        }
        let v = addTrainableVariable(value, name: name, location: location, penalized: penalized, writeBack: learned)
        if let current { setReader(of: v, current) }
        return Tensor(graph: self, id: v)
    }

    /// Sets each frozen variable of `compiled` (compiled from this graph) to its layer's value now.
    public func refreshFrozenVariables(in compiled: CompiledModel) throws { try refresh(frozenVariables, in: compiled) }

    /// Sets every layer weight of `compiled` built as a variable, trainable or frozen, to its
    /// layer's value now: a training-mode forward pass (BatchNorm on the batch's statistics)
    /// compiled once and run with the weights another step is training.
    public func refreshLayerVariables(in compiled: CompiledModel) throws { try refresh(readableVariables, in: compiled) }

    private func refresh(_ variables: [ValueID], in compiled: CompiledModel) throws {
        for v in variables {
            if let value = currentValue(of: v) { try compiled.setVariable(self[v].name, to: value) }
        }
    }

    /// Whether a layer of this `trainable` built now learns: a training graph, outside any
    /// frozen layer.
    public func learns(trainable: Bool) -> Bool { isTraining && trainable && !isFrozen }
}

extension Tensor {
    /// (x - mean) / sqrt(variance + epsilon) over `axes`, written as the ops autodiff
    /// differentiates (training BatchNorm and LayerNorm), with the mean and the (biased)
    /// variance, both with the axes kept.
    func standardized(axes: [Int], epsilon: Float, name: String, _ location: SourceLocation) throws -> (normalized: Tensor, mean: Tensor, variance: Tensor) {
        let (file, line) = (location.fileID, location.line)
        let mean = try self.mean(axes: axes, keepDims: true, fileID: file, line: line)
        let centered = try subtracting(mean, fileID: file, line: line)
        let variance = try centered.multiplied(by: centered, fileID: file, line: line).mean(axes: axes, keepDims: true, fileID: file, line: line)
        let inverse = try variance.apply(.fusedElementwise(.const(1) / .unary(.sqrt, .arg(0) + .const(epsilon))), [], name: "\(name).inverse_std", location)
        return (try centered.multiplied(by: inverse, fileID: file, line: line), mean, variance)
    }
}

/// Checks that a given weight has the shape the layer needs.
func checkWeight(_ given: HostTensor, _ expected: [Int], _ what: String, _ layer: String, _ location: SourceLocation) throws {
    guard given.shape == expected else {
        throw LatheError.shapeMismatch(op: layer, shapes: [given.shape, expected], reason: "the given \(what) has shape \(given.shape), the layer needs \(expected)", location: location)
    }
}

/// Layers applied in order.
public final class Sequential: Layer {
    public let layers: [any Layer]
    /// Setting it sets every layer's; while it is false, every layer is frozen, whatever its own.
    public var trainable = true {
        didSet { for layer in layers { layer.trainable = trainable } }
    }

    public init(@LayerBuilder _ content: () -> [any Layer]) { layers = content() }
    public init(_ layers: [any Layer]) { self.layers = layers }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try x.graph.building(frozen: !trainable) { try layers.reduce(x) { try $1($0) } }
    }
}

@resultBuilder
public enum LayerBuilder {
    public static func buildExpression(_ layer: any Layer) -> [any Layer] { [layer] }
    public static func buildBlock(_ parts: [any Layer]...) -> [any Layer] { parts.flatMap { $0 } }
    public static func buildOptional(_ part: [any Layer]?) -> [any Layer] { part ?? [] }
    public static func buildEither(first: [any Layer]) -> [any Layer] { first }
    public static func buildEither(second: [any Layer]) -> [any Layer] { second }
    public static func buildArray(_ parts: [[any Layer]]) -> [any Layer] { parts.flatMap { $0 } }
}
