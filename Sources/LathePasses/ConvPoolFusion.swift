import LatheIR

/// Conv-pool fusion: a pooling of a first layer's result moves into the convolution's kernel
/// (Op.pooled), which convolves an image, pools it while it is in cache, and never writes the
/// convolution's whole result. A first layer has so few input channels (1 to 4: gray or RGB)
/// that its kernel is bound by writing its result, not by its multiply-adds: the Keras CNN's,
/// at batch 64, wrote 5.5 MB that its pool read straight back.
///
/// Algorithm: one walk in order. A pool2d node absorbs its operand when that is a conv2d (or a
/// conv2d with an epilogue that reads no other operand) of one group and at most 4 input
/// channels, the pool is its only reader, it is not a graph output, and one image's result
/// fits in 256 KB (half of a core's L2 cache on the machines we measured, so the pool reads it
/// from there; SqueezeNet's 3 MB first layer is left as it is). Runs after epilogue fusion, so
/// the convolution arrives with its ReLU.
public struct ConvPoolFusion: GraphPass {
    public init() {}
    public var name: String { "fuse-conv-pool" }
    public var summary: String { "pools a first layer's convolution in its kernel, an image at a time, while its result is in cache" }
    static let imageBytes = 256 * 1024

    public func run(_ graph: Graph, outputs: [ValueID]) throws -> (graph: Graph, outputs: [ValueID]) {
        try run(graph, outputs: outputs, remarks: RemarkLog())
    }

    public func run(_ graph: Graph, outputs: [ValueID], remarks: RemarkLog) throws -> (graph: Graph, outputs: [ValueID]) {
        let rewrite = GraphRewrite(graph)
        let uses = graph.useCounts(outputs: outputs)
        let isOutput = Set(outputs)
        for node in graph.nodes {
            guard case let .pool2d(a) = node.op, let operand = node.operands.first else {
                try rewrite.copy(node)
                continue
            }
            let producer = graph[operand]
            let imageBytes = producer.type.shape.dropFirst().reduce(4, *)
            let refusal: String?
            switch producer.op {
            case let .conv2d(c), let .epilogue(.conv2d(c), _, _):
                if case let .epilogue(_, count, _) = producer.op, count != producer.operands.count {
                    refusal = "its epilogue reads other operands"
                } else if producer.type.dtype != .float32 || graph[producer.operands[0]].type.dtype != .float32 {
                    refusal = "it computes on quantized integers"
                } else if c.groups != 1 || graph[producer.operands[1]].type.shape[1] > 4 {
                    refusal = "it is not a first layer (one group, at most 4 input channels)"
                } else if uses[operand.index] > 1 || isOutput.contains(operand) {
                    refusal = "its result is read elsewhere"
                } else if imageBytes > Self.imageBytes {
                    refusal = "an image's result, \(imageBytes / 1024) KB, is over \(Self.imageBytes / 1024) KB"
                } else {
                    refusal = nil
                }
            default:
                try rewrite.copy(node)
                continue
            }
            if let refusal {
                remarks.refused("\(producer.name) into \(node.name)", refusal)
                try rewrite.copy(node)
                continue
            }
            let op = Op.pooled(base: producer.op, pool: a)
            let fused = try rewrite.target.addNode(op, try producer.operands.map(rewrite.mapped), name: node.name, location: producer.location,
                                                   sourceOps: producer.sourceOps + node.sourceOps)
            remarks.fused("pool", [producer.name, node.name])
            rewrite.map(node.id, to: fused)
        }
        return try rewrite.finish(outputs: outputs)
    }
}
