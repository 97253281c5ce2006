import CLLVM
import LatheIR

/// What the code generator needs to know of the machine it targets.
public struct CodegenTarget: Sendable {
    /// Floats per vector register: from the host's features, never assumed.
    public var vectorWidth: Int
    /// The host has an 8-bit dot product (vpdpbusd) at this vector width.
    public var hasInt8DotProduct: Bool
    /// The host loads and stores bytes under a mask (AVX-512BW).
    public var hasByteMasks: Bool
    public init(vectorWidth: Int, hasInt8DotProduct: Bool = false, hasByteMasks: Bool = false) {
        self.vectorWidth = vectorWidth
        self.hasInt8DotProduct = hasInt8DotProduct
        self.hasByteMasks = hasByteMasks
    }
}

/// What a kernel's code depends on.
struct KernelSignature: Hashable {
    let work: KernelWork
    let operands: [TensorType]
    let result: TensorType
    let scratch: TensorType?
    let inPlaceOperand: Int?
    let split: ThreadSplit
    let threads: Int
    let weightLayout: WeightLayout
    let hasAlonePlan: Bool

    init(_ kernel: Kernel) {
        hasAlonePlan = kernel.alonePlan != nil
        weightLayout = kernel.weightLayout
        inPlaceOperand = kernel.inPlaceOperand
        split = kernel.split
        threads = kernel.threads
        work = kernel.work
        operands = kernel.operands.map(\.type)
        result = kernel.result.type
        scratch = kernel.scratch?.type
    }
}

/// Emits a whole kernel program as LLVM modules, one per part, for optimizing and generating
/// machine code on as many threads. Part 0 holds the entry point
///
///     i64 lathe_run(float* arena, float* weights, float** inputs, float** outputs,
///                   i64* ticks, i8* run, parallel_fn parallel)
///
/// which calls the kernels in order with their buffers' addresses (of any element type; the
/// pointers are only addresses) and returns 0, or, when a kernel that checks its indices found
/// one out of range, stops after it and returns its position plus one (Gather.swift). A kernel split among threads
/// is handed to `parallel(run, task, alone, args, threads, flops)`, which runs `task(args, t)` for each
/// share t in 0..<threads, on whichever thread of the run's pool claims it, and returns when all
/// are done (LatheRuntime's ThreadPool); `task` unpacks the argument array and calls the kernel.
/// `alone` (null when the kernel has no alone plan) is the same kernel planned for one thread,
/// `alone(args, 0)`, which the pool runs instead while its workers are busy elsewhere; `flops`
/// is the kernel's work, by which the pool decides what to split on a busy machine.
/// A kernel whose threads claim units has its counter zeroed first.
/// When `ticks` is not null, the entry stores the cycle counter there before the first kernel
/// and after each one (for `lathe bench --profile`).
///
/// Each distinct kernel goes to the part with the fewest IR instructions so far: instructions
/// before optimization stand in for the time LLVM will take. A kernel outside part 0 is
/// exported under its (unique) name and declared in part 0; the helpers kernels share (the GEMM
/// micro-kernel, packing) are made again, internal, in every part that calls them.
public enum ModuleEmitter {
    public static let entryName = "lathe_run"

    public static func emit(_ program: KernelProgram, into parts: [(module: LLVMModuleRef, context: LLVMContextRef)], target: CodegenTarget) throws {
        let builders = parts.map { IRBuilder(context: $0.context, module: $0.module, vectorWidth: target.vectorWidth) }
        for b in builders { (b.hasInt8DotProduct, b.hasByteMasks) = (target.hasInt8DotProduct, target.hasByteMasks) }
        guard let b = builders.first else { throw LatheError.backend("no module to emit the kernels into") }
        let types = builders.map(EntryTypes.init)
        let (pointerArray, parallelType) = (types[0].pointerArray, types[0].parallel)

        // A kernel's code depends only on what it computes, on its shapes and on its thread split
        // (buffers arrive as pointers), so kernels with one signature share one function:
        // ResNet-50's repeated blocks compile once.
        var bySignature: [KernelSignature: EmittedKernel] = [:]
        var instructions = [Int](repeating: 0, count: parts.count)
        let functions = try program.kernels.map { kernel -> EmittedKernel? in
            if kernel.isNoOp { return nil }
            let signature = KernelSignature(kernel)
            if let shared = bySignature[signature] { return shared }
            let part = instructions.indices.min { instructions[$0] < instructions[$1] }!
            let builder = builders[part]
            let function = try builder.emitKernel(kernel)
            let task = kernel.threads > 1 ? emitTask(calling: function, kernel: kernel, builder: builder, type: types[part].task) : nil
            var alone: LLVMValueRef?
            if let aloneKernel = kernel.alone {
                alone = emitTask(calling: try builder.emitKernel(aloneKernel), kernel: aloneKernel, builder: builder, type: types[part].task)
            }
            instructions[part] += [function, task, alone].compactMap { $0 }.map(instructionCount).reduce(0, +)
            func visible(_ f: LLVMValueRef) -> LLVMValueRef { part == 0 ? f : declare(exporting: f, in: b) }
            let inPartZero = EmittedKernel(kernel: visible(function), task: task.map(visible), alone: alone.map(visible))
            bySignature[signature] = inPartZero
            return inPartZero
        }

        var parameters: [LLVMTypeRef?] = [b.floatPointer, b.floatPointer, pointerArray, pointerArray, LLVMPointerType(b.i64, 0),
                                          types[0].bytePointer, LLVMPointerType(parallelType, 0)]
        let entry = LLVMAddFunction(b.module, entryName, LLVMFunctionType(b.i64, &parameters, 7, 0))!
        LLVMPositionBuilderAtEnd(b.builder, LLVMAppendBasicBlockInContext(b.context, entry, "entry"))
        let (arena, weights, inputs, outputs) = (LLVMGetParam(entry, 0)!, LLVMGetParam(entry, 1)!, LLVMGetParam(entry, 2)!, LLVMGetParam(entry, 3)!)
        let (ticks, run, parallel) = (LLVMGetParam(entry, 4)!, LLVMGetParam(entry, 5)!, LLVMGetParam(entry, 6)!)

        func callerPointer(_ table: LLVMValue, _ index: Int) -> LLVMValue {
            var indices: [LLVMValueRef?] = [b.int(index)]
            let slot = LLVMBuildInBoundsGEP2(b.builder, b.floatPointer, table, &indices, 1, "")
            return LLVMBuildLoad2(b.builder, b.floatPointer, slot, "")
        }
        // Byte offsets: an operand written into its place in a concat of 1- or 2-byte elements
        // need not start at a multiple of 4.
        func address(_ buffer: KernelBuffer) -> LLVMValue {
            switch buffer.location {
            case let .arena(offset): return b.pointer(arena, b.int(offset), .uint8)
            case let .weights(offset): return b.pointer(weights, b.int(offset), .uint8)
            case let .input(i): return callerPointer(inputs, i)
            case let .output(i): return callerPointer(outputs, i)
            }
        }
        let profiling = LLVMBuildIsNotNull(b.builder, ticks, "")!
        func tick(_ index: Int) {
            b.ifElse(profiling, then: {
                let counter = b.callIntrinsic("llvm.readcyclecounter", returning: b.i64)
                var indices: [LLVMValueRef?] = [b.int(index)]
                LLVMBuildStore(b.builder, counter, LLVMBuildInBoundsGEP2(b.builder, b.i64, ticks, &indices, 1, ""))
            }, else: {})
        }
        let argumentArray = program.kernels.map { 1 + $0.operands.count + ($0.scratch == nil ? 0 : 1) }.max() ?? 1
        let arguments = LLVMBuildArrayAlloca(b.builder, b.floatPointer, b.int(argumentArray), "")!
        tick(0)
        for (index, (kernel, function)) in zip(program.kernels, functions).enumerated() {
            if let function {
                let pointers = [address(kernel.result)] + kernel.operands.map(address) + (kernel.scratch.map { [address($0)] } ?? [])
                if let task = function.task {
                    if kernel.claimsUnits, let scratch = kernel.scratch {
                        // The unit counter starts at 0 for each run; the pool's job hand-off
                        // publishes the store to the workers.
                        let counter = LLVMBuildPointerCast(b.builder, address(scratch), LLVMPointerType(b.i64, 0), "")
                        LLVMBuildStore(b.builder, b.int(0), counter)
                    }
                    for (k, pointer) in pointers.enumerated() {
                        var indices: [LLVMValueRef?] = [b.int(k)]
                        LLVMBuildStore(b.builder, pointer, LLVMBuildInBoundsGEP2(b.builder, b.floatPointer, arguments, &indices, 1, ""))
                    }
                    let alone = function.alone ?? LLVMConstPointerNull(LLVMTypeOf(task))
                    var callArguments: [LLVMValueRef?] = [run, task, alone, arguments, b.int(kernel.threads), b.int(kernel.flops)]
                    LLVMBuildCall2(b.builder, parallelType, parallel, &callArguments, 6, "")
                } else {
                    b.call(function.kernel, pointers + [b.int(0)])
                }
                if kernel.plan.checksIndices, let record = kernel.scratch {
                    stopIfFlagged(address(record), status: index + 1, entry: entry, builder: b)
                }
            }
            tick(index + 1)
        }
        LLVMBuildRet(b.builder, b.int(0))
    }

    /// Returns `status` from the entry when the i64 flag at `record` is set.
    private static func stopIfFlagged(_ record: LLVMValue, status: Int, entry: LLVMValueRef, builder b: IRBuilder) {
        let flag = LLVMBuildLoad2(b.builder, b.i64, LLVMBuildPointerCast(b.builder, record, LLVMPointerType(b.i64, 0), ""), "")!
        let stop = LLVMAppendBasicBlockInContext(b.context, entry, "index_out_of_range")!
        let next = LLVMAppendBasicBlockInContext(b.context, entry, "next_kernel")!
        LLVMBuildCondBr(b.builder, LLVMBuildICmp(b.builder, LLVMIntNE, flag, b.int(0), ""), stop, next)
        LLVMPositionBuilderAtEnd(b.builder, stop)
        LLVMBuildRet(b.builder, b.int(status))
        LLVMPositionBuilderAtEnd(b.builder, next)
    }

    /// void task(float** args, i64 thread): kernel(args[0], args[1], ..., thread).
    private static func emitTask(calling kernel: LLVMValueRef, kernel k: Kernel, builder b: IRBuilder, type: LLVMTypeRef) -> LLVMValueRef {
        let function = LLVMAddFunction(b.module, "\(k.name)_task", type)!
        LLVMSetLinkage(function, LLVMInternalLinkage)
        let saved = LLVMGetInsertBlock(b.builder)
        LLVMPositionBuilderAtEnd(b.builder, LLVMAppendBasicBlockInContext(b.context, function, "entry"))
        let (arguments, thread) = (LLVMGetParam(function, 0)!, LLVMGetParam(function, 1)!)
        let count = 1 + k.operands.count + (k.scratch == nil ? 0 : 1)
        let pointers = (0..<count).map { i -> LLVMValue in
            var indices: [LLVMValueRef?] = [b.int(i)]
            return LLVMBuildLoad2(b.builder, b.floatPointer, LLVMBuildInBoundsGEP2(b.builder, b.floatPointer, arguments, &indices, 1, ""), "")
        }
        b.call(kernel, pointers + [thread])
        b.endFunction()
        if let saved { LLVMPositionBuilderAtEnd(b.builder, saved) }
        return function
    }

    /// Makes `function` (of another part) visible to the linker and declares it in `b`'s module.
    private static func declare(exporting function: LLVMValueRef, in b: IRBuilder) -> LLVMValueRef {
        LLVMSetLinkage(function, LLVMExternalLinkage)
        let type = LLVMGlobalGetValueType(function)!
        var parameters = [LLVMTypeRef?](repeating: nil, count: Int(LLVMCountParamTypes(type)))
        LLVMGetParamTypes(type, &parameters)
        // The same parameters rebuilt in the other part's context: i64s and float pointers, and
        // a task's argument array, a pointer to float pointers, which LLVM 14's typed pointers
        // tell apart (LLVM 19's are all one `ptr`).
        var local: [LLVMTypeRef?] = parameters.map { type in
            guard LLVMGetTypeKind(type) == LLVMPointerTypeKind else { return b.i64 }
            #if LLVM_14
            if LLVMGetTypeKind(LLVMGetElementType(type)) == LLVMPointerTypeKind { return LLVMPointerType(b.floatPointer, 0) }
            #endif
            return b.floatPointer
        }
        var length = 0
        let name = String(cString: LLVMGetValueName2(function, &length))
        return LLVMAddFunction(b.module, name, LLVMFunctionType(b.void, &local, UInt32(local.count), 0))!
    }

    private static func instructionCount(_ function: LLVMValueRef) -> Int {
        var count = 0
        var block = LLVMGetFirstBasicBlock(function)
        while let current = block {
            var instruction = LLVMGetFirstInstruction(current)
            while let i = instruction { count += 1; instruction = LLVMGetNextInstruction(i) }
            block = LLVMGetNextBasicBlock(current)
        }
        return count
    }
}

/// The function types of the entry point's calling convention, in one part's context.
private struct EntryTypes {
    let pointerArray: LLVMTypeRef
    let bytePointer: LLVMTypeRef
    let task: LLVMTypeRef
    let parallel: LLVMTypeRef

    init(_ b: IRBuilder) {
        pointerArray = LLVMPointerType(b.floatPointer, 0)!
        var taskParameters: [LLVMTypeRef?] = [pointerArray, b.i64]
        task = LLVMFunctionType(b.void, &taskParameters, 2, 0)!
        bytePointer = LLVMPointerType(LLVMInt8TypeInContext(b.context), 0)!
        var parallelParameters: [LLVMTypeRef?] = [bytePointer, LLVMPointerType(task, 0), LLVMPointerType(task, 0), pointerArray, b.i64, b.i64]
        parallel = LLVMFunctionType(b.void, &parallelParameters, 6, 0)!
    }
}

/// A kernel's functions as part 0 sees them: the kernel, and for a split kernel its task and
/// its alone plan's task.
private struct EmittedKernel {
    let kernel: LLVMValueRef
    let task: LLVMValueRef?
    let alone: LLVMValueRef?
}
