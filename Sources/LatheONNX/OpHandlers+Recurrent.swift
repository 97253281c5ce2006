import LatheIR

extension OpHandlers {
    static let recurrent: [String: Handler] = ["LSTM": lstm]

    /// ONNX LSTM (gates in the order input, output, forget, cell):
    ///   gates_t = x_t W^T + h_{t-1} R^T + Wb + Rb
    ///   c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g);   h_t = sigmoid(o) * tanh(c_t)
    /// The input's share of every step's gates, x W^T + Wb + Rb, is one product over all steps;
    /// the recurrence is one `lstm` op a direction (one kernel: LatheCodegen/RecurrentKernel.swift).
    static func lstm(_ c: ImportContext) throws -> [ImportedValue] {
        let n = c.node
        // layout=1 is batch-first: X [B, T, I], states [B, D, H], Y [B, T, D, H]. The cell runs
        // time-first, so transpose on the way in and out.
        let batchFirst = n.int("layout", 0) != 0
        if n.attribute("clip") != nil || n.int("input_forget", 0) != 0 { throw c.unsupported("clip and input_forget are not supported") }
        if let activations = n.attribute("activations"), activations.strings.map({ String(decoding: $0, as: UTF8.self) }) != ["Sigmoid", "Tanh", "Tanh"]
            && !activations.strings.isEmpty {
            throw c.unsupported("only the default activations (Sigmoid, Tanh, Tanh) are supported")
        }
        if try c.input(7) != nil { throw c.unsupported("peephole weights are not supported") }
        var x = try c.required(0)
        let w = try c.required(1), r = try c.required(2)
        if batchFirst { x = try c.apply(.transpose(perm: [1, 0, 2]), [x], name: "time_first") }
        let (xs, ws) = (c.shape(x), c.shape(w))
        guard xs.count == 3, ws.count == 3 else { throw c.fail("needs X [T, B, I] and W [D, 4H, I]") }
        let (steps, batch, features) = (xs[0], xs[1], xs[2])
        let hidden = n.int("hidden_size", ws[1] / 4)
        guard ws[1] == 4 * hidden else { throw c.fail("has W with \(ws[1]) rows for hidden_size \(hidden)") }
        if let lengths = try c.constantInput(4, "sequence_lens"), lengths.intValues.contains(where: { $0 != steps }) {
            throw c.unsupported("sequences shorter than the input are not supported")
        }
        let direction = n.string("direction", "forward")
        let directions = direction == "bidirectional" ? 2 : 1
        guard ws[0] == directions else { throw c.fail("has \(ws[0]) weight sets for direction \(direction)") }

        func pick(_ v: ImportedValue, _ d: Int, _ what: String) throws -> ImportedValue {
            var shape = c.shape(v)
            var (s, e) = (Array(repeating: 0, count: shape.count), shape)
            (s[0], e[0]) = (d, d + 1)
            let one = try c.apply(.slice(starts: s, ends: e, steps: Array(repeating: 1, count: shape.count)), [v], name: "\(what)\(d)")
            shape.removeFirst()
            return try reshape(one, to: shape, c)
        }
        func columns(_ v: ImportedValue, _ k: Int, _ name: String) throws -> ImportedValue {
            try c.apply(.slice(starts: [0, k * hidden], ends: [batch, (k + 1) * hidden], steps: [1, 1]), [v], name: name)
        }

        let flatX = try reshape(x, to: [steps * batch, features], c)
        var outputs: [ImportedValue] = []
        var finalH: [ImportedValue] = [], finalC: [ImportedValue] = []
        for d in 0..<directions {
            let wT = try c.apply(.transpose(perm: [1, 0]), [try pick(w, d, "w")], name: "wT\(d)")
            let rT = try c.apply(.transpose(perm: [1, 0]), [try pick(r, d, "r")], name: "rT\(d)")
            var bias: ImportedValue = .constant(ConstantTensor(shape: [4 * hidden], floats: Array(repeating: 0, count: 4 * hidden)))
            if let b = try c.input(3) {
                let both = try pick(b, d, "b")
                let wb = try c.apply(.slice(starts: [0], ends: [4 * hidden], steps: [1]), [both], name: "wb\(d)")
                let rb = try c.apply(.slice(starts: [4 * hidden], ends: [8 * hidden], steps: [1]), [both], name: "rb\(d)")
                bias = try c.apply(.binary(.add), [wb, rb], name: "bias\(d)")
            }
            let zeros = ImportedValue.constant(ConstantTensor(shape: [batch, hidden], floats: Array(repeating: 0, count: batch * hidden)))
            func initial(_ i: Int, _ what: String) throws -> ImportedValue? {
                guard let state = try c.input(i) else { return nil }
                return try pick(batchFirst ? try c.apply(.transpose(perm: [1, 0, 2]), [state], name: "\(what)t") : state, d, what)
            }
            let h0 = try initial(5, "h0_") ?? zeros
            let c0 = try initial(6, "c0_") ?? zeros
            // The input's share of every step's gates is one product; the recurrence is one kernel.
            let projected = try reshape(try c.apply(.dense, [flatX, wT, bias], name: "xw\(d)"), to: [steps, batch, 4 * hidden], c)
            let reverse = d == 1 || direction == "reverse"
            let states = try c.apply(.lstm(reverse: reverse), [projected, rT, h0, c0], name: "lstm\(d)")
            func state(_ k: Int, step: Int?, _ name: String) throws -> ImportedValue {
                let (first, last) = step.map { ($0, $0 + 1) } ?? (0, steps)
                let part = try c.apply(.slice(starts: [k, first, 0, 0], ends: [k + 1, last, batch, hidden], steps: [1, 1, 1, 1]), [states], name: name)
                return try reshape(part, to: step == nil ? [steps, 1, batch, hidden] : [batch, hidden], c)
            }
            let lastStep = reverse ? 0 : steps - 1
            outputs.append(try state(0, step: nil, "y\(d)"))
            finalH.append(try state(0, step: lastStep, "h\(d)"))
            finalC.append(try state(1, step: lastStep, "c\(d)"))
        }
        func stack(_ parts: [ImportedValue], _ name: String) throws -> ImportedValue {
            let expanded = try parts.map { try reshape($0, to: [1, batch, hidden], c) }
            return expanded.count == 1 ? expanded[0] : try c.apply(.concat(axis: 0), expanded, name: name)
        }
        // Y [T, D, B, H]: each step's directions side by side.
        let y = outputs.count == 1 ? outputs[0] : try c.apply(.concat(axis: 1), outputs, name: "y")
        let (yh, yc) = (try stack(finalH, "y_h"), try stack(finalC, "y_c"))
        guard batchFirst else { return [y, yh, yc] }
        return [try c.apply(.transpose(perm: [2, 0, 1, 3]), [y], name: "y_batch_first"),
                try c.apply(.transpose(perm: [1, 0, 2]), [yh], name: "y_h_batch_first"),
                try c.apply(.transpose(perm: [1, 0, 2]), [yc], name: "y_c_batch_first")]
    }
}
