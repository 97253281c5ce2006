import LatheIR

/// Layer normalization written out in ops, as older ONNX exporters (opset < 17) and hand-built
/// graphs do, becomes one `layer_norm` node, one kernel that reads each row while it is in cache:
///
///     mean = reduce_mean(x, trailing axes)      centered = x - mean
///     variance = reduce_mean(centered * centered  or  centered ^ 2)
///     y = centered / sqrt(variance + epsilon)   [* scale]   [+ bias]
///
/// Algorithm: for each division, match the pattern backwards from it (both means over the same
/// trailing axes with kept dimensions, epsilon a one-element constant); every node inside must
/// be read only inside the pattern and not be an output. Then take a following Mul and Add whose
/// other operand has the normalized shape (or one element) as scale and bias. The matched nodes
/// are not copied; the last one maps to the new node.
public struct LayerNormFusion: GraphPass {
    public init() {}
    public var name: String { "fuse-layernorm" }
    public var summary: String { "turns mean/variance/normalize/scale/shift written in ops into one layer_norm" }

    public func run(_ graph: Graph, outputs: [ValueID]) throws -> (graph: Graph, outputs: [ValueID]) {
        try run(graph, outputs: outputs, remarks: RemarkLog())
    }

    struct Match {
        var x: ValueID, scale: ValueID?, bias: ValueID?
        var axis: Int, epsilon: Float
        var nodes: [ValueID]
    }

    public func run(_ graph: Graph, outputs: [ValueID], remarks: RemarkLog) throws -> (graph: Graph, outputs: [ValueID]) {
        let uses = graph.useCounts(outputs: outputs)
        let live = graph.liveNodes(outputs: outputs)
        let outputSet = Set(outputs)
        var readers: [ValueID: [ValueID]] = [:]
        for node in graph.nodes where live[node.id.index] { for v in Set(node.operands) { readers[v, default: []].append(node.id) } }

        var matches: [ValueID: Match] = [:]   // by the last matched node
        var absorbed: Set<ValueID> = []
        for node in graph.nodes where live[node.id.index] {
            guard var m = match(division: node, graph) else { continue }
            // Every node but the last is read only by the pattern's next node.
            let inner = m.nodes.dropLast()
            let internalUses = Dictionary(m.nodes.flatMap { graph[$0].operands }.map { ($0, 1) }, uniquingKeysWith: +)
            guard inner.allSatisfy({ uses[$0.index] == internalUses[$0] && !outputSet.contains($0) }) else {
                remarks.refused(node.name, "layer norm: an intermediate has a reader outside the pattern")
                continue
            }
            extend(&m, graph, uses: uses, outputs: outputSet, readers: readers)
            matches[m.nodes.last!] = m
            absorbed.formUnion(m.nodes.dropLast())
            remarks.fused("layernorm", m.nodes.map { graph[$0].name })
        }

        let rewrite = GraphRewrite(graph)
        for node in graph.nodes {
            if case .input = node.op { try rewrite.copy(node); continue }
            guard live[node.id.index], !absorbed.contains(node.id) else { continue }
            guard let m = matches[node.id] else { try rewrite.copy(node); continue }
            let scale = try m.scale.map(rewrite.mapped) ?? rewrite.target.addConstant(HostTensor(shape: [1], repeating: 1), name: "\(node.name).scale", location: node.location)
            let operands = [try rewrite.mapped(m.x), scale] + (try m.bias.map { [try rewrite.mapped($0)] } ?? [])
            rewrite.map(node.id, to: try rewrite.target.addNode(.layerNorm(axis: m.axis, epsilon: m.epsilon), operands, name: node.name, location: node.location))
        }
        return try rewrite.finish(outputs: outputs)
    }

    /// centered / sqrt(reduce_mean(centered^2) + epsilon), centered = x - reduce_mean(x).
    private func match(division node: Node, _ graph: Graph) -> Match? {
        guard case .binary(.div) = node.op else { return nil }
        let centered = graph[node.operands[0]], deviation = graph[node.operands[1]]
        guard case .unary(.sqrt) = deviation.op else { return nil }
        let shifted = graph[deviation.operands[0]]
        guard case .binary(.add) = shifted.op else { return nil }
        var variance: Node?, epsilon: Float?
        for (v, e) in [(0, 1), (1, 0)] {
            if let c = graph.constantValue(shifted.operands[e]), c.count == 1 {
                (variance, epsilon) = (graph[shifted.operands[v]], c.scalars[0])
            }
        }
        guard let variance, let epsilon, case let .reduce(.mean, varianceAxes, true) = variance.op else { return nil }
        let squared = graph[variance.operands[0]]
        switch squared.op {
        case .binary(.mul): guard squared.operands == [centered.id, centered.id] else { return nil }
        case .binary(.pow):
            guard squared.operands[0] == centered.id, let p = graph.constantValue(squared.operands[1]), p.count == 1, p.scalars[0] == 2 else { return nil }
        default: return nil
        }
        guard case .binary(.sub) = centered.op else { return nil }
        let x = graph[centered.operands[0]], mean = graph[centered.operands[1]]
        guard case let .reduce(.mean, axes, true) = mean.op, mean.operands[0] == x.id, axes == varianceAxes else { return nil }
        let rank = x.type.rank
        guard let axis = axes.min(), axes.sorted() == Array(axis..<rank), centered.type.shape == x.type.shape, node.type.shape == x.type.shape else { return nil }
        return Match(x: x.id, scale: nil, bias: nil, axis: axis, epsilon: epsilon,
                     nodes: [mean.id, centered.id, squared.id, variance.id, shifted.id, deviation.id, node.id])
    }

    /// Takes in a Mul (scale) and then an Add (bias) that are the last node's only reader.
    private func extend(_ m: inout Match, _ graph: Graph, uses: [Int], outputs: Set<ValueID>, readers: [ValueID: [ValueID]]) {
        let normalizedShape = Array(graph[m.x].type.shape.dropFirst(m.axis))
        func parameter(of last: ValueID, _ fn: BinaryFn) -> (node: ValueID, operand: ValueID)? {
            guard uses[last.index] == 1, !outputs.contains(last), let next = readers[last]?.first else { return nil }
            let n = graph[next]
            guard case .binary(fn) = n.op, n.type.shape == graph[last].type.shape else { return nil }
            let other = n.operands[0] == last ? n.operands[1] : n.operands[0]
            let shape = graph[other].type.shape
            guard other != last, shape.reduce(1, *) == 1 || shape.drop(while: { $0 == 1 }).elementsEqual(normalizedShape.drop { $0 == 1 }) else { return nil }
            return (next, other)
        }
        if let (node, scale) = parameter(of: m.nodes.last!, .mul) {
            m.nodes.append(node)
            m.scale = scale
        }
        // A shift without a scale stays an Add.
        if m.scale != nil, let (node, bias) = parameter(of: m.nodes.last!, .add) {
            m.nodes.append(node)
            m.bias = bias
        }
    }
}
