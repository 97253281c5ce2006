/// An SSA value: the result of the node with the same index.
public struct ValueID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let index: Int
    public init(_ index: Int) { self.index = index }
    public static func < (a: ValueID, b: ValueID) -> Bool { a.index < b.index }
    public var description: String { "%\(index)" }
}

public struct Node: Sendable {
    public let id: ValueID
    public let op: Op
    public let operands: [ValueID]
    public let type: TensorType
    /// A readable name, unique in the graph: the user's, or the op's name and a number.
    public let name: String
    /// The DSL call (or importer) that made the node.
    public let location: SourceLocation
    /// The ops of the model the node computes: its own op's name, or, for a node that a pass
    /// fused, the ops of the nodes it was made of, in order (recorded by the pass as it fuses).
    public let sourceOps: [String]

    init(id: ValueID, op: Op, operands: [ValueID], type: TensorType, name: String, location: SourceLocation, sourceOps: [String]? = nil) {
        (self.id, self.op, self.operands, self.type, self.name, self.location) = (id, op, operands, type, name, location)
        self.sourceOps = sourceOps ?? [op.name]
    }
}

/// A dataflow graph in SSA form: nodes in a topological order (an operand is always an earlier
/// node), every shape static and checked when the node is added.
public final class Graph {
    public private(set) var nodes: [Node] = []
    public private(set) var constants: [HostTensor] = []
    private var usedNames: Set<String> = []
    private var inputNames: Set<String> = []
    private var nameCounters: [String: Int] = [:]
    /// Seeds the weight initialisers of layers built on this graph, so one seed gives one model.
    public var random: SeededGenerator
    /// Set while a model is built for training: layers then make their weights trainable
    /// variables, BatchNorm normalizes by the batch's statistics, Dropout drops.
    public var isTraining = false
    /// How many frozen layers (`trainable` false) are being built now, one inside another: while
    /// any is, layers make their weights constants even for training, and BatchNorm normalizes by
    /// its running statistics (see `isFrozen`).
    public private(set) var frozenDepth = 0
    /// Set to build a frozen layer's weights in a training graph as variables the step does not
    /// train (`frozenVariables`) rather than constants, so that they can be refreshed between
    /// runs from their layers (a GAN's discriminator inside the generator's step, which the
    /// discriminator's own step trains).
    public var frozenWeightsAreVariables = false
    /// The frozen layers' weights built as variables, in the order they were made.
    public private(set) var frozenVariables: [ValueID] = []
    /// How a layer's weight built as a variable (trainable or frozen) reads the layer's current value.
    private var readers: [ValueID: () -> HostTensor?] = [:]
    /// The variables training updates (layers' weights), in the order they were made.
    public private(set) var trainableVariables: [ValueID] = []
    /// Those of them that L1/L2 penalties apply to: kernels, not biases or normalization scales.
    public private(set) var penalizedVariables: Set<ValueID> = []
    /// Variables a training step updates by itself (BatchNorm's running statistics).
    public private(set) var stateVariables: [ValueID] = []
    /// How a variable's learned value goes back to the layer that made it.
    private var writeBacks: [ValueID: (HostTensor) -> Void] = [:]

    public init(seed: UInt64 = 0) {
        random = SeededGenerator(seed: seed)
    }

    public subscript(_ value: ValueID) -> Node { nodes[value.index] }

    public func contains(_ value: ValueID) -> Bool { value.index >= 0 && value.index < nodes.count }

    /// The graph inputs in the order they were declared.
    public var inputs: [Node] { nodes.filter { if case .input = $0.op { return true } else { return false } } }

    /// A graph input of `shape` and element type `dtype`, fed at run time under `name`.
    public func addInput(name: String, shape: [Int], dtype: DType = .float32, location: SourceLocation = .unknown) throws -> ValueID {
        guard elementCount(shape) != nil else {
            throw LatheError.invalidAttribute(op: "input", reason: "input '\(name)' has shape \(shape); dimensions must be non-negative and the tensor at most \(maximumElementCount) elements", location: location)
        }
        guard !inputNames.contains(name) else { throw LatheError.duplicateName(name) }
        inputNames.insert(name)
        return append(.input(name: name), [], TensorType(dtype, shape), name: name, location: location)
    }

    public func addConstant(_ tensor: HostTensor, name: String? = nil, location: SourceLocation = .unknown) -> ValueID {
        constants.append(tensor)
        return append(.constant(slot: constants.count - 1), [], TensorType(tensor.dtype, tensor.shape), name: name, location: location)
    }

    /// Adds state that a training step updates (see Op.variable), starting at `tensor`.
    public func addVariable(_ tensor: HostTensor, name: String? = nil, location: SourceLocation = .unknown) -> ValueID {
        constants.append(tensor)
        return append(.variable(slot: constants.count - 1), [], TensorType(tensor.dtype, tensor.shape), name: name, location: location)
    }

    /// A variable that training updates (a layer's weight); `writeBack` hands the learned value
    /// back to the layer.
    public func addTrainableVariable(_ tensor: HostTensor, name: String, location: SourceLocation = .unknown, penalized: Bool = true,
                                     writeBack: @escaping (HostTensor) -> Void) -> ValueID {
        let v = addVariable(tensor, name: name, location: location)
        trainableVariables.append(v)
        if penalized { penalizedVariables.insert(v) }
        writeBacks[v] = writeBack
        return v
    }

    /// A variable the step itself keeps up to date (a running mean), handed back like a weight.
    public func addStateVariable(_ tensor: HostTensor, name: String, location: SourceLocation = .unknown,
                                 writeBack: @escaping (HostTensor) -> Void) -> ValueID {
        let v = addVariable(tensor, name: name, location: location)
        stateVariables.append(v)
        writeBacks[v] = writeBack
        return v
    }

    /// Whether a layer built now is frozen: its weights are constants of a training step (no
    /// gradient is computed for them, no optimizer state kept), though gradients still flow
    /// through it to the trainable layers before it.
    public var isFrozen: Bool { frozenDepth > 0 }

    /// Runs `body` (a layer's building) frozen when `frozen` is true, else as the graph is now.
    public func building<T>(frozen: Bool, _ body: () throws -> T) rethrows -> T {
        guard frozen else { return try body() }
        frozenDepth += 1
        defer { frozenDepth -= 1 }
        return try body()
    }

    /// A frozen layer's weight as a variable no step trains, whose layer's current value
    /// `current` reads (Graph.frozenWeightsAreVariables).
    public func addFrozenVariable(_ tensor: HostTensor, name: String, location: SourceLocation = .unknown,
                                  current: @escaping () -> HostTensor?) -> ValueID {
        let v = addVariable(tensor, name: name, location: location)
        frozenVariables.append(v)
        readers[v] = current
        return v
    }

    /// Records how a variable reads its layer's current value (Graph.parameter does it for the
    /// weights it makes variables).
    public func setReader(of variable: ValueID, _ current: @escaping () -> HostTensor?) { readers[variable] = current }

    /// The current value of a variable's layer weight, if it has a reader and the layer a value.
    public func currentValue(of variable: ValueID) -> HostTensor? { readers[variable]?() }

    /// The variables whose layers' values can be read (currentValue), in graph order.
    public var readableVariables: [ValueID] { readers.keys.sorted() }

    /// The trainable and the state variables: what a trained model's weight file holds.
    public var learnedVariables: [ValueID] { trainableVariables + stateVariables }

    /// Gives a variable's value (learned by a compiled step) back to the layer that made it.
    public func writeBack(_ variable: ValueID, _ value: HostTensor) { writeBacks[variable]?(value) }

    /// Adds a computing node after checking its operands against the op's shape rule.
    @discardableResult
    /// `sourceOps`: the ops of the nodes a pass fused into this one (by default, its own op).
    public func addNode(_ op: Op, _ operands: [ValueID], name: String? = nil, location: SourceLocation = .unknown,
                        sourceOps: [String]? = nil) throws -> ValueID {
        switch op {
        case .input, .constant, .variable:
            throw LatheError.invalidAttribute(op: op.name, reason: "use addInput, addConstant or addVariable", location: location)
        case .assign:
            if let target = operands.first, contains(target), case .variable = self[target].op {} else {
                throw LatheError.invalidAttribute(op: op.name, reason: "the first operand must be a variable", location: location)
            }
        default: break
        }
        for v in operands where !contains(v) { throw LatheError.foreignValue("operand \(v) of \(op.name)") }
        let types = operands.map { self[$0].type }
        let type: TensorType
        do throws(OpRuleFailure) {
            type = try op.inferType(types)
        } catch {
            let described = describeOperands(op, operands, location)
            if error.isAttribute {
                throw LatheError.invalidAttribute(op: described, reason: error.reason, location: location)
            }
            if error.isElementType {
                throw LatheError.elementTypeError(op: described, types: types.map(\.dtype), reason: error.reason, location: location)
            }
            throw LatheError.shapeMismatch(op: described, shapes: types.map(\.shape), reason: error.reason, location: location)
        }
        return append(op, operands, type, name: name, location: location, sourceOps: sourceOps)
    }

    /// "dense1", "dense2", ...: a new name for the next layer of a kind, so that a layer's
    /// nodes print as dense2, dense2.weight, dense2.relu.
    public func freshName(_ base: String) -> String {
        var n = nameCounters[base, default: 0]
        var name: String
        repeat {
            n += 1
            name = "\(base)\(n)"
        } while usedNames.contains(name)
        nameCounters[base] = n
        return name
    }

    /// Replaces the data of a constant (same shape), e.g. to load trained weights.
    public func setConstant(slot: Int, to tensor: HostTensor) throws {
        guard constants.indices.contains(slot), constants[slot].shape == tensor.shape else {
            throw LatheError.invalidTensor(shape: tensor.shape, scalarCount: tensor.count)
        }
        // The node's type says what the slot holds: a value of another type would belie it.
        guard constants[slot].dtype == tensor.dtype else {
            throw LatheError.elementTypeMismatch(what: "constant slot \(slot) \(tensor.shape)", expected: constants[slot].dtype, got: tensor.dtype)
        }
        constants[slot] = tensor
    }

    private func append(_ op: Op, _ operands: [ValueID], _ type: TensorType, name: String?, location: SourceLocation,
                        sourceOps: [String]? = nil) -> ValueID {
        let id = ValueID(nodes.count)
        var unique = name ?? "\(op.name)_\(id.index)"
        if usedNames.contains(unique) { unique += "_\(id.index)" }
        usedNames.insert(unique)
        nodes.append(Node(id: id, op: op, operands: operands, type: type, name: unique, location: location, sourceOps: sourceOps))
        return id
    }

    /// "conv2d" plus where its operands came from, when the node's own location is unknown
    /// (a Swift operator cannot capture #line).
    private func describeOperands(_ op: Op, _ operands: [ValueID], _ location: SourceLocation) -> String {
        guard !location.isKnown else { return op.name }
        let origins = operands.map { v -> String in
            let n = self[v]
            return n.location.isKnown ? "\(n.name) from \(n.location)" : n.name
        }
        return "\(op.name) of \(origins.joined(separator: ", "))"
    }
}
