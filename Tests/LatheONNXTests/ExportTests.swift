import Foundation
import Lathe
import LatheExamples
import LatheONNX
import Testing

/// max |got - want| / max |want| over the elements.
private func relativeDifference(_ got: HostTensor, _ want: HostTensor) -> Float {
    var worst: Float = 0, scale: Float = 0
    for (a, b) in zip(got.scalars, want.scalars) { (worst, scale) = (max(worst, abs(a - b)), max(scale, abs(b))) }
    return worst / max(scale, 1e-30)
}

/// The ONNX export of DSL models (ONNXExporter), read back by the importer: the same numbers as
/// the graph it was written from. (tools/check-onnx-models.py runs the exports in ONNX Runtime.)
@Suite("ONNX export")
struct ExportTests {
    /// Every built-in model of the DSL.
    static let exported = Examples.all.map(\.name)

    @Test("a built-in model exported and imported again computes what it did", arguments: exported)
    func roundTrip(name: String) throws {
        let example = try #require(Examples.named(name))
        let (graph, outputs) = try example.graph(batch: 2, seed: 4)
        let data = try ONNXExporter.export(graph, outputs: outputs.map { ($0.name, $0.value.id) })
        let imported = try ONNXImporter.load(data, fileName: "\(name).onnx")
        #expect(imported.opset == ONNXExporter.opset && imported.producer == "Lathe")
        #expect(imported.outputs.map(\.name) == outputs.map(\.name))
        var feeds: [String: HostTensor] = [:]
        for (k, input) in graph.inputs.enumerated() {
            feeds[input.name] = input.type.dtype == .float32 ? HostTensor.random(shape: input.type.shape, seed: UInt64(k), in: 0...1)
                : HostTensor.random(shape: input.type.shape, dtype: input.type.dtype, seed: UInt64(k))
        }
        let want = try Interpreter.run(graph, outputs: outputs.map(\.value.id), feeds: feeds)
        let got = try Interpreter.run(imported.graph, outputs: imported.outputs.map(\.value), feeds: feeds)
        for (k, (g, w)) in zip(got, want).enumerated() {
            #expect(g.shape == w.shape)
            #expect(relativeDifference(g, w) <= 1e-6, "\(name) output \(k): \(relativeDifference(g, w))")
        }
    }

    @Test("with a symbolic batch, a CNN's export imports at another batch size")
    func symbolicBatch() throws {
        let (graph, outputs) = try Examples.mnistCNN.graph(batch: 1, seed: 2)
        let data = try ONNXExporter.export(graph, outputs: outputs.map { ($0.name, $0.value.id) }, symbolicBatch: true)
        let imported = try ONNXImporter.load(data, inputShapes: ["image": [3, 1, 28, 28]])
        #expect(imported.graph[imported.outputs[0].value].type.shape == [3, 10])
        #expect(throws: LatheError.self) { try ONNXImporter.load(ONNXExporter.export(graph, outputs: outputs.map { ($0.name, $0.value.id) }),
                                                                 inputShapes: ["image": [3, 1, 28, 28]]) }
    }

    @Test("every node without an ONNX form is listed in one error")
    func unsupportedListed() throws {
        let g = Graph()
        let x = try g.input("x", shape: [2, 5])
        let top = try g.addNode(.topK(k: 2, axis: 1, largest: true), [x.id], name: "top")
        let sums = try g.addNode(.cumulativeSum(axis: 1, exclusive: false, reverse: false), [x.id], name: "sums")
        let other = try g.addNode(.cumulativeSum(axis: 0, exclusive: false, reverse: false), [sums], name: "sums2")
        #expect {
            try ONNXExporter.export(g, outputs: [("a", top), ("b", other)])
        } throws: { error in
            guard case let LatheError.unsupportedOps(ops) = error else { return false }
            return ops.map(\.opType).count == 2 && ops.first { $0.nodes == ["sums", "sums2"] } != nil && ops.contains { $0.nodes == ["top"] }
        }
    }
}
