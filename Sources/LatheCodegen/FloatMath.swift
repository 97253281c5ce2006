import CLLVM
import LatheIR

/// Transcendental functions as inline polynomial code, the same on scalars and on vectors of
/// any width, so an elementwise loop never leaves the vector unit for a libm call.
/// Accuracy: exp a few ulp (Cephes), tanh about 1e-7 absolute, erf 4.2e-7 absolute.
extension IRBuilder {
    /// Emits a float32 ScalarExpr with `arguments` (all of one type, scalar or vector) as its
    /// operands; a formula with bools or casts in it goes to the typed emitter (TypedFormula).
    func emit(_ expr: ScalarExpr, _ arguments: [LLVMValue]) -> LLVMValue {
        guard expr.isFloat32Only else {
            let width = arguments.first.map { self.lanes(of: $0) } ?? 1
            return emit(expr, arguments, types: arguments.map { _ in .float32 }, context: .float32, lanes: width)
        }
        switch expr {
        case .select, .cast:
            return emit(expr, arguments, types: arguments.map { _ in .float32 }, context: .float32, lanes: arguments.first.map { self.lanes(of: $0) } ?? 1)
        case let .arg(i): return arguments[i]
        case let .const(c): return float(c, like: arguments[0])
        case let .unary(fn, a):
            let x = emit(a, arguments)
            switch fn {
            case .neg: return neg(x)
            case .abs: return intrinsic("llvm.fabs", x)
            case .exp: return exp(x)
            case .log: return intrinsic("llvm.log", x)
            case .sqrt: return intrinsic("llvm.sqrt", x)
            case .tanh: return tanh(x)
            case .erf: return erf(x)
            case .floor: return intrinsic("llvm.floor", x)
            case .ceil: return intrinsic("llvm.ceil", x)
            case .sin: return intrinsic("llvm.sin", x)
            case .cos: return intrinsic("llvm.cos", x)
            case .step: return select(compare(LLVMRealOGT, x, float(0, like: x)), float(1, like: x), float(0, like: x))
            case .round, .sign, .not, .isNaN, .bitNot:
                return emit(.unary(fn, .arg(0)), [x], types: [.float32], context: .float32, lanes: lanes(of: x))
            }
        case let .binary(fn, a, b):
            let (x, y) = (emit(a, arguments), emit(b, arguments))
            switch fn {
            case .add: return add(x, y)
            case .sub: return sub(x, y)
            case .mul: return mul(x, y)
            case .div: return div(x, y)
            case .max: return maximum(x, y)
            case .min: return minimum(x, y)
            case .pow: return intrinsic("llvm.pow", x, y)
            default: return emit(.binary(fn, .arg(0), .arg(1)), [x, y], types: [.float32, .float32], context: .float32, lanes: lanes(of: x))
            }
        }
    }

    /// Horner's rule: c[0] + x*(c[1] + x*(c[2] + ...)).
    func polynomial(_ x: LLVMValue, _ coefficients: [Float]) -> LLVMValue {
        var acc = float(coefficients.last!, like: x)
        for c in coefficients.dropLast().reversed() { acc = fma(acc, x, float(c, like: x)) }
        return acc
    }

    /// Cephes expf: x = n ln2 + r, exp(r) by a degree-6 polynomial, 2^n built in the exponent bits.
    func exp(_ input: LLVMValue) -> LLVMValue {
        let lanes = lanes(of: input)
        let underflow = compare(LLVMRealOLT, input, float(-87.33654, lanes: lanes))
        let x = minimum(maximum(input, float(-87.33654, lanes: lanes)), float(88.72283, lanes: lanes))
        let n = intrinsic("llvm.floor", fma(x, float(1.44269504088896341, lanes: lanes), float(0.5, lanes: lanes)))
        var r = fma(n, float(-0.693359375, lanes: lanes), x)
        r = fma(n, float(2.12194440e-4, lanes: lanes), r)
        let p = polynomial(r, [5.0000001201e-1, 1.6666665459e-1, 4.1665795894e-2, 8.3334519073e-3, 1.3981999507e-3, 1.9875691500e-4])
        let expR = add(fma(p, mul(r, r), r), float(1, lanes: lanes))
        // 2^(n-1) * 2 keeps the biased exponent in range for n = 128 (exp near FLT_MAX).
        let intType = lanes == 1 ? i32 : LLVMVectorType(i32, UInt32(lanes))
        let ni = LLVMBuildFPToSI(builder, n, intType, "")!
        let biased = LLVMBuildAdd(builder, ni, lanes == 1 ? LLVMConstInt(i32, 126, 0) : splatInt(126, lanes), "")!
        let shifted = LLVMBuildShl(builder, biased, lanes == 1 ? LLVMConstInt(i32, 23, 0) : splatInt(23, lanes), "")!
        let scale = LLVMBuildBitCast(builder, shifted, floatType(lanes: lanes), "")!
        let result = mul(mul(expR, scale), float(2, lanes: lanes))
        return select(underflow, float(0, lanes: lanes), result)
    }

    private func splatInt(_ v: UInt64, _ lanes: Int) -> LLVMValue {
        var elements = [LLVMValue?](repeating: LLVMConstInt(i32, v, 0), count: lanes)
        return LLVMConstVector(&elements, UInt32(lanes))
    }

    /// tanh as a [13/6] rational function on [-7.9, 7.9] (Eigen's float approximation), where
    /// it is ±1 to float precision outside.
    func tanh(_ input: LLVMValue) -> LLVMValue {
        let bound: Float = 7.90531110763549805
        let x = minimum(maximum(input, float(-bound, like: input)), float(bound, like: input))
        let x2 = mul(x, x)
        let p = mul(x, polynomial(x2, [4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
                                       5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
                                       -2.76076847742355e-16]))
        let q = polynomial(x2, [4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06])
        // Below 4e-4, tanh(x) == x in float; the rational form would only add rounding.
        let tiny = compare(LLVMRealOLT, intrinsic("llvm.fabs", input), float(0.0004, like: input))
        return select(tiny, input, div(p, q))
    }

    /// erf as x P(x^2) / Q(x^2), a [11/10] rational function on x clamped to +-3.92, beyond which
    /// erf is +-1 to float precision: one division and eleven multiply-adds, where a series and
    /// Abramowitz & Stegun's exp-based tail cost both branches and an exp on every lane (a
    /// GELU epilogue took 60% longer than the GEMM under it). The coefficients are our own fit
    /// (least squares in x^2 / 3.92^2, reweighted toward minimax on [0, 3.92]); evaluated in f32 the
    /// error is at most 4.2e-7 absolute, 2.3e-7 relative near 0. The result is clamped to
    /// [-1, 1]; a NaN stays NaN.
    func erf(_ input: LLVMValue) -> LLVMValue {
        func clamped(_ v: LLVMValue, _ bound: Float) -> LLVMValue {
            let high = select(compare(LLVMRealOGT, v, float(bound, like: v)), float(bound, like: v), v)
            return select(compare(LLVMRealOLT, high, float(-bound, like: v)), float(-bound, like: v), high)
        }
        let x = clamped(input, 3.92)
        let x2 = mul(x, x)
        let p = mul(x, polynomial(x2, [1.1283791065216064, 0.1823325753211975, 0.051837168633937836, 0.0034633860923349857,
                                       0.00028573692543432117, 2.2118358629086288e-06]))
        let q = polynomial(x2, [1.0, 0.49492117762565613, 0.1109142154455185, 0.014356129802763462, 0.001103613176383078,
                                3.981354893767275e-05])
        return clamped(div(p, q), 1)
    }
}
