import Lathe
import LatheExamples
import Testing

@Suite("Example models end to end: compiled against the interpreter")
struct SeedModelTests {
    @Test(arguments: Examples.all.map { ($0.name, $0.defaultBatch) } + [("mnist-mlp", 1), ("mnist-cnn", 64), ("lstm-timeseries", 1)])
    func matchesInterpreter(_ name: String, _ batch: Int) throws {
        let example = try #require(Examples.named(name))
        let (graph, outputs) = try example.graph(batch: batch, seed: 3)
        let model = try graph.compile(outputs: outputs)
        var feeds: [String: HostTensor] = [:]
        for (i, input) in model.inputs.enumerated() { feeds[input.name] = HostTensor.random(shape: input.shape, dtype: input.dtype, seed: UInt64(i)) }
        let got = try model.run(feeds)
        let expected = try graph.interpret(outputs: outputs, feeds: feeds)
        for output in outputs {
            #expect(relativeError(got[output.name]!, expected[output.name]!) <= 1e-5, "\(name) batch \(batch) output \(output.name)")
        }
    }

    /// The classifier's rows are probability distributions.
    @Test func cnnOutputsDistributions() throws {
        let (graph, outputs) = try Examples.mnistCNN.graph(batch: 4)
        let model = try graph.compile(outputs: outputs)
        let probs = try model.run(["image": HostTensor.random(shape: [4, 1, 28, 28], seed: 9, in: 0...1)])["probs"]!
        for row in 0..<4 {
            let sum = probs.scalars[(row * 10)..<(row * 10 + 10)].reduce(0, +)
            #expect(abs(sum - 1) < 1e-5)
        }
    }

    /// One layer object applied to two graphs keeps its weights: batch 1 and batch 2 agree.
    @Test func layersKeepWeightsAcrossGraphs() throws {
        let model = Sequential {
            Conv2D(4, kernel: 3, padding: .same, activation: .relu)
            Flatten()
            Dense(3)
        }
        let image = HostTensor.random(shape: [1, 2, 5, 5], seed: 1)
        let single = Graph(seed: 1)
        let one = try single.compile(outputs: ["y": try model(try single.input("x", shape: [1, 2, 5, 5]))]).run(["x": image])["y"]!
        let pair = Graph(seed: 99)
        let two = try pair.compile(outputs: ["y": try model(try pair.input("x", shape: [2, 2, 5, 5]))])
            .run(["x": try HostTensor(shape: [2, 2, 5, 5], scalars: image.scalars + image.scalars)])["y"]!
        #expect(Array(two.scalars[0..<3]) == one.scalars)
        #expect(Array(two.scalars[3..<6]) == one.scalars)
    }

    /// The same model twice compiled from one seed gives bit-identical results.
    @Test func seededBuildsAreReproducible() throws {
        let a = try Examples.mnistMLP.graph(batch: 2, seed: 5)
        let b = try Examples.mnistMLP.graph(batch: 2, seed: 5)
        let x = HostTensor.random(shape: [2, 784], seed: 2)
        let ya = try a.graph.compile(outputs: a.outputs).run(["image": x])["probs"]!
        let yb = try b.graph.compile(outputs: b.outputs).run(["image": x])["probs"]!
        #expect(ya == yb)
    }
}

@Suite("Memory plans of the example models")
struct MemoryPlanOfModelsTests {
    @Test(arguments: Examples.all.map(\.name))
    func arenaIsNearTheLowerBound(_ name: String) throws {
        let (graph, outputs) = try Examples.named(name)!.graph()
        let report = try Inspection(graph, outputs: outputs.map { ($0.name, $0.value.id) })
        let m = report.memory
        #expect(m.arenaBytes >= m.lowerBoundBytes)
        #expect(Double(m.arenaBytes) <= 1.1 * Double(m.lowerBoundBytes), "\(name): arena \(m.arenaBytes), bound \(m.lowerBoundBytes)")
        // Below the naive sum wherever any two buffers could share (simple-nn's two cannot).
        #expect(m.arenaBytes <= m.naiveBytes)
        if m.lowerBoundBytes < m.naiveBytes { #expect(m.arenaBytes < m.naiveBytes) }
        #expect(report.kernels.count > 0 && report.kernels.allSatisfy { $0.bytes > 0 || $0.inPlaceOf != nil })
    }
}
