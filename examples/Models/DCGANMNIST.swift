import Foundation
import Lathe

/// A DCGAN trained on MNIST as the courses do it (`lathe train dcgan-mnist`): the discriminator
/// and the generator of DCGAN.swift, each with its own Adam (rate 2e-4, beta1 0.5), trained in
/// turn on every batch. The discriminator's step sees real digits labelled 1 and the
/// generator's fakes labelled 0; the generator's step runs the discriminator frozen, reading its
/// current weights (TrainingStep(followsFrozenLayers:)), with its fakes labelled 1. Each of the
/// three compiled programs (the two steps and the generator's training-mode forward pass that
/// makes the discriminator's fakes) is compiled once.
///
///     let report = try DCGANMNIST.run(data: mnist, epochs: 5, samples: URL(fileURLWithPath: "out"))
public enum DCGANMNIST {
    public struct Report: Sendable {
        /// Each epoch's mean discriminator and generator losses.
        public let discriminatorLosses: [Float], generatorLosses: [Float]
        /// The sample grids written, one an epoch.
        public let samples: [URL]
    }

    static let noiseWidth = 100

    /// Trains for `epochs` on MNIST in `data` (the first `limit` training images if given); after
    /// each epoch writes an 8 x 8 grid of the generator's digits for fixed noise to
    /// `samples`/epoch-N.png (if given). `log` hears each epoch.
    public static func run(data: URL, epochs: Int = 5, batchSize: Int = 64, samples: URL? = nil, limit: Int? = nil, threads: Int = 2, seed: UInt64 = 0,
                           log: (String) -> Void = { _ in }) throws -> Report {
        guard epochs > 0, batchSize > 0 else {
            throw LatheError.invalidAttribute(op: "dcgan", reason: "epochs and the batch size must be positive", location: .unknown)
        }
        let images = try MNIST.load(.train, from: data, limit: limit).inputs
        let count = images.shape[0], pixels = 28 * 28
        guard count >= batchSize else {
            throw LatheError.invalidAttribute(op: "dcgan", reason: "\(count) images make no batch of \(batchSize)", location: .unknown)
        }
        // Digits in [-1, 1], the generator's tanh range.
        let digits = images.scalars.map { $0 * 2 - 1 }
        if let samples { try FileManager.default.createDirectory(at: samples, withIntermediateDirectories: true) }

        let generator = Examples.dcganGeneratorLayers(), discriminator = Examples.dcganDiscriminatorLayers()
        let adam = Optimizer.adam(learningRate: 2e-4, beta1: 0.5)
        let dStep = try TrainingStep(model: discriminator, inputShape: [2 * batchSize, 1, 28, 28], targetShape: [2 * batchSize, 1],
                                     loss: .binaryCrossEntropy(fromLogits: false), optimizer: adam, seed: seed, threads: threads)
        discriminator.trainable = false
        let gStep = try TrainingStep(model: Sequential { generator; discriminator }, inputShape: [batchSize, noiseWidth], targetShape: [batchSize, 1],
                                     loss: .binaryCrossEntropy(fromLogits: false), optimizer: adam, followsFrozenLayers: true, seed: seed &+ 1, threads: threads)
        discriminator.trainable = true
        // The generator as its step runs it (BatchNorm on the batch), for the discriminator's fakes.
        let forwardGraph = Graph()
        forwardGraph.isTraining = true
        let fakes = try generator(try forwardGraph.input("noise", shape: [batchSize, noiseWidth]))
        let forward = try forwardGraph.compile(outputs: ["image": fakes], options: CompileOptions(threads: threads))

        var rng = SeededGenerator(seed: seed &+ 2)
        let fixedNoise = try gaussian([64, noiseWidth], &rng)
        let labels = try HostTensor(shape: [2 * batchSize, 1], scalars: [Float](repeating: 1, count: batchSize) + [Float](repeating: 0, count: batchSize))
        let ones = HostTensor(shape: [batchSize, 1], repeating: 1)
        var dLosses: [Float] = [], gLosses: [Float] = [], written: [URL] = []
        for epoch in 1...epochs {
            var order = Array(0..<count)
            order.shuffle(using: &rng)
            var dSum = 0.0, gSum = 0.0
            let batches = count / batchSize
            for b in 0..<batches {
                var real: [Float] = []
                real.reserveCapacity(batchSize * pixels)
                for i in order[(b * batchSize)..<((b + 1) * batchSize)] { real += digits[(i * pixels)..<((i + 1) * pixels)] }
                // The discriminator's step: real digits, then fakes from the generator's current weights.
                try forwardGraph.refreshLayerVariables(in: forward)
                guard let fake = try forward.run(["noise": try gaussian([batchSize, noiseWidth], &rng)])["image"] else {
                    throw LatheError.missingInput(name: "image")
                }
                let dLoss = try dStep.run(input: HostTensor(shape: [2 * batchSize, 1, 28, 28], scalars: real + fake.scalars), target: labels).loss
                // The generator's step, through the discriminator as its step left it.
                try dStep.writeBack()
                try gStep.refreshFrozenWeights()
                let gLoss = try gStep.run(input: try gaussian([batchSize, noiseWidth], &rng), target: ones).loss
                try gStep.writeBack()
                dSum += Double(dLoss)
                gSum += Double(gLoss)
            }
            dLosses.append(Float(dSum / Double(batches)))
            gLosses.append(Float(gSum / Double(batches)))
            var line = String(format: "epoch %d: discriminator loss %.4f, generator loss %.4f", epoch, dLosses[epoch - 1], gLosses[epoch - 1])
            if let samples {
                let file = samples.appendingPathComponent("epoch-\(epoch).png")
                try PNGImage.grid(try sampled(generator, noise: fixedNoise, threads: threads), perRow: 8).write(to: file)
                written.append(file)
                line += ", samples \(file.path)"
            }
            log(line)
        }
        return Report(discriminatorLosses: dLosses, generatorLosses: gLosses, samples: written)
    }

    /// The generator's images for `noise`, compiled for inference (BatchNorm on its running statistics).
    static func sampled(_ generator: any Layer, noise: HostTensor, threads: Int) throws -> HostTensor {
        let g = Graph()
        let images = try generator(try g.input("noise", shape: noise.shape))
        guard let out = try g.compile(outputs: ["image": images], options: CompileOptions(threads: threads)).run(["noise": noise])["image"] else {
            throw LatheError.missingInput(name: "image")
        }
        return out
    }

    /// Standard normal values (Box-Muller) of `shape`.
    static func gaussian(_ shape: [Int], _ rng: inout SeededGenerator) throws -> HostTensor {
        let values = (0..<shape.reduce(1, *)).map { _ -> Float in
            let u = Float.random(in: Float.leastNormalMagnitude..<1, using: &rng), v = Float.random(in: 0..<1, using: &rng)
            return (-2 * log(u)).squareRoot() * cos(2 * Float.pi * v)
        }
        return try HostTensor(shape: shape, scalars: values)
    }
}
