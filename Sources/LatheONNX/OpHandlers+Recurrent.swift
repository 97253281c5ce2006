import LatheIR

extension OpHandlers {
    static let recurrent: [String: Handler] = [
        "LSTM": { c in try recurrentLayer(.lstm, c) },
        "GRU": { c in try recurrentLayer(.gru, c) },
        "RNN": { c in try recurrentLayer(.rnn, c) },
    ]

    /// ONNX's LSTM (gates i, o, f, c), GRU (z, r, h) and RNN, with W [D, G*H, I], R [D, G*H, H]
    /// and B [D, 2*G*H] (Wb then Rb):
    ///   LSTM: gates = x_t W^T + h_{t-1} R^T + Wb + Rb;  c_t = f(f) c_{t-1} + f(i) g(c);  h_t = f(o) h(c_t)
    ///   GRU:  z, r = f(...);  n = g(x_t W_h^T + r (h_{t-1} R_h^T + Rb_h) + Wb_h)  (linear_before_reset;
    ///         else (r h_{t-1}) R_h^T);  h_t = (1 - z) n + z h_{t-1}
    ///   RNN:  h_t = f(x_t W^T + h_{t-1} R^T + Wb + Rb)
    /// The input's share of every step's gates, x W^T and its biases, is one product over all
    /// steps; the recurrence is one `recurrent` op a direction (one kernel:
    /// LatheCodegen/RecurrentKernel.swift).
    static func recurrentLayer(_ kind: RecurrentCell.Kind, _ c: ImportContext) throws -> [ImportedValue] {
        let n = c.node
        let gateCount = RecurrentCell(kind).gates
        // layout=1 is batch-first: X [B, T, I], states [B, D, H], Y [B, T, D, H]. The cell runs
        // time-first, so transpose on the way in and out.
        let batchFirst = n.int("layout", 0) != 0
        if n.attribute("clip") != nil { throw c.unsupported("clip is not supported") }
        if kind == .lstm {
            if n.int("input_forget", 0) != 0 { throw c.unsupported("input_forget is not supported") }
        }
        var x = try c.required(0)
        let w = try c.required(1), r = try c.required(2)
        if batchFirst { x = try c.apply(.transpose(perm: [1, 0, 2]), [x], name: "time_first") }
        let (xs, ws) = (c.shape(x), c.shape(w))
        guard xs.count == 3, ws.count == 3 else { throw c.fail("needs X [T, B, I] and W [D, \(gateCount)H, I]") }
        let (steps, batch, features) = (xs[0], xs[1], xs[2])
        let hidden = n.int("hidden_size", ws[1] / gateCount)
        guard ws[1] == gateCount * hidden, ws[2] == features else { throw c.fail("has W \(ws) for hidden_size \(hidden) and input \(xs)") }
        guard c.shape(r) == [ws[0], gateCount * hidden, hidden] else { throw c.fail("has R \(c.shape(r)), not [\(ws[0]), \(gateCount * hidden), \(hidden)]") }
        if let lengths = try c.constantInput(4, "sequence_lens"), lengths.intValues.contains(where: { $0 != steps }) {
            throw c.unsupported("sequences shorter than the input are not supported")
        }
        let direction = n.string("direction", "forward")
        guard ["forward", "reverse", "bidirectional"].contains(direction) else { throw c.fail("has direction '\(direction)'") }
        let directions = direction == "bidirectional" ? 2 : 1
        guard ws[0] == directions else { throw c.fail("has \(ws[0]) weight sets for direction \(direction)") }
        let activations = try recurrentActivations(kind, directions: directions, c)
        if let b = try c.input(3), c.shape(b) != [directions, 2 * gateCount * hidden] {
            throw c.fail("has B \(c.shape(b)), not [\(directions), \(2 * gateCount * hidden)]")
        }

        func pick(_ v: ImportedValue, _ d: Int, _ what: String) throws -> ImportedValue { try taken(v, axis: 0, at: d, c, name: "\(what)\(d)") }
        func part(_ v: ImportedValue, from: Int, to: Int, _ name: String) throws -> ImportedValue { try sliced(v, axis: 0, from: from, to: to, c, name: name) }
        func zeros(_ shape: [Int]) -> ImportedValue {
            .constant(ConstantTensor(shape: shape, floats: Array(repeating: 0, count: shape.reduce(1, *))))
        }

        let flatX = try reshape(x, to: [steps * batch, features], c)
        let columns = gateCount * hidden
        var outputs: [ImportedValue] = []
        var finalH: [ImportedValue] = [], finalC: [ImportedValue] = []
        for d in 0..<directions {
            let wT = try c.apply(.transpose(perm: [1, 0]), [try pick(w, d, "w")], name: "wT\(d)")
            let rT = try c.apply(.transpose(perm: [1, 0]), [try pick(r, d, "r")], name: "rT\(d)")
            // The input's share carries Wb, and Rb where it adds outside the recurrence (all but
            // a GRU's candidate, whose Rb_h the cell takes).
            var bias = zeros([columns]), candidateBias = zeros([hidden])
            if let b = try c.input(3) {
                let both = try pick(b, d, "b")
                let (wb, rb) = (try part(both, from: 0, to: columns, "wb\(d)"), try part(both, from: columns, to: 2 * columns, "rb\(d)"))
                if kind == .gru {
                    let gateBias = try c.apply(.concat(axis: 0), [try part(rb, from: 0, to: 2 * hidden, "rb_zr\(d)"), zeros([hidden])], name: "rb_gates\(d)")
                    bias = try c.apply(.binary(.add), [wb, gateBias], name: "bias\(d)")
                    candidateBias = try part(rb, from: 2 * hidden, to: columns, "rb_h\(d)")
                } else {
                    bias = try c.apply(.binary(.add), [wb, rb], name: "bias\(d)")
                }
            }
            func initial(_ i: Int, _ what: String) throws -> ImportedValue? {
                guard let state = try c.input(i) else { return nil }
                guard c.shape(state) == (batchFirst ? [batch, directions, hidden] : [directions, batch, hidden]) else {
                    throw c.fail("has an initial state shaped \(c.shape(state)) for \(directions) directions, batch \(batch), hidden \(hidden)")
                }
                return try pick(batchFirst ? try c.apply(.transpose(perm: [1, 0, 2]), [state], name: "\(what)t") : state, d, what)
            }
            let h0 = try initial(5, "h0_") ?? zeros([batch, hidden])
            // The input's share of every step's gates is one product; the recurrence is one kernel.
            let projected = try reshape(try c.apply(.dense, [flatX, wT, bias], name: "xw\(d)"), to: [steps, batch, columns], c)
            let reverse = d == 1 || direction == "reverse"
            let cell = RecurrentCell(kind, reverse: reverse, activations: activations[d], linearBeforeReset: n.int("linear_before_reset", 0) != 0)
            var extra: [ImportedValue]
            switch kind {
            case .lstm:
                extra = [try initial(6, "c0_") ?? zeros([batch, hidden])]
                if let p = try c.input(7) {
                    guard c.shape(p) == [directions, 3 * hidden] else { throw c.fail("has peepholes \(c.shape(p)), not [\(directions), \(3 * hidden)]") }
                    extra.append(try pick(p, d, "p"))
                }
            case .gru: extra = [candidateBias]
            case .rnn: extra = []
            }
            let states = try c.apply(.recurrent(cell), [projected, rT, h0] + extra, name: "\(kind.rawValue)\(d)")
            let statePlanes = kind == .lstm ? states : try reshape(states, to: [1, steps, batch, hidden], c)
            func state(_ k: Int, step: Int?, _ name: String) throws -> ImportedValue {
                let (first, last) = step.map { ($0, $0 + 1) } ?? (0, steps)
                let part = try c.apply(.slice(starts: [k, first, 0, 0], ends: [k + 1, last, batch, hidden], steps: [1, 1, 1, 1]), [statePlanes], name: name)
                return try reshape(part, to: step == nil ? [steps, 1, batch, hidden] : [batch, hidden], c)
            }
            let lastStep = reverse ? 0 : steps - 1
            outputs.append(try state(0, step: nil, "y\(d)"))
            finalH.append(try state(0, step: lastStep, "h\(d)"))
            if kind == .lstm { finalC.append(try state(1, step: lastStep, "c\(d)")) }
        }
        func stack(_ parts: [ImportedValue], _ name: String) throws -> ImportedValue {
            let expanded = try parts.map { try reshape($0, to: [1, batch, hidden], c) }
            return expanded.count == 1 ? expanded[0] : try c.apply(.concat(axis: 0), expanded, name: name)
        }
        // Y [T, D, B, H]: each step's directions side by side.
        let y = outputs.count == 1 ? outputs[0] : try c.apply(.concat(axis: 1), outputs, name: "y")
        let finals = [try stack(finalH, "y_h")] + (kind == .lstm ? [try stack(finalC, "y_c")] : [])
        guard batchFirst else { return [y] + finals }
        return [try c.apply(.transpose(perm: [2, 0, 1, 3]), [y], name: "y_batch_first")]
            + (try finals.enumerated().map { k, v in try c.apply(.transpose(perm: [1, 0, 2]), [v], name: k == 0 ? "y_h_batch_first" : "y_c_batch_first") })
    }

    /// The `activations` of each direction (ONNX's defaults when absent), with their alphas and
    /// betas taken in order by the functions that use them.
    private static func recurrentActivations(_ kind: RecurrentCell.Kind, directions: Int, _ c: ImportContext) throws -> [[UnaryFn]] {
        let defaults = kind.defaultActivations
        let names = c.node.attribute("activations")?.strings.map { String(decoding: $0, as: UTF8.self) } ?? []
        guard !names.isEmpty else { return Array(repeating: defaults, count: directions) }
        guard names.count == defaults.count * directions else {
            throw c.fail("has \(names.count) activations for \(directions) direction(s) of \(defaults.count)")
        }
        var alphas = c.node.attribute("activation_alpha")?.floats[...] ?? [], betas = c.node.attribute("activation_beta")?.floats[...] ?? []
        func take(_ list: inout ArraySlice<Float>, _ fallback: Float) -> Float { list.popFirst() ?? fallback }
        let functions = try names.map { name -> UnaryFn in
            switch name.lowercased() {
            case "sigmoid": return .sigmoid
            case "tanh": return .tanh
            case "relu": return .relu
            case "softsign": return .softsign
            case "softplus": return .softplus
            case "leakyrelu": return .leakyRelu(alpha: take(&alphas, 0.01))
            case "elu": return .elu(alpha: take(&alphas, 1))
            case "hardsigmoid": return .hardSigmoid(alpha: take(&alphas, 0.2), beta: take(&betas, 0.5))
            default: throw c.unsupported("the activation \(name) is not supported (Sigmoid, Tanh, Relu, Softsign, Softplus, LeakyRelu, Elu, HardSigmoid are)")
            }
        }
        return (0..<directions).map { Array(functions[($0 * defaults.count)..<(($0 + 1) * defaults.count)]) }
    }
}
