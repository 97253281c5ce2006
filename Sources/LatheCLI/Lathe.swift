import ArgumentParser
import Foundation
import Lathe
import LatheExamples
import LatheConformance
import LatheONNX
import LathePasses

@main
struct LatheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lathe",
        abstract: "Compile neural networks to native code, and see what the compiler did.",
        subcommands: [Dump.self, Run.self, Inspect.self, Bench.self, Train.self, Export.self, Demo.self, Models.self, Conformance.self])
}

/// How a model is made, for every command that takes one: its batch, seed, symbolic dimensions
/// and weights.
struct ModelSourceOptions: ParsableArguments {
    @Option(help: "Batch size of a built-in model (default: the model's own).")
    var batch: Int?

    @Option(help: "Seed of a built-in model's weights and of the random input.")
    var seed: UInt64 = 0

    @Option(name: .customLong("dim"), help: "The size of a symbolic input dimension of an ONNX model, NAME=SIZE (else the shape of an --input file that has it).")
    var dimensions: [String] = []

    @Option(help: "Weights for a built-in model from a .safetensors file (as `lathe train --save` writes).")
    var weights: String?

    @Option(name: .customLong("input"), help: "An input from an .npy file, NAME=FILE.npy; repeat for several. `run` feeds it; where an ONNX model needs an input's values to compile (a Reshape's shape, a Pad's pads), every command builds the model for them.")
    var inputs: [String] = []

    /// The tensors of --input, by input name.
    func inputFiles() throws -> [String: HostTensor] {
        var files: [String: HostTensor] = [:]
        for item in inputs {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { throw ValidationError("--input takes NAME=FILE.npy, got '\(item)'") }
            files[String(parts[0])] = try HostTensor(npyFile: URL(fileURLWithPath: String(parts[1])))
        }
        return files
    }
}

/// A model as the commands take it: its graph, named outputs, and the --input tensors it is
/// fed (those of ONNX inputs it was built for the values of are constants of it, not feeds).
struct BuiltModel {
    var graph: Graph
    var outputs: [(name: String, value: ValueID)]
    var feeds: [String: HostTensor]
}

/// A model (built-in or an .onnx file) and how to make it.
struct ModelOptions: ParsableArguments {
    @Argument(help: "A built-in model (\(Examples.builtIn.map(\.name).joined(separator: ", "))) or an .onnx file.")
    var model: String

    @OptionGroup var source: ModelSourceOptions

    var seed: UInt64 { source.seed }

    func build() throws -> BuiltModel {
        try Self.build(model, source)
    }

    static func build(_ model: String, _ source: ModelSourceOptions) throws -> BuiltModel {
        let (batch, seed, weights) = (source.batch, source.seed, source.weights)
        let files = try source.inputFiles()
        if model.hasSuffix(".onnx") || FileManager.default.fileExists(atPath: model) {
            guard weights == nil else { throw ValidationError("--weights is for built-in models; an ONNX file carries its own") }
            let imported = try ONNXImporter.load(contentsOf: URL(fileURLWithPath: model), dimensions: try parsedDimensions(source.dimensions),
                                                 inputShapes: files.mapValues(\.shape), inputValues: files)
            if !imported.valueInputs.isEmpty {
                let names = imported.valueInputs.map { "'\($0)'" }.joined(separator: ", ")
                FileHandle.standardError.write("built for the values of \(names), which must be known when compiling\n".data(using: .utf8)!)
            }
            return BuiltModel(graph: imported.graph, outputs: imported.outputs, feeds: files.filter { !imported.valueInputs.contains($0.key) })
        }
        guard let example = Examples.named(model) else {
            throw ValidationError("unknown model '\(model)'; built-in models: \(Examples.builtIn.map(\.name).joined(separator: ", ")), or give an .onnx file")
        }
        if let batch, batch <= 0 { throw ValidationError("--batch must be positive") }
        let (graph, outputs) = try example.graph(batch: batch, seed: seed)
        if let weights { try graph.loadWeights(WeightFile.read(URL(fileURLWithPath: weights))) }
        return BuiltModel(graph: graph, outputs: outputs.map { ($0.name, $0.value.id) }, feeds: files)
    }

    static func parsedDimensions(_ dimensions: [String]) throws -> [String: Int] {
        var result: [String: Int] = [:]
        for item in dimensions {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let value = Int(parts[1]), value > 0 else { throw ValidationError("--dim takes NAME=SIZE with a positive SIZE, got '\(item)'") }
            result[String(parts[0])] = value
        }
        return result
    }
}

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the built-in models.")
    func run() {
        let width = Examples.builtIn.map(\.name.count).max() ?? 0
        for model in Examples.builtIn { print("\(model.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(model.summary)") }
    }
}

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a model's graph IR, one node a line, as built or after a pass.")

    @Argument(help: "A built-in model (\(Examples.builtIn.map(\.name).joined(separator: ", "))) or an .onnx file.")
    var model: String?

    @Option(help: "Print the IR after this pass (see --list-passes).")
    var after: String?

    @Flag(help: "List the compiler's passes in the order they run.")
    var listPasses = false

    @Option(help: "text (one node a line), dot (Graphviz), json, or llvm (the optimized LLVM IR of the compiled kernels).")
    var format: String = "text"

    @Flag(help: "Print the kernel plan instead of the IR: one kernel a line, with its ops, algorithm and geometry, types, weight layout, split, scratch and buffers.")
    var kernels = false

    @Option(help: "With --kernels or --format llvm: the threads the kernels are split among.")
    var threads: Int = 1

    @OptionGroup var source: ModelSourceOptions

    func run() throws {
        if listPasses {
            let width = Pipeline.passes.map(\.name.count).max() ?? 0
            for pass in Pipeline.passes { print("\(pass.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(pass.summary)") }
            return
        }
        guard let model else { throw ValidationError("give a model, or --list-passes") }
        guard ["text", "dot", "json", "llvm"].contains(format) else { throw ValidationError("--format is text, dot, json or llvm, not '\(format)'") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        let built = try ModelOptions.build(model, source)
        var (graph, outputs) = (built.graph, built.outputs)
        if kernels {
            guard after == nil, format == "text" else { throw ValidationError("--kernels prints the plan of the whole pipeline as text; drop --after and --format") }
            print(try Compiler.lower(graph, outputs: outputs, threads: threads).program.planText, terminator: "")
            return
        }
        if format == "llvm" {
            guard after == nil else { throw ValidationError("--format llvm shows the code of the whole pipeline; drop --after") }
            let compiled = try Compiler.compile(graph, outputs: outputs, options: CompileOptions(keepLLVMIR: true, threads: threads))
            print(compiled.llvmIR ?? "", terminator: "")
            return
        }
        if let after {
            let result = try Pipeline.run(graph, outputs: outputs.map(\.value), after: after)
            (graph, outputs) = (result.graph, Array(zip(outputs.map(\.name), result.outputs)))
        }
        switch format {
        case "dot": print(graph.dot(outputs: outputs), terminator: "")
        case "json": print(graph.json(outputs: outputs), terminator: "")
        default: print(graph.text(outputs: outputs), terminator: "")
        }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the kernels, fusions and memory plan the compiler makes of a model.")
    @OptionGroup var options: ModelOptions

    @Flag(help: "Print JSON (fields documented in docs/inspect.md).")
    var json = false

    @Option(help: "Also draw the memory plan (lifetime by offset) as an SVG file.")
    var svg: String?

    @Flag(help: "Skip the graph passes (only verify): the model as built, one kernel a node.")
    var noPasses = false

    @Option(help: "Show how kernels are split among this many threads.")
    var threads: Int = 1

    func run() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        let built = try options.build()
        let report = try Inspection(built.graph, outputs: built.outputs, optimize: !noPasses, threads: threads)
        if let svg { try report.svg.write(toFile: svg, atomically: true, encoding: .utf8) }
        print(json ? report.json : report.text, terminator: json ? "\n" : "")
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile a model and run it once.",
        discussion: "Inputs come from .npy files (--input NAME=FILE.npy) or, for those not given, seeded random values of each input's type (floats uniform in [0, 1), integers 0 or 1, bools either). Each output's shape and checksum is printed, and with --output-dir written to DIR/NAME.npy.")
    @OptionGroup var options: ModelOptions

    @Option(help: "Write each output to DIR/NAME.npy.")
    var outputDir: String?

    @Option(help: "Threads a run uses.")
    var threads: Int = 1

    @Flag(help: "Print the time of each compile stage to standard error.")
    var timing = false

    @Flag(help: "Skip the graph passes (only verify): every node its own kernel, to compare with the optimized model.")
    var noPasses = false

    @Flag(help: "Neither read nor write the machine-code cache.")
    var noCache = false

    func run() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        let built: BuiltModel
        do {
            built = try options.build()
        } catch LatheError.valueDependentShape {
            return try runInStages()
        }
        let model = try Compiler.compile(built.graph, outputs: built.outputs, options: CompileOptions(optimize: !noPasses, threads: threads, cache: !noCache))
        var feeds = randomFeeds(model, seed: options.seed)
        feeds.merge(built.feeds) { $1 }
        if timing {
            let stages = model.compileStages.map { String(format: "%@ %.1f ms", $0.stage, $0.seconds * 1000) }.joined(separator: ", ")
            FileHandle.standardError.write("compile: \(stages)\n".data(using: .utf8)!)
        }
        try report(try model.run(feeds), names: model.outputNames)
    }

    /// A model with an op whose output size depends on values (NonZero, NonMaxSuppression,
    /// Unique) runs through ONNXModel, which compiles it stage by stage as it runs.
    private func runInStages() throws {
        let files = try options.source.inputFiles()
        let model = try ONNXModel(contentsOf: URL(fileURLWithPath: options.model), dimensions: try ModelOptions.parsedDimensions(options.source.dimensions),
                                  options: CompileOptions(optimize: !noPasses, threads: threads, cache: !noCache))
        let missing = model.inputNames.filter { files[$0] == nil }
        guard missing.isEmpty else {
            throw ValidationError("\(options.model) runs in stages (an op's output size depends on values it computes): give every input with --input NAME=FILE.npy; missing \(missing.joined(separator: ", "))")
        }
        FileHandle.standardError.write("runs in stages: an op's output size depends on values the model computes\n".data(using: .utf8)!)
        try report(try model.run(files), names: model.outputNames)
    }

    /// Prints each output's shape and checksum, and writes it under --output-dir.
    private func report(_ results: [String: HostTensor], names: [String]) throws {
        if let outputDir { try FileManager.default.createDirectory(atPath: outputDir, withIntermediateDirectories: true) }
        for name in names {
            let t = results[name]!
            print("\(name): \(t.dtype.rawValue)\(t.shape) checksum \(String(format: "%.6f", t.checksum))")
            if let outputDir {
                try t.npyData.write(to: URL(fileURLWithPath: outputDir).appendingPathComponent(fileName(forOutput: name) + ".npy"))
            }
        }
    }
}

struct Conformance: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run ONNX's operator conformance suite (a folder of node test cases) and report the counts.")

    @Argument(help: "The folder of cases, e.g. ../shared/onnx-node-tests/node.")
    var directory: String

    @Option(help: "Only the cases whose name contains this text.")
    var filter: String?

    @Option(help: "Write the Markdown report here.")
    var report: String?

    func run() throws {
        let results = NodeTestSuite.run(directory: URL(fileURLWithPath: directory), matching: filter)
        guard !results.isEmpty else { throw ValidationError("no test cases in \(directory)") }
        let text = NodeTestSuite.report(results)
        if let report { try text.write(toFile: report, atomically: true, encoding: .utf8) }
        print(text.split(separator: "\n").drop { !$0.hasPrefix("| cases") }.prefix(3).joined(separator: "\n"))
    }
}

/// An output's name made safe as a file name: characters other than letters, digits, '.', '_'
/// and '-' become '_'.
func fileName(forOutput name: String) -> String {
    String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" })
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
            let times = try Timings.measure(iterations) { probs = try model.run(feeds)["probs"]! }
            let median = times.median
            let difference = zip(probs.scalars, reference.scalars).map { abs($0 - $1) }.max() ?? 0
            let program = model.program
            print("mnist-cnn batch \(batch): \(program.kernels.count) kernels, \(String(format: "%.1f", Double(program.flops) / 1e6)) MFLOP a run, arena \(program.arenaBytes / 1024) KiB, weights \(program.weightsBytes / 1024) KiB")
            let cached = model.compileStages.map(\.stage).contains("cache hit") ? " (machine code from the cache)" : ""
            print(String(format: "  compile %.1f ms%@; run median %.3f ms, min %.3f ms over %d runs (%.1f GFLOP/s, 1 thread); max |JIT - interpreter| %.1e",
                         model.compileSeconds * 1000, cached, median * 1000, times.min * 1000, times.count, Double(program.flops) / median / 1e9, difference))
        }
    }
}

/// Inputs for a run that was given none, each of its input's type (HostTensor.random).
func randomFeeds(_ model: CompiledModel, seed: UInt64) -> [String: HostTensor] {
    var feeds: [String: HostTensor] = [:]
    for (i, input) in model.inputs.enumerated() {
        feeds[input.name] = HostTensor.random(shape: input.shape, dtype: input.dtype, seed: seed &+ UInt64(i) &* 7919)
    }
    return feeds
}
