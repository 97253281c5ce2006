/// Elementwise and shape operations on symbolic tensors. Methods take the caller's #fileID
/// and #line; operators cannot, so their errors name the operands' origins instead.
extension Tensor {
    private func unary(_ fn: UnaryFn, _ fileID: String, _ line: Int) throws -> Tensor {
        try apply(.unary(fn), [], SourceLocation(fileID: fileID, line: line))
    }

    public func relu(fileID: String = #fileID, line: Int = #line) throws -> Tensor { try unary(.relu, fileID, line) }
    /// The tensor in element type `dtype`, converted as ONNX's Cast: `ids.cast(to: .float32)`.
    public func cast(to dtype: DType, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try apply(.cast(to: dtype), [], SourceLocation(fileID: fileID, line: line))
    }
    public func sigmoid(fileID: String = #fileID, line: Int = #line) throws -> Tensor { try unary(.sigmoid, fileID, line) }
    public func tanh(fileID: String = #fileID, line: Int = #line) throws -> Tensor { try unary(.tanh, fileID, line) }
    public func gelu(fileID: String = #fileID, line: Int = #line) throws -> Tensor { try unary(.gelu, fileID, line) }
    public func exp(fileID: String = #fileID, line: Int = #line) throws -> Tensor { try unary(.exp, fileID, line) }
    public func log(fileID: String = #fileID, line: Int = #line) throws -> Tensor { try unary(.log, fileID, line) }
    public func sqrt(fileID: String = #fileID, line: Int = #line) throws -> Tensor { try unary(.sqrt, fileID, line) }
    public func abs(fileID: String = #fileID, line: Int = #line) throws -> Tensor { try unary(.abs, fileID, line) }
    public func negated(fileID: String = #fileID, line: Int = #line) throws -> Tensor { try unary(.neg, fileID, line) }
    public func reciprocal(fileID: String = #fileID, line: Int = #line) throws -> Tensor { try unary(.reciprocal, fileID, line) }
    public func leakyRelu(alpha: Float = 0.01, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try unary(.leakyRelu(alpha: alpha), fileID, line)
    }
    public func clip(min: Float, max: Float, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try unary(.clip(min: min, max: max), fileID, line)
    }

    private func binary(_ fn: BinaryFn, _ other: Tensor, _ location: SourceLocation) throws -> Tensor {
        try apply(.binary(fn), [other], location)
    }

    public func adding(_ other: Tensor, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try binary(.add, other, SourceLocation(fileID: fileID, line: line))
    }
    public func subtracting(_ other: Tensor, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try binary(.sub, other, SourceLocation(fileID: fileID, line: line))
    }
    public func multiplied(by other: Tensor, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try binary(.mul, other, SourceLocation(fileID: fileID, line: line))
    }
    public func divided(by other: Tensor, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try binary(.div, other, SourceLocation(fileID: fileID, line: line))
    }
    public func pow(_ exponent: Tensor, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try binary(.pow, exponent, SourceLocation(fileID: fileID, line: line))
    }
    public func maximum(_ other: Tensor, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try binary(.max, other, SourceLocation(fileID: fileID, line: line))
    }
    public func minimum(_ other: Tensor, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try binary(.min, other, SourceLocation(fileID: fileID, line: line))
    }

    public static func + (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.add, b, .unknown) }
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.sub, b, .unknown) }
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.mul, b, .unknown) }
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.div, b, .unknown) }
    /// A number meets a tensor in the tensor's element type: `ids + 1` stays i64.
    public static func + (a: Tensor, b: Float) throws -> Tensor { try a + a.graph.scalar(b, dtype: a.type.dtype) }
    public static func - (a: Tensor, b: Float) throws -> Tensor { try a - a.graph.scalar(b, dtype: a.type.dtype) }
    public static func * (a: Tensor, b: Float) throws -> Tensor { try a * a.graph.scalar(b, dtype: a.type.dtype) }
    public static func / (a: Tensor, b: Float) throws -> Tensor { try a / a.graph.scalar(b, dtype: a.type.dtype) }
    public static func * (a: Float, b: Tensor) throws -> Tensor { try b.graph.scalar(a, dtype: b.type.dtype) * b }
    public static prefix func - (a: Tensor) throws -> Tensor { try a.apply(.unary(.neg), [], .unknown) }

    /// Batched matrix product with NumPy's rules.
    public func matmul(_ other: Tensor, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try apply(.matmul, [other], SourceLocation(fileID: fileID, line: line))
    }

    /// A new shape with the same elements; one dimension may be -1 and is then inferred.
    public func reshaped(_ shape: [Int], fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        let location = SourceLocation(fileID: fileID, line: line)
        var target = shape
        if let unknown = shape.firstIndex(of: -1) {
            let known = elementCount(shape.enumerated().filter { $0.offset != unknown }.map(\.element)) ?? 0
            guard known > 0, type.count % known == 0, shape.filter({ $0 == -1 }).count == 1 else {
                throw LatheError.shapeMismatch(op: "reshape", shapes: [self.shape], reason: "cannot infer the -1 in \(shape)", location: location)
            }
            target[unknown] = type.count / known
        }
        return try apply(.reshape(shape: target), [], location)
    }

    public func flattened(axis: Int = 1, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try apply(.flatten(axis: axis), [], SourceLocation(fileID: fileID, line: line))
    }

    /// Permutes the axes; with no permutation, reverses them.
    public func transposed(_ perm: [Int]? = nil, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try apply(.transpose(perm: perm ?? Array((0..<rank).reversed())), [], SourceLocation(fileID: fileID, line: line))
    }

    /// Elements start..<end (step apart) along each listed axis; other axes stay whole.
    /// Negative starts and ends count from the end; out-of-range values are clamped, as in NumPy.
    public func sliced(axes: [Int], starts: [Int], ends: [Int], steps: [Int]? = nil, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        let location = SourceLocation(fileID: fileID, line: line)
        let steps = steps ?? Array(repeating: 1, count: axes.count)
        guard starts.count == axes.count, ends.count == axes.count, steps.count == axes.count else {
            throw LatheError.invalidAttribute(op: "slice", reason: "axes, starts, ends and steps differ in length", location: location)
        }
        var (s, e, st) = ([Int](repeating: 0, count: rank), shape, [Int](repeating: 1, count: rank))
        for (k, axis) in axes.enumerated() {
            let a = try self.axis(axis, "slice", location)
            let clamp = { (v: Int) in Swift.min(Swift.max(v < 0 ? v + self.shape[a] : v, 0), self.shape[a]) }
            (s[a], e[a], st[a]) = (clamp(starts[k]), Swift.max(clamp(starts[k]), clamp(ends[k])), steps[k])
        }
        return try apply(.slice(starts: s, ends: e, steps: st), [], location)
    }

    public func softmax(axis: Int = -1, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        let location = SourceLocation(fileID: fileID, line: line)
        return try apply(.softmax(axis: try self.axis(axis, "softmax", location)), [], location)
    }

    public func logSoftmax(axis: Int = -1, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        let location = SourceLocation(fileID: fileID, line: line)
        return try apply(.logSoftmax(axis: try self.axis(axis, "log_softmax", location)), [], location)
    }

    private func reduce(_ kind: ReduceKind, _ axes: [Int]?, _ keepDims: Bool, _ location: SourceLocation) throws -> Tensor {
        let normalized = try (axes ?? Array(0..<rank)).map { try self.axis($0, "reduce_\(kind.rawValue)", location) }
        return try apply(.reduce(kind, axes: normalized, keepDims: keepDims), [], location)
    }

    /// Sum over `axes` (all axes when nil).
    public func sum(axes: [Int]? = nil, keepDims: Bool = false, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try reduce(.sum, axes, keepDims, SourceLocation(fileID: fileID, line: line))
    }
    public func mean(axes: [Int]? = nil, keepDims: Bool = false, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try reduce(.mean, axes, keepDims, SourceLocation(fileID: fileID, line: line))
    }
    public func max(axes: [Int]? = nil, keepDims: Bool = false, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try reduce(.max, axes, keepDims, SourceLocation(fileID: fileID, line: line))
    }
}

/// Joins tensors along `axis`; all other dimensions must agree.
public func concat(_ tensors: [Tensor], axis: Int, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
    let location = SourceLocation(fileID: fileID, line: line)
    guard let first = tensors.first else {
        throw LatheError.invalidAttribute(op: "concat", reason: "needs at least one tensor", location: location)
    }
    return try first.apply(.concat(axis: try first.axis(axis, "concat", location)), Array(tensors.dropFirst()), location)
}
