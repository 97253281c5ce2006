import LatheIR

/// Constant folding: a node whose operands are all constants is computed now, by the reference
/// interpreter, and becomes a constant. One walk in order suffices, since operands come
/// first: a chain of constant computations folds from its start. Inputs, constants and nodes
/// with a computed operand are copied.
public struct ConstantFolding: GraphPass {
    public init() {}
    public var name: String { "fold-constants" }
    public var summary: String { "computes nodes whose operands are all constants at compile time" }

    public func run(_ graph: Graph, outputs: [ValueID]) throws -> (graph: Graph, outputs: [ValueID]) {
        let rewrite = GraphRewrite(graph)
        for node in graph.nodes {
            switch node.op {
            case .input, .constant, .variable:
                try rewrite.copy(node)
                continue
            default: break
            }
            let operands = try node.operands.map { try rewrite.mapped($0) }
            let values = operands.compactMap(rewrite.constantValue)
            guard values.count == operands.count else {
                try rewrite.copy(node)
                continue
            }
            let folded = try Interpreter.fold(node.op, values, location: node.location)
            rewrite.map(node.id, to: rewrite.constant(folded, replacing: node))
        }
        return try rewrite.finish(outputs: outputs)
    }
}
