import Lathe

extension Examples {
    /// One transformer encoder layer (post-norm, as in "Attention Is All You Need"):
    /// x + attention(x), normalized; then + a two-layer feed-forward network, normalized.
    public static let transformerEncoder = ExampleModel(name: "transformer-encoder",
                                                        summary: "self-attention (4 heads) + feed-forward, each with residual and LayerNorm; 16 tokens x 64; batch 2",
                                                        defaultBatch: 2) { g, batch in
        let tokens = try g.input("tokens", shape: [batch, 16, 64])
        let attention = MultiHeadAttention(heads: 4, keyDim: 16)
        let feedForward = Sequential {
            Dense(256, activation: .gelu)
            Dense(64)
        }
        let (norm1, norm2) = (LayerNorm(), LayerNorm())
        let attended = try norm1(try tokens + attention(tokens))
        let encoded = try norm2(try attended + feedForward(attended))
        return [("encoded", encoded)]
    }
}
