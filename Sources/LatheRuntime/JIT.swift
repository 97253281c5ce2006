import CLLVM
import Foundation
import LatheIR

/// The compiled entry point: lathe_run(arena, weights, inputs, outputs, ticks, run, parallel), `run`
/// the ParallelRun that `parallel` (parallelCallback) hands split kernels to
/// (LatheCodegen's ModuleEmitter). It returns 0, or the position plus one of the kernel that
/// found an index out of range.
typealias EntryFunction = @convention(c) (UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?,
                                          UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?,
                                          UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?,
                                          UnsafeMutablePointer<UInt64>?, UnsafeMutableRawPointer?,
                                          (@convention(c) (UnsafeMutableRawPointer?, ThreadPool.Task?, ThreadPool.Task?,
                                                           UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?, Int64, Int64) -> Void)?) -> Int64

/// Owns an ORC LLJIT instance, and with it the machine code: function pointers taken from it
/// are valid while it lives.
final class JITSession: @unchecked Sendable {
    private let jit: LLVMOrcLLJITRef

    /// Takes ownership of `module` (made in `context`'s LLVMContext) whatever happens.
    convenience init(module: LLVMModuleRef, context: LLVMOrcThreadSafeContextRef, target: HostTarget) throws {
        do { try self.init(target: target) } catch {
            LLVMDisposeModule(module)
            throw error
        }
        let threadSafeModule = LLVMOrcCreateNewThreadSafeModule(module, context)
        try check(LLVMOrcLLJITAddLLVMIRModule(jit, LLVMOrcLLJITGetMainJITDylib(jit), threadSafeModule), "adding the module")
    }

    /// Links object files made for this machine (ModuleParts, ObjectCache); they call each other.
    convenience init(objects: [Data], target: HostTarget) throws {
        try self.init(target: target)
        for (index, object) in objects.enumerated() {
            let buffer = object.withUnsafeBytes { bytes in
                LLVMCreateMemoryBufferWithMemoryRangeCopy(bytes.baseAddress!.assumingMemoryBound(to: CChar.self), bytes.count, "lathe\(index).o")
            }
            try check(LLVMOrcLLJITAddObjectFile(jit, LLVMOrcLLJITGetMainJITDylib(jit), buffer), "adding object \(index)")
        }
    }

    private init(target: HostTarget) throws {
        let builder = LLVMOrcCreateLLJITBuilder()
        // The JIT consumes its own TargetMachine (LLVM-NOTES pitfall 4).
        let machine: LLVMTargetMachineRef
        do { machine = try target.makeTargetMachine() } catch {
            LLVMOrcDisposeLLJITBuilder(builder)
            throw error
        }
        LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(machine))
        var jit: LLVMOrcLLJITRef?
        try check(LLVMOrcCreateLLJIT(&jit, builder), "creating the JIT")   // consumes the builder
        self.jit = jit!
        LLVMOrcExecutionSessionSetErrorReporter(LLVMOrcLLJITGetExecutionSession(jit), { _, error in
            // Errors surface through lookup; drop the reporter's copy instead of printing it.
            LLVMConsumeError(error)
        }, nil)
        var generator: LLVMOrcDefinitionGeneratorRef?
        try check(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&generator, LLVMOrcLLJITGetGlobalPrefix(jit), nil, nil), "resolving process symbols")
        LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(jit), generator)
    }

    func lookup(_ name: String) throws -> EntryFunction { unsafeBitCast(try address(of: name), to: EntryFunction.self) }

    func address(of name: String) throws -> UnsafeRawPointer {
        var address: LLVMOrcExecutorAddress = 0
        try check(LLVMOrcLLJITLookup(jit, &address, name), "looking up \(name)")
        guard let pointer = UnsafeRawPointer(bitPattern: UInt(address)) else { throw LatheError.backend("\(name) has no address") }
        return pointer
    }

    deinit {
        if let error = LLVMOrcDisposeLLJIT(jit) { LLVMConsumeError(error) }
    }
}
