import Foundation
import Lathe
import LatheONNX
import Testing

/// y = the positive elements of x (GatherND at NonZero's positions) doubled, and their count:
/// sizes that depend on x's values.
private func positivesModel() throws -> Data {
    func node(_ op: String, _ inputs: [String], _ outputs: [String]) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        (n.opType, n.name, n.input, n.output) = (op, outputs[0], inputs, outputs)
        return n
    }
    var m = emptyONNXModel()
    var zero = Onnx_TensorProto(), two = Onnx_TensorProto()
    (zero.name, zero.dataType, zero.floatData) = ("zero", 1, [0])
    (two.name, two.dataType, two.floatData) = ("two", 1, [2])
    m.graph.initializer = [zero, two]
    m.graph.node = [node("Greater", ["x", "zero"], ["positive"]), node("NonZero", ["positive"], ["where"]),
                    node("Transpose", ["where"], ["indices"]), node("GatherND", ["x", "indices"], ["picked"]),
                    node("Mul", ["picked", "two"], ["y"]), node("Shape", ["picked"], ["count"])]
    m.graph.input = [onnxValueInfo("x", .float32, [2, 3])]
    m.graph.output = [onnxValueInfo("y", .float32, dimensions: ["n"]), onnxValueInfo("count", .int64, [1])]
    return try m.serializedData()
}

@Suite("Models whose sizes depend on values run in stages")
struct StagedModelTests {
    @Test func eachStageCompilesForTheSizesItMeets() throws {
        let model = try ONNXModel(try positivesModel())
        let a = try model.run(["x": try HostTensor(shape: [2, 3], scalars: [1, -2, 3, -4, 5, 0])])
        #expect(try a["y"]?.scalars == [2, 6, 10])
        #expect(try a["count"]?.values(as: Int64.self) == [3])
        let stagesForThree = model.compiledCount
        #expect(stagesForThree == 2, "the graph up to NonZero, and the rest for 3 positions")
        let b = try model.run(["x": try HostTensor(shape: [2, 3], scalars: [-1, 7, -3, -4, -5, -6])])
        #expect(try b["y"]?.scalars == [14])
        #expect(model.compiledCount == 3, "the first stage is reused; the rest compiles for 1 position")
        let none = try model.run(["x": try HostTensor(shape: [2, 3], scalars: [-1, -1, -1, -1, -1, -1])])
        #expect(none["y"]?.shape == [0])
        _ = try model.run(["x": try HostTensor(shape: [2, 3], scalars: [9, -2, 9, -4, 9, 0])])
        #expect(model.compiledCount == 4, "3 positions again reuses its stage")
    }

    @Test func theImporterSaysWhereAModelNeedsStages() throws {
        #expect {
            _ = try ONNXImporter.load(try positivesModel())
        } throws: { error in
            guard case let LatheError.valueDependentShape(node) = error else { return false }
            return node.contains("NonZero node 'where'")
        }
    }

    @Test func uniqueGivesNumPysFourOutputs() throws {
        var m = emptyONNXModel()
        var n = Onnx_NodeProto()
        (n.opType, n.name, n.input, n.output) = ("Unique", "u", ["x"], ["y", "first", "inverse", "counts"])
        var sorted = Onnx_AttributeProto()
        (sorted.name, sorted.type, sorted.i) = ("sorted", .int, 0)
        n.attribute = [sorted]
        m.graph.node = [n]
        m.graph.input = [onnxValueInfo("x", .int64, [6])]
        m.graph.output = [onnxValueInfo("y", .int64, dimensions: ["n"])] + ["first", "inverse", "counts"].map { onnxValueInfo($0, .int64, dimensions: ["m"]) }
        let out = try ONNXModel(try m.serializedData()).run(["x": try HostTensor(shape: [6], values: [5, 2, 5, 9, 2, 5] as [Int64])])
        #expect(try out["y"]?.values(as: Int64.self) == [5, 2, 9])
        #expect(try out["first"]?.values(as: Int64.self) == [0, 1, 3])
        #expect(try out["inverse"]?.values(as: Int64.self) == [0, 1, 0, 2, 1, 0])
        #expect(try out["counts"]?.values(as: Int64.self) == [3, 2, 1])
    }

    /// Compress with a condition computed at run time runs in stages; with a constant one it is
    /// a gather, and the model one graph.
    @Test func compressKeepsTheChosenRows() throws {
        var m = emptyONNXModel()
        var n = Onnx_NodeProto()
        (n.opType, n.name, n.input, n.output) = ("Compress", "keep", ["x", "c"], ["y"])
        var axis = Onnx_AttributeProto()
        (axis.name, axis.type, axis.i) = ("axis", .int, 0)
        n.attribute = [axis]
        m.graph.node = [n]
        m.graph.input = [onnxValueInfo("x", .float32, [3, 2]), onnxValueInfo("c", .bool, [3])]
        m.graph.output = [onnxValueInfo("y", .float32, dimensions: ["k", "2"])]
        let model = try ONNXModel(try m.serializedData())
        let x = try HostTensor(shape: [3, 2], scalars: [1, 2, 3, 4, 5, 6])
        #expect(try model.run(["x": x, "c": try HostTensor(shape: [3], values: [true, false, true])])["y"]?.scalars == [1, 2, 5, 6])
        #expect(try model.run(["x": x, "c": try HostTensor(shape: [3], values: [false, true, false])])["y"]?.scalars == [3, 4])
    }
}
