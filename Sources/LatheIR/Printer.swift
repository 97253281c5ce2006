/// The IR as text, one node a line:
///
///     %3 = conv2d(%0, %1, %2) {strides=[1,1], ...} : f32[1,32,26,26]  # conv1  (model.swift:12)
extension Graph {
    public func text(outputs: [(name: String, value: ValueID)] = []) -> String {
        var lines: [String] = []
        let width = String(nodes.count).count + 1
        for node in nodes {
            let lhs = "\(node.id)".padding(toLength: width, withPad: " ", startingAt: 0)
            var line = "\(lhs) = \(node.op.name)"
            if !node.operands.isEmpty { line += "(" + node.operands.map(\.description).joined(separator: ", ") + ")" }
            let attributes = node.op.attributeText
            if !attributes.isEmpty { line += " {\(attributes)}" }
            line += " : \(node.type)"
            var comment = [node.name]
            if node.location.isKnown { comment.append("(\(node.location))") }
            line += "  # " + comment.joined(separator: "  ")
            lines.append(line)
        }
        for (name, value) in outputs { lines.append("output \"\(name)\" = \(value)") }
        return lines.joined(separator: "\n") + "\n"
    }
}
