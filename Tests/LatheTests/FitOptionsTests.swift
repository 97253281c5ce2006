import Foundation
import Lathe
import Testing

/// Keras-level `fit` settings: each test fails when its setting is taken out.
@Suite("fit: schedules, early stopping, checkpoints, clipping, sparse labels, splits")
struct FitOptionsTests {
    /// y = x W + 0.5 for a fixed W [3, 2] (`sign` -1 flips it), 64 examples.
    static func linear(seed: UInt64, sign: Float = 1) throws -> Dataset {
        let x = HostTensor.random(shape: [64, 3], seed: seed, in: -1...1)
        var y = HostTensor(shape: [64, 2])
        let w: [Float] = [1, -2, 0.5, 1.5, -1, 0.25]
        for i in 0..<64 {
            for j in 0..<2 { y.scalars[i * 2 + j] = sign * ((0..<3).reduce(0) { $0 + x.scalars[i * 3 + $1] * w[$1 * 2 + j] } + 0.5) }
        }
        return try Dataset(inputs: x, targets: y)
    }

    static func weights(_ trainer: Trainer) throws -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: try trainer.step.weights().map { ($0.name, $0.value.scalars) })
    }

    @Test("the schedules' factors: step, exponential, cosine, warm-up")
    func scheduleFactors() {
        #expect(LearningRateSchedule.constant.factor(step: 1000) == 1)
        #expect(LearningRateSchedule.step(every: 10, factor: 0.5).factor(step: 9) == 1)
        #expect(LearningRateSchedule.step(every: 10, factor: 0.5).factor(step: 25) == 0.25)
        #expect(abs(LearningRateSchedule.exponential(decaySteps: 100, rate: 0.1).factor(step: 50) - Float(0.1).squareRoot()) < 1e-6)
        let cosine = LearningRateSchedule.cosine(steps: 100, alpha: 0.1)
        #expect(cosine.factor(step: 0) == 1 && abs(cosine.factor(step: 50) - 0.55) < 1e-6 && abs(cosine.factor(step: 200) - 0.1) < 1e-6)
        let warm = LearningRateSchedule.warmup(steps: 4, then: .step(every: 2, factor: 0.5))
        #expect([0, 1, 3, 4, 5, 6].map { warm.factor(step: $0) } == [0.25, 0.5, 1, 1, 1, 0.5])
    }

    @Test("a schedule sets each step's rate: at factor 0 after the first step, the weights stay where that step left them")
    func scheduleApplies() throws {
        let data = try Self.linear(seed: 1)
        func trained(epochs: Int, schedule: LearningRateSchedule) throws -> [String: [Float]] {
            let trainer = try Trainer(model: Dense(2), exampleShape: [3], targetShape: [2], loss: .meanSquaredError, optimizer: .sgd(learningRate: 0.1),
                                      batchSize: 16, seed: 3)
            trainer.schedule = schedule
            try trainer.fit(data, epochs: epochs)
            return try Self.weights(trainer)
        }
        // Four steps an epoch; from the second on, the rate is 0.
        let stopped = try trained(epochs: 1, schedule: .step(every: 1, factor: 0))
        #expect(stopped == (try trained(epochs: 2, schedule: .step(every: 1, factor: 0))))
        #expect(stopped != (try trained(epochs: 1, schedule: .constant)))
    }

    @Test("early stopping stops after `patience` epochs without improvement and restores the best epoch's weights, which its checkpoint holds")
    func earlyStoppingRestores() throws {
        // Learning y = xW + 0.5 makes the loss on y = -(xW + 0.5) worse every epoch.
        let (train, validation) = (try Self.linear(seed: 1), try Self.linear(seed: 2, sign: -1))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-checkpoints-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let trainer = try Trainer(model: Dense(2), exampleShape: [3], targetShape: [2], loss: .meanSquaredError, optimizer: .sgd(learningRate: 0.05),
                                  batchSize: 16, seed: 3)
        trainer.earlyStopping = EarlyStopping(monitor: .validationLoss, patience: 2)
        trainer.checkpoints = directory
        let epochs = try trainer.fit(train, epochs: 10, validation: validation)
        #expect(epochs.count == 3, "the first epoch is the best; two more without improvement")
        #expect(trainer.restoredEpoch == 1)
        let saved = try WeightFile.read(directory.appendingPathComponent("epoch-1.safetensors")).mapValues(\.scalars)
        #expect(try Self.weights(trainer) == saved)
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("epoch-3.safetensors").path))
        #expect(throws: LatheError.self) { try trainer.fit(train, epochs: 1) }
    }

    @Test("clipping bounds the update: by value each element, by global norm the whole", arguments: [GradientClipping.value(1e-3), .globalNorm(1e-2)])
    func clippingBounds(_ clipping: GradientClipping) throws {
        let data = try Self.linear(seed: 1)
        // SGD at rate 1: the update is the clipped gradient.
        let step = try TrainingStep(model: Sequential { Dense(4, activation: .tanh); Dense(2) }, inputShape: [64, 3], targetShape: [64, 2],
                                    loss: .meanSquaredError, optimizer: .sgd(learningRate: 1), clipping: clipping, seed: 5)
        let before = try step.weights()
        _ = try step.run(input: data.inputs, target: data.targets)
        let deltas = try zip(before, step.weights()).flatMap { old, new in zip(old.value.scalars, new.value.scalars).map { $1 - $0 } }
        switch clipping {
        case let .value(limit):
            #expect(deltas.allSatisfy { abs($0) <= limit * 1.0001 })
            #expect(deltas.contains { abs($0) >= limit * 0.9999 }, "some gradient element was larger than the limit")
        case let .globalNorm(limit):
            let norm = deltas.reduce(0) { $0 + $1 * $1 }.squareRoot()
            #expect(abs(norm - limit) <= limit * 1e-3, "the update's norm \(norm)")
        }
    }

    @Test("sparse labels give the loss of their one-hot rows, and a trainer counts their accuracy")
    func sparseLabels() throws {
        let x = HostTensor.random(shape: [6, 4], seed: 1, in: -1...1)
        let labels: [Float] = [0, 2, 1, 2, 0, 1]
        var oneHot = HostTensor(shape: [6, 3])
        for (row, label) in labels.enumerated() { oneHot.scalars[row * 3 + Int(label)] = 1 }
        func loss(_ kind: Loss, _ target: HostTensor) throws -> Float {
            let step = try TrainingStep(model: Dense(3, activation: .softmax), inputShape: [6, 4], targetShape: target.shape, loss: kind,
                                        optimizer: .sgd(learningRate: 0.1), seed: 7)
            return try step.run(input: x, target: target).loss
        }
        let sparse = try loss(.sparseSoftmaxCrossEntropy, try HostTensor(shape: [6], scalars: labels))
        #expect(abs(sparse - (try loss(.softmaxCrossEntropy, oneHot))) <= 1e-6)
        let trainer = try Trainer(model: Dense(3, activation: .softmax), exampleShape: [4], targetShape: [], loss: .sparseSoftmaxCrossEntropy,
                                  optimizer: .adam(learningRate: 0.05), batchSize: 6, seed: 7)
        let data = try Dataset(inputs: x, targets: try HostTensor(shape: [6], scalars: labels))
        let epochs = try trainer.fit(data, epochs: 30, validation: data)
        #expect((epochs.last?.testAccuracy ?? 0) > 0.8)
        // Integer labels, as PyTorch and Keras take them: the same loss, in the graph and in a trainer.
        let g = Graph()
        let logits = try g.input("p", shape: [6, 3]), ints = try g.input("t", dtype: .int64, shape: [6])
        let intLoss = try logits.sparseSoftmaxCrossEntropy(classes: ints)
        let floatLoss = try logits.sparseSoftmaxCrossEntropy(classes: try g.input("f", shape: [6]))
        let p = HostTensor.random(shape: [6, 3], seed: 3)
        let values = try Interpreter.run(g, outputs: [intLoss.id, floatLoss.id],
                                         feeds: ["p": p, "t": try HostTensor(shape: [6], values: labels.map { Int64($0) }), "f": try HostTensor(shape: [6], scalars: labels)])
        #expect(values[0].scalars == values[1].scalars)
        let intData = try Dataset(inputs: x, targets: try HostTensor(shape: [6], values: labels.map { Int64($0) }))
        let again = try Trainer(model: Dense(3, activation: .softmax), exampleShape: [4], targetShape: [], loss: .sparseSoftmaxCrossEntropy,
                                optimizer: .adam(learningRate: 0.05), batchSize: 6, seed: 7)
        #expect(try again.fit(intData, epochs: 30, validation: intData).map(\.trainLoss) == epochs.map(\.trainLoss))
    }

    @Test("precision, recall and top-k accuracy by hand, and on a trainer's validation data")
    func metrics() throws {
        // Rows of 3 scores; argmax: 0, 1, 1, 2; second best: 1, 2, 0, 0.
        let scores: [Float] = [0.7, 0.2, 0.1, 0.1, 0.6, 0.3, 0.3, 0.5, 0.2, 0.3, 0.1, 0.6]
        let truth = [0, 2, 1, 0]
        #expect(Metric.topKAccuracy(1).value(predictions: scores, classes: 3, truth: truth) == 0.5)
        #expect(Metric.topKAccuracy(2).value(predictions: scores, classes: 3, truth: truth) == 1)
        // Precision: class 0 1/1, class 1 1/2, class 2 0/1; recall: class 0 1/2, class 1 1/1, class 2 0/1.
        #expect(abs(Metric.precision.value(predictions: scores, classes: 3, truth: truth) - 0.5) < 1e-6)
        #expect(abs(Metric.recall.value(predictions: scores, classes: 3, truth: truth) - 0.5) < 1e-6)
        let x = HostTensor.random(shape: [8, 4], seed: 1, in: -1...1)
        let data = try Dataset(inputs: x, targets: try HostTensor(shape: [8], scalars: [0, 1, 2, 0, 1, 2, 0, 1]))
        let trainer = try Trainer(model: Dense(3, activation: .softmax), exampleShape: [4], targetShape: [], loss: .sparseSoftmaxCrossEntropy,
                                  optimizer: .adam(learningRate: 0.01), batchSize: 8, seed: 2)
        trainer.metrics = [.topKAccuracy(3), .precision, .recall]
        let summary = try #require(try trainer.fit(data, epochs: 1, validation: data).last)
        #expect(summary.testMetrics?["top3Accuracy"] == 1)
        #expect(summary.testMetrics?.keys.sorted() == ["precision", "recall", "top3Accuracy"])
    }

    @Test("a split shuffles, then holds out the fraction asked, every example once")
    func split() throws {
        var ids = HostTensor(shape: [10, 1])
        for i in 0..<10 { ids.scalars[i] = Float(i) }
        let data = try Dataset(inputs: ids, targets: ids)
        let (train, validation) = try data.split(validationFraction: 0.3, seed: 4)
        #expect(train.count == 7 && validation.count == 3)
        #expect((train.inputs.scalars + validation.inputs.scalars).sorted() == ids.scalars)
        #expect(train.inputs.scalars != Array(ids.scalars.prefix(7)), "shuffled")
        #expect(throws: LatheError.self) { try data.split(validationFraction: 1) }
    }
}
