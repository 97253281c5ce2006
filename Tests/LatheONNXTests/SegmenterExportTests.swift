import Foundation
import Lathe
import LatheONNX
import Testing

/// A segmentation network exported from PyTorch with symbolic batch, height and width, whose
/// decoder resizes bilinearly, to the nearest and bicubically (tools/mksegmenter.py), and ONNX
/// Runtime's outputs at two input sizes.
private let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Data/segmenter")

@Suite("A PyTorch export with Resize and symbolic sizes, against ONNX Runtime")
struct SegmenterExportTests {
    @Test("each input size compiles once and matches ONNX Runtime to 1e-4", arguments: [1, 2])
    func matchesOnnxRuntimeAtTwoSizes(threads: Int) throws {
        let model = try ONNXModel(contentsOf: folder.appendingPathComponent("segmenter.onnx"), options: CompileOptions(threads: threads))
        #expect(model.openInputs == ["image"] && model.compiledCount == 0)
        for size in ["1x3x32x48", "2x3x40x24", "1x3x32x48"] {
            let image = try HostTensor(npyFile: folder.appendingPathComponent("segmenter.\(size).image.npy"))
            let expected = try HostTensor(npyFile: folder.appendingPathComponent("segmenter.\(size).expected.npy"))
            let got = try model.run(["image": image])["logits"]!
            #expect(got.shape == expected.shape)
            var worst: Float = 0, scale: Float = 0
            for (a, b) in zip(got.scalars, expected.scalars) { (worst, scale) = (max(worst, abs(a - b)), max(scale, abs(b))) }
            #expect(worst / scale <= 1e-4, "\(size): max |diff| / max |ref| = \(worst / scale)")
        }
        #expect(model.compiledCount == 2, "the first size again reuses its compiled model")
    }
}
