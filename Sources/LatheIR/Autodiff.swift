/// Reverse-mode automatic differentiation over the graph IR.
///
/// Algorithm: mark the values that depend on a parameter (one walk forward). Seed the loss's
/// gradient with ones, then walk the nodes from the loss back to the start; at each node that
/// has gradient contributions, sum them into its gradient dy and ask the op's gradient rule
/// (GradientRules.swift) for each operand's contribution, for operands that depend on a
/// parameter. A value read twice gets two contributions, summed when its node is reached, so
/// every node's rule runs once. The backward nodes are added to the same graph, carrying the
/// forward node's source location, and go through the same passes and code generator.
extension Graph {
    /// The gradients of a one-element `loss` with respect to each of `parameters` (any values of
    /// the graph; usually its variables), as new values of this graph, in order. A parameter the
    /// loss does not depend on gets a zero gradient.
    public func gradients(of loss: ValueID, wrt parameters: [ValueID]) throws -> [ValueID] {
        guard contains(loss) else { throw LatheError.foreignValue("the loss \(loss)") }
        for p in parameters where !contains(p) { throw LatheError.foreignValue("parameter \(p)") }
        let lossNode = self[loss]
        guard lossNode.type.count == 1 else {
            throw LatheError.shapeMismatch(op: "gradients of \(lossNode.name)", shapes: [lossNode.type.shape],
                                           reason: "the loss must have one element", location: lossNode.location)
        }
        var dependent = [Bool](repeating: false, count: nodes.count)
        for p in parameters { dependent[p.index] = true }
        for node in nodes where node.op != .assign && node.operands.contains(where: { dependent[$0.index] }) {
            dependent[node.id.index] = true
        }

        var contributions: [ValueID: [ValueID]] = [loss: [addConstant(HostTensor(shape: lossNode.type.shape, repeating: 1), name: "\(lossNode.name).grad_seed")]]
        var summed: [ValueID: ValueID] = [:]
        func gradient(of v: ValueID) throws -> ValueID? {
            if let done = summed[v] { return done }
            guard var parts = contributions[v], !parts.isEmpty else { return nil }
            var total = parts.removeFirst()
            for part in parts {
                total = try addNode(.binary(.add), [total, part], name: "\(self[v].name).grad_sum", location: self[v].location)
            }
            summed[v] = total
            return total
        }

        for index in stride(from: loss.index, through: 0, by: -1) {
            let node = nodes[index]
            guard dependent[index], !node.operands.isEmpty, let dy = try gradient(of: node.id) else { continue }
            let wanted = node.operands.map { dependent[$0.index] }
            guard wanted.contains(true) else { continue }
            let parts = try node.op.gradients(GradientContext(graph: self, node: node, dy: dy, wanted: wanted))
            for (k, part) in parts.enumerated() where wanted[k] {
                if let part { contributions[node.operands[k], default: []].append(part) }
            }
        }
        return try parameters.map { p in
            if let g = try gradient(of: p) { return g }
            return addConstant(HostTensor(shape: self[p].type.shape), name: "\(self[p].name).grad_zero")
        }
    }
}

/// What a gradient rule works with: the forward node, its output gradient dy, and helpers that
/// add backward nodes named after the node and carrying its source location.
public struct GradientContext {
    public let graph: Graph
    public let node: Node
    public let dy: ValueID
    /// Which operands need a gradient; a rule may skip the others.
    public let wanted: [Bool]

    public func shape(_ v: ValueID) -> [Int] { graph[v].type.shape }
    public var x: [ValueID] { node.operands }

    public func add(_ op: Op, _ operands: [ValueID], _ role: String) throws -> ValueID {
        try graph.addNode(op, operands, name: "\(node.name).\(role)", location: node.location)
    }

    public func constant(_ t: HostTensor, _ role: String) -> ValueID {
        graph.addConstant(t, name: "\(node.name).\(role)", location: node.location)
    }

    /// `formula` over `operands`, broadcast to their common shape.
    public func elementwise(_ formula: ScalarExpr, _ operands: [ValueID], _ role: String) throws -> ValueID {
        try add(.fusedElementwise(formula), operands, role)
    }

    /// `small` (broadcastable to `like`) spread to `like`'s shape, times `scale`.
    public func expand(_ small: ValueID, like: ValueID, scale: Float = 1, _ role: String) throws -> ValueID {
        // The formula reads only $0; `like` sets the shape.
        try elementwise(scale == 1 ? .arg(0) : .arg(0) * .const(scale), [small, like], role)
    }

    public func reshape(_ v: ValueID, to target: [Int], _ role: String) throws -> ValueID {
        shape(v) == target ? v : try add(.reshape(shape: target), [v], role)
    }

    public func transposeLastTwo(_ v: ValueID, _ role: String) throws -> ValueID {
        let r = shape(v).count
        return try add(.transpose(perm: Array(0..<(r - 2)) + [r - 1, r - 2]), [v], role)
    }

    /// A gradient of the broadcast result's shape summed back to an operand's `target` shape
    /// (NumPy broadcasting in reverse).
    public func unbroadcast(_ g: ValueID, to target: [Int], _ role: String) throws -> ValueID {
        let gShape = shape(g)
        guard gShape != target else { return g }
        let padded = Array(repeating: 1, count: gShape.count - target.count) + target
        let axes = gShape.indices.filter { padded[$0] == 1 && gShape[$0] != 1 }
        let summed = axes.isEmpty ? g : try add(.reduce(.sum, axes: axes, keepDims: true), [g], role + "_sum")
        return try reshape(summed, to: target, role)
    }
}
