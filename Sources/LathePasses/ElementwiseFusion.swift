import LatheIR

/// Elementwise fusion: chains and trees of elementwise and broadcast ops become one
/// fused_elementwise node, one loop that reads each leaf operand once and writes once.
///
/// Algorithm: one walk in order. For an elementwise node, each operand that is itself an
/// elementwise node (already fused, since operands come first) is inlined, its formula
/// substituted for the operand, when the node is its only reader, it is not a graph output,
/// and it has the node's own shape (inlining a smaller operand into a broadcast would compute
/// it once per output element instead of once). Leaf operands are deduplicated. The inlined
/// nodes are left for dead-code elimination. Each group made is noted, and each refused
/// candidate with the reason. Ops of every element type fuse alike: the fused formula types
/// itself from its leaves (a comparison's bool, a cast's type).
public struct ElementwiseFusion: GraphPass {
    public init() {}
    public var name: String { "fuse-elementwise" }
    public var summary: String { "merges chains and trees of elementwise ops into one loop" }

    public func run(_ graph: Graph, outputs: [ValueID]) throws -> (graph: Graph, outputs: [ValueID]) {
        try run(graph, outputs: outputs, remarks: RemarkLog())
    }

    static func isElementwise(_ op: Op) -> Bool {
        switch op {
        case .unary, .binary, .fusedElementwise, .select, .cast: return true
        default: return false
        }
    }

    public func run(_ graph: Graph, outputs: [ValueID], remarks: RemarkLog) throws -> (graph: Graph, outputs: [ValueID]) {
        let rewrite = GraphRewrite(graph)
        let uses = graph.useCounts(outputs: outputs)
        let live = graph.liveNodes(outputs: outputs)
        let isOutput = Set(outputs)
        var members: [ValueID: [String]] = [:]     // target node -> source nodes it computes
        var absorbed: Set<ValueID> = []
        for node in graph.nodes {
            guard live[node.id.index], Self.isElementwise(node.op), let formula = node.op.formula else {
                try rewrite.copy(node)
                continue
            }
            var leaves: [ValueID] = []
            func leaf(_ v: ValueID) -> ScalarExpr {
                if let i = leaves.firstIndex(of: v) { return .arg(i) }
                leaves.append(v)
                return .arg(leaves.count - 1)
            }
            var replacements: [ScalarExpr] = []
            var group = [String]()
            var groupOps = [String]()
            var inlined: [ValueID] = []
            for operand in node.operands {
                let producer = rewrite.target[try rewrite.mapped(operand)]
                guard Self.isElementwise(producer.op), let inner = producer.op.formula else {
                    replacements.append(leaf(producer.id))
                    continue
                }
                let refusal: String? = uses[operand.index] > 1 ? "\(graph[operand].name) has \(uses[operand.index]) readers"
                    : isOutput.contains(operand) ? "\(graph[operand].name) is a graph output"
                    : producer.type.shape != node.type.shape ? "\(graph[operand].name) \(producer.type.shape) is broadcast to \(node.type.shape)"
                    : nil
                if let refusal {
                    remarks.refused("\(graph[operand].name) into \(node.name)", refusal)
                    replacements.append(leaf(producer.id))
                    continue
                }
                replacements.append(inner.substituting(producer.operands.map(leaf)))
                group += members[producer.id] ?? [producer.name]
                groupOps += producer.sourceOps
                inlined.append(producer.id)
            }
            guard !inlined.isEmpty else {
                try rewrite.copy(node)
                continue
            }
            let fused = try rewrite.target.addNode(.fusedElementwise(formula.substituting(replacements)), leaves, name: node.name, location: node.location,
                                                   sourceOps: groupOps + node.sourceOps)
            rewrite.map(node.id, to: fused)
            members[fused] = group + [node.name]
            absorbed.formUnion(inlined)
        }
        for (node, names) in members.sorted(by: { $0.key < $1.key }) where !absorbed.contains(node) {
            remarks.fused("elementwise", names)
        }
        return try rewrite.finish(outputs: outputs)
    }
}
