import Foundation

/// Where a fit is: reported after every few batches.
public struct TrainingProgress: Sendable {
    public let epoch: Int, epochs: Int
    public let batch: Int, batches: Int
    /// Mean loss and accuracy (classification only) over the epoch's batches so far.
    public let loss: Float
    public let accuracy: Float?
    public let examplesPerSecond: Double
}

/// One epoch's figures.
public struct EpochSummary: Sendable, Codable {
    public let epoch: Int
    public let trainLoss: Float
    public let trainAccuracy: Float?
    public let testLoss: Float?
    public let testAccuracy: Float?
    public let seconds: Double
    public let examplesPerSecond: Double

    public init(epoch: Int, trainLoss: Float, trainAccuracy: Float?, testLoss: Float?, testAccuracy: Float?, seconds: Double, examplesPerSecond: Double) {
        (self.epoch, self.trainLoss, self.trainAccuracy, self.testLoss, self.testAccuracy) = (epoch, trainLoss, trainAccuracy, testLoss, testAccuracy)
        (self.seconds, self.examplesPerSecond) = (seconds, examplesPerSecond)
    }
}

/// Fits a model with a compiled training step: batches drawn in a seeded shuffle each epoch
/// (the last partial batch is left for a later epoch's shuffle), evaluation on held-out data
/// by the same model compiled for inference, and the weights saved and loaded by name.
public final class Trainer {
    public let model: any Layer
    public let loss: Loss
    public let batchSize: Int
    public let step: TrainingStep
    public let threads: Int
    /// Every epoch fit so far.
    public private(set) var history: [EpochSummary] = []
    /// The loss of every batch fit so far, in order.
    public private(set) var batchLosses: [Float] = []
    private let exampleShape: [Int], targetShape: [Int]
    private var shuffle: SeededGenerator

    public init(model: any Layer, exampleShape: [Int], targetShape: [Int], loss: Loss, optimizer: Optimizer, batchSize: Int,
                l1: Float = 0, l2: Float = 0, seed: UInt64 = 0, threads: Int = 1) throws {
        guard batchSize > 0 else { throw LatheError.invalidAttribute(op: "trainer", reason: "the batch size must be positive", location: .unknown) }
        self.model = model
        self.loss = loss
        self.batchSize = batchSize
        self.threads = threads
        self.exampleShape = exampleShape
        self.targetShape = targetShape
        shuffle = SeededGenerator(seed: seed &+ 1)
        step = try TrainingStep(model: model, inputShape: [batchSize] + exampleShape, targetShape: [batchSize] + targetShape, loss: loss,
                                optimizer: optimizer, l1: l1, l2: l2, seed: seed, threads: threads)
    }

    /// Trains for `epochs` passes over `data`, evaluating on `validation` after each; `progress`
    /// hears every tenth batch, `epochEnded` each epoch's summary. Epochs count on from earlier fits.
    @discardableResult
    public func fit(_ data: Dataset, epochs: Int, validation: Dataset? = nil, progress: ((TrainingProgress) -> Void)? = nil,
                    epochEnded: ((EpochSummary) -> Void)? = nil) throws -> [EpochSummary] {
        try check(data)
        let batches = data.count / batchSize
        guard batches > 0 else { throw LatheError.invalidAttribute(op: "trainer", reason: "\(data.count) examples make no batch of \(batchSize)", location: .unknown) }
        let (x, t) = (exampleShape.reduce(1, *), targetShape.reduce(1, *))
        var input = [Float](repeating: 0, count: batchSize * x), target = [Float](repeating: 0, count: batchSize * t)
        var prediction = [Float](repeating: 0, count: step.predictionCount)
        var summaries: [EpochSummary] = []
        let earlier = history.count
        guard epochs > 0 else { return [] }
        for epoch in (earlier + 1)...(earlier + epochs) {
            var order = Array(0..<data.count)
            order.shuffle(using: &shuffle)
            let start = ContinuousClock.now
            var lossSum = 0.0, correct = 0, seen = 0
            for b in 0..<batches {
                for (row, example) in order[(b * batchSize)..<((b + 1) * batchSize)].enumerated() {
                    input[(row * x)..<((row + 1) * x)] = data.inputs.scalars[(example * x)..<((example + 1) * x)]
                    target[(row * t)..<((row + 1) * t)] = data.targets.scalars[(example * t)..<((example + 1) * t)]
                }
                let batchLoss = try input.withUnsafeBufferPointer { xs in
                    try target.withUnsafeBufferPointer { ts in try prediction.withUnsafeMutableBufferPointer { try step.run(input: xs, target: ts, prediction: $0) } }
                }
                batchLosses.append(batchLoss)
                lossSum += Double(batchLoss)
                correct += correctCount(prediction, target) ?? 0
                seen += batchSize
                if let progress, b % 10 == 9 || b == batches - 1 {
                    progress(TrainingProgress(epoch: epoch, epochs: earlier + epochs, batch: b + 1, batches: batches, loss: Float(lossSum / Double(b + 1)),
                                              accuracy: isClassifier ? Float(correct) / Float(seen) : nil, examplesPerSecond: Double(seen) / seconds(since: start)))
                }
            }
            let trainSeconds = seconds(since: start)
            let test = try validation.map { try evaluate($0) }
            let summary = EpochSummary(epoch: epoch, trainLoss: Float(lossSum / Double(batches)),
                                       trainAccuracy: isClassifier ? Float(correct) / Float(seen) : nil, testLoss: test?.loss, testAccuracy: test?.accuracy,
                                       seconds: trainSeconds, examplesPerSecond: Double(seen) / trainSeconds)
            history.append(summary)
            summaries.append(summary)
            epochEnded?(summary)
        }
        return summaries
    }

    /// The mean loss (and accuracy, for a classifier) on `data`, by the model compiled for
    /// inference with the weights learned so far. It runs in batches of the largest divisor
    /// of the data's size up to 1000, so that no example is left out or padded.
    public func evaluate(_ data: Dataset) throws -> (loss: Float, accuracy: Float?) {
        try check(data)
        try step.writeBack()
        let batch = (1...min(1000, max(data.count, 1))).last { data.count % $0 == 0 } ?? 1
        let g = Graph()
        let x = try g.input("input", shape: [batch] + exampleShape)
        let target = try g.input("target", shape: [batch] + targetShape)
        let prediction = try model(x)
        let total = try loss(prediction, target, reduction: .sum)
        let compiled = try g.compile(outputs: ["loss": total, "prediction": prediction], options: CompileOptions(threads: threads))
        let (xs, ts) = (exampleShape.reduce(1, *), targetShape.reduce(1, *))
        var lossSum = 0.0, correct = 0
        for b in 0..<(data.count / batch) {
            let feeds = ["input": try HostTensor(shape: [batch] + exampleShape, scalars: Array(data.inputs.scalars[(b * batch * xs)..<((b + 1) * batch * xs)])),
                         "target": try HostTensor(shape: [batch] + targetShape, scalars: Array(data.targets.scalars[(b * batch * ts)..<((b + 1) * batch * ts)]))]
            let out = try compiled.run(feeds)
            lossSum += Double(out["loss"]!.scalars[0])
            correct += correctCount(out["prediction"]!.scalars, feeds["target"]!.scalars) ?? 0
        }
        return (Float(lossSum / Double(data.count)), isClassifier ? Float(correct) / Float(data.count) : nil)
    }

    /// Writes the learned weights (and BatchNorm's statistics) as safetensors.
    public func saveWeights(to url: URL) throws { try WeightFile.write(step.weights(), to: url) }

    /// Loads weights saved by `saveWeights` into the step and the model's layers.
    public func loadWeights(from url: URL) throws {
        try step.load(WeightFile.read(url))
        try step.writeBack()
    }

    /// Classification: one distribution over classes for softmax cross-entropy, or one output
    /// for binary cross-entropy (an autoencoder's pixels are not classes).
    private var isClassifier: Bool {
        switch loss {
        case .softmaxCrossEntropy: return targetShape.count == 1
        case .binaryCrossEntropy: return targetShape.reduce(1, *) == 1
        case .meanSquaredError: return false
        }
    }

    /// Examples whose predicted class is the target's: the argmax over the last axis, or for
    /// one output, which side of the threshold (0 for logits, 0.5 for probabilities).
    private func correctCount(_ prediction: [Float], _ target: [Float]) -> Int? {
        guard isClassifier, let classes = targetShape.last, classes > 0, prediction.count == target.count else { return nil }
        // One row per example: `classes` values each.
        var correct = 0
        for row in 0..<(target.count / classes) {
            let p = prediction[(row * classes)..<((row + 1) * classes)], t = target[(row * classes)..<((row + 1) * classes)]
            if classes == 1 {
                let threshold: Float
                if case .binaryCrossEntropy(fromLogits: true) = loss { threshold = 0 } else { threshold = 0.5 }
                if (p.first! > threshold) == (t.first! > 0.5) { correct += 1 }
            } else if p.indices.max(by: { p[$0] < p[$1] }) == t.indices.max(by: { t[$0] < t[$1] }) {
                correct += 1
            }
        }
        return correct
    }

    private func check(_ data: Dataset) throws {
        guard data.exampleShape == exampleShape, data.targetShape == targetShape else {
            throw LatheError.shapeMismatch(op: "trainer", shapes: [data.exampleShape, data.targetShape, exampleShape, targetShape],
                                           reason: "the data's examples and targets do not have the model's shapes", location: .unknown)
        }
    }

    private func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
