import Foundation
import Lathe
import LatheONNX
import Testing

/// The model set of tools/mkmodelset.py: real architectures from torchvision, transformers and
/// Ultralytics (random weights, small configurations) and ONNX Runtime's quantizer, each with
/// ONNX Runtime's outputs for one or two input sizes (Tests/Data/modelset/manifest.json).
private let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Data/modelset")

/// One model of the manifest.
struct ModelSetEntry: Decodable, CustomStringConvertible {
    struct Output: Decodable {
        let name: String, file: String, shape: [Int], dtype: String
        /// A quantized output's quantization step: results within one step of ONNX Runtime's.
        let step: Float?
    }
    struct Run: Decodable {
        let inputs: [String: String]
        let outputs: [Output]
    }
    let name: String, file: String, tolerance: Float, quantized: Bool
    let runs: [Run]
    var description: String { name }

    static func all() throws -> [ModelSetEntry] {
        try JSONDecoder().decode([ModelSetEntry].self, from: Data(contentsOf: folder.appendingPathComponent("manifest.json")))
    }
}

@Suite("The model set: real exports against ONNX Runtime")
struct ModelSetTests {
    @Test func theSetCoversItsArchitectures() throws {
        #expect(try ModelSetEntry.all().count >= 16)
    }

    /// Each model at each of its input sizes, through one ONNXModel (which compiles a size the
    /// first time it sees it, a staged model each stage), on two threads.
    @Test(arguments: try ModelSetEntry.all())
    func matchesOnnxRuntime(_ entry: ModelSetEntry) throws {
        let model = try ONNXModel(contentsOf: folder.appendingPathComponent(entry.file), options: CompileOptions(threads: 2))
        // The first size again after the others: it reuses what it compiled.
        var compiledAfterEachSize: [Int] = []
        for (k, run) in (entry.runs + entry.runs.prefix(1)).enumerated() {
            let feeds = try run.inputs.mapValues { try HostTensor(npyFile: folder.appendingPathComponent($0)) }
            let outputs = try model.run(feeds)
            compiledAfterEachSize.append(model.compiledCount)
            for expected in run.outputs {
                let want = try HostTensor(npyFile: folder.appendingPathComponent(expected.file))
                let got = try #require(outputs[expected.name], "\(entry.name) run \(k): no output \(expected.name)")
                #expect(got.shape == want.shape, "\(entry.name) run \(k) \(expected.name)")
                guard got.shape == want.shape else { continue }
                if want.dtype.isFloatingPoint {
                    let (a, b) = (try got.converted(to: .float32).scalars, try want.converted(to: .float32).scalars)
                    let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0, scale = b.map(abs).max() ?? 0
                    if let step = expected.step {
                        #expect(worst <= step * 1.001, "\(entry.name) run \(k) \(expected.name): max |diff| \(worst), step \(step)")
                    } else {
                        #expect(worst <= entry.tolerance * max(scale, 1e-6), "\(entry.name) run \(k) \(expected.name): max |diff| / max |ref| = \(worst / max(scale, 1e-30))")
                    }
                } else {
                    #expect(got.rawBytes == want.rawBytes, "\(entry.name) run \(k) \(expected.name): integer results differ")
                }
            }
        }
        #expect(compiledAfterEachSize.last == compiledAfterEachSize.dropLast().last, "\(entry.name): compiled \(compiledAfterEachSize)")
    }
}
