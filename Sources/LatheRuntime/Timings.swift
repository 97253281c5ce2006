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
        for _ in 0..<Swift.max(count, 1) { times.append(try seconds(body)) }
        return Timings(times)
    }

    /// Runs each of `bodies` once a round, in turn, for `rounds` rounds, and times each run: one
    /// Timings a body. Interleaved, a slow phase of the host falls on all of them alike, where
    /// timing one body's runs after another's compares different phases.
    public static func interleaved(_ rounds: Int, _ bodies: [() throws -> Void]) throws -> [Timings] {
        var times = [[Double]](repeating: [], count: bodies.count)
        for _ in 0..<Swift.max(rounds, 1) {
            for (k, body) in bodies.enumerated() { times[k].append(try seconds(body)) }
        }
        return times.map(Timings.init)
    }

    /// The seconds one run of `body` takes, on the monotonic clock.
    private static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        return (ContinuousClock.now - start).totalSeconds
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

    /// A kernel's median time and what it computes.
    public struct Row: Sendable {
        public let name: String
        /// The model's ops it holds, joined by "+".
        public let ops: String
        public let seconds: Double
        public let gflops: Double
        public let split: String
    }

    /// A row a kernel of `program`, the program these timings were taken of.
    public func rows(_ program: KernelProgram) -> [Row] {
        zip(program.kernels, medians).map { kernel, t in
            Row(name: kernel.name, ops: kernel.plan.sourceOps.joined(separator: "+"), seconds: t,
                gflops: t > 0 ? Double(kernel.flops) / t / 1e9 : 0, split: kernel.split.description)
        }
    }

    /// One line a kernel: its name, median time, share of the kernels' total, GFLOP/s, the
    /// model's ops it holds and its split.
    public static func table(_ rows: [Row]) -> [String] {
        let total = rows.reduce(0) { $0 + $1.seconds }
        let width = rows.map(\.name.count).max() ?? 0
        return rows.map { r in
            String(format: "  %@  %8.3f ms  %5.1f%%  %7.1f GFLOP/s  %@  (%@)", r.name.padding(toLength: width, withPad: " ", startingAt: 0),
                   r.seconds * 1000, total > 0 ? r.seconds / total * 100 : 0, r.gflops, r.ops, r.split)
        }
    }
}

extension Duration {
    /// The duration in seconds.
    public var totalSeconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
