/// Rebuilds a graph node by node into a new one, which is how passes change a graph: SSA values
/// are never edited in place. A pass walks the source nodes in order and, for each, either
/// copies it (`copy`) or maps it to something else it adds (`map(_:to:)`). Names and source
/// locations, and the source ops a fused node holds, carry over.
public final class GraphRewrite {
    public let source: Graph
    public let target: Graph
    private var mapping: [ValueID?]

    public init(_ source: Graph) {
        self.source = source
        target = Graph()
        target.random = source.random
        mapping = Array(repeating: nil, count: source.nodes.count)
    }

    /// The new value that stands for a source value.
    public func mapped(_ v: ValueID) throws -> ValueID {
        guard v.index < mapping.count, let m = mapping[v.index] else {
            throw LatheError.invalidGraph(node: "\(v)", reason: "a pass used it before rewriting it")
        }
        return m
    }

    public func map(_ v: ValueID, to new: ValueID) { mapping[v.index] = new }

    /// Adds the node to the target unchanged but for its operands, which are the mapped ones.
    @discardableResult
    public func copy(_ node: Node) throws -> ValueID {
        let new: ValueID
        switch node.op {
        case .input:
            new = try target.addInput(name: node.name, shape: node.type.shape, dtype: node.type.dtype, location: node.location)
        case let .constant(slot):
            new = target.addConstant(source.constants[slot], name: node.name, location: node.location)
        case let .variable(slot):
            new = target.addVariable(source.constants[slot], name: node.name, location: node.location)
        default:
            new = try target.addNode(node.op, try node.operands.map(mapped), name: node.name, location: node.location, sourceOps: node.sourceOps)
        }
        map(node.id, to: new)
        return new
    }

    /// Adds a constant, with the name and location of the node it replaces.
    public func constant(_ value: HostTensor, replacing node: Node) -> ValueID {
        target.addConstant(value, name: node.name, location: node.location)
    }

    /// The constant data of a target value, if it is a constant.
    public func constantValue(_ v: ValueID) -> HostTensor? {
        if case let .constant(slot) = target[v].op { return target.constants[slot] }
        return nil
    }

    /// The rewritten outputs.
    public func finish(outputs: [ValueID]) throws -> (graph: Graph, outputs: [ValueID]) {
        (target, try outputs.map(mapped))
    }
}

extension Graph {
    /// Which nodes the outputs and the assigns need.
    public func liveNodes(outputs: [ValueID]) -> [Bool] {
        var live = [Bool](repeating: false, count: nodes.count)
        for v in outputs where contains(v) { live[v.index] = true }
        for node in nodes where node.op == .assign { live[node.id.index] = true }
        for node in nodes.reversed() where live[node.id.index] { for operand in node.operands { live[operand.index] = true } }
        return live
    }

    /// How many times each value is read by nodes the outputs need (dead readers, which a pass
    /// may leave for dead-code elimination, do not count), and once more for each output it is.
    public func useCounts(outputs: [ValueID]) -> [Int] {
        let live = liveNodes(outputs: outputs)
        var counts = [Int](repeating: 0, count: nodes.count)
        for node in nodes where live[node.id.index] { for operand in node.operands { counts[operand.index] += 1 } }
        for v in outputs where contains(v) { counts[v.index] += 1 }
        return counts
    }

    public func constantValue(_ v: ValueID) -> HostTensor? {
        if case let .constant(slot) = self[v].op { return constants[slot] }
        return nil
    }
}
