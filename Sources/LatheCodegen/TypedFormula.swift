import CLLVM
import LatheIR

/// Formulas over operands of any element types (ScalarExpr with TypedScalar's type rule), as
/// vector code: each operation in its operands' compute type (TypedMath), integer division and
/// remainder guarded so that a zero divisor gives 0 and never traps.
extension IRBuilder {
    /// Emits `expr` over `arguments` (of `types`, each in its compute type, all of `lanes`);
    /// `context` types a formula that reads no operand. The result is in its type's compute type.
    func emit(_ expr: ScalarExpr, _ arguments: [LLVMValue], types: [DType], context: DType, lanes: Int) -> LLVMValue {
        func typeOf(_ e: ScalarExpr) -> DType? { (try? e.elementType(types)) ?? nil }
        let type = typeOf(expr) ?? context
        func part(_ e: ScalarExpr, _ context: DType) -> LLVMValue { emit(e, arguments, types: types, context: context, lanes: lanes) }
        switch expr {
        case let .arg(i): return arguments[i]
        case let .const(c): return constant(c, type, lanes: lanes)
        case let .cast(to, a, rule):
            // A float converted to an 8- or 16-bit integer and back to f32 (a quantized value
            // dequantized in the epilogue that made it): the float clamped and truncated, without
            // the two conversions (the maximum with 0 has taken -0 to +0 for an unsigned type).
            if to == .float32, case let .cast(integer, inner, .standard) = a, integer.byteSize <= 2, integer.saturatedRange != nil,
               typeOf(inner) == .float32 {
                let truncated = intrinsic("llvm.trunc", saturated(part(unclipped(inner, to: integer), .float32), from: .float32, to: integer))
                // A signed type's -0.5 truncates to -0, where the integer 0 gives +0.
                return integer.isSigned ? add(truncated, constant(0, .float32, lanes: lanes)) : truncated
            }
            if rule == .standard, let from = typeOf(a), from.isFloatingPoint {
                let inner = unclipped(a, to: to)
                return convert(part(inner, from), from: from, to: to, rule: rule)
            }
            let from = typeOf(a) ?? .float32
            return convert(part(a, from), from: from, to: to, rule: rule)
        case let .select(c, a, b):
            return select(part(c, .bool), part(a, type), part(b, type))
        case let .unary(fn, a):
            let operandType = fn == .not ? .bool : typeOf(a) ?? type
            return roundedToType(unary(fn, part(a, operandType), operandType), type)
        case let .binary(fn, a, b):
            let operandType = typeOf(a) ?? typeOf(b) ?? (fn.isComparison ? .float32 : type)
            return roundedToType(binary(fn, part(a, operandType), part(b, operandType), operandType), type)
        }
    }

    /// A float formula converted to `to` by a saturating conversion, without a clip to at least
    /// the integer type's range that the conversion makes redundant (NaN to 0 either way): a
    /// quantized kernel's every store, clip(round(x / scale) + zero, 0, 255) to uint8.
    private func unclipped(_ e: ScalarExpr, to: DType) -> ScalarExpr {
        guard case let .binary(.min, .binary(.max, inner, .const(low)), .const(high)) = e, let range = to.saturatedRange,
              Double(low) <= range.lowerBound, Double(high) >= range.upperBound else { return e }
        return inner
    }

    private func unary(_ fn: ScalarUnary, _ x: LLVMValue, _ t: DType) -> LLVMValue {
        let lanes = lanes(of: x)
        func c(_ v: Float) -> LLVMValue { constant(v, t, lanes: lanes) }
        if t.isFloatingPoint {
            switch fn {
            case .exp, .log, .tanh, .erf, .sin, .cos:
                guard t == .float64 else { return emit(.unary(fn, .arg(0)), [x]) }
                switch fn {
                // The C library's, in double (the float32 polynomials would lose range and digits).
                case .exp: return intrinsic("llvm.exp", x)
                case .log: return intrinsic("llvm.log", x)
                case .sin: return intrinsic("llvm.sin", x)
                case .cos: return intrinsic("llvm.cos", x)
                case .tanh:
                    // 1 - 2 / (e^2x + 1), and x itself where that would cancel (|x| < 2^-20).
                    let e = intrinsic("llvm.exp", add(x, x))
                    let big = sub(c(1), div(c(2), add(e, c(1))))
                    return select(compare(LLVMRealOLT, intrinsic("llvm.fabs", x), c(0x1p-20)), x, big)
                default:
                    // erf in float32 (documented in docs/ir.md; the interpreter does the same).
                    let single = LLVMBuildFPTrunc(builder, x, computeType(.float32, lanes: lanes), "")!
                    return LLVMBuildFPExt(builder, emit(.unary(fn, .arg(0)), [single]), LLVMTypeOf(x), "")
                }
            case .neg: return neg(x)
            case .abs: return intrinsic("llvm.fabs", x)
            case .sqrt: return intrinsic("llvm.sqrt", x)
            case .floor: return intrinsic("llvm.floor", x)
            case .ceil: return intrinsic("llvm.ceil", x)
            case .round: return intrinsic("llvm.roundeven", x)
            case .step: return select(compare(LLVMRealOGT, x, c(0)), c(1), c(0))
            // ±0 and NaN are their own sign.
            case .sign: return select(compare(LLVMRealOGT, x, c(0)), c(1), select(compare(LLVMRealOLT, x, c(0)), c(-1), x))
            case .isNaN: return compare(LLVMRealUNO, x, x)
            case .not: return compare(LLVMRealOEQ, x, c(0))
            case .bitNot: return x   // integers only (the type rule)
            }
        }
        if t == .bool { return fn == .not ? LLVMBuildXor(builder, x, constant(1, .bool, lanes: lanes), "") : x }
        let (greater, less): (LLVMIntPredicate, LLVMIntPredicate) = t.isSigned ? (LLVMIntSGT, LLVMIntSLT) : (LLVMIntUGT, LLVMIntULT)
        func icmp(_ p: LLVMIntPredicate, _ a: LLVMValue, _ b: LLVMValue) -> LLVMValue { LLVMBuildICmp(builder, p, a, b, "") }
        switch fn {
        case .neg: return LLVMBuildSub(builder, c(0), x, "")
        case .bitNot: return LLVMBuildNot(builder, x, "")
        case .abs: return t.isSigned ? select(icmp(LLVMIntSLT, x, c(0)), LLVMBuildSub(builder, c(0), x, ""), x) : x
        case .step: return select(icmp(greater, x, c(0)), c(1), c(0))
        case .sign: return select(icmp(greater, x, c(0)), c(1), select(icmp(less, x, c(0)), c(-1), c(0)))
        default: return x
        }
    }

    private func binary(_ fn: ScalarBinary, _ x: LLVMValue, _ y: LLVMValue, _ t: DType) -> LLVMValue {
        let lanes = lanes(of: x)
        func c(_ v: Float) -> LLVMValue { constant(v, t, lanes: lanes) }
        if t.isFloatingPoint {
            switch fn {
            // The float32 code, which reads no constant, so serves float64 as well.
            case .add, .sub, .mul, .div, .max, .min, .pow: return emit(.binary(fn, .arg(0), .arg(1)), [x, y])
            case .fmod: return LLVMBuildFRem(builder, x, y, "")
            case .mod:
                // C's remainder moved to the divisor's sign when the two differ.
                let r = LLVMBuildFRem(builder, x, y, "")!
                let differ = LLVMBuildXor(builder, compare(LLVMRealOLT, r, c(0)), compare(LLVMRealOLT, y, c(0)), "")!
                let fix = LLVMBuildAnd(builder, compare(LLVMRealONE, r, c(0)), differ, "")!
                return select(fix, add(r, y), r)
            case .equal: return compare(LLVMRealOEQ, x, y)
            case .less: return compare(LLVMRealOLT, x, y)
            case .lessOrEqual: return compare(LLVMRealOLE, x, y)
            case .greater: return compare(LLVMRealOGT, x, y)
            case .greaterOrEqual: return compare(LLVMRealOGE, x, y)
            case .and, .or, .xor, .bitAnd, .bitOr, .bitXor, .shiftLeft, .shiftRight: return constant(0, .bool, lanes: lanes)
            }
        }
        func icmp(_ p: LLVMIntPredicate, _ a: LLVMValue, _ b: LLVMValue) -> LLVMValue { LLVMBuildICmp(builder, p, a, b, "") }
        let signed = t.isSigned && t != .bool
        switch fn {
        case .and: return LLVMBuildAnd(builder, x, y, "")
        case .or: return LLVMBuildOr(builder, x, y, "")
        case .xor: return LLVMBuildXor(builder, x, y, "")
        case .equal: return icmp(LLVMIntEQ, x, y)
        case .less: return icmp(signed ? LLVMIntSLT : LLVMIntULT, x, y)
        case .lessOrEqual: return icmp(signed ? LLVMIntSLE : LLVMIntULE, x, y)
        case .greater: return icmp(signed ? LLVMIntSGT : LLVMIntUGT, x, y)
        case .greaterOrEqual: return icmp(signed ? LLVMIntSGE : LLVMIntUGE, x, y)
        case .add: return LLVMBuildAdd(builder, x, y, "")
        case .sub: return LLVMBuildSub(builder, x, y, "")
        case .mul: return LLVMBuildMul(builder, x, y, "")
        case .max: return select(icmp(signed ? LLVMIntSGT : LLVMIntUGT, x, y), x, y)
        case .min: return select(icmp(signed ? LLVMIntSLT : LLVMIntULT, x, y), x, y)
        case .pow: return c(0)
        case .bitAnd: return LLVMBuildAnd(builder, x, y, "")
        case .bitOr: return LLVMBuildOr(builder, x, y, "")
        case .bitXor: return LLVMBuildXor(builder, x, y, "")
        case .shiftLeft, .shiftRight:
            // An amount of the width or more (unsigned: a negative one too) shifts every bit out,
            // where LLVM's shifts would give poison.
            let bits = c(Float(t.byteSize * 8))
            let out = icmp(LLVMIntUGE, y, bits)
            if fn == .shiftLeft { return select(out, c(0), LLVMBuildShl(builder, x, select(out, c(0), y), "")) }
            if !signed { return select(out, c(0), LLVMBuildLShr(builder, x, select(out, c(0), y), "")) }
            return LLVMBuildAShr(builder, x, select(out, c(Float(t.byteSize * 8 - 1)), y), "")
        case .div, .fmod, .mod:
            // A zero divisor gives 0; -1 is done apart (MIN / -1 overflows, and traps on x86).
            let zero = icmp(LLVMIntEQ, y, c(0))
            let minusOne = signed ? icmp(LLVMIntEQ, y, c(-1)) : constant(0, .bool, lanes: lanes)
            let safe = select(LLVMBuildOr(builder, zero, minusOne, "")!, c(1), y)
            if fn == .div {
                let quotient = signed ? LLVMBuildSDiv(builder, x, safe, "")! : LLVMBuildUDiv(builder, x, safe, "")!
                return select(zero, c(0), select(minusOne, LLVMBuildSub(builder, c(0), x, ""), quotient))
            }
            let r = select(LLVMBuildOr(builder, zero, minusOne, "")!, c(0), signed ? LLVMBuildSRem(builder, x, safe, "")! : LLVMBuildURem(builder, x, safe, "")!)
            guard fn == .mod, signed else { return r }
            let differ = LLVMBuildXor(builder, icmp(LLVMIntSLT, r, c(0)), icmp(LLVMIntSLT, y, c(0)), "")!
            let fix = LLVMBuildAnd(builder, icmp(LLVMIntNE, r, c(0)), differ, "")!
            return select(fix, LLVMBuildAdd(builder, r, y, ""), r)
        }
    }
}
