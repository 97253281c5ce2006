import CLLVM
import LatheIR

/// Code for values of every element type: how each type is stored and computed, typed loads
/// and stores, conversions (ONNX's Cast), and formulas over any types, with the semantics of
/// LatheIR's TypedScalar (the interpreter's).
///
/// Each type is computed in one LLVM type: float32, float16 and bfloat16 in `float` (a float16 or
/// bfloat16 result rounded to its type after each operation, so a fused chain gives what the
/// unfused ops give), float64 in `double`, integers in iN of their width (signedness is in the
/// operations), bool in i1. They are stored as themselves: half, i16 for bfloat16, i8 for bool.
/// The narrow floats are computed in `float` and stored as their bit patterns in a byte, the
/// narrow integers in a byte (NarrowTypeCode.swift).
/// float64's erf is computed in float32; its other functions are the C library's, in double.
extension IRBuilder {
    /// The LLVM type values of `dtype` are computed in, as a vector of `lanes` (scalar for 1).
    func computeType(_ dtype: DType, lanes: Int = 1) -> LLVMType {
        let scalar: LLVMType
        switch dtype {
        case .float32, .float16, .bfloat16: scalar = f32
        case .float64: scalar = LLVMDoubleTypeInContext(context)
        case .bool: scalar = i1
        default: scalar = dtype.isNarrowFloat ? f32 : LLVMIntTypeInContext(context, UInt32(dtype.byteSize * 8))
        }
        return lanes == 1 ? scalar : LLVMVectorType(scalar, UInt32(lanes))
    }

    /// The LLVM type an element of `dtype` is stored as.
    func storageType(_ dtype: DType, lanes: Int = 1) -> LLVMType {
        let scalar: LLVMType
        switch dtype {
        case .float16: scalar = LLVMHalfTypeInContext(context)
        case .bfloat16: scalar = LLVMInt16TypeInContext(context)
        case .bool: scalar = LLVMInt8TypeInContext(context)
        default:
            guard dtype.isNarrowFloat else { return computeType(dtype, lanes: lanes) }
            scalar = LLVMInt8TypeInContext(context)
        }
        return lanes == 1 ? scalar : LLVMVectorType(scalar, UInt32(lanes))
    }

    /// The address of element `index` of a buffer of `dtype` elements.
    func pointer(_ base: LLVMValue, _ index: LLVMValue, _ dtype: DType) -> LLVMValue {
        if dtype == .float32 { return pointer(base, index) }
        let element = storageType(dtype)
        let typed = LLVMBuildPointerCast(builder, base, LLVMPointerType(element, 0), "")!
        var indices: [LLVMValue?] = [index]
        return LLVMBuildInBoundsGEP2(builder, element, typed, &indices, 1, "")
    }

    /// `lanes` elements of `dtype` from base[index...], in their compute type.
    func load(_ base: LLVMValue, _ index: LLVMValue, lanes: Int = 1, _ dtype: DType) -> LLVMValue {
        if dtype == .float32 { return load(base, index, lanes: lanes) }
        let type = storageType(dtype, lanes: lanes)
        let address = LLVMBuildPointerCast(builder, pointer(base, index, dtype), LLVMPointerType(type, 0), "")!
        let loaded = LLVMBuildLoad2(builder, type, address, "")!
        LLVMSetAlignment(loaded, UInt32(dtype.byteSize))
        return widen(loaded, dtype)
    }

    /// Stores `value` (in `dtype`'s compute type) at base[index...] as `dtype`.
    func store(_ value: LLVMValue, _ base: LLVMValue, _ index: LLVMValue, _ dtype: DType) {
        if dtype == .float32 { return store(value, base, index) }
        let stored = narrow(value, dtype)
        let address = LLVMBuildPointerCast(builder, pointer(base, index, dtype), LLVMPointerType(LLVMTypeOf(stored), 0), "")!
        LLVMSetAlignment(LLVMBuildStore(builder, stored, address), UInt32(dtype.byteSize))
    }

    /// A stored value (half, bfloat16 bits, a bool byte) in its compute type.
    private func widen(_ stored: LLVMValue, _ dtype: DType) -> LLVMValue {
        let lanes = lanes(of: stored)
        switch dtype {
        case .float16: return LLVMBuildFPExt(builder, stored, computeType(.float32, lanes: lanes), "")
        case .bfloat16:
            let wide = LLVMBuildZExt(builder, stored, integerType(32, lanes: lanes), "")!
            return LLVMBuildBitCast(builder, LLVMBuildShl(builder, wide, integer(16, bits: 32, like: wide), ""), computeType(.float32, lanes: lanes), "")
        case .bool: return LLVMBuildICmp(builder, LLVMIntNE, stored, LLVMConstNull(LLVMTypeOf(stored)), "")
        default: return dtype.isNarrowFloat ? decodeNarrow(stored, dtype) : stored
        }
    }

    /// A computed value as it is stored: float16 and bfloat16 rounded to nearest-even, a bool
    /// as a 0 or 1 byte.
    private func narrow(_ value: LLVMValue, _ dtype: DType) -> LLVMValue {
        let lanes = lanes(of: value)
        switch dtype {
        case .float16: return LLVMBuildFPTrunc(builder, value, storageType(.float16, lanes: lanes), "")
        case .bfloat16:
            // The upper half of the float32, rounded to nearest-even; a NaN stays a quiet NaN.
            let bits = LLVMBuildBitCast(builder, value, integerType(32, lanes: lanes), "")!
            let lowBit = LLVMBuildAnd(builder, LLVMBuildLShr(builder, bits, integer(16, bits: 32, like: bits), ""), integer(1, bits: 32, like: bits), "")!
            let rounded = LLVMBuildAdd(builder, LLVMBuildAdd(builder, bits, integer(0x7FFF, bits: 32, like: bits), ""), lowBit, "")!
            let quiet = LLVMBuildOr(builder, LLVMBuildLShr(builder, bits, integer(16, bits: 32, like: bits), ""), integer(0x40, bits: 32, like: bits), "")!
            let upper = select(compare(LLVMRealUNO, value, value), quiet, LLVMBuildLShr(builder, rounded, integer(16, bits: 32, like: bits), "")!)
            return LLVMBuildTrunc(builder, upper, storageType(.bfloat16, lanes: lanes), "")
        case .bool: return LLVMBuildZExt(builder, value, storageType(.bool, lanes: lanes), "")
        default: return dtype.isNarrowFloat ? encodeNarrow(value, dtype) : value
        }
    }

    /// A float16, bfloat16 or narrow float value computed in float32, rounded to its type (still
    /// in float32); a narrow float by `rule` (NarrowTypes.swift).
    func roundedToType(_ value: LLVMValue, _ dtype: DType, rule: CastRule = .standard) -> LLVMValue {
        if dtype.isNarrowFloat { return roundNarrow(value, dtype, rule: rule) }
        guard dtype == .float16 || dtype == .bfloat16 else { return value }
        return widen(narrow(value, dtype), dtype)
    }

    func integerType(_ bits: Int, lanes: Int) -> LLVMType {
        let scalar = LLVMIntTypeInContext(context, UInt32(bits))!
        return lanes == 1 ? scalar : LLVMVectorType(scalar, UInt32(lanes))
    }

    /// An integer constant of `bits` bits shaped like `like`.
    func integer(_ v: Int64, bits: Int, like: LLVMValue) -> LLVMValue {
        constant(LLVMConstInt(LLVMIntTypeInContext(context, UInt32(bits)), UInt64(bitPattern: v), 1), lanes: lanes(of: like))
    }

    /// `lanes` copies of a constant scalar (the scalar itself for one lane).
    func constant(_ scalar: LLVMValue, lanes: Int) -> LLVMValue {
        guard lanes > 1 else { return scalar }
        var elements = [LLVMValue?](repeating: scalar, count: lanes)
        return LLVMConstVector(&elements, UInt32(lanes))
    }

    /// `value` as a constant of `dtype` (converted as Cast converts), in its compute type.
    func constant(_ value: Float, _ dtype: DType, lanes: Int) -> LLVMValue {
        let converted = dtype.converting(.float(Double(value)))
        let scalar: LLVMValue
        switch converted {
        case let .float(v): scalar = LLVMConstReal(computeType(dtype), v)
        case let .signed(v): scalar = LLVMConstInt(computeType(dtype), UInt64(bitPattern: v), 1)
        case let .unsigned(v): scalar = LLVMConstInt(computeType(dtype), v, 0)
        case let .bool(v): scalar = LLVMConstInt(i1, v ? 1 : 0, 0)
        }
        return constant(scalar, lanes: lanes)
    }

    /// A float of `from` clamped to the range of `to` (an 8- or 16-bit integer type), NaN to 0: the float
    /// that a saturating conversion truncates. For an unsigned type, a maximum with 0 that takes
    /// NaN to 0 and a minimum (MAXPS and MINPS, where three compares and selects did the same).
    func saturated(_ value: LLVMValue, from: DType, to: DType) -> LLVMValue {
        let range = to.saturatedRange!
        let lanes = lanes(of: value)
        let computed: DType = from == .float64 ? .float64 : .float32   // half and narrow floats are computed in f32
        let zero = constant(0, computed, lanes: lanes), high = constant(Float(range.upperBound), computed, lanes: lanes)
        var v = value
        if range.lowerBound == 0 {
            v = select(LLVMBuildFCmp(builder, LLVMRealOGT, v, zero, "")!, v, zero)
        } else {
            let low = constant(Float(range.lowerBound), computed, lanes: lanes)
            v = select(LLVMBuildFCmp(builder, LLVMRealUNO, v, v, "")!, zero, v)
            v = select(LLVMBuildFCmp(builder, LLVMRealOLT, v, low, "")!, low, v)
        }
        return select(LLVMBuildFCmp(builder, LLVMRealOLT, v, high, "")!, v, high)
    }

    /// `value`, of `from`'s compute type, converted to `to` as ONNX's Cast converts (see
    /// DType.converting): floats rounded to nearest-even; floats to integers truncated and
    /// saturated, NaN to 0 (llvm.fptosi.sat); integers wrapped or extended by the source's
    /// signedness; bool true for any non-zero value (NaN too). To a narrow type as
    /// NarrowTypes.swift says: a float by `rule`, a narrow integer wrapped to its width (from a
    /// float, truncated to 64 bits first, as the interpreter does).
    func convert(_ value: LLVMValue, from: DType, to: DType, rule: CastRule = .standard) -> LLVMValue {
        guard from != to else { return value }
        if rule.reinterpretsFrom != nil, from.byteSize == to.byteSize, from.isComputed, to.isComputed {
            // BitCast: the stored bits of one type read as the other's.
            let stored = narrow(value, from)
            let bits = LLVMBuildBitCast(builder, stored, integerType(from.byteSize * 8, lanes: lanes(of: value)), "")!
            return widen(LLVMBuildBitCast(builder, bits, storageType(to, lanes: lanes(of: value)), "")!, to)
        }
        if to.isNarrowInteger && from.isFloatingPoint {
            let wide = convert(value, from: from, to: .int64)
            return wrapNarrow(LLVMBuildTrunc(builder, wide, computeType(to, lanes: lanes(of: value)), "")!, to)
        }
        if to.isNarrowInteger { return wrapNarrow(convert(value, from: from, to: to.isSigned ? .int8 : .uint8), to) }
        let lanes = lanes(of: value)
        let target = computeType(to, lanes: lanes)
        switch (from.isFloatingPoint, from == .bool, to.isFloatingPoint, to == .bool) {
        case (true, _, true, _):
            // Through float32 when either side is a half type: as ONNX Runtime converts.
            var v = value
            if from == .float64 && to != .float64 { v = LLVMBuildFPTrunc(builder, v, computeType(.float32, lanes: lanes), "") }
            if to == .float64 { v = LLVMBuildFPExt(builder, v, target, "") }
            return roundedToType(v, to, rule: rule)
        case (true, _, _, true):
            return LLVMBuildFCmp(builder, LLVMRealUNE, value, LLVMConstNull(LLVMTypeOf(value)), "")
        case (true, _, _, _) where to.byteSize <= 2 && to.saturatedRange != nil:
            // Clamped in the float type, then converted through i32: what llvm.fpto*i.sat
            // gives, but in vector instructions, where the backend takes an 8- or 16-bit
            // saturating conversion apart lane by lane (a quantized kernel's every store).
            return LLVMBuildTrunc(builder, LLVMBuildFPToSI(builder, saturated(value, from: from, to: to), integerType(32, lanes: lanes), "")!, target, "")
        case (true, _, _, _):
            let name = to.isSigned ? "llvm.fptosi.sat" : "llvm.fptoui.sat"
            return callIntrinsic(name, overloads: [target, LLVMTypeOf(value)], returning: target, [value])
        case (_, true, true, _):
            return roundedToType(LLVMBuildUIToFP(builder, value, target, "")!, to, rule: rule)
        case (_, true, _, _):
            return LLVMBuildZExt(builder, value, target, "")
        case (_, _, true, _):
            let v = from.isSigned ? LLVMBuildSIToFP(builder, value, target, "")! : LLVMBuildUIToFP(builder, value, target, "")!
            return roundedToType(v, to, rule: rule)
        case (_, _, _, true):
            return LLVMBuildICmp(builder, LLVMIntNE, value, LLVMConstNull(LLVMTypeOf(value)), "")
        default:
            let (fromBits, toBits) = (from.byteSize, to.byteSize)
            if toBits < fromBits { return LLVMBuildTrunc(builder, value, target, "") }
            if toBits == fromBits { return value }
            return from.isSigned ? LLVMBuildSExt(builder, value, target, "") : LLVMBuildZExt(builder, value, target, "")
        }
    }
}

extension DType {
    /// The type data of this type is moved as when it is only copied (a transpose, a slice, a
    /// gather): the integer of its width, or float32 for 4 bytes (as every f32 kernel moves it).
    var movementType: DType {
        switch byteSize {
        case 1: return .uint8
        case 2: return .uint16
        case 8: return .int64
        default: return .float32
        }
    }
}
