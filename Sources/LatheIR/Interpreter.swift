/// The reference interpreter: every op in plain Swift, straightforward loops, no fusion and no
/// tricks. It is the oracle that every compiled kernel is tested against.
public enum Interpreter {
    /// Runs the graph and returns the tensors of `outputs`, in order. Assigns run too: after
    /// the call each assigned variable holds its new value (a training step).
    public static func run(_ graph: Graph, outputs: [ValueID], feeds: [String: HostTensor]) throws -> [HostTensor] {
        try checkFeeds(graph.inputs.map { InputSpec(name: $0.name, shape: $0.type.shape, dtype: $0.type.dtype) }, feeds)
        for v in outputs where !graph.contains(v) { throw LatheError.foreignValue("output \(v)") }
        let needed = graph.liveNodes(outputs: outputs)
        var values = [HostTensor?](repeating: nil, count: graph.nodes.count)
        var assigned: [(slot: Int, value: HostTensor)] = []
        for node in graph.nodes where needed[node.id.index] {
            let operands = node.operands.map { values[$0.index]! }
            values[node.id.index] = try evaluate(node, operands, graph: graph, feeds: feeds)
            if node.op == .assign, case let .variable(slot) = graph[node.operands[0]].op { assigned.append((slot, operands[1])) }
        }
        for (slot, value) in assigned { try graph.setConstant(slot: slot, to: value) }
        return outputs.map { values[$0.index]! }
    }

    /// Computes one op over constant operands: constant folding at import and in the passes.
    /// Shape errors carry `location`.
    public static func fold(_ op: Op, _ operands: [HostTensor], location: SourceLocation) throws -> HostTensor {
        let scratch = Graph()
        let ids = operands.map { scratch.addConstant($0) }
        let result = try scratch.addNode(op, ids, location: location)
        return try run(scratch, outputs: [result], feeds: [:])[0]
    }

    static func evaluate(_ node: Node, _ x: [HostTensor], graph: Graph, feeds: [String: HostTensor]) throws -> HostTensor {
        let shape = node.type.shape
        switch node.op {
        case let .input(name): return feeds[name]!
        case let .constant(slot), let .variable(slot): return graph.constants[slot]
        case .assign: return x[1]
        case let .pool2dGrad(a): return pool2dGrad(x[0], x[1], a)
        case let .gatherGrad(axis, size):
            return gatherGrad(indices: try checkedIndices(x[0], size: size, node: node), dy: x[1], axis: axis, shape: shape)
        case let .conv2dWeightGrad(a, _): return conv2dWeightGrad(x[0], x[1], a, shape: shape)
        case let .dropoutMask(_, rate, seed): return dropoutMask(shape: shape, rate: rate, seed: seed, step: x[0])
        case let .augment(a): return augment(x[0], a, step: x[1], shape: shape)
        case let .augmentGrad(a, _): return augmentGrad(x[0], a, step: x[1], shape: shape)
        case .unary, .binary, .fusedElementwise, .select, .cast:
            return elementwise(node.op.formula!, x, type: node.type, strides: x.map { broadcastStrides(of: $0.shape, to: shape) })
        case .batchNorm:
            let params = channelStrides(rank: shape.count)
            return elementwise(node.op.formula!, x, type: node.type, strides: [contiguousStrides(shape)] + Array(repeating: params, count: 4))
        case let .epilogue(base, count, formula):
            let baseNode = Node(id: node.id, op: base, operands: Array(node.operands.prefix(count)), type: node.type, name: node.name, location: node.location)
            let result = try evaluate(baseNode, Array(x.prefix(count)), graph: graph, feeds: feeds)
            let operands = [result] + x.dropFirst(count)
            return elementwise(formula, operands, type: node.type, strides: operands.map { broadcastStrides(of: $0.shape, to: shape) })
        case let .pooled(base, a):
            let baseType = try base.inferType(x.map { TensorType($0.dtype, $0.shape) })
            let baseNode = Node(id: node.id, op: base, operands: node.operands, type: baseType, name: node.name, location: node.location)
            return try pool2d(try evaluate(baseNode, x, graph: graph, feeds: feeds), a, shape: shape)
        case .matmul: return try matmul(x[0], x[1], shape: shape)
        case .dense: return try dense(x, shape: shape)
        case let .conv2d(a): return try conv2d(x, a, shape: shape)
        case let .pool2d(a): return try pool2d(x[0], a, shape: shape)
        case .globalAveragePool:
            return reduce(x[0], .mean, axes: Array(2..<x[0].shape.count), shape: shape)
        case .reshape, .flatten, .dropout:
            return try HostTensor(shape: shape, dtype: x[0].dtype, bytes: x[0].rawBytes)
        case let .transpose(perm):
            let inStrides = contiguousStrides(x[0].shape)
            return x[0].picking(shape: shape, strides: perm.map { inStrides[$0] }, base: 0)
        case let .slice(starts, _, steps):
            let inStrides = contiguousStrides(x[0].shape)
            let base = zip(starts, inStrides).map(*).reduce(0, +)
            return x[0].picking(shape: shape, strides: zip(steps, inStrides).map(*), base: base)
        case let .concat(axis): return concat(x, axis: axis, shape: shape)
        case let .softmax(axis): return softmax(x[0], axis: axis, log: false)
        case let .logSoftmax(axis): return softmax(x[0], axis: axis, log: true)
        case let .layerNorm(axis, epsilon): return layerNorm(x, axis: axis, epsilon: epsilon)
        case let .reduce(kind, axes, _): return reduce(x[0], kind, axes: axes, shape: shape)
        case let .convTranspose2d(a): return convTranspose2d(x, a, shape: shape)
        case let .gatherND(batchDims):
            let (sources, _) = try ndSources(dataShape: x[0].shape, indices: x[1], batchDims: batchDims, node: node)
            return x[0].picking(sources, shape: shape)
        case let .scatter(axis, reduction):
            return try scatter(x[0], indices: x[1], updates: x[2], axis: axis, reduction: reduction, node: node)
        case let .topK(k, axis, largest): return try topK(x[0], k: k, axis: axis, largest: largest, shape: shape)
        case let .cumulativeSum(axis, exclusive, reverse, product):
            return cumulativeSum(x[0], axis: axis, exclusive: exclusive, reverse: reverse, product: product)
        case let .gatherElements(axis):
            let indices = try checkedIndices(x[1], size: x[0].shape[axis], node: node)
            let dataStrides = contiguousStrides(x[0].shape)
            var sources: [Int] = []
            sources.reserveCapacity(indices.count)
            var k = 0
            // The data offset of each index position with its axis coordinate left out.
            forEachOffset(shape: shape, strides: [dataStrides.enumerated().map { $0.offset == axis ? 0 : $0.element }]) { offsets in
                sources.append(offsets[0] + indices[k] * dataStrides[axis])
                k += 1
            }
            return x[0].picking(sources, shape: shape)
        case let .gather(axis):
            let indices = try checkedIndices(x[1], size: x[0].shape[axis], node: node)
            return gather(x[0], indices: indices, axis: axis, shape: shape)
        case let .recurrent(cell): return recurrent(cell, x, shape: shape)
        case let .pad(pads, value):
            var sources = [Int](repeating: -1, count: node.type.count)
            let outStrides = contiguousStrides(shape)
            let base = zip(pads.prefix(shape.count), outStrides).map(*).reduce(0, +)
            var i = 0
            forEachOffset(shape: x[0].shape, strides: [outStrides], bases: [base]) { offsets in
                sources[offsets[0]] = i
                i += 1
            }
            return x[0].picking(sources, shape: shape, fill: value)
        case let .lrn(size, alpha, beta, bias): return lrn(x[0], size: size, alpha: alpha, beta: beta, bias: bias)
        case let .argExtreme(kind, axis, _, last): return try argExtreme(x[0], kind, axis: axis, lastIndex: last, shape: shape)
        }
    }
}

public struct InputSpec: Hashable, Sendable {
    public let name: String
    public let shape: [Int]
    /// The element type a feed must hold.
    public let dtype: DType
    public init(name: String, shape: [Int], dtype: DType = .float32) {
        self.name = name
        self.shape = shape
        self.dtype = dtype
    }
}

/// Checks a set of named feeds against a model's inputs: every input given once, no stranger,
/// shapes equal.
public func checkFeeds(_ specs: [InputSpec], _ feeds: [String: HostTensor]) throws {
    for name in feeds.keys.sorted() where !specs.contains(where: { $0.name == name }) {
        throw LatheError.unknownInput(name: name, known: specs.map(\.name))
    }
    for spec in specs {
        guard let feed = feeds[spec.name] else { throw LatheError.missingInput(name: spec.name) }
        guard feed.shape == spec.shape else {
            throw LatheError.inputShapeMismatch(name: spec.name, expected: spec.shape, got: feed.shape)
        }
        guard feed.dtype == spec.dtype else {
            throw LatheError.inputElementTypeMismatch(name: spec.name, expected: spec.dtype, got: feed.dtype)
        }
    }
}
