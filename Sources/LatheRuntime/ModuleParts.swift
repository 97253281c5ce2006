import CLLVM
import Foundation
import LatheIR

/// The program's LLVM modules, each in a context of its own, so that the cores optimize them and
/// generate their machine code at the same time: LLVM works through one module on one thread, and
/// a context may not be shared between threads. ModuleEmitter decides which kernels go to which
/// part; the JIT links the parts' objects.
final class ModuleParts {
    private let contexts: [LLVMOrcThreadSafeContextRef]
    private var modules: [LLVMModuleRef?]

    /// `count` empty modules for the host.
    init(count: Int, target: HostTarget) throws {
        contexts = (0..<count).map { _ in LLVMOrcCreateNewThreadSafeContext()! }
        modules = contexts.map { LLVMModuleCreateWithNameInContext("lathe", LLVMOrcThreadSafeContextGetContext($0)) }
        let machine = try target.makeTargetMachine()
        defer { LLVMDisposeTargetMachine(machine) }
        let layout = LLVMCreateTargetDataLayout(machine)
        defer { LLVMDisposeTargetData(layout) }
        for module in modules {
            LLVMSetModuleDataLayout(module, layout)
            LLVMSetTarget(module, target.triple)
        }
    }

    /// Parts for ModuleEmitter to fill.
    var parts: [(module: LLVMModuleRef, context: LLVMContextRef)] {
        zip(modules, contexts).map { ($0!, LLVMOrcThreadSafeContextGetContext($1)) }
    }

    /// What `objects` made of each part.
    struct Objects {
        var code: [Data]
        /// The cache key of each part (nil with the cache off) and whether its code came from there.
        var keys: [String?]
        var cached: [Bool]
        /// The optimized IR of every part, when asked for.
        var llvmIR: String?
    }

    /// The object code of every part: from the cache where it has the part, else optimized at O2
    /// and generated now, a thread a part. Frees the modules.
    func objects(target: HostTarget, cache: Bool, cacheDirectory: URL?, keepLLVMIR: Bool) throws -> Objects {
        let keys = modules.map { cache ? ObjectCache.key(module: $0!, target: target) : nil }
        var code = keys.map { key in key.flatMap { ObjectCache.load($0, directory: cacheDirectory) } }
        let cached = code.map { $0 != nil }
        // A cached part's IR, the same to the bit, was verified when it was compiled.
        for (module, hit) in zip(modules, cached) where !hit { try verify(module!) }
        var irTexts = [String](repeating: "", count: modules.count)
        var failures = [Error?](repeating: nil, count: modules.count)
        let missing = code.indices.filter { code[$0] == nil }
        // A target machine a thread: they are not shared between threads.
        var machines: [LLVMTargetMachineRef] = []
        defer { machines.forEach(LLVMDisposeTargetMachine) }
        for _ in missing { machines.append(try target.makeTargetMachine()) }
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: missing.count) { m in
            let part = missing[m]
            do {
                let passOptions = LLVMCreatePassBuilderOptions()
                defer { LLVMDisposePassBuilderOptions(passOptions) }
                try check(LLVMRunPasses(modules[part], "default<O2>", machines[m], passOptions), "optimizing")
                let ir = keepLLVMIR ? takeMessage(LLVMPrintModuleToString(modules[part])) : ""
                let object = try ObjectCache.emitObject(modules[part]!, machine: machines[m])
                if let key = keys[part] { ObjectCache.store(object, key: key, directory: cacheDirectory) }
                lock.withLock { code[part] = object; irTexts[part] = ir }
            } catch {
                lock.withLock { failures[part] = error }
            }
        }
        disposeModules()
        if let failure = failures.compactMap({ $0 }).first { throw failure }
        return Objects(code: code.map { $0! }, keys: keys, cached: cached, llvmIR: keepLLVMIR ? irTexts.joined() : nil)
    }

    private func verify(_ module: LLVMModuleRef) throws {
        var message: UnsafeMutablePointer<CChar>?
        let failed = LLVMVerifyModule(module, LLVMReturnStatusAction, &message) != 0
        let text = takeMessage(message)
        if failed { throw LatheError.backend("the emitted module is invalid: \(text)") }
    }

    private func disposeModules() {
        for module in modules where module != nil { LLVMDisposeModule(module) }
        modules = modules.map { _ in nil }
    }

    deinit {
        disposeModules()
        contexts.forEach(LLVMOrcDisposeThreadSafeContext)
    }
}
