/// A whole training step compiled into one native function: the model's forward pass, the
/// loss, the backward pass autodiff builds, and the optimizer's updates, with one static arena.
/// The weights and the optimizer's state are variables in the compiled model's weights region:
/// each step updates them in place, and they stay there between steps.
public final class TrainingStep {
    public let graph: Graph
    public let compiled: CompiledModel
    public let optimizer: Optimizer
    /// The shape of a batch of inputs and of targets.
    public let inputShape: [Int], targetShape: [Int]
    /// The loss (with any weight penalty) and the model's output in `graph`.
    public let loss: ValueID, prediction: ValueID
    /// Steps run so far.
    public private(set) var stepsRun = 0
    /// The learning rate of the next step (change it for a schedule).
    public var learningRate: Float
    private var scalars: [String: [Float]] = [:]
    private var lossBuffer = [Float](repeating: 0, count: 1)

    /// Builds `model` on a new training graph at `inputShape` (batch first), adds `loss`
    /// against a target of `targetShape`, L1/L2 penalties on the kernels' weights (not biases or scales),
    /// the gradients (clipped by `clipping`, if given) and the updates, and compiles it all for
    /// `threads` threads. With `followsFrozenLayers`, the frozen layers' weights are variables
    /// that `refreshFrozenWeights` sets from the layers before a step (a GAN's generator step
    /// reads the discriminator its own step trains); else constants of the step.
    public init(model: any Layer, inputShape: [Int], targetShape: [Int], loss: Loss, optimizer: Optimizer,
                l1: Float = 0, l2: Float = 0, clipping: GradientClipping? = nil, followsFrozenLayers: Bool = false,
                seed: UInt64 = 0, threads: Int = 1, cache: Bool = true) throws {
        let g = Graph(seed: seed)
        g.isTraining = true
        g.frozenWeightsAreVariables = followsFrozenLayers
        let x = try g.input("input", shape: inputShape)
        let target = try g.input("target", shape: targetShape)
        let prediction = try model(x)
        var total = try loss(prediction, target)
        let parameters = g.trainableVariables
        guard !parameters.isEmpty else { throw LatheError.invalidGraph(node: "model", reason: "it has no weights to train") }
        if l1 != 0 || l2 != 0 {
            let weights = parameters.filter { g.penalizedVariables.contains($0) }.map { Tensor(graph: g, id: $0) }
            total = try total.addingWeightPenalty(weights, l1: l1, l2: l2)
        }
        var gradients = try g.gradients(of: total.id, wrt: parameters)
        if let clipping { gradients = try clipping.clipped(gradients, in: g) }
        try optimizer.addUpdates(g, parameters: parameters, gradients: gradients)
        graph = g
        self.loss = total.id
        self.prediction = prediction.id
        self.optimizer = optimizer
        self.inputShape = inputShape
        self.targetShape = targetShape
        learningRate = optimizer.learningRate
        compiled = try g.compile(outputs: ["loss": total, "prediction": prediction], options: CompileOptions(threads: threads, cache: cache))
    }

    /// The model's output per batch (the prediction output), in floats.
    public var predictionCount: Int { compiled.outputType("prediction")?.count ?? 0 }

    /// Runs one step on a batch: forward, backward, update. Returns the batch's loss and writes
    /// the model's output to `prediction` (predictionCount floats). Buffers are the batch's
    /// inputs and targets, row-major, exactly the sizes of the shapes.
    public func run(input: UnsafeBufferPointer<Float>, target: UnsafeBufferPointer<Float>, prediction: UnsafeMutableBufferPointer<Float>) throws -> Float {
        try withBuffers(input: input, target: target, prediction: prediction) { try compiled.run(inputs: $0, outputs: $1) }
        return lossBuffer[0]
    }

    /// Runs one step and returns the seconds each kernel took (CompiledModel.profile).
    public func profile(input: UnsafeBufferPointer<Float>, target: UnsafeBufferPointer<Float>, prediction: UnsafeMutableBufferPointer<Float>) throws -> [Double] {
        var times: [Double] = []
        try withBuffers(input: input, target: target, prediction: prediction) { times = try compiled.profile(inputs: $0, outputs: $1) }
        return times
    }

    /// The compiled model's input and output buffers for the next step, in its order; counts the step.
    private func withBuffers(input: UnsafeBufferPointer<Float>, target: UnsafeBufferPointer<Float>, prediction: UnsafeMutableBufferPointer<Float>,
                             _ body: ([UnsafeBufferPointer<Float>], [UnsafeMutableBufferPointer<Float>]) throws -> Void) throws {
        for (name, value) in optimizer.scalars(step: stepsRun + 1, learningRate: learningRate) { scalars[name] = [value] }
        scalars[Graph.trainingStepInput] = [Float(stepsRun % (1 << 24))]
        func nest(_ specs: ArraySlice<InputSpec>, _ done: [UnsafeBufferPointer<Float>]) throws {
            guard let spec = specs.first else {
                try lossBuffer.withUnsafeMutableBufferPointer { loss in try body(done, compiled.outputNames.map { $0 == "loss" ? loss : prediction }) }
                return
            }
            switch spec.name {
            case "input": try nest(specs.dropFirst(), done + [input])
            case "target": try nest(specs.dropFirst(), done + [target])
            default:
                guard let values = scalars[spec.name] else { throw LatheError.missingInput(name: spec.name) }
                try values.withUnsafeBufferPointer { try nest(specs.dropFirst(), done + [$0]) }
            }
        }
        try nest(compiled.inputs[...], [])
        stepsRun += 1
    }

    /// One step on host tensors; returns the loss and the prediction.
    public func run(input: HostTensor, target: HostTensor) throws -> (loss: Float, prediction: HostTensor) {
        guard input.shape == inputShape else { throw LatheError.inputShapeMismatch(name: "input", expected: inputShape, got: input.shape) }
        guard target.shape == targetShape else { throw LatheError.inputShapeMismatch(name: "target", expected: targetShape, got: target.shape) }
        var out = HostTensor(shape: compiled.outputType("prediction")?.shape ?? [])
        let loss = try input.scalars.withUnsafeBufferPointer { x in
            try target.scalars.withUnsafeBufferPointer { t in
                try out.scalars.withUnsafeMutableBufferPointer { try run(input: x, target: t, prediction: $0) }
            }
        }
        return (loss, out)
    }

    /// Sets the frozen layers' weights of a step built with `followsFrozenLayers` to the layers'
    /// values now (after another step's writeBack, say).
    public func refreshFrozenWeights() throws { try graph.refreshFrozenVariables(in: compiled) }

    /// The learned weights and statistics by name ("conv1.weight", "batchnorm1.mean"...).
    public func weights() throws -> [(name: String, value: HostTensor)] {
        try graph.learnedVariables.map { v in (graph[v].name, try compiled.variable(graph[v].name)) }
    }

    /// Hands the learned weights back to the model's layers: the model then builds inference
    /// graphs with them.
    public func writeBack() throws {
        for v in graph.learnedVariables { graph.writeBack(v, try compiled.variable(graph[v].name)) }
    }

    /// Replaces weights by name (a file saved earlier); names it does not know are an error.
    public func load(_ weights: [String: HostTensor]) throws {
        let known = Set(graph.learnedVariables.map { graph[$0].name })
        for (name, value) in weights.sorted(by: { $0.key < $1.key }) {
            guard known.contains(name) else { throw LatheError.unknownInput(name: name, known: known.sorted()) }
            try compiled.setVariable(name, to: value)
        }
    }
}
