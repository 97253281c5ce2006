import LatheIR

/// Common-subexpression elimination: two nodes with the same op and the same (rewritten)
/// operands compute the same value, so the second maps to the first. Small constants with
/// equal data and element type merge too (exporters repeat scalars such as 0, 1 and epsilon).
public struct CommonSubexpressionElimination: GraphPass {
    public init() {}
    public var name: String { "eliminate-common-subexpressions" }
    public var summary: String { "merges nodes that compute the same value, and equal small constants" }

    static let mergedConstantSize = 64

    struct Key: Hashable {
        let op: Op
        let operands: [ValueID]
    }

    struct ConstantKey: Hashable {
        let shape: [Int]
        let dtype: DType
        let bytes: [UInt8]
    }

    public func run(_ graph: Graph, outputs: [ValueID]) throws -> (graph: Graph, outputs: [ValueID]) {
        let rewrite = GraphRewrite(graph)
        var seen: [Key: ValueID] = [:]
        var seenConstants: [ConstantKey: ValueID] = [:]
        for node in graph.nodes {
            switch node.op {
            case .input:
                try rewrite.copy(node)
            case let .constant(slot):
                let value = graph.constants[slot]
                guard value.count <= Self.mergedConstantSize else {
                    try rewrite.copy(node)
                    continue
                }
                let key = ConstantKey(shape: value.shape, dtype: value.dtype, bytes: value.rawBytes)
                if let existing = seenConstants[key] { rewrite.map(node.id, to: existing) } else { seenConstants[key] = try rewrite.copy(node) }
            default:
                let key = Key(op: node.op, operands: try node.operands.map { try rewrite.mapped($0) })
                if let existing = seen[key] { rewrite.map(node.id, to: existing) } else { seen[key] = try rewrite.copy(node) }
            }
        }
        return try rewrite.finish(outputs: outputs)
    }
}
