import Foundation
import Lathe
import LatheONNX
import Testing

/// Transformers exported from PyTorch/`transformers` with int64 token ids (tools/mktransformers.py:
/// small configurations, random weights), and ONNX Runtime's outputs on the stored inputs.
private let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Data/transformers")

@Suite("Transformers from token ids: exports of BERT and GPT-2 against ONNX Runtime")
struct TransformerExportTests {
    func load(_ name: String) throws -> (ImportedModel, [String: HostTensor], HostTensor) {
        let imported = try ONNXImporter.load(contentsOf: folder.appendingPathComponent("\(name).onnx"))
        var feeds: [String: HostTensor] = [:]
        for input in imported.graph.inputs {
            feeds[input.name] = try HostTensor(npyFile: folder.appendingPathComponent("\(name).\(input.name).npy"))
        }
        return (imported, feeds, try HostTensor(npyFile: folder.appendingPathComponent("\(name).expected.npy")))
    }

    @Test("the export runs and matches ONNX Runtime to 1e-4", arguments: ["bert_tiny", "gpt2_tiny"], [1, 2])
    func matchesOnnxRuntime(name: String, threads: Int) throws {
        let (imported, feeds, expected) = try load(name)
        #expect(imported.graph.inputs.allSatisfy { $0.type.dtype == .int64 }, "token ids and masks are int64")
        let model = try Compiler.compile(imported.graph, outputs: imported.outputs, options: CompileOptions(threads: threads))
        let got = try model.run(feeds)[imported.outputs[0].name]!
        #expect(got.shape == expected.shape)
        var worst: Float = 0, scale: Float = 0
        for (a, b) in zip(got.scalars, expected.scalars) { (worst, scale) = (max(worst, abs(a - b)), max(scale, abs(b))) }
        #expect(worst / scale <= 1e-4, "max |diff| / max |ref| = \(worst / scale)")
    }

    @Test("a token id past the vocabulary is a typed error naming the embedding's Gather")
    func idOutOfRange() throws {
        let (imported, feeds, _) = try load("bert_tiny")
        let model = try Compiler.compile(imported.graph, outputs: imported.outputs)
        var ids = try feeds["input_ids"]!.values(as: Int64.self)
        ids[5] = 320   // the vocabulary has 320 ids
        var bad = feeds
        bad["input_ids"] = try HostTensor(shape: feeds["input_ids"]!.shape, values: ids)
        let error = #expect(throws: LatheError.self) { try model.run(bad) }
        guard case let .indexOutOfRange(node, op, index, bound, _)? = error else {
            Issue.record("expected indexOutOfRange, got \(String(describing: error))")
            return
        }
        #expect(node.contains("word_embeddings") && op == "gather" && index == 320 && bound == 320, "\(error!)")
        // A feed of another type is refused by name, not converted.
        var floats = feeds
        floats["input_ids"] = try feeds["input_ids"]!.converted(to: .float32)
        #expect(throws: LatheError.inputElementTypeMismatch(name: "input_ids", expected: .int64, got: .float32)) { try model.run(floats) }
    }
}
