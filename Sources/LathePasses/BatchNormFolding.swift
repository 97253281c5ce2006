import LatheIR

/// Folds inference BatchNorm, and constant per-channel Mul and Add, into the convolution or
/// dense layer before them, when that layer's weights are constants and the BatchNorm (or
/// Mul/Add) is its only reader. With f = scale / sqrt(variance + epsilon) per output channel:
///
///     W' = W * f            b' = (b - mean) * f + bias
///
/// A Mul by a constant c scales W and b by c; an Add of c adds c to b. The channel is axis 1 of
/// a convolution's output ([OC] of its weights' first axis) and axis 1 of a dense output (its
/// weights' second axis). Each fold leaves one conv/dense node with new constant weights.
public struct BatchNormFolding: GraphPass {
    public init() {}
    public var name: String { "fold-batchnorm" }
    public var summary: String { "folds BatchNorm and constant per-channel Mul/Add into the Conv or Dense before them" }

    public func run(_ graph: Graph, outputs: [ValueID]) throws -> (graph: Graph, outputs: [ValueID]) {
        let rewrite = GraphRewrite(graph)
        let uses = graph.useCounts(outputs: outputs)
        for node in graph.nodes {
            if let folded = try fold(node, graph, rewrite, uses) {
                rewrite.map(node.id, to: folded)
            } else {
                try rewrite.copy(node)
            }
        }
        return try rewrite.finish(outputs: outputs)
    }

    /// Per-channel scale and shift that `node` applies to its producer's output, if it is a
    /// BatchNorm, Mul or Add with constant parameters.
    private func affine(_ node: Node, _ graph: Graph, channels: Int, rank: Int) -> (layer: ValueID, scale: [Float], shift: [Float])? {
        switch node.op {
        case let .batchNorm(epsilon):
            let p = node.operands.dropFirst().compactMap(graph.constantValue)
            guard p.count == 4 else { return nil }
            let scale = (0..<channels).map { p[0].scalars[$0] / (p[3].scalars[$0] + epsilon).squareRoot() }
            let shift = (0..<channels).map { p[1].scalars[$0] - p[2].scalars[$0] * scale[$0] }
            return (node.operands[0], scale, shift)
        case .binary(.mul), .binary(.add):
            for (layerSide, constantSide) in [(0, 1), (1, 0)] {
                guard let c = graph.constantValue(node.operands[constantSide]), let perChannel = channelValues(c, channels: channels, rank: rank),
                      node.type.shape == graph[node.operands[layerSide]].type.shape else { continue }
                if case .binary(.mul) = node.op { return (node.operands[layerSide], perChannel, Array(repeating: 0, count: channels)) }
                return (node.operands[layerSide], Array(repeating: 1, count: channels), perChannel)
            }
            return nil
        default:
            return nil
        }
    }

    /// A constant that is one value per channel of axis 1 (or one value in all), as [channels].
    private func channelValues(_ c: HostTensor, channels: Int, rank: Int) -> [Float]? {
        if c.count == 1 { return Array(repeating: c.scalars[0], count: channels) }
        guard c.count == channels, c.shape.count <= rank else { return nil }
        // Right-aligned against the output's rank, the one non-unit axis must be axis 1.
        let aligned = Array(repeating: 1, count: rank - c.shape.count) + c.shape
        guard aligned.count > 1, aligned[1] == channels, aligned.enumerated().allSatisfy({ $0.offset == 1 || $0.element == 1 }) else { return nil }
        return c.scalars
    }

    private func fold(_ node: Node, _ graph: Graph, _ rewrite: GraphRewrite, _ uses: [Int]) throws -> ValueID? {
        guard node.type.rank >= 2 else { return nil }
        let channels = node.type.shape[1]
        guard let (layerID, scale, shift) = affine(node, graph, channels: channels, rank: node.type.rank), uses[layerID.index] == 1 else { return nil }
        // The layer as already rewritten: an earlier fold may have replaced it.
        let layer = rewrite.target[try rewrite.mapped(layerID)]
        guard layer.operands.count >= 2, let weight = rewrite.constantValue(layer.operands[1]) else { return nil }
        let bias = layer.operands.count == 3 ? rewrite.constantValue(layer.operands[2]) : HostTensor(shape: [channels])
        guard let bias else { return nil }
        var newWeight = weight
        switch layer.op {
        case .conv2d:
            guard weight.shape[0] == channels, layer.type.rank == 4 else { return nil }
            let perChannel = weight.count / channels
            newWeight.scalars.withUnsafeMutableBufferPointer { w in
                for c in 0..<channels {
                    for i in (c * perChannel)..<((c + 1) * perChannel) { w[i] *= scale[c] }
                }
            }
        case .dense:
            guard weight.shape.count == 2, weight.shape[1] == channels, layer.type.rank == 2 else { return nil }
            newWeight.scalars.withUnsafeMutableBufferPointer { w in
                for row in 0..<(weight.count / channels) {
                    for c in 0..<channels { w[row * channels + c] *= scale[c] }
                }
            }
        default:
            return nil
        }
        let newBias = try HostTensor(shape: [channels], scalars: (0..<channels).map { bias.scalars[$0] * scale[$0] + shift[$0] })
        let target = rewrite.target
        let name = "\(layer.name)+\(node.name)"
        let w = target.addConstant(newWeight, name: "\(name).weight", location: layer.location)
        let b = target.addConstant(newBias, name: "\(name).bias", location: layer.location)
        return try target.addNode(layer.op, [layer.operands[0], w, b], name: name, location: layer.location, sourceOps: layer.sourceOps)
    }
}
