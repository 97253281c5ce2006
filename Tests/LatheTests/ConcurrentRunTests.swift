import Foundation
import Synchronization
import Lathe
import LatheExamples
@testable import LatheRuntime
import Testing

/// Runs of compiled models from many threads at once, on the process's thread pool, and the
/// pool's hand-off of shares when a worker is late. Also run under the thread sanitizer:
/// `swift test --sanitize=thread --filter 'ConcurrentRun|ThreadPoolShares'`.
@Suite("Concurrent runs")
struct ConcurrentRunTests {
    /// An example model compiled for `threads`, with a kernel split among them.
    static func model(_ name: String, batch: Int, threads: Int, pool: ThreadPool? = nil) throws -> (CompiledModel, [String: HostTensor]) {
        let example = try #require(Examples.named(name))
        let (graph, outputs) = try example.graph(batch: batch, seed: 11)
        let model = try Compiler.compile(graph, outputs: outputs.map { ($0.name, $0.value.id) }, options: CompileOptions(threads: threads), pool: pool)
        if threads > 1 { try #require(model.program.kernels.contains { $0.threads > 1 }, "\(name) at batch \(batch) splits no kernel") }
        return (model, feeds(model, seed: 0))
    }

    static func feeds(_ model: CompiledModel, seed: UInt64) -> [String: HostTensor] {
        var feeds: [String: HostTensor] = [:]
        for (i, input) in model.inputs.enumerated() {
            feeds[input.name] = HostTensor.random(shape: input.shape, dtype: input.dtype, seed: seed &* 977 &+ UInt64(i))
        }
        return feeds
    }

    /// Starts `count` threads at once on `body(thread)` and waits for them all.
    static func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let started = DispatchGroup(), finished = DispatchGroup()
        let gate = DispatchSemaphore(value: 0)
        for t in 0..<count {
            started.enter()
            finished.enter()
            let thread = Thread {
                started.leave()
                gate.wait()
                body(t)
                finished.leave()
            }
            thread.start()
        }
        started.wait()
        for _ in 0..<count { gate.signal() }
        finished.wait()
    }

    /// Eight threads run one model 100 times each, each thread on its own input, and every
    /// result is bit-identical to a serial run on that input; the runs overlapped, so the model
    /// made more than one arena.
    @Test func oneModelFromEightThreads() throws {
        let (model, _) = try Self.model("mnist-cnn", batch: 4, threads: 2)
        let inputs = (0..<8).map { Self.feeds(model, seed: UInt64($0)) }
        let expected = try inputs.map { try model.run($0) }
        #expect(!bitIdentical(expected[0], expected[1]), "the threads' inputs give different outputs")
        let mismatches = Tally(), failures = Tally()
        Self.onThreads(8) { t in
            for _ in 0..<100 {
                do {
                    if try !bitIdentical(model.run(inputs[t]), expected[t]) { mismatches.add() }
                } catch { failures.add() }
            }
        }
        #expect(failures.count == 0)
        #expect(mismatches.count == 0)
        #expect(model.arenaCount > 1, "800 runs on 8 threads never overlapped")
        #expect(model.arenaCount <= 9)
    }

    /// Two models, each from a thread of its own, at once, both on the process's pool.
    @Test func twoModelsFromTwoThreads() throws {
        let (cnn, cnnFeeds) = try Self.model("mnist-cnn", batch: 8, threads: 2)
        let (encoder, encoderFeeds) = try Self.model("transformer-encoder", batch: 4, threads: 2)
        let expected = [try cnn.run(cnnFeeds), try encoder.run(encoderFeeds)]
        let mismatches = Tally(), failures = Tally()
        Self.onThreads(2) { t in
            let (model, feeds) = t == 0 ? (cnn, cnnFeeds) : (encoder, encoderFeeds)
            for _ in 0..<100 {
                do {
                    if try !bitIdentical(model.run(feeds), expected[t]) { mismatches.add() }
                } catch { failures.add() }
            }
        }
        #expect(failures.count == 0)
        #expect(mismatches.count == 0)
    }

    /// A training step writes its weights, so its runs take turns: 2 threads x 20 SGD steps on one
    /// batch leave bit for bit the weights of 400 serial steps.
    @Test func trainingStepsTakeTurns() throws {
        func step() throws -> TrainingStep {
            try TrainingStep(model: Sequential { Dense(64, activation: .relu); Dense(3) }, inputShape: [8, 5], targetShape: [8, 3],
                             loss: .meanSquaredError, optimizer: .sgd(learningRate: 0.05), seed: 1, threads: 2)
        }
        let serial = try step(), concurrent = try step()
        var feeds = ["input": HostTensor.random(shape: [8, 5], seed: 1), "target": HostTensor.random(shape: [8, 3], seed: 2)]
        for (name, value) in serial.optimizer.scalars(step: 1, learningRate: serial.learningRate) { feeds[name] = HostTensor(shape: [1], repeating: value) }
        for _ in 0..<400 { _ = try serial.compiled.run(feeds) }
        let failures = Tally()
        let steps = feeds
        Self.onThreads(4) { _ in
            for _ in 0..<100 {
                do { _ = try concurrent.compiled.run(steps) } catch { failures.add() }
            }
        }
        #expect(failures.count == 0)
        #expect(!serial.compiled.variableNames.isEmpty)
        for name in serial.compiled.variableNames {
            #expect(bitIdentical([name: try serial.compiled.variable(name)], [name: try concurrent.compiled.variable(name)]), "\(name)")
        }
    }

    /// A model compiled for 2 threads whose kernels split by rows or columns has each of them
    /// also planned for one thread (Kernel.alonePlan); with no worker to hand shares to, a run
    /// calls those, and gets bit for bit what the model compiled for one thread gives.
    @Test(arguments: [("mnist-cnn", 1), ("dcgan-discriminator", 1), ("mnist-mlp", 4)])
    func aloneKernelsMatchOneThread(name: String, batch: Int) throws {
        let noWorkers = ThreadPool(workers: 0)
        let (model, feeds) = try Self.model(name, batch: batch, threads: 2, pool: noWorkers)
        let (reference, _) = try Self.model(name, batch: batch, threads: 1)
        let alone = model.program.kernels.filter { $0.alonePlan != nil }
        try #require(!alone.isEmpty, "\(name) at batch \(batch) has no kernel split by rows or columns")
        #expect(alone.allSatisfy { $0.alonePlan?.threads == 1 && $0.threads == 2 })
        #expect(bitIdentical(try model.run(feeds), try reference.run(feeds)))
    }

    /// A worker that sleeps half a second each time it wakes, before it claims a share, holds no
    /// run up: the caller claims and runs the shares the worker never took, so a run takes about
    /// its work (a few milliseconds), not the sleep. (With shares handed out by thread index,
    /// the run waited for the worker.)
    @Test func lateWorkerHoldsNothingUp() throws {
        let sleep = 0.5
        let pool = ThreadPool(workers: 1, beforeClaiming: { Thread.sleep(forTimeInterval: sleep) })
        defer { pool.stop() }
        let (model, feeds) = try Self.model("mnist-cnn", batch: 16, threads: 2, pool: pool)
        let (reference, _) = try Self.model("mnist-cnn", batch: 16, threads: 1)
        let expected = try reference.run(feeds)
        var slowest = 0.0
        for _ in 0..<3 {
            let start = ContinuousClock.now
            let got = try model.run(feeds)
            let elapsed = ContinuousClock.now - start
            slowest = max(slowest, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
            #expect(bitIdentical(got, expected))
        }
        #expect(slowest < sleep / 4, "a run took \(slowest) s with a worker asleep for \(sleep) s")
    }
}

/// Numbers handed out in turn, then the last one again.
final class Samples: @unchecked Sendable {
    private let values: [Int]
    private var index = 0
    private let lock = NSLock()
    init(_ values: [Int]) { self.values = values }
    func next() -> Int { lock.withLock { defer { index += 1 }; return values[min(index, values.count - 1)] } }
}

/// A count that threads add to.
final class Tally: Sendable {
    private let value = Atomic<Int>(0)
    func add() { value.add(1, ordering: .relaxed) }
    var count: Int { value.load(ordering: .relaxed) }
}

/// Same names, shapes and bits.
func bitIdentical(_ a: [String: HostTensor], _ b: [String: HostTensor]) -> Bool {
    a.count == b.count && a.allSatisfy { name, x in
        guard let y = b[name] else { return false }
        return x.shape == y.shape && x.scalars.map(\.bitPattern) == y.scalars.map(\.bitPattern)
    }
}

/// The pool's hand-off on its own: every share of every job runs exactly once, whichever thread
/// claims it, with more shares than threads and several callers at once.
@Suite("Thread pool shares")
struct ThreadPoolSharesTests {
    /// task(args, t): args[0][t] += 1.
    static let countShare: ThreadPool.Task = { arguments, t in
        arguments![0]![Int(t)] += 1
    }

    @Test(arguments: [0, 1, 3])
    func everyShareRunsOnce(workers: Int) {
        let pool = ThreadPool(workers: workers)
        defer { pool.stop() }
        let wrong = Tally()
        ConcurrentRunTests.onThreads(4) { caller in
            let shares = 2 + caller * 3
            let counts = UnsafeMutablePointer<Float>.allocate(capacity: shares)
            let arguments = UnsafeMutablePointer<UnsafeMutablePointer<Float>?>.allocate(capacity: 1)
            defer { counts.deallocate(); arguments.deallocate() }
            arguments[0] = counts
            let run = ParallelRun(pool: pool, threads: shares, policy: WaitPolicy(spinMicroseconds: 1, yieldMicroseconds: 10))
            pool.during(run) {
                for job in 0..<200 {
                    counts.update(repeating: Float(job), count: shares)
                    run.parallel(Self.countShare, alone: nil, arguments, count: shares)
                    for t in 0..<shares where counts[t] != Float(job + 1) { wrong.add() }
                }
            }
        }
        #expect(wrong.count == 0)
    }

    /// alone(args, 0): args[0][last] += 1, the shares' counts untouched.
    static let countAlone: ThreadPool.Task = { arguments, _ in
        arguments![0]![2] += 1
    }

    /// A worker that is awake (not blocked) but never claims a share in time, as one whose core
    /// another process holds: after two jobs its caller ran all of, the run keeps to its thread,
    /// calling the alone task instead of handing out shares, until `aloneMicroseconds` have
    /// passed; then it hands the next job out again. With `aloneMicroseconds` 0 it never does.
    @Test(arguments: [0.0, 30_000.0])
    func absentWorkerLeavesRunsAlone(aloneMicroseconds: Double) {
        let pool = ThreadPool(workers: 1, beforeClaiming: { Thread.sleep(forTimeInterval: 0.2) })
        defer { pool.stop() }
        let counts = UnsafeMutablePointer<Float>.allocate(capacity: 3)
        let arguments = UnsafeMutablePointer<UnsafeMutablePointer<Float>?>.allocate(capacity: 1)
        defer { counts.deallocate(); arguments.deallocate() }
        arguments[0] = counts
        counts.update(repeating: 0, count: 3)
        let run = ParallelRun(pool: pool, threads: 2, policy: WaitPolicy(spinMicroseconds: 1, yieldMicroseconds: 1, aloneMicroseconds: aloneMicroseconds))
        pool.during(run) {
            for _ in 0..<10 { run.parallel(Self.countShare, alone: Self.countAlone, arguments, count: 2) }
        }
        if aloneMicroseconds == 0 {
            #expect(counts[0] == 10 && counts[1] == 10 && counts[2] == 0, "\(counts[0]) \(counts[1]) \(counts[2])")
            return
        }
        // Two missed jobs, then eight alone.
        #expect(counts[0] == 2 && counts[1] == 2 && counts[2] == 8, "\(counts[0]) \(counts[1]) \(counts[2])")
        Thread.sleep(forTimeInterval: aloneMicroseconds * 2e-6)
        pool.during(run) { run.parallel(Self.countShare, alone: Self.countAlone, arguments, count: 2) }
        #expect(counts[0] == 3 && counts[1] == 3 && counts[2] == 8, "the job after the alone time was not handed out")
    }

    /// A run of a policy that checks the load keeps to its calling thread, alone tasks
    /// included, when other threads hold the pool's cores (the sampled count, less this thread
    /// and the awake worker, leaves fewer than two), and hands shares out when they do not; a
    /// load seen in one sample alone, or a policy that does not check, changes nothing.
    @Test func busyMachineRunsAlone() {
        let samples = Samples([1, 3, 3, 1, 3, 3])
        let pool = ThreadPool(workers: 1, runnableThreads: { samples.next() })
        defer { pool.stop() }
        let counts = UnsafeMutablePointer<Float>.allocate(capacity: 3)
        let arguments = UnsafeMutablePointer<UnsafeMutablePointer<Float>?>.allocate(capacity: 1)
        defer { counts.deallocate(); arguments.deallocate() }
        arguments[0] = counts
        /// One run of one job, each after the 2 ms between samples; whether it ran alone.
        func runAlone(_ policy: WaitPolicy) -> Bool {
            Thread.sleep(forTimeInterval: 0.003)
            counts.update(repeating: 0, count: 3)
            let run = ParallelRun(pool: pool, threads: 2, policy: policy)
            pool.during(run) { run.parallel(Self.countShare, alone: Self.countAlone, arguments, count: 2) }
            return counts[2] == 1 && counts[0] == 0 && counts[1] == 0
        }
        let checking = WaitPolicy(spinMicroseconds: 100, yieldMicroseconds: 100, aloneMicroseconds: 0)
        #expect(!runAlone(checking), "sample 1: only this thread runnable")
        #expect(!runAlone(checking), "sample 3 after 1: one sample of load")
        #expect(runAlone(checking), "samples 3, 3: two other threads on two cores")
        #expect(!runAlone(checking), "sample 1: the load has gone")
        var ignoring = checking
        ignoring.checksLoad = false
        #expect(!runAlone(ignoring), "a policy that does not check takes no sample")
        #expect(!runAlone(checking), "sample 3 after 1 again")
        #expect(runAlone(checking), "samples 3, 3 again")
    }

    /// A loaded run still splits the large kernels of a large model (a thread of its own gets
    /// the run more of the cores over many scheduler slices) and keeps the rest on its thread:
    /// a small kernel, or any kernel of a small model.
    @Test func loadedRunSplitsOnlyLargeKernelsOfLargeModels() {
        let pool = ThreadPool(workers: 1, runnableThreads: { 3 })
        defer { pool.stop() }
        let counts = UnsafeMutablePointer<Float>.allocate(capacity: 3)
        let arguments = UnsafeMutablePointer<UnsafeMutablePointer<Float>?>.allocate(capacity: 1)
        defer { counts.deallocate(); arguments.deallocate() }
        arguments[0] = counts
        let policy = WaitPolicy(spinMicroseconds: 100, yieldMicroseconds: 100, aloneMicroseconds: 0,
                                loadedSplitKernelMegaflops: 150, loadedSplitModelGigaflops: 4)
        /// Whether one job of a run after two samples of load ran alone.
        func runAlone(kernelFlops: Int, modelFlops: Int) -> Bool {
            counts.update(repeating: 0, count: 3)
            let run = ParallelRun(pool: pool, threads: 2, policy: policy, modelFlops: modelFlops)
            pool.during(run) { run.parallel(Self.countShare, alone: Self.countAlone, arguments, count: 2, flops: kernelFlops) }
            #expect(run.loaded)
            return counts[2] == 1 && counts[0] == 0 && counts[1] == 0
        }
        // Two samples of load, 2 ms apart.
        for _ in 0..<2 {
            Thread.sleep(forTimeInterval: 0.003)
            pool.during(ParallelRun(pool: pool, threads: 2, policy: policy)) {}
        }
        #expect(!runAlone(kernelFlops: 200_000_000, modelFlops: 5_000_000_000), "a large kernel of a large model")
        #expect(counts[0] == 1 && counts[1] == 1, "each share once")
        #expect(runAlone(kernelFlops: 100_000_000, modelFlops: 5_000_000_000), "a small kernel of a large model")
        #expect(runAlone(kernelFlops: 200_000_000, modelFlops: 3_000_000_000), "a large kernel of a small model")
        var ignoring = policy
        ignoring.checksLoad = false
        let run = ParallelRun(pool: pool, threads: 2, policy: ignoring)
        pool.during(run) { run.parallel(Self.countShare, alone: Self.countAlone, arguments, count: 2, flops: 0) }
        #expect(!run.loaded, "a policy that does not check the load")
    }

    /// The load is the machine's: on a machine of more CPUs than the pool's, other threads fill
    /// those first, and only the ones past them take the pool's cores.
    @Test func loadOutsideThePoolsCoresIsNotCounted() {
        // This thread and two others (the worker, whether asleep or spinning, counted as ours).
        let pool = ThreadPool(workers: 1, machineCPUs: 4, runnableThreads: { 3 })
        defer { pool.stop() }
        let counts = UnsafeMutablePointer<Float>.allocate(capacity: 3)
        let arguments = UnsafeMutablePointer<UnsafeMutablePointer<Float>?>.allocate(capacity: 1)
        defer { counts.deallocate(); arguments.deallocate() }
        arguments[0] = counts
        let policy = WaitPolicy(spinMicroseconds: 100, yieldMicroseconds: 100, aloneMicroseconds: 0)
        for _ in 0..<3 {
            Thread.sleep(forTimeInterval: 0.003)
            counts.update(repeating: 0, count: 3)
            let run = ParallelRun(pool: pool, threads: 2, policy: policy)
            pool.during(run) { run.parallel(Self.countShare, alone: Self.countAlone, arguments, count: 2) }
            #expect(counts[2] == 0 && counts[0] == 1 && counts[1] == 1, "two other threads on the two CPUs outside the pool's")
        }
    }

    /// A wait policy from user input cannot trap when turned into nanoseconds.
    @Test func waitPolicyIsClamped() {
        let odd = WaitPolicy(spinMicroseconds: .nan, yieldMicroseconds: 1e300)
        #expect(odd.spinNanoseconds == 0)
        #expect(odd.yieldNanoseconds == 1_000_000_000)
        #expect(WaitPolicy(spinMicroseconds: -5).spinNanoseconds == 0)
        #expect(WaitPolicy(aloneMicroseconds: .infinity).aloneNanoseconds == 1_000_000_000)
        let sizes = WaitPolicy(loadedSplitKernelMegaflops: .nan, loadedSplitModelGigaflops: -1)
        #expect(sizes.loadedSplitKernelMegaflops == 0 && sizes.loadedSplitModelGigaflops == 0)
    }
}
