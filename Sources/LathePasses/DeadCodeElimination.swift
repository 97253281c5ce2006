import LatheIR

/// Dead-code elimination: keeps the nodes some output needs (walking operands back from the
/// outputs) and every graph input (they are the model's interface, used or not).
public struct DeadCodeElimination: GraphPass {
    public init() {}
    public var name: String { "eliminate-dead-code" }
    public var summary: String { "removes nodes that no output needs" }

    public func run(_ graph: Graph, outputs: [ValueID]) throws -> (graph: Graph, outputs: [ValueID]) {
        var live = [Bool](repeating: false, count: graph.nodes.count)
        for v in outputs { live[v.index] = true }
        for node in graph.nodes.reversed() {
            if case .input = node.op { live[node.id.index] = true }
            if live[node.id.index] { for operand in node.operands { live[operand.index] = true } }
        }
        let rewrite = GraphRewrite(graph)
        for node in graph.nodes where live[node.id.index] { try rewrite.copy(node) }
        return try rewrite.finish(outputs: outputs)
    }
}
