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
    /// per element.
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
            switch fn {
            case .add: return "\(a) + \(b.parenthesized)"
            case .sub: return "\(a) - \(b.parenthesized)"
            case .mul: return "\(a.parenthesized) * \(b.parenthesized)"
            case .div: return "\(a.parenthesized) / \(b.parenthesized)"
            case .max, .min, .pow: return "\(fn.rawValue)(\(a), \(b))"
            }
        }
    }

    private var parenthesized: String {
        if case .binary(let fn, _, _) = self, fn == .add || fn == .sub || fn == .mul || fn == .div { return "(\(self))" }
        return description
    }

    /// The formula with each operand i replaced by `replacements[i]`.
    public func substituting(_ replacements: [ScalarExpr]) -> ScalarExpr {
        switch self {
        case let .arg(i): return replacements[i]
        case .const: return self
        case let .unary(fn, a): return .unary(fn, a.substituting(replacements))
        case let .binary(fn, a, b): return .binary(fn, a.substituting(replacements), b.substituting(replacements))
        }
    }

    /// The highest operand index the formula reads, plus one.
    public var arity: Int {
        switch self {
        case let .arg(i): return i + 1
        case .const: return 0
        case let .unary(_, a): return a.arity
        case let .binary(_, a, b): return Swift.max(a.arity, b.arity)
        }
    }
}

public enum ScalarUnary: String, Hashable, Sendable, CaseIterable {
    /// `step` is Heaviside's: 1 where x > 0, else 0 (the slope of relu, the mask of max).
    case neg, abs, exp, log, sqrt, tanh, erf, floor, ceil, step

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
        }
    }
}

public enum ScalarBinary: String, Hashable, Sendable, CaseIterable {
    case add, sub, mul, div, max, min, pow

    public var reference: (Float, Float) -> Float {
        switch self {
        case .add: return { $0 + $1 }
        case .sub: return { $0 - $1 }
        case .mul: return { $0 * $1 }
        case .div: return { $0 / $1 }
        // NaN propagates, as in NumPy's maximum/minimum.
        case .max: return { $0.isNaN || $1.isNaN ? .nan : Swift.max($0, $1) }
        case .min: return { $0.isNaN || $1.isNaN ? .nan : Swift.min($0, $1) }
        case .pow: return { Foundation.pow($0, $1) }
        }
    }
}
