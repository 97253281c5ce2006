import Foundation
import Lathe
import LatheONNX
import Testing

/// An empty model of IR version 8 and opset 17, for tests that build one in Swift.
func emptyONNXModel() -> Onnx_ModelProto {
    var model = Onnx_ModelProto()
    model.irVersion = 8
    var opset = Onnx_OperatorSetIdProto()
    opset.version = 17
    model.opsetImport = [opset]
    return model
}

/// Y = op(inputs...) in one node named after the op: X a graph input, the other inputs among the
/// initializers; Y of a shape left to the importer.
func oneNodeModel(_ op: String, inputs: [String], x: Onnx_ValueInfoProto, initializers: [Onnx_TensorProto],
                  attributes: [Onnx_AttributeProto] = []) -> Data {
    var model = emptyONNXModel()
    var node = Onnx_NodeProto()
    (node.opType, node.input, node.output, node.name, node.attribute) = (op, inputs, ["Y"], op.lowercased(), attributes)
    var y = onnxValueInfo("Y", DType(onnxCode: Int(x.type.tensorType.elemType)) ?? .float32, [])
    y.type.tensorType.clearShape()
    (model.graph.name, model.graph.node, model.graph.input, model.graph.output, model.graph.initializer) = (op, [node], [x], [y], initializers)
    return try! model.serializedData()
}

/// A graph input's or output's name, element type and shape.
func onnxValueInfo(_ name: String, _ type: DType, _ shape: [Int]) -> Onnx_ValueInfoProto {
    var value = Onnx_ValueInfoProto()
    value.name = name
    var tensor = Onnx_TypeProto.Tensor()
    tensor.elemType = Int32(type.onnxCode)
    tensor.shape.dim = shape.map { d in var dim = Onnx_TensorShapeProto.Dimension(); dim.dimValue = Int64(d); return dim }
    value.type.tensorType = tensor
    return value
}

/// A small valid model built in Swift: y = relu(x W + b) with W 3x2, then an op given by name.
func smallModel(extraOp: String? = nil, extraOps: [String] = []) -> Data {
    var model = emptyONNXModel()
    var graph = Onnx_GraphProto()
    graph.name = "small"
    func node(_ op: String, _ inputs: [String], _ outputs: [String], name: String) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.opType = op
        n.input = inputs
        n.output = outputs
        n.name = name
        return n
    }
    var w = Onnx_TensorProto()
    w.name = "W"
    w.dims = [3, 2]
    w.dataType = 1
    w.floatData = [1, -1, 2, 0.5, -3, 1]
    var b = Onnx_TensorProto()
    b.name = "b"
    b.dims = [2]
    b.dataType = 1
    b.floatData = [0.25, -0.5]
    graph.initializer = [w, b]
    graph.input = [onnxValueInfo("x", .float32, [4, 3])]
    graph.node = [node("Gemm", ["x", "W", "b"], ["h"], name: "fc"), node("Relu", ["h"], ["y"], name: "act")]
    var last = "y"
    for (i, op) in (extraOp.map { [$0] } ?? extraOps).enumerated() {
        graph.node.append(node(op, [last], ["z\(i)"], name: "extra\(i)"))
        last = "z\(i)"
    }
    graph.output = [onnxValueInfo(last, .float32, [4, 2])]
    model.graph = graph
    return try! model.serializedData()
}

@Suite("ONNX import: bad files give typed errors")
struct MalformedModelTests {
    @Test func aValidModelImportsAndRuns() throws {
        let imported = try ONNXImporter.load(smallModel())
        let model = try Compiler.compile(imported.graph, outputs: imported.outputs)
        let x = try HostTensor(shape: [4, 3], scalars: [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1])
        let y = try model.run(["x": x])["y"]!
        #expect(y.scalars == [1.25, 0, 2.25, 0, 0, 0.5, 0.25, 0])
    }

    @Test func truncatedFile() throws {
        let data = smallModel()
        for cut in [data.count / 2, data.count - 3, 7] {
            #expect(throws: LatheError.self) { try ONNXImporter.load(data.prefix(cut)) }
        }
    }

    @Test func randomBytes() throws {
        var rng = SeededGenerator(seed: 11)
        for size in [0, 1, 16, 1000, 100_000] {
            let bytes = Data((0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) })
            #expect(throws: LatheError.self) { try ONNXImporter.load(bytes) }
        }
    }

    @Test func everyUnsupportedOpIsListedAtOnce() throws {
        let data = smallModel(extraOps: ["Frobnicate", "StringNormalizer", "Frobnicate"])
        let error = #expect(throws: LatheError.self) { try ONNXImporter.load(data) }
        guard case let .unsupportedOps(ops)? = error else {
            Issue.record("expected unsupportedOps, got \(String(describing: error))")
            return
        }
        #expect(ops == [UnsupportedOp(opType: "Frobnicate", count: 2, nodes: ["extra0", "extra2"]),
                        UnsupportedOp(opType: "StringNormalizer", count: 1, nodes: ["extra1"])])
        #expect(error!.description.contains("3 nodes of 2 unsupported op types"))
    }

    @Test func missingFile() throws {
        #expect(throws: LatheError.self) { try ONNXImporter.load(contentsOf: URL(fileURLWithPath: "/nonexistent/model.onnx")) }
    }
}
