import Foundation
import Lathe
import LatheONNX
import Testing

/// A graph input whose dimensions are given as text: a number is fixed, a name symbolic, ""
/// unnamed.
func onnxValueInfo(_ name: String, _ type: DType, dimensions: [String]) -> Onnx_ValueInfoProto {
    var value = onnxValueInfo(name, type, [])
    value.type.tensorType.shape.dim = dimensions.map { text in
        var dim = Onnx_TensorShapeProto.Dimension()
        if let size = Int64(text) { dim.dimValue = size } else if !text.isEmpty { dim.dimParam = text }
        return dim
    }
    return value
}

/// y = relu(x) + bias and m = not(mask): x is [N, 3], mask [N] (N symbolic, shared), and
/// bias [1, W] with W unnamed.
func symbolicModel() -> Data {
    var model = emptyONNXModel()
    var graph = Onnx_GraphProto()
    graph.name = "symbolic"
    func node(_ op: String, _ inputs: [String], _ outputs: [String]) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        (n.opType, n.input, n.output, n.name) = (op, inputs, outputs, outputs[0])
        return n
    }
    graph.input = [onnxValueInfo("x", .float32, dimensions: ["N", "3"]), onnxValueInfo("mask", .bool, dimensions: ["N"]),
                   onnxValueInfo("bias", .float32, dimensions: ["1", ""])]
    graph.node = [node("Relu", ["x"], ["r"]), node("Add", ["r", "bias"], ["y"]), node("Not", ["mask"], ["m"])]
    graph.output = [onnxValueInfo("y", .float32, dimensions: ["N", "3"]), onnxValueInfo("m", .bool, dimensions: ["N"])]
    model.graph = graph
    return try! model.serializedData()
}

@Suite("Symbolic input dimensions: a model compiled per size")
struct SymbolicShapeTests {
    func feeds(_ n: Int, biasWidth: Int = 3) -> [String: HostTensor] {
        ["x": try! HostTensor(shape: [n, 3], scalars: (0..<(n * 3)).map { Float($0) - 4 }),
         "mask": try! HostTensor(shape: [n], values: (0..<n).map { $0 % 2 == 0 }),
         "bias": try! HostTensor(shape: [1, biasWidth], scalars: (0..<biasWidth).map { Float($0) / 4 })]
    }

    @Test("an import without sizes names the input, the axis and the dimension; never 1 by default")
    func sizesAreNeeded() throws {
        #expect(throws: LatheError.dimensionNeeded(input: "x", axis: 0, name: "N")) { try ONNXImporter.load(symbolicModel()) }
        #expect(throws: LatheError.dimensionNeeded(input: "bias", axis: 1, name: nil)) {
            try ONNXImporter.load(symbolicModel(), dimensions: ["N": 2])
        }
        let error = LatheError.dimensionNeeded(input: "x", axis: 0, name: "N").description
        #expect(error == "input 'x' has symbolic dimension 'N' (axis 0) and no size was given: ONNXModel takes it from each run's feed "
            + "(compiling once per size); `lathe` from --dim N=SIZE or the shape of --input x=FILE.npy")
    }

    @Test("sizes come from dimensions by name and from given shapes, a name's size shared by the inputs")
    func sizesFromNamesAndShapes() throws {
        let imported = try ONNXImporter.load(symbolicModel(), inputShapes: ["mask": [5], "bias": [1, 3]])
        #expect(imported.graph.inputs.map(\.type.shape) == [[5, 3], [5], [1, 3]])
        let named = try ONNXImporter.load(symbolicModel(), dimensions: ["N": 4], inputShapes: ["bias": [1, 1]])
        #expect(named.graph.inputs.map(\.type.shape) == [[4, 3], [4], [1, 1]])
        #expect(throws: LatheError.inputShapeMismatch(name: "mask", expected: [2], got: [3])) {
            try ONNXImporter.load(symbolicModel(), inputShapes: ["x": [2, 3], "mask": [3], "bias": [1, 3]])
        }
        #expect(throws: LatheError.inputShapeMismatch(name: "x", expected: [4, 3], got: [2, 3])) {
            try ONNXImporter.load(symbolicModel(), dimensions: ["N": 4], inputShapes: ["x": [2, 3], "bias": [1, 3]])
        }
        #expect(throws: LatheError.inputShapeMismatch(name: "x", expected: [-1, 3], got: [2, 3, 1])) {
            try ONNXImporter.load(symbolicModel(), inputShapes: ["x": [2, 3, 1], "bias": [1, 3]])
        }
    }

    @Test("each new size compiles once, a size seen before reuses its compiled model")
    func compilesPerSize() throws {
        let model = try ONNXModel(symbolicModel())
        #expect(model.openInputs == ["x", "mask", "bias"] && model.compiledCount == 0)
        let two = try model.run(feeds(2))
        #expect(two["y"]!.shape == [2, 3])
        #expect(two["y"]!.scalars == [0, 0.25, 0.5, 0, 0.25, 1.5])
        #expect(try two["m"]!.values(as: Bool.self) == [false, true])
        let five = try model.run(feeds(5))
        #expect(five["y"]!.shape == [5, 3] && five["m"]!.shape == [5])
        let broadcast = try model.run(feeds(5, biasWidth: 1))
        #expect(broadcast["y"]!.scalars[..<3] == [0, 0, 0])
        #expect(model.compiledCount == 3)
        let again = try model.compiledModel(for: feeds(2)).model
        #expect(again === (try model.compiledModel(for: feeds(2)).model))
        #expect(model.compiledCount == 3)
        #expect(throws: LatheError.inputShapeMismatch(name: "x", expected: [2, 3], got: [2, 4])) {
            try model.run(["x": HostTensor(shape: [2, 4]), "mask": try HostTensor(shape: [2], values: [true, false]), "bias": HostTensor(shape: [1, 3])])
        }
    }

    @Test("dimensions fix a size ahead of time; other sizes are refused")
    func dimensionsFixSizes() throws {
        let fixed = try ONNXModel(symbolicModel(), dimensions: ["N": 2])
        #expect(fixed.openInputs == ["bias"])
        #expect(try fixed.run(feeds(2))["y"]!.shape == [2, 3])
        #expect(throws: LatheError.inputShapeMismatch(name: "x", expected: [2, 3], got: [5, 3])) { try fixed.run(feeds(5)) }
    }
}
