@_exported import LatheIR
@_exported import LatheRuntime

/// A symbolic tensor: a value of a graph being built. Operations on it add nodes to its graph,
/// check shapes at once, and record the Swift file and line of the call.
public struct Tensor: CustomStringConvertible {
    public let graph: Graph
    public let id: ValueID

    public init(graph: Graph, id: ValueID) {
        self.graph = graph
        self.id = id
    }

    public var type: TensorType { graph[id].type }
    public var shape: [Int] { type.shape }
    public var rank: Int { type.rank }
    public var name: String { graph[id].name }
    public var description: String { "Tensor(\(id) \(graph[id].op.name) : \(type))" }

    /// Adds `op` over this tensor and `others`: the one place DSL calls turn into nodes, and the
    /// way to reach an IR op that has no method of its own.
    public func apply(_ op: Op, _ others: [Tensor] = [], name: String? = nil, _ location: SourceLocation) throws -> Tensor {
        for other in others where other.graph !== graph {
            throw LatheError.foreignValue("an operand of \(op.name) at \(location)")
        }
        return Tensor(graph: graph, id: try graph.addNode(op, [id] + others.map(\.id), name: name, location: location))
    }

    /// An axis counted from the end when negative, as in NumPy.
    func axis(_ axis: Int, _ op: String, _ location: SourceLocation) throws -> Int {
        let normalized = axis < 0 ? axis + rank : axis
        guard (0..<Swift.max(rank, 1)).contains(normalized) else {
            throw LatheError.invalidAttribute(op: op, reason: "axis \(axis) is out of range for rank \(rank)", location: location)
        }
        return normalized
    }
}

extension Graph {
    /// Declares an input fed at run time under `name`, of element type `dtype`:
    /// `g.input("input_ids", dtype: .int64, shape: [1, 128])`.
    public func input(_ name: String, dtype: DType = .float32, shape: [Int], fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        Tensor(graph: self, id: try addInput(name: name, shape: shape, dtype: dtype, location: SourceLocation(fileID: fileID, line: line)))
    }

    /// A constant tensor (weights, a scalar...).
    public func constant(_ value: HostTensor, name: String? = nil, fileID: String = #fileID, line: Int = #line) -> Tensor {
        Tensor(graph: self, id: addConstant(value, name: name, location: SourceLocation(fileID: fileID, line: line)))
    }

    /// A scalar constant of element type `dtype` (converted as Cast converts), broadcast
    /// wherever it is used.
    public func scalar(_ value: Float, dtype: DType = .float32, fileID: String = #fileID, line: Int = #line) -> Tensor {
        let tensor = HostTensor(shape: [], repeating: value)
        return constant((try? tensor.converted(to: dtype)) ?? tensor, fileID: fileID, line: line)
    }

    /// Compiles the graph for the host CPU and returns a model whose outputs are `outputs`, by name.
    public func compile(outputs: KeyValuePairs<String, Tensor>, options: CompileOptions = CompileOptions()) throws -> CompiledModel {
        try compile(outputs: outputs.map { ($0.key, $0.value) }, options: options)
    }

    public func compile(outputs: [(name: String, value: Tensor)], options: CompileOptions = CompileOptions()) throws -> CompiledModel {
        try Compiler.compile(self, outputs: try valueIDs(outputs), options: options)
    }

    /// Runs the graph on the reference interpreter, the oracle the compiled code is tested against.
    public func interpret(outputs: [(name: String, value: Tensor)], feeds: [String: HostTensor]) throws -> [String: HostTensor] {
        let named = try valueIDs(outputs)
        let values = try Interpreter.run(self, outputs: named.map(\.value), feeds: feeds)
        return Dictionary(uniqueKeysWithValues: zip(named.map(\.name), values))
    }

    private func valueIDs(_ outputs: [(name: String, value: Tensor)]) throws -> [(name: String, value: ValueID)] {
        try outputs.map { name, tensor in
            guard tensor.graph === self else { throw LatheError.foreignValue("output '\(name)'") }
            return (name, tensor.id)
        }
    }
}
