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
    /// The trainer's metrics on the validation data, by name (Metric.name).
    public let testMetrics: [String: Float]?

    public init(epoch: Int, trainLoss: Float, trainAccuracy: Float?, testLoss: Float?, testAccuracy: Float?, seconds: Double, examplesPerSecond: Double,
                testMetrics: [String: Float]? = nil) {
        (self.epoch, self.trainLoss, self.trainAccuracy, self.testLoss, self.testAccuracy) = (epoch, trainLoss, trainAccuracy, testLoss, testAccuracy)
        (self.seconds, self.examplesPerSecond, self.testMetrics) = (seconds, examplesPerSecond, testMetrics)
    }
}

/// A model's figures on held-out data (Trainer.evaluate).
public struct Evaluation: Sendable {
    public let loss: Float
    /// For a classifier.
    public let accuracy: Float?
    /// The trainer's metrics, by name (a classifier's).
    public let metrics: [String: Float]
}

/// Fits a model with a compiled training step: batches drawn in a seeded shuffle each epoch
/// (the last partial batch is left for a later epoch's shuffle), evaluation on held-out data
/// by the same model compiled for inference, and the weights saved and loaded by name. As in
/// Keras, a learning-rate schedule, early stopping on a validation figure with the best
/// weights restored, and a checkpoint each epoch are settings of the trainer.
///
///     trainer.schedule = .warmup(steps: 50, then: .cosine(steps: 1000))
///     trainer.earlyStopping = EarlyStopping(monitor: .validationAccuracy, patience: 2)
///     trainer.checkpoints = URL(fileURLWithPath: "checkpoints")
///     try trainer.fit(train, epochs: 20, validation: validation)
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
    /// The factor of the optimizer's learning rate at each step.
    public var schedule: LearningRateSchedule = .constant
    /// Stops a fit whose validation figure no longer improves (a fit then needs validation data).
    public var earlyStopping: EarlyStopping?
    /// A directory the weights are written to after each epoch, as epoch-N.safetensors.
    public var checkpoints: URL?
    /// Figures computed on the validation data after each epoch (classifiers).
    public var metrics: [Metric] = []
    /// The epoch whose weights an early stop restored, if one did.
    public private(set) var restoredEpoch: Int?
    private let exampleShape: [Int], targetShape: [Int]
    private var shuffle: SeededGenerator
    private let baseLearningRate: Float

    public init(model: any Layer, exampleShape: [Int], targetShape: [Int], loss: Loss, optimizer: Optimizer, batchSize: Int,
                l1: Float = 0, l2: Float = 0, clipping: GradientClipping? = nil, seed: UInt64 = 0, threads: Int = 1) throws {
        guard batchSize > 0 else { throw LatheError.invalidAttribute(op: "trainer", reason: "the batch size must be positive", location: .unknown) }
        self.model = model
        self.loss = loss
        self.batchSize = batchSize
        self.threads = threads
        self.exampleShape = exampleShape
        self.targetShape = targetShape
        shuffle = SeededGenerator(seed: seed &+ 1)
        step = try TrainingStep(model: model, inputShape: [batchSize] + exampleShape, targetShape: [batchSize] + targetShape, loss: loss,
                                optimizer: optimizer, l1: l1, l2: l2, clipping: clipping, seed: seed, threads: threads)
        baseLearningRate = optimizer.learningRate
    }

    /// Trains for `epochs` passes over `data` (fewer if it stops early), evaluating on
    /// `validation` after each; `progress` hears every tenth batch, `epochEnded` each epoch's
    /// summary. Epochs count on from earlier fits.
    @discardableResult
    public func fit(_ data: Dataset, epochs: Int, validation: Dataset? = nil, progress: ((TrainingProgress) -> Void)? = nil,
                    epochEnded: ((EpochSummary) -> Void)? = nil) throws -> [EpochSummary] {
        try check(data)
        if earlyStopping != nil, validation == nil {
            throw LatheError.invalidAttribute(op: "trainer", reason: "early stopping watches the validation data: give fit a validation set", location: .unknown)
        }
        if let checkpoints { try FileManager.default.createDirectory(at: checkpoints, withIntermediateDirectories: true) }
        var best: (value: Float, epoch: Int, weights: [String: HostTensor])?
        restoredEpoch = nil
        let batches = data.count / batchSize
        guard batches > 0 else { throw LatheError.invalidAttribute(op: "trainer", reason: "\(data.count) examples make no batch of \(batchSize)", location: .unknown) }
        let (x, t) = (exampleShape.reduce(1, *), targetShape.reduce(1, *))
        var input = [Float](repeating: 0, count: batchSize * x), target = [Float](repeating: 0, count: batchSize * t)
        var prediction = [Float](repeating: 0, count: step.predictionCount)
        var summaries: [EpochSummary] = []
        let earlier = history.count
        guard epochs > 0 else { return [] }
        // As floats once: targets of another type (integer class labels) convert per read.
        let (inputValues, targetValues) = (data.inputs.scalars, data.targets.scalars)
        for epoch in (earlier + 1)...(earlier + epochs) {
            var order = Array(0..<data.count)
            order.shuffle(using: &shuffle)
            let start = ContinuousClock.now
            var lossSum = 0.0, correct = 0, seen = 0
            for b in 0..<batches {
                for (row, example) in order[(b * batchSize)..<((b + 1) * batchSize)].enumerated() {
                    input[(row * x)..<((row + 1) * x)] = inputValues[(example * x)..<((example + 1) * x)]
                    target[(row * t)..<((row + 1) * t)] = targetValues[(example * t)..<((example + 1) * t)]
                }
                step.learningRate = baseLearningRate * schedule.factor(step: step.stepsRun)
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
                                       seconds: trainSeconds, examplesPerSecond: Double(seen) / trainSeconds,
                                       testMetrics: test.flatMap { $0.metrics.isEmpty ? nil : $0.metrics })
            history.append(summary)
            summaries.append(summary)
            epochEnded?(summary)
            if let checkpoints { try saveWeights(to: checkpoints.appendingPathComponent("epoch-\(epoch).safetensors")) }
            if let stop = earlyStopping, let value = stop.monitor.value(summary) {
                if best.map({ stop.monitor.improves(value, on: $0.value, by: stop.minDelta) }) ?? true {
                    best = (value, epoch, stop.restoreBest ? Dictionary(uniqueKeysWithValues: try step.weights().map { ($0.name, $0.value) }) : [:])
                } else if let kept = best, epoch - kept.epoch >= stop.patience {
                    if stop.restoreBest {
                        try step.load(kept.weights)
                        try step.writeBack()
                        restoredEpoch = kept.epoch
                    }
                    break
                }
            }
        }
        return summaries
    }

    /// The mean loss (and accuracy, for a classifier) on `data`, by the model compiled for
    /// inference with the weights learned so far. It runs in batches of the largest divisor
    /// of the data's size up to 1000, so that no example is left out or padded.
    public func evaluate(_ data: Dataset) throws -> Evaluation {
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
        var lossSum = 0.0, correct = 0, predictions: [Float] = []
        let (inputValues, targetValues) = (data.inputs.scalars, data.targets.scalars)
        for b in 0..<(data.count / batch) {
            let feeds = ["input": try HostTensor(shape: [batch] + exampleShape, scalars: Array(inputValues[(b * batch * xs)..<((b + 1) * batch * xs)])),
                         "target": try HostTensor(shape: [batch] + targetShape, scalars: Array(targetValues[(b * batch * ts)..<((b + 1) * batch * ts)]))]
            let out = try compiled.run(feeds)
            lossSum += Double(out["loss"]!.scalars[0])
            correct += correctCount(out["prediction"]!.scalars, feeds["target"]!.scalars) ?? 0
            if !metrics.isEmpty { predictions += out["prediction"]!.scalars }
        }
        var figures: [String: Float] = [:]
        if isClassifier, !metrics.isEmpty, let truth = classes(of: data) {
            let count = predictions.count / max(truth.count, 1)
            for metric in metrics { figures[metric.name] = metric.value(predictions: predictions, classes: count, truth: truth) }
        }
        return Evaluation(loss: Float(lossSum / Double(data.count)), accuracy: isClassifier ? Float(correct) / Float(data.count) : nil, metrics: figures)
    }

    /// Each example's true class: its index (sparse targets) or its one-hot row's argmax.
    private func classes(of data: Dataset) -> [Int]? {
        if case .sparseSoftmaxCrossEntropy = loss { return data.targets.scalars.map { Int(exactly: $0) ?? -1 } }
        guard let classes = targetShape.last, classes > 1, targetShape.count == 1 else { return nil }
        let t = data.targets.scalars
        return (0..<data.count).map { row in (0..<classes).max { t[row * classes + $0] < t[row * classes + $1] } ?? 0 }
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
        case .sparseSoftmaxCrossEntropy: return targetShape.isEmpty
        case .binaryCrossEntropy: return targetShape.reduce(1, *) == 1
        case .meanSquaredError: return false
        }
    }

    /// Examples whose predicted class is the target's: the argmax over the last axis, or for
    /// one output, which side of the threshold (0 for logits, 0.5 for probabilities); against a
    /// class index, for sparse targets.
    private func correctCount(_ prediction: [Float], _ target: [Float]) -> Int? {
        guard isClassifier else { return nil }
        if case .sparseSoftmaxCrossEntropy = loss {
            guard !target.isEmpty, prediction.count % target.count == 0 else { return nil }
            let classes = prediction.count / target.count
            return target.indices.filter { row in
                let p = prediction[(row * classes)..<((row + 1) * classes)]
                return p.indices.max(by: { p[$0] < p[$1] }).map { $0 - row * classes } == Int(exactly: target[row])
            }.count
        }
        guard let classes = targetShape.last, classes > 0, prediction.count == target.count else { return nil }
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

    private func seconds(since start: ContinuousClock.Instant) -> Double { (ContinuousClock.now - start).totalSeconds }
}
