import Foundation
import Lathe
import LatheONNX
import Testing

/// y = Pad(x, |pads|) and z = x + x: the pads, and so y's shape, come from an input through an
/// op (as ONNX's expanded functions compute theirs).
func padFromInputModel() -> Data {
    var model = emptyONNXModel()
    var graph = Onnx_GraphProto()
    graph.name = "pad_from_input"
    func node(_ op: String, _ inputs: [String], _ outputs: [String], name: String) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        (n.opType, n.input, n.output, n.name) = (op, inputs, outputs, name)
        return n
    }
    graph.input = [onnxValueInfo("x", .float32, [2, 3]), onnxValueInfo("pads", .int64, [4])]
    graph.node = [node("Abs", ["pads"], ["amounts"], name: "amounts"), node("Pad", ["x", "amounts"], ["y"], name: "border"),
                  node("Add", ["x", "x"], ["z"], name: "twice")]
    var y = onnxValueInfo("y", .float32, [])
    y.type.tensorType.clearShape()
    graph.output = [y, onnxValueInfo("z", .float32, [2, 3])]
    model.graph = graph
    return try! model.serializedData()
}

@Suite("Inputs that set shapes: a model compiled for their values")
struct ValueInputTests {
    let x = try! HostTensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
    func pads(_ values: [Int64]) -> HostTensor { try! HostTensor(shape: [4], values: values) }

    @Test("importing without the values names the node, the operand and the input")
    func importNeedsValues() throws {
        let error = #expect(throws: LatheError.self) { try ONNXImporter.load(padFromInputModel()) }
        guard case let .inputValuesNeeded(inputs, operand)? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(inputs == ["pads"])
        #expect(operand == "model.onnx[border]:2: Pad node 'border': its pads (operand 2)")
        #expect(error!.description.hasPrefix("model.onnx[border]:2: Pad node 'border': its pads (operand 2) is computed from input 'pads' and must be known when the model is compiled"))
    }

    @Test("given values, the import takes only the inputs that set shapes as constants")
    func importTakesOnlyNeededValues() throws {
        let imported = try ONNXImporter.load(padFromInputModel(), inputValues: ["pads": pads([0, 1, 0, 2]), "x": x])
        #expect(imported.valueInputs == ["pads"])
        #expect(imported.graph.inputs.map(\.name) == ["x"])
        #expect(imported.graph[imported.outputs[0].value].type.shape == [2, 6])
    }

    @Test("each new set of values compiles once; a set seen before reuses its compiled model")
    func compilesPerValue() throws {
        let model = try ONNXModel(padFromInputModel())
        #expect(model.valueInputs == ["pads"])
        #expect(model.compiledCount == 0)
        let wide = try model.run(["x": x, "pads": pads([0, 1, 0, -2])])
        #expect(wide["y"]!.shape == [2, 6])
        #expect(wide["y"]!.scalars == [0, 1, 2, 3, 0, 0, 0, 4, 5, 6, 0, 0])
        #expect(wide["z"]!.scalars == [2, 4, 6, 8, 10, 12])
        let tall = try model.run(["x": x, "pads": pads([1, 0, 0, 0])])
        #expect(tall["y"]!.shape == [3, 3])
        #expect(tall["y"]!.scalars == [0, 0, 0, 1, 2, 3, 4, 5, 6])
        #expect(model.compiledCount == 2)
        let first = try model.compiledModel(for: ["x": x, "pads": pads([0, 1, 0, -2])])
        let again = try model.compiledModel(for: ["x": x, "pads": pads([0, 1, 0, -2])])
        #expect(first.model === again.model && first.valueInputs == ["pads"])
        #expect(first.model.inputs.map(\.name) == ["x"])
        #expect(model.compiledCount == 2)
    }

    @Test("the least recently used compiled model goes past the limit")
    func keepsABoundedSet() throws {
        let model = try ONNXModel(padFromInputModel(), specializationLimit: 2)
        let (a, b, c) = (pads([1, 0, 0, 0]), pads([0, 1, 0, 0]), pads([0, 0, 1, 0]))
        let modelA = try model.compiledModel(for: ["x": x, "pads": a]).model
        let modelB = try model.compiledModel(for: ["x": x, "pads": b]).model
        #expect(try model.compiledModel(for: ["x": x, "pads": a]).model === modelA)
        _ = try model.compiledModel(for: ["x": x, "pads": c])
        #expect(model.compiledCount == 2)
        #expect(try model.compiledModel(for: ["x": x, "pads": a]).model === modelA)
        #expect(try model.compiledModel(for: ["x": x, "pads": b]).model !== modelB)
    }

    @Test("a missing, mistyped, misshapen or unknown feed is a typed error")
    func badFeeds() throws {
        let model = try ONNXModel(padFromInputModel())
        #expect(throws: LatheError.missingInput(name: "pads")) { try model.run(["x": x]) }
        #expect(throws: LatheError.inputElementTypeMismatch(name: "pads", expected: .int64, got: .float32)) {
            try model.run(["x": x, "pads": try HostTensor(shape: [4], scalars: [0, 0, 0, 0])])
        }
        #expect(throws: LatheError.inputShapeMismatch(name: "pads", expected: [4], got: [2])) {
            try model.run(["x": x, "pads": try HostTensor(shape: [2], values: [0, 1] as [Int64])])
        }
        #expect(throws: LatheError.unknownInput(name: "w", known: ["x", "pads"])) { try model.run(["x": x, "pads": pads([0, 0, 0, 0]), "w": x]) }
        #expect(throws: LatheError.missingInput(name: "x")) { try model.run(["pads": pads([0, 0, 0, 0])]) }
    }

    @Test("a model whose shapes are fixed compiles once, when made")
    func fixedModelCompilesOnce() throws {
        let model = try ONNXModel(smallModel())
        #expect(model.valueInputs.isEmpty && model.compiledCount == 1)
        let out = try model.run(["x": HostTensor(shape: [4, 3])])
        #expect(out["y"]!.shape == [4, 2])
        #expect(model.compiledCount == 1)
    }

    @Test("runs from several threads at once, over two sets of values, match serial runs")
    func concurrentRuns() throws {
        let model = try ONNXModel(padFromInputModel())
        let sets = [pads([0, 1, 0, 2]), pads([2, 0, 1, 0])]
        let serial = try sets.map { try model.run(["x": x, "pads": $0])["y"]! }
        let results = UnsafeMutableBufferPointer<HostTensor?>.allocate(capacity: 8)
        results.initialize(repeating: nil)
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            results[i] = try? model.run(["x": x, "pads": sets[i % 2]])["y"]
        }
        for i in 0..<8 { #expect(results[i] == serial[i % 2]) }
        #expect(model.compiledCount == 2)
    }
}
