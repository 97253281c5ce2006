import CLLVM
import LatheIR

/// What the code generator needs to know of the machine it targets.
public struct CodegenTarget: Sendable {
    /// Floats per vector register: from the host's features, never assumed.
    public var vectorWidth: Int
    public init(vectorWidth: Int) { self.vectorWidth = vectorWidth }
}

/// What a kernel's code depends on.
struct KernelSignature: Hashable {
    let work: KernelWork
    let operands: [TensorType]
    let result: TensorType
    let scratch: TensorType?
    let inPlaceOperand: Int?

    init(_ kernel: Kernel) {
        inPlaceOperand = kernel.inPlaceOperand
        work = kernel.work
        operands = kernel.operands.map(\.type)
        result = kernel.result.type
        scratch = kernel.scratch?.type
    }
}

/// Emits a whole kernel program as one LLVM module: a function per kernel and the entry point
///
///     void lathe_run(float* arena, float* weights, float** inputs, float** outputs)
///
/// which calls the kernels in order with their buffers' addresses.
public enum ModuleEmitter {
    public static let entryName = "lathe_run"

    public static func emit(_ program: KernelProgram, into module: LLVMModuleRef, context: LLVMContextRef, target: CodegenTarget) throws {
        let b = IRBuilder(context: context, module: module, vectorWidth: target.vectorWidth)
        // A kernel's code depends only on what it computes and on its shapes (buffers arrive as
        // pointers), so kernels with one signature share one function: ResNet-50's repeated
        // blocks compile once.
        var bySignature: [KernelSignature: LLVMValueRef] = [:]
        let functions = try program.kernels.map { kernel -> LLVMValueRef? in
            if kernel.isNoOp { return nil }
            let signature = KernelSignature(kernel)
            if let shared = bySignature[signature] { return shared }
            let function = try b.emitKernel(kernel)
            bySignature[signature] = function
            return function
        }

        let pointerArray = LLVMPointerType(b.floatPointer, 0)
        var parameters: [LLVMTypeRef?] = [b.floatPointer, b.floatPointer, pointerArray, pointerArray]
        let entry = LLVMAddFunction(module, entryName, LLVMFunctionType(b.void, &parameters, 4, 0))!
        LLVMPositionBuilderAtEnd(b.builder, LLVMAppendBasicBlockInContext(context, entry, "entry"))
        let (arena, weights, inputs, outputs) = (LLVMGetParam(entry, 0)!, LLVMGetParam(entry, 1)!, LLVMGetParam(entry, 2)!, LLVMGetParam(entry, 3)!)

        func callerPointer(_ table: LLVMValue, _ index: Int) -> LLVMValue {
            var indices: [LLVMValueRef?] = [b.int(index)]
            let slot = LLVMBuildInBoundsGEP2(b.builder, b.floatPointer, table, &indices, 1, "")
            return LLVMBuildLoad2(b.builder, b.floatPointer, slot, "")
        }
        func address(_ buffer: KernelBuffer) -> LLVMValue {
            switch buffer.location {
            case let .arena(offset): return b.pointer(arena, b.int(offset / 4))
            case let .weights(offset): return b.pointer(weights, b.int(offset / 4))
            case let .input(i): return callerPointer(inputs, i)
            case let .output(i): return callerPointer(outputs, i)
            }
        }
        for (kernel, function) in zip(program.kernels, functions) {
            guard let function else { continue }
            let arguments = [address(kernel.result)] + kernel.operands.map(address) + (kernel.scratch.map { [address($0)] } ?? [])
            b.call(function, arguments)
        }
        b.endFunction()
    }
}
