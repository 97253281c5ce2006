import Foundation

/// The graph for other tools: Graphviz DOT, and JSON.
extension Graph {
    /// DOT: one box per node (name, op, shape), edges from operands; inputs and constants drawn apart.
    public func dot(outputs: [(name: String, value: ValueID)] = []) -> String {
        // Escapes backslashes and quotes; a newline becomes DOT's \n line break.
        func quoted(_ s: String) -> String {
            "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n") + "\""
        }
        var lines = ["digraph lathe {", "  rankdir=TB;", "  node [shape=box, fontname=\"Helvetica\", fontsize=10];"]
        for node in nodes {
            let style: String
            switch node.op {
            case .input: style = ", style=filled, fillcolor=\"#d8e8ff\""
            case .constant: style = ", style=filled, fillcolor=\"#eeeeee\""
            default: style = ""
            }
            lines.append("  n\(node.id.index) [label=\(quoted("\(node.name)\n\(node.op.name) \(node.type)"))\(style)];")
            for operand in node.operands { lines.append("  n\(operand.index) -> n\(node.id.index);") }
        }
        for (i, output) in outputs.enumerated() {
            lines.append("  out\(i) [label=\(quoted(output.name)), shape=ellipse];")
            lines.append("  n\(output.value.index) -> out\(i);")
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    struct ExportedNode: Codable {
        let id: Int
        let name: String
        let op: String
        let attributes: String
        let operands: [Int]
        let dtype: String
        let shape: [Int]
        let location: String?
    }

    struct ExportedGraph: Codable {
        let nodes: [ExportedNode]
        let outputs: [String: Int]
    }

    /// JSON: {"nodes": [{id, name, op, attributes, operands, dtype, shape, location}], "outputs": {name: id}}.
    public func json(outputs: [(name: String, value: ValueID)] = []) -> String {
        let exported = ExportedGraph(
            nodes: nodes.map { n in
                ExportedNode(id: n.id.index, name: n.name, op: n.op.name, attributes: n.op.attributeText, operands: n.operands.map(\.index),
                             dtype: n.type.dtype.rawValue, shape: n.type.shape, location: n.location.isKnown ? n.location.description : nil)
            },
            outputs: Dictionary(outputs.map { ($0.name, $0.value.index) }, uniquingKeysWith: { a, _ in a }))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? encoder.encode(exported)) ?? Data(), as: UTF8.self) + "\n"
    }
}
