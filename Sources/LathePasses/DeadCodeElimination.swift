import LatheIR

/// Dead-code elimination: keeps the nodes some output or assign needs (walking operands back
/// from them) and every graph input (they are the model's interface, used or not).
public struct DeadCodeElimination: GraphPass {
    public init() {}
    public var name: String { "eliminate-dead-code" }
    public var summary: String { "removes nodes that no output or assign needs" }

    public func run(_ graph: Graph, outputs: [ValueID]) throws -> (graph: Graph, outputs: [ValueID]) {
        var live = graph.liveNodes(outputs: outputs)
        for node in graph.inputs { live[node.id.index] = true }
        let rewrite = GraphRewrite(graph)
        for node in graph.nodes where live[node.id.index] { try rewrite.copy(node) }
        return try rewrite.finish(outputs: outputs)
    }
}
