import ArgumentParser
import Foundation
import Lathe
import LatheRuntime

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile a model, time its runs, and report latency, GFLOP/s and the share of the machine's peak.",
        discussion: "The peak is measured once per CPU and thread count with Lathe's own FMA probe and cached under $XDG_CACHE_HOME/lathe (or ~/.cache/lathe). Inputs are seeded random values of each input's type: floats uniform in [0, 1), integers 0 or 1, bools either.")
    @OptionGroup var options: ModelOptions

    @Option(help: "Threads a run uses.")
    var threads: Int = 1

    @Option(help: "Untimed runs first.")
    var warmup: Int = 3

    @Option(help: "Timed runs.")
    var iterations: Int = 20

    @Flag(help: "Print JSON: compileMs, medianMs, minMs, p90Ms, gflops, peakFraction, threads (and kernels with --profile).")
    var json = false

    @Flag(help: "Add a per-kernel table: median time, share, GFLOP/s.")
    var profile = false

    @Flag(help: "Neither read nor write the machine-code cache (compile time is then the cold one).")
    var noCache = false

    @Option(name: .customLong("spin-us"), help: "Microseconds a waiting thread spins before it yields its core.")
    var spinMicroseconds: Double = WaitPolicy().spinMicroseconds

    @Option(name: .customLong("yield-us"), help: "Microseconds a waiting thread then yields before it blocks.")
    var yieldMicroseconds: Double = WaitPolicy().yieldMicroseconds

    @Option(name: .customLong("alone-us"), help: "Microseconds kernels with a one-thread plan run it after the workers missed two jobs in a row (0: never).")
    var aloneMicroseconds: Double = WaitPolicy().aloneMicroseconds

    @Flag(help: "Split kernels among the threads even when other threads hold the machine's cores (by default such a run keeps its smaller kernels to its calling thread).")
    var ignoreLoad = false

    @Option(name: .customLong("loaded-split-kernel-mflop"), help: "When other threads hold the machine's cores, kernels of at least this many MFLOP of a large model are still split among the threads.")
    var loadedSplitKernelMegaflops: Double = WaitPolicy().loadedSplitKernelMegaflops

    @Option(name: .customLong("loaded-split-model-gflop"), help: "The GFLOP of a run from which a model is large (see --loaded-split-kernel-mflop).")
    var loadedSplitModelGigaflops: Double = WaitPolicy().loadedSplitModelGigaflops

    struct KernelTime: Codable {
        let name: String
        let ops: String
        let medianMs: Double
        let gflops: Double
        let split: String
    }

    struct Report: Codable {
        let model: String
        let threads: Int
        let compileMs: Double
        let medianMs: Double
        let minMs: Double
        let p90Ms: Double
        let gflops: Double
        let peakGflops: Double
        let peakFraction: Double
        let kernels: [KernelTime]?
    }

    func run() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard iterations >= 1, warmup >= 0 else { throw ValidationError("--iterations must be at least 1 and --warmup at least 0") }
        let built = try options.build()
        let model = try Compiler.compile(built.graph, outputs: built.outputs, options: CompileOptions(threads: threads, cache: !noCache,
                                                                                          waiting: WaitPolicy(spinMicroseconds: spinMicroseconds, yieldMicroseconds: yieldMicroseconds,
                                                                                                              aloneMicroseconds: aloneMicroseconds, checksLoad: !ignoreLoad,
                                                                                                              loadedSplitKernelMegaflops: loadedSplitKernelMegaflops,
                                                                                                              loadedSplitModelGigaflops: loadedSplitModelGigaflops)))
        var feeds = randomFeeds(model, seed: options.seed)
        feeds.merge(built.feeds) { $1 }
        try checkFeeds(model.inputs, feeds)
        // Buffers of each tensor's bytes, whatever its element type (token ids, masks).
        let outputBuffers = model.outputNames.map { UnsafeMutableRawBufferPointer.allocate(byteCount: model.outputType($0)!.byteCount, alignment: 64) }
        defer { outputBuffers.forEach { $0.deallocate() } }
        let inputBuffers = model.inputs.map { input -> UnsafeRawBufferPointer in
            let bytes = feeds[input.name]!.rawBytes
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 64)
            buffer.copyBytes(from: bytes)
            return UnsafeRawBufferPointer(buffer)
        }
        defer { inputBuffers.forEach { $0.deallocate() } }

        for _ in 0..<warmup { try model.run(inputBytes: inputBuffers, outputBytes: outputBuffers) }
        let times = try Timings.measure(iterations) { try model.run(inputBytes: inputBuffers, outputBytes: outputBuffers) }
        let median = times.median
        let flops = Double(model.program.flops)
        // The machine's peak for this model's mix: its integer products at four times the float
        // FMA's rate where the host has an 8-bit dot product (vpdpbusd: 4 products a lane).
        let int8Flops = Double(model.program.int8Flops), int8Speed = HostTarget.detect().hasInt8DotProduct ? 4.0 : 1.0
        let floatPeak = try MachinePeak.cached(threads: threads)
        let peak = flops > 0 ? flops / ((flops - int8Flops) / floatPeak + int8Flops / (int8Speed * floatPeak)) : floatPeak

        var rows: [KernelTimings.Row] = []
        if profile {
            var kernelTimings = KernelTimings(kernels: model.program.kernels.count)
            for _ in 0..<iterations { kernelTimings.add(try model.profile(inputBytes: inputBuffers, outputBytes: outputBuffers)) }
            rows = kernelTimings.rows(model.program)
        }
        let kernels = profile ? rows.map { KernelTime(name: $0.name, ops: $0.ops, medianMs: $0.seconds * 1000, gflops: $0.gflops, split: $0.split) } : nil
        let report = Report(model: options.model, threads: threads, compileMs: model.compileSeconds * 1000, medianMs: median * 1000,
                            minMs: times.min * 1000, p90Ms: times.p90 * 1000, gflops: flops / median / 1e9, peakGflops: peak / 1e9,
                            peakFraction: flops / median / peak, kernels: kernels)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print(String(format: "%@: %d thread%@, compile %.1f ms; median %.3f ms, min %.3f ms, p90 %.3f ms over %d runs",
                     options.model, threads, threads == 1 ? "" : "s", report.compileMs, report.medianMs, report.minMs, report.p90Ms, iterations))
        print(String(format: "%.1f MFLOP a run: %.1f GFLOP/s, %.1f%% of the %.1f GFLOP/s peak of %d thread%@",
                     flops / 1e6, report.gflops, report.peakFraction * 100, report.peakGflops, threads, threads == 1 ? "" : "s"))
        KernelTimings.table(rows).forEach { print($0) }
    }
}
