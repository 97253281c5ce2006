import Foundation
import Lathe
import LatheONNX
import Testing

/// Y = Resize(X, roi, scales, sizes) with the given attributes: roi and sizes initializers.
func resizeModel(input: [Int], dtype: DType = .float32, roi: [Float] = [], sizes: [Int64], attributes: [String: String]) -> Data {
    var roiTensor = Onnx_TensorProto()
    (roiTensor.name, roiTensor.dataType, roiTensor.dims, roiTensor.floatData) = ("roi", 1, [Int64(roi.count)], roi)
    var sizesTensor = Onnx_TensorProto()
    (sizesTensor.name, sizesTensor.dataType, sizesTensor.dims, sizesTensor.int64Data) = ("sizes", 7, [Int64(sizes.count)], sizes)
    let strings = attributes.sorted { $0.key < $1.key }.map { name, value in
        var attribute = Onnx_AttributeProto()
        (attribute.name, attribute.type, attribute.s) = (name, .string, Data(value.utf8))
        return attribute
    }
    return oneNodeModel("Resize", inputs: ["X", "roi", "", "sizes"], x: onnxValueInfo("X", dtype, input), initializers: [roiTensor, sizesTensor],
                        attributes: strings)
}

@Suite("Resize: rounding of integer types, and bad sizes or roi refused")
struct ResizeTests {
    @Test("a linear resize of uint8 rounds to the nearest, as ONNX's reference, not down")
    func integerTypesRound() throws {
        let model = try ONNXModel(resizeModel(input: [1, 1, 1, 2], dtype: .uint8, sizes: [1, 1, 1, 4], attributes: ["mode": "linear"]))
        let y = try model.run(["X": try HostTensor(shape: [1, 1, 1, 2], values: [0, 255] as [UInt8])])["Y"]!
        #expect(try y.values(as: UInt8.self) == [0, 64, 191, 255])
    }

    @Test("sizes past what a tensor may hold, or a roi that is not finite, are typed errors")
    func badSizesAndRoi() throws {
        #expect(throws: LatheError.self) { try ONNXModel(resizeModel(input: [1, 1, 2, 2], sizes: [1, 1, 1 << 40, 1 << 40], attributes: [:])) }
        #expect(throws: LatheError.self) {
            try ONNXModel(resizeModel(input: [1, 1, 2, 2], roi: [0, 0, 0, 0, 1, 1, .infinity, 1], sizes: [1, 1, 3, 3],
                                      attributes: ["coordinate_transformation_mode": "tf_crop_and_resize"]))
        }
        #expect(throws: LatheError.self) {
            try ONNXModel(resizeModel(input: [1, 1, 0, 2], sizes: [1, 1, 4, 4], attributes: ["keep_aspect_ratio_policy": "not_larger"]))
        }
    }
}
