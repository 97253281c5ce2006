import CLatheThreads
import Foundation
import Synchronization

/// The worker threads every compiled model in the process shares, and the hand-off of a split
/// kernel's shares to them.
///
/// One pool a process (`ThreadPool.process`), with one worker fewer than the CPUs the process
/// may run on (its affinity mask, not the machine's count): a run's calling thread is the other.
/// A model compiled for N threads hands each split kernel to the pool as a *job* of N shares
/// (`task(arguments, t)` for t in 0..<N); N is how many threads one run may use, not how many
/// the pool has.
///
/// Shares are claimed, never assigned. A run holds one of the pool's job slots for its whole
/// length; publishing a job sets the slot's state word to (generation, N, next share 1) and the
/// caller runs share 0 at once. Any thread, a worker or the caller itself, takes the next share
/// with a compare-and-swap on that word, so a worker that wakes late, or whose core another
/// process holds, costs nothing but a share it never claimed: the caller runs it. (Most kernels
/// also claim their units from a counter inside a share, so a late thread finds them done.)
/// The caller then waits until every claimed share is finished.
///
/// Waiting yields. A worker with no share to run, and a caller waiting for a worker's share,
/// spin for a bounded time (`WaitPolicy.spinMicroseconds`, the PAUSE hint in the loop), then
/// call sched_yield until `yieldMicroseconds` have passed, so that on a busy machine another
/// process gets the core, then block on a futex until woken. On an idle machine a worker is
/// still spinning when the next kernel is handed out (a few microseconds apart); the yield
/// phase costs little there, since a yield with nothing else to run returns at once.
///
/// Absent workers are noticed. A job whose every share its caller ran itself, though a worker
/// was awake (spinning or yielding, not blocked), is a miss: that worker's core is held by
/// another process or its time by other runs. After `WaitPolicy.missesBeforeAlone` misses in a
/// row, for `aloneMicroseconds`, a kernel with an alone plan (the same kernel planned for one
/// thread, for splits whose shares in a row cost more: Kernel.alonePlan) runs that on the
/// caller instead of being handed out, and runs wake no worker when they start; a kernel split
/// into units is still handed out, since a worker back on its core takes the units left. Then
/// jobs are handed out again. On a busy machine a small model then goes at one thread's speed
/// instead of at the split's serial speed with hand-offs on top; on an idle one an awake worker
/// claims a share within nanoseconds, so jobs do not miss.
///
/// Busy machines are noticed before a run starts. Never more runnable threads than cores for
/// small work: a run of a policy that `checksLoad` looks at how many threads the machine has
/// runnable (Linux's /proc/loadavg, sampled at most every 2 ms by any run of the process, the
/// fewer of two samples in a row), takes away this thread and the pool's awake workers and as
/// many as the machine has CPUs outside the process's mask, and counts the cores left of the
/// pool's. With fewer than two the run is *loaded*: it wakes no worker when it starts, and runs
/// its kernels on its calling thread alone (their alone plans where they have one), except the
/// large kernels of a large model (`WaitPolicy.splitsWhenLoaded`). A thread of another process
/// then keeps its core, and a short run or a small kernel goes at one thread's speed instead
/// of waiting, kernel after kernel, for whichever of the run's threads the scheduler left out
/// (a short run on one thread is seldom descheduled at all). A large kernel of a long run is
/// still handed out, waking the workers it needs: over a run of many scheduler slices, two
/// threads of the run beside two busy ones get a core between them where one gets two thirds of
/// one, and the shares (and the units inside them) are claimed, so the kernel waits at most for
/// the one piece a descheduled thread holds. With two or more cores left, a run wakes at most
/// one worker fewer than the cores left, for every job.
///
/// Several runs may be under way at once, from one model or many: each has its own slot, and a
/// worker serves whichever slot has a share open. More runs than slots run their shares on the
/// calling thread alone.
final class ThreadPool: @unchecked Sendable {
    typealias Task = @convention(c) (UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?, Int64) -> Void

    /// The process's pool, made on first use by a run with more than one thread.
    static let process = ThreadPool(workers: Int(lathe_allowed_cpus()) - 1, machineCPUs: Int(lathe_online_cpus()), runnableThreads: {
        let count = lathe_runnable_threads()
        return count >= 0 ? Int(count) : nil
    })
    /// No workers: for models compiled for one thread.
    static let inline = ThreadPool(workers: 0)

    /// How many job slots, so how many runs at once can hand shares to the workers.
    static let slotCount = 64

    let workerCount: Int
    private let slots: [JobSlot]
    /// Bit s set while slot s has a published job whose shares may not all be claimed yet.
    private let openJobs = Atomic<UInt64>(0)
    /// Bumped on every published job: idle workers wait for it to change.
    private let epoch = FutexWord()
    /// Workers blocked on `epoch`.
    private let sleepers = Atomic<Int>(0)
    /// The wait policy of the latest run to publish a job, which the workers follow.
    private let workerSpinNanoseconds = Atomic<Int>(WaitPolicy().spinNanoseconds)
    private let workerYieldNanoseconds = Atomic<Int>(WaitPolicy().yieldNanoseconds)
    /// Jobs in a row that no worker took a share of while one was awake.
    private let misses = Atomic<Int>(0)
    /// Until this time (lathe_now_ns) kernels with an alone plan run it (for runs whose policy
    /// has an alone time).
    private let aloneUntil = Atomic<Int>(0)
    /// How many threads the machine has runnable now, this one included, or nil (nil: runs
    /// never check the load). The process's pool reads /proc/loadavg; tests give their own.
    private let runnableThreads: (@Sendable () -> Int?)?
    /// The machine's online CPUs, which the runnable count covers.
    private let machineCPUs: Int
    /// When the load was last sampled (lathe_now_ns); the runnable threads not this pool's
    /// then; and the fewer of that and the sample before (so that one sample's passing thread,
    /// a kernel worker's or a shell's, does not make a run alone).
    private let loadSampledAt = Atomic<Int>(0)
    private let lastOthersRunnable = Atomic<Int>(0)
    private let othersRunnable = Atomic<Int>(0)
    static let loadSampleNanoseconds = 2_000_000
    private let stopping = Atomic<Bool>(false)
    private let exited = DispatchGroup()
    /// Called by a worker each time it wakes, before it looks for a share (tests hold a worker
    /// up with it).
    private let beforeClaiming: (@Sendable () -> Void)?

    /// A pool of `workers` threads (0: every share runs on the calling thread) on a machine of
    /// `machineCPUs` (default: the pool's own, workers and a caller).
    init(workers: Int, machineCPUs: Int? = nil, runnableThreads: (@Sendable () -> Int?)? = nil, beforeClaiming: (@Sendable () -> Void)? = nil) {
        workerCount = max(workers, 0)
        self.machineCPUs = machineCPUs ?? max(workers, 0) + 1
        self.runnableThreads = runnableThreads
        self.beforeClaiming = beforeClaiming
        // A pool without workers hands out no shares, so it needs no slots.
        slots = workerCount > 0 ? (0..<Self.slotCount).map { JobSlot(index: $0) } : []
        for _ in 0..<workerCount {
            exited.enter()
            // The thread holds the pool until it exits: a test's pool is stopped by `stop`.
            let thread = Thread { [self] in work() }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Ends the workers once they finish what they run; for pools other than the process's.
    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        epoch.add(1)
        epoch.wake(Int32.max)
        exited.wait()
    }

    /// Runs `body` with `run` holding a job slot throughout (none when the pool has no workers,
    /// the run has one thread or every slot is taken: then every share runs on the caller).
    /// Idle workers are woken now so that they are spinning by the time the first split kernel
    /// comes, unless the run is loaded (its large kernels wake the workers they need).
    func during<R>(_ run: ParallelRun, _ body: () throws -> R) rethrows -> R {
        let split = run.threads > 1 && workerCount > 0
        let free = split ? freeCores(run.policy) : 0
        let slot = split ? acquireSlot() : nil
        run.slot = slot
        run.loaded = split && free < 2
        run.wakeable = run.loaded ? 0 : max(min(run.threads, free) - 1, 0)
        if slot != nil {
            workerSpinNanoseconds.store(run.policy.spinNanoseconds, ordering: .relaxed)
            workerYieldNanoseconds.store(run.policy.yieldNanoseconds, ordering: .relaxed)
            if !run.loaded, run.policy.aloneNanoseconds == 0 || !keepsAlone(now: Int(lathe_now_ns())) { wakeWorkers(run.wakeable) }
        }
        defer {
            run.slot = nil
            if let slot { slot.owned.store(false, ordering: .releasing) }
        }
        return try body()
    }

    /// The pool's cores (its workers and a caller) that no other thread wants, as last sampled
    /// (see the type's comment); all of them when the run does not check the load.
    private func freeCores(_ policy: WaitPolicy) -> Int {
        guard policy.checksLoad, let runnableThreads else { return workerCount + 1 }
        let now = Int(lathe_now_ns()), last = loadSampledAt.load(ordering: .relaxed)
        if now - last >= Self.loadSampleNanoseconds,
           loadSampledAt.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged {
            // Runnable: this thread, the workers not blocked on the futex, and the others.
            let ours = 1 + workerCount - sleepers.load(ordering: .relaxed)
            let others = runnableThreads().map { max($0 - ours, 0) } ?? 0
            let before = lastOthersRunnable.exchange(others, ordering: .relaxed)
            othersRunnable.store(min(before, others), ordering: .relaxed)
        }
        // The count is the machine's: threads of others fill the CPUs outside the process's
        // mask first (a process pinned to some cores, a container's cpuset).
        let outside = max(machineCPUs - (workerCount + 1), 0)
        return workerCount + 1 - max(othersRunnable.load(ordering: .relaxed) - outside, 0)
    }

    private func acquireSlot() -> JobSlot? {
        for slot in slots where !slot.owned.load(ordering: .relaxed) {
            if slot.owned.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged { return slot }
        }
        return nil
    }

    private func wakeWorkers(_ count: Int) {
        epoch.add(1)
        let asleep = sleepers.load(ordering: .sequentiallyConsistent)
        if asleep > 0 { epoch.wake(Int32(min(count, asleep))) }
    }

    /// task(arguments, t) for t in 0..<count: share 0 on the caller at once, the others on
    /// whichever thread claims them first; returns when all are done. While workers are absent
    /// (see the type's comment), with no worker to hand shares to, or for a kernel of `flops`
    /// too few to split in a loaded run, the caller runs `alone(arguments, 0)` instead if there
    /// is one, else every share itself.
    fileprivate func parallel(_ task: Task, alone: Task?, _ arguments: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?, count: Int,
                              flops: Int, run: ParallelRun) {
        let policy = run.policy
        let keptHere = run.loaded && !policy.splitsWhenLoaded(kernelFlops: flops, modelFlops: run.modelFlops)
        // A kernel whose shares cost more than its alone plan runs that while workers are
        // absent; one split into units is handed out still, since a worker back on its core
        // takes the units left (its shares in a row cost no more than running alone).
        if let alone, run.slot == nil || keptHere || (policy.aloneNanoseconds > 0 && keepsAlone(now: Int(lathe_now_ns()))) {
            alone(arguments, 0)
            return
        }
        guard let slot = run.slot, !keptHere, count > 1, count <= JobSlot.maximumShares else {
            for t in 0..<max(count, 1) { task(arguments, Int64(t)) }
            return
        }
        // A worker blocked on the futex takes some microseconds to wake: a job it misses then
        // says nothing of its core.
        let workerAwake = sleepers.load(ordering: .relaxed) < workerCount
        slot.publish(task, arguments, count: count)
        openJobs.bitwiseOr(slot.bit, ordering: .sequentiallyConsistent)
        // A loaded run wakes every worker the kernel can use: the scheduler shares the cores.
        wakeWorkers(min(count - 1, run.loaded ? workerCount : run.wakeable))
        task(arguments, 0)
        slot.finished.add(1)
        var ranHere = 1
        while let t = slot.claim() {
            slot.run(t)
            ranHere += 1
        }
        // Every share is claimed: no worker need look at this slot again.
        openJobs.bitwiseAnd(~slot.bit, ordering: .relaxed)
        slot.waitUntilFinished(count, policy: policy)
        if ranHere < count {
            misses.store(0, ordering: .relaxed)
        } else if workerAwake, misses.add(1, ordering: .relaxed).newValue >= WaitPolicy.missesBeforeAlone {
            misses.store(0, ordering: .relaxed)
            if policy.aloneNanoseconds > 0 { aloneUntil.store(Int(lathe_now_ns()) + policy.aloneNanoseconds, ordering: .relaxed) }
        }
    }

    /// Whether kernels with an alone plan run it now (workers were absent lately).
    private func keepsAlone(now: Int) -> Bool { now < aloneUntil.load(ordering: .relaxed) }

    private func work() {
        defer { exited.leave() }
        while true {
            let seen = epoch.load()
            if stopping.load(ordering: .sequentiallyConsistent) { return }
            beforeClaiming?()
            while runOpenShares() {}
            waitForJob(after: seen)
        }
    }

    /// Claims and runs the open shares of every slot once; whether any ran.
    private func runOpenShares() -> Bool {
        var open = openJobs.load(ordering: .acquiring)
        var ran = false
        while open != 0 {
            let slot = slots[open.trailingZeroBitCount]
            open &= open - 1
            while let t = slot.claim() {
                slot.run(t)
                ran = true
            }
        }
        return ran
    }

    /// Spins, then yields, then blocks until `epoch` is no longer `seen`.
    private func waitForJob(after seen: UInt32) {
        let spin = workerSpinNanoseconds.load(ordering: .relaxed), yield = workerYieldNanoseconds.load(ordering: .relaxed)
        if WaitPolicy.wait(spinNanoseconds: spin, yieldNanoseconds: yield, until: { epoch.load() != seen }) { return }
        sleepers.add(1, ordering: .sequentiallyConsistent)
        // Again after a spurious return (and on systems without a futex, where a wait is a
        // short sleep), so that an idle worker does not spin its budget again.
        while epoch.load() == seen && !stopping.load(ordering: .sequentiallyConsistent) { epoch.wait(whileEqualTo: seen) }
        sleepers.subtract(1, ordering: .sequentiallyConsistent)
    }
}

/// The handle a run passes to its compiled entry: the pool, the run's job slot while it runs,
/// and how its threads wait. The entry's `parallel` callback receives it as an opaque pointer.
/// A run owns one (with its arena) and uses it for one run at a time.
final class ParallelRun {
    let pool: ThreadPool
    /// The shares a split kernel is cut into.
    let threads: Int
    let policy: WaitPolicy
    fileprivate var slot: JobSlot?
    /// How many workers the run wakes for a job: one fewer than the cores it found free.
    fileprivate var wakeable = 0
    /// Whether other threads held the pool's cores when the run started (see ThreadPool).
    fileprivate(set) var loaded = false
    /// The work of one run of the model, in FLOPs.
    let modelFlops: Int

    init(pool: ThreadPool, threads: Int, policy: WaitPolicy, modelFlops: Int = 0) {
        self.pool = pool
        self.threads = threads
        self.policy = policy
        self.modelFlops = modelFlops
    }

    /// Runs a split kernel of `count` shares and `flops` of work (ThreadPool.parallel).
    func parallel(_ task: ThreadPool.Task, alone: ThreadPool.Task?, _ arguments: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?, count: Int, flops: Int = 0) {
        pool.parallel(task, alone: alone, arguments, count: count, flops: flops, run: self)
    }
}

/// One run's place in the pool: the job it has published and the shares claimed of it.
private final class JobSlot: @unchecked Sendable {
    static let maximumShares = 0xFFFF

    let bit: UInt64
    /// Held by a run for its whole length.
    let owned = Atomic<Bool>(false)
    /// generation << 32 | shares << 16 | next unclaimed share. The generation tells one job
    /// from the next, so a claim prepared against an old job fails.
    private let state = Atomic<UInt64>(0)
    private let task = Atomic<UInt>(0)
    private let arguments = Atomic<UInt>(0)
    /// Shares of the current job that are done.
    let finished = FutexWord()
    /// Whether the owner is blocked (or about to block) on `finished`.
    private let ownerAsleep = Atomic<Bool>(false)
    /// Only the owner touches it.
    private var generation: UInt64 = 0

    init(index: Int) { bit = 1 << UInt64(index) }

    /// Makes a job of `count` shares claimable, share 0 already taken by the caller.
    func publish(_ task: ThreadPool.Task, _ arguments: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?, count: Int) {
        finished.store(0)
        self.task.store(UInt(bitPattern: unsafeBitCast(task, to: Int.self)), ordering: .relaxed)
        self.arguments.store(UInt(bitPattern: arguments), ordering: .relaxed)
        generation = (generation + 1) & 0xFFFF_FFFF
        // Releasing: a thread that claims a share sees the task, its arguments and everything
        // the run wrote before (the unit counters, the previous kernels' results).
        state.store(generation << 32 | UInt64(count) << 16 | 1, ordering: .releasing)
    }

    /// The next unclaimed share of the current job, if any.
    func claim() -> Int? {
        var current = state.load(ordering: .acquiring)
        while true {
            let next = current & 0xFFFF, shares = (current >> 16) & 0xFFFF
            guard next < shares else { return nil }
            let (exchanged, original) = state.compareExchange(expected: current, desired: current + 1,
                                                               successOrdering: .acquiring, failureOrdering: .acquiring)
            if exchanged { return Int(next) }
            current = original
        }
    }

    /// Runs a claimed share and counts it done. The task and arguments are read after the claim:
    /// the job cannot change before this share is counted.
    func run(_ share: Int) {
        let task = unsafeBitCast(Int(bitPattern: self.task.load(ordering: .relaxed)), to: ThreadPool.Task.self)
        task(UnsafeMutablePointer(bitPattern: arguments.load(ordering: .relaxed)), Int64(share))
        finished.add(1)
        if ownerAsleep.load(ordering: .sequentiallyConsistent) { finished.wake(1) }
    }

    /// Spins, yields, then blocks until `count` shares are done.
    func waitUntilFinished(_ count: Int, policy: WaitPolicy) {
        let target = UInt32(count)
        if WaitPolicy.wait(spinNanoseconds: policy.spinNanoseconds, yieldNanoseconds: policy.yieldNanoseconds,
                           until: { finished.load() == target }) { return }
        while true {
            ownerAsleep.store(true, ordering: .sequentiallyConsistent)
            let done = finished.load()
            if done == target { break }
            finished.wait(whileEqualTo: done)
        }
        ownerAsleep.store(false, ordering: .relaxed)
    }
}

/// How a thread of a run waits, for a share to run or for the other threads' shares: it spins
/// for `spinMicroseconds` (answering within a few nanoseconds), then yields its core for up to
/// `yieldMicroseconds` (answering within a scheduler turn, and letting other processes run),
/// then blocks until woken (a futex wake, some tens of microseconds). After two jobs in a row
/// that no awake worker took a share of, kernels with an alone plan run it on the caller for
/// `aloneMicroseconds` (0: never, for runs of this policy), then are handed out again (ThreadPool).
/// With `checksLoad`, a run that finds other threads holding the machine's cores runs on its
/// calling thread alone, but for the kernels of at least `loadedSplitKernelMegaflops` of a model
/// of at least `loadedSplitModelGigaflops` (ThreadPool).
public struct WaitPolicy: Sendable, Hashable {
    public var spinMicroseconds: Double
    public var yieldMicroseconds: Double
    public var aloneMicroseconds: Double
    public var checksLoad: Bool
    public var loadedSplitKernelMegaflops: Double
    public var loadedSplitModelGigaflops: Double

    /// Each time is clamped to 0...1 s (NaN: 0), each size to 0 or more (NaN: 0).
    public init(spinMicroseconds: Double = 50, yieldMicroseconds: Double = 100, aloneMicroseconds: Double = 1000, checksLoad: Bool = true,
                loadedSplitKernelMegaflops: Double = 150, loadedSplitModelGigaflops: Double = 4) {
        self.spinMicroseconds = Self.clamped(spinMicroseconds)
        self.yieldMicroseconds = Self.clamped(yieldMicroseconds)
        self.aloneMicroseconds = Self.clamped(aloneMicroseconds)
        self.checksLoad = checksLoad
        self.loadedSplitKernelMegaflops = loadedSplitKernelMegaflops.isNaN ? 0 : max(loadedSplitKernelMegaflops, 0)
        self.loadedSplitModelGigaflops = loadedSplitModelGigaflops.isNaN ? 0 : max(loadedSplitModelGigaflops, 0)
    }

    /// Whether a loaded run splits a kernel among its threads all the same: a large kernel of
    /// a model whose run spans many scheduler slices (ResNet-50's 150 to 240 MFLOP convolutions
    /// split, ResNet-50 ran about 1.4x faster under load than on one thread; the Keras CNN at
    /// batch 64, 3 ms a run, ran slower with its 285 MFLOP convolution split: benchmarks/RESULTS.md,
    /// "Measurements behind choices in the code").
    func splitsWhenLoaded(kernelFlops: Int, modelFlops: Int) -> Bool {
        Double(kernelFlops) >= loadedSplitKernelMegaflops * 1e6 && Double(modelFlops) >= loadedSplitModelGigaflops * 1e9
    }

    /// Missed jobs in a row after which kernels with an alone plan run it.
    static let missesBeforeAlone = 2

    private static func clamped(_ microseconds: Double) -> Double { microseconds.isNaN ? 0 : min(max(microseconds, 0), 1_000_000) }

    var spinNanoseconds: Int { Int(Self.clamped(spinMicroseconds) * 1000) }
    var yieldNanoseconds: Int { Int(Self.clamped(yieldMicroseconds) * 1000) }
    var aloneNanoseconds: Int { Int(Self.clamped(aloneMicroseconds) * 1000) }

    /// Spins, then yields, until `done()` (true) or both budgets have passed (false).
    static func wait(spinNanoseconds: Int, yieldNanoseconds: Int, until done: () -> Bool) -> Bool {
        if done() { return true }
        let start = lathe_now_ns()
        // The clock is read every 64 spins: a read costs about as much as 10 to 20 of them.
        repeat {
            for _ in 0..<64 {
                if done() { return true }
                lathe_cpu_relax()
            }
        } while Int(lathe_now_ns() - start) < spinNanoseconds
        while Int(lathe_now_ns() - start) < spinNanoseconds + yieldNanoseconds {
            if done() { return true }
            lathe_yield()
        }
        return done()
    }
}

/// A 32-bit atomic word that threads can block on (a futex), on its own cache line.
final class FutexWord: @unchecked Sendable {
    private let word: UnsafeMutablePointer<Atomic<UInt32>>

    init() {
        word = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64).bindMemory(to: Atomic<UInt32>.self, capacity: 1)
        word.initialize(to: Atomic(0))
    }

    deinit {
        word.deinitialize(count: 1)
        UnsafeMutableRawPointer(word).deallocate()
    }

    func load() -> UInt32 { word.pointee.load(ordering: .sequentiallyConsistent) }
    func store(_ value: UInt32) { word.pointee.store(value, ordering: .sequentiallyConsistent) }
    @discardableResult func add(_ value: UInt32) -> UInt32 { word.pointee.wrappingAdd(value, ordering: .sequentiallyConsistent).newValue }

    /// Blocks while the word holds `value` (or until a spurious wake: callers check again).
    func wait(whileEqualTo value: UInt32) {
        lathe_wait_on(UnsafeMutableRawPointer(word).assumingMemoryBound(to: UInt32.self), value, 0)
    }

    func wake(_ count: Int32) {
        lathe_wake(UnsafeMutableRawPointer(word).assumingMemoryBound(to: UInt32.self), count)
    }
}

/// The C function the compiled entry calls to run a split kernel: `run` is the ParallelRun.
let parallelCallback: @convention(c) (UnsafeMutableRawPointer?, ThreadPool.Task?, ThreadPool.Task?, UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?, Int64, Int64) -> Void = {
    run, task, alone, arguments, count, flops in
    guard let run, let task else { return }
    Unmanaged<ParallelRun>.fromOpaque(run).takeUnretainedValue().parallel(task, alone: alone, arguments, count: Int(count), flops: Int(flops))
}
