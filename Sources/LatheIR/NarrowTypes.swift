import Foundation

/// ONNX's narrow element types: the 8-bit floats (FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2,
/// FLOAT8E5M2FNUZ, FLOAT8E8M0), the 4-bit float FLOAT4E2M1, and the 4- and 2-bit integers.
/// They are converted (Cast, CastLike) and moved (reshape, transpose, concat, gather, ...), as
/// ONNX has them; no other op computes on them (their type rules say so: cast first).
///
/// In memory every one takes a byte: a float's bit pattern in the low bits, an integer's value
/// (sign-extended for the signed ones). ONNX's TensorProto packs the 4-bit types two to a byte
/// and the 2-bit ones four to a byte, low bits first; the importer unpacks them.
///
/// Conversion to a narrow float rounds to nearest-even. What happens past its largest finite
/// value is the Cast's `saturate` attribute (CastRule): the largest finite value with the
/// input's sign, or else infinity (FLOAT8E5M2, the one with infinities) or NaN. FLOAT4E2M1 has
/// neither, so it always saturates; a NaN becomes a zero of the opposite sign, as ml_dtypes
/// (ONNX's reference) converts it. The FNUZ types have no negative zero. FLOAT8E8M0 holds
/// powers of two 2^-127 ... 2^127 (and NaN): a value's exponent, rounded by the Cast's
/// `round_mode` (up by default). To a narrow integer, a float is truncated toward zero (to 64
/// bits, saturating) and wrapped to the type's width, as an integer is.

/// How a Cast rounds where ONNX leaves a choice: whether a result past an 8-bit float's finite
/// range saturates, and how a FLOAT8E8M0 result rounds. Other conversions ignore it.
public struct CastRule: Hashable, Sendable, CustomStringConvertible {
    public var saturate: Bool
    public var powerOfTwoRounding: PowerOfTwoRounding
    /// Set for ONNX's BitCast: the value's bits, of this type, read as the target type's (of
    /// the same width, neither a narrow type) rather than its value converted.
    public var reinterpretsFrom: DType?

    public init(saturate: Bool = true, powerOfTwoRounding: PowerOfTwoRounding = .up, reinterpretsFrom: DType? = nil) {
        self.saturate = saturate
        self.powerOfTwoRounding = powerOfTwoRounding
        self.reinterpretsFrom = reinterpretsFrom
    }

    public static let standard = CastRule()

    /// "" for the standard rule, else its attributes as ONNX names them: "saturate=0".
    public var description: String {
        var parts: [String] = []
        if !saturate { parts.append("saturate=0") }
        if powerOfTwoRounding != .up { parts.append("round_mode=\(powerOfTwoRounding.rawValue)") }
        if let source = reinterpretsFrom { parts.append("bitcast_from=\(source.rawValue)") }
        return parts.joined(separator: " ")
    }
}

/// How a value becomes a power of two (FLOAT8E8M0): the next one up unless exact, the one below,
/// or the nearer (halfway, the one up).
public enum PowerOfTwoRounding: String, Hashable, Sendable, CaseIterable {
    case up, down, nearest
}

/// The layout of a narrow float with a sign bit (all but FLOAT8E8M0), which the interpreter and
/// the code generator both read.
public struct NarrowFloatFormat: Sendable {
    public let exponentBits: Int
    public let mantissaBits: Int
    public let bias: Int
    /// The top exponent with a zero mantissa is infinity, with any other NaN (FLOAT8E5M2).
    public let hasInfinity: Bool
    /// The one NaN is 0x80, where negative zero would be (the FNUZ types).
    public let unsignedZero: Bool
    /// The top exponent with every mantissa bit set is NaN (FLOAT8E4M3FN).
    public let topCodeIsNaN: Bool

    public static let e4m3fn = NarrowFloatFormat(exponentBits: 4, mantissaBits: 3, bias: 7, hasInfinity: false, unsignedZero: false, topCodeIsNaN: true)
    public static let e4m3fnuz = NarrowFloatFormat(exponentBits: 4, mantissaBits: 3, bias: 8, hasInfinity: false, unsignedZero: true, topCodeIsNaN: false)
    public static let e5m2 = NarrowFloatFormat(exponentBits: 5, mantissaBits: 2, bias: 15, hasInfinity: true, unsignedZero: false, topCodeIsNaN: false)
    public static let e5m2fnuz = NarrowFloatFormat(exponentBits: 5, mantissaBits: 2, bias: 16, hasInfinity: false, unsignedZero: true, topCodeIsNaN: false)
    public static let e2m1 = NarrowFloatFormat(exponentBits: 2, mantissaBits: 1, bias: 1, hasInfinity: false, unsignedZero: false, topCodeIsNaN: false)

    /// Whether it has a NaN at all (FLOAT4E2M1 has none).
    public var hasNaN: Bool { hasInfinity || unsignedZero || topCodeIsNaN }
    public var signBit: Int { 1 << (exponentBits + mantissaBits) }
    var topExponent: Int { (1 << exponentBits) - 1 }
    var mantissaMask: Int { (1 << mantissaBits) - 1 }
    /// 2^(1 - bias): below it, values are subnormal, multiples of `subnormalStep`.
    public var minNormal: Double { Double(sign: .plus, exponent: 1 - bias, significand: 1) }
    public var subnormalStep: Double { Double(sign: .plus, exponent: 1 - bias - mantissaBits, significand: 1) }

    /// The largest finite value.
    public var maxFinite: Double {
        let exponent = hasInfinity ? topExponent - 1 : topExponent
        let mantissa = topCodeIsNaN ? mantissaMask - 1 : mantissaMask
        return (1 + Double(mantissa) / Double(1 << mantissaBits)) * Double(sign: .plus, exponent: exponent - bias, significand: 1)
    }

    /// The value of a bit pattern.
    public func decode(_ code: UInt8) -> Double {
        let c = Int(code) & (signBit * 2 - 1)
        if unsignedZero && c == signBit { return .nan }
        let magnitude = c & (signBit - 1)
        let (e, m) = (magnitude >> mantissaBits, magnitude & mantissaMask)
        let negative = c & signBit != 0
        if hasInfinity && e == topExponent { return m == 0 ? (negative ? -.infinity : .infinity) : (negative ? -.nan : .nan) }
        if topCodeIsNaN && e == topExponent && m == mantissaMask { return negative ? -.nan : .nan }
        let value = e == 0 ? Double(m) * subnormalStep
            : (1 + Double(m) / Double(1 << mantissaBits)) * Double(sign: .plus, exponent: e - bias, significand: 1)
        return negative ? -value : value
    }

    /// `v` rounded to nearest-even among the format's values; past the largest finite one, that
    /// value (saturating, and always for a format with neither infinity nor NaN), else infinity
    /// or NaN. The result is one of the format's values, so `encode` takes it exactly; a NaN
    /// keeps its sign (the FNUZ types' one NaN has none).
    public func rounded(_ v: Double, saturate: Bool) -> Double {
        if v.isNaN { return hasNaN ? v : (v.sign == .plus ? -0.0 : 0.0) }
        let a = abs(v)
        var q: Double
        if a.isInfinite {
            q = .infinity
        } else if a < minNormal {
            q = (a / subnormalStep).rounded(.toNearestOrEven) * subnormalStep
        } else {
            let scale = Double(sign: .plus, exponent: Int(a.exponent) - mantissaBits, significand: 1)
            q = (a / scale).rounded(.toNearestOrEven) * scale
        }
        if q > maxFinite {
            if saturate || !hasNaN { q = maxFinite } else { q = hasInfinity ? .infinity : .nan }
        }
        // An overflow to NaN keeps the input's sign (as ml_dtypes gives it; encode keeps it).
        if q.isNaN { return v.sign == .minus ? -q : q }
        if unsignedZero && q == 0 { return 0 }
        return v.sign == .minus ? -q : q
    }

    /// The bit pattern of one of the format's values (see `rounded`).
    public func encode(_ v: Double) -> UInt8 {
        let sign = v.sign == .minus ? signBit : 0
        if v.isNaN {
            if unsignedZero { return UInt8(signBit) }
            return UInt8(sign | (topExponent << mantissaBits) | (topCodeIsNaN ? mantissaMask : 1 << (mantissaBits - 1)))
        }
        if v.isInfinite { return UInt8(sign | (topExponent << mantissaBits)) }
        let a = abs(v)
        if a == 0 { return unsignedZero ? 0 : UInt8(sign) }
        let magnitude: Int
        if a < minNormal {
            magnitude = Int(a / subnormalStep)
        } else {
            let e = Int(a.exponent)
            magnitude = (e + bias) << mantissaBits | Int((a / Double(sign: .plus, exponent: e, significand: 1) - 1) * Double(1 << mantissaBits))
        }
        return UInt8(sign | magnitude)
    }
}

/// FLOAT8E8M0: 2^(code - 127) for codes 0 ... 254, NaN for 255; no sign, no zero.
public enum PowerOfTwoFormat {
    public static let nanCode: UInt8 = 0xFF

    public static func decode(_ code: UInt8) -> Double {
        code == nanCode ? .nan : Double(sign: .plus, exponent: Int(code) - 127, significand: 1)
    }

    /// The code of `v` as ONNX converts it: from its float32 bits, the sign ignored, its
    /// exponent field rounded by `rounding` (nearest: up when the first dropped bit is set and
    /// the rest or the exponent is not zero); 2^127 stays at 2^127 when saturating (else it
    /// becomes NaN); infinity and NaN give NaN.
    public static func code(_ v: Float, rule: CastRule) -> UInt8 {
        let bits = v.bitPattern
        let exponent = (bits >> 23) & 0xFF
        if exponent == 0xFF { return nanCode }
        var up: Bool
        switch rule.powerOfTwoRounding {
        case .up: up = bits & 0x7F_FFFF != 0
        case .down: up = false
        case .nearest: up = bits & 0x40_0000 != 0 && (bits & 0x3F_FFFF != 0 || exponent > 0)
        }
        if rule.saturate && exponent == 0xFE { up = false }
        return UInt8(exponent + (up ? 1 : 0))
    }

    /// The code of a power of two (or NaN) in range.
    public static func encode(_ v: Double) -> UInt8 {
        v.isNaN ? nanCode : UInt8(clamping: Int(v.exponent) + 127)
    }
}

extension DType {
    /// Whether ops compute on it; the narrow types are only converted and moved.
    public var isComputed: Bool { !isNarrowFloat && !isNarrowInteger }

    /// The 8- and 4-bit floats: computed in f32, stored as their bit patterns.
    public var isNarrowFloat: Bool { narrowFloat != nil || self == .float8e8m0 }

    /// The layout of a narrow float with a sign bit.
    public var narrowFloat: NarrowFloatFormat? {
        switch self {
        case .float8e4m3fn: return .e4m3fn
        case .float8e4m3fnuz: return .e4m3fnuz
        case .float8e5m2: return .e5m2
        case .float8e5m2fnuz: return .e5m2fnuz
        case .float4e2m1: return .e2m1
        default: return nil
        }
    }

    public var isNarrowInteger: Bool { [.int4, .uint4, .int2, .uint2].contains(self) }

    /// Bits of a narrow integer's value (8 for a byte and wider types' bytes).
    public var valueBits: Int {
        switch self {
        case .int4, .uint4: return 4
        case .int2, .uint2: return 2
        default: return byteSize * 8
        }
    }

    /// Elements a byte of ONNX's TensorProto data holds: 2 for the 4-bit types, 4 for the 2-bit
    /// ones, else 1.
    public var elementsPerPackedByte: Int {
        switch self {
        case .int4, .uint4, .float4e2m1: return 2
        case .int2, .uint2: return 4
        default: return 1
        }
    }

    /// A 64-bit integer wrapped to a narrow integer's width (sign-extended for the signed ones).
    func wrappedNarrow(_ v: Int64) -> Scalar {
        let shift = Int64(64 - valueBits)
        return isSigned ? .signed((v << shift) >> shift) : .unsigned(UInt64(bitPattern: v) & ((1 << UInt64(valueBits)) - 1))
    }

    /// A narrow integer's byte as memory holds it: its low bits' value, wrapped to the width.
    func wrappedNarrowByte(_ byte: UInt8) -> UInt8 {
        switch wrappedNarrow(Int64(byte)) {
        case let .signed(v): return UInt8(truncatingIfNeeded: v)
        case let .unsigned(v): return UInt8(truncatingIfNeeded: v)
        default: return byte
        }
    }
}
