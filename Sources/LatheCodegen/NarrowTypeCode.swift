import CLLVM
import LatheIR

/// Code for the narrow element types (LatheIR's NarrowTypes.swift): a narrow float is computed
/// in float32 and stored as its bit pattern in a byte; a narrow integer is computed and stored
/// as a byte holding its value. Each function is the interpreter's rule (NarrowFloatFormat,
/// PowerOfTwoFormat, DType.wrappedNarrow) written in vector code, with selects instead of
/// branches, so that a cast loop stays vectorized.
extension IRBuilder {
    /// A narrow float's bit pattern (i8) as its value, in float32.
    func decodeNarrow(_ code: LLVMValue, _ dtype: DType) -> LLVMValue {
        let c = LLVMBuildZExt(builder, code, integerType(32, lanes: lanes(of: code)), "")!
        if dtype == .float8e8m0 { return powerOfTwoValue(c) }
        guard let f = dtype.narrowFloat else { return code }
        let k = { (v: Int) in self.integer(Int64(v), bits: 32, like: c) }
        let bits = LLVMBuildAnd(builder, c, k(f.signBit * 2 - 1), "")!
        let magnitude = LLVMBuildAnd(builder, bits, k(f.signBit - 1), "")!
        let e = LLVMBuildLShr(builder, magnitude, k(f.mantissaBits), "")!
        let m = LLVMBuildAnd(builder, magnitude, k((1 << f.mantissaBits) - 1), "")!
        let normalBits = LLVMBuildOr(builder, LLVMBuildShl(builder, LLVMBuildAdd(builder, e, k(127 - f.bias), ""), k(23), ""),
                                     LLVMBuildShl(builder, m, k(23 - f.mantissaBits), ""), "")!
        let normal = LLVMBuildBitCast(builder, normalBits, floatType(lanes: lanes(of: c)), "")!
        let subnormal = mul(LLVMBuildUIToFP(builder, m, floatType(lanes: lanes(of: c)), "")!, float(Float(f.subnormalStep), like: c))
        var value = select(integerEqual(e, 0), subnormal, normal)
        let top = (1 << f.exponentBits) - 1
        if f.hasInfinity {
            value = select(integerEqual(e, top), select(integerEqual(m, 0), float(.infinity, like: c), float(.nan, like: c)), value)
        }
        if f.topCodeIsNaN { value = select(integerEqual(magnitude, top << f.mantissaBits | ((1 << f.mantissaBits) - 1)), float(.nan, like: c), value) }
        value = select(LLVMBuildICmp(builder, LLVMIntNE, LLVMBuildAnd(builder, bits, k(f.signBit), ""), k(0), "")!, neg(value), value)
        if f.unsignedZero { value = select(integerEqual(bits, f.signBit), float(.nan, like: c), value) }
        return value
    }

    /// One of a narrow float's values (or NaN, or its infinity), in float32, as its bit pattern (i8).
    func encodeNarrow(_ value: LLVMValue, _ dtype: DType) -> LLVMValue {
        let i8Type = LLVMInt8TypeInContext(context)!
        let byteType = lanes(of: value) == 1 ? i8Type : LLVMVectorType(i8Type, UInt32(lanes(of: value)))!
        let bits = LLVMBuildBitCast(builder, value, integerType(32, lanes: lanes(of: value)), "")!
        let k = { (v: Int) in self.integer(Int64(v), bits: 32, like: bits) }
        let isNaN = compare(LLVMRealUNO, value, value)
        if dtype == .float8e8m0 {
            let code = select(isNaN, k(Int(PowerOfTwoFormat.nanCode)), LLVMBuildAnd(builder, LLVMBuildLShr(builder, bits, k(23), ""), k(0xFF), ""))
            return LLVMBuildTrunc(builder, code, byteType, "")
        }
        guard let f = dtype.narrowFloat else { return value }
        let a = intrinsic("llvm.fabs", value)
        let aBits = LLVMBuildBitCast(builder, a, integerType(32, lanes: lanes(of: value)), "")!
        let normal = LLVMBuildSub(builder, LLVMBuildLShr(builder, aBits, k(23 - f.mantissaBits), ""), k((127 - f.bias) << f.mantissaBits), "")!
        let scaled = mul(a, float(Float(1 / f.subnormalStep), like: value))
        let subnormal = LLVMBuildFPToUI(builder, scaled, integerType(32, lanes: lanes(of: value)), "")!
        var magnitude = select(compare(LLVMRealOLT, a, float(Float(f.minNormal), like: value)), subnormal, normal)
        let top = (1 << f.exponentBits) - 1
        if f.hasInfinity { magnitude = select(compare(LLVMRealOEQ, a, float(.infinity, like: value)), k(top << f.mantissaBits), magnitude) }
        var sign = LLVMBuildShl(builder, LLVMBuildLShr(builder, bits, k(31), ""), k(f.exponentBits + f.mantissaBits), "")!
        if f.unsignedZero { sign = select(integerEqual(magnitude, 0), k(0), sign) }
        var code = LLVMBuildOr(builder, magnitude, sign, "")!
        if f.hasNaN {
            let nanMagnitude = f.unsignedZero ? 0 : top << f.mantissaBits | (f.topCodeIsNaN ? (1 << f.mantissaBits) - 1 : 1 << (f.mantissaBits - 1))
            let nan = f.unsignedZero ? k(f.signBit) : LLVMBuildOr(builder, sign, k(nanMagnitude), "")!
            code = select(isNaN, nan, code)
        }
        return LLVMBuildTrunc(builder, code, byteType, "")
    }

    /// A float32 rounded to a narrow float's values by `rule` (still float32): what
    /// NarrowFloatFormat.rounded and PowerOfTwoFormat.code compute.
    func roundNarrow(_ value: LLVMValue, _ dtype: DType, rule: CastRule) -> LLVMValue {
        let bits = LLVMBuildBitCast(builder, value, integerType(32, lanes: lanes(of: value)), "")!
        let k = { (v: Int) in self.integer(Int64(v), bits: 32, like: bits) }
        if dtype == .float8e8m0 {
            let exponent = LLVMBuildAnd(builder, LLVMBuildLShr(builder, bits, k(23), ""), k(0xFF), "")!
            let i1Type = LLVMInt1TypeInContext(context)!
            let never = LLVMConstNull(lanes(of: value) == 1 ? i1Type : LLVMVectorType(i1Type, UInt32(lanes(of: value))))!
            var up: LLVMValue
            switch rule.powerOfTwoRounding {
            case .up: up = LLVMBuildICmp(builder, LLVMIntNE, LLVMBuildAnd(builder, bits, k(0x7F_FFFF), ""), k(0), "")
            case .down: up = never
            case .nearest:
                let guardBit = LLVMBuildICmp(builder, LLVMIntNE, LLVMBuildAnd(builder, bits, k(0x40_0000), ""), k(0), "")!
                let rest = LLVMBuildICmp(builder, LLVMIntNE, LLVMBuildAnd(builder, bits, k(0x3F_FFFF), ""), k(0), "")!
                up = LLVMBuildAnd(builder, guardBit, LLVMBuildOr(builder, rest, LLVMBuildICmp(builder, LLVMIntUGT, exponent, k(0), ""), ""), "")
            }
            if rule.saturate { up = LLVMBuildAnd(builder, up, LLVMBuildICmp(builder, LLVMIntNE, exponent, k(0xFE), ""), "") }
            var code = LLVMBuildAdd(builder, exponent, LLVMBuildZExt(builder, up, integerType(32, lanes: lanes(of: value)), ""), "")!
            code = select(integerEqual(exponent, 0xFF), k(0xFF), code)
            return powerOfTwoValue(code)
        }
        guard let f = dtype.narrowFloat else { return value }
        let a = intrinsic("llvm.fabs", value)
        let aBits = LLVMBuildBitCast(builder, a, integerType(32, lanes: lanes(of: value)), "")!
        // Nearest-even on the float32 bits: add half an ulp of the narrow type less one, plus the
        // kept part's last bit, then clear the dropped bits (a carry moves into the exponent).
        let shift = 23 - f.mantissaBits
        let lastKept = LLVMBuildAnd(builder, LLVMBuildLShr(builder, aBits, k(shift), ""), k(1), "")!
        let raised = LLVMBuildAdd(builder, LLVMBuildAdd(builder, aBits, k((1 << (shift - 1)) - 1), ""), lastKept, "")!
        let normal = LLVMBuildBitCast(builder, LLVMBuildAnd(builder, raised, k(~((1 << shift) - 1)), ""), LLVMTypeOf(value), "")!
        let scale = Float(1 / f.subnormalStep)
        let subnormal = mul(intrinsic("llvm.roundeven", mul(a, float(scale, like: value))), float(Float(f.subnormalStep), like: value))
        var q = select(compare(LLVMRealOLT, a, float(Float(f.minNormal), like: value)), subnormal, normal)
        let overflow: Float = rule.saturate || !f.hasNaN ? Float(f.maxFinite) : (f.hasInfinity ? .infinity : .nan)
        q = select(compare(LLVMRealOGT, q, float(Float(f.maxFinite), like: value)), float(overflow, like: value), q)
        var result = intrinsic("llvm.copysign", q, value)
        if f.unsignedZero { result = select(compare(LLVMRealOEQ, q, float(0, like: value)), float(0, like: value), result) }
        let isNaN = compare(LLVMRealUNO, value, value)
        // FLOAT4E2M1 has no NaN: a NaN becomes a zero of the opposite sign (NarrowTypes.swift).
        let nan = f.hasNaN ? intrinsic("llvm.copysign", float(.nan, like: value), value) : intrinsic("llvm.copysign", float(0, like: value), neg(value))
        return select(isNaN, nan, result)
    }

    /// A narrow integer's value computed in a byte, wrapped to its width (sign-extended for the
    /// signed ones).
    func wrapNarrow(_ value: LLVMValue, _ dtype: DType) -> LLVMValue {
        guard dtype.isNarrowInteger else { return value }
        let type = LLVMTypeOf(value)!
        let scalarType = lanes(of: value) == 1 ? type : LLVMGetElementType(type)!
        let shift = Int(LLVMGetIntTypeWidth(scalarType)) - dtype.valueBits
        let amount = LLVMConstInt(scalarType, UInt64(shift), 0)!
        let splatAmount = constant(amount, lanes: lanes(of: value))
        let up = LLVMBuildShl(builder, value, splatAmount, "")!
        return dtype.isSigned ? LLVMBuildAShr(builder, up, splatAmount, "") : LLVMBuildLShr(builder, up, splatAmount, "")
    }

    /// FLOAT8E8M0's value of a code held in i32 lanes: 2^(code - 127), NaN for 255.
    private func powerOfTwoValue(_ code: LLVMValue) -> LLVMValue {
        let k = { (v: Int) in self.integer(Int64(v), bits: 32, like: code) }
        // 2^-127 is a float32 subnormal: its one mantissa bit.
        let bits = select(integerEqual(code, 0), k(0x40_0000), LLVMBuildShl(builder, code, k(23), ""))
        let value = LLVMBuildBitCast(builder, bits, floatType(lanes: lanes(of: code)), "")!
        return select(integerEqual(code, Int(PowerOfTwoFormat.nanCode)), float(.nan, like: code), value)
    }

    /// An i32 comparison with a constant, lane by lane.
    private func integerEqual(_ a: LLVMValue, _ v: Int) -> LLVMValue {
        LLVMBuildICmp(builder, LLVMIntEQ, a, integer(Int64(v), bits: 32, like: a), "")
    }
}
