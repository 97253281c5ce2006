import ArgumentParser
import Foundation
import Lathe
import LatheExamples

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a built-in model with its compiled training step.",
        discussion: "Models: \(Examples.training.map { "\($0.name) (\($0.summary))" }.joined(separator: "; ")); transfer-mnist (a CNN learns the digits 0-4 and is exported to ONNX; the export, cut after its convolutions and frozen, is imported under a new head that learns 5-9: examples/Models/TransferMNIST.swift); and dcgan-mnist (a DCGAN's discriminator and generator trained in turn, sample grids written with --samples: examples/Models/DCGANMNIST.swift). The MNIST models read the IDX files (gzip or plain) from --data.")

    @Argument(help: "The model: \(Examples.training.map(\.name).joined(separator: ", ")), transfer-mnist, dcgan-mnist.")
    var model: String

    @Option(help: "The MNIST directory (train-images-idx3-ubyte.gz and the others).")
    var data: String?

    @Option(help: "Epochs (default: the model's own).")
    var epochs: Int?

    @Option(help: "Batch size (default: the model's own).")
    var batch: Int?

    @Option(help: "sgd, momentum, nesterov, rmsprop, adam or adamw (default: the model's own).")
    var optimizer: String?

    @Option(help: "Learning rate (default: the optimizer's).")
    var learningRate: Float?

    @Option(help: "Train on the first N training examples only.")
    var limit: Int?

    @Option(help: "Augment the training images: shift each by up to N pixels each way, zeros shifted in (RandomTranslation in the compiled step).")
    var shift: Int?

    @Option(help: "Augment the training images: flip each with probability 1/2, horizontal, vertical or both (RandomFlip in the compiled step).")
    var flip: String?

    @Option(help: "Threads a step uses.")
    var threads: Int = 2

    @Option(help: "Seed of the weights, the shuffle and the dropout masks.")
    var seed: UInt64 = 0

    @Option(help: "Write the loss and accuracy curves to this SVG file.")
    var plot: String?

    @Option(help: "Save the learned weights to this .safetensors file (`lathe run NAME --weights FILE` uses them).")
    var save: String?

    @Flag(help: "Print each epoch as a JSON line instead of the progress bar.")
    var json = false

    @Flag(help: "Instead of training, time 20 steps on the first batch: the median step and each kernel's share (with --json: medianMs, minMs, gflops).")
    var profile = false

    @Option(help: "transfer-mnist: the directory the ONNX export is written to (default: the temporary directory).")
    var output: String?

    @Option(help: "dcgan-mnist: the directory an 8x8 grid of generated digits is written to after each epoch (epoch-N.png).")
    var samples: String?

    func run() throws {
        if model == "transfer-mnist" { return try transfer() }
        if model == "dcgan-mnist" { return try dcgan() }
        guard let example = Examples.trainingNamed(model) else {
            throw ValidationError("unknown model '\(model)'; trainable models: \(Examples.training.map(\.name).joined(separator: ", ")), transfer-mnist, dcgan-mnist")
        }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        let batchSize = batch ?? example.batchSize
        guard batchSize >= 1, (epochs ?? 1) >= 1, (limit ?? 1) >= 1 else { throw ValidationError("--batch, --epochs and --limit must be positive") }
        let (train, test) = try example.data(data.map { URL(fileURLWithPath: $0) }, limit, seed)
        let trainer = try Trainer(model: augmented(example.layers()), exampleShape: train.exampleShape, targetShape: train.targetShape, loss: example.loss,
                                  optimizer: try chosenOptimizer(example.optimizer), batchSize: batchSize, seed: seed, threads: threads)
        let stages = trainer.step.compiled.compileStages.reduce(0) { $0 + $1.seconds }
        let kernels = trainer.step.compiled.program.kernels.count
        setvbuf(stdout, nil, _IOLBF, 0)
        if !json {
            print("\(model): \(train.count) training and \(test.count) test examples, batch \(batchSize), \(threads) thread(s)")
            print(String(format: "training step compiled in %.2f s: %d kernels, %.1f MFLOP a step, arena %.1f MiB", stages, kernels,
                         Double(trainer.step.compiled.program.flops) / 1e6, Double(trainer.step.compiled.program.arenaBytes) / 1048576))
        }
        if profile { return try profileSteps(trainer, train, batchSize) }
        let progress: ((TrainingProgress) -> Void)? = json ? nil : { p in
            let width = 30, filled = p.batch * width / max(p.batches, 1)
            let bar = String(repeating: "=", count: filled) + (filled < width ? ">" : "") + String(repeating: " ", count: max(0, width - filled - 1))
            let accuracy = p.accuracy.map { String(format: " acc %.2f%%", $0 * 100) } ?? ""
            FileHandle.standardOutput.write(String(format: "\repoch %d/%d [%@] %d/%d loss %.4f%@ %.0f examples/s", p.epoch, p.epochs, bar, p.batch, p.batches,
                                                   p.loss, accuracy, p.examplesPerSecond).data(using: .utf8)!)
        }
        try trainer.fit(train, epochs: epochs ?? example.epochs, validation: test, progress: progress) { e in
            if json {
                if let line = try? JSONEncoder().encode(e) { print(String(decoding: line, as: UTF8.self)) }
                return
            }
            let test = [e.testLoss.map { String(format: "test loss %.4f", $0) }, e.testAccuracy.map { String(format: "test accuracy %.2f%%", $0 * 100) }]
            print("\n" + String(format: "epoch %d: %.1f s (%.1f ms a step, %.0f examples/s), ", e.epoch, e.seconds, e.seconds * 1000 / Double(train.count / batchSize),
                                e.examplesPerSecond) + test.compactMap { $0 }.joined(separator: ", "))
        }
        if let plot {
            let title = "\(model): \(trainer.history.count) epochs, batch \(batchSize)"
            try TrainingPlot.svg(title: title, history: trainer.history, batchLosses: trainer.batchLosses).write(toFile: plot, atomically: true, encoding: .utf8)
            if !json { print("plot: \(plot)") }
        }
        if let save {
            try trainer.saveWeights(to: URL(fileURLWithPath: save))
            if !json { print("weights: \(save)") }
        }
    }

    /// The model behind the augmentation layers --shift and --flip ask for (identity for inference).
    private func augmented(_ model: Sequential) throws -> Sequential {
        var layers: [any Layer] = []
        if let flip {
            let modes: [String: RandomFlip.Mode] = ["horizontal": .horizontal, "vertical": .vertical, "both": .horizontalAndVertical]
            guard let mode = modes[flip] else { throw ValidationError("--flip is horizontal, vertical or both, not '\(flip)'") }
            layers.append(RandomFlip(mode))
        }
        if let shift {
            guard shift >= 0 else { throw ValidationError("--shift must be at least 0") }
            layers.append(RandomTranslation(rows: shift, columns: shift, fill: .constant(0)))
        }
        return layers.isEmpty ? model : Sequential(layers + [model])
    }

    /// The two stages of transfer learning (TransferMNIST), each reported as it ends.
    private func transfer() throws {
        guard let data else { throw ValidationError("transfer-mnist needs the data directory (--data DIR)") }
        guard threads >= 1, (batch ?? 1) >= 1, (epochs ?? 1) >= 1, (limit ?? 1) >= 1 else {
            throw ValidationError("--threads, --batch, --epochs and --limit must be positive")
        }
        setvbuf(stdout, nil, _IOLBF, 0)
        let directory = URL(fileURLWithPath: output ?? FileManager.default.temporaryDirectory.path)
        let report = try TransferMNIST.run(data: URL(fileURLWithPath: data), directory: directory, epochs: epochs ?? 1, batchSize: batch ?? 64,
                                           limit: limit, threads: threads, seed: seed) { if !json { print($0) } }
        if json {
            let fields: [String: Any] = ["baseAccuracy": report.baseAccuracy, "transferAccuracy": report.transferAccuracy, "exported": report.exported.path,
                                         "frozenStepMs": report.frozenStepMs, "baseForwardMs": report.baseForwardMs, "headStepMs": report.headStepMs,
                                         "baseUnchanged": report.baseUnchanged, "headChanged": report.headChanged]
            print(String(decoding: try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]), as: UTF8.self))
        }
    }

    /// The DCGAN's two steps in turn (DCGANMNIST), each epoch reported as it ends.
    private func dcgan() throws {
        guard let data else { throw ValidationError("dcgan-mnist needs the data directory (--data DIR)") }
        guard threads >= 1, (batch ?? 1) >= 1, (epochs ?? 1) >= 1, (limit ?? 1) >= 1 else {
            throw ValidationError("--threads, --batch, --epochs and --limit must be positive")
        }
        setvbuf(stdout, nil, _IOLBF, 0)
        let report = try DCGANMNIST.run(data: URL(fileURLWithPath: data), epochs: epochs ?? 5, batchSize: batch ?? 64, samples: samples.map { URL(fileURLWithPath: $0) },
                                        limit: limit, threads: threads, seed: seed) { if !json { print($0) } }
        if json {
            let fields: [String: Any] = ["discriminatorLosses": report.discriminatorLosses, "generatorLosses": report.generatorLosses,
                                         "samples": report.samples.map(\.path)]
            print(String(decoding: try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]), as: UTF8.self))
        }
    }

    private func profileSteps(_ trainer: Trainer, _ data: Dataset, _ batchSize: Int) throws {
        let x = Array(data.inputs.scalars.prefix(batchSize * data.exampleShape.reduce(1, *)))
        let t = Array(data.targets.scalars.prefix(batchSize * data.targetShape.reduce(1, *)))
        var prediction = [Float](repeating: 0, count: trainer.step.predictionCount)
        let program = trainer.step.compiled.program
        var kernelTimings = KernelTimings(kernels: program.kernels.count)
        var steps: [Double] = []
        try x.withUnsafeBufferPointer { xs in
            try t.withUnsafeBufferPointer { ts in
                try prediction.withUnsafeMutableBufferPointer { p in
                    for _ in 0..<3 { _ = try trainer.step.run(input: xs, target: ts, prediction: p) }
                    for _ in 0..<20 {
                        let start = ContinuousClock.now
                        _ = try trainer.step.run(input: xs, target: ts, prediction: p)
                        steps.append((ContinuousClock.now - start).totalSeconds)
                        kernelTimings.add(try trainer.step.profile(input: xs, target: ts, prediction: p))
                    }
                }
            }
        }
        let timings = Timings(steps)
        let median = timings.median
        if json {
            let report: [String: Double] = ["medianMs": median * 1000, "minMs": timings.min * 1000, "batch": Double(batchSize), "threads": Double(threads),
                                            "gflops": Double(program.flops) / median / 1e9]
            print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        print(String(format: "step: median %.2f ms, min %.2f ms over %d steps; %.1f GFLOP/s", median * 1000, timings.min * 1000, timings.count,
                     Double(program.flops) / median / 1e9))
        KernelTimings.table(kernelTimings.rows(program)).forEach { print($0) }
    }

    private func chosenOptimizer(_ standard: Optimizer) throws -> Optimizer {
        let name = optimizer ?? {
            switch standard {
            case .sgd: return "sgd"
            case let .momentum(_, _, nesterov): return nesterov ? "nesterov" : "momentum"
            case .rmsprop: return "rmsprop"
            case .adam: return "adam"
            case .adamW: return "adamw"
            }
        }()
        let lr = learningRate ?? (optimizer == nil ? standard.learningRate : nil)
        switch name {
        case "sgd": return .sgd(learningRate: lr ?? 0.01)
        case "momentum": return .momentum(learningRate: lr ?? 0.01)
        case "nesterov": return .momentum(learningRate: lr ?? 0.01, nesterov: true)
        case "rmsprop": return .rmsprop(learningRate: lr ?? 1e-2)
        case "adam": return .adam(learningRate: lr ?? 1e-3)
        case "adamw": return .adamW(learningRate: lr ?? 1e-3)
        default: throw ValidationError("unknown optimizer '\(name)'; use sgd, momentum, nesterov, rmsprop, adam or adamw")
        }
    }
}
