/// The one error type users see. Each case names what went wrong and where: the node, the op,
/// the shapes, and the Swift source location of the DSL call that made the node.
public enum LatheError: Error, Equatable, CustomStringConvertible {
    /// An op was given operands whose shapes (or count) it cannot take. Thrown while the graph is built.
    case shapeMismatch(op: String, shapes: [[Int]], reason: String, location: SourceLocation)
    /// An op was given operands of element types it cannot take. Thrown while the graph is built.
    case elementTypeError(op: String, types: [DType], reason: String, location: SourceLocation)
    /// An op's attribute is out of range (a negative stride, an axis past the rank, ...).
    case invalidAttribute(op: String, reason: String, location: SourceLocation)
    /// The graph breaks an IR rule (found by the verifier).
    case invalidGraph(node: String, reason: String)
    /// A tensor whose scalar count does not match its shape.
    case invalidTensor(shape: [Int], scalarCount: Int)
    /// Two graph inputs, or two outputs, with one name.
    case duplicateName(String)
    /// Run-time input checks.
    case missingInput(name: String)
    case unknownInput(name: String, known: [String])
    case inputShapeMismatch(name: String, expected: [Int], got: [Int])
    /// A feed whose element type is not the input's (never converted).
    case inputElementTypeMismatch(name: String, expected: DType, got: DType)
    /// A tensor read as a type it does not hold.
    case elementTypeMismatch(what: String, expected: DType, got: DType)
    case inputSizeMismatch(name: String, expectedCount: Int, got: Int)
    /// An index read at run time (gather's) outside its axis, after ONNX's wrap of negative
    /// indices: the node (name, op and Swift location), the index as given and the axis size.
    case indexOutOfRange(node: String, op: String, index: Int64, bound: Int, location: SourceLocation)
    case wrongInputCount(expected: Int, got: Int)
    case unknownOutput(name: String, known: [String])
    /// A value used as an output that does not belong to the graph being compiled.
    case foreignValue(String)
    /// An op or case that this build of Lathe cannot lower.
    case unsupported(String)
    /// LLVM refused the module or the JIT failed; the text is LLVM's.
    case backend(String)
    /// A model file that cannot be read: not a model, truncated, or inconsistent.
    case malformedModel(String)
    /// A data file (e.g. .npy) that cannot be read.
    case malformedFile(String)
    /// Every op of a model that Lathe cannot import, all at once.
    case unsupportedOps([UnsupportedOp])
    /// An operand that must be known at compile time (a Reshape's shape, a Pad's pads, a
    /// reduction's axes) is computed from these graph inputs: the graph exists only for their
    /// values. `operand`
    /// names the node and operand (with its location). ONNXModel compiles per value; an import
    /// given the values takes them as constants.
    case inputValuesNeeded(inputs: [String], operand: String)
    /// A graph input's dimension that the model leaves open (symbolic, named `name`, or
    /// unnamed) and nothing gave a size: the graph exists only for concrete sizes.
    case dimensionNeeded(input: String, axis: Int, name: String?)
    /// A node whose output's size depends on values computed as the model runs (NonZero,
    /// NonMaxSuppression, Unique): one graph cannot hold the model. `node` names it with its
    /// location. ONNXModel runs such a model in stages.
    case valueDependentShape(node: String)

    public var description: String {
        switch self {
        case let .shapeMismatch(op, shapes, reason, location):
            let shown = shapes.map { "\($0)" }.joined(separator: ", ")
            return "\(location): shape error in \(op): \(reason) (operand shapes: \(shown))"
        case let .elementTypeError(op, types, reason, location):
            return "\(location): element type error in \(op): \(reason) (operand types: \(types.map(\.rawValue).joined(separator: ", ")))"
        case let .invalidAttribute(op, reason, location):
            return "\(location): invalid attribute of \(op): \(reason)"
        case let .invalidGraph(node, reason):
            return "invalid graph at \(node): \(reason)"
        case let .invalidTensor(shape, count):
            let needed = elementCount(shape).map { "needs \($0) scalars" } ?? "is not a valid tensor shape"
            return "a tensor of shape \(shape) \(needed), got \(count) scalars"
        case let .duplicateName(name):
            return "the name '\(name)' is used twice"
        case let .missingInput(name):
            return "missing input '\(name)'"
        case let .unknownInput(name, known):
            return "unknown input '\(name)'; the model's inputs are \(known)"
        case let .inputShapeMismatch(name, expected, got):
            return "input '\(name)' has shape \(got), the model expects \(expected)"
        case let .inputElementTypeMismatch(name, expected, got):
            return "input '\(name)' holds \(got.rawValue) elements, the model expects \(expected.rawValue) (feeds are not converted)"
        case let .elementTypeMismatch(what, expected, got):
            return "\(what) holds \(got.rawValue) elements, not \(expected.rawValue)"
        case let .inputSizeMismatch(name, expected, got):
            return "input '\(name)' has \(got) scalars, the model expects \(expected)"
        case let .indexOutOfRange(node, op, index, bound, location):
            return "\(location): index out of range in \(op) '\(node)': \(index) is outside -\(bound)..<\(bound)"
        case let .wrongInputCount(expected, got):
            return "the model takes \(expected) inputs, got \(got)"
        case let .unknownOutput(name, known):
            return "unknown output '\(name)'; the model's outputs are \(known)"
        case let .foreignValue(what):
            return "\(what) belongs to another graph"
        case let .unsupported(what):
            return "unsupported: \(what)"
        case let .backend(text):
            return "LLVM: \(text)"
        case let .malformedModel(reason):
            return "malformed model: \(reason)"
        case let .malformedFile(reason):
            return "malformed file: \(reason)"
        case let .unsupportedOps(ops):
            let total = ops.reduce(0) { $0 + $1.count }
            return "\(total) node\(total == 1 ? "" : "s") of \(ops.count) unsupported op type\(ops.count == 1 ? "" : "s"):\n"
                + ops.map { "  \($0)" }.joined(separator: "\n")
        case let .inputValuesNeeded(inputs, operand):
            let names = inputs.map { "'\($0)'" }.joined(separator: ", ")
            return "\(operand) is computed from input\(inputs.count == 1 ? "" : "s") \(names) and must be known when the model is compiled: "
                + "give the input values when importing (ONNXModel compiles the model for each set of values it is run with; `lathe` takes them from --input NAME=FILE.npy)"
        case let .valueDependentShape(node):
            return "\(node): its output's size depends on values computed as the model runs, so the model compiles in stages "
                + "at run time: run it with ONNXModel (or `lathe run`), which compiles each stage for the sizes it meets"
        case let .dimensionNeeded(input, axis, name):
            let dimension = name.map { "symbolic dimension '\($0)'" } ?? "an unnamed dimension"
            let option = name.map { "--dim \($0)=SIZE or " } ?? ""
            return "input '\(input)' has \(dimension) (axis \(axis)) and no size was given: ONNXModel takes it from each run's feed "
                + "(compiling once per size); `lathe` from \(option)the shape of --input \(input)=FILE.npy"
        }
    }
}

/// An op type a model uses and Lathe cannot import: how often, and the first nodes that use it.
public struct UnsupportedOp: Equatable, Sendable, CustomStringConvertible {
    public var opType: String
    public var count: Int
    public var nodes: [String]
    public var reason: String?

    public init(opType: String, count: Int, nodes: [String], reason: String? = nil) {
        self.opType = opType
        self.count = count
        self.nodes = nodes
        self.reason = reason
    }

    public var description: String {
        let shown = nodes.prefix(3).map { "'\($0)'" }.joined(separator: ", ") + (nodes.count > 3 ? ", ..." : "")
        return "\(opType) x\(count) (\(shown))" + (reason.map { ": \($0)" } ?? "")
    }
}
