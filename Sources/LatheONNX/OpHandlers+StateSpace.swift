import LatheIR

/// The ops of recurrent decoders that carry a state (ONNX opsets 27-28): LinearAttention,
/// CausalConvWithState and TensorScatter (a KV cache's write), and SwiGLU, as ONNX's reference
/// computes them, written with the IR's ops:
///
/// - LinearAttention unrolls its time steps (their number is known from the shapes): per step,
///   the state [B, H_kv, d_k, d_v] decays (gated: times exp(decay)), is corrected toward the
///   value (delta: v <- beta (v - k S)), gains k^T v, and each query head reads q S (its group's
///   kv head), scaled; the outputs are [B, T, H_q d_v] and the last state.
/// - CausalConvWithState is a depthwise 1-D convolution over the past state (or zeros) joined
///   before the input, with SiLU on request; the state out is the joined sequence's last k - 1.
/// - TensorScatter writes the update into the cache along `axis` from each batch row's write
///   index (modulo the cache's length when circular): a scatter_elements.
extension OpHandlers {
    static let stateSpace: [String: Handler] = [
        "LinearAttention": linearAttention,
        "CausalConvWithState": causalConvWithState,
        "TensorScatter": tensorScatter,
        "SwiGLU": { c in
            let a = try c.required(0), b = try c.required(1)
            guard c.shape(a) == c.shape(b) else { throw c.fail("needs A and B of one shape, not \(c.shape(a)) and \(c.shape(b))") }
            let alpha = ScalarExpr.const(c.node.float("alpha", 1))
            return [try c.apply(.fusedElementwise(.arg(0) / (.const(1) + .exp(-(alpha * .arg(0)))) * .arg(1)), [a, b])]
        },
    ]

    private static func linearAttention(_ c: ImportContext) throws -> [ImportedValue] {
        let query = try c.required(0), key = try c.required(1), value = try c.required(2)
        let (qHeads, kvHeads) = (c.node.int("q_num_heads", 0), c.node.int("kv_num_heads", 0))
        guard qHeads > 0, kvHeads > 0, qHeads % kvHeads == 0 else { throw c.fail("has q_num_heads \(qHeads) and kv_num_heads \(kvHeads); a positive multiple of it needed") }
        let rule = c.node.string("update_rule", "gated_delta")
        guard ["linear", "gated", "delta", "gated_delta"].contains(rule) else { throw c.fail("has update_rule '\(rule)'") }
        let (gated, delta) = (rule.hasPrefix("gated"), rule.hasSuffix("delta"))
        let (qs, ks, vs) = (c.shape(query), c.shape(key), c.shape(value))
        guard qs.count == 3, ks.count == 3, vs.count == 3, qs[2] % qHeads == 0, ks[2] % kvHeads == 0, vs[2] % kvHeads == 0,
              ks[0] == qs[0], vs[0] == qs[0], ks[1] == qs[1], vs[1] == qs[1] else {
            throw c.fail("needs query, key and value [B, T, heads * size], not \(qs), \(ks), \(vs)")
        }
        let (batch, steps, dk, dv) = (qs[0], qs[1], qs[2] / qHeads, vs[2] / kvHeads)
        guard ks[2] / kvHeads == dk else { throw c.fail("has keys of \(ks[2] / kvHeads) per head for queries of \(dk)") }
        let decay = try c.input(4), beta = try c.input(5)
        guard gated == (decay != nil), delta == (beta != nil) else { throw c.fail("with update_rule '\(rule)' \(gated ? "needs" : "takes no") decay and \(delta ? "needs" : "takes no") beta") }
        /// [B, T, heads * size] as [B, heads, T, size] in f32.
        func heads(_ v: ImportedValue, _ h: Int, _ name: String) throws -> ImportedValue {
            let s = c.shape(v)
            let split = try reshape(try cast(v, to: .float32, c), to: [s[0], s[1], h, s[2] / h], c)
            return try c.apply(.transpose(perm: [0, 2, 1, 3]), [split], name: name)
        }
        let q = try heads(query, qHeads, "q"), k = try heads(key, kvHeads, "k"), v = try heads(value, kvHeads, "v")
        let g = try decay.map { d -> ImportedValue in
            let last = c.shape(d).last ?? 0
            guard c.shape(d).count == 3, last == kvHeads || last == kvHeads * dk else { throw c.fail("has decay \(c.shape(d)); its last axis kv_num_heads or kv_num_heads * d_k") }
            return try heads(d, kvHeads, "decay")
        }
        let b = try beta.map { x -> ImportedValue in
            let last = c.shape(x).last ?? 0
            guard c.shape(x).count == 3, last == kvHeads || last == 1 else { throw c.fail("has beta \(c.shape(x)); its last axis kv_num_heads or 1") }
            return try heads(x, last, "beta")
        }
        let stateShape = [batch, kvHeads, dk, dv]
        var state: ImportedValue = .constant(ConstantTensor(shape: stateShape, floats: Array(repeating: 0, count: stateShape.reduce(1, *))))
        var stateType = c.dtype(query)
        if let past = try c.input(3) {
            guard c.shape(past) == stateShape else { throw c.fail("has past_state \(c.shape(past)), not \(stateShape)") }
            (state, stateType) = (try cast(past, to: .float32, c), c.dtype(past))
        }
        let given = c.node.float("scale", 0)
        let scale = given == 0 ? 1 / Float(dk).squareRoot() : given
        let group = qHeads / kvHeads
        let kvOfHead = ImportedValue.constant(ConstantTensor(shape: [qHeads], ints: (0..<qHeads).map { Int64($0 / group) }))
        /// Step t of a [B, heads, T, size] tensor, as [B, heads, 1, size].
        func step(_ x: ImportedValue, _ t: Int, _ name: String) throws -> ImportedValue { try sliced(x, axis: 2, from: t, to: t + 1, c, name: "\(name)\(t)") }
        func transposedLast(_ x: ImportedValue, _ name: String) throws -> ImportedValue { try c.apply(.transpose(perm: [0, 1, 3, 2]), [x], name: name) }
        var outputs: [ImportedValue] = []
        for t in 0..<steps {
            let kt = try step(k, t, "k"), qt = try step(q, t, "q")
            var vt = try step(v, t, "v")
            if let g {
                // exp(decay) along d_k (or one for the head), broadcast over d_v.
                state = try c.apply(.binary(.mul), [state, try transposedLast(try c.apply(.unary(.exp), [try step(g, t, "decay")], name: "exp_decay\(t)"), "decay_col\(t)")], name: "decayed\(t)")
            }
            if let b {
                let retrieved = try c.apply(.matmul, [kt, state], name: "retrieved\(t)")
                vt = try c.apply(.binary(.mul), [try step(b, t, "beta"), try c.apply(.binary(.sub), [vt, retrieved], name: "error\(t)")], name: "corrected\(t)")
            }
            state = try c.apply(.binary(.add), [state, try c.apply(.matmul, [try transposedLast(kt, "k_col\(t)"), vt], name: "outer\(t)")], name: "state\(t)")
            let read = group == 1 ? state : try c.apply(.gather(axis: 1), [state, kvOfHead], name: "state_read\(t)")
            outputs.append(try c.apply(.binary(.mul), [try c.apply(.matmul, [qt, read], name: "read\(t)"), c.scalar(scale)], name: "out\(t)"))
        }
        let stacked = outputs.count == 1 ? outputs[0] : try c.apply(.concat(axis: 2), outputs, name: "outputs")
        let output = try reshape(try c.apply(.transpose(perm: [0, 2, 1, 3]), [stacked], name: "outputs_t"), to: [batch, steps, qHeads * dv], c)
        return [try cast(output, to: c.dtype(query), c), try cast(state, to: stateType, c)]
    }

    private static func causalConvWithState(_ c: ImportContext) throws -> [ImportedValue] {
        let x = try c.required(0), w = try c.required(1)
        let (xs, ws) = (c.shape(x), c.shape(w))
        guard xs.count == 3, ws.count == 3, ws[0] == xs[1], ws[1] == 1, ws[2] >= 1 else {
            throw c.fail("needs input [B, C, L] and weights [C, 1, k], not \(xs) and \(ws)")
        }
        let (batch, channels, length, k) = (xs[0], xs[1], xs[2], ws[2])
        let activation = c.node.string("activation", "none")
        guard ["none", "silu", "swish"].contains(activation) else { throw c.fail("has activation '\(activation)'") }
        let past: ImportedValue
        if let given = try c.input(3) {
            guard c.shape(given) == [batch, channels, k - 1] else { throw c.fail("has past_state \(c.shape(given)), not \([batch, channels, k - 1])") }
            past = given
        } else {
            past = .constant(ConstantTensor(try HostTensor(shape: [batch, channels, k - 1], repeating: 0).converted(to: c.dtype(x))))
        }
        let joined = k == 1 ? x : try c.apply(.concat(axis: 2), [past, x], name: "joined")
        let conv = try c.apply(.conv2d(Conv2DAttributes(groups: channels)), [try addHeight(joined, c), try addHeight(w, c)] + (try c.input(2).map { [$0] } ?? []), name: "conv")
        var y = try removeHeight(conv, c)
        if activation != "none" { y = try c.apply(.fusedElementwise(.arg(0) / (.const(1) + .exp(-.arg(0)))), [y], name: "silu") }
        let state = try c.apply(.slice(starts: [0, 0, length], ends: [batch, channels, length + k - 1], steps: [1, 1, 1]), [joined], name: "present_state")
        return [y, state]
    }

    private static func tensorScatter(_ c: ImportContext) throws -> [ImportedValue] {
        let cache = try c.required(0), update = try c.required(1)
        let (cs, us) = (c.shape(cache), c.shape(update))
        let axis = try c.axis(c.node.int("axis", -2), rank: cs.count)
        guard cs.count == us.count, cs.count >= 2, axis > 0, cs.indices.allSatisfy({ $0 == axis ? us[$0] <= cs[$0] : us[$0] == cs[$0] }) else {
            throw c.fail("has cache \(cs) and update \(us) along axis \(axis)")
        }
        let mode = c.node.string("mode", "linear")
        guard mode == "linear" || mode == "circular" else { throw c.fail("has mode '\(mode)'") }
        var batchShape = Array(repeating: 1, count: cs.count), stepShape = batchShape
        batchShape[0] = cs[0]
        stepShape[axis] = us[axis]
        let starts = try c.input(2).map { try reshape(try cast($0, to: .int64, c), to: batchShape, c) }
            ?? .constant(ConstantTensor(shape: batchShape, ints: Array(repeating: 0, count: cs[0])))
        var positions = try c.apply(.binary(.add), [starts, .constant(ConstantTensor(shape: stepShape, ints: (0..<us[axis]).map(Int64.init)))], name: "positions")
        if mode == "circular" { positions = try c.apply(.binary(.mod), [positions, c.scalar(Float(cs[axis]), .int64)], name: "wrapped") }
        let indices = try broadcast(positions, to: us, c, name: "indices")
        return [try c.apply(.scatter(axis: axis, reduction: .none), [cache, indices, update])]
    }
}
