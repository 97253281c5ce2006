import Foundation
import Lathe
import LatheExamples
import Testing

/// The committed MNIST subset: 2,000 training and 500 test images.
let mnistSubset = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Data/mnist-subset")

@Suite("Trainer, MNIST and weight files")
struct TrainerTests {
    @Test("the IDX loader reads the gzip subset: shapes, pixel range, one-hot labels")
    func loadsMNIST() throws {
        let train = try MNIST.load(.train, from: mnistSubset)
        #expect(train.inputs.shape == [2000, 1, 28, 28])
        #expect(train.targets.shape == [2000, 10])
        #expect(train.inputs.scalars.allSatisfy { (0...1).contains($0) })
        #expect(train.inputs.scalars.contains(1))
        var counts = [Int](repeating: 0, count: 10)
        for row in 0..<2000 {
            let label = try #require((0..<10).first { train.targets.scalars[row * 10 + $0] == 1 })
            #expect(train.targets.scalars[(row * 10)..<(row * 10 + 10)].reduce(0, +) == 1)
            counts[label] += 1
        }
        #expect(counts.allSatisfy { (150...260).contains($0) }, "\(counts)")
        #expect(try MNIST.load(.test, from: mnistSubset, limit: 100).count == 100)
    }

    @Test("plain IDX files read the same; a missing or damaged file is a clear error")
    func plainAndBadFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-idx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let gz = try IDXFile.read(mnistSubset.appendingPathComponent("t10k-labels-idx1-ubyte"))
        var plain = Data([0, 0, 8, 1, 0, 0, 1, 244])
        plain.append(contentsOf: gz.bytes)
        try plain.write(to: dir.appendingPathComponent("labels"))
        #expect(try IDXFile.read(dir.appendingPathComponent("labels")).bytes == gz.bytes)
        #expect { _ = try IDXFile.read(dir.appendingPathComponent("nothing")) } throws: { "\($0)".contains("neither") }
        try Data([0, 0, 8, 1, 0, 0, 9, 0, 1, 2]).write(to: dir.appendingPathComponent("short"))
        #expect { _ = try IDXFile.read(dir.appendingPathComponent("short")) } throws: { "\($0)".contains("the header promises 2304") }
        try Data("not idx".utf8).write(to: dir.appendingPathComponent("text"))
        #expect { _ = try IDXFile.read(dir.appendingPathComponent("text")) } throws: { "\($0)".contains("not an IDX file") }
    }

    @Test("the MNIST MLP learns the subset; saved weights load back and into the inference model")
    func fitSaveLoad() throws {
        var (train, test) = (try MNIST.load(.train, from: mnistSubset), try MNIST.load(.test, from: mnistSubset))
        train = try Dataset(inputs: HostTensor(shape: [2000, 784], scalars: train.inputs.scalars), targets: train.targets)
        test = try Dataset(inputs: HostTensor(shape: [500, 784], scalars: test.inputs.scalars), targets: test.targets)
        let trainer = try Trainer(model: Examples.mnistMLPLayers(), exampleShape: [784], targetShape: [10], loss: .softmaxCrossEntropy,
                                  optimizer: .adam(learningRate: 2e-3), batchSize: 50, seed: 1, threads: 2)
        var reported = 0
        let epochs = try trainer.fit(train, epochs: 3, validation: test, progress: { _ in reported += 1 })
        #expect(epochs.map(\.epoch) == [1, 2, 3])
        #expect(reported == 3 * 4)
        let last = try #require(epochs.last)
        #expect(try #require(last.testAccuracy) > 0.85, "\(epochs)")
        #expect(last.trainLoss < epochs[0].trainLoss)
        #expect(trainer.batchLosses.count == 3 * 40)

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-mlp-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: file) }
        try trainer.saveWeights(to: file)
        let saved = try WeightFile.read(file)
        #expect(Set(saved.keys) == ["dense1.weight", "dense1.bias", "dense2.weight", "dense2.bias", "dense3.weight", "dense3.bias"])
        #expect(saved["dense1.weight"]?.shape == [784, 128])

        // A fresh trainer with the saved weights evaluates the same.
        let again = try Trainer(model: Examples.mnistMLPLayers(), exampleShape: [784], targetShape: [10], loss: .softmaxCrossEntropy,
                                optimizer: .adam(), batchSize: 50, seed: 9, threads: 1)
        try again.loadWeights(from: file)
        let (a, b) = (try trainer.evaluate(test), try again.evaluate(test))
        #expect(abs(a.loss - b.loss) < 1e-5 && a.accuracy == b.accuracy)

        // The built-in inference model with the weights: the trainer's predictions.
        let (graph, outputs) = try Examples.mnistMLP.graph(batch: 500)
        try graph.loadWeights(saved)
        let probs = try graph.compile(outputs: outputs).run(["image": test.inputs])["probs"]!
        var correct = 0
        for row in 0..<500 {
            let p = probs.scalars[(row * 10)..<(row * 10 + 10)], t = test.targets.scalars[(row * 10)..<(row * 10 + 10)]
            if p.indices.max(by: { p[$0] < p[$1] }) == t.indices.max(by: { t[$0] < t[$1] }) { correct += 1 }
        }
        #expect(Float(correct) / 500 == a.accuracy)
    }

    @Test("every built-in training set-up builds its step and trains a few batches", arguments: Examples.training.map(\.name))
    func trainingExamples(_ name: String) throws {
        let example = try #require(Examples.trainingNamed(name))
        let (train, _) = try example.data(mnistSubset, 64, 3)
        let trainer = try Trainer(model: example.layers(), exampleShape: train.exampleShape, targetShape: train.targetShape, loss: example.loss,
                                  optimizer: example.optimizer, batchSize: 16, threads: 2)
        let summary = try #require(try trainer.fit(try train.prefix(64), epochs: 1).first)
        #expect(summary.trainLoss.isFinite && trainer.batchLosses.count == 4, "\(name): \(trainer.batchLosses)")
    }

    @Test("a damaged weight file or a stranger weight is refused")
    func badWeights() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-bad-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data([200, 0, 0, 0, 0, 0, 0, 0, 123]).write(to: file)
        #expect { _ = try WeightFile.read(file) } throws: { "\($0)".contains("the header runs past the end") }
        try WeightFile.write([("other.weight", HostTensor(shape: [2], repeating: 1))], to: file)
        let (graph, _) = try Examples.mnistMLP.graph(batch: 1)
        #expect { try graph.loadWeights(WeightFile.read(file)) } throws: { "\($0)".contains("other.weight") }
    }

    @Test("safetensors keep every element type; a weight of another type than its constant is refused")
    func typedWeights() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-typed-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: file) }
        let tensors: [(name: String, value: HostTensor)] = [
            ("f32", HostTensor.random(shape: [2, 3], seed: 1)),
            ("ids", try HostTensor(shape: [3], values: [Int64(9_007_199_254_740_993), -1, 0])),
            ("half", try HostTensor(shape: [2], values: [Float16(0.5), -2])),
            ("mask", try HostTensor(shape: [4], values: [true, false, false, true])),
            ("bytes", try HostTensor(shape: [1, 2], values: [UInt8(7), 255])),
        ]
        try WeightFile.write(tensors, to: file)
        let back = try WeightFile.read(file)
        for (name, value) in tensors { #expect(back[name] == value, "\(name)") }
        let (graph, _) = try Examples.mnistMLP.graph(batch: 1)
        let weight = try #require(graph.nodes.first { if case .constant = $0.op { return true } else { return false } })
        let typed = try HostTensor(shape: weight.type.shape, values: [Float64](repeating: 0, count: weight.type.count))
        #expect(throws: LatheError.inputElementTypeMismatch(name: weight.name, expected: .float32, got: .float64)) {
            try graph.loadWeights([weight.name: typed])
        }
    }

    @Test("the training plot is an SVG with the curves")
    func plot() {
        let history = (1...3).map { (e: Int) -> EpochSummary in
            let f = Float(e)
            return EpochSummary(epoch: e, trainLoss: 1 / f, trainAccuracy: 0.9 + f / 100, testLoss: 1.1 / f, testAccuracy: 0.89 + f / 100,
                                seconds: 1, examplesPerSecond: 100)
        }
        let svg = TrainingPlot.svg(title: "t", history: history, batchLosses: (1...30).map { 1 / Float($0) })
        #expect(svg.hasPrefix("<svg"))
        #expect(svg.components(separatedBy: "<polyline").count - 1 == 5)
        #expect(svg.contains("test 92.00% after epoch 3"))
    }
}
