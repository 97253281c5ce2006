import Lathe
import Testing

/// The interpreter's run of a training graph's step k (from 1): the oracle for the compiled step.
private func interpretedStep(_ step: TrainingStep, input: HostTensor, target: HostTensor, k: Int) throws -> Float {
    var feeds = ["input": input, "target": target]
    for (name, value) in step.optimizer.scalars(step: k, learningRate: step.learningRate) { feeds[name] = HostTensor(shape: [1], repeating: value) }
    if step.graph.inputs.contains(where: { $0.name == Graph.trainingStepInput }) {
        feeds[Graph.trainingStepInput] = HostTensor(shape: [1], repeating: Float(k - 1))
    }
    return try Interpreter.run(step.graph, outputs: [step.loss], feeds: feeds)[0].scalars[0]
}

private func smallCNN() -> Sequential {
    Sequential {
        Conv2D(4, kernel: 3, padding: .same, activation: .relu)
        BatchNorm()
        MaxPool2D(2)
        Conv2D(6, kernel: 3, stride: 2)
        Flatten()
        Dropout(0.3)
        Dense(5, activation: .softmax)
    }
}

@Suite("Compiled training step")
struct TrainingStepTests {
    static let optimizers: [Optimizer] = [
        .sgd(learningRate: 0.1), .momentum(learningRate: 0.05), .momentum(learningRate: 0.05, nesterov: true),
        .rmsprop(learningRate: 0.01), .adam(learningRate: 0.01), .adamW(learningRate: 0.01),
    ]

    @Test("three compiled steps equal three interpreted ones: loss and every variable", arguments: optimizers)
    func compiledEqualsInterpreted(_ optimizer: Optimizer) throws {
        for threads in [1, 2] {
            let step = try TrainingStep(model: smallCNN(), inputShape: [3, 2, 9, 9], targetShape: [3, 5], loss: .softmaxCrossEntropy,
                                        optimizer: optimizer, l2: 1e-3, seed: 3, threads: threads)
            for k in 1...3 {
                let x = HostTensor.random(shape: [3, 2, 9, 9], seed: UInt64(k), in: -1...1)
                var t = HostTensor(shape: [3, 5])
                for row in 0..<3 { t.scalars[row * 5 + (row + k) % 5] = 1 }
                let compiled = try step.run(input: x, target: t).loss
                let interpreted = try interpretedStep(step, input: x, target: t, k: k)
                #expect(abs(compiled - interpreted) <= 1e-5 * max(1, abs(interpreted)), "\(optimizer) step \(k): \(compiled) vs \(interpreted)")
            }
            // The interpreter kept its variables in the graph's constants; the compiled step in its weights.
            for v in step.graph.nodes {
                guard case let .variable(slot) = v.op else { continue }
                let error = relativeError(try step.compiled.variable(v.name), step.graph.constants[slot])
                #expect(error < 1e-4, "\(optimizer), \(threads) threads: \(v.name) off by \(error)")
            }
        }
    }

    @Test("LayerNorm and an LSTM train: compiled steps equal interpreted ones")
    func layerNormAndLSTM() throws {
        let model = Sequential { LSTM(5, returnSequences: true); LayerNorm(); Flatten(); Dense(2) }
        let step = try TrainingStep(model: model, inputShape: [3, 4, 2], targetShape: [3, 2], loss: .meanSquaredError, optimizer: .adam(learningRate: 0.01), seed: 2)
        for k in 1...2 {
            let x = HostTensor.random(shape: [3, 4, 2], seed: UInt64(k), in: -1...1), t = HostTensor.random(shape: [3, 2], seed: UInt64(k + 9))
            let compiled = try step.run(input: x, target: t).loss
            let interpreted = try interpretedStep(step, input: x, target: t, k: k)
            #expect(abs(compiled - interpreted) <= 1e-5 * max(1, abs(interpreted)), "step \(k): \(compiled) vs \(interpreted)")
        }
        #expect(step.graph.trainableVariables.map { step.graph[$0].name }.contains("layernorm1.gamma"))
    }

    @Test("SGD fits a linear map: the loss falls a hundredfold")
    func convergence() throws {
        let model = Sequential { Dense(1) }
        let step = try TrainingStep(model: model, inputShape: [16, 3], targetShape: [16, 1], loss: .meanSquaredError, optimizer: .sgd(learningRate: 0.1))
        var first: Float?, last: Float = 0
        for k in 0..<200 {
            let x = HostTensor.random(shape: [16, 3], seed: UInt64(k), in: -1...1)
            var y = HostTensor(shape: [16, 1])
            for i in 0..<16 { y.scalars[i] = 2 * x.scalars[3 * i] - x.scalars[3 * i + 1] + 0.5 * x.scalars[3 * i + 2] + 0.3 }
            last = try step.run(input: x, target: y).loss
            if first == nil { first = last }
        }
        let start = try #require(first)
        #expect(last < start / 100, "loss \(start) -> \(last)")
        try step.writeBack()
        let learned = try #require(model.layers[0] as? Dense).parameters
        #expect(abs(try #require(learned.weight).scalars[0] - 2) < 0.05)
        #expect(abs(try #require(learned.bias).scalars[0] - 0.3) < 0.05)
    }

    @Test("dropout masks are the interpreter's, and new each step")
    func dropoutMask() throws {
        let g = Graph()
        let counter = try g.input("step", shape: [1])
        let mask = try counter.apply(.dropoutMask(shape: [3, 37], rate: 0.25, seed: 9), [], .unknown)
        let model = try g.compile(outputs: ["m": mask])
        let first = try model.run(["step": HostTensor(shape: [1], repeating: 4)])["m"]!
        let expected = try g.interpret(outputs: [("m", mask)], feeds: ["step": HostTensor(shape: [1], repeating: 4)])["m"]!
        #expect(first.scalars == expected.scalars)
        let kept = first.scalars.filter { $0 != 0 }
        #expect(kept.allSatisfy { abs($0 - 4.0 / 3) < 1e-6 })
        #expect((70...100).contains(kept.count), "\(kept.count) of 111 kept at rate 0.25")
        let second = try model.run(["step": HostTensor(shape: [1], repeating: 5)])["m"]!
        #expect(second.scalars != first.scalars)
    }

    @Test("a variable updated in place persists between runs, and as an output reads its new value")
    func variableState() throws {
        let g = Graph()
        let v = g.addVariable(HostTensor(shape: [3], repeating: 1), name: "v")
        let x = try g.input("x", shape: [3])
        let y = try g.addNode(.binary(.add), [v, x.id], name: "y")
        try g.addNode(.assign, [v, y])
        let model = try g.compile(outputs: [("y", Tensor(graph: g, id: y)), ("v", Tensor(graph: g, id: v))])
        let feed = ["x": try HostTensor(shape: [3], scalars: [1, 2, 3])]
        #expect(try model.run(feed)["y"]!.scalars == [2, 3, 4])
        let second = try model.run(feed)
        #expect(second["y"]!.scalars == [3, 5, 7] && second["v"]!.scalars == [3, 5, 7])
        #expect(try model.variable("v").scalars == [3, 5, 7])
        // Copying a variable into another after updating it in place is a read after the assign.
        let w = g.addVariable(HostTensor(shape: [3]), name: "w")
        try g.addNode(.assign, [w, v])
        #expect { _ = try g.compile(outputs: [("y", Tensor(graph: g, id: y))]) } throws: { "\($0)".contains("reads variable v after it is assigned") }
    }

    @Test("an assign after another reader of its variable is refused")
    func lateReader() throws {
        let g = Graph()
        let v = g.addVariable(HostTensor(shape: [2], repeating: 1), name: "v")
        let x = try g.input("x", shape: [2])
        let doubled = try g.addNode(.binary(.add), [v, v])
        try g.addNode(.assign, [v, x.id])
        let late = try g.addNode(.binary(.mul), [v, x.id], name: "late")
        #expect { _ = try g.compile(outputs: [("y", Tensor(graph: g, id: late)), ("d", Tensor(graph: g, id: doubled))]) } throws: {
            "\($0)".contains("late reads variable v after it is assigned")
        }
    }
}
