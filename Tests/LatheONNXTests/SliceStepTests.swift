import Foundation
import Lathe
import LatheONNX
import Testing

/// Y = Slice(X, starts, ends, axes, steps), the four as int64 initializers.
func sliceModel(input: [Int], starts: [Int64], ends: [Int64], axes: [Int64], steps: [Int64]) -> Data {
    let operands = [("starts", starts), ("ends", ends), ("axes", axes), ("steps", steps)].map { name, values in
        var t = Onnx_TensorProto()
        (t.name, t.dataType, t.dims, t.int64Data) = (name, 7, [Int64(values.count)], values)
        return t
    }
    return oneNodeModel("Slice", inputs: ["X", "starts", "ends", "axes", "steps"], x: onnxValueInfo("X", .float32, input), initializers: operands)
}

@Suite("Slice with negative steps")
struct SliceStepTests {
    let x = try! HostTensor(shape: [3, 5], scalars: (0..<15).map(Float.init))

    func run(_ starts: [Int64], _ ends: [Int64], _ axes: [Int64], _ steps: [Int64]) throws -> HostTensor {
        try ONNXModel(sliceModel(input: [3, 5], starts: starts, ends: ends, axes: axes, steps: steps)).run(["X": x])["Y"]!
    }

    @Test("a negative step walks back from the start (clamped to the last) to the end (exclusive, -1 the lowest)")
    func negativeSteps() throws {
        let flipped = try run([-1, -1], [Int64.min, Int64.min], [0, 1], [-1, -1])
        #expect(flipped.shape == [3, 5] && flipped.scalars == (0..<15).reversed().map(Float.init))
        let everyOther = try run([100], [0], [1], [-2])
        #expect(everyOther.shape == [3, 2] && everyOther.scalars == [4, 2, 9, 7, 14, 12])
        let mixed = try run([1, 3], [3, -100], [0, 1], [1, -3])
        #expect(mixed.shape == [2, 2] && mixed.scalars == [8, 5, 13, 10])
        #expect(throws: LatheError.self) { try run([0], [5], [1], [0]) }
    }
}
