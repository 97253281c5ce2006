import Foundation

/// Layers of the transformer family over [batch, time, features] input.

/// Layer normalization over the last axis: (x - mean) / sqrt(var + epsilon) * gamma + beta.
public final class LayerNorm: Layer {
    public var trainable = true
    public let epsilon: Float
    public private(set) var gamma: HostTensor?
    public private(set) var beta: HostTensor?
    let location: SourceLocation

    public init(epsilon: Float = 1e-3, gamma: HostTensor? = nil, beta: HostTensor? = nil, fileID: String = #fileID, line: Int = #line) {
        self.epsilon = epsilon
        self.gamma = gamma
        self.beta = beta
        location = SourceLocation(fileID: fileID, line: line)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard x.rank >= 1 else { throw LatheError.shapeMismatch(op: "layer_norm", shapes: [x.shape], reason: "LayerNorm needs an axis", location: location) }
        let d = x.shape[x.rank - 1]
        if let gamma { try checkWeight(gamma, [d], "gamma", "layer_norm", location) } else { gamma = HostTensor(shape: [d], repeating: 1) }
        if let beta { try checkWeight(beta, [d], "beta", "layer_norm", location) } else { beta = HostTensor(shape: [d]) }
        let g = x.graph, name = g.freshName("layernorm")
        let scale = g.parameter(gamma!, name: "\(name).gamma", trainable: trainable, location, penalized: false, current: { [weak self] in self?.gamma }) { [weak self] in self?.gamma = $0 }
        let shift = g.parameter(beta!, name: "\(name).beta", trainable: trainable, location, penalized: false, current: { [weak self] in self?.beta }) { [weak self] in self?.beta = $0 }
        guard g.isTraining else { return try x.apply(.layerNorm(axis: x.rank - 1, epsilon: epsilon), [scale, shift], name: name, location) }
        // For training, the ops autodiff differentiates (the inference pass fuses them back).
        let normalized = try x.standardized(axes: [x.rank - 1], epsilon: epsilon, name: name, location).normalized
        return try normalized.multiplied(by: scale, fileID: location.fileID, line: location.line).adding(shift, fileID: location.fileID, line: location.line)
    }
}

/// Looks up a vector per id: input [batch, time] of token ids, output [batch, time, dimension].
/// Ids of an integer type (i64, i32: what tokenizers give) are checked as the model runs: one
/// outside -vocabulary..<vocabulary is LatheError.indexOutOfRange naming the layer, a negative
/// one counts from the end (ONNX's Gather). Whole-number ids as f32 are clamped into range.
///
///     let ids = try g.input("input_ids", dtype: .int64, shape: [1, 16])
///     let vectors = try Embedding(vocabulary: 1000, dimension: 64)(ids)      // f32 [1, 16, 64]
public final class Embedding: Layer {
    public var trainable = true
    public let vocabulary: Int
    public let dimension: Int
    public private(set) var table: HostTensor?
    let location: SourceLocation

    public init(vocabulary: Int, dimension: Int, table: HostTensor? = nil, fileID: String = #fileID, line: Int = #line) {
        self.vocabulary = vocabulary
        self.dimension = dimension
        self.table = table
        location = SourceLocation(fileID: fileID, line: line)
    }

    public func callAsFunction(_ ids: Tensor) throws -> Tensor {
        guard vocabulary > 0, dimension > 0 else {
            throw LatheError.invalidAttribute(op: "embedding", reason: "vocabulary and dimension must be positive", location: location)
        }
        if let table { try checkWeight(table, [vocabulary, dimension], "table", "embedding", location) } else {
            // Keras' default: uniform in ±0.05.
            var t = HostTensor(shape: [vocabulary, dimension])
            for i in t.scalars.indices { t.scalars[i] = Float.random(in: -0.05...0.05, using: &ids.graph.random) }
            table = t
        }
        let name = ids.graph.freshName("embedding")
        let lookup = ids.graph.parameter(table!, name: "\(name).table", trainable: trainable, location, current: { [weak self] in self?.table }) { [weak self] in self?.table = $0 }
        return try lookup.apply(.gather(axis: 0), [ids], name: name, location)
    }
}

/// Multi-head self-attention (Keras' MultiHeadAttention with query = key = value):
/// per head, softmax(q k^T / sqrt(keyDim)) v, then one output projection back to the model
/// width. `causal` masks each position from the ones after it; a padding mask [batch, time]
/// (bool, or integers as `transformers`' attention_mask: non-zero for a token, 0 for padding)
/// keeps every position from attending to padding.
///
///     let attended = try MultiHeadAttention(heads: 4, keyDim: 16)(x, paddingMask: mask)
public final class MultiHeadAttention: Layer {
    /// Sets its projections' too.
    public var trainable = true {
        didSet { for projection in projections + (output.map { [$0] } ?? []) { projection.trainable = trainable } }
    }
    public let heads: Int
    public let keyDim: Int
    public let causal: Bool
    let projections: [Dense]
    let location: SourceLocation

    public init(heads: Int, keyDim: Int, causal: Bool = false, fileID: String = #fileID, line: Int = #line) {
        self.heads = heads
        self.keyDim = keyDim
        self.causal = causal
        location = SourceLocation(fileID: fileID, line: line)
        projections = (0..<3).map { _ in Dense(heads * keyDim, fileID: fileID, line: line) }
    }

    private var output: Dense?

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try callAsFunction(x, paddingMask: nil) }

    public func callAsFunction(_ x: Tensor, paddingMask: Tensor?) throws -> Tensor {
        try x.checkSequence("multi_head_attention", location)
        guard heads > 0, keyDim > 0 else {
            throw LatheError.invalidAttribute(op: "multi_head_attention", reason: "heads and keyDim must be positive", location: location)
        }
        let (batch, steps, width) = (x.shape[0], x.shape[1], x.shape[2])
        let g = x.graph, name = g.freshName("attention")
        // [batch, time, heads x keyDim] -> [batch, heads, time, keyDim]
        func split(_ t: Tensor, _ role: String) throws -> Tensor {
            try t.apply(.reshape(shape: [batch, steps, heads, keyDim]), [], name: "\(name).\(role)_heads", location)
                .apply(.transpose(perm: [0, 2, 1, 3]), [], name: "\(name).\(role)", location)
        }
        let q = try split(try projections[0](x), "q"), k = try split(try projections[1](x), "k"), v = try split(try projections[2](x), "v")
        let keysT = try k.apply(.transpose(perm: [0, 1, 3, 2]), [], name: "\(name).kT", location)
        let scale = g.constant(HostTensor(shape: [], repeating: 1 / Float(keyDim).squareRoot()), name: "\(name).scale", fileID: location.fileID, line: location.line)
        var scores = try q.apply(.matmul, [keysT], name: "\(name).qk", location).apply(.binary(.mul), [scale], name: "\(name).scores", location)
        if causal {
            var mask = HostTensor(shape: [steps, steps])
            for i in 0..<steps { for j in (i + 1)..<max(steps, i + 1) { mask.scalars[i * steps + j] = -1e9 } }
            let maskConstant = g.constant(mask, name: "\(name).mask", fileID: location.fileID, line: location.line)
            scores = try scores.apply(.binary(.add), [maskConstant], name: "\(name).masked", location)
        }
        if let paddingMask {
            guard paddingMask.shape == [batch, steps] else {
                throw LatheError.shapeMismatch(op: "multi_head_attention", shapes: [x.shape, paddingMask.shape],
                                               reason: "the padding mask must be [batch, time] = [\(batch), \(steps)]", location: location)
            }
            // 0 where a key is a token, -1e9 where it is padding, for every head and query.
            let keep = paddingMask.type.dtype == .bool ? paddingMask : try paddingMask.apply(.cast(to: .bool), [], name: "\(name).keep", location)
            let bias = try keep.apply(.select, [g.scalar(0, fileID: location.fileID, line: location.line), g.scalar(-1e9, fileID: location.fileID, line: location.line)],
                                      name: "\(name).padding", location)
                .apply(.reshape(shape: [batch, 1, 1, steps]), [], name: "\(name).padding_bias", location)
            scores = try scores.apply(.binary(.add), [bias], name: "\(name).unpadded", location)
        }
        let weights = try scores.apply(.softmax(axis: 3), [], name: "\(name).weights", location)
        let context = try weights.apply(.matmul, [v], name: "\(name).context", location)
            .apply(.transpose(perm: [0, 2, 1, 3]), [], name: "\(name).merge", location)
            .apply(.reshape(shape: [batch, steps, heads * keyDim]), [], name: "\(name).merged", location)
        if output == nil {
            output = Dense(width, fileID: location.fileID, line: location.line)
            output?.trainable = trainable
        }
        return try output!(context)
    }
}
