import Foundation
import LatheCodegen
import LatheIR

/// A model compiled to native code, ready to run. It owns its machine code and its weights,
/// made at compile time, and arenas for intermediates: a run allocates nothing once an arena is
/// free for it.
///
/// `run` may be called from many threads at once. Each run under way takes an arena (and its
/// input and output tables) from the model's spare ones, or makes one when none is spare, and
/// gives it back when it returns (so a burst of N overlapping runs leaves N arenas, kept until the
/// model is freed); the weights are shared and only read. Split kernels go to the
/// process's thread pool (ThreadPool), which every model shares. A model whose runs write its
/// variables (a training step) runs one run at a time.
public final class CompiledModel: @unchecked Sendable {
    /// What the front half made of the model: the passes' fusions and each kernel's plan.
    public let lowered: LoweredModel
    public var program: KernelProgram { lowered.program }
    public let target: HostTarget
    /// Wall time of each compile stage: passes and planning, LLVM IR, LLVM optimization and machine code (or cache hit), JIT link, weights (laid out alongside).
    public let compileStages: [(stage: String, seconds: Double)]
    /// Wall time of the whole compile.
    public var compileSeconds: Double { compileStages.reduce(0) { $0 + $1.seconds } }
    /// The optimized LLVM IR, when asked for in CompileOptions.
    public let llvmIR: String?
    /// The threads a run uses: its split kernels are cut into this many shares.
    public let threads: Int
    /// How a run's threads wait for each other.
    public let waiting: WaitPolicy

    private let jit: JITSession
    private let entry: EntryFunction
    private let weightsRegion: MemoryRegion
    private var weights: UnsafeMutableRawPointer { weightsRegion.base }
    private let pool: ThreadPool
    /// Arenas not in use by a run; more are made when runs overlap.
    private var spareArenas: [RunArena]
    private let spareLock = NSLock()
    /// Held by every run of a model that writes variables, and by variable reads and writes.
    private let variableLock = NSLock()
    private var writesVariables: Bool { !program.variables.isEmpty }

    /// `weights`: the laid-out weights region, which the model now owns. `pool`: the process's,
    /// unless a test gives its own.
    init(lowered: LoweredModel, jit: JITSession, entry: @escaping EntryFunction, weights: MemoryRegion, target: HostTarget,
         compileStages: [(stage: String, seconds: Double)], llvmIR: String?, threads: Int, waiting: WaitPolicy, pool: ThreadPool? = nil) {
        self.lowered = lowered
        self.threads = max(threads, 1)
        self.waiting = waiting
        self.pool = pool ?? (threads > 1 ? ThreadPool.process : ThreadPool.inline)
        self.jit = jit
        self.entry = entry
        self.target = target
        self.compileStages = compileStages
        self.llvmIR = llvmIR
        weightsRegion = weights
        spareArenas = []
        spareArenas.append(newArena())
    }

    /// How many arenas the model holds: one, plus one for each run that overlapped others.
    public var arenaCount: Int {
        spareLock.withLock { arenasMade }
    }
    private var arenasMade = 1

    public var inputs: [InputSpec] { program.inputs }
    public var outputNames: [String] { program.outputs.map(\.name) }
    public func outputType(_ name: String) -> TensorType? { program.outputs.first { $0.name == name }?.type }

    /// The names of the model's variables (training state that persists between runs).
    public var variableNames: [String] { program.variables.map(\.name) }

    /// A variable's current value: a weight after some training steps, say.
    public func variable(_ name: String) throws -> HostTensor {
        let v = try placement(ofVariable: name)
        variableLock.lock()
        defer { variableLock.unlock() }
        return try HostTensor(shape: v.type.shape, dtype: v.type.dtype,
                              bytes: Array(UnsafeRawBufferPointer(start: weights + v.offset, count: v.type.byteCount)))
    }

    /// Sets a variable (same shape and element type), e.g. to load weights or reset an optimizer.
    public func setVariable(_ name: String, to value: HostTensor) throws {
        let v = try placement(ofVariable: name)
        guard value.shape == v.type.shape else { throw LatheError.inputShapeMismatch(name: name, expected: v.type.shape, got: value.shape) }
        guard value.dtype == v.type.dtype else { throw LatheError.inputElementTypeMismatch(name: name, expected: v.type.dtype, got: value.dtype) }
        variableLock.lock()
        defer { variableLock.unlock() }
        value.withUnsafeBytes { bytes in
            if let base = bytes.baseAddress { (weights + v.offset).copyMemory(from: base, byteCount: bytes.count) }
        }
    }

    private func placement(ofVariable name: String) throws -> VariablePlacement {
        guard let v = program.variables.first(where: { $0.name == name }) else { throw LatheError.unknownOutput(name: name, known: variableNames) }
        return v
    }

    /// Runs on named host tensors (each of its input's element type) and returns the named
    /// outputs.
    public func run(_ feeds: [String: HostTensor]) throws -> [String: HostTensor] {
        try checkFeeds(program.inputs, feeds)
        let outputBuffers = program.outputs.map { UnsafeMutableRawBufferPointer.allocate(byteCount: $0.type.byteCount, alignment: 64) }
        defer { outputBuffers.forEach { $0.deallocate() } }
        try withBytes(program.inputs.map { feeds[$0.name]! }) { inputBuffers in
            try run(inputs: inputBuffers, outputs: outputBuffers, ticks: nil)
        }
        var results: [String: HostTensor] = [:]
        for (output, buffer) in zip(program.outputs, outputBuffers) {
            if output.type.dtype == .float32 {
                results[output.name] = try HostTensor(shape: output.type.shape, scalars: Array(buffer.bindMemory(to: Float.self)))
            } else {
                results[output.name] = try HostTensor(shape: output.type.shape, dtype: output.type.dtype, bytes: Array(buffer))
            }
        }
        return results
    }

    /// The allocation-free path for float32 models: the caller's buffers, in the order of
    /// `inputs` and `outputNames`, each exactly the size of its tensor.
    public func run(inputs: [UnsafeBufferPointer<Float>], outputs: [UnsafeMutableBufferPointer<Float>]) throws {
        try run(inputs: try floatBuffers(inputs), outputs: try floatBuffers(outputs), ticks: nil)
    }

    /// The allocation-free path for tensors of any element type: the caller's buffers, in the
    /// order of `inputs` and `outputNames`, each exactly its tensor's bytes (little-endian
    /// elements of its type; a bool is a 0 or 1 byte).
    public func run(inputBytes: [UnsafeRawBufferPointer], outputBytes: [UnsafeMutableRawBufferPointer]) throws {
        try run(inputs: inputBytes, outputs: outputBytes, ticks: nil)
    }

    /// Float buffers seen as bytes, once every input and output is found to be float32.
    private func floatBuffers(_ inputs: [UnsafeBufferPointer<Float>]) throws -> [UnsafeRawBufferPointer] {
        for spec in program.inputs where spec.dtype != .float32 {
            throw LatheError.inputElementTypeMismatch(name: spec.name, expected: spec.dtype, got: .float32)
        }
        return inputs.map { UnsafeRawBufferPointer($0) }
    }

    private func floatBuffers(_ outputs: [UnsafeMutableBufferPointer<Float>]) throws -> [UnsafeMutableRawBufferPointer] {
        for output in program.outputs where output.type.dtype != .float32 {
            throw LatheError.elementTypeMismatch(what: "output '\(output.name)'", expected: .float32, got: output.type.dtype)
        }
        return outputs.map { UnsafeMutableRawBufferPointer($0) }
    }

    private func run(inputs: [UnsafeRawBufferPointer], outputs: [UnsafeMutableRawBufferPointer], ticks: UnsafeMutablePointer<UInt64>?) throws {
        guard inputs.count == program.inputs.count else { throw LatheError.wrongInputCount(expected: program.inputs.count, got: inputs.count) }
        guard outputs.count == program.outputs.count else {
            throw LatheError.unknownOutput(name: "(\(outputs.count) output buffers)", known: program.outputs.map(\.name))
        }
        for (spec, buffer) in zip(program.inputs, inputs) {
            let type = TensorType(spec.dtype, spec.shape)
            guard buffer.count == type.byteCount, buffer.baseAddress != nil || type.count == 0 else {
                throw LatheError.inputSizeMismatch(name: spec.name, expectedCount: type.count, got: buffer.count / spec.dtype.byteSize)
            }
        }
        for (output, buffer) in zip(program.outputs, outputs) {
            guard buffer.count == output.type.byteCount, buffer.baseAddress != nil || output.type.count == 0 else {
                throw LatheError.inputSizeMismatch(name: "output \(output.name)", expectedCount: output.type.count, got: buffer.count / output.type.dtype.byteSize)
            }
        }
        if writesVariables { variableLock.lock() }
        defer { if writesVariables { variableLock.unlock() } }
        let arena = takeArena()
        defer { giveBack(arena) }
        for (i, buffer) in inputs.enumerated() {
            arena.inputTable[i] = UnsafeMutableRawPointer(mutating: buffer.baseAddress)?.assumingMemoryBound(to: Float.self)
        }
        for (i, buffer) in outputs.enumerated() { arena.outputTable[i] = buffer.baseAddress?.assumingMemoryBound(to: Float.self) }
        let status = pool.during(arena.parallel) {
            entry(arena.region.base.assumingMemoryBound(to: Float.self), weights.assumingMemoryBound(to: Float.self), arena.inputTable,
                  arena.outputTable, ticks, Unmanaged.passUnretained(arena.parallel).toOpaque(), parallelCallback)
        }
        if status > 0 { throw indexError(kernel: program.kernels[Int(status) - 1], arena: arena) }
    }

    /// The error a kernel that checks its indices recorded (Gather.swift's index record).
    private func indexError(kernel: Kernel, arena: RunArena) -> LatheError {
        var (index, bound): (Int64, Int64) = (0, 0)
        if case let .arena(offset)? = kernel.scratch?.location {
            index = (arena.region.base + offset + 8).loadUnaligned(as: Int64.self)
            bound = (arena.region.base + offset + 16).loadUnaligned(as: Int64.self)
        }
        return .indexOutOfRange(node: kernel.nodeName, op: kernel.plan.sourceOps.first ?? kernel.name, index: index, bound: Int(bound), location: kernel.location)
    }

    private func takeArena() -> RunArena {
        let spare = spareLock.withLock { () -> RunArena? in
            if let arena = spareArenas.popLast() { return arena }
            arenasMade += 1
            return nil
        }
        // Made outside the lock: a large arena's mapping should not hold up the other runs.
        return spare ?? newArena()
    }

    private func newArena() -> RunArena {
        // A model that splits no kernel never wakes a worker.
        let shares = program.kernels.contains { $0.threads > 1 } ? threads : 1
        return RunArena(program, parallel: ParallelRun(pool: pool, threads: shares, policy: waiting, modelFlops: program.flops))
    }

    private func giveBack(_ arena: RunArena) {
        spareLock.withLock { spareArenas.append(arena) }
    }

    /// Runs once and returns the seconds each kernel took (the cycle counter read between
    /// kernels, scaled by the run's wall time).
    public func profile(inputs: [UnsafeBufferPointer<Float>], outputs: [UnsafeMutableBufferPointer<Float>]) throws -> [Double] {
        try profile(inputBytes: try floatBuffers(inputs), outputBytes: try floatBuffers(outputs))
    }

    /// The same on buffers of any element type (see `run(inputBytes:outputBytes:)`).
    public func profile(inputBytes inputs: [UnsafeRawBufferPointer], outputBytes outputs: [UnsafeMutableRawBufferPointer]) throws -> [Double] {
        var counts = [UInt64](repeating: 0, count: program.kernels.count + 1)
        let start = ContinuousClock.now
        try counts.withUnsafeMutableBufferPointer { try run(inputs: inputs, outputs: outputs, ticks: $0.baseAddress) }
        let elapsed = ContinuousClock.now - start
        let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        let total = Double(counts.last! &- counts[0])
        guard total > 0 else { return Array(repeating: 0, count: program.kernels.count) }
        return (0..<program.kernels.count).map { Double(counts[$0 + 1] &- counts[$0]) / total * wall }
    }
}

/// One run's memory: the arena for intermediates, the tables of input and output addresses the
/// entry reads, and the run's handle on the thread pool; made once, so a run allocates nothing.
private final class RunArena {
    let region: MemoryRegion
    let inputTable: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>
    let outputTable: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>
    let parallel: ParallelRun

    init(_ program: KernelProgram, parallel: ParallelRun) {
        self.parallel = parallel
        region = MemoryRegion(bytes: program.arenaBytes)
        inputTable = .allocate(capacity: max(program.inputs.count, 1))
        outputTable = .allocate(capacity: max(program.outputs.count, 1))
    }

    deinit {
        inputTable.deallocate()
        outputTable.deallocate()
    }
}

/// Calls `body` with the bytes of each tensor, in order, copying none.
private func withBytes<R>(_ tensors: [HostTensor], _ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
    var buffers: [UnsafeRawBufferPointer] = []
    func nest(_ i: Int) throws -> R {
        if i == tensors.count { return try body(buffers) }
        return try tensors[i].withUnsafeBytes { buffer in
            buffers.append(buffer)
            return try nest(i + 1)
        }
    }
    return try nest(0)
}
