import ArgumentParser
import Foundation
import Lathe
import LatheExamples

@main
struct LatheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lathe",
        abstract: "Compile neural networks to native code, and see what the compiler did.",
        subcommands: [Dump.self, Run.self, Demo.self, Models.self])
}

/// Options shared by the commands that take a built-in model.
struct ModelOptions: ParsableArguments {
    @Argument(help: "A built-in model: \(Examples.all.map(\.name).joined(separator: ", ")).")
    var model: String

    @Option(help: "Batch size (default: the model's own).")
    var batch: Int?

    @Option(help: "Seed of the weights and of the random input.")
    var seed: UInt64 = 0

    func build() throws -> (graph: Graph, outputs: [(name: String, value: Tensor)]) {
        guard let example = Examples.named(model) else {
            throw ValidationError("unknown model '\(model)'; built-in models: \(Examples.all.map(\.name).joined(separator: ", "))")
        }
        if let batch, batch <= 0 { throw ValidationError("--batch must be positive") }
        return try example.graph(batch: batch, seed: seed)
    }
}

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the built-in models.")
    func run() {
        for model in Examples.all { print("\(model.name.padding(toLength: 10, withPad: " ", startingAt: 0))  \(model.summary)") }
    }
}

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a model's graph IR, one node a line.")
    @OptionGroup var options: ModelOptions

    func run() throws {
        let (graph, outputs) = try options.build()
        print(graph.text(outputs: outputs.map { ($0.name, $0.value.id) }), terminator: "")
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Compile a model and run it once on seeded random input.")
    @OptionGroup var options: ModelOptions

    func run() throws {
        let (graph, outputs) = try options.build()
        let model = try graph.compile(outputs: outputs)
        let feeds = randomFeeds(model, seed: options.seed)
        let results = try model.run(feeds)
        for name in model.outputNames {
            let t = results[name]!
            print("\(name): f32\(t.shape) checksum \(String(format: "%.6f", t.checksum))")
        }
    }
}

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Compile the MNIST CNN at batch 1 and 64, run it, and report the times.")

    @Option(help: "Timed runs per batch size.")
    var iterations: Int = 50

    func run() throws {
        print("host: \(HostTarget.detect())")
        for batch in [1, 64] {
            let (graph, outputs) = try Examples.mnistCNN.graph(batch: batch)
            let model = try graph.compile(outputs: outputs)
            let feeds = randomFeeds(model, seed: 1)
            let reference = try graph.interpret(outputs: outputs, feeds: feeds)["probs"]!
            var probs = try model.run(feeds)["probs"]!
            var times: [Double] = []
            for _ in 0..<max(iterations, 1) {
                let start = ContinuousClock.now
                probs = try model.run(feeds)["probs"]!
                times.append(seconds(ContinuousClock.now - start))
            }
            times.sort()
            let median = times[times.count / 2]
            let difference = zip(probs.scalars, reference.scalars).map { abs($0 - $1) }.max() ?? 0
            let program = model.program
            print("mnist-cnn batch \(batch): \(program.kernels.count) kernels, \(String(format: "%.1f", Double(program.flops) / 1e6)) MFLOP a run, arena \(program.arenaBytes / 1024) KiB, weights \(program.weightsBytes / 1024) KiB")
            print(String(format: "  compile %.1f ms; run median %.3f ms, min %.3f ms over %d runs (%.1f GFLOP/s, 1 thread); max |JIT - interpreter| %.1e",
                         model.compileSeconds * 1000, median * 1000, times[0] * 1000, times.count, Double(program.flops) / median / 1e9, difference))
        }
    }
}

func randomFeeds(_ model: CompiledModel, seed: UInt64) -> [String: HostTensor] {
    var feeds: [String: HostTensor] = [:]
    for (i, input) in model.inputs.enumerated() {
        feeds[input.name] = HostTensor.random(shape: input.shape, seed: seed &+ UInt64(i) &* 7919, in: 0...1)
    }
    return feeds
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}
