import Foundation
import Lathe
import LatheONNX
import Testing

/// A 3-D convolution by its definition: every output cell the sum of its window's products.
private func naiveConv3d(_ x: [Float], _ xs: [Int], _ w: [Float], _ ws: [Int], bias: [Float], strides: [Int], pads: [Int], dilations: [Int], groups: Int) -> ([Float], [Int]) {
    var out: [Int] = []
    for a in 0..<3 {
        let span: Int = xs[a + 2] + pads[a] + pads[a + 3] - dilations[a] * (ws[a + 2] - 1) - 1
        out.append(span / strides[a] + 1)
    }
    let (perGroupIn, perGroupOut) = (xs[1] / groups, ws[0] / groups)
    var y = [Float](repeating: 0, count: xs[0] * ws[0] * out.reduce(1, *))
    var at = 0
    for n in 0..<xs[0] { for o in 0..<ws[0] { for d in 0..<out[0] { for h in 0..<out[1] { for v in 0..<out[2] {
        var sum = bias[o]
        let g = o / perGroupOut
        for ci in 0..<perGroupIn { for kd in 0..<ws[2] { for kh in 0..<ws[3] { for kw in 0..<ws[4] {
            let id: Int = d * strides[0] - pads[0] + kd * dilations[0]
            let ih: Int = h * strides[1] - pads[1] + kh * dilations[1]
            let iw: Int = v * strides[2] - pads[2] + kw * dilations[2]
            guard (0..<xs[2]).contains(id), (0..<xs[3]).contains(ih), (0..<xs[4]).contains(iw) else { continue }
            let c = g * perGroupIn + ci
            let xi: Int = (((n * xs[1] + c) * xs[2] + id) * xs[3] + ih) * xs[4] + iw
            let wi: Int = (((o * perGroupIn + ci) * ws[2] + kd) * ws[3] + kh) * ws[4] + kw
            sum += x[xi] * w[wi]
        } } } }
        y[at] = sum
        at += 1
    } } } } }
    return (y, [xs[0], ws[0]] + out)
}

@Suite("3-D convolution as 2-D ones, one a depth tap (3-D ConvTranspose: ONNX's conformance case)")
struct Convolution3DTests {
    @Test func matchesTheDefinition() throws {
        let (xs, ws) = ([2, 4, 5, 6, 7], [6, 2, 3, 2, 3])
        let (strides, pads, dilations, groups) = ([2, 1, 2], [1, 0, 1, 2, 1, 0], [1, 2, 1], 2)
        let x = (0..<xs.reduce(1, *)).map { Float(($0 * 37) % 19) / 9 - 1 }
        let w = (0..<ws.reduce(1, *)).map { Float(($0 * 11) % 13) / 6 - 1 }
        let b = (0..<ws[0]).map { Float($0) * 0.25 }
        var model = emptyONNXModel()
        var node = Onnx_NodeProto()
        (node.opType, node.name, node.input, node.output) = ("Conv", "conv", ["x", "w", "b"], ["y"])
        for (name, values) in [("strides", strides), ("pads", pads), ("dilations", dilations)] {
            var a = Onnx_AttributeProto()
            (a.name, a.type, a.ints) = (name, .ints, values.map(Int64.init))
            node.attribute.append(a)
        }
        var group = Onnx_AttributeProto()
        (group.name, group.type, group.i) = ("group", .int, Int64(groups))
        node.attribute.append(group)
        func tensor(_ name: String, _ shape: [Int], _ v: [Float]) -> Onnx_TensorProto {
            var t = Onnx_TensorProto()
            (t.name, t.dims, t.dataType, t.floatData) = (name, shape.map(Int64.init), 1, v)
            return t
        }
        model.graph.node = [node]
        model.graph.initializer = [tensor("w", ws, w), tensor("b", [ws[0]], b)]
        model.graph.input = [onnxValueInfo("x", .float32, xs)]
        var y = onnxValueInfo("y", .float32, [])
        y.type.tensorType.clearShape()
        model.graph.output = [y]
        let imported = try ONNXImporter.load(try model.serializedData())
        let got = try Compiler.compile(imported.graph, outputs: imported.outputs, options: CompileOptions(threads: 2)).run(["x": try HostTensor(shape: xs, scalars: x)])["y"]!
        let (expected, shape) = naiveConv3d(x, xs, w, ws, bias: b, strides: strides, pads: pads, dilations: dilations, groups: groups)
        #expect(got.shape == shape)
        #expect(zip(try got.scalars, expected).allSatisfy { abs($0 - $1) <= 1e-4 })
    }
}

/// DeformConv with every offset 0 and no mask samples where a convolution reads: it gives
/// Conv's output (grouped, strided, padded).
@Suite("DeformConv against Conv")
struct DeformConvTests {
    @Test func zeroOffsetsGiveTheConvolution() throws {
        let (xs, ws) = ([1, 4, 6, 5], [6, 2, 3, 3])
        let x = (0..<xs.reduce(1, *)).map { Float(($0 * 13) % 17) / 8 - 1 }, w = (0..<ws.reduce(1, *)).map { Float(($0 * 7) % 11) / 5 - 1 }
        func model(_ op: String, offsets: [Int]?) throws -> Data {
            var m = emptyONNXModel()
            m.opsetImport[0].version = 22
            var node = Onnx_NodeProto()
            (node.opType, node.name, node.input, node.output) = (op, op, offsets == nil ? ["x", "w"] : ["x", "w", "offset"], ["y"])
            for (name, values) in [("strides", [2, 1]), ("pads", [1, 0, 1, 1]), ("kernel_shape", [3, 3])] {
                var a = Onnx_AttributeProto()
                (a.name, a.type, a.ints) = (name, .ints, values.map(Int64.init))
                node.attribute.append(a)
            }
            var group = Onnx_AttributeProto()
            (group.name, group.type, group.i) = ("group", .int, 2)
            node.attribute.append(group)
            var weights = Onnx_TensorProto()
            (weights.name, weights.dims, weights.dataType, weights.floatData) = ("w", ws.map(Int64.init), 1, w)
            m.graph.initializer = [weights]
            m.graph.node = [node]
            m.graph.input = [onnxValueInfo("x", .float32, xs)] + (offsets.map { [onnxValueInfo("offset", .float32, $0)] } ?? [])
            var y = onnxValueInfo("y", .float32, [])
            y.type.tensorType.clearShape()
            m.graph.output = [y]
            return try m.serializedData()
        }
        let input = try HostTensor(shape: xs, scalars: x)
        let conv = try ONNXModel(try model("Conv", offsets: nil)).run(["x": input])["y"]!
        let offsetShape = [1, 2 * 9, conv.shape[2], conv.shape[3]]
        let zeros = try HostTensor(shape: offsetShape, scalars: Array(repeating: 0, count: offsetShape.reduce(1, *)))
        let deformed = try ONNXModel(try model("DeformConv", offsets: offsetShape)).run(["x": input, "offset": zeros])["y"]!
        #expect(deformed.shape == conv.shape)
        #expect(zip(try deformed.scalars, try conv.scalars).allSatisfy { abs($0 - $1) < 1e-5 })
    }
}
