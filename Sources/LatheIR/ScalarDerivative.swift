/// Symbolic differentiation of scalar formulas: autodiff's rule for every elementwise op, from
/// the one formula that defines the op. Products with 0 and 1 and sums with 0 are folded as
/// the derivative is built, so relu's slope is `step($0)`, not `step($0 - 0) * 1`.
extension ScalarExpr {
    /// d(self) / d($i), a formula over the same operands.
    public func derivative(wrt i: Int) -> ScalarExpr {
        switch self {
        case let .arg(j): return .const(j == i ? 1 : 0)
        case .const: return .const(0)
        case let .unary(fn, a):
            let da = a.derivative(wrt: i)
            if da == .const(0) { return .const(0) }
            let slope: ScalarExpr
            switch fn {
            case .neg: slope = .const(-1)
            // -1 at 0 (PyTorch's sign gives 0): with max's tie rule this gives binary
            // cross-entropy from a logit of exactly 0 its true slope, sigmoid(0) - t.
            case .abs: slope = .const(2) * .step(a) - .const(1)
            case .exp: slope = self
            case .log: slope = .const(1) / a
            case .sqrt: slope = .const(0.5) / self
            case .tanh: slope = .const(1) - self * self
            case .erf: slope = .const(1.1283791670955126) * .exp(-(a * a))
            case .sin: slope = .unary(.cos, a)
            case .cos: slope = -.unary(.sin, a)
            // Piecewise constant, or not a number at all.
            case .floor, .ceil, .step, .round, .sign, .not, .isNaN, .bitNot: return .const(0)
            }
            return ScalarExpr.product(slope, da)
        case let .binary(fn, a, b):
            let (da, db) = (a.derivative(wrt: i), b.derivative(wrt: i))
            switch fn {
            case .add: return .sum(da, db)
            case .sub: return .sum(da, .product(.const(-1), db))
            case .mul: return .sum(.product(da, b), .product(a, db))
            case .div: return .sum(.product(da, .const(1) / b), .product(db, -(a / (b * b))))
            // A tie goes to the second operand: relu, max($0, 0), has slope 0 at 0, as in PyTorch.
            case .max: return .sum(.product(da, .step(a - b)), .product(db, .const(1) - .step(a - b)))
            case .min: return .sum(.product(da, .step(b - a)), .product(db, .const(1) - .step(b - a)))
            case .pow:
                let byBase = ScalarExpr.product(da, b * .binary(.pow, a, b - .const(1)))
                return .sum(byBase, .product(db, self * .unary(.log, a)))
            // a - q b with the quotient q piecewise constant: floored for mod, truncated for fmod.
            case .mod: return .sum(da, .product(db, -.unary(.floor, a / b)))
            case .fmod: return .sum(da, .product(db, -.unary(.sign, a / b) * .unary(.floor, .unary(.abs, a / b))))
            case .equal, .less, .lessOrEqual, .greater, .greaterOrEqual, .and, .or, .xor, .bitAnd, .bitOr, .bitXor, .shiftLeft, .shiftRight:
                return .const(0)
            }
        case let .select(c, a, b):
            let (da, db) = (a.derivative(wrt: i), b.derivative(wrt: i))
            if da == .const(0) && db == .const(0) { return .const(0) }
            return .select(c, da, db)
        case let .cast(type, a, _):
            // A conversion between float types passes the slope on; one to an integer or a bool has none.
            return type.isFloatingPoint ? a.derivative(wrt: i) : .const(0)
        }
    }

    /// a * b, folding the zeros and ones that differentiation makes.
    static func product(_ a: ScalarExpr, _ b: ScalarExpr) -> ScalarExpr {
        if a == .const(0) || b == .const(0) { return .const(0) }
        if a == .const(1) { return b }
        if b == .const(1) { return a }
        if case let .const(x) = a, case let .const(y) = b { return .const(x * y) }
        if a == .const(-1) { return -b }
        if b == .const(-1) { return -a }
        return a * b
    }

    /// a + b, folding zeros.
    static func sum(_ a: ScalarExpr, _ b: ScalarExpr) -> ScalarExpr {
        if a == .const(0) { return b }
        if b == .const(0) { return a }
        if case let .const(x) = a, case let .const(y) = b { return .const(x + y) }
        return a + b
    }
}
