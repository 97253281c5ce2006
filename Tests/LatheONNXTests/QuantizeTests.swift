import Foundation
import Lathe
import LatheONNX
import Testing

/// Seeded values for the quantization tests (a linear congruential generator: the same values
/// on every machine).
private struct Values {
    var state: UInt64
    mutating func next(_ range: ClosedRange<Float>) -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return range.lowerBound + Float(state >> 40) / Float(1 << 24) * (range.upperBound - range.lowerBound)
    }
}

@Suite("QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear against a scalar reference")
struct QuantizeTests {
    /// Per-axis int8 quantization of an odd-shaped tensor, with values on the ties between two
    /// steps (which round to even), past both ends of int8, and in between.
    @Test func perAxisQuantizeRoundsTiesToEvenAndSaturates() throws {
        let shape = [3, 5, 7]
        let scales: [Float] = [0.5, 0.1, 0.03, 2, 0.25], zeros: [Int8] = [0, -3, 10, 127, -128]
        var values = Values(state: 7), x: [Float] = []
        for i in 0..<shape.reduce(1, *) {
            let channel = i / 7 % 5
            switch i % 4 {
            case 0: x.append((Float(Int(values.next(-20...20))) + 0.5) * scales[channel])  // a tie
            case 1: x.append(values.next(-1000...1000))  // saturates
            default: x.append(values.next(-5...5))
            }
        }
        let model = try oneNodeModel("QuantizeLinear", inputs: [("x", .float32, shape)],
                                     initializers: [("scale", try HostTensor(shape: [5], scalars: scales)), ("zero", try HostTensor(shape: [5], values: zeros))],
                                     operands: ["x", "scale", "zero"], attributes: ["axis": 1], output: (.int8, shape))
        let got = try runOneNode(model, ["x": try HostTensor(shape: shape, scalars: x)]).values(as: Int8.self)
        let expected = x.indices.map { i -> Int8 in
            let channel = i / 7 % 5
            let steps = (x[i] / scales[channel]).rounded(.toNearestOrEven) + Float(zeros[channel])
            return Int8(min(max(steps, -128), 127))
        }
        #expect(got == expected)
    }

    /// Blocked dequantization: one scale and zero point per 4 columns of a [3, 10] uint8 tensor
    /// (the last block short), in f32.
    @Test func blockedDequantizeUsesEachBlocksScale() throws {
        let (rows, columns, block) = (3, 10, 4)
        let q = (0..<rows * columns).map { UInt8(($0 * 37) % 256) }
        let scales = (0..<rows * 3).map { Float($0 + 1) * 0.01 }, zeros = (0..<rows * 3).map { UInt8($0 * 20) }
        let model = try oneNodeModel("DequantizeLinear", inputs: [("q", .uint8, [rows, columns])],
                                     initializers: [("scale", try HostTensor(shape: [rows, 3], scalars: scales)), ("zero", try HostTensor(shape: [rows, 3], values: zeros))],
                                     operands: ["q", "scale", "zero"], attributes: ["axis": 1, "block_size": block], output: (.float32, [rows, columns]))
        let got = try runOneNode(model, ["q": try HostTensor(shape: [rows, columns], values: q)]).scalars
        let expected = q.indices.map { i -> Float in
            let b = i / columns * 3 + i % columns / block
            return (Float(q[i]) - Float(zeros[b])) * scales[b]
        }
        #expect(got == expected)
    }

    /// DynamicQuantizeLinear maps [min(x, 0), max(x, 0)] onto 0...255: all-positive values get
    /// zero point 0 and their largest 255.
    @Test func dynamicQuantizeCoversTheRange() throws {
        let x: [Float] = [0.5, 3, 1.25, 2, 0.1, 2.9, 0.75]
        var model = try oneNodeModel("DynamicQuantizeLinear", inputs: [("x", .float32, [7])], initializers: [], operands: ["x"], output: (.uint8, [7]))
        var proto = try Onnx_ModelProto(serializedBytes: model)
        proto.graph.node[0].output = ["y", "scale", "zero"]
        proto.graph.output += [onnxValueInfo("scale", .float32, []), onnxValueInfo("zero", .uint8, [])]
        model = try proto.serializedData()
        let imported = try ONNXImporter.load(model)
        let out = try Compiler.compile(imported.graph, outputs: imported.outputs).run(["x": try HostTensor(shape: [7], scalars: x)])
        let scale: Float = 3 / 255
        #expect(try out["scale"]?.scalars == [scale])
        #expect(try out["zero"]?.values(as: UInt8.self) == [0])
        #expect(try out["y"]?.values(as: UInt8.self) == x.map { UInt8(($0 / scale).rounded(.toNearestOrEven)) })
    }

    @Test func aScaleOfTheWrongLengthIsAMalformedModel() throws {
        let model = try oneNodeModel("DequantizeLinear", inputs: [("q", .int8, [2, 3])],
                                     initializers: [("scale", try HostTensor(shape: [2], scalars: [1, 2]))],
                                     operands: ["q", "scale"], attributes: ["axis": 1], output: (.float32, [2, 3]))
        #expect {
            _ = try ONNXImporter.load(model)
        } throws: { error in
            guard case let LatheError.malformedModel(message) = error else { return false }
            return message.contains("DequantizeLinear node 'n'") && message.contains("2 values for axis 1 of size 3")
        }
    }
}
