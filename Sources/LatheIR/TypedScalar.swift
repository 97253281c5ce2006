import Foundation

/// Formulas over every element type: the type rule of a ScalarExpr and the reference semantics
/// the interpreter computes and the code generator reproduces.
///
/// A formula's operands carry their element types; a constant takes the type of what it meets
/// (the other operand of its binary op, or the formula's type), so that `max($0, 0)` is relu
/// for f32 and for i32 alike. Arithmetic wants operands of one type and gives that type;
/// comparisons give bool; and, or, xor and not take bools; `where` takes a bool condition and
/// two values of one type; a cast gives its type. Floats compute per operation in their type,
/// float16 and bfloat16 in float32 rounded to their type after each operation; integers wrap at
/// their width, and integer division or remainder by zero gives 0 (never a trap).

/// One element of any type, as the reference interpreter computes it: floats as Double,
/// rounded to their type after each operation; integers as 64 bits, wrapped to their type's
/// width after each operation; bools as Bool.
public enum Scalar: Hashable, Sendable {
    case float(Double)
    case signed(Int64)
    case unsigned(UInt64)
    case bool(Bool)

    /// The value as a Double (exact for every type but 64-bit integers past 2^53).
    public var double: Double {
        switch self {
        case let .float(v): return v
        case let .signed(v): return Double(v)
        case let .unsigned(v): return Double(v)
        case let .bool(v): return v ? 1 : 0
        }
    }
}

extension DType {
    /// Element `index` of little-endian `bytes` of this type.
    public func scalar(in bytes: UnsafeRawBufferPointer, at index: Int) -> Scalar {
        let offset = index * byteSize
        switch self {
        case .float32, .float64, .float16, .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1:
            return .float(value(in: bytes, at: index))
        case .int8, .int16, .int32, .int4, .int2: return .signed(Int64(value(in: bytes, at: index)))
        case .uint4, .uint2: return .unsigned(UInt64(bytes[offset]))
        case .int64: return .signed(bytes.loadUnaligned(fromByteOffset: offset, as: Int64.self))
        case .uint8, .uint16, .uint32: return .unsigned(UInt64(value(in: bytes, at: index)))
        case .uint64: return .unsigned(bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        case .bool: return .bool(bytes[offset] != 0)
        }
    }

    /// Appends a value already of this type (see `converting`) as its little-endian bytes.
    public func append(_ scalar: Scalar, to bytes: inout [UInt8]) {
        func put<T>(_ v: T) { withUnsafeBytes(of: v) { bytes.append(contentsOf: $0) } }
        switch (self, scalar) {
        // Integers: the low bytes of the 64-bit value (little-endian).
        case let (_, .signed(v)) where isInteger: put(v); bytes.removeLast(8 - byteSize)
        case let (_, .unsigned(v)) where isInteger: put(v); bytes.removeLast(8 - byteSize)
        case (.bool, _): bytes.append(scalar.double != 0 ? 1 : 0)
        case (.float64, _): put(scalar.double)
        // A float32, float16 or bfloat16 value is exact in float32.
        case (.float16, _): put(Float16(Float(scalar.double)).bitPattern)
        case (.bfloat16, _): put(Float(scalar.double).bfloat16Bits)
        case (.float8e8m0, _): bytes.append(PowerOfTwoFormat.encode(scalar.double))
        case (.float8e4m3fn, _), (.float8e4m3fnuz, _), (.float8e5m2, _), (.float8e5m2fnuz, _), (.float4e2m1, _):
            bytes.append(narrowFloat?.encode(scalar.double) ?? 0)
        default: put(Float(scalar.double))
        }
    }

    /// `scalar` (of any type) as a value of this type, as ONNX's Cast converts: floats rounded
    /// to nearest-even, integers from floats truncated toward zero and saturated (NaN to 0),
    /// integers from integers wrapped, bool true for any non-zero value. The narrow types
    /// convert as NarrowTypes.swift says, by `rule` where ONNX leaves a choice.
    public func converting(_ scalar: Scalar, rule: CastRule = .standard) -> Scalar {
        if let source = rule.reinterpretsFrom, source.byteSize == byteSize, source.isComputed, isComputed {
            return fromBits(source.bits(of: scalar))
        }
        // To int64 first (a float truncated and saturated, as the compiled fptosi.sat), then wrapped.
        if isNarrowInteger, case let .signed(v) = DType.int64.converting(scalar) { return wrappedNarrow(v) }
        if self == .float8e8m0 {
            return .float(PowerOfTwoFormat.decode(PowerOfTwoFormat.code(Float(Self.float32Value(scalar)), rule: rule)))
        }
        if let format = narrowFloat {
            return .float(format.rounded(Double(Float(Self.float32Value(scalar))), saturate: rule.saturate))
        }
        switch (self, scalar) {
        case let (.bool, .signed(v)): return .bool(v != 0)
        case let (.bool, .unsigned(v)): return .bool(v != 0)
        case (.bool, _): return .bool(scalar.double != 0)
        case let (_, .signed(v)) where isInteger: return normalized(isSigned ? .signed(v) : .unsigned(UInt64(bitPattern: v)))
        case let (_, .unsigned(v)) where isInteger: return normalized(isSigned ? .signed(Int64(bitPattern: v)) : .unsigned(v))
        case let (_, .bool(v)) where isInteger: return isSigned ? .signed(v ? 1 : 0) : .unsigned(v ? 1 : 0)
        case let (_, .float(v)) where isInteger:
            guard !v.isNaN else { return isSigned ? .signed(0) : .unsigned(0) }
            if isSigned {
                let bits = Int64(byteSize * 8)
                let (lo, hi) = (-Double(sign: .plus, exponent: Int(bits - 1), significand: 1), Double(sign: .plus, exponent: Int(bits - 1), significand: 1))
                if v <= lo { return .signed(bits == 64 ? .min : -(1 << (bits - 1))) }
                if v >= hi { return .signed(bits == 64 ? .max : (1 << (bits - 1)) - 1) }
                return .signed(Int64(v.rounded(.towardZero)))
            }
            let hi = Double(sign: .plus, exponent: byteSize * 8, significand: 1)
            if v <= 0 { return .unsigned(0) }
            if v >= hi { return .unsigned(byteSize == 8 ? .max : (1 << UInt64(byteSize * 8)) - 1) }
            return .unsigned(UInt64(v.rounded(.towardZero)))
        // An integer to f32 (and from there to a half type) rounds once, as the compiled
        // sitofp does: through Double it would round twice past 2^53.
        case let (_, .signed(v)) where self != .float64: return normalized(.float(Double(Float(v))))
        case let (_, .unsigned(v)) where self != .float64: return normalized(.float(Double(Float(v))))
        default: return normalized(.float(scalar.double))
        }
    }

    /// The bits of a value of this type, as stored, in the low bits (BitCast's reading).
    func bits(of scalar: Scalar) -> UInt64 {
        let width = byteSize * 8
        let mask: UInt64 = width == 64 ? .max : (1 << UInt64(width)) - 1
        switch (self, scalar) {
        case let (.float32, s): return UInt64(Float(s.double).bitPattern)
        case let (.float64, s): return s.double.bitPattern
        case let (.float16, s): return UInt64(Float16(Float(s.double)).bitPattern)
        case let (.bfloat16, s): return UInt64(Float(s.double).bitPattern >> 16)
        case let (_, .signed(v)): return UInt64(bitPattern: v) & mask
        case let (_, .unsigned(v)): return v & mask
        case let (_, .bool(v)): return v ? 1 : 0
        case let (_, .float(v)): return UInt64(bitPattern: Int64(v)) & mask
        }
    }

    /// The value of this type whose stored bits are `bits` (the low ones).
    func fromBits(_ bits: UInt64) -> Scalar {
        let width = byteSize * 8
        switch self {
        case .float32: return .float(Double(Float(bitPattern: UInt32(truncatingIfNeeded: bits))))
        case .float64: return .float(Double(bitPattern: bits))
        case .float16: return .float(Double(Float(Float16(bitPattern: UInt16(truncatingIfNeeded: bits)))))
        case .bfloat16: return .float(Double(Float(bitPattern: UInt32(truncatingIfNeeded: bits) << 16)))
        case .bool: return .bool(bits & 0xFF != 0)
        default:
            guard isSigned else { return .unsigned(width == 64 ? bits : bits & ((1 << UInt64(width)) - 1)) }
            let shift = UInt64(64 - width)
            return .signed(Int64(bitPattern: bits << shift) >> Int64(shift))
        }
    }

    /// A value of any type as float32 converts it (an integer rounded once, as sitofp does).
    private static func float32Value(_ scalar: Scalar) -> Double {
        switch scalar {
        case let .signed(v): return Double(Float(v))
        case let .unsigned(v): return Double(Float(v))
        default: return scalar.double
        }
    }

    /// A result computed at 64 bits brought to this type: a float rounded to it, an integer
    /// wrapped to its width.
    public func normalized(_ scalar: Scalar) -> Scalar {
        switch (self, scalar) {
        case let (.float32, .float(v)): return .float(Double(Float(v)))
        case let (.float16, .float(v)): return .float(Double(Float(Float16(Float(v)))))
        case let (.bfloat16, .float(v)): return .float(Double(Float(bitPattern: UInt32(Float(v).bfloat16Bits) << 16)))
        case let (.int8, .signed(v)): return .signed(Int64(Int8(truncatingIfNeeded: v)))
        case let (.int16, .signed(v)): return .signed(Int64(Int16(truncatingIfNeeded: v)))
        case let (.int32, .signed(v)): return .signed(Int64(Int32(truncatingIfNeeded: v)))
        case let (.uint8, .unsigned(v)): return .unsigned(UInt64(UInt8(truncatingIfNeeded: v)))
        case let (.uint16, .unsigned(v)): return .unsigned(UInt64(UInt16(truncatingIfNeeded: v)))
        case let (.uint32, .unsigned(v)): return .unsigned(UInt64(UInt32(truncatingIfNeeded: v)))
        default: return scalar
        }
    }

    /// `value` cast to this type and back to float32.
    func rounded(_ value: Float) -> Float { Float(converting(.float(Double(value))).double) }
}

extension OpRuleFailure {
    /// An operation given a narrow type, which only casts and data movement take.
    static func notComputed(_ operation: String, _ type: DType) -> OpRuleFailure {
        .elementType("\(operation) does not compute on \(type.rawValue), which is only converted and moved: cast it first")
    }
}

extension ScalarExpr {
    /// The formula's element type, given its operands' types; nil when it reads no operand (a
    /// constant, typed by what it meets). Throws when the types do not fit the operations.
    public func elementType(_ operands: [DType]) throws(OpRuleFailure) -> DType? {
        func describe(_ t: DType?) -> String { t?.rawValue ?? "a constant" }
        switch self {
        case let .arg(i):
            guard operands.indices.contains(i) else { throw .shape("the formula reads $\(i) of \(operands.count) operands") }
            return operands[i]
        case .const: return nil
        case let .cast(type, a, _):
            _ = try a.elementType(operands)
            return type
        case let .unary(fn, a):
            let t = try a.elementType(operands)
            if let t, !t.isComputed { throw .notComputed(fn.rawValue, t) }
            switch fn {
            case .not:
                guard t == nil || t == .bool else { throw .elementType("not takes bool, got \(describe(t))") }
                return .bool
            case .isNaN:
                guard t?.isFloatingPoint ?? true else { throw .elementType("is_nan takes a float, got \(describe(t))") }
                return .bool
            case .bitNot:
                guard t?.isInteger ?? true else { throw .elementType("bit_not takes integers, got \(describe(t))") }
                return t
            default:
                if t == .bool { throw .elementType("\(fn.rawValue) takes numbers, got bool") }
                if fn.needsFloat, let t, !t.isFloatingPoint { throw .elementType("\(fn.rawValue) takes floats, got \(t.rawValue)") }
                return t
            }
        case let .binary(fn, a, b):
            let (ta, tb) = (try a.elementType(operands), try b.elementType(operands))
            if let ta, let tb, ta != tb { throw .elementType("\(fn.rawValue) takes operands of one type, got \(ta.rawValue) and \(tb.rawValue)") }
            let t = ta ?? tb
            if let t, !t.isComputed { throw .notComputed(fn.rawValue, t) }
            if fn.isLogical {
                guard t == nil || t == .bool else { throw .elementType("\(fn.rawValue) takes bools, got \(describe(t))") }
                return .bool
            }
            if fn.isBitwise {
                guard t?.isInteger ?? true else { throw .elementType("\(fn.rawValue) takes integers, got \(describe(t))") }
                return t
            }
            if fn.isComparison {
                if t == .bool && fn != .equal { throw .elementType("\(fn.rawValue) compares numbers, got bool") }
                return .bool
            }
            if t == .bool { throw .elementType("\(fn.rawValue) takes numbers, got bool") }
            if fn == .pow, let t, !t.isFloatingPoint { throw .elementType("pow takes floats, got \(t.rawValue)") }
            return t
        case let .select(c, a, b):
            let tc = try c.elementType(operands)
            guard tc == nil || tc == .bool else { throw .elementType("where's condition must be bool, got \(describe(tc))") }
            let (ta, tb) = (try a.elementType(operands), try b.elementType(operands))
            if let ta, let tb, ta != tb { throw .elementType("where takes values of one type, got \(ta.rawValue) and \(tb.rawValue)") }
            return ta ?? tb
        }
    }

    /// Whether the formula computes on float32 alone, given float32 operands: no cast, no
    /// comparison, no bool (the interpreter's fast path, `makeEvaluator`).
    public var isFloat32Only: Bool {
        switch self {
        case .arg, .const: return true
        case .cast, .select: return false
        case let .unary(fn, a): return fn != .not && fn != .isNaN && fn != .bitNot && a.isFloat32Only
        case let .binary(fn, a, b): return !fn.isComparison && !fn.isLogical && !fn.isBitwise && a.isFloat32Only && b.isFloat32Only
        }
    }

    /// The evaluator of the formula over operands of `types` (checked by `elementType`), each
    /// operation in its own type; `context` types a formula that reads no operand.
    public func makeTypedEvaluator(_ types: [DType], context: DType = .float32) -> ([Scalar]) -> Scalar {
        let type = ((try? elementType(types)) ?? nil) ?? context
        switch self {
        case let .arg(i): return { $0[i] }
        case let .const(c):
            let value = type.converting(.float(Double(c)))
            return { _ in value }
        case let .cast(to, a, rule):
            let ea = a.makeTypedEvaluator(types)
            // A cast to its operand's own type changes nothing (an f8e5m2 infinity stays one).
            if ((try? a.elementType(types)) ?? nil) == to { return ea }
            return { to.converting(ea($0), rule: rule) }
        case let .select(c, a, b):
            let (ec, ea, eb) = (c.makeTypedEvaluator(types, context: .bool), a.makeTypedEvaluator(types, context: type),
                                b.makeTypedEvaluator(types, context: type))
            return { ec($0) == .bool(true) ? ea($0) : eb($0) }
        case let .unary(fn, a):
            let operandType = fn == .not ? DType.bool : ((try? a.elementType(types)) ?? nil) ?? type
            let ea = a.makeTypedEvaluator(types, context: operandType)
            return { type.normalized(fn.evaluate(ea($0))) }
        case let .binary(fn, a, b):
            let operandType = (((try? a.elementType(types)) ?? nil) ?? ((try? b.elementType(types)) ?? nil)) ?? (fn.isComparison ? .float32 : type)
            let (ea, eb) = (a.makeTypedEvaluator(types, context: operandType), b.makeTypedEvaluator(types, context: operandType))
            return { type.normalized(fn.evaluate(ea($0), eb($0))) }
        }
    }
}

extension ScalarUnary {
    /// The operation on a value of any type it accepts, at 64 bits (normalized by the caller).
    func evaluate(_ x: Scalar) -> Scalar {
        switch x {
        case let .float(v): return evaluate(v)
        case let .bool(v): return .bool(self == .not ? !v : v)
        case let .signed(v):
            switch self {
            case .neg: return .signed(0 &- v)
            case .bitNot: return .signed(~v)
            case .abs: return .signed(v < 0 ? 0 &- v : v)
            case .step: return .signed(v > 0 ? 1 : 0)
            case .sign: return .signed(v > 0 ? 1 : v < 0 ? -1 : 0)
            default: return x
            }
        case let .unsigned(v):
            switch self {
            case .neg: return .unsigned(0 &- v)
            case .bitNot: return .unsigned(~v)
            case .step, .sign: return .unsigned(v > 0 ? 1 : 0)
            default: return x
            }
        }
    }

    private func evaluate(_ v: Double) -> Scalar {
        switch self {
        case .isNaN: return .bool(v.isNaN)
        case .not: return .bool(v == 0)
        case .exp: return .float(Foundation.exp(v))
        case .log: return .float(Foundation.log(v))
        case .sqrt: return .float(v.squareRoot())
        case .tanh: return .float(Foundation.tanh(v))
        case .erf: return .float(Foundation.erf(v))
        case .sin: return .float(Foundation.sin(v))
        case .cos: return .float(Foundation.cos(v))
        case .neg: return .float(-v)
        case .abs: return .float(Swift.abs(v))
        case .floor: return .float(v.rounded(.down))
        case .ceil: return .float(v.rounded(.up))
        case .round: return .float(v.rounded(.toNearestOrEven))
        case .step: return .float(v > 0 ? 1 : 0)
        case .sign: return .float(v > 0 ? 1 : v < 0 ? -1 : v)
        case .bitNot: return .float(v)
        }
    }
}

extension ScalarBinary {
    /// The operation on two values of one type, at 64 bits (normalized by the caller).
    func evaluate(_ a: Scalar, _ b: Scalar) -> Scalar {
        switch (a, b) {
        case let (.float(x), .float(y)):
            if let result = comparison(x, y) { return result }
            switch self {
            case .equal, .less, .lessOrEqual, .greater, .greaterOrEqual: return .bool(false)   // compared above
            case .add: return .float(x + y)
            case .sub: return .float(x - y)
            case .mul: return .float(x * y)
            case .div: return .float(x / y)
            case .max: return .float(x.isNaN || y.isNaN ? .nan : Swift.max(x, y))
            case .min: return .float(x.isNaN || y.isNaN ? .nan : (x < y ? x : y))   // a tie gives the second, as compiled
            case .pow: return .float(Foundation.pow(x, y))
            case .fmod: return .float(Foundation.fmod(x, y))
            case .mod:
                let r = Foundation.fmod(x, y)
                return .float(r != 0 && (r < 0) != (y < 0) ? r + y : r)
            case .and, .or, .xor, .bitAnd, .bitOr, .bitXor, .shiftLeft, .shiftRight: return .bool(false)
            }
        case let (.bool(x), .bool(y)):
            switch self {
            case .and: return .bool(x && y)
            case .or: return .bool(x || y)
            case .xor, .fmod: return .bool(x != y)
            case .equal: return .bool(x == y)
            default: return .bool(false)
            }
        case let (.signed(x), .signed(y)): return integers(x, y, Scalar.signed)
        case let (.unsigned(x), .unsigned(y)): return integers(x, y, Scalar.unsigned)
        default:
            // Operands of two kinds: the type rule lets none through.
            return .bool(false)
        }
    }

    /// The operation on two integers of one signedness; `make` wraps a result.
    private func integers<T: FixedWidthInteger>(_ x: T, _ y: T, _ make: (T) -> Scalar) -> Scalar {
        if let result = comparison(x, y) { return result }
        switch self {
        case .equal, .less, .lessOrEqual, .greater, .greaterOrEqual: return .bool(false)   // compared above
        case .add: return make(x &+ y)
        case .sub: return make(x &- y)
        case .mul: return make(x &* y)
        case .max: return make(Swift.max(x, y))
        case .min: return make(Swift.min(x, y))
        case .div: return make(y == 0 ? 0 : x.dividedReportingOverflow(by: y).partialValue)
        case .fmod: return make(y == 0 ? 0 : x.remainderReportingOverflow(dividingBy: y).partialValue)
        case .mod:
            // C's remainder moved to the divisor's sign when the two differ.
            guard y != 0 else { return make(0) }
            let r = x.remainderReportingOverflow(dividingBy: y).partialValue
            return make(r != 0 && (r < 0) != (y < 0) ? r &+ y : r)
        case .bitAnd: return make(x & y)
        case .bitOr: return make(x | y)
        case .bitXor: return make(x ^ y)
        // Computed at 64 bits, then wrapped to the type: an amount past the type's width shifts
        // every bit out; a negative one (an unsigned huge one, as the code reads it) too.
        case .shiftLeft: return make(y < 0 || y >= 64 ? 0 : x << y)
        case .shiftRight: return make(y < 0 || y >= 64 ? (x < 0 ? ~0 : 0) : x >> y)
        case .pow, .and, .or, .xor: return make(0)
        }
    }

    /// A comparison's bool, or nil for the other operations.
    private func comparison<T: Comparable>(_ x: T, _ y: T) -> Scalar? {
        switch self {
        case .equal: return .bool(x == y)
        case .less: return .bool(x < y)
        case .lessOrEqual: return .bool(x <= y)
        case .greater: return .bool(x > y)
        case .greaterOrEqual: return .bool(x >= y)
        default: return nil
        }
    }
}
