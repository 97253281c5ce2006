import Foundation
import Lathe

/// A seed model's training set-up: its layers, loss, optimizer, batch and data, what
/// `lathe train NAME` runs.
public struct TrainingExample: Sendable {
    public let name: String
    public let summary: String
    public let layers: @Sendable () -> Sequential
    public let loss: Loss
    public let optimizer: Optimizer
    public let batchSize: Int
    public let epochs: Int
    /// Whether the data is MNIST, read from a directory (the others are generated).
    public let needsMNIST: Bool
    /// The training and test sets: from MNIST in `directory`, or generated from `seed`; the
    /// first `limit` training examples only if given.
    public let data: @Sendable (_ directory: URL?, _ limit: Int?, _ seed: UInt64) throws -> (train: Dataset, test: Dataset)
}

extension Examples {
    public static let training: [TrainingExample] = [mnistCNNTraining, mnistMLPTraining, simpleNNTraining, lstmTimeSeriesTraining, convAutoencoderTraining]

    public static func trainingNamed(_ name: String) -> TrainingExample? { training.first { $0.name == name } }

    static let mnistCNNTraining = TrainingExample(
        name: "mnist-cnn", summary: "the Keras MNIST CNN with dropout, softmax cross-entropy, Adam 1e-3, batch 128", layers: { mnistCNNLayers(dropout: true) },
        loss: .softmaxCrossEntropy, optimizer: .adam(learningRate: 1e-3), batchSize: 128, epochs: 5, needsMNIST: true) { directory, limit, _ in
            try mnist(directory, limit: limit, flat: false)
        }

    static let mnistMLPTraining = TrainingExample(
        name: "mnist-mlp", summary: "the Keras MNIST MLP, softmax cross-entropy, Adam 1e-3, batch 128", layers: { mnistMLPLayers() },
        loss: .softmaxCrossEntropy, optimizer: .adam(learningRate: 1e-3), batchSize: 128, epochs: 5, needsMNIST: true) { directory, limit, _ in
            try mnist(directory, limit: limit, flat: true)
        }

    static let convAutoencoderTraining = TrainingExample(
        name: "conv-autoencoder", summary: "MNIST images reconstructed, binary cross-entropy, Adam 1e-3, batch 64", layers: { convAutoencoderLayers() },
        loss: .binaryCrossEntropy(fromLogits: false), optimizer: .adam(learningRate: 1e-3), batchSize: 64, epochs: 3, needsMNIST: true) { directory, limit, _ in
            let (train, test) = try mnist(directory, limit: limit, flat: false)
            return (try Dataset(inputs: train.inputs, targets: train.inputs), try Dataset(inputs: test.inputs, targets: test.inputs))
        }

    /// SimpleNN on a fixed smooth function of 10 inputs, y = sum sin(0.3 k x_k) for k = 1...10.
    static let simpleNNTraining = TrainingExample(
        name: "simple-nn", summary: "regression of sum sin(0.3 k x_k) from 10 inputs, mean squared error, Adam 1e-3, batch 256", layers: { simpleNNLayers() },
        loss: .meanSquaredError, optimizer: .adam(learningRate: 1e-3), batchSize: 256, epochs: 20, needsMNIST: false) { _, limit, seed in
            func make(_ n: Int, _ seed: UInt64) throws -> Dataset {
                let x = HostTensor.random(shape: [n, 10], seed: seed, in: -1...1)
                var y = HostTensor(shape: [n, 1])
                for i in 0..<n { y.scalars[i] = (0..<10).reduce(0) { $0 + sin(0.3 * Float($1 + 1) * x.scalars[i * 10 + $1]) } }
                return try Dataset(inputs: x, targets: y)
            }
            return (try make(limit ?? 8192, seed), try make(2048, seed &+ 1))
        }

    /// The next value of a noisy sum of two sines from the 30 before it.
    static let lstmTimeSeriesTraining = TrainingExample(
        name: "lstm-timeseries", summary: "next value of a noisy two-sine series from 30 steps, mean squared error, Adam 1e-3, batch 16",
        layers: { lstmTimeSeriesLayers() }, loss: .meanSquaredError, optimizer: .adam(learningRate: 1e-3), batchSize: 16, epochs: 5, needsMNIST: false) { _, limit, seed in
            var rng = SeededGenerator(seed: seed)
            let series = (0..<6000).map { t in 0.6 * sin(Float(t) * 0.07) + 0.3 * sin(Float(t) * 0.23) + Float.random(in: -0.05...0.05, using: &rng) }
            func windows(_ range: Range<Int>) throws -> Dataset {
                let starts = Array(range)
                var x = HostTensor(shape: [starts.count, 30, 1]), y = HostTensor(shape: [starts.count, 1])
                for (i, s) in starts.enumerated() {
                    for k in 0..<30 { x.scalars[i * 30 + k] = series[s + k] }
                    y.scalars[i] = series[s + 30]
                }
                return try Dataset(inputs: x, targets: y)
            }
            return (try windows(0..<min(limit ?? 4800, 4800)), try windows(4800..<5960))
        }

    private static func mnist(_ directory: URL?, limit: Int?, flat: Bool) throws -> (train: Dataset, test: Dataset) {
        guard let directory else { throw LatheError.invalidAttribute(op: "train", reason: "MNIST training needs the data directory (--data DIR)", location: .unknown) }
        var train = try MNIST.load(.train, from: directory, limit: limit)
        var test = try MNIST.load(.test, from: directory)
        if flat {
            train = try Dataset(inputs: HostTensor(shape: [train.count, 784], scalars: train.inputs.scalars), targets: train.targets)
            test = try Dataset(inputs: HostTensor(shape: [test.count, 784], scalars: test.inputs.scalars), targets: test.targets)
        }
        return (train, test)
    }
}
