import LatheIR

/// A value while importing: a node of the graph being built, or a tensor known at import time.
enum ImportedValue {
    case node(ValueID)
    case constant(ConstantTensor)

    var isConstant: Bool {
        if case .constant = self { return true }
        return false
    }
}

/// A float that dequantizes q: (q - zero) * scale, each one value (ImportContext.dequantized).
struct Dequantized {
    let q: ImportedValue
    let scale: Float
    let zero: Int64
    let type: DType
    /// The scale and zero point as the model gives them.
    let scaleValue: ImportedValue, zeroValue: ImportedValue?

    /// Of q with constant one-value scale and zero point (none: zero 0), or nil.
    init?(_ q: ImportedValue, type: DType, scale: ImportedValue, zero: ImportedValue?) {
        guard case let .constant(s) = scale, s.count == 1, s.dtype == .float32 else { return nil }
        var z: Int64 = 0
        if let zero {
            guard case let .constant(constant) = zero, constant.count == 1, constant.dtype == type else { return nil }
            z = constant.ints[0]
        }
        (self.q, self.scale, self.zero, self.type) = (q, s.floats[0], z, type)
        (scaleValue, zeroValue) = (scale, zero)
    }
}

/// The state of one import: the graph, the ONNX names defined so far, and the node being read.
final class ImportContext {
    let graph = Graph()
    let opset: Int
    let fileName: String
    private var values: [String: ImportedValue] = [:]
    /// Constants already added to the graph, so each initializer becomes one constant node.
    private var materialized: [String: ValueID] = [:]

    private(set) var node = Onnx_NodeProto()
    private(set) var location = SourceLocation.unknown
    /// The subgraphs being imported, outermost first ("loop/body#2/"), named in locations.
    private var scope = ""
    /// The node lists being imported, outermost (the model's graph) first: what the nodes still
    /// to come read, should the import stop at a stage's end.
    private var frames: [ImportFrame] = []
    /// Values computed by an earlier stage (ONNXModel's staged runs): each is a graph input
    /// where the node that computes it would be.
    let stageInputs: [String: TensorType]
    /// Whether a node whose output size depends on run-time values ends the import (a stage's
    /// end) rather than failing it.
    let stages: Bool
    /// The loop and scan bodies being imported: a stage may not end inside one.
    var unrolling = 0
    /// Floats known to be (q - zero) * scale of a quantized tensor q, one scale and zero point
    /// for the whole tensor (a DequantizeLinear's result, a QDQ unit's): a QuantizeLinear of one
    /// at the same scale and zero point is q itself (OpHandlers+Quantize.swift).
    var dequantized: [ValueID: Dequantized] = [:]

    init(opset: Int, fileName: String, stageInputs: [String: TensorType] = [:], stages: Bool = false) {
        self.opset = opset
        self.fileName = fileName
        self.stageInputs = stageInputs
        self.stages = stages
    }

    func begin(_ node: Onnx_NodeProto, index: Int) {
        self.node = node
        location = SourceLocation(fileID: "\(fileName)[\(scope)\(node.displayName)]", line: index + 1)
    }

    /// Imports nodes in order: each node's handler, and its outputs defined. A node whose
    /// outputs an earlier stage computed gives graph inputs instead.
    func importNodes(_ nodes: [Onnx_NodeProto], outputs: [String]) throws {
        frames.append(ImportFrame(nodes: nodes, outputs: outputs))
        defer { frames.removeLast() }
        for (index, node) in nodes.enumerated() {
            frames[frames.count - 1].next = index + 1
            begin(node, index: index)
            // Outputs an earlier stage computed are inputs, made first so that they keep their
            // names; the node is imported only for any others.
            let named = node.output.filter { !$0.isEmpty }
            let fed = try Dictionary(uniqueKeysWithValues: named.filter { stageInputs[$0] != nil }.map { ($0, try stageInput($0)) })
            for (name, id) in fed { define(name, .node(id)) }
            if !named.isEmpty, fed.count == named.count { continue }
            guard (node.domain.isEmpty || node.domain == "ai.onnx"), let handler = OpHandlers.table[node.opType] else {
                throw LatheError.unsupportedOps([UnsupportedOp(opType: node.domain.isEmpty ? node.opType : "\(node.domain).\(node.opType)", count: 1, nodes: [node.displayName])])
            }
            let results = try handler(self)
            for (i, name) in node.output.enumerated() where !name.isEmpty {
                guard i < results.count else { throw unsupported("output \(i + 1) ('\(name)') is not computed by Lathe") }
                if fed[name] == nil { define(name, results[i]) }
            }
        }
    }

    private func isInput(_ id: ValueID) -> Bool {
        if case .input = graph[id].op { return true }
        return false
    }

    /// The node of the list being imported that defines `name` (nil for an input, initializer
    /// or outer value).
    func producer(of name: String) -> Onnx_NodeProto? { frames.last?.producers[name] }

    /// The nodes of the list being imported that read `name`, and whether the list returns it.
    func consumers(of name: String) -> (nodes: [Onnx_NodeProto], returned: Bool) {
        (frames.last?.consumers[name] ?? [], frames.last?.outputs.contains(name) ?? true)
    }

    /// The graph input of a value an earlier stage computed.
    private func stageInput(_ name: String) throws -> ValueID {
        let type = stageInputs[name]!
        return try graph.addInput(name: name, shape: type.shape, dtype: type.dtype, location: location)
    }

    /// The end of a stage at the current node, whose output sizes depend on `operands`' values:
    /// the values defined so far that are computed (not constants) and read by the nodes still
    /// to come (at every depth of subgraph, and as outputs), with the node's operands.
    func stageEnd(operands: [String]) throws -> StageEnd {
        guard stages, unrolling == 0 else {
            if unrolling > 0 && stages { throw unsupported("its output's size depends on values computed as the model runs, inside a loop Lathe unrolls") }
            throw LatheError.valueDependentShape(node: "\(location): \(node.opType) node '\(node.displayName)'")
        }
        var read = Set(operands)
        for frame in frames {
            read.formUnion(frame.outputs)
            for later in frame.nodes[frame.next...] { read.formUnion(ONNXImporter.names(readBy: later)) }
        }
        var boundary: [(name: String, value: ValueID)] = []
        for name in read.sorted() {
            // Graph inputs (the model's, and earlier stages' values) are fed to every stage.
            if case let .node(id)? = values[name], !isInput(id) { boundary.append((name, id)) }
        }
        var constants: [String: HostTensor] = [:]
        for name in operands { if case let .constant(k)? = values[name] { constants[name] = k.hostTensor } }
        return StageEnd(node: node, location: location, operands: operands, constants: constants, boundary: boundary)
    }

    /// A subgraph (an If's branch, a Loop's or Scan's body) imported in place: its inputs bound
    /// to `inputs` (checked against its declared element types, and ranks where declared), its
    /// initializers and nodes read with the names defined outside it in view, and its outputs
    /// returned. Names it defines are forgotten after it, and the current node is restored.
    func importSubgraph(_ subgraph: Onnx_GraphProto, named part: String, inputs: [ImportedValue]) throws -> [ImportedValue] {
        let (owner, ownerLocation, saved, outerScope) = (node, location, values, scope)
        let what = "\(owner.opType) node '\(owner.displayName)': its \(part)"
        guard subgraph.input.count == inputs.count else {
            throw LatheError.malformedModel("\(ownerLocation): \(what) takes \(subgraph.input.count) inputs, given \(inputs.count)")
        }
        for (declared, value) in zip(subgraph.input, inputs) {
            // An input may leave its type unsaid (function bodies do); one said must be a tensor's.
            guard declared.hasType, let kind = declared.type.value else { continue }
            guard case let .tensorType(tensor) = kind else {
                throw LatheError.unsupported("\(ownerLocation): \(what)'s input '\(declared.name)' is not a tensor")
            }
            if tensor.elemType != 0, DType(onnxCode: Int(tensor.elemType)) != dtype(value) {
                let declaredType = DType(onnxCode: Int(tensor.elemType)).map { "\($0)" } ?? "ONNX type \(tensor.elemType)"
                throw LatheError.malformedModel("\(ownerLocation): \(what)'s input '\(declared.name)' is \(declaredType), given \(dtype(value))")
            }
            if tensor.hasShape, !tensor.shape.dim.isEmpty || shape(value).isEmpty, tensor.shape.dim.count != shape(value).count {
                throw LatheError.malformedModel("\(ownerLocation): \(what)'s input '\(declared.name)' has rank \(tensor.shape.dim.count), given \(shape(value))")
            }
        }
        defer { (node, location, values, scope) = (owner, ownerLocation, saved, outerScope) }
        scope += "\(owner.displayName)/\(part)/"
        for tensor in subgraph.initializer { define(tensor.name, .constant(try ConstantTensor(tensor, name: tensor.name))) }
        for (declared, value) in zip(subgraph.input, inputs) { define(declared.name, value) }
        try importNodes(subgraph.node, outputs: subgraph.output.map(\.name))
        return try subgraph.output.map { output in
            guard let value = values[output.name] else {
                throw LatheError.malformedModel("\(ownerLocation): \(what) returns '\(output.name)', which nothing in it or before it defines")
            }
            return value
        }
    }

    func define(_ name: String, _ value: ImportedValue) { values[name] = value }

    func value(_ name: String) throws -> ImportedValue {
        guard let value = values[name] else {
            throw LatheError.malformedModel("\(location): node '\(node.displayName)' (\(node.opType)) reads '\(name)', which nothing before it defines")
        }
        return value
    }

    /// Operand i, or nil when the node leaves it out (absent or named "").
    func input(_ i: Int) throws -> ImportedValue? {
        guard i < node.input.count, !node.input[i].isEmpty else { return nil }
        return try value(node.input[i])
    }

    func required(_ i: Int) throws -> ImportedValue {
        guard let v = try input(i) else { throw fail("needs operand \(i + 1)") }
        return v
    }

    /// Operand i when it must be known at import time (a shape, axes, pads...).
    func constantInput(_ i: Int, _ what: String) throws -> ConstantTensor? {
        switch try input(i) {
        case nil: return nil
        case let .constant(c)?: return c
        case let .node(id)?:
            let operand = "\(location): \(node.opType) node '\(node.displayName)': its \(what) (operand \(i + 1))"
            if let inputs = inputsDetermining(id) { throw LatheError.inputValuesNeeded(inputs: inputs, operand: operand) }
            throw unsupported("its \(what) (operand \(i + 1)) must be a constant, not computed at run time")
        }
    }

    /// The graph inputs a value is computed from, in the order they were declared, when nothing
    /// else feeds it (only inputs and constants, through ops that compute the same result for
    /// the same operands): with their values it would be a constant. Nil otherwise.
    private func inputsDetermining(_ value: ValueID) -> [String]? {
        var seen: Set<ValueID> = [], stack = [value], inputs: [ValueID] = []
        while let v = stack.popLast() {
            guard seen.insert(v).inserted else { continue }
            switch graph[v].op {
            case .input: inputs.append(v)
            case .constant: break
            case .variable: return nil
            default:
                guard !graph[v].operands.isEmpty else { return nil }
                stack += graph[v].operands
            }
        }
        guard !inputs.isEmpty else { return nil }
        return inputs.sorted().compactMap { if case let .input(name) = graph[$0].op { name } else { nil } }
    }

    func shape(_ v: ImportedValue) -> [Int] {
        switch v {
        case let .node(id): return graph[id].type.shape
        case let .constant(c): return c.shape
        }
    }

    func dtype(_ v: ImportedValue) -> DType {
        switch v {
        case let .node(id): return graph[id].type.dtype
        case let .constant(c): return c.dtype
        }
    }

    /// The value as a graph node, adding a constant node the first time a constant is used.
    func materialize(_ v: ImportedValue) -> ValueID {
        switch v {
        case let .node(id): return id
        case let .constant(c):
            if let name = c.origin, let id = materialized[name] { return id }
            let id = graph.addConstant(c.hostTensor, name: c.origin, location: location)
            if let name = c.origin { materialized[name] = id }
            return id
        }
    }

    /// Adds `op` over the operands. When every operand is a constant the result is computed now,
    /// by the reference interpreter, and stays a constant: weight transposes, BatchNorm
    /// parameter arithmetic and the like never reach the compiled model.
    ///
    /// An op that computes on f32 alone (a convolution, a matrix product, softmax, ...) given
    /// f16, bf16 or f64 operands computes in f32: those operands are cast to f32, and the result
    /// back to their type (as ONNX Runtime computes half types on CPUs without half arithmetic).
    func apply(_ op: Op, _ operands: [ImportedValue], name suffix: String? = nil) throws -> ImportedValue {
        let name = node.output.first.map { output in suffix.map { "\(output)/\($0)" } ?? output }
        let constants = operands.compactMap { v -> HostTensor? in if case let .constant(c) = v { return c.hostTensor } else { return nil } }
        let types = operands.map(dtype)
        if let wide = types.first(where: { $0 != .float32 && promotes($0, for: op) }), computesOnFloat32Only(op, types) {
            let promoted = try operands.map { try promotes(dtype($0), for: op) ? apply(.cast(to: .float32), [$0], name: "\(suffix ?? "in")_f32") : $0 }
            let result = try apply(op, promoted, name: suffix.map { "\($0)_f32" } ?? "f32")
            // A float result goes back to the operands' type; an index (arg_max's) stays.
            return dtype(result) == .float32 ? try apply(.cast(to: wide), [result], name: suffix) : result
        }
        if constants.count == operands.count {
            return .constant(ConstantTensor(try Interpreter.fold(op, constants, location: location)))
        }
        let ids = operands.map(materialize)
        return .node(try graph.addNode(op, ids, name: name, location: location))
    }

    /// Whether the op refuses these operand types but takes them with every promoted one f32.
    private func computesOnFloat32Only(_ op: Op, _ types: [DType]) -> Bool {
        let shapes = Array(repeating: [Int](), count: types.count)
        func elementTypeFailure(_ types: [DType]) -> Bool {
            do throws(OpRuleFailure) { _ = try op.inferType(zip(types, shapes).map { TensorType($0, $1) }); return false } catch { return error.isElementType }
        }
        return elementTypeFailure(types) && !elementTypeFailure(types.map { promotes($0, for: op) ? .float32 : $0 })
    }

    /// Whether an operand of this type computes in f32 for an op that computes on f32 alone:
    /// floats; and integers that f32 holds exactly, for ops that only pick among their inputs
    /// (max pooling, reduce_max), whose result is then exact.
    private func promotes(_ type: DType, for op: Op) -> Bool {
        if type.isFloatingPoint { return type.isComputed }
        guard [.int8, .uint8, .int16, .uint16].contains(type) else { return false }
        switch op {
        case .pool2d(let a) where a.kind == .max: return true
        case .reduce(.max, _, _), .reduce(.min, _, _), .argExtreme: return true
        default: return false
        }
    }

    /// A scalar constant of element type `dtype`.
    func scalar(_ v: Float, _ dtype: DType = .float32) -> ImportedValue {
        let tensor = HostTensor(shape: [], repeating: v)
        return .constant(ConstantTensor((try? tensor.converted(to: dtype)) ?? tensor))
    }

    /// An error about the current node that is the model's fault.
    func fail(_ reason: String) -> LatheError {
        .malformedModel("\(location): \(node.opType) node '\(node.displayName)' \(reason)")
    }

    /// An error about the current node that is Lathe's limit.
    func unsupported(_ reason: String) -> LatheError {
        .unsupported("\(location): \(node.opType) node '\(node.displayName)': \(reason)")
    }

    /// Normalizes a possibly negative axis for a rank, or fails.
    func axis(_ axis: Int, rank: Int) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard (0..<max(rank, 1)).contains(a) else { throw fail("has axis \(axis), out of range for rank \(rank)") }
        return a
    }
}

/// A node list being imported, and the index of the node after the current one.
struct ImportFrame {
    let nodes: [Onnx_NodeProto]
    let outputs: [String]
    var next = 0
    /// The node that defines each name, and the nodes that read it, in this list.
    let producers: [String: Onnx_NodeProto]
    let consumers: [String: [Onnx_NodeProto]]

    init(nodes: [Onnx_NodeProto], outputs: [String]) {
        (self.nodes, self.outputs) = (nodes, outputs)
        var producers: [String: Onnx_NodeProto] = [:], consumers: [String: [Onnx_NodeProto]] = [:]
        for node in nodes {
            for name in node.output where !name.isEmpty { producers[name] = node }
            for name in ONNXImporter.names(readBy: node) { consumers[name, default: []].append(node) }
        }
        (self.producers, self.consumers) = (producers, consumers)
    }
}

/// Where an import stopped: at `node`, whose outputs' sizes depend on the values of
/// `operands`; `boundary` holds every computed value that the rest of the model reads (the
/// operands among them), by ONNX name.
struct StageEnd: Error {
    let node: Onnx_NodeProto
    let location: SourceLocation
    /// The node's operand names ("" for one left out), and the values of those known at import.
    let operands: [String]
    let constants: [String: HostTensor]
    let boundary: [(name: String, value: ValueID)]
}
