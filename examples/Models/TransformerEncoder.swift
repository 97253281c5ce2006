import Lathe

extension Examples {
    /// One transformer encoder layer (post-norm, as in "Attention Is All You Need") over token
    /// ids: each id's embedding plus a learned position's; x + attention(x), normalized, the
    /// padding masked out; then + a two-layer feed-forward network, normalized.
    public static let transformerEncoder = ExampleModel(name: "transformer-encoder",
                                                        summary: "token ids (vocabulary 1000) and a padding mask in; embeddings, self-attention (4 heads) + feed-forward, each with residual and LayerNorm; 16 tokens x 64; batch 2",
                                                        defaultBatch: 2) { g, batch in
        let ids = try g.input("input_ids", dtype: .int64, shape: [batch, 16])
        let mask = try g.input("attention_mask", dtype: .int64, shape: [batch, 16])
        let positions = g.constant(try HostTensor(shape: [16], values: (0..<16).map(Int64.init)), name: "positions")
        let tokens = try Embedding(vocabulary: 1000, dimension: 64)(ids) + Embedding(vocabulary: 16, dimension: 64)(positions)
        let attention = MultiHeadAttention(heads: 4, keyDim: 16)
        let feedForward = Sequential {
            Dense(256, activation: .gelu)
            Dense(64)
        }
        let (norm1, norm2) = (LayerNorm(), LayerNorm())
        let attended = try norm1(try tokens + attention(tokens, paddingMask: mask))
        let encoded = try norm2(try attended + feedForward(attended))
        return [("encoded", encoded)]
    }
}
