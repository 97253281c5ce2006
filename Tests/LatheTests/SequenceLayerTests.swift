import Foundation
import Lathe
import Testing

/// The sequence and transformer layers: compiled against the interpreter, and the recurrent
/// cells against a direct Swift transcription of Keras' equations.
@Suite("Sequence and transformer layers")
struct SequenceLayerTests {
    func run(_ layer: any Layer, input shape: [Int], range: ClosedRange<Float> = -1...1, seed: UInt64 = 5) throws -> (compiled: HostTensor, interpreted: HostTensor, input: HostTensor) {
        let g = Graph(seed: seed)
        let y = try layer(try g.input("x", shape: shape))
        let x = HostTensor.random(shape: shape, seed: seed, in: range)
        let compiled = try g.compile(outputs: ["y": y]).run(["x": x])["y"]!
        let interpreted = try g.interpret(outputs: [("y", y)], feeds: ["x": x])["y"]!
        return (compiled, interpreted, x)
    }

    @Test(arguments: [false, true])
    func lstmFollowsKerasEquations(_ returnSequences: Bool) throws {
        let (batch, steps, features, units) = (3, 5, 2, 4)
        let kernel = HostTensor.random(shape: [features, 4 * units], seed: 1), recurrent = HostTensor.random(shape: [units, 4 * units], seed: 2)
        let bias = HostTensor.random(shape: [4 * units], seed: 3)
        let r = try run(LSTM(units, returnSequences: returnSequences, kernel: kernel, recurrentKernel: recurrent, bias: bias), input: [batch, steps, features])
        #expect(relativeError(r.compiled, r.interpreted) <= 1e-5)
        // Keras: z = x K + h R + b, gates i, f, c, o in that order.
        func sigmoid(_ v: Float) -> Float { 1 / (1 + Foundation.exp(-v)) }
        var expected: [Float] = []
        var perStep = [[Float]](repeating: [], count: steps)
        for b in 0..<batch {
            var h = [Float](repeating: 0, count: units), c = h
            for t in 0..<steps {
                var z = bias.scalars
                for j in 0..<(4 * units) {
                    for f in 0..<features { z[j] += r.input.scalars[(b * steps + t) * features + f] * kernel.scalars[f * 4 * units + j] }
                    for k in 0..<units { z[j] += h[k] * recurrent.scalars[k * 4 * units + j] }
                }
                for u in 0..<units {
                    c[u] = sigmoid(z[units + u]) * c[u] + sigmoid(z[u]) * Foundation.tanh(z[2 * units + u])
                    h[u] = sigmoid(z[3 * units + u]) * Foundation.tanh(c[u])
                }
                perStep[t] = h
                if returnSequences { expected += h }
            }
            if !returnSequences { expected += h }
        }
        #expect(r.compiled.shape == (returnSequences ? [batch, steps, units] : [batch, units]))
        #expect(relativeError(r.compiled, try HostTensor(shape: r.compiled.shape, scalars: expected)) <= 1e-5)
    }

    @Test func gruFollowsKerasResetAfterEquations() throws {
        let (batch, steps, features, units) = (2, 4, 3, 5)
        let kernel = HostTensor.random(shape: [features, 3 * units], seed: 4), recurrent = HostTensor.random(shape: [units, 3 * units], seed: 5)
        let bias = HostTensor.random(shape: [3 * units], seed: 6), recurrentBias = HostTensor.random(shape: [3 * units], seed: 7)
        let r = try run(GRU(units, kernel: kernel, recurrentKernel: recurrent, bias: bias, recurrentBias: recurrentBias), input: [batch, steps, features])
        #expect(relativeError(r.compiled, r.interpreted) <= 1e-5)
        func sigmoid(_ v: Float) -> Float { 1 / (1 + Foundation.exp(-v)) }
        var expected: [Float] = []
        for b in 0..<batch {
            var h = [Float](repeating: 0, count: units)
            for t in 0..<steps {
                var xz = bias.scalars, hz = recurrentBias.scalars
                for j in 0..<(3 * units) {
                    for f in 0..<features { xz[j] += r.input.scalars[(b * steps + t) * features + f] * kernel.scalars[f * 3 * units + j] }
                    for k in 0..<units { hz[j] += h[k] * recurrent.scalars[k * 3 * units + j] }
                }
                h = (0..<units).map { u in
                    let z = sigmoid(xz[u] + hz[u]), reset = sigmoid(xz[units + u] + hz[units + u])
                    let candidate = Foundation.tanh(xz[2 * units + u] + reset * hz[2 * units + u])
                    return z * h[u] + (1 - z) * candidate
                }
            }
            expected += h
        }
        #expect(relativeError(r.compiled, try HostTensor(shape: [batch, units], scalars: expected)) <= 1e-5)
    }

    @Test func simpleRNNAndEmbeddingAndUpsampleMatchTheInterpreter() throws {
        let rnn = try run(SimpleRNN(7, returnSequences: true), input: [3, 6, 4])
        #expect(rnn.compiled.shape == [3, 6, 7])
        #expect(relativeError(rnn.compiled, rnn.interpreted) <= 1e-5)
        let embedded = try run(Embedding(vocabulary: 11, dimension: 9), input: [2, 5], range: 0...10.9)
        #expect(embedded.compiled.shape == [2, 5, 9])
        #expect(embedded.compiled == embedded.interpreted)
        let up = try run(Upsample2D(3), input: [1, 2, 3, 4])
        #expect(up.compiled.shape == [1, 2, 9, 12])
        #expect(up.compiled.scalars[0] == up.input.scalars[0] && up.compiled.scalars[2] == up.input.scalars[0] && up.compiled.scalars[3] == up.input.scalars[1])
        #expect(up.compiled == up.interpreted)
    }

    @Test func causalAttentionIgnoresTheFuture() throws {
        // Changing the last token must not change the first position's output.
        let attention = MultiHeadAttention(heads: 2, keyDim: 4, causal: true)
        let g = Graph(seed: 1)
        let y = try attention(try g.input("x", shape: [1, 5, 8]))
        let model = try g.compile(outputs: ["y": y])
        var x = HostTensor.random(shape: [1, 5, 8], seed: 2)
        let before = try model.run(["x": x])["y"]!
        for i in 32..<40 { x.scalars[i] += 1 }
        let after = try model.run(["x": x])["y"]!
        #expect(Array(before.scalars[0..<32]) == Array(after.scalars[0..<32]))
        #expect(Array(before.scalars[32..<40]) != Array(after.scalars[32..<40]))
        #expect(relativeError(after, try g.interpret(outputs: [("y", y)], feeds: ["x": x])["y"]!) <= 1e-5)
    }

    @Test func layerNormNormalizesTheLastAxis() throws {
        let r = try run(LayerNorm(epsilon: 1e-6), input: [2, 3, 16], range: -5...5)
        #expect(relativeError(r.compiled, r.interpreted) <= 1e-5)
        for row in 0..<6 {
            let v = r.compiled.scalars[(row * 16)..<(row * 16 + 16)]
            let mean = v.reduce(0, +) / 16
            let variance = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 16
            #expect(abs(mean) < 1e-5 && abs(variance - 1) < 1e-3)
        }
    }
}
