import CLLVM
import Foundation
import LatheCodegen
import LatheIR

/// The machine's peak FP32 rate, measured with Lathe's own generated code (LatheCodegen's
/// PeakProbe) on 1 or more threads at once, and cached per CPU, features and thread count, so
/// that `lathe bench` can report GFLOP/s as a share of it.
public enum MachinePeak {
    private typealias Probe = @convention(c) (UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?) -> Void

    /// FLOP/s of `threads` threads running the probe together: the best of a few timings. On a
    /// shared machine another process can hold one of the cores for longer than a timing; a
    /// rate of several threads below 80% of theirs alone is timed again, up to 10 times.
    public static func measure(threads: Int) throws -> Double {
        let target = HostTarget.detect()
        var best = try rate(of: target, threads: threads, iterations: 40_000_000, repetitions: 5)
        guard threads > 1 else { return best }
        let alone = try cached(threads: 1) * Double(threads)
        for _ in 0..<10 where best < 0.8 * alone {
            best = max(best, try rate(of: target, threads: threads, iterations: 40_000_000, repetitions: 5))
        }
        return best
    }

    /// FLOP/s of the probe compiled for `target`'s vector width, the best of `repetitions`
    /// timings of `threads` threads each running `iterations` iterations.
    static func rate(of target: HostTarget, threads: Int, iterations: Int, repetitions: Int) throws -> Double {
        let threadSafeContext = LLVMOrcCreateNewThreadSafeContext()!
        defer { LLVMOrcDisposeThreadSafeContext(threadSafeContext) }
        let context = LLVMOrcThreadSafeContextGetContext(threadSafeContext)!
        let module = LLVMModuleCreateWithNameInContext("lathe_peak", context)!
        LLVMSetTarget(module, target.triple)
        PeakProbe.emit(into: module, context: context, vectorWidth: target.vectorWidth)
        do {
            let machine = try target.makeTargetMachine()
            defer { LLVMDisposeTargetMachine(machine) }
            let passOptions = LLVMCreatePassBuilderOptions()
            defer { LLVMDisposePassBuilderOptions(passOptions) }
            try check(LLVMRunPasses(module, "default<O3>", machine, passOptions), "optimizing the peak probe")
        } catch {
            LLVMDisposeModule(module)
            throw error
        }
        let jit = try JITSession(module: module, context: threadSafeContext, target: target)
        let probe = unsafeBitCast(try jit.address(of: PeakProbe.functionName), to: Probe.self)

        // The iteration count is passed as a float: exact up to 2^24 x a power of two.
        let flopsPerRun = Double(iterations * PeakProbe.chains * target.vectorWidth * 2)
        let dataCount = PeakProbe.dataCount(vectorWidth: target.vectorWidth)
        @Sendable func run() {
            var data: [Float] = [0.999, 0.0001] + Array(repeating: 0.5, count: dataCount - 2)
            var count = Float(iterations)
            data.withUnsafeMutableBufferPointer { d in withUnsafeMutablePointer(to: &count) { probe(d.baseAddress, $0) } }
        }
        var best = 0.0
        for _ in 0..<repetitions {
            let group = DispatchGroup()
            let start = ContinuousClock.now
            for _ in 0..<threads {
                group.enter()
                let thread = Thread { run(); group.leave() }
                thread.start()
            }
            group.wait()
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            best = max(best, flopsPerRun * Double(threads) / seconds)
        }
        return best
    }

    /// The measured peak, from the cache under the user's cache directory when it is there.
    public static func cached(threads: Int) throws -> Double {
        let target = HostTarget.detect()
        let key = "\(target.cpuName)-\(target.keyFeatures.joined(separator: "+"))-\(threads)t"
        let file = cacheDirectory().appendingPathComponent("peak-\(key).txt")
        if let text = try? String(contentsOf: file, encoding: .utf8), let value = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)), value > 0 {
            return value
        }
        let value = try measure(threads: threads)
        try? FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? "\(value)\n".write(to: file, atomically: true, encoding: .utf8)
        return value
    }

    /// $XDG_CACHE_HOME/lathe, else ~/.cache/lathe.
    public static func cacheDirectory() -> URL {
        if let xdg = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            return URL(fileURLWithPath: xdg).appendingPathComponent("lathe")
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/lathe")
    }
}
