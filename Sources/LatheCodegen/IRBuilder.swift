import CLLVM

public typealias LLVMValue = LLVMValueRef
public typealias LLVMType = LLVMTypeRef

/// A thin Swift layer over LLVM's C IRBuilder: types, constants, float math that works the
/// same on scalars and on vectors, pointers and counted loops. Every kernel emitter writes
/// through it, so the C API's ceremony lives in this one file.
final class IRBuilder {
    let context: LLVMContextRef
    let module: LLVMModuleRef
    let builder: LLVMBuilderRef
    /// Floats per vector register on the host (8 for AVX2, 16 for AVX-512).
    let vectorWidth: Int
    /// The i64 counter the kernel being emitted claims its units from, when it does.
    var unitCounter: LLVMValue?
    /// The host multiplies 4 byte pairs a 32-bit lane in one instruction at this vector width
    /// (vpdpbusd: AVX-512 VNNI, or AVX-VNNI for 8 lanes); else the integer GEMM widens them.
    var hasInt8DotProduct = false
    /// The host loads and stores bytes under a mask (AVX-512BW): the byte unfold moves each row
    /// by masked vectors.
    var hasByteMasks = false

    let f32: LLVMType
    let i1: LLVMType
    let i32: LLVMType
    let i64: LLVMType
    let void: LLVMType
    let floatPointer: LLVMType

    init(context: LLVMContextRef, module: LLVMModuleRef, vectorWidth: Int) {
        self.context = context
        self.module = module
        self.vectorWidth = vectorWidth
        builder = LLVMCreateBuilderInContext(context)
        f32 = LLVMFloatTypeInContext(context)
        i1 = LLVMInt1TypeInContext(context)
        i32 = LLVMInt32TypeInContext(context)
        i64 = LLVMInt64TypeInContext(context)
        void = LLVMVoidTypeInContext(context)
        floatPointer = LLVMPointerType(f32, 0)
    }

    deinit { LLVMDisposeBuilder(builder) }

    // MARK: types and constants

    /// Float vector of `lanes` lanes; one lane is the plain scalar type.
    func floatType(lanes: Int) -> LLVMType { lanes == 1 ? f32 : LLVMVectorType(f32, UInt32(lanes)) }

    func lanes(of value: LLVMValue) -> Int {
        let type = LLVMTypeOf(value)
        return LLVMGetTypeKind(type) == LLVMVectorTypeKind ? Int(LLVMGetVectorSize(type)) : 1
    }

    func int(_ v: Int) -> LLVMValue { LLVMConstInt(i64, UInt64(bitPattern: Int64(v)), 1) }

    func float(_ v: Float, lanes: Int = 1) -> LLVMValue {
        let scalar = LLVMConstReal(f32, Double(v))!
        guard lanes > 1 else { return scalar }
        var elements = [LLVMValue?](repeating: scalar, count: lanes)
        return LLVMConstVector(&elements, UInt32(lanes))
    }

    /// A constant shaped like `like` (scalar or vector).
    func float(_ v: Float, like: LLVMValue) -> LLVMValue { float(v, lanes: lanes(of: like)) }

    /// A vector of `lanes` copies of a scalar of any type.
    func splat(_ scalar: LLVMValue, lanes: Int) -> LLVMValue {
        guard lanes > 1 else { return scalar }
        let vectorType = LLVMVectorType(LLVMTypeOf(scalar), UInt32(lanes))!
        let one = LLVMBuildInsertElement(builder, LLVMGetUndef(vectorType), scalar, LLVMConstInt(i32, 0, 0), "")
        var zeros = [LLVMValue?](repeating: LLVMConstInt(i32, 0, 0), count: lanes)
        return LLVMBuildShuffleVector(builder, one, LLVMGetUndef(vectorType), LLVMConstVector(&zeros, UInt32(lanes)), "splat")
    }

    // MARK: float arithmetic (scalar or vector alike)

    /// The vector of lanes `indices` of `a` (or of a and b concatenated).
    func shuffle(_ a: LLVMValue, with b: LLVMValue? = nil, _ indices: [Int]) -> LLVMValue {
        var mask = indices.map { LLVMConstInt(LLVMInt32TypeInContext(context), UInt64($0), 0) }
        return LLVMBuildShuffleVector(builder, a, b ?? LLVMGetUndef(LLVMTypeOf(a)), LLVMConstVector(&mask, UInt32(mask.count)), "")!
    }

    /// Lanes first, first + step, first + 2 step, ... of a vector `step` times as wide as the
    /// result: a strided load made of one wide load.
    func lanes(of wide: LLVMValue, from first: Int = 0, step: Int) -> LLVMValue {
        shuffle(wide, (0..<(lanes(of: wide) / step)).map { first + $0 * step })
    }

    func add(_ a: LLVMValue, _ b: LLVMValue) -> LLVMValue { LLVMBuildFAdd(builder, a, b, "") }
    func sub(_ a: LLVMValue, _ b: LLVMValue) -> LLVMValue { LLVMBuildFSub(builder, a, b, "") }
    func mul(_ a: LLVMValue, _ b: LLVMValue) -> LLVMValue { LLVMBuildFMul(builder, a, b, "") }
    func div(_ a: LLVMValue, _ b: LLVMValue) -> LLVMValue { LLVMBuildFDiv(builder, a, b, "") }
    func neg(_ a: LLVMValue) -> LLVMValue { LLVMBuildFNeg(builder, a, "") }
    func fma(_ a: LLVMValue, _ b: LLVMValue, _ c: LLVMValue) -> LLVMValue { intrinsic("llvm.fma", a, b, c) }

    func compare(_ predicate: LLVMRealPredicate, _ a: LLVMValue, _ b: LLVMValue) -> LLVMValue {
        LLVMBuildFCmp(builder, predicate, a, b, "")
    }

    func select(_ condition: LLVMValue, _ a: LLVMValue, _ b: LLVMValue) -> LLVMValue {
        LLVMBuildSelect(builder, condition, a, b, "")
    }

    /// NaN-propagating maximum and minimum (NumPy's), without relying on llvm.maximum,
    /// which older x86 back ends cannot lower for vectors.
    func maximum(_ a: LLVMValue, _ b: LLVMValue) -> LLVMValue {
        let larger = select(compare(LLVMRealOGT, a, b), a, b)
        return select(compare(LLVMRealUNO, a, a), a, larger)
    }

    func minimum(_ a: LLVMValue, _ b: LLVMValue) -> LLVMValue {
        let smaller = select(compare(LLVMRealOLT, a, b), a, b)
        return select(compare(LLVMRealUNO, a, a), a, smaller)
    }

    /// x86's MAXPS: the larger, or `b` where either is NaN. One instruction where `maximum` takes
    /// four; for callers that find NaNs apart (pool2d).
    func maxOrSecond(_ a: LLVMValue, _ b: LLVMValue) -> LLVMValue { select(compare(LLVMRealOGT, a, b), a, b) }

    /// Whether any lane of these values is NaN: an i1.
    func anyNaN(_ values: [LLVMValue]) -> LLVMValue {
        // Two values a comparison; a vector's lanes are folded by viewing its i1 lanes as one integer.
        var flags: [LLVMValue] = [], pending = values
        while let a = pending.popLast() {
            var b = a
            if let last = pending.last, lanes(of: last) == lanes(of: a) { b = pending.removeLast() }
            let unordered = compare(LLVMRealUNO, a, b)
            let count = lanes(of: a)
            let bits = count == 1 ? unordered : LLVMBuildBitCast(builder, unordered, LLVMIntTypeInContext(context, UInt32(count)), "")!
            flags.append(count == 1 ? bits : LLVMBuildICmp(builder, LLVMIntNE, bits, LLVMConstInt(LLVMTypeOf(bits), 0, 0), "")!)
        }
        return flags.dropFirst().reduce(flags[0]) { LLVMBuildOr(builder, $0, $1, "")! }
    }

    /// Calls a non-overloaded intrinsic without operands, e.g. llvm.readcyclecounter.
    func callIntrinsic(_ name: String, returning type: LLVMType) -> LLVMValue {
        let id = LLVMLookupIntrinsicID(name, name.utf8.count)
        let function = LLVMGetIntrinsicDeclaration(module, id, nil, 0)
        let functionType = LLVMFunctionType(type, nil, 0, 0)
        return LLVMBuildCall2(builder, functionType, function, nil, 0, "")
    }

    /// Calls an overloaded intrinsic on operands of one float type, e.g. llvm.fma.v8f32.
    func intrinsic(_ name: String, _ operands: LLVMValue...) -> LLVMValue {
        var type: LLVMType? = LLVMTypeOf(operands[0])
        let id = LLVMLookupIntrinsicID(name, name.utf8.count)
        let function = LLVMGetIntrinsicDeclaration(module, id, &type, 1)
        var parameterTypes = [LLVMType?](repeating: type, count: operands.count)
        let functionType = LLVMFunctionType(type, &parameterTypes, UInt32(operands.count), 0)
        var args = operands.map { Optional($0) }
        return LLVMBuildCall2(builder, functionType, function, &args, UInt32(args.count), "")
    }

    /// Calls intrinsic `name`, overloaded on `overloads`, on `arguments` (of their own types).
    @discardableResult
    func callIntrinsic(_ name: String, overloads: [LLVMType], returning type: LLVMType, _ arguments: [LLVMValue]) -> LLVMValue {
        var overloadTypes = overloads.map { Optional($0) }
        let function = LLVMGetIntrinsicDeclaration(module, LLVMLookupIntrinsicID(name, name.utf8.count), &overloadTypes, overloads.count)
        var parameters: [LLVMType?] = arguments.map { LLVMTypeOf($0) }
        let functionType = LLVMFunctionType(type, &parameters, UInt32(arguments.count), 0)
        var args = arguments.map { Optional($0) }
        return LLVMBuildCall2(builder, functionType, function, &args, UInt32(args.count), "")
    }

    /// A hint to bring the cache line of base[index] into L1 for reading.
    func prefetch(_ base: LLVMValue, _ index: LLVMValue) {
        let bytePointer = LLVMPointerType(LLVMInt8TypeInContext(context), 0)!
        let address = LLVMBuildPointerCast(builder, pointer(base, index), bytePointer, "")!
        callIntrinsic("llvm.prefetch", overloads: [bytePointer], returning: void,
                      [address, LLVMConstInt(i32, 0, 0), LLVMConstInt(i32, 3, 0), LLVMConstInt(i32, 1, 0)])
    }

    // MARK: integers

    func iadd(_ a: LLVMValue, _ b: LLVMValue) -> LLVMValue { LLVMBuildAdd(builder, a, b, "") }
    func imul(_ a: LLVMValue, _ b: LLVMValue) -> LLVMValue { LLVMBuildMul(builder, a, b, "") }
    func isub(_ a: LLVMValue, _ b: LLVMValue) -> LLVMValue { LLVMBuildSub(builder, a, b, "") }
    func imax(_ a: LLVMValue, _ b: LLVMValue) -> LLVMValue { LLVMBuildSelect(builder, LLVMBuildICmp(builder, LLVMIntSGT, a, b, ""), a, b, "") }
    func imin(_ a: LLVMValue, _ b: LLVMValue) -> LLVMValue { LLVMBuildSelect(builder, LLVMBuildICmp(builder, LLVMIntSLT, a, b, ""), a, b, "") }
    /// a + b * scale, folding the constant cases so the IR stays readable.
    func offset(_ base: LLVMValue, _ index: LLVMValue, times scale: Int) -> LLVMValue {
        if scale == 0 { return base }
        return iadd(base, scale == 1 ? index : imul(index, int(scale)))
    }

    // MARK: memory

    func pointer(_ base: LLVMValue, _ index: LLVMValue) -> LLVMValue {
        var indices: [LLVMValue?] = [index]
        return LLVMBuildInBoundsGEP2(builder, f32, base, &indices, 1, "")
    }

    func load(_ base: LLVMValue, _ index: LLVMValue, lanes: Int = 1) -> LLVMValue {
        let type = floatType(lanes: lanes)
        let address = lanes == 1 ? pointer(base, index) : LLVMBuildPointerCast(builder, pointer(base, index), LLVMPointerType(type, 0), "")
        let load = LLVMBuildLoad2(builder, type, address, "")!
        LLVMSetAlignment(load, 4)
        return load
    }

    func store(_ value: LLVMValue, _ base: LLVMValue, _ index: LLVMValue) {
        let lanes = lanes(of: value)
        let address = lanes == 1 ? pointer(base, index) : LLVMBuildPointerCast(builder, pointer(base, index), LLVMPointerType(floatType(lanes: lanes), 0), "")
        LLVMSetAlignment(LLVMBuildStore(builder, value, address), 4)
    }

    /// The first `valid` lanes of `value` stored at base[index...]: the end of a row that fills
    /// no whole vector. Nothing past them is written. As whole stores of halves, quarters, ...
    /// (6 lanes: 4, then 2), not a masked store, which some cores run as microcode (measured on a
    /// depthwise layer: benchmarks/RESULTS.md, "Measurements behind choices in the code").
    func partialStore(_ value: LLVMValue, _ base: LLVMValue, _ index: LLVMValue, valid: Int) {
        let lanes = lanes(of: value)
        guard valid < lanes else { return store(value, base, index) }
        var (stored, piece) = (0, lanes / 2)
        while stored < valid {
            if valid - stored >= piece {
                let part = piece == 1 ? LLVMBuildExtractElement(builder, value, LLVMConstInt(i32, UInt64(stored), 0), "")!
                                      : shuffle(value, Array(stored..<(stored + piece)))
                store(part, base, iadd(index, int(stored)))
                stored += piece
            }
            piece /= 2
        }
    }

    /// A vector of `lanes` whose first `valid` lanes are loaded from base[index...] (a masked
    /// load) and the rest are zero: nothing past them is read.
    func partialLoad(_ base: LLVMValue, _ index: LLVMValue, lanes: Int, valid: Int) -> LLVMValue {
        guard valid < lanes else { return load(base, index, lanes: lanes) }
        guard valid > 0 else { return float(0, lanes: lanes) }
        let vectorPointer = LLVMPointerType(floatType(lanes: lanes), 0)!
        let address = LLVMBuildPointerCast(builder, pointer(base, index), vectorPointer, "")!
        return callIntrinsic("llvm.masked.load", overloads: [floatType(lanes: lanes), vectorPointer], returning: floatType(lanes: lanes),
                             [address, LLVMConstInt(i32, 4, 0), laneMask(lanes: lanes, valid: valid), float(0, lanes: lanes)])
    }

    /// base[index + j] for the lanes j with 0 <= column + j < limit, zero in the others (a
    /// masked load: nothing outside is read). The address is formed without `inbounds`, since it
    /// may lie before the start of the buffer when the first lanes are masked off.
    func maskedLoad(_ base: LLVMValue, _ index: LLVMValue, lanes: Int, validFrom column: LLVMValue, below limit: Int) -> LLVMValue {
        // In 32-bit lanes, as wide as the floats: 64-bit ones took four compares and the packing
        // of their results for each 8 floats on AVX2.
        let type = floatType(lanes: lanes), intVector = LLVMVectorType(i32, UInt32(lanes))!
        var steps: [LLVMValue?] = (0..<lanes).map { LLVMConstInt(i32, UInt64($0), 0) }
        var limits: [LLVMValue?] = (0..<lanes).map { _ in LLVMConstInt(i32, UInt64(limit), 0) }
        let column32 = LLVMBuildTrunc(builder, column, i32, "")!
        let columns = LLVMBuildAdd(builder, splatInteger(column32, lanes: lanes, type: intVector), LLVMConstVector(&steps, UInt32(lanes)), "")!
        // One unsigned compare: a negative column wraps to a large one.
        let mask = LLVMBuildICmp(builder, LLVMIntULT, columns, LLVMConstVector(&limits, UInt32(lanes)), "")!
        var indices: [LLVMValue?] = [index]
        let address = LLVMBuildPointerCast(builder, LLVMBuildGEP2(builder, f32, base, &indices, 1, ""), LLVMPointerType(type, 0), "")!
        return callIntrinsic("llvm.masked.load", overloads: [type, LLVMPointerType(type, 0)], returning: type,
                             [address, LLVMConstInt(i32, 4, 0), mask, float(0, lanes: lanes)])
    }

    /// A vector of bytes (`type`) at base[offset...] under `mask`, `passthru`'s lanes where it is
    /// off (nothing there is read). The address is formed without `inbounds`: lane 0 may lie
    /// before the buffer when its lane is masked off.
    func maskedBytes(_ base: LLVMValue, at offset: LLVMValue, _ type: LLVMType, mask: LLVMValue, passthru: LLVMValue) -> LLVMValue {
        var at: [LLVMValue?] = [offset]
        let address = LLVMBuildGEP2(builder, LLVMInt8TypeInContext(context), base, &at, 1, "")!
        return callIntrinsic("llvm.masked.load", overloads: [type, LLVMTypeOf(address)], returning: type, [address, LLVMConstInt(i32, 1, 0), mask, passthru])
    }

    /// Stores the lanes of a byte vector under `mask` at base[offset...].
    func storeMaskedBytes(_ value: LLVMValue, _ base: LLVMValue, at offset: LLVMValue, mask: LLVMValue) {
        let address = pointer(base, offset, .uint8)
        callIntrinsic("llvm.masked.store", overloads: [LLVMTypeOf(value), LLVMTypeOf(address)], returning: void, [value, address, LLVMConstInt(i32, 1, 0), mask])
    }

    private func splatInteger(_ scalar: LLVMValue, lanes: Int, type: LLVMType) -> LLVMValue {
        let inserted = LLVMBuildInsertElement(builder, LLVMGetUndef(type), scalar, LLVMConstInt(i32, 0, 0), "")!
        var zeros: [LLVMValue?] = (0..<lanes).map { _ in LLVMConstInt(i32, 0, 0) }
        return LLVMBuildShuffleVector(builder, inserted, LLVMGetUndef(type), LLVMConstVector(&zeros, UInt32(lanes)), "")!
    }

    /// <lanes x i1>: true for the first `valid` lanes.
    private func laneMask(lanes: Int, valid: Int) -> LLVMValue { integerVector((0..<lanes).map { $0 < valid ? 1 : 0 }, bits: 1) }

    /// A constant vector of `bits`-bit integers (1: a mask of bools), one lane a value.
    func integerVector(_ values: [Int], bits: Int) -> LLVMValue {
        let type = LLVMIntTypeInContext(context, UInt32(bits))!
        var elements: [LLVMValue?] = values.map { LLVMConstInt(type, UInt64(bitPattern: Int64($0)), 0) }
        return LLVMConstVector(&elements, UInt32(values.count))
    }

    /// A stack slot for a loop-carried value; LLVM's SROA turns it back into registers.
    func variable(_ initial: LLVMValue) -> LLVMValue {
        let current = LLVMGetInsertBlock(builder)
        let function = LLVMGetBasicBlockParent(current)
        let entry = LLVMGetEntryBasicBlock(function)
        let slotBuilder = LLVMCreateBuilderInContext(context)
        defer { LLVMDisposeBuilder(slotBuilder) }
        if let first = LLVMGetFirstInstruction(entry) { LLVMPositionBuilderBefore(slotBuilder, first) } else { LLVMPositionBuilderAtEnd(slotBuilder, entry) }
        let slot = LLVMBuildAlloca(slotBuilder, LLVMTypeOf(initial), "")!
        LLVMBuildStore(builder, initial, slot)
        return slot
    }

    /// A stack array of floats, for a few values a kernel spills (not for buffers: worker
    /// threads have small stacks).
    func arrayVariable(floats count: Int) -> LLVMValue {
        let entry = LLVMGetEntryBasicBlock(LLVMGetBasicBlockParent(LLVMGetInsertBlock(builder)))
        let slotBuilder = LLVMCreateBuilderInContext(context)
        defer { LLVMDisposeBuilder(slotBuilder) }
        if let first = LLVMGetFirstInstruction(entry) { LLVMPositionBuilderBefore(slotBuilder, first) } else { LLVMPositionBuilderAtEnd(slotBuilder, entry) }
        let array = LLVMBuildAlloca(slotBuilder, LLVMArrayType(f32, UInt32(count)), "")!
        LLVMSetAlignment(array, 64)
        return LLVMBuildPointerCast(builder, array, floatPointer, "")
    }

    func read(_ slot: LLVMValue, type: LLVMType) -> LLVMValue { LLVMBuildLoad2(builder, type, slot, "") }
    func write(_ value: LLVMValue, _ slot: LLVMValue) { LLVMBuildStore(builder, value, slot) }

    // MARK: control flow

    /// for i in stride(from: start, to: end, by: step) { body(i) }, with static bounds.
    /// Emits nothing when the range is empty, and no loop at all for a single trip.
    /// `unroll: false` marks an outer loop that LLVM must not unroll: fully unrolled outer
    /// loops gain no speed here and make basic blocks so large that instruction scheduling
    /// turns quadratic (seconds of JIT time for a small CNN).
    func loop(_ start: Int, _ end: Int, step: Int = 1, unroll: Bool = true, _ body: (LLVMValue) -> Void) {
        guard end > start else { return }
        if start + step >= end { body(int(start)); return }
        let function = LLVMGetBasicBlockParent(LLVMGetInsertBlock(builder))
        let preheader = LLVMGetInsertBlock(builder)
        let header = LLVMAppendBasicBlockInContext(context, function, "loop")
        let exit = LLVMAppendBasicBlockInContext(context, function, "loop.exit")
        LLVMBuildBr(builder, header)
        LLVMPositionBuilderAtEnd(builder, header)
        let i = LLVMBuildPhi(builder, i64, "i")!
        body(i)
        let next = LLVMBuildNSWAdd(builder, i, int(step), "")!
        let latch = LLVMGetInsertBlock(builder)
        let branch = LLVMBuildCondBr(builder, LLVMBuildICmp(builder, LLVMIntSLT, next, int(end), ""), header, exit)!
        if !unroll { disableUnrolling(branch) }
        var values: [LLVMValue?] = [int(start), next]
        var blocks: [LLVMBasicBlockRef?] = [preheader, latch]
        LLVMAddIncoming(i, &values, &blocks, 2)
        LLVMPositionBuilderAtEnd(builder, exit)
    }

    /// for i in stride(from: start, to: end, by: step) { body(i) } with bounds known only at run
    /// time; no trip when end <= start.
    func loop(from start: LLVMValue, to end: LLVMValue, step: Int = 1, _ body: (LLVMValue) -> Void) {
        let function = LLVMGetBasicBlockParent(LLVMGetInsertBlock(builder))
        let preheader = LLVMGetInsertBlock(builder)
        let header = LLVMAppendBasicBlockInContext(context, function, "loop")
        let exit = LLVMAppendBasicBlockInContext(context, function, "loop.exit")
        LLVMBuildCondBr(builder, LLVMBuildICmp(builder, LLVMIntSLT, start, end, ""), header, exit)
        LLVMPositionBuilderAtEnd(builder, header)
        let i = LLVMBuildPhi(builder, i64, "i")!
        body(i)
        let next = LLVMBuildNSWAdd(builder, i, int(step), "")!
        let latch = LLVMGetInsertBlock(builder)
        disableUnrolling(LLVMBuildCondBr(builder, LLVMBuildICmp(builder, LLVMIntSLT, next, end, ""), header, exit)!)
        var values: [LLVMValue?] = [start, next]
        var blocks: [LLVMBasicBlockRef?] = [preheader, latch]
        LLVMAddIncoming(i, &values, &blocks, 2)
        LLVMPositionBuilderAtEnd(builder, exit)
    }

    /// if condition { then() } else { otherwise() }
    func ifElse(_ condition: LLVMValue, then: () -> Void, else otherwise: () -> Void) {
        let function = LLVMGetBasicBlockParent(LLVMGetInsertBlock(builder))
        let thenBlock = LLVMAppendBasicBlockInContext(context, function, "then")
        let elseBlock = LLVMAppendBasicBlockInContext(context, function, "else")
        let merge = LLVMAppendBasicBlockInContext(context, function, "endif")
        LLVMBuildCondBr(builder, condition, thenBlock, elseBlock)
        LLVMPositionBuilderAtEnd(builder, thenBlock)
        then()
        LLVMBuildBr(builder, merge)
        LLVMPositionBuilderAtEnd(builder, elseBlock)
        otherwise()
        LLVMBuildBr(builder, merge)
        LLVMPositionBuilderAtEnd(builder, merge)
    }

    /// Attaches `!llvm.loop !{self, !{"llvm.loop.unroll.disable"}}` to a loop's latch branch.
    private func disableUnrolling(_ branch: LLVMValue) {
        let placeholder = LLVMTemporaryMDNode(context, nil, 0)
        let option = "llvm.loop.unroll.disable"
        var optionOperands: [LLVMMetadataRef?] = [LLVMMDStringInContext2(context, option, option.utf8.count)]
        var operands: [LLVMMetadataRef?] = [placeholder, LLVMMDNodeInContext2(context, &optionOperands, 1)]
        let loopID = LLVMMDNodeInContext2(context, &operands, 2)
        LLVMMetadataReplaceAllUsesWith(placeholder, loopID)   // makes the node refer to itself, as a loop ID must
        LLVMSetMetadata(branch, LLVMGetMDKindIDInContext(context, "llvm.loop", 9), LLVMMetadataAsValue(context, loopID))
    }

    // MARK: functions

    /// Declares `void name(float*...)` with internal linkage and noalias pointers (but for the
    /// `aliasing` ones: a result written over an operand), and positions the builder in its
    /// entry block.
    func beginFunction(_ name: String, pointerCount: Int, exported: Bool = false, aliasing: Set<Int> = [], integerCount: Int = 0,
                       trailingPointers: Int = 0) -> LLVMValue {
        var parameters = [LLVMType?](repeating: floatPointer, count: pointerCount) + [LLVMType?](repeating: i64, count: integerCount)
            + [LLVMType?](repeating: floatPointer, count: trailingPointers)
        let type = LLVMFunctionType(void, &parameters, UInt32(parameters.count), 0)
        let function = LLVMAddFunction(module, name, type)!
        if !exported {
            LLVMSetLinkage(function, LLVMInternalLinkage)
            // Each kernel stays a function of its own: inlining hundreds of kernels into the entry
            // point made one function so large that O3 took tens of seconds (DenseNet-121: 33 s).
            let noinline = LLVMGetEnumAttributeKindForName("noinline", 8)
            LLVMAddAttributeAtIndex(function, UInt32(bitPattern: -1), LLVMCreateEnumAttribute(context, noinline, 0))
        }
        let noalias = LLVMGetEnumAttributeKindForName("noalias", 7)
        let pointerIndices = Array(0..<pointerCount) + (0..<trailingPointers).map { pointerCount + integerCount + $0 }
        for p in pointerIndices where !aliasing.contains(p) {
            LLVMAddAttributeAtIndex(function, UInt32(p + 1), LLVMCreateEnumAttribute(context, noalias, 0))
        }
        LLVMPositionBuilderAtEnd(builder, LLVMAppendBasicBlockInContext(context, function, "entry"))
        return function
    }

    func endFunction() { LLVMBuildRetVoid(builder) }

    /// A helper function every kernel of the module calls (the GEMM micro-kernel, packing): made
    /// by `body` the first time it is asked for, then found by name. The builder's position is
    /// kept.
    func sharedFunction(_ name: String, pointerCount: Int, integerCount: Int, trailingPointers: Int = 0,
                        _ body: (LLVMValue) -> Void) -> LLVMValue {
        if let existing = LLVMGetNamedFunction(module, name) { return existing }
        let saved = LLVMGetInsertBlock(builder)
        defer { if let saved { LLVMPositionBuilderAtEnd(builder, saved) } }
        let function = beginFunction(name, pointerCount: pointerCount, integerCount: integerCount, trailingPointers: trailingPointers)
        body(function)
        endFunction()
        return function
    }

    func call(_ function: LLVMValue, _ arguments: [LLVMValue]) {
        var parameters: [LLVMType?] = arguments.map { LLVMTypeOf($0) }
        let type = LLVMFunctionType(void, &parameters, UInt32(arguments.count), 0)
        var args = arguments.map { Optional($0) }
        LLVMBuildCall2(builder, type, function, &args, UInt32(args.count), "")
    }
}
