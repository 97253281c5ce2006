import CLLVM
import Foundation
import LatheCodegen
import LatheIR
import LathePasses

/// Compile options a user may set.
public struct CompileOptions: Sendable {
    /// Keep the optimized LLVM IR text on the compiled model (for `lathe dump --format llvm`).
    public var keepLLVMIR: Bool = false
    /// Run the graph passes (folding, fusion); without them the graph is only verified and
    /// every node becomes a kernel of its own, which shows what the passes change.
    public var optimize: Bool = true
    /// Threads a run uses: large convolutions and matrix products are cut into this many
    /// shares (compiled in), which the process's thread pool hands to its workers.
    public var threads: Int = 1
    /// How a run's threads wait for work and for each other: spin, then yield, then block; and
    /// how long kernels with a one-thread plan run it after the workers were absent.
    public var waiting = WaitPolicy()
    /// Keep the machine code under the user's cache directory and reuse it when the same model
    /// is compiled again on this machine (ObjectCache).
    public var cache: Bool = true
    /// Where the cache lives; by default $XDG_CACHE_HOME/lathe/kernels or ~/.cache/lathe/kernels.
    public var cacheDirectory: URL? = nil
    /// Threads LLVM optimizes and generates code on, each for its own share of the kernels
    /// (ModuleParts); by default one a core. With `keepLLVMIR`, one.
    public var compileThreads: Int? = nil
    public init(keepLLVMIR: Bool = false, optimize: Bool = true, threads: Int = 1, cache: Bool = true, cacheDirectory: URL? = nil,
                compileThreads: Int? = nil, waiting: WaitPolicy = WaitPolicy()) {
        self.keepLLVMIR = keepLLVMIR
        self.optimize = optimize
        self.threads = max(threads, 1)
        self.cache = cache
        self.cacheDirectory = cacheDirectory
        self.compileThreads = compileThreads.map { max($0, 1) }
        self.waiting = waiting
    }
}

/// Graph -> passes -> kernel program -> LLVM IR -> O2 for the host -> ORC JIT.
public enum Compiler {
    public static func compile(_ graph: Graph, outputs: [(name: String, value: ValueID)], options: CompileOptions = CompileOptions()) throws -> CompiledModel {
        try compile(graph, outputs: outputs, options: options, pool: nil)
    }

    /// `pool`: the thread pool the model's runs use; nil for the process's.
    static func compile(_ graph: Graph, outputs: [(name: String, value: ValueID)], options: CompileOptions, pool: ThreadPool?) throws -> CompiledModel {
        var stages = StageClock()
        let target = HostTarget.detect()
        let (lowered, optimized) = try lowerKeepingGraph(graph, outputs: outputs, optimize: options.optimize, threads: options.threads,
                                                         vectorWidth: target.vectorWidth)
        let program = lowered.program
        stages.lap("passes and planning")
        let weightsJob = WeightsJob(program, constants: optimized.constants)
        // On a thrown error or a retry, the region is freed once the job is done with it: the
        // job's own closure holds it until then.
        // A part a compile thread (the weights job shares the cores), none empty.
        let compileThreads = options.compileThreads ?? ProcessInfo.processInfo.activeProcessorCount
        let partCount = options.keepLLVMIR ? 1 : max(1, min(compileThreads, program.kernels.count))
        let modules = try ModuleParts(count: partCount, target: target)
        try ModuleEmitter.emit(program, into: modules.parts, target: CodegenTarget(vectorWidth: target.vectorWidth, hasInt8DotProduct: target.hasInt8DotProduct,
                                                                                         hasByteMasks: target.hasByteMasks))
        stages.lap("LLVM IR")
        let objects = try modules.objects(target: target, cache: options.cache && !options.keepLLVMIR, cacheDirectory: options.cacheDirectory,
                                          keepLLVMIR: options.keepLLVMIR)
        stages.lap(objects.cached.allSatisfy { $0 } ? "cache hit" : "LLVM optimization and machine code")
        let jit: JITSession
        let entry: EntryFunction
        do {
            jit = try JITSession(objects: objects.code, target: target)
            entry = try jit.lookup(ModuleEmitter.entryName)
        } catch where objects.cached.contains(true) {
            // A damaged cache entry: drop the cached parts and compile afresh.
            for (key, cached) in zip(objects.keys, objects.cached) where cached { ObjectCache.remove(key!, directory: options.cacheDirectory) }
            return try compile(graph, outputs: outputs, options: options, pool: pool)
        }
        stages.lap("JIT link")
        let weights = weightsJob.wait()
        stages.lap("weights")
        return CompiledModel(lowered: lowered, jit: jit, entry: entry, weights: weights, target: target,
                             compileStages: stages.laps, llvmIR: objects.llvmIR, threads: options.threads,
                             waiting: options.waiting, pool: pool)
    }
}

/// Wall time of each compile stage.
struct StageClock {
    private var last = ContinuousClock.now
    private(set) var laps: [(stage: String, seconds: Double)] = []

    mutating func lap(_ stage: String) {
        let now = ContinuousClock.now
        let d = now - last
        laps.append((stage, Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18))
        last = now
    }
}

/// Lays out the weights region (packing and Winograd-transforming constant weights) on
/// another thread while LLVM compiles: for VGG19, a second of work that no longer adds to the
/// compile time. It writes the region the compiled model keeps (ResNet-50's 100 MB), not an
/// array copied there afterwards.
private final class WeightsJob: @unchecked Sendable {
    private let region: MemoryRegion
    private let done = DispatchSemaphore(value: 0)

    init(_ program: KernelProgram, constants: [HostTensor]) {
        region = MemoryRegion(bytes: program.weightsBytes)
        nonisolated(unsafe) let bytes = UnsafeMutableRawBufferPointer(start: region.base, count: program.weightsBytes)
        DispatchQueue.global(qos: .userInitiated).async {
            // Written once, not zeroed first: every byte is a placement's or a gap zeroed here
            // (a fresh mapping is zero already: zeroing ResNet-50's packed weights, whose
            // panels pad 64 rows to 66, took a tenth of a cached compile).
            let zeroed = self.region.startsZeroed
            let placements = program.weightPlacements.map { slot, offset, layout in
                let t = constants[slot]
                return (slot, offset..<(offset + (t.dtype == .float32 || layout.holdsBytes ? layout.floatCount(t.count) * 4 : t.rawBytes.count)), layout)
            }
            var end = 0
            for (_, range, _) in placements.sorted(by: { $0.1.lowerBound < $1.1.lowerBound }) {
                if !zeroed { UnsafeMutableRawBufferPointer(rebasing: bytes[end..<range.lowerBound]).initializeMemory(as: UInt8.self, repeating: 0) }
                end = range.upperBound
            }
            if !zeroed { UnsafeMutableRawBufferPointer(rebasing: bytes[end..<bytes.count]).initializeMemory(as: UInt8.self, repeating: 0) }
            // Placements are disjoint: both cores share them (the whole compile, on a cache hit).
            DispatchQueue.concurrentPerform(iterations: placements.count) { p in
                let (slot, range, layout) = placements[p]
                let t = constants[slot]
                let target = UnsafeMutableRawBufferPointer(rebasing: bytes[range])
                if layout.holdsBytes {
                    layout.writeBytes(t, into: target)
                } else if t.dtype == .float32 {
                    layout.write(t, into: target.bindMemory(to: Float.self), zeroed: zeroed)
                } else {
                    t.rawBytes.withUnsafeBytes { target.copyMemory(from: $0) }
                }
            }
            self.done.signal()
        }
    }

    /// The laid-out region, which the caller then owns.
    func wait() -> MemoryRegion {
        done.wait()
        return region
    }
}
