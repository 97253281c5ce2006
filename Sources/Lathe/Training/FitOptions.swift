import Foundation

/// How the learning rate changes as training goes: a factor of the optimizer's rate at each
/// step, fed to the compiled step as its learning-rate input (no recompile). Steps count from 0
/// over the whole training, across fits.
///
///     trainer.schedule = .warmup(steps: 100, then: .cosine(steps: 2000, alpha: 0.01))
public indirect enum LearningRateSchedule: Sendable, Hashable {
    /// The optimizer's rate throughout.
    case constant
    /// Times `factor` after every `every` steps (PyTorch's StepLR; Keras' ExponentialDecay
    /// with staircase).
    case step(every: Int, factor: Float)
    /// Times rate^(step / decaySteps), smoothly (Keras' ExponentialDecay).
    case exponential(decaySteps: Int, rate: Float)
    /// From 1 down to `alpha` along half a cosine over `steps`, then `alpha` (Keras' CosineDecay).
    case cosine(steps: Int, alpha: Float = 0)
    /// Up from 0 in a straight line over `steps` (the first step at 1/steps), then `then`,
    /// counted from the end of the warm-up.
    case warmup(steps: Int, then: LearningRateSchedule)

    /// The factor at `step`; a schedule of non-positive steps is the constant 1 from its start.
    public func factor(step: Int) -> Float {
        switch self {
        case .constant: return 1
        case let .step(every, factor):
            guard every > 0 else { return 1 }
            return pow(factor, Float(step / every))
        case let .exponential(decaySteps, rate):
            guard decaySteps > 0 else { return 1 }
            return pow(rate, Float(step) / Float(decaySteps))
        case let .cosine(steps, alpha):
            guard steps > 0 else { return 1 }
            let progress = Float(min(step, steps)) / Float(steps)
            return alpha + (1 - alpha) * 0.5 * (1 + cos(Float.pi * progress))
        case let .warmup(steps, then):
            guard steps > 0, step < steps else { return then.factor(step: step - max(steps, 0)) }
            return Float(step + 1) / Float(steps)
        }
    }
}

/// What an early stop watches, after each epoch, on the validation data.
public enum Monitor: String, Sendable, Hashable {
    /// The validation loss: lower is better.
    case validationLoss
    /// The validation accuracy (classifiers): higher is better.
    case validationAccuracy

    func value(_ summary: EpochSummary) -> Float? {
        self == .validationLoss ? summary.testLoss : summary.testAccuracy
    }

    func improves(_ value: Float, on best: Float, by minDelta: Float) -> Bool {
        self == .validationLoss ? value < best - minDelta : value > best + minDelta
    }
}

/// Keras' EarlyStopping: fitting stops once `patience` epochs in a row have not improved the
/// monitored value by more than `minDelta`, and with `restoreBest` the weights of the best
/// epoch are put back (in the step and the model's layers).
///
///     trainer.earlyStopping = EarlyStopping(monitor: .validationLoss, patience: 3)
public struct EarlyStopping: Sendable, Hashable {
    public var monitor: Monitor
    public var patience: Int
    public var minDelta: Float
    public var restoreBest: Bool

    public init(monitor: Monitor = .validationLoss, patience: Int = 3, minDelta: Float = 0, restoreBest: Bool = true) {
        (self.monitor, self.patience, self.minDelta, self.restoreBest) = (monitor, max(patience, 0), max(minDelta, 0), restoreBest)
    }
}

/// A classifier's figure beyond accuracy, computed on the validation data after each epoch.
public enum Metric: Sendable, Hashable {
    /// The share of examples whose class is among the `k` highest predictions.
    case topKAccuracy(Int)
    /// The mean over classes of true positives / predicted positives (a class never predicted
    /// counts 0), the argmax being the prediction.
    case precision
    /// The mean over classes of true positives / actual positives (a class absent from the data
    /// is left out of the mean).
    case recall

    public var name: String {
        switch self {
        case let .topKAccuracy(k): return "top\(k)Accuracy"
        case .precision: return "precision"
        case .recall: return "recall"
        }
    }

    /// The figure over `predictions` (rows of `classes` scores) and their true classes.
    public func value(predictions: [Float], classes: Int, truth: [Int]) -> Float {
        guard classes > 0, !truth.isEmpty, predictions.count == truth.count * classes else { return 0 }
        let rows = truth.indices.map { Array(predictions[($0 * classes)..<(($0 + 1) * classes)]) }
        switch self {
        case let .topKAccuracy(k):
            let hits = zip(rows, truth).filter { row, label in
                row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }.prefix(max(k, 0)).contains(label)
            }.count
            return Float(hits) / Float(truth.count)
        case .precision, .recall:
            let predicted = rows.map { row in row.indices.max { row[$0] < row[$1] } ?? 0 }
            var truePositives = [Int](repeating: 0, count: classes), predictedCount = truePositives, actualCount = truePositives
            for (p, t) in zip(predicted, truth) where (0..<classes).contains(t) {
                predictedCount[p] += 1
                actualCount[t] += 1
                if p == t { truePositives[p] += 1 }
            }
            if self == .precision {
                return (0..<classes).reduce(0) { $0 + (predictedCount[$1] > 0 ? Float(truePositives[$1]) / Float(predictedCount[$1]) : 0) } / Float(classes)
            }
            let present = (0..<classes).filter { actualCount[$0] > 0 }
            return present.reduce(0) { $0 + Float(truePositives[$1]) / Float(actualCount[$1]) } / Float(max(present.count, 1))
        }
    }
}

extension Dataset {
    /// The examples shuffled by `seed`, then cut in two: the last `validationFraction` of them
    /// (rounded, at least one when the fraction is positive) for validation, the rest for
    /// training (Keras' validation_split, shuffled first as scikit-learn's train_test_split).
    public func split(validationFraction: Double, seed: UInt64 = 0) throws -> (train: Dataset, validation: Dataset) {
        guard validationFraction >= 0, validationFraction < 1 else {
            throw LatheError.invalidAttribute(op: "dataset", reason: "the validation fraction must be in [0, 1), got \(validationFraction)", location: .unknown)
        }
        var order = Array(0..<count)
        var rng = SeededGenerator(seed: seed)
        order.shuffle(using: &rng)
        let held = validationFraction > 0 ? max(1, Int((Double(count) * validationFraction).rounded())) : 0
        guard held < count || count == 0 else {
            throw LatheError.invalidAttribute(op: "dataset", reason: "\(count) examples leave none to train on at a validation fraction of \(validationFraction)",
                                              location: .unknown)
        }
        return (try gathered(Array(order[..<(count - held)])), try gathered(Array(order[(count - held)...])))
    }

    /// The examples at `indices`, in that order.
    public func gathered(_ indices: [Int]) throws -> Dataset {
        let (x, t) = (exampleShape.reduce(1, *), targetShape.reduce(1, *))
        var inputs: [Float] = [], targets: [Float] = []
        inputs.reserveCapacity(indices.count * x)
        targets.reserveCapacity(indices.count * t)
        let (allInputs, allTargets) = (self.inputs.scalars, self.targets.scalars)
        for i in indices {
            guard i >= 0, i < count else { throw LatheError.indexOutOfRange(node: "dataset", op: "gathered", index: Int64(i), bound: count, location: .unknown) }
            inputs += allInputs[(i * x)..<((i + 1) * x)]
            targets += allTargets[(i * t)..<((i + 1) * t)]
        }
        return try Dataset(inputs: HostTensor(shape: [indices.count] + exampleShape, scalars: inputs),
                           targets: HostTensor(shape: [indices.count] + targetShape, scalars: targets))
    }
}
