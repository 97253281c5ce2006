import Foundation
import LatheCodegen

/// Statistics of repeated timed runs, in seconds: what `lathe bench`, `lathe train --profile` and
/// `lathe demo` report. The median of an even count is the upper of the two middle times; p90
/// is the time that at least 90% of the runs took no longer than (nearest rank).
public struct Timings: Sendable {
    /// The times, shortest first.
    public let seconds: [Double]

    /// `seconds` in any order; at least one.
    public init(_ seconds: [Double]) {
        self.seconds = seconds.isEmpty ? [0] : seconds.sorted()
    }

    public var count: Int { seconds.count }
    public var median: Double { seconds[seconds.count / 2] }
    public var min: Double { seconds[0] }
    public var p90: Double { seconds[Swift.min(seconds.count - 1, Int((Double(seconds.count) * 0.9).rounded(.up)) - 1)] }

    /// Runs `body` `count` times (at least once), timing each run on the monotonic clock.
    public static func measure(_ count: Int, _ body: () throws -> Void) rethrows -> Timings {
        var times: [Double] = []
        for _ in 0..<Swift.max(count, 1) {
            let start = ContinuousClock.now
            try body()
            times.append((ContinuousClock.now - start).totalSeconds)
        }
        return Timings(times)
    }
}

/// Each kernel's times over profiled runs (`CompiledModel.profile`), and their medians.
public struct KernelTimings: Sendable {
    private var perKernel: [[Double]]

    public init(kernels: Int) { perKernel = Array(repeating: [], count: kernels) }

    /// Adds one profiled run: the seconds of each kernel.
    public mutating func add(_ run: [Double]) {
        for (k, seconds) in run.enumerated() where k < perKernel.count { perKernel[k].append(seconds) }
    }

    /// Each kernel's median seconds.
    public var medians: [Double] { perKernel.map { Timings($0).median } }

    /// One line a kernel: its name, median time, share of the kernels' total, GFLOP/s, the
    /// model's ops it holds and its split.
    public func table(_ program: KernelProgram) -> [String] {
        let medians = self.medians
        let total = medians.reduce(0, +)
        let width = program.kernels.map(\.name.count).max() ?? 0
        return zip(program.kernels, medians).map { (kernel: Kernel, t: Double) -> String in
            let name = kernel.name.padding(toLength: width, withPad: " ", startingAt: 0)
            let share = total > 0 ? t / total * 100 : 0
            let gflops = t > 0 ? Double(kernel.flops) / t / 1e9 : 0
            let ops = kernel.plan.sourceOps.joined(separator: "+")
            return String(format: "  %@  %8.3f ms  %5.1f%%  %7.1f GFLOP/s  %@  (%@)", name, t * 1000, share, gflops, ops, kernel.split.description)
        }
    }
}

extension Duration {
    /// The duration in seconds.
    public var totalSeconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
