import Foundation
import Synchronization

/// The threads a compiled model runs its split kernels on: the caller is thread 0, and
/// `threads - 1` workers are kept for the model's life. During a run the workers spin between
/// kernels (waking a sleeping thread costs more than a small kernel takes); when the run
/// returns they block on a semaphore, so no thread spins while the model is idle.
final class ThreadPool: @unchecked Sendable {
    typealias Task = @convention(c) (UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?, Int64) -> Void

    let threads: Int
    private let shared: Shared

    /// What the workers see: they hold it, not the pool, so the pool can go away first.
    private final class Shared: @unchecked Sendable {
        /// Bumped for each job; workers run a job when they see it change.
        let generation = Atomic<Int>(0)
        /// Workers still working on the current job.
        let pending = Atomic<Int>(0)
        /// Threads taking part in the current job.
        let jobThreads = Atomic<Int>(0)
        /// Whether a run is under way (workers spin) or not (workers sleep).
        let running = Atomic<Bool>(false)
        let stopping = Atomic<Bool>(false)
        var task: Task?
        var arguments: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?
        let wake: [DispatchSemaphore]
        let exited = DispatchGroup()

        init(workers: Int) { wake = (0..<workers).map { _ in DispatchSemaphore(value: 0) } }

        func work(_ index: Int) {
            var seen = 0
            while true {
                wake[index - 1].wait()
                if stopping.load(ordering: .sequentiallyConsistent) { break }
                while running.load(ordering: .sequentiallyConsistent) || generation.load(ordering: .sequentiallyConsistent) != seen {
                    let now = generation.load(ordering: .sequentiallyConsistent)
                    guard now != seen else { continue }
                    seen = now
                    if index < jobThreads.load(ordering: .sequentiallyConsistent), let task {
                        task(arguments, Int64(index))
                        pending.subtract(1, ordering: .sequentiallyConsistent)
                    }
                }
            }
            exited.leave()
        }
    }

    init(threads: Int) {
        self.threads = max(threads, 1)
        shared = Shared(workers: self.threads - 1)
        for worker in 1..<self.threads {
            shared.exited.enter()
            let thread = Thread { [shared] in shared.work(worker) }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    deinit {
        shared.stopping.store(true, ordering: .sequentiallyConsistent)
        shared.wake.forEach { $0.signal() }
        shared.exited.wait()
    }

    /// Runs `body` with the workers awake.
    func during<R>(_ body: () throws -> R) rethrows -> R {
        guard threads > 1 else { return try body() }
        shared.running.store(true, ordering: .sequentiallyConsistent)
        shared.wake.forEach { $0.signal() }
        defer { shared.running.store(false, ordering: .sequentiallyConsistent) }
        return try body()
    }

    /// task(arguments, t) for t in 0..<count, the caller taking t = 0; returns when all are done.
    func parallel(_ task: Task, _ arguments: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?, count: Int) {
        let count = min(count, threads)
        shared.task = task
        shared.arguments = arguments
        shared.jobThreads.store(count, ordering: .sequentiallyConsistent)
        shared.pending.store(count - 1, ordering: .sequentiallyConsistent)
        shared.generation.add(1, ordering: .sequentiallyConsistent)
        task(arguments, 0)
        while shared.pending.load(ordering: .sequentiallyConsistent) > 0 {}
    }
}

/// The C function the compiled entry calls to run a split kernel: `pool` is the ThreadPool.
let parallelCallback: @convention(c) (UnsafeMutableRawPointer?, ThreadPool.Task?, UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?, Int64) -> Void = {
    pool, task, arguments, count in
    guard let pool, let task else { return }
    Unmanaged<ThreadPool>.fromOpaque(pool).takeUnretainedValue().parallel(task, arguments, count: Int(count))
}
