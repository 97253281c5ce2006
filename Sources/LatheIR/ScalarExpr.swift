import Foundation

/// The scalar formula of an elementwise op, written once and read by every consumer: the
/// interpreter evaluates it, the code generator emits it as vector code, and (later) fusion
/// composes formulas and autodiff differentiates them.
public indirect enum ScalarExpr: Hashable, Sendable, CustomStringConvertible {
    /// The i-th operand of the op.
    case arg(Int)
    case const(Float)
    case unary(ScalarUnary, ScalarExpr)
    case binary(ScalarBinary, ScalarExpr, ScalarExpr)
    /// `condition ? a : b`, the condition a bool (ONNX's Where).
    case select(ScalarExpr, ScalarExpr, ScalarExpr)
    /// The operand converted to an element type, as ONNX's Cast converts (DType.converting),
    /// by the rule where ONNX leaves a choice (the narrow floats: NarrowTypes.swift).
    case cast(DType, ScalarExpr, CastRule = .standard)

    public static func + (a: ScalarExpr, b: ScalarExpr) -> ScalarExpr { .binary(.add, a, b) }
    public static func - (a: ScalarExpr, b: ScalarExpr) -> ScalarExpr { .binary(.sub, a, b) }
    public static func * (a: ScalarExpr, b: ScalarExpr) -> ScalarExpr { .binary(.mul, a, b) }
    public static func / (a: ScalarExpr, b: ScalarExpr) -> ScalarExpr { .binary(.div, a, b) }
    public static prefix func - (a: ScalarExpr) -> ScalarExpr { .unary(.neg, a) }
    public static func max(_ a: ScalarExpr, _ b: ScalarExpr) -> ScalarExpr { .binary(.max, a, b) }
    public static func min(_ a: ScalarExpr, _ b: ScalarExpr) -> ScalarExpr { .binary(.min, a, b) }
    public static func exp(_ a: ScalarExpr) -> ScalarExpr { .unary(.exp, a) }
    public static func step(_ a: ScalarExpr) -> ScalarExpr { .unary(.step, a) }

    /// Turns the tree into nested closures once, so the interpreter does not walk the enum
    /// per element: the float32 formula's evaluator (TypedScalar.swift has every type's).
    public func makeEvaluator() -> ([Float]) -> Float {
        switch self {
        case let .arg(i): return { $0[i] }
        case let .const(c): return { _ in c }
        case let .unary(fn, a):
            let ea = a.makeEvaluator()
            let f = fn.reference
            return { f(ea($0)) }
        case let .binary(fn, a, b):
            let ea = a.makeEvaluator(), eb = b.makeEvaluator()
            let f = fn.reference
            return { f(ea($0), eb($0)) }
        case let .select(c, a, b):
            let (ec, ea, eb) = (c.makeEvaluator(), a.makeEvaluator(), b.makeEvaluator())
            return { ec($0) != 0 ? ea($0) : eb($0) }
        case let .cast(type, a, rule):
            let ea = a.makeEvaluator()
            return { Float(type.converting(.float(Double(ea($0))), rule: rule).double) }
        }
    }

    /// The formula as text, operands as $0, $1, ...: "max($0 + $1, 0)".
    public var description: String {
        switch self {
        case let .arg(i): return "$\(i)"
        case let .const(c): return c == c.rounded() && abs(c) < 1e6 ? String(Int(c)) : "\(c)"
        case let .unary(.neg, a): return "-\(a.parenthesized)"
        case let .unary(fn, a): return "\(fn.rawValue)(\(a))"
        case let .binary(fn, a, b):
            if let symbol = fn.infixSymbol {
                let left = fn == .add || fn == .sub ? a.description : a.parenthesized
                let right = b.parenthesized
                return "\(left) \(symbol) \(right)"
            }
            return "\(fn.rawValue)(\(a), \(b))"
        case let .select(c, a, b): return "where(\(c), \(a), \(b))"
        case let .cast(type, a, rule): return "cast<\(type.rawValue)\(rule == .standard ? "" : " \(rule)")>(\(a))"
        }
    }

    private var parenthesized: String {
        if case .binary(let fn, _, _) = self, fn.infixSymbol != nil { return "(\(self))" }
        return description
    }

    /// The formula with each operand i replaced by `replacements[i]`.
    public func substituting(_ replacements: [ScalarExpr]) -> ScalarExpr {
        switch self {
        case let .arg(i): return replacements[i]
        case .const: return self
        case let .unary(fn, a): return .unary(fn, a.substituting(replacements))
        case let .binary(fn, a, b): return .binary(fn, a.substituting(replacements), b.substituting(replacements))
        case let .select(c, a, b): return .select(c.substituting(replacements), a.substituting(replacements), b.substituting(replacements))
        case let .cast(type, a, rule): return .cast(type, a.substituting(replacements), rule)
        }
    }

    /// The highest operand index the formula reads, plus one.
    public var arity: Int {
        switch self {
        case let .arg(i): return i + 1
        case .const: return 0
        case let .unary(_, a): return a.arity
        case let .binary(_, a, b): return Swift.max(a.arity, b.arity)
        case let .select(c, a, b): return Swift.max(c.arity, a.arity, b.arity)
        case let .cast(_, a, _): return a.arity
        }
    }
}

public enum ScalarUnary: String, Hashable, Sendable, CaseIterable {
    /// `step` is Heaviside's: 1 where x > 0, else 0 (the slope of relu, the mask of max).
    /// `round` rounds half to even; `sign` is -1, 0 or 1; `not` negates a bool; `isNaN` is a
    /// bool.
    case neg, abs, exp, log, sqrt, tanh, erf, floor, ceil, step, round, sign, not, isNaN
    /// Every bit flipped, on integers.
    case bitNot
    /// The C library's sine and cosine (called per element from compiled code).
    case sin, cos

    /// Computes on floating-point types only.
    public var needsFloat: Bool { [.exp, .log, .sqrt, .tanh, .erf, .floor, .ceil, .round, .isNaN, .sin, .cos].contains(self) }

    /// The reference semantics, from the C library.
    public var reference: (Float) -> Float {
        switch self {
        case .neg: return { -$0 }
        case .abs: return { Swift.abs($0) }
        case .exp: return { Foundation.exp($0) }
        case .log: return { Foundation.log($0) }
        case .sqrt: return { $0.squareRoot() }
        case .tanh: return { Foundation.tanh($0) }
        case .erf: return { Foundation.erf($0) }
        case .floor: return { $0.rounded(.down) }
        case .ceil: return { $0.rounded(.up) }
        case .step: return { $0 > 0 ? 1 : 0 }
        case .round: return { $0.rounded(.toNearestOrEven) }
        case .sign: return { $0 > 0 ? 1 : $0 < 0 ? -1 : $0 }
        case .not: return { $0 == 0 ? 1 : 0 }
        case .isNaN: return { $0.isNaN ? 1 : 0 }
        case .bitNot: return { $0 }   // on integers only (TypedScalar)
        case .sin: return { Foundation.sin($0) }
        case .cos: return { Foundation.cos($0) }
        }
    }
}

public enum ScalarBinary: String, Hashable, Sendable, CaseIterable {
    /// `mod` is floored (the result takes the divisor's sign, Python's %), `fmod` truncated (the
    /// dividend's, C's fmod): ONNX's Mod with fmod 0 and 1. Integer division truncates, and
    /// integer division or remainder by zero gives 0. The comparisons give bools; and, or and
    /// xor take them.
    case add, sub, mul, div, max, min, pow, mod, fmod
    case equal, less, lessOrEqual, greater, greaterOrEqual
    case and, or, xor
    /// Bitwise ops and shifts, on integers. A shift by the type's width or more (or by a
    /// negative amount) shifts every bit out: 0, or a negative signed value's sign on the right.
    case bitAnd, bitOr, bitXor, shiftLeft, shiftRight

    /// The comparisons: operands of any one type, a bool result.
    public var isComparison: Bool { [.equal, .less, .lessOrEqual, .greater, .greaterOrEqual].contains(self) }
    /// And, or, xor: bool operands and result.
    public var isLogical: Bool { [.and, .or, .xor].contains(self) }
    /// Bitwise ops and shifts: integer operands and result.
    public var isBitwise: Bool { [.bitAnd, .bitOr, .bitXor, .shiftLeft, .shiftRight].contains(self) }

    /// How the formula prints between its operands, for those that print so.
    var infixSymbol: String? {
        switch self {
        case .add: return "+"
        case .sub: return "-"
        case .mul: return "*"
        case .div: return "/"
        case .equal: return "=="
        case .less: return "<"
        case .lessOrEqual: return "<="
        case .greater: return ">"
        case .greaterOrEqual: return ">="
        default: return nil
        }
    }

    public var reference: (Float, Float) -> Float {
        switch self {
        case .add: return { $0 + $1 }
        case .sub: return { $0 - $1 }
        case .mul: return { $0 * $1 }
        case .div: return { $0 / $1 }
        // NaN propagates, as in NumPy's maximum/minimum.
        case .max: return { $0.isNaN || $1.isNaN ? .nan : Swift.max($0, $1) }
        // On a tie (0 and -0) the second, as the compiled select(a < b, a, b) gives.
        case .min: return { $0.isNaN || $1.isNaN ? .nan : ($0 < $1 ? $0 : $1) }
        case .pow: return { Foundation.pow($0, $1) }
        case .mod: return { a, b in
            let r = Foundation.fmod(a, b)
            return r != 0 && (r < 0) != (b < 0) ? r + b : r
        }
        case .fmod: return { Foundation.fmod($0, $1) }
        case .equal: return { $0 == $1 ? 1 : 0 }
        case .less: return { $0 < $1 ? 1 : 0 }
        case .lessOrEqual: return { $0 <= $1 ? 1 : 0 }
        case .greater: return { $0 > $1 ? 1 : 0 }
        case .greaterOrEqual: return { $0 >= $1 ? 1 : 0 }
        case .and: return { $0 != 0 && $1 != 0 ? 1 : 0 }
        case .or: return { $0 != 0 || $1 != 0 ? 1 : 0 }
        case .xor: return { ($0 != 0) != ($1 != 0) ? 1 : 0 }
        case .bitAnd, .bitOr, .bitXor, .shiftLeft, .shiftRight: return { _, _ in 0 }   // on integers only (TypedScalar)
        }
    }
}
