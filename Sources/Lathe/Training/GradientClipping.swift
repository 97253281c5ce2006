/// Gradients bounded before the optimizer sees them, inside the compiled step (Keras'
/// clipvalue and global_clipnorm; PyTorch's clip_grad_value_ and clip_grad_norm_).
public enum GradientClipping: Sendable, Hashable {
    /// Each gradient element into [-limit, limit].
    case value(Float)
    /// Every gradient times min(1, limit / n), n the L2 norm of all of them together: the
    /// direction kept, the length at most `limit`.
    case globalNorm(Float)

    /// The clipped `gradients` of `graph`, as nodes after them.
    func clipped(_ gradients: [ValueID], in graph: Graph) throws -> [ValueID] {
        switch self {
        case let .value(limit):
            let bound = abs(limit)
            return try gradients.map { g in
                try graph.addNode(.fusedElementwise(.min(.max(.arg(0), .const(-bound)), .const(bound))), [g], name: "\(graph[g].name).clipped")
            }
        case let .globalNorm(limit):
            guard !gradients.isEmpty else { return [] }
            let bound = abs(limit)
            var total = ValueID(-1)
            for (k, g) in gradients.enumerated() {
                let squares = try graph.addNode(.fusedElementwise(.arg(0) * .arg(0)), [g], name: "\(graph[g].name).squares")
                let sum = try graph.addNode(.reduce(.sum, axes: Array(0..<graph[g].type.shape.count), keepDims: false), [squares], name: "\(graph[g].name).square_sum")
                total = k == 0 ? sum : try graph.addNode(.binary(.add), [total, sum], name: "\(graph[g].name).norm_sum")
            }
            // limit / max(n, limit): 1 while the norm is within the limit.
            let scale = try graph.addNode(.fusedElementwise(.const(bound) / .max(.unary(.sqrt, .arg(0)), .const(bound))), [total], name: "gradient_clip_scale")
            return try gradients.map { g in try graph.addNode(.binary(.mul), [g, scale], name: "\(graph[g].name).clipped") }
        }
    }
}
