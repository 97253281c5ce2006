import CLLVM
import LatheIR

/// The compiled entry point: lathe_run(arena, weights, inputs, outputs, ticks, pool, parallel)
/// (LatheCodegen's ModuleEmitter).
typealias EntryFunction = @convention(c) (UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?,
                                          UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?,
                                          UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?,
                                          UnsafeMutablePointer<UInt64>?, UnsafeMutableRawPointer?,
                                          (@convention(c) (UnsafeMutableRawPointer?, ThreadPool.Task?, UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?, Int64) -> Void)?) -> Void

/// Owns an ORC LLJIT instance, and with it the machine code: function pointers taken from it
/// are valid while it lives.
final class JITSession: @unchecked Sendable {
    private let jit: LLVMOrcLLJITRef

    /// Takes ownership of `module` (made in `context`'s LLVMContext) whatever happens.
    init(module: LLVMModuleRef, context: LLVMOrcThreadSafeContextRef, target: HostTarget) throws {
        let builder = LLVMOrcCreateLLJITBuilder()
        // The JIT consumes its own TargetMachine (LLVM-NOTES pitfall 4).
        let machine: LLVMTargetMachineRef
        do { machine = try target.makeTargetMachine() } catch {
            LLVMOrcDisposeLLJITBuilder(builder)
            LLVMDisposeModule(module)
            throw error
        }
        LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(machine))
        var jit: LLVMOrcLLJITRef?
        if let error = LLVMOrcCreateLLJIT(&jit, builder) {   // consumes the builder
            LLVMDisposeModule(module)
            try check(error, "creating the JIT")
        }
        self.jit = jit!
        LLVMOrcExecutionSessionSetErrorReporter(LLVMOrcLLJITGetExecutionSession(jit), { _, error in
            // Errors surface through lookup; drop the reporter's copy instead of printing it.
            LLVMConsumeError(error)
        }, nil)
        var generator: LLVMOrcDefinitionGeneratorRef?
        if let error = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&generator, LLVMOrcLLJITGetGlobalPrefix(jit), nil, nil) {
            LLVMDisposeModule(module)
            try check(error, "resolving process symbols")
        }
        LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(jit), generator)
        let threadSafeModule = LLVMOrcCreateNewThreadSafeModule(module, context)
        try check(LLVMOrcLLJITAddLLVMIRModule(jit, LLVMOrcLLJITGetMainJITDylib(jit), threadSafeModule), "adding the module")
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
