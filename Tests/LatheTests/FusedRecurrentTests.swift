import Lathe
import LatheCodegen
import Testing

/// The fused recurrent op (Op.recurrent, LatheCodegen/RecurrentKernel.swift) against the
/// interpreter: odd hidden sizes (vector tails), batches that split unevenly among threads, both
/// directions, R^T constant (packed at compile time) or an input (packed every step).
let lstmCases: [OpCase] = [
    (4, 3, 5, false, true), (7, 16, 50, false, true), (3, 5, 9, true, true), (6, 2, 17, true, false), (2, 1, 8, false, false),
].map { steps, batch, hidden, reverse, constantWeights in
    let gates = Operand(shape: [steps, batch, 4 * hidden]), state = Operand(shape: [batch, hidden], range: -1...1)
    let operands = [gates, state, state] + (constantWeights ? [] : [Operand(shape: [hidden, 4 * hidden], range: -0.5...0.5)])
    return OpCase("lstm T\(steps) B\(batch) H\(hidden)\(reverse ? " reverse" : "")\(constantWeights ? "" : ", R^T an input")", operands) { x in
        let r = constantWeights ? x[0].graph.constant(.random(shape: [hidden, 4 * hidden], seed: 41, in: -0.5...0.5)) : x[3]
        return try x[0].apply(.lstm(reverse: reverse), [r, x[1], x[2]], .unknown)
    }
}

/// GRU cells with and without linear_before_reset, and RNN cells, with default and other
/// activations.
let gruAndRNNCases: [OpCase] = [
    (RecurrentCell(.gru, linearBeforeReset: true), 4, 3, 5, true), (RecurrentCell(.gru, reverse: true, linearBeforeReset: true), 7, 16, 19, false),
    (RecurrentCell(.gru), 5, 5, 9, true), (RecurrentCell(.gru, reverse: true, activations: [.hardSigmoid(alpha: 0.3, beta: 0.4), .softsign]), 3, 2, 17, false),
    (RecurrentCell(.rnn), 6, 3, 11, true), (RecurrentCell(.rnn, reverse: true, activations: [.relu]), 4, 7, 16, false),
    (RecurrentCell(.rnn, activations: [.leakyRelu(alpha: 0.1)]), 2, 1, 3, true),
].map { cell, steps, batch, hidden, constantWeights in
    let columns = cell.gates * hidden
    let gates = Operand(shape: [steps, batch, columns]), state = Operand(shape: [batch, hidden], range: -1...1)
    let extra = cell.kind == .gru ? [Operand(shape: [hidden], range: -1...1)] : []
    let operands = [gates, state] + extra + (constantWeights ? [] : [Operand(shape: [hidden, columns], range: -0.5...0.5)])
    let name = "\(cell.kind.rawValue) T\(steps) B\(batch) H\(hidden) \(Op.recurrent(cell).attributeText)\(constantWeights ? "" : ", R^T an input")"
    return OpCase(name, operands) { x in
        let r = constantWeights ? x[0].graph.constant(.random(shape: [hidden, columns], seed: 41, in: -0.5...0.5)) : x[x.count - 1]
        return try x[0].apply(.recurrent(cell), [r, x[1]] + (cell.kind == .gru ? [x[2]] : []), .unknown)
    }
}

/// LSTM cells with peepholes (a fifth operand [3H]), both directions, odd sizes.
let peepholeCases: [OpCase] = [(5, 3, 7, false), (4, 16, 19, true)].map { steps, batch, hidden, reverse in
    let operands = [Operand(shape: [steps, batch, 4 * hidden]), Operand(shape: [batch, hidden], range: -1...1), Operand(shape: [batch, hidden], range: -1...1),
                    Operand(shape: [3 * hidden], range: -1...1)]
    return OpCase("lstm with peepholes T\(steps) B\(batch) H\(hidden)\(reverse ? " reverse" : "")", operands) { x in
        let r = x[0].graph.constant(.random(shape: [hidden, 4 * hidden], seed: 43, in: -0.5...0.5))
        return try x[0].apply(.lstm(reverse: reverse), [r, x[1], x[2], x[3]], .unknown)
    }
}

@Suite("Fused recurrent layers: JIT against the interpreter")
struct FusedRecurrentTests {
    @Test(arguments: [1, 2, 3], lstmCases)
    func lstm(_ threads: Int, _ c: OpCase) throws { #expect(try compiledVersusInterpreter(c, threads: threads) <= 1e-5) }

    @Test(arguments: [1, 2], peepholeCases)
    func lstmWithPeepholes(_ threads: Int, _ c: OpCase) throws { #expect(try compiledVersusInterpreter(c, threads: threads) <= 1e-5) }

    @Test(arguments: [1, 2, 3], gruAndRNNCases)
    func gruAndRNN(_ threads: Int, _ c: OpCase) throws { #expect(try compiledVersusInterpreter(c, threads: threads) <= 1e-5) }

    /// A GRU without linear_before_reset multiplies r into h_prev before its candidate product,
    /// so reads R^T's columns in two parts: unpacked.
    @Test func gruWithoutLinearBeforeResetReadsItsWeightsUnpacked() throws {
        let g = Graph(seed: 1)
        let gates = try g.input("gates", shape: [5, 16, 150]), h0 = try g.input("h0", shape: [16, 50])
        let weights = g.constant(.random(shape: [50, 150], seed: 2)), bias = g.constant(.random(shape: [50], seed: 3))
        for (reset, layout) in [(true, WeightLayout.gemmColumnPanels(depth: 50, columns: 150, panel: 16)), (false, .plain)] {
            let y = try gates.apply(.recurrent(RecurrentCell(.gru, linearBeforeReset: reset)), [weights, h0, bias], .unknown)
            let kernel = try #require(try KernelProgram.build(g, outputs: [("y", y.id)], threads: 2).kernels.first { $0.name.hasSuffix("gru") })
            #expect(kernel.weightLayout == layout)
        }
    }

    /// Constant recurrent weights are read packed; the batch is split among threads when it is
    /// large enough.
    @Test func weightsArePackedAndTheBatchSplit() throws {
        let g = Graph(seed: 1)
        let gates = try g.input("gates", shape: [30, 16, 200]), h0 = try g.input("h0", shape: [16, 50]), c0 = try g.input("c0", shape: [16, 50])
        let y = try gates.apply(.lstm(reverse: false), [g.constant(.random(shape: [50, 200], seed: 2)), h0, c0], .unknown)
        let kernel = try #require(try KernelProgram.build(g, outputs: [("y", y.id)], threads: 2).kernels.first { $0.name.hasSuffix("lstm") })
        #expect(kernel.weightLayout == .gemmColumnPanels(depth: 50, columns: 200, panel: 16))
        #expect(kernel.split == .units(16))
    }

    @Test func shapesAreChecked() throws {
        let g = Graph(seed: 1)
        let gates = try g.input("gates", shape: [3, 2, 20]), state = try g.input("h", shape: [2, 5])
        #expect(throws: LatheError.self) { try gates.apply(.lstm(reverse: false), [g.constant(.random(shape: [4, 20], seed: 2)), state, state], .unknown) }
        #expect(throws: LatheError.self) { try gates.apply(.lstm(reverse: false), [g.constant(.random(shape: [5, 20], seed: 2)), state, try g.input("c", shape: [3, 5])], .unknown) }
    }
}
