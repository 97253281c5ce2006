import LatheIR

/// Removes nodes that do not change their operand: inference dropout, a reshape or flatten to
/// the shape it already has, a transpose by the identity permutation, a slice of everything.
/// A reshape (or flatten) of a reshape reads the first one's operand directly, so chains
/// collapse to one reshape.
public struct IdentityRemoval: GraphPass {
    public init() {}
    public var name: String { "remove-identities" }
    public var summary: String { "drops inference dropout, no-op reshapes, transposes and slices; collapses reshape chains" }

    public func run(_ graph: Graph, outputs: [ValueID]) throws -> (graph: Graph, outputs: [ValueID]) {
        let rewrite = GraphRewrite(graph)
        for node in graph.nodes {
            guard let operand = node.operands.first else {
                try rewrite.copy(node)
                continue
            }
            let input = try rewrite.mapped(operand)
            let inputNode = rewrite.target[input]
            switch node.op {
            case .dropout:
                rewrite.map(node.id, to: input)
            case .reshape, .flatten:
                if inputNode.type.shape == node.type.shape {
                    rewrite.map(node.id, to: input)
                } else if case .reshape = inputNode.op {
                    let direct = try rewrite.target.addNode(.reshape(shape: node.type.shape), [inputNode.operands[0]], name: node.name, location: node.location)
                    rewrite.map(node.id, to: direct)
                } else if case .flatten = inputNode.op {
                    let direct = try rewrite.target.addNode(.reshape(shape: node.type.shape), [inputNode.operands[0]], name: node.name, location: node.location)
                    rewrite.map(node.id, to: direct)
                } else {
                    try rewrite.copy(node)
                }
            case let .transpose(perm) where perm == Array(perm.indices):
                rewrite.map(node.id, to: input)
            case let .slice(starts, ends, steps) where starts.allSatisfy({ $0 == 0 }) && ends == inputNode.type.shape && steps.allSatisfy({ $0 == 1 }):
                rewrite.map(node.id, to: input)
            default:
                try rewrite.copy(node)
            }
        }
        return try rewrite.finish(outputs: outputs)
    }
}
