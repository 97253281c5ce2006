import LatheIR

/// An average pool whose window is the whole unpadded plane, as ResNet's and DenseNet's last
/// pools are written in ONNX (a 7x7 AveragePool over 7x7 planes), becomes `global_avg_pool`; a
/// max pool of the same kind becomes a max reduction over the two spatial axes. Both give one
/// value a plane, as the pool did. The pool kernel unrolls its window's taps, 49 for ResNet's,
/// which LLVM was slow to optimize (benchmarks/RESULTS.md, "Measurements behind choices in the code"); the reduction loops over the plane.
public struct WholePlanePooling: GraphPass {
    public init() {}
    public var name: String { "pool-whole-planes" }
    public var summary: String { "turns a pool whose window is the whole unpadded plane into global_avg_pool or a max reduction" }

    public func run(_ graph: Graph, outputs: [ValueID]) throws -> (graph: Graph, outputs: [ValueID]) {
        let rewrite = GraphRewrite(graph)
        for node in graph.nodes {
            guard case let .pool2d(a) = node.op, let operand = node.operands.first,
                  Self.coversPlane(a, input: graph[operand].type.shape) else {
                try rewrite.copy(node)
                continue
            }
            let op: Op = a.kind == .average ? .globalAveragePool : .reduce(.max, axes: [2, 3], keepDims: true)
            let input = try rewrite.mapped(operand)
            rewrite.map(node.id, to: try rewrite.target.addNode(op, [input], name: node.name, location: node.location))
        }
        return try rewrite.finish(outputs: outputs)
    }

    /// The window is every cell of an [N, C, H, W] input, once: H x W taps, no padding, no gaps.
    static func coversPlane(_ a: Pool2DAttributes, input shape: [Int]) -> Bool {
        shape.count == 4 && a.kernel == [shape[2], shape[3]] && a.pads.allSatisfy { $0 == 0 } && a.dilations == [1, 1]
    }
}
