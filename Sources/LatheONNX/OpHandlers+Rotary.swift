import LatheIR

extension OpHandlers {
    /// RotaryEmbedding (opset 23): the first `rotary_embedding_dim` features of each head (all
    /// by default) turn as complex numbers by the angle whose cosine and sine the caches hold for
    /// the token's position: with x1, x2 the two halves of those features (or the even and odd
    /// ones, `interleaved`),
    ///   real = cos x1 - sin x2,  imag = sin x1 + cos x2
    /// written back in their places. X is [B, N, S, H], or [B, S, N*H] with `num_heads`; the
    /// caches are [positions, rotary/2] read at `position_ids` [B, S], or [B, S, rotary/2]
    /// without them. Written with gather, slices, elementwise ops and concat.
    static func rotaryEmbedding(_ c: ImportContext) throws -> [ImportedValue] {
        let x = try c.required(0), cosCache = try c.required(1), sinCache = try c.required(2), positions = try c.input(3)
        let shape = c.shape(x)
        let work: ImportedValue, batch: Int, sequence: Int, head: Int, cosShape: [Int]
        switch shape.count {
        case 4:
            (batch, sequence, head) = (shape[0], shape[2], shape[3])
            work = x
            cosShape = [batch, 1, sequence]
        case 3:
            let heads = c.node.int("num_heads", 0)
            guard heads > 0, shape[2] % heads == 0 else { throw c.fail("has a 3-D input \(shape) and num_heads \(heads), which must divide its last axis") }
            (batch, sequence, head) = (shape[0], shape[1], shape[2] / heads)
            work = try reshape(x, to: [batch, sequence, heads, head], c)
            cosShape = [batch, sequence, 1]
        default:
            throw c.fail("needs a 3-D or 4-D input, not \(shape)")
        }
        let rotary = c.node.int("rotary_embedding_dim", 0) == 0 ? head : c.node.int("rotary_embedding_dim", 0)
        guard rotary > 0, rotary % 2 == 0, rotary <= head else { throw c.fail("rotates \(rotary) features of heads of \(head); an even number up to \(head)") }
        let half = rotary / 2
        let workShape = c.shape(work), last = workShape.count - 1

        func lastAxis(_ v: ImportedValue, from: Int, to: Int, step: Int = 1, _ name: String) throws -> ImportedValue {
            try sliced(v, axis: c.shape(v).count - 1, from: from, to: to, step: step, c, name: name)
        }
        func table(_ cache: ImportedValue, _ name: String) throws -> ImportedValue {
            var t = cache
            if let positions {
                guard c.shape(positions) == [batch, sequence], c.shape(cache).count == 2 else {
                    throw c.fail("has position_ids \(c.shape(positions)) and a \(name) cache \(c.shape(cache)); [\(batch), \(sequence)] and 2-D needed")
                }
                t = try c.apply(.gather(axis: 0), [cache, positions], name: "\(name)_at_positions")
            }
            let s = c.shape(t)
            guard s.count == 3, s[0] == batch, s[1] == sequence, s[2] >= half else {
                throw c.fail("has a \(name) table \(s) for batch \(batch), sequence \(sequence) and \(half) angles")
            }
            return try reshape(try lastAxis(t, from: 0, to: half, "\(name)_angles"), to: cosShape + [half], c)
        }
        let cos = try table(cosCache, "cos"), sin = try table(sinCache, "sin")
        let turned = try lastAxis(work, from: 0, to: rotary, "rotated_part")
        let interleaved = c.node.int("interleaved", 0) != 0
        let x1 = interleaved ? try lastAxis(turned, from: 0, to: rotary, step: 2, "x1") : try lastAxis(turned, from: 0, to: half, "x1")
        let x2 = interleaved ? try lastAxis(turned, from: 1, to: rotary, step: 2, "x2") : try lastAxis(turned, from: half, to: rotary, "x2")
        func product(_ a: ImportedValue, _ b: ImportedValue, _ name: String) throws -> ImportedValue { try c.apply(.binary(.mul), [a, b], name: name) }
        let real = try c.apply(.binary(.sub), [try product(cos, x1, "cos_x1"), try product(sin, x2, "sin_x2")], name: "real")
        let imag = try c.apply(.binary(.add), [try product(sin, x1, "sin_x1"), try product(cos, x2, "cos_x2")], name: "imag")
        var rotated: ImportedValue
        if interleaved {
            let pairShape = Array(c.shape(real)) + [1]
            let pairs = try c.apply(.concat(axis: last + 1), [try reshape(real, to: pairShape, c), try reshape(imag, to: pairShape, c)], name: "pairs")
            rotated = try reshape(pairs, to: Array(workShape.dropLast()) + [rotary], c)
        } else {
            rotated = try c.apply(.concat(axis: last), [real, imag], name: "halves")
        }
        if rotary < head {
            rotated = try c.apply(.concat(axis: last), [rotated, try lastAxis(work, from: rotary, to: head, "kept")], name: "with_kept")
        }
        return [shape.count == 3 ? try reshape(rotated, to: shape, c) : rotated]
    }
}
