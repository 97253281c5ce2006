import LatheIR

/// The verifier checks the invariants every later stage relies on: operands come before their
/// users (SSA, topological order), every node's type is what its op's shape rule gives,
/// constants and inputs are well formed, and every output belongs to the graph.
public struct Verifier: GraphPass {
    public init() {}
    public var name: String { "verify" }
    public var summary: String { "checks SSA order, every node's type against its op's shape rule, inputs and constants" }

    public func run(_ graph: Graph, outputs: [ValueID]) throws -> (graph: Graph, outputs: [ValueID]) {
        try check(graph, outputs: outputs)
        return (graph, outputs)
    }

    public func check(_ graph: Graph, outputs: [ValueID]) throws {
        var inputNames: Set<String> = []
        for node in graph.nodes {
            let at = "\(node.id) (\(node.name))"
            guard node.op.arity.contains(node.operands.count) else {
                throw LatheError.invalidGraph(node: at, reason: "\(node.op.name) has \(node.operands.count) operands")
            }
            for operand in node.operands where operand >= node.id || operand.index < 0 {
                throw LatheError.invalidGraph(node: at, reason: "operand \(operand) is not defined before its use")
            }
            switch node.op {
            case let .input(name):
                guard inputNames.insert(name).inserted else { throw LatheError.invalidGraph(node: at, reason: "input name '\(name)' repeats") }
            case let .constant(slot), let .variable(slot):
                guard graph.constants.indices.contains(slot), graph.constants[slot].shape == node.type.shape else {
                    throw LatheError.invalidGraph(node: at, reason: "constant slot \(slot) does not hold a \(node.type)")
                }
            default:
                let expected: TensorType
                do throws(OpRuleFailure) {
                    expected = try node.op.inferType(node.operands.map { graph[$0].type })
                } catch {
                    throw LatheError.invalidGraph(node: at, reason: error.reason)
                }
                guard expected == node.type else {
                    throw LatheError.invalidGraph(node: at, reason: "type \(node.type) differs from the inferred \(expected)")
                }
            }
        }
        for v in outputs where !graph.contains(v) { throw LatheError.foreignValue("output \(v)") }
    }
}
