import Lathe
import Testing

/// Frozen layers (`trainable` false) in a training step: their weights are constants of the
/// step, left bit for bit as they were; gradients still flow through them to trainable layers
/// before them; their BatchNorms normalize by the running statistics and keep them.
@Suite("Frozen layers")
struct FreezingTests {
    /// One-hot targets for a batch of `batch` rows of `classes`.
    static func oneHot(batch: Int, classes: Int, shift: Int) -> HostTensor {
        var t = HostTensor(shape: [batch, classes])
        for row in 0..<batch { t.scalars[row * classes + (row + shift) % classes] = 1 }
        return t
    }

    @Test("a frozen base keeps its weights bit for bit and computes no gradient; the head learns")
    func frozenBase() throws {
        let conv = Conv2D(4, kernel: 3, padding: .same, activation: .relu), norm = BatchNorm()
        let base = Sequential { conv; norm; MaxPool2D(2) }
        let first = Dense(8, activation: .relu), last = Dense(3, activation: .softmax)
        let model = Sequential { base; Flatten(); first; last }
        // The weights exist once the model has been built (here for inference), as a
        // pretrained base's would.
        let g = Graph(seed: 5)
        _ = try model(try g.input("x", shape: [2, 2, 6, 6]))
        let convBefore = try #require(conv.parameters.weight), normBefore = try #require(norm.parameters)
        let denseBefore = try #require(first.parameters.weight)

        base.trainable = false
        #expect(!conv.trainable && !norm.trainable, "a Sequential sets its layers' switch")
        let step = try TrainingStep(model: model, inputShape: [2, 2, 6, 6], targetShape: [2, 3], loss: .softmaxCrossEntropy,
                                    optimizer: .adam(learningRate: 0.05), seed: 5)
        let names = step.graph.trainableVariables.map { step.graph[$0].name }
        #expect(names.allSatisfy { $0.hasPrefix("dense") }, "trainable: \(names)")
        #expect(step.graph.stateVariables.isEmpty, "a frozen BatchNorm keeps its running statistics")
        // No backward node for the base: nothing after the loss is named after its layers.
        let backward = step.graph.nodes[(step.loss.index + 1)...].map(\.name)
        #expect(!backward.contains { $0.hasPrefix("conv") || $0.hasPrefix("batchnorm") }, "\(backward.filter { $0.hasPrefix("conv") })")

        for k in 1...3 {
            _ = try step.run(input: HostTensor.random(shape: [2, 2, 6, 6], seed: UInt64(k), in: -1...1), target: Self.oneHot(batch: 2, classes: 3, shift: k))
        }
        try step.writeBack()
        #expect(conv.parameters.weight?.scalars == convBefore.scalars && conv.parameters.bias?.scalars == HostTensor(shape: [4]).scalars)
        let normAfter = try #require(norm.parameters)
        #expect([normAfter.scale, normAfter.bias, normAfter.mean, normAfter.variance].map(\.scalars)
                == [normBefore.scale, normBefore.bias, normBefore.mean, normBefore.variance].map(\.scalars))
        #expect(first.parameters.weight?.scalars != denseBefore.scalars, "the head's weights changed")
    }

    @Test("gradients flow through a frozen layer to the trainable one before it; compiled steps equal interpreted ones")
    func gradientThroughFrozen() throws {
        let front = Dense(6, activation: .tanh), middle = Dense(5, activation: .relu), back = Dense(2)
        middle.trainable = false
        let model = Sequential { front; middle; back }
        let step = try TrainingStep(model: model, inputShape: [4, 3], targetShape: [4, 2], loss: .meanSquaredError, optimizer: .sgd(learningRate: 0.1), seed: 1)
        #expect(step.graph.trainableVariables.map { step.graph[$0].name } == ["dense1.weight", "dense1.bias", "dense3.weight", "dense3.bias"])
        let frontBefore = try #require(front.parameters.weight), middleBefore = try #require(middle.parameters.weight)
        for k in 1...2 {
            let x = HostTensor.random(shape: [4, 3], seed: UInt64(k), in: -1...1), t = HostTensor.random(shape: [4, 2], seed: UInt64(10 + k))
            let compiled = try step.run(input: x, target: t).loss
            var feeds = ["input": x, "target": t]
            for (name, value) in step.optimizer.scalars(step: k, learningRate: step.learningRate) { feeds[name] = HostTensor(shape: [1], repeating: value) }
            let interpreted = try Interpreter.run(step.graph, outputs: [step.loss], feeds: feeds)[0].scalars[0]
            #expect(abs(compiled - interpreted) <= 1e-5 * max(1, abs(interpreted)), "step \(k): \(compiled) vs \(interpreted)")
        }
        try step.writeBack()
        #expect(front.parameters.weight?.scalars != frontBefore.scalars, "the layer before the frozen one learned")
        #expect(middle.parameters.weight?.scalars == middleBefore.scalars)
    }

    @Test("a frozen Sequential freezes a layer switched back on inside it; thawed, all learn again")
    func outerSwitchWins() throws {
        let inner = Dense(3)
        let model = Sequential { Dense(4); inner }
        model.trainable = false
        inner.trainable = true
        #expect(throws: LatheError.self) {
            try TrainingStep(model: model, inputShape: [2, 2], targetShape: [2, 3], loss: .meanSquaredError, optimizer: .sgd(learningRate: 0.1))
        }
        model.trainable = true
        let step = try TrainingStep(model: model, inputShape: [2, 2], targetShape: [2, 3], loss: .meanSquaredError, optimizer: .sgd(learningRate: 0.1))
        #expect(step.graph.trainableVariables.count == 4)
    }

    @Test("a step that follows its frozen layers reads what another step taught them (a GAN's generator step and its discriminator)")
    func followsFrozenLayers() throws {
        let discriminator = Dense(1, activation: .sigmoid), generator = Dense(3, activation: .tanh)
        let dStep = try TrainingStep(model: discriminator, inputShape: [4, 3], targetShape: [4, 1], loss: .binaryCrossEntropy(fromLogits: false),
                                     optimizer: .sgd(learningRate: 0.5), seed: 1)
        discriminator.trainable = false
        let gStep = try TrainingStep(model: Sequential { generator; discriminator }, inputShape: [4, 2], targetShape: [4, 1],
                                     loss: .binaryCrossEntropy(fromLogits: false), optimizer: .sgd(learningRate: 0.5), followsFrozenLayers: true, seed: 1)
        discriminator.trainable = true
        let frozen = gStep.graph.frozenVariables.map { gStep.graph[$0].name }
        #expect(frozen == ["dense2.weight", "dense2.bias"])
        #expect(gStep.graph.trainableVariables.map { gStep.graph[$0].name } == ["dense1.weight", "dense1.bias"])
        let ones = HostTensor(shape: [4, 1], repeating: 1)
        for k in 1...3 { _ = try dStep.run(input: HostTensor.random(shape: [4, 3], seed: UInt64(k)), target: ones) }
        try dStep.writeBack()
        let learned = try #require(discriminator.parameters.weight)
        #expect(try gStep.compiled.variable("dense2.weight").scalars != learned.scalars, "not yet refreshed")
        try gStep.refreshFrozenWeights()
        #expect(try gStep.compiled.variable("dense2.weight").scalars == learned.scalars)
        _ = try gStep.run(input: HostTensor.random(shape: [4, 2], seed: 9), target: ones)
        #expect(try gStep.compiled.variable("dense2.weight").scalars == learned.scalars, "the generator's step leaves the discriminator as it is")
        #expect(try gStep.compiled.variable("dense1.weight").scalars != generator.parameters.weight?.scalars, "the generator learned")
    }
}
