import Foundation
import Lathe
import LatheONNX

/// Transfer learning as the courses teach it, on MNIST: a CNN learns the digits 0-4 and is
/// exported to ONNX; the export, cut after its convolutional base and frozen, is imported as a
/// layer under a new head, which alone learns the digits 5-9 (`lathe train transfer-mnist`).
///
///     let base = try ONNXLayer(contentsOf: onnxFile, upTo: "flatten1")
///     base.trainable = false
///     let model = Sequential { base; Dense(128, activation: .relu); Dropout(0.5); Dense(5, activation: .softmax) }
public enum TransferMNIST {
    /// What a run did: accuracies, where the export went, and what a step costs.
    public struct Report: Sendable {
        /// Test accuracy of the first model on the digits 0-4, and of the new head on 5-9.
        public let baseAccuracy: Float, transferAccuracy: Float
        public let exported: URL
        /// Milliseconds, medians of timed steps at the batch size: the frozen model's training
        /// step; the base's forward pass alone (compiled for inference); the head's whole
        /// training step alone, on the base's features.
        public let frozenStepMs: Double, baseForwardMs: Double, headStepMs: Double
        /// Whether the base computes the same features, bit for bit, after the head's training,
        /// and whether the head's weights changed.
        public let baseUnchanged: Bool, headChanged: Bool
    }

    /// The convolutional base (ending in the Flatten the head is cut at) under a head of
    /// `classes`.
    static func firstModel(classes: Int) -> Sequential {
        Sequential {
            Conv2D(32, kernel: 3, activation: .relu); MaxPool2D(2)
            Conv2D(64, kernel: 3, activation: .relu); MaxPool2D(2)
            Flatten()
            Dense(128, activation: .relu); Dropout(0.5)
            Dense(classes, activation: .softmax)
        }
    }

    /// The name of the base's last node in the exported model: the first model's Flatten.
    public static let cut = "flatten1"

    /// Runs both stages on MNIST in `data` (the first `limit` training images if given),
    /// writing the export into `directory`; `log` hears each stage.
    public static func run(data: URL, directory: URL, epochs: Int = 1, batchSize: Int = 64, limit: Int? = nil, threads: Int = 2, seed: UInt64 = 0,
                           log: (String) -> Void = { _ in }) throws -> Report {
        let train = try MNIST.load(.train, from: data, limit: limit), test = try MNIST.load(.test, from: data)
        let (lowTrain, highTrain) = try digits(train), (lowTest, highTest) = try digits(test)

        let first = try Trainer(model: firstModel(classes: 5), exampleShape: [1, 28, 28], targetShape: [5], loss: .softmaxCrossEntropy,
                                optimizer: .adam(learningRate: 1e-3), batchSize: batchSize, seed: seed, threads: threads)
        try first.fit(lowTrain, epochs: epochs)
        let baseAccuracy = try first.evaluate(lowTest).accuracy ?? 0
        log(String(format: "digits 0-4: %d training images, test accuracy %.2f%%", lowTrain.count, baseAccuracy * 100))

        let g = Graph()
        let probabilities = try first.model(try g.input("image", shape: [1, 1, 28, 28]))
        let exported = directory.appendingPathComponent("mnist-digits-0-4.onnx")
        try ONNXExporter.export(g, outputs: [("probs", probabilities.id)], symbolicBatch: true).write(to: exported)
        log("exported to \(exported.path); imported up to '\(cut)', frozen")

        let base = try ONNXLayer(contentsOf: exported, upTo: cut)
        base.trainable = false
        let hidden = Dense(128, activation: .relu)
        let model = Sequential { base; hidden; Dropout(0.5); Dense(5, activation: .softmax) }
        let probe = HostTensor.random(shape: [batchSize, 1, 28, 28], seed: seed &+ 7, in: 0...1)
        let before = try features(base, probe, threads: threads)
        let transfer = try Trainer(model: model, exampleShape: [1, 28, 28], targetShape: [5], loss: .softmaxCrossEntropy,
                                   optimizer: .adam(learningRate: 1e-3), batchSize: batchSize, seed: seed, threads: threads)
        let headBefore = hidden.parameters.weight?.scalars
        try transfer.fit(highTrain, epochs: epochs)
        let transferAccuracy = try transfer.evaluate(highTest).accuracy ?? 0
        let baseUnchanged = try features(base, probe, threads: threads).scalars == before.scalars
        let headChanged = hidden.parameters.weight?.scalars != headBefore
        log(String(format: "digits 5-9 (labels 0-4): %d training images, test accuracy %.2f%%, base %@", highTrain.count, transferAccuracy * 100,
                   baseUnchanged ? "unchanged" : "CHANGED"))

        // What a step costs: the frozen model's, against the base's forward pass plus the head's
        // own training step on features of the base's width.
        let input = try lowTrain.prefix(batchSize).inputs, target = try highTrain.prefix(batchSize).targets
        let forward = try compiledForward(base, batch: batchSize, threads: threads)
        let width = before.shape[1]
        let headAlone = try TrainingStep(model: Sequential { Dense(128, activation: .relu); Dropout(0.5); Dense(5, activation: .softmax) },
                                         inputShape: [batchSize, width], targetShape: [batchSize, 5], loss: .softmaxCrossEntropy,
                                         optimizer: .adam(learningRate: 1e-3), seed: seed, threads: threads)
        let headFeatures = HostTensor.random(shape: [batchSize, width], seed: seed, in: 0...1)
        // The three in interleaved rounds (3 untimed, then 40), each figure the median of its runs.
        let runs: [() throws -> Void] = [{ _ = try transfer.step.run(input: input, target: target) }, { _ = try forward.run(["image": input]) },
                                         { _ = try headAlone.run(input: headFeatures, target: target) }]
        _ = try Timings.interleaved(3, runs)
        let medians = try Timings.interleaved(40, runs).map { $0.median * 1000 }
        let (frozenStep, baseForward, headStep) = (medians[0], medians[1], medians[2])
        log(String(format: "a step of batch %d: frozen model %.3f ms; base forward %.3f ms + head step %.3f ms = %.3f ms", batchSize,
                   frozenStep, baseForward, headStep, baseForward + headStep))
        return Report(baseAccuracy: baseAccuracy, transferAccuracy: transferAccuracy, exported: exported, frozenStepMs: frozenStep,
                      baseForwardMs: baseForward, headStepMs: headStep, baseUnchanged: baseUnchanged, headChanged: headChanged)
    }

    /// The examples of digits 0-4 and of 5-9, each with five one-hot classes (5-9 as 0-4).
    static func digits(_ data: Dataset) throws -> (low: Dataset, high: Dataset) {
        let pixels = data.exampleShape.reduce(1, *)
        let (images, targets) = (data.inputs.scalars, data.targets.scalars)
        var parts: [(images: [Float], labels: [Float])] = [([], []), ([], [])]
        for i in 0..<data.count {
            let row = targets[(i * 10)..<((i + 1) * 10)]
            guard let digit = row.firstIndex(of: 1).map({ $0 - i * 10 }) else { continue }
            let part = digit < 5 ? 0 : 1
            parts[part].images += images[(i * pixels)..<((i + 1) * pixels)]
            var label = [Float](repeating: 0, count: 5)
            label[digit % 5] = 1
            parts[part].labels += label
        }
        let sets = try parts.map { part in
            try Dataset(inputs: HostTensor(shape: [part.labels.count / 5] + data.exampleShape, scalars: part.images),
                        targets: HostTensor(shape: [part.labels.count / 5, 5], scalars: part.labels))
        }
        return (sets[0], sets[1])
    }

    static func compiledForward(_ layer: any Layer, batch: Int, threads: Int) throws -> CompiledModel {
        let g = Graph()
        let y = try layer(try g.input("image", shape: [batch, 1, 28, 28]))
        return try g.compile(outputs: ["features": y], options: CompileOptions(threads: threads))
    }

    /// The base's output for `images`, by the base compiled for inference.
    static func features(_ layer: any Layer, _ images: HostTensor, threads: Int) throws -> HostTensor {
        let compiled = try compiledForward(layer, batch: images.shape[0], threads: threads)
        guard let out = try compiled.run(["image": images])["features"] else { throw LatheError.missingInput(name: "features") }
        return out
    }
}
