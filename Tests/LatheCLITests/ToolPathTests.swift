import Foundation
import LatheIR
import LatheONNX
import Testing

/// A model y = relu(x) whose input x is [N, 3], N symbolic.
func symbolicReluModel() throws -> Data {
    var model = Onnx_ModelProto()
    model.irVersion = 8
    var opset = Onnx_OperatorSetIdProto()
    opset.version = 17
    model.opsetImport = [opset]
    func valueInfo(_ name: String) -> Onnx_ValueInfoProto {
        var info = Onnx_ValueInfoProto()
        info.name = name
        var tensor = Onnx_TypeProto.Tensor()
        tensor.elemType = 1
        var n = Onnx_TensorShapeProto.Dimension()
        n.dimParam = "N"
        var three = Onnx_TensorShapeProto.Dimension()
        three.dimValue = 3
        tensor.shape.dim = [n, three]
        info.type.tensorType = tensor
        return info
    }
    var relu = Onnx_NodeProto()
    relu.opType = "Relu"
    relu.input = ["x"]
    relu.output = ["y"]
    model.graph.name = "symbolic"
    model.graph.node = [relu]
    model.graph.input = [valueInfo("x")]
    model.graph.output = [valueInfo("y")]
    return try model.serializedData()
}

/// The paths of the tool that print timings, JSON or files: their fields and their errors.
@Suite("The lathe tool: bench, timing, cache, dimensions, conformance, help")
struct ToolPathTests {
    func temporaryFolder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-tool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    @Test func benchJSONHasTheDocumentedFields() throws {
        let result = try lathe("bench", "simple-nn", "--iterations", "5", "--json")
        #expect(result.status == 0, "\(result.err)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any])
        for key in ["model", "threads", "compileMs", "medianMs", "minMs", "p90Ms", "gflops", "peakGflops", "peakFraction"] {
            #expect(report[key] != nil, "bench --json lacks \(key)")
        }
        #expect(report["kernels"] == nil, "kernels only with --profile")
        let (median, least, p90) = (report["medianMs"] as? Double ?? -1, report["minMs"] as? Double ?? -1, report["p90Ms"] as? Double ?? -1)
        #expect(0 < least && least <= median && median <= p90)
        #expect(report["model"] as? String == "simple-nn" && report["threads"] as? Int == 1)
    }

    /// The per-kernel table names the kernels of the plan and the model's ops each holds.
    @Test func benchProfileReportsEveryKernelOfThePlan() throws {
        let json = try lathe("bench", "mnist-cnn", "--iterations", "3", "--threads", "2", "--profile", "--json")
        #expect(json.status == 0, "\(json.err)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])
        let kernels = try #require(report["kernels"] as? [[String: Any]])
        let plan = try lathe("dump", "mnist-cnn", "--kernels", "--threads", "2").out.split(separator: "\n")
        #expect(kernels.map { $0["name"] as? String ?? "" } == plan.map { String($0.prefix { $0 != " " }) })
        #expect(kernels.first?["ops"] as? String == "conv2d+relu+max_pool2d")
        #expect(kernels.allSatisfy { ($0["medianMs"] as? Double ?? -1) >= 0 && $0["split"] is String })
        let text = try lathe("bench", "mnist-cnn", "--iterations", "3", "--profile")
        #expect(text.status == 0)
        let lines = text.out.split(separator: "\n")
        #expect(lines.count == 2 + kernels.count)
        #expect(lines[2].hasPrefix("  k0_conv2d_epilogue_max_pool2d") && lines[2].contains("conv2d+relu+max_pool2d  (1 thread)"))
    }

    /// --timing names each compile stage; the second compile of a model comes from the cache,
    /// and --no-cache neither reads nor writes it.
    @Test func timingShowsTheStagesAndTheCache() throws {
        let cache = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: cache) }
        let environment = ["XDG_CACHE_HOME": cache.path]
        let first = try lathe(["run", "simple-nn", "--timing"], environment: environment)
        #expect(first.status == 0, "\(first.err)")
        for stage in ["passes and planning", "LLVM IR", "LLVM optimization and machine code", "JIT link", "weights"] {
            #expect(first.err.contains(stage), "--timing lacks \(stage): \(first.err)")
        }
        let second = try lathe(["run", "simple-nn", "--timing"], environment: environment)
        #expect(second.err.contains("cache hit") && second.out == first.out)
        let uncached = try lathe(["run", "simple-nn", "--timing", "--no-cache"], environment: environment)
        #expect(!uncached.err.contains("cache hit") && uncached.err.contains("LLVM optimization and machine code"))
        #expect(uncached.out == first.out)
        let benchUncached = try lathe(["bench", "simple-nn", "--iterations", "2", "--no-cache"], environment: environment)
        #expect(benchUncached.status == 0)
    }

    @Test func dimensionsOfAnONNXModel() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("symbolic.onnx")
        try symbolicReluModel().write(to: file)
        let five = try lathe("run", file.path, "--dim", "N=5")
        #expect(five.status == 0, "\(five.err)")
        #expect(five.out.hasPrefix("y: f32[5, 3] checksum "))
        let unsized = try lathe("run", file.path)
        #expect(unsized.status != 0 && unsized.err.contains("input 'x' has symbolic dimension 'N' (axis 0) and no size was given"), "never 1 by default")
        let x = folder.appendingPathComponent("x.npy")
        try HostTensor(shape: [4, 3], repeating: 1).npyData.write(to: x)
        #expect(try lathe("run", file.path, "--input", "x=\(x.path)").out.hasPrefix("y: f32[4, 3] checksum "), "sized by the file's shape")
        #expect(try lathe("dump", file.path, "--dim", "N=7").out.contains("f32[7, 3]"))
        let bad = try lathe("run", file.path, "--dim", "N=0")
        #expect(bad.status == 64 && bad.err.contains("--dim takes NAME=SIZE with a positive SIZE"))
    }

    /// An .npy of another element type than the input's is an error naming both, not converted.
    @Test func aFeedOfAnotherElementTypeIsAnError() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = folder.appendingPathComponent("symbolic.onnx"), ids = folder.appendingPathComponent("ids.npy")
        try symbolicReluModel().write(to: model)
        try HostTensor(shape: [2, 3], values: [Int64](0..<6)).npyData.write(to: ids)
        let refused = try lathe("run", model.path, "--dim", "N=2", "--input", "x=\(ids.path)")
        #expect(refused.status != 0)
        #expect(refused.err.contains("input 'x' holds i64 elements, the model expects f32 (feeds are not converted)"), "\(refused.err)")
        let floats = folder.appendingPathComponent("x.npy")
        try HostTensor(shape: [2, 3], scalars: [-1, 0, 1, 2, -3, 4]).npyData.write(to: floats)
        let run = try lathe("run", model.path, "--dim", "N=2", "--input", "x=\(floats.path)")
        #expect(run.status == 0 && run.out.hasPrefix("y: f32[2, 3] checksum "))
    }

    /// ONNX's test_constant_pad, whose pads and pad value are inputs: each command builds the
    /// model for the values --input gives, and without them names the node and the input.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: constantPadCase.path)))
    func inputsNeededToCompile() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = constantPadCase.appendingPathComponent("model.onnx").path
        func tensor(_ file: String) throws -> HostTensor {
            try ONNXImporter.readTensor(Data(contentsOf: constantPadCase.appendingPathComponent("test_data_set_0/\(file).pb")))
        }
        var inputs: [String] = []
        for (i, name) in ["x", "pads", "value"].enumerated() {
            let file = folder.appendingPathComponent("\(name).npy")
            try tensor("input_\(i)").npyData.write(to: file)
            inputs += ["--input", "\(name)=\(file.path)"]
        }
        let refused = try lathe("run", model)
        #expect(refused.status != 0)
        #expect(refused.err.contains("Pad node 'y': its pads (operand 2) is computed from input 'pads' and must be known when the model is compiled"), "\(refused.err)")
        let run = try lathe(["run", model, "--output-dir", folder.path] + inputs, environment: nil)
        #expect(run.status == 0, "\(run.err)")
        #expect(run.err.contains("built for the values of 'pads', 'value', which must be known when compiling"), "\(run.err)")
        #expect(run.out.hasPrefix("y: f32[1, 3, 7, 12] checksum "))
        let y = try HostTensor(npyFile: folder.appendingPathComponent("y.npy"))
        #expect(y == (try tensor("output_0")))
        #expect(try lathe(["dump", model] + inputs, environment: nil).out.contains("f32[1, 3, 7, 12]"))
        #expect(try lathe(["bench", model, "--iterations", "2"] + inputs, environment: nil).status == 0)
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: reluModel.path)))
    func conformanceWritesItsReport() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let report = folder.appendingPathComponent("report.md")
        let suite = reluModel.deletingLastPathComponent().deletingLastPathComponent().path
        let result = try lathe("conformance", suite, "--filter", "test_relu", "--report", report.path)
        #expect(result.status == 0, "\(result.err)")
        #expect(result.out.hasPrefix("| cases | passed | failed |"))
        let text = try String(contentsOf: report, encoding: .utf8)
        let counts = try #require(result.out.split(separator: "\n").last)
        #expect(text.hasPrefix("# ONNX operator conformance") && text.contains(counts), "the report holds the counts printed")
        let none = try lathe("conformance", suite, "--filter", "no_such_case")
        #expect(none.status == 64 && none.err.contains("no test cases"))
    }

    @Test(arguments: ["dump", "run", "inspect", "bench", "train", "demo", "models", "conformance"])
    func everyCommandHasHelp(_ command: String) throws {
        let result = try lathe(command, "--help")
        #expect(result.status == 0)
        #expect(result.out.contains("USAGE: lathe \(command)"))
        #expect(result.out.contains("-h, --help"))
    }

    @Test func theToolListsEveryCommand() throws {
        let result = try lathe("--help")
        #expect(result.status == 0)
        for command in ["dump", "run", "inspect", "bench", "train", "demo", "models", "conformance"] {
            #expect(result.out.contains("  \(command) "), "lathe --help does not list \(command)")
        }
    }
}
