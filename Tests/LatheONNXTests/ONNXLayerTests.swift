import Foundation
import Lathe
import LatheONNX
import Testing

/// max |got - want| / max |want|.
private func relativeDifference(_ got: HostTensor, _ want: HostTensor) -> Float {
    guard got.shape == want.shape else { return .infinity }
    var worst: Float = 0, scale: Float = 0
    for (a, b) in zip(got.scalars, want.scalars) { (worst, scale) = (max(worst, abs(a - b)), max(scale, abs(b))) }
    return worst / max(scale, 1e-30)
}

/// ONNX models as layers of DSL models (ONNXLayer): cut at a named node, frozen or fine-tuned.
@Suite("ONNXLayer")
struct ONNXLayerTests {
    /// A small CNN with a head, built and exported at batch 1 with a symbolic batch: its
    /// layers (to compare with) and the ONNX file's bytes.
    static func exportedCNN() throws -> (model: Sequential, data: Data) {
        let model = Sequential {
            Conv2D(3, kernel: 3, activation: .relu); BatchNorm(); MaxPool2D(2)
            Flatten()
            Dense(4, activation: .softmax)
        }
        let g = Graph(seed: 3)
        let y = try model(try g.input("image", shape: [1, 2, 8, 8]))
        return (model, try ONNXExporter.export(g, outputs: [("probs", y.id)], symbolicBatch: true))
    }

    static func run(_ layer: any Layer, _ x: HostTensor) throws -> HostTensor {
        let g = Graph()
        let y = try layer(try g.input("x", shape: x.shape))
        return try Interpreter.run(g, outputs: [y.id], feeds: ["x": x])[0]
    }

    @Test("the layer computes the model, whole or up to a node or value, at the input's batch")
    func computesTheModel() throws {
        let (model, data) = try Self.exportedCNN()
        let x = HostTensor.random(shape: [3, 2, 8, 8], seed: 1, in: 0...1)
        let whole = try ONNXLayer(data)
        #expect(relativeDifference(try Self.run(whole, x), try Self.run(model, x)) <= 1e-6)
        let base = Sequential(Array(model.layers.prefix(4)))
        let byNode = try ONNXLayer(data, upTo: "flatten1")
        #expect(byNode.output == "flatten1" && byNode.input == "image")
        #expect(relativeDifference(try Self.run(byNode, x), try Self.run(base, x)) <= 1e-6)
        #expect(try Self.run(try ONNXLayer(data, upTo: "conv1.relu"), x).shape == [3, 3, 6, 6])
    }

    @Test("bad uses: a name the model lacks, a model of two inputs, an input of the wrong shape")
    func errors() throws {
        let (_, data) = try Self.exportedCNN()
        #expect(throws: LatheError.self) { try ONNXLayer(data, upTo: "nothing") }
        #expect(throws: LatheError.self) { try Self.run(try ONNXLayer(data), HostTensor(shape: [1, 3, 8, 8])) }
        let g = Graph()
        let a = try g.input("a", shape: [2]), b = try g.input("b", shape: [2])
        let twoInputs = try ONNXExporter.export(g, outputs: [("sum", try a.adding(b).id)])
        #expect(throws: LatheError.self) { try ONNXLayer(twoInputs) }
    }

    @Test("frozen under a new head: its weights are constants of the step and stay as they were")
    func frozenBase() throws {
        let (_, data) = try Self.exportedCNN()
        let base = try ONNXLayer(data, upTo: "flatten1")
        base.trainable = false
        let head = Dense(2)
        let step = try TrainingStep(model: Sequential { base; head }, inputShape: [4, 2, 8, 8], targetShape: [4, 2], loss: .meanSquaredError,
                                    optimizer: .adam(learningRate: 0.05), seed: 1)
        #expect(step.graph.trainableVariables.map { step.graph[$0].name } == ["dense1.weight", "dense1.bias"])
        let probe = HostTensor.random(shape: [2, 2, 8, 8], seed: 9, in: 0...1)
        let before = try Self.run(base, probe)
        for k in 1...3 {
            _ = try step.run(input: HostTensor.random(shape: [4, 2, 8, 8], seed: UInt64(k), in: 0...1), target: HostTensor.random(shape: [4, 2], seed: UInt64(k)))
        }
        try step.writeBack()
        #expect(try Self.run(base, probe).scalars == before.scalars)
        #expect(head.parameters.weight != nil)
    }

    @Test("fine-tuned: its weights (not a BatchNorm's statistics) train, and later graphs use what they learned")
    func fineTuned() throws {
        let (_, data) = try Self.exportedCNN()
        let layer = try ONNXLayer(data)
        let step = try TrainingStep(model: layer, inputShape: [4, 2, 8, 8], targetShape: [4, 4], loss: .softmaxCrossEntropy,
                                    optimizer: .sgd(learningRate: 0.5), seed: 1)
        let names = step.graph.trainableVariables.map { step.graph[$0].name }
        #expect(names.count == 6 && names.allSatisfy { $0.hasPrefix("onnx1.") }, "\(names)")
        #expect(!names.contains { $0.hasSuffix("mean") || $0.hasSuffix("variance") }, "\(names)")
        let probe = HostTensor.random(shape: [2, 2, 8, 8], seed: 9, in: 0...1)
        let before = try Self.run(layer, probe)
        var target = HostTensor(shape: [4, 4])
        for row in 0..<4 { target.scalars[row * 4 + row] = 1 }
        for k in 1...3 { _ = try step.run(input: HostTensor.random(shape: [4, 2, 8, 8], seed: UInt64(k), in: 0...1), target: target) }
        try step.writeBack()
        #expect(try Self.run(layer, probe).scalars != before.scalars)
    }
}
