import Foundation
import LatheCodegen
import LatheIR

/// A model compiled to native code, ready to run. It owns its machine code, its weights and
/// one arena for intermediates, all made at compile time: a run allocates nothing. Runs on one
/// model are serialized; compile the graph again for concurrent runs.
public final class CompiledModel: @unchecked Sendable {
    public let program: KernelProgram
    public let target: HostTarget
    /// Wall time of each compile stage: passes and planning, LLVM IR, LLVM optimization and machine code (or cache hit), JIT link, weights (laid out alongside).
    public let compileStages: [(stage: String, seconds: Double)]
    /// Wall time of the whole compile.
    public var compileSeconds: Double { compileStages.reduce(0) { $0 + $1.seconds } }
    /// The optimized LLVM IR, when asked for in CompileOptions.
    public let llvmIR: String?

    private let jit: JITSession
    private let entry: EntryFunction
    private let weightsRegion: MemoryRegion
    private let arenaRegion: MemoryRegion
    private var weights: UnsafeMutableRawPointer { weightsRegion.base }
    private var arena: UnsafeMutableRawPointer { arenaRegion.base }
    private let inputTable: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>
    private let outputTable: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>
    private let lock = NSLock()
    private let pool: ThreadPool
    /// The threads a run uses.
    public var threads: Int { pool.threads }

    /// `weights`: the laid-out weights region, which the model now owns.
    init(program: KernelProgram, jit: JITSession, entry: @escaping EntryFunction, weights: MemoryRegion, target: HostTarget,
         compileStages: [(stage: String, seconds: Double)], llvmIR: String?, threads: Int) {
        self.program = program
        pool = ThreadPool(threads: threads)
        self.jit = jit
        self.entry = entry
        self.target = target
        self.compileStages = compileStages
        self.llvmIR = llvmIR
        weightsRegion = weights
        arenaRegion = MemoryRegion(bytes: program.arenaBytes)
        inputTable = .allocate(capacity: max(program.inputs.count, 1))
        outputTable = .allocate(capacity: max(program.outputs.count, 1))
    }

    deinit {
        inputTable.deallocate()
        outputTable.deallocate()
    }

    public var inputs: [InputSpec] { program.inputs }
    public var outputNames: [String] { program.outputs.map(\.name) }
    public func outputType(_ name: String) -> TensorType? { program.outputs.first { $0.name == name }?.type }

    /// The names of the model's variables (training state that persists between runs).
    public var variableNames: [String] { program.variables.map(\.name) }

    /// A variable's current value: a weight after some training steps, say.
    public func variable(_ name: String) throws -> HostTensor {
        let v = try placement(ofVariable: name)
        lock.lock()
        defer { lock.unlock() }
        let start = (weights + v.offset).assumingMemoryBound(to: Float.self)
        return try HostTensor(shape: v.type.shape, scalars: Array(UnsafeBufferPointer(start: start, count: v.type.count)))
    }

    /// Sets a variable (same shape), e.g. to load weights or reset an optimizer.
    public func setVariable(_ name: String, to value: HostTensor) throws {
        let v = try placement(ofVariable: name)
        guard value.shape == v.type.shape else { throw LatheError.inputShapeMismatch(name: name, expected: v.type.shape, got: value.shape) }
        lock.lock()
        defer { lock.unlock() }
        value.scalars.withUnsafeBytes { bytes in
            if let base = bytes.baseAddress { (weights + v.offset).copyMemory(from: base, byteCount: bytes.count) }
        }
    }

    private func placement(ofVariable name: String) throws -> VariablePlacement {
        guard let v = program.variables.first(where: { $0.name == name }) else { throw LatheError.unknownOutput(name: name, known: variableNames) }
        return v
    }

    /// Runs on named host tensors and returns the named outputs.
    public func run(_ feeds: [String: HostTensor]) throws -> [String: HostTensor] {
        try checkFeeds(program.inputs, feeds)
        let outputBuffers = program.outputs.map { UnsafeMutableBufferPointer<Float>.allocate(capacity: $0.type.count) }
        defer { outputBuffers.forEach { $0.deallocate() } }
        try withBuffers(program.inputs.map { feeds[$0.name]!.scalars }) { inputBuffers in
            try run(inputs: inputBuffers, outputs: outputBuffers)
        }
        var results: [String: HostTensor] = [:]
        for (output, buffer) in zip(program.outputs, outputBuffers) {
            results[output.name] = try HostTensor(shape: output.type.shape, scalars: Array(buffer))
        }
        return results
    }

    /// The allocation-free path: the caller's buffers, in the order of `inputs` and `outputNames`,
    /// each exactly the size of its tensor.
    public func run(inputs: [UnsafeBufferPointer<Float>], outputs: [UnsafeMutableBufferPointer<Float>]) throws {
        try run(inputs: inputs, outputs: outputs, ticks: nil)
    }

    private func run(inputs: [UnsafeBufferPointer<Float>], outputs: [UnsafeMutableBufferPointer<Float>], ticks: UnsafeMutablePointer<UInt64>?) throws {
        guard inputs.count == program.inputs.count else { throw LatheError.wrongInputCount(expected: program.inputs.count, got: inputs.count) }
        guard outputs.count == program.outputs.count else {
            throw LatheError.unknownOutput(name: "(\(outputs.count) output buffers)", known: program.outputs.map(\.name))
        }
        for (spec, buffer) in zip(program.inputs, inputs) {
            let expected = spec.shape.reduce(1, *)
            guard buffer.count == expected, buffer.baseAddress != nil || expected == 0 else {
                throw LatheError.inputSizeMismatch(name: spec.name, expectedCount: expected, got: buffer.count)
            }
        }
        for (output, buffer) in zip(program.outputs, outputs) {
            guard buffer.count == output.type.count, buffer.baseAddress != nil || output.type.count == 0 else {
                throw LatheError.inputSizeMismatch(name: "output \(output.name)", expectedCount: output.type.count, got: buffer.count)
            }
        }
        lock.lock()
        defer { lock.unlock() }
        for (i, buffer) in inputs.enumerated() { inputTable[i] = UnsafeMutablePointer(mutating: buffer.baseAddress) }
        for (i, buffer) in outputs.enumerated() { outputTable[i] = buffer.baseAddress }
        pool.during {
            entry(arena.assumingMemoryBound(to: Float.self), weights.assumingMemoryBound(to: Float.self), inputTable, outputTable,
                  ticks, Unmanaged.passUnretained(pool).toOpaque(), parallelCallback)
        }
    }

    /// Runs once and returns the seconds each kernel took (the cycle counter read between
    /// kernels, scaled by the run's wall time).
    public func profile(inputs: [UnsafeBufferPointer<Float>], outputs: [UnsafeMutableBufferPointer<Float>]) throws -> [Double] {
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

private func withBuffers<R>(_ arrays: [[Float]], _ body: ([UnsafeBufferPointer<Float>]) throws -> R) rethrows -> R {
    var buffers: [UnsafeBufferPointer<Float>] = []
    func nest(_ i: Int) throws -> R {
        if i == arrays.count { return try body(buffers) }
        return try arrays[i].withUnsafeBufferPointer { buffer in
            buffers.append(buffer)
            return try nest(i + 1)
        }
    }
    return try nest(0)
}
