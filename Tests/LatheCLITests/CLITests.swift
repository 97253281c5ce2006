import Foundation
import Testing

/// Runs the built `lathe` executable and returns its exit status, standard output and error.
func lathe(_ arguments: String...) throws -> (status: Int32, out: String, err: String) {
    try lathe(arguments, environment: nil)
}

/// With these variables added to the environment.
func lathe(_ arguments: [String], environment: [String: String]?) throws -> (status: Int32, out: String, err: String) {
    let process = Process()
    process.executableURL = try latheExecutable()
    process.arguments = arguments
    if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

/// The products folder holds both the test bundle and the executable.
func latheExecutable() throws -> URL {
    var folder = Bundle.main.bundleURL
    for _ in 0..<3 {
        let candidate = folder.appendingPathComponent("lathe")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        folder = folder.deletingLastPathComponent()
    }
    throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "lathe next to \(Bundle.main.bundleURL.path)"])
}

@Suite("The lathe tool: exact output")
struct CLITests {
    @Test func dumpSimpleNN() throws {
        let result = try lathe("dump", "simple-nn")
        #expect(result.status == 0)
        #expect(result.out == """
            %0 = input {name="x"} : f32[256, 10]  # x  (LatheExamples/SimpleNN.swift:6)
            %1 = constant {slot=0} : f32[10, 64]  # dense1.weight  (LatheExamples/SimpleNN.swift:14)
            %2 = constant {slot=1} : f32[64]  # dense1.bias  (LatheExamples/SimpleNN.swift:14)
            %3 = dense(%0, %1, %2) : f32[256, 64]  # dense1  (LatheExamples/SimpleNN.swift:14)
            %4 = relu(%3) : f32[256, 64]  # dense1.relu  (LatheExamples/SimpleNN.swift:14)
            %5 = constant {slot=2} : f32[64, 1]  # dense2.weight  (LatheExamples/SimpleNN.swift:15)
            %6 = constant {slot=3} : f32[1]  # dense2.bias  (LatheExamples/SimpleNN.swift:15)
            %7 = dense(%4, %5, %6) : f32[256, 1]  # dense2  (LatheExamples/SimpleNN.swift:15)
            output "y" = %7

            """)
    }

    @Test func dumpMnistCNNShowsEveryLayer() throws {
        let result = try lathe("dump", "mnist-cnn", "--batch", "64")
        #expect(result.status == 0)
        let lines = result.out.split(separator: "\n")
        #expect(lines.count == 21)
        #expect(lines[0].hasPrefix("%0  = input {name=\"image\"} : f32[64, 1, 28, 28]"))
        #expect(lines[3].hasPrefix("%3  = conv2d(%0, %1, %2) {strides=[1,1], pads=[0,0,0,0], dilations=[1,1], groups=1} : f32[64, 32, 26, 26]  # conv1"))
        #expect(lines[19].hasPrefix("%19 = softmax(%18) {axis=1} : f32[64, 10]  # dense2.softmax"))
        #expect(lines[20] == "output \"probs\" = %19")
    }

    /// The plan, one kernel a line (its exact text, on a fixed vector width, is golden in
    /// KernelPlanGoldenTests); here the parts no host changes.
    @Test func dumpKernelsPrintsThePlan() throws {
        let result = try lathe("dump", "mnist-cnn", "--kernels", "--threads", "2")
        #expect(result.status == 0, "\(result.err)")
        let lines = result.out.split(separator: "\n")
        #expect(lines.count == 7)
        #expect(lines.enumerated().allSatisfy { $1.hasPrefix("k\($0)_") })
        #expect(lines[0].contains("conv2d+relu+max_pool2d  an image at a time: direct 3x3, 1->32 channels"))
        #expect(lines[1].contains("conv2d+relu  winograd F(2x2,3x3) 32->64 channels, 6x6 tiles an image"))
        #expect(lines[4].contains("dense+relu  gemm M=1 N=128 K=1600  f32[1, 1600], f32[1600, 128], f32[128] -> f32[1, 128]"))
        #expect(lines[6].hasSuffix("out output[0]"))
        let refused = try lathe("dump", "mnist-cnn", "--kernels", "--after", "verify")
        #expect(refused.status != 0 && refused.err.contains("--kernels prints the plan of the whole pipeline"))
    }

    /// The checksum of a seeded run is fixed: the same seed, weights and input every time.
    @Test func runPrintsShapeAndChecksum() throws {
        let first = try lathe("run", "mnist-cnn", "--seed", "4")
        #expect(first.status == 0)
        #expect(first.out.hasPrefix("probs: f32[1, 10] checksum "))
        #expect(try lathe("run", "mnist-cnn", "--seed", "4").out == first.out)
        #expect(try lathe("run", "mnist-cnn", "--seed", "5").out != first.out)
    }

    @Test func unknownModelIsAUsageError() throws {
        let result = try lathe("run", "resnet9000")
        #expect(result.status == 64)
        #expect(result.err.contains("unknown model 'resnet9000'; built-in models: simple-nn, mnist-mlp, mnist-cnn"))
    }

    @Test func demoReportsCompileAndRunTimes() throws {
        let result = try lathe("demo", "--iterations", "2")
        #expect(result.status == 0)
        #expect(result.out.contains("mnist-cnn batch 1:"))
        #expect(result.out.contains("mnist-cnn batch 64:"))
        #expect(result.out.contains("compile "))
        #expect(result.out.contains("run median "))
    }
}

/// An ONNX model from ONNX's own node tests, beside the repository.
let reluModel = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("shared/onnx-node-tests/node/test_relu/model.onnx")
/// ONNX's test case of a Pad whose pads and value are graph inputs.
let constantPadCase = reluModel.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("test_constant_pad")

@Suite("The lathe tool on ONNX files")
struct CLIONNXTests {
    @Test(.enabled(if: FileManager.default.fileExists(atPath: reluModel.path)))
    func dumpAndRunAnONNXModel() throws {
        let dump = try lathe("dump", reluModel.path)
        #expect(dump.status == 0)
        #expect(dump.out == """
            %0 = input {name="x"} : f32[3, 4, 5]  # x
            %1 = relu(%0) : f32[3, 4, 5]  # y  (model.onnx[y]:1)
            output "y" = %1

            """)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let run = try lathe("run", reluModel.path, "--output-dir", folder.path)
        #expect(run.status == 0)
        #expect(run.out.hasPrefix("y: f32[3, 4, 5] checksum "))
        let written = try Data(contentsOf: folder.appendingPathComponent("y.npy"))
        #expect(written.prefix(6) == Data([0x93] + Array("NUMPY".utf8)))
        // Feeding the output back as the input gives the same output (relu is idempotent).
        let again = try lathe("run", reluModel.path, "--input", "x=\(folder.appendingPathComponent("y.npy").path)")
        #expect(again.out == run.out)
    }

    @Test func badModelFilesAreErrorsNotCrashes() throws {
        let junk = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-junk-\(UUID().uuidString).onnx")
        try Data((0..<500).map { UInt8(truncatingIfNeeded: $0 &* 7919) }).write(to: junk)
        defer { try? FileManager.default.removeItem(at: junk) }
        let result = try lathe("run", junk.path)
        #expect(result.status == 1)
        #expect(result.err.contains("malformed model"))
        let missing = try lathe("dump", "/nonexistent/model.onnx")
        #expect(missing.status == 1)
        #expect(missing.err.contains("cannot read /nonexistent/model.onnx"))
    }
}

@Suite("lathe dump with passes")
struct CLIPassTests {
    @Test func listAndRunPasses() throws {
        let list = try lathe("dump", "--list-passes")
        #expect(list.status == 0)
        let names = list.out.split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) ?? "" }
        #expect(names == ["verify", "fold-constants", "remove-identities", "pool-whole-planes", "fold-batchnorm", "fold-constants",
                          "eliminate-common-subexpressions", "fuse-layernorm", "fuse-elementwise", "fuse-epilogues", "fuse-conv-pool",
                          "eliminate-dead-code", "verify"])
        let after = try lathe("dump", "mnist-cnn", "--after", "eliminate-dead-code")
        #expect(after.status == 0)
        #expect(after.out.contains("conv2d_epilogue_max_pool2d(%0, %1, %2) {strides=[1,1], pads=[0,0,0,0], dilations=[1,1], groups=1, epilogue=max($0, 0), "
                                   + "pool=max_pool2d(kernel=[2,2], strides=[2,2], pads=[0,0,0,0])}"))
        #expect(after.out.hasSuffix("output \"probs\" = %15\n"))
        let bad = try lathe("dump", "mnist-cnn", "--after", "fuse-everything")
        #expect(bad.status == 1)
        #expect(bad.err.contains("no pass named 'fuse-everything'"))
    }
}

@Suite("lathe inspect")
struct CLIInspectTests {
    @Test func jsonHasTheDocumentedFields() throws {
        let result = try lathe("inspect", "mnist-cnn", "--json")
        #expect(result.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any]
        let kernels = object?["kernels"] as? [[String: Any]] ?? []
        #expect(kernels.count == 7)
        #expect(Set(kernels.first?.keys.map { $0 } ?? []) == ["name", "ops", "dtype", "shape", "flops", "bytes", "algorithm"])
        #expect(kernels.first?["ops"] as? [String] == ["conv2d", "relu", "max_pool2d"])
        // One input channel: the direct kernel, not a GEMM of depth 9, and its pool in the same
        // kernel (fuse-conv-pool).
        #expect(kernels.first?["algorithm"] as? String == "direct, pooled an image at a time")
        let fusions = object?["fusions"] as? [[String: Any]] ?? []
        #expect(fusions.first?["kind"] as? String == "epilogue" && fusions.first?["nodes"] as? [String] == ["conv1", "conv1.relu"])
        #expect(kernels.first?["flops"] as? Int == 2 * 32 * 26 * 26 * 9 + 32 * 13 * 13 * 4)
        let memory = object?["memory"] as? [String: Any] ?? [:]
        for key in ["arenaBytes", "lowerBoundBytes", "naiveBytes", "buffers"] { #expect(memory[key] != nil, "memory.\(key)") }
        let buffer = (memory["buffers"] as? [[String: Any]])?.first ?? [:]
        #expect(Set(buffer.keys) == ["name", "offset", "bytes", "firstUse", "lastUse"])
        #expect(object?["fusions"] as? [Any] != nil && object?["refused"] as? [Any] != nil)
    }

    @Test func svgDrawsEveryBuffer() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-plan-\(UUID().uuidString).svg")
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try lathe("inspect", "mnist-cnn", "--json", "--svg", file.path)
        #expect(result.status == 0)
        let svg = try String(contentsOf: file, encoding: .utf8)
        let object = try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any]
        let memory = object?["memory"] as? [String: Any] ?? [:]
        let buffers = (memory["buffers"] as? [Any])?.count ?? -1
        #expect(svg.hasPrefix("<svg "))
        #expect(svg.components(separatedBy: "<title>").count - 1 == buffers)
        #expect(svg.contains("arena \(memory["arenaBytes"] as? Int ?? -1) bytes, lower bound \(memory["lowerBoundBytes"] as? Int ?? -1)"))
    }

    @Test func passesAgainstNoPasses() throws {
        let plain = try lathe("inspect", "mnist-cnn", "--no-passes")
        #expect(plain.status == 0)
        #expect(plain.out.hasPrefix("kernels (11):\n"))
        #expect(plain.out.contains("fusions: none"))
        let optimized = try lathe("inspect", "mnist-cnn")
        #expect(optimized.out.hasPrefix("kernels (7):\n"))
        // The flatten writes over the pool's output, which dies there: it moves no data.
        #expect(optimized.out.contains("k3_flatten                     flatten -> f32[1, 1600]  0 flop  0 bytes  in place of maxpool2\n"))
        #expect(optimized.out.contains("fused pool: conv1.relu + maxpool1\n"))
    }

    @Test func textReport() throws {
        let result = try lathe("inspect", "simple-nn")
        #expect(result.status == 0)
        #expect(result.out.hasPrefix("kernels (2):\n  k0_dense_epilogue  dense+relu -> f32[256, 64]  327680 flop  78592 bytes  by gemm, packed weights\n"))
        #expect(result.out.contains("fused epilogue: dense1 + dense1.relu"))
        // The weights come packed: the scratch holds only the packed block of the input.
        #expect(result.out.contains("memory: arena 70336 bytes, lower bound 70336 (arena / bound 1.000), naive sum 70336"))
    }
}

@Suite("lathe dump --format")
struct CLIExportTests {
    @Test func dotAndJSON() throws {
        let dot = try lathe("dump", "simple-nn", "--format", "dot")
        #expect(dot.status == 0)
        #expect(dot.out.hasPrefix("digraph lathe {\n"))
        #expect(dot.out.contains("  n3 [label=\"dense1\\ndense f32[256, 64]\"];"))
        #expect(dot.out.contains("  n0 -> n3;") && dot.out.contains("  n7 -> out0;"))
        let json = try lathe("dump", "simple-nn", "--after", "eliminate-dead-code", "--format", "json")
        #expect(json.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any]
        let nodes = object?["nodes"] as? [[String: Any]] ?? []
        #expect(nodes.count == 7)
        #expect(nodes.first.map { Set($0.keys) } == ["id", "name", "op", "attributes", "operands", "dtype", "shape", "location"])
        #expect((object?["outputs"] as? [String: Int])?["y"] == nodes.count - 1)
        #expect(try lathe("dump", "simple-nn", "--format", "yaml").status == 64)
    }

    /// The optimized LLVM IR: the entry, a function per kernel, the shared micro-kernel.
    @Test func llvm() throws {
        let result = try lathe("dump", "simple-nn", "--format", "llvm")
        #expect(result.status == 0)
        #expect(result.out.contains("i64 @lathe_run("))
        #expect(result.out.contains("@k0_dense_epilogue(") && result.out.contains("@lathe_micro_"))
        #expect(try lathe("dump", "simple-nn", "--format", "llvm", "--after", "fold-constants").status == 64)
    }
}
