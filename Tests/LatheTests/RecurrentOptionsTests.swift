import Foundation
import Lathe
import Testing

private let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Data/recurrent")

/// A tensor of the PyTorch fixture (tools/mkrecurrentfixture.py).
private func load(_ name: String) throws -> HostTensor { try HostTensor(npyFile: fixture.appendingPathComponent("\(name).npy")) }

/// A [rows, columns] tensor transposed.
private func transposed(_ t: HostTensor) throws -> HostTensor {
    let (rows, columns) = (t.shape[0], t.shape[1])
    var out = [Float](repeating: 0, count: t.count)
    for r in 0..<rows { for c in 0..<columns { out[c * rows + r] = t.scalars[r * columns + c] } }
    return try HostTensor(shape: [columns, rows], scalars: out)
}

/// The gate blocks of `t` (blocks of `size` along its last axis) in `order`.
private func reordered(_ t: HostTensor, blocks order: [Int], size: Int) throws -> HostTensor {
    let rows = t.shape.count == 1 ? 1 : t.shape[0], width = t.shape.last!
    var out: [Float] = []
    for r in 0..<rows { for block in order { out += t.scalars[(r * width + block * size)..<(r * width + (block + 1) * size)] } }
    return try HostTensor(shape: t.shape, scalars: out)
}

/// Recurrent layers as the courses write them: activations, initial and final state,
/// Bidirectional; against PyTorch's nn.LSTM and nn.GRU on the same weights, and their gradients
/// against finite differences.
@Suite("Recurrent layers: activations, states, Bidirectional")
struct RecurrentOptionsTests {
    /// PyTorch's LSTM weights as Keras' (gates i, f, g, o in both): kernels transposed, the two biases summed.
    static func lstm(_ prefix: String, _ suffix: String = "", returnSequences: Bool = true) throws -> LSTM {
        let bias = zip(try load("\(prefix).bias_ih\(suffix)").scalars, try load("\(prefix).bias_hh\(suffix)").scalars).map(+)
        return LSTM(4, returnSequences: returnSequences, kernel: try transposed(load("\(prefix).weight_ih\(suffix)")),
                    recurrentKernel: try transposed(load("\(prefix).weight_hh\(suffix)")), bias: try HostTensor(shape: [16], scalars: bias))
    }

    /// The compiled outputs of `build` on the fixture's input (and initial states).
    static func run(_ inputs: [String: HostTensor], _ build: (Graph, [String: Tensor]) throws -> [String: Tensor]) throws -> [String: HostTensor] {
        let g = Graph()
        var tensors: [String: Tensor] = [:]
        for (name, value) in inputs { tensors[name] = try g.input(name, shape: value.shape) }
        return try g.compile(outputs: try build(g, tensors).sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) }).run(inputs)
    }

    @Test("LSTM from an initial state: every step and the final h and c equal nn.LSTM's")
    func lstmMatchesPyTorch() throws {
        let layer = try Self.lstm("lstm")
        let out = try Self.run(["x": try load("lstm.x"), "h0": try load("lstm.h0"), "c0": try load("lstm.c0")]) { _, t in
            let (sequence, state) = try layer(t["x"]!, initialState: [t["h0"]!, t["c0"]!])
            return ["output": sequence, "h": state[0], "c": state[1]]
        }
        #expect(relativeError(out["output"]!, try load("lstm.output")) <= 1e-5)
        #expect(relativeError(out["h"]!, try load("lstm.hn")) <= 1e-5)
        #expect(relativeError(out["c"]!, try load("lstm.cn")) <= 1e-5)
    }

    @Test("GRU from an initial state equals nn.GRU (gates r, z, n there; z, r, h here)")
    func gruMatchesPyTorch() throws {
        // PyTorch's blocks r, z, n to Keras' z, r, h (weights transposed first, the blocks then columns).
        func keras(_ name: String) throws -> HostTensor {
            let t = try load(name)
            return try reordered(t.shape.count == 2 ? transposed(t) : t, blocks: [1, 0, 2], size: 4)
        }
        let layer = GRU(4, returnSequences: true, kernel: try keras("gru.weight_ih"), recurrentKernel: try keras("gru.weight_hh"),
                        bias: try keras("gru.bias_ih"), recurrentBias: try keras("gru.bias_hh"))
        let out = try Self.run(["x": try load("gru.x"), "h0": try load("gru.h0")]) { _, t in
            let (sequence, state) = try layer(t["x"]!, initialState: [t["h0"]!])
            return ["output": sequence, "h": state[0]]
        }
        #expect(relativeError(out["output"]!, try load("gru.output")) <= 1e-5)
        #expect(relativeError(out["h"]!, try load("gru.hn")) <= 1e-5)
    }

    @Test("Bidirectional(LSTM) equals a bidirectional nn.LSTM: the backward sequence back in order, beside the forward one")
    func bidirectionalMatchesPyTorch() throws {
        let layer = Bidirectional(try Self.lstm("bilstm"), backward: try Self.lstm("bilstm", "_reverse"))
        let out = try Self.run(["x": try load("bilstm.x")]) { _, t in ["output": try layer(t["x"]!)] }
        #expect(out["output"]!.shape == [2, 5, 8])
        #expect(relativeError(out["output"]!, try load("bilstm.output")) <= 1e-5)
    }

    static let kernel = HostTensor.random(shape: [3, 16], seed: 1, in: -0.5...0.5), recurrent = HostTensor.random(shape: [4, 16], seed: 2, in: -0.5...0.5)

    static let gradientCases: [OpCase] = [
        OpCase("LSTM(relu) from a state, every step", [Operand(shape: [2, 4, 3]), Operand(shape: [2, 4]), Operand(shape: [2, 4])]) { t in
            try LSTM(4, activation: .relu, returnSequences: true, kernel: kernel, recurrentKernel: recurrent)(t[0], initialState: [t[1], t[2]]).output
        },
        OpCase("LSTM's final c", [Operand(shape: [2, 4, 3]), Operand(shape: [2, 4]), Operand(shape: [2, 4])]) { t in
            try LSTM(4, kernel: kernel, recurrentKernel: recurrent)(t[0], initialState: [t[1], t[2]]).state[1]
        },
        OpCase("GRU(leaky ReLU gates) from a state", [Operand(shape: [2, 4, 3]), Operand(shape: [2, 3])]) { t in
            try GRU(3, recurrentActivation: .leakyRelu(alpha: 0.2), returnSequences: true)(t[0], initialState: [t[1]]).output
        },
        OpCase("SimpleRNN(relu) from a state", [Operand(shape: [2, 4, 3]), Operand(shape: [2, 5])]) { t in
            try SimpleRNN(5, activation: .relu)(t[0], initialState: [t[1]]).output
        },
        OpCase("Bidirectional(LSTM) concatenated", [Operand(shape: [2, 4, 3])]) { t in try Bidirectional(LSTM(3, returnSequences: true))(t[0]) },
        OpCase("Bidirectional(GRU) averaged", [Operand(shape: [2, 4, 3])]) { t in try Bidirectional(GRU(3), merge: .average)(t[0]) },
    ]

    @Test("gradients against finite differences", arguments: gradientCases)
    func gradients(_ c: OpCase) throws {
        let error = try gradientCheck(c)
        #expect(error < 1e-2, "\(c): worst error \(error)")
    }

    @Test("bad uses: a state of the wrong count or shape, directions that disagree")
    func errors() throws {
        let g = Graph()
        let x = try g.input("x", shape: [2, 4, 3]), h = try g.input("h", shape: [2, 5]), wrong = try g.input("w", shape: [3, 5])
        #expect(throws: LatheError.self) { try LSTM(5)(x, initialState: [h]) }
        #expect(throws: LatheError.self) { try GRU(5)(x, initialState: [wrong]) }
        #expect(throws: LatheError.self) { try Bidirectional(LSTM(5, returnSequences: true), backward: LSTM(5))(x) }
        #expect(throws: LatheError.self) { try Bidirectional(LSTM(5), backward: LSTM(4), merge: .sum)(x) }
        #expect(try Bidirectional(LSTM(5), backward: LSTM(4))(x).shape == [2, 9])
    }
}
