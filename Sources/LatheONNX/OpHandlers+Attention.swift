import Foundation
import LatheIR

/// ONNX's Attention (opsets 23 and 24), written with the IR's own ops as ONNX's function body
/// defines it: Q, K and V in [batch, heads, sequence, head size] (3-D ones split into
/// q_num_heads and kv_num_heads heads first); the past keys and values joined before the new
/// ones (present_key, present_value); an additive bias from attn_mask (a bool mask allows where
/// true, and is padded with false up to the keys' length, a float one with -inf), is_causal and
/// the windows of opset 25 (key j is seen from query i by its distance from i + an offset: the
/// past's length, or, with nonpad_kv_seqlen and no past, nonpad_kv_seqlen[b] - the queries'
/// length) and nonpad_kv_seqlen (keys at or past it unseen); grouped-query heads each repeated for their group; then softmax((Q sqrt(scale))
/// (K sqrt(scale))^T, softcapped, plus the bias) V, a query that sees no key getting zeros. qk_matmul_output_mode picks the fourth output:
/// the scores (0, and 1, softcapped), with the bias (2), or after softmax (3).
extension OpHandlers {
    static let attention: [String: Handler] = ["Attention": attention, "RotaryEmbedding": rotaryEmbedding]

    static func attention(_ c: ImportContext) throws -> [ImportedValue] {
        var (q, k, v) = (try c.required(0), try c.required(1), try c.required(2))
        let rank = c.shape(q).count
        guard rank == 3 || rank == 4, c.shape(k).count == rank, c.shape(v).count == rank else {
            throw c.fail("takes Q, K and V all of rank 3 or all of rank 4, got \(c.shape(q)), \(c.shape(k)), \(c.shape(v))")
        }
        let type = c.dtype(q)
        if rank == 3 {
            let (qHeads, kvHeads) = (c.node.int("q_num_heads", 0), c.node.int("kv_num_heads", 0))
            guard qHeads > 0, kvHeads > 0 else { throw c.fail("has 3-D inputs, which need q_num_heads and kv_num_heads") }
            (q, k, v) = (try splitHeads(q, qHeads, "q", c), try splitHeads(k, kvHeads, "k", c), try splitHeads(v, kvHeads, "v", c))
        }
        let (batch, qLength) = (c.shape(q)[0], c.shape(q)[2])
        let past = try c.input(4)
        if let past { k = try c.apply(.concat(axis: 2), [past, k], name: "present_key") }
        if let pastValue = try c.input(5) { v = try c.apply(.concat(axis: 2), [pastValue, v], name: "present_value") }
        let (presentKey, presentValue) = (k, v)
        let kvLength = c.shape(k)[2]
        let pastLength = past.map { c.shape($0)[2] } ?? 0

        var bias: ImportedValue?
        func add(_ term: ImportedValue) throws {
            bias = try bias.map { try c.apply(.binary(.add), [$0, term], name: "bias") } ?? term
        }
        if let mask = try c.input(3) {
            try add(try maskBias(mask, kvLength: kvLength, type: type, c))
        }
        let nonpad = try c.input(6)
        let window = PositionWindow(causal: c.node.int("is_causal", 0) != 0, left: c.node.int("left_window_size", -1),
                                    right: c.node.int("right_window_size", -1))
        if window.limits {
            try add(try positionBias(window, qLength: qLength, kvLength: kvLength, pastLength: pastLength, nonpad: past == nil ? nonpad : nil,
                                     batch: batch, type: type, c))
        }
        if let nonpad {
            // Keys at positions >= nonpad_kv_seqlen[b] are padding.
            let positions = ImportedValue.constant(ConstantTensor(shape: [1, 1, 1, kvLength], ints: (0..<kvLength).map(Int64.init), dtype: .int64))
            let lengths = try reshape(try cast(nonpad, to: .int64, c), to: [batch, 1, 1, 1], c)
            let seen = try c.apply(.binary(.less), [positions, lengths], name: "nonpad")
            try add(try c.apply(.select, [seen, c.scalar(0, type), c.scalar(-.infinity, type)], name: "padding"))
        }

        let (qHeads, kvHeads) = (c.shape(q)[1], c.shape(k)[1])
        if qHeads != kvHeads {
            guard kvHeads > 0, qHeads % kvHeads == 0, c.shape(v)[1] == kvHeads else {
                throw c.fail("has \(qHeads) query heads, not a multiple of its \(kvHeads) key and \(c.shape(v)[1]) value heads")
            }
            (k, v) = (try repeatHeads(k, qHeads / kvHeads, "k", c), try repeatHeads(v, qHeads / kvHeads, "v", c))
        }

        let scale = c.node.attribute("scale").map { $0.f } ?? 1 / Float(c.shape(q)[3]).squareRoot()
        let root = c.scalar(scale.squareRoot(), type)
        let scaledQ = try c.apply(.binary(.mul), [q, root], name: "q_scaled")
        let scaledK = try c.apply(.binary(.mul), [try c.apply(.transpose(perm: [0, 1, 3, 2]), [k], name: "k_t"), root], name: "k_scaled")
        var scores = try c.apply(.matmul, [scaledQ, scaledK], name: "scores")
        let softcap = c.node.float("softcap", 0)
        if softcap > 0 {
            scores = try c.apply(.fusedElementwise(.const(softcap) * .unary(.tanh, .arg(0) / .const(softcap))), [scores], name: "softcapped")
        }
        let mode = c.node.int("qk_matmul_output_mode", 0)
        guard (0...3).contains(mode) else { throw c.fail("has qk_matmul_output_mode \(mode); ONNX's are 0 to 3") }
        var qkOutput = scores
        if let bias { scores = try c.apply(.binary(.add), [scores, bias], name: "biased") }
        if mode == 2 { qkOutput = scores }
        var weights = try c.apply(.softmax(axis: 3), [scores], name: "weights")
        if let bias {
            // A query that may see no key at all attends to nothing: weights 0, not softmax's NaN.
            let rank = c.shape(bias).count
            let widest = try c.apply(.reduce(.max, axes: [rank - 1], keepDims: true), [bias], name: "widest_bias")
            let blind = try c.apply(.binary(.equal), [widest, c.scalar(-.infinity, c.dtype(widest))], name: "sees_nothing")
            weights = try c.apply(.select, [blind, c.scalar(0, c.dtype(weights)), weights], name: "weights_seen")
        }
        if mode == 3 { qkOutput = weights }
        var y = try c.apply(.matmul, [weights, v], name: rank == 3 ? "heads" : nil)
        if rank == 3 {
            let heads = try c.apply(.transpose(perm: [0, 2, 1, 3]), [y], name: "heads_t")
            let shape = c.shape(heads)
            y = try reshape(heads, to: [shape[0], shape[1], shape[2] * shape[3]], c)
        }
        return [y, presentKey, presentValue, qkOutput]
    }

    /// [batch, sequence, heads * size] as [batch, heads, sequence, size].
    private static func splitHeads(_ x: ImportedValue, _ heads: Int, _ name: String, _ c: ImportContext) throws -> ImportedValue {
        let shape = c.shape(x)
        guard shape[2] % heads == 0 else { throw c.fail("has \(name) of width \(shape[2]), not a multiple of its \(heads) heads") }
        let split = try reshape(x, to: [shape[0], shape[1], heads, shape[2] / heads], c)
        return try c.apply(.transpose(perm: [0, 2, 1, 3]), [split], name: "\(name)_heads")
    }

    /// [batch, heads, sequence, size] with each head repeated `times` in a row (grouped-query
    /// attention: query head h reads key head h / times).
    private static func repeatHeads(_ x: ImportedValue, _ times: Int, _ name: String, _ c: ImportContext) throws -> ImportedValue {
        let shape = c.shape(x)
        let single = try reshape(x, to: [shape[0], shape[1], 1, shape[2], shape[3]], c)
        let repeated = try c.apply(.concat(axis: 2), Array(repeating: single, count: times), name: "\(name)_groups")
        return try reshape(repeated, to: [shape[0], shape[1] * times, shape[2], shape[3]], c)
    }

    /// attn_mask as a bias of Q's type: a bool mask 0 where true and -inf where false, a float one
    /// as it is; either padded with -inf along its last axis up to the keys' length.
    private static func maskBias(_ mask: ImportedValue, kvLength: Int, type: DType, _ c: ImportContext) throws -> ImportedValue {
        var bias = mask
        if c.dtype(mask) == .bool {
            bias = try c.apply(.select, [mask, c.scalar(0, type), c.scalar(-.infinity, type)], name: "mask_bias")
        } else if c.dtype(mask) != type {
            throw c.fail("has an attn_mask of \(c.dtype(mask).rawValue), neither bool nor Q's \(type.rawValue)")
        }
        let shape = c.shape(bias)
        guard let width = shape.last, width <= kvLength else {
            throw c.fail("has an attn_mask of shape \(shape), wider than the \(kvLength) keys")
        }
        guard width < kvLength else { return bias }
        var pads = Array(repeating: 0, count: shape.count * 2)
        pads[shape.count * 2 - 1] = kvLength - width
        return try c.apply(.pad(pads: pads, value: -.infinity), [bias], name: "mask_padded")
    }

    /// Which keys a query may see by position: with d = j - (i + offset), key j's distance
    /// from query i's absolute position, d <= 0 (is_causal), d <= right_window_size and
    /// -d <= left_window_size (each where set, not -1).
    struct PositionWindow {
        let causal: Bool
        let left: Int
        let right: Int
        var limits: Bool { causal || left >= 0 || right >= 0 }
        var upper: Int? { causal ? min(0, right >= 0 ? right : 0) : (right >= 0 ? right : nil) }
        var lower: Int? { left >= 0 ? -left : nil }
        func allows(_ d: Int) -> Bool { (upper.map { d <= $0 } ?? true) && (lower.map { d >= $0 } ?? true) }
    }

    /// 0 where query i may see key j, -inf where it may not. The offset is the past's length,
    /// a constant [q, kv] bias; or, with nonpad_kv_seqlen (an external cache), nonpad[b] - the
    /// queries' length, a [batch, 1, q, kv] bias computed as the model runs.
    private static func positionBias(_ window: PositionWindow, qLength: Int, kvLength: Int, pastLength: Int, nonpad: ImportedValue?,
                                     batch: Int, type: DType, _ c: ImportContext) throws -> ImportedValue {
        guard let nonpad else {
            var values: [Float] = []
            for i in 0..<qLength { for j in 0..<kvLength { values.append(window.allows(j - i - pastLength) ? 0 : -.infinity) } }
            let bias = ConstantTensor(shape: [qLength, kvLength], floats: values)
            return .constant(ConstantTensor(try bias.tensor.converted(to: type)))
        }
        // d = (j - i + qLength) - nonpad[b]
        var reach: [Int64] = []
        for i in 0..<qLength { for j in 0..<kvLength { reach.append(Int64(j - i + qLength)) } }
        let needed = ImportedValue.constant(ConstantTensor(shape: [1, 1, qLength, kvLength], ints: reach, dtype: .int64))
        let lengths = try reshape(try cast(nonpad, to: .int64, c), to: [batch, 1, 1, 1], c)
        let distance = try c.apply(.binary(.sub), [needed, lengths], name: "distance")
        var seen: ImportedValue?
        func require(_ condition: ImportedValue) throws {
            seen = try seen.map { try c.apply(.binary(.and), [$0, condition], name: "seen") } ?? condition
        }
        if let upper = window.upper {
            try require(try c.apply(.binary(.lessOrEqual), [distance, .constant(ConstantTensor(shape: [], ints: [Int64(upper)]))], name: "within_right"))
        }
        if let lower = window.lower {
            try require(try c.apply(.binary(.greaterOrEqual), [distance, .constant(ConstantTensor(shape: [], ints: [Int64(lower)]))], name: "within_left"))
        }
        guard let seen else { return c.scalar(0, type) }
        return try c.apply(.select, [seen, c.scalar(0, type), c.scalar(-.infinity, type)], name: "position_bias")
    }
}
