import LatheIR

/// Epilogue fusion: the elementwise work after a convolution, dense layer or matrix product
/// (an activation, a residual Add, and whatever elementwise fusion already merged) moves into
/// that kernel, applied to each result in registers before it is stored. The intermediate
/// result is never written.
///
/// Algorithm: one walk in order. An elementwise node (unary, binary, fused) whose operand is a
/// contraction (or a contraction that already has an epilogue) absorbs into it when the
/// contraction's result has this node as its only reader, is not a graph output, and has the
/// node's shape, and every other operand of the node has that shape too (it is read at the
/// result's position), or is a vector along the last axis of a Dense or MatMul result (a bias
/// after a MatMul: read at the result's column), or is a one-element constant (it becomes a
/// number in the formula), or, after a quantized convolution, one value per output channel (a
/// requantization's multiplier). A float contraction's epilogue computes on f32 alone; a
/// quantized one's (int32 sums) on any element types, so its requantization to uint8 and
/// whatever elementwise work follows on the 8-bit values move in too. Of several contraction operands (a residual Add of two
/// convolutions), the first that qualifies takes the node: MobileNet v2's blocks add a
/// convolution read only there to one read by the next block too.
/// Runs after elementwise fusion, so a residual Add and its ReLU arrive as one node.
public struct EpilogueFusion: GraphPass {
    public init() {}
    public var name: String { "fuse-epilogues" }
    public var summary: String { "moves activations and residual Adds into the Conv, Dense or MatMul kernel before them" }

    public func run(_ graph: Graph, outputs: [ValueID]) throws -> (graph: Graph, outputs: [ValueID]) {
        try run(graph, outputs: outputs, remarks: RemarkLog())
    }

    /// The contraction and the formula already applied to it.
    private func contraction(_ node: Node) -> (base: Op, baseOperands: Int, formula: ScalarExpr)? {
        switch node.op {
        case .conv2d, .dense, .matmul: return (node.op, node.operands.count, .arg(0))
        case let .epilogue(base, count, formula): return (base, count, formula)
        default: return nil
        }
    }

    public func run(_ graph: Graph, outputs: [ValueID], remarks: RemarkLog) throws -> (graph: Graph, outputs: [ValueID]) {
        let rewrite = GraphRewrite(graph)
        let uses = graph.useCounts(outputs: outputs)
        let live = graph.liveNodes(outputs: outputs)
        let isOutput = Set(outputs)
        for node in graph.nodes {
            let candidates = live[node.id.index] && ElementwiseFusion.isElementwise(node.op) && node.op.formula != nil
                ? node.operands.indices.filter { contraction(rewrite.target[(try? rewrite.mapped(node.operands[$0])) ?? node.operands[$0]]) != nil } : []
            // The first contraction operand that can take the node (of a residual Add of two
            // convolutions, the one read only here), else the first one's refusal.
            var refusal: Refusal?
            var fused: ValueID?
            for k in candidates where fused == nil {
                switch try absorb(node, into: k, graph: graph, rewrite: rewrite, uses: uses, isOutput: isOutput, remarks: remarks) {
                case let .success(value): fused = value
                case let .failure(reason): refusal = refusal ?? reason
                }
            }
            if let fused {
                rewrite.map(node.id, to: fused)
            } else {
                if let refusal { remarks.refused(refusal.candidate, refusal.reason) }
                try rewrite.copy(node)
            }
        }
        return try rewrite.finish(outputs: outputs)
    }

    private struct Refusal: Error {
        let candidate: String, reason: String
    }

    /// The epilogue node made of `node` moved into its operand `k`, a contraction, or why not.
    private func absorb(_ node: Node, into k: Int, graph: Graph, rewrite: GraphRewrite, uses: [Int], isOutput: Set<ValueID>,
                        remarks: RemarkLog) throws -> Result<ValueID, Refusal> {
        let producerID = try rewrite.mapped(node.operands[k])
        let producer = rewrite.target[producerID]
        guard let (base, baseCount, inner) = contraction(producer), let formula = node.op.formula else {
            return .failure(Refusal(candidate: node.name, reason: "no contraction"))
        }
        let candidate = "\(graph[node.operands[k]].name) into \(node.name)"
        func refused(_ reason: String) -> Result<ValueID, Refusal> { .failure(Refusal(candidate: candidate, reason: reason)) }
        if uses[node.operands[k].index] > 1 { return refused("\(graph[node.operands[k]].name) has \(uses[node.operands[k].index]) readers") }
        if isOutput.contains(node.operands[k]) { return refused("\(graph[node.operands[k]].name) is a graph output") }
        if producer.type.shape != node.type.shape { return refused("the result \(producer.type.shape) is broadcast to \(node.type.shape)") }
        // A float GEMM's epilogue computes on f32 alone; an integer GEMM's in any types.
        if producer.type.dtype == .float32,
           node.type.dtype != .float32 || !formula.isFloat32Only || node.operands.contains(where: { graph[$0].type.dtype != .float32 }) {
            return refused("\(node.name) computes on element types other than f32")
        }
        // The producer's own extras come first, then this node's other operands.
        var extras = Array(producer.operands.dropFirst(baseCount))
        var replacements: [ScalarExpr] = []
        for (i, operand) in node.operands.enumerated() {
            if i == k {
                replacements.append(inner)
                continue
            }
            let value = try rewrite.mapped(operand)
            if let c = rewrite.constantValue(value), c.count == 1 {
                replacements.append(.const(c.scalars[0]))
            } else if rewrite.target[value].type.shape == node.type.shape
                        || Op.epilogueReadsPerColumn(base: base, operand: rewrite.target[value].type.shape, result: node.type.shape)
                        || Op.epilogueReadsPerChannel(base: base, resultType: producer.type, operand: rewrite.target[value].type.shape) {
                if let j = extras.firstIndex(of: value) { replacements.append(.arg(1 + j)) } else {
                    extras.append(value)
                    replacements.append(.arg(extras.count))
                }
            } else {
                return refused("operand \(graph[operand].name) \(rewrite.target[value].type.shape) is not read at the result's position")
            }
        }
        let op = Op.epilogue(base: base, baseOperands: baseCount, formula: formula.substituting(replacements))
        let fused = try rewrite.target.addNode(op, Array(producer.operands.prefix(baseCount)) + extras, name: node.name, location: producer.location,
                                               sourceOps: producer.sourceOps + node.sourceOps)
        remarks.fused("epilogue", [producer.name, node.name])
        return .success(fused)
    }
}
