/// Comparisons, logic, selection and integer arithmetic on symbolic tensors of any element
/// type. Comparisons give bool tensors, which `and`, `or`, `xor`, `not` combine and `where`
/// selects by:
///
///     let ids = try g.input("input_ids", dtype: .int64, shape: [1, 8])
///     let padding = try ids.equal(g.scalar(0, dtype: .int64))          // bool [1, 8]
///     let bias = try Tensor.where(padding, g.scalar(-1e4), g.scalar(0))  // f32 [1, 8]
extension Tensor {
    private func binary(_ fn: BinaryFn, _ other: Tensor, _ fileID: String, _ line: Int) throws -> Tensor {
        try apply(.binary(fn), [other], SourceLocation(fileID: fileID, line: line))
    }

    /// Elementwise ==, giving bool (operands of one type; bools too).
    public func equal(_ other: Tensor, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try binary(.equal, other, fileID, line)
    }
    public func less(_ other: Tensor, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try binary(.less, other, fileID, line)
    }
    public func lessOrEqual(_ other: Tensor, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try binary(.lessOrEqual, other, fileID, line)
    }
    public func greater(_ other: Tensor, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try binary(.greater, other, fileID, line)
    }
    public func greaterOrEqual(_ other: Tensor, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try binary(.greaterOrEqual, other, fileID, line)
    }

    /// Logic on bool tensors.
    public func and(_ other: Tensor, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try binary(.and, other, fileID, line)
    }
    public func or(_ other: Tensor, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try binary(.or, other, fileID, line)
    }
    public func xor(_ other: Tensor, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try binary(.xor, other, fileID, line)
    }
    public func not(fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try apply(.unary(.not), [], SourceLocation(fileID: fileID, line: line))
    }

    /// The remainder of a division: `floored` takes the divisor's sign (Python's %), else the
    /// dividend's (C's fmod). Integer division and remainder by zero give 0.
    public func remainder(dividingBy other: Tensor, floored: Bool = true, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try binary(floored ? .mod : .fmod, other, fileID, line)
    }

    /// -1, 0 or 1; half-to-even rounding; whether each element is NaN (bool).
    public func sign(fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try apply(.unary(.sign), [], SourceLocation(fileID: fileID, line: line))
    }
    public func rounded(fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try apply(.unary(.round), [], SourceLocation(fileID: fileID, line: line))
    }
    public func isNaN(fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try apply(.unary(.isNaN), [], SourceLocation(fileID: fileID, line: line))
    }

    /// `a` where the bool `condition` holds, else `b`; the three broadcast (ONNX's Where).
    public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try condition.apply(.select, [a, b], SourceLocation(fileID: fileID, line: line))
    }
}
