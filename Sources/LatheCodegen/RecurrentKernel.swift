import CLLVM
import LatheIR

/// The fused recurrent layers (Op.recurrent: LSTM, GRU, RNN): a whole layer's time steps in
/// one kernel. Unrolled into per-step kernels, a small LSTM (the seed time-series model: 30
/// steps, batch 16, 50 units) spends its time between kernels: a 16 x 50 x 200 product of 4
/// microseconds, then slices, two small gate kernels, and each kernel's start, 8 kernels a step.
/// Here each step is one packed GEMM (gates = h_prev R^T, with R^T packed at compile time) into
/// a scratch row block, then one pass over the block that applies the gates and writes the new
/// state straight into the result, where the next step reads it:
///
/// - LSTM: the step's input share is added in the GEMM's epilogue; the pass writes c_t and h_t.
/// - GRU with linear_before_reset (PyTorch's and Keras' GRU): one GEMM over all three gates; the
///   pass adds the input share, applies r to the candidate's recurrent part, and mixes.
/// - GRU without it: a GEMM over z and r, a pass that writes r * h_prev to scratch, a second
///   GEMM of that by the candidate's columns of R^T (R^T then read unpacked), the final pass.
/// - RNN: one GEMM whose epilogue adds the input share, applies f and stores h_t.
///
/// The batch rows never meet: row b's state depends only on row b's past. So the threads split
/// the batch (`.units`) and each runs all the steps on its rows, with no barrier between steps.
struct RecurrentGeometry {
    let cell: RecurrentCell
    let steps: Int, batch: Int, hidden: Int
    var gateColumns: Int { cell.gates * hidden }

    /// From the op's cell and its gates_x shape [T, B, G*H].
    init?(cell: RecurrentCell, gatesShape: [Int]) {
        guard gatesShape.count == 3, gatesShape[2] % cell.gates == 0 else { return nil }
        self.cell = cell
        (steps, batch, hidden) = (gatesShape[0], gatesShape[1], gatesShape[2] / cell.gates)
    }

    /// Whether R^T may be packed at compile time: every GEMM reads all its columns.
    var packsWeights: Bool { !(cell.kind == .gru && !cell.linearBeforeReset) }

    /// The most batch rows one thread takes.
    func rowsPerThread(_ split: ThreadSplit, threads: Int) -> Int {
        if case .units = split { return (batch + threads - 1) / threads }
        return batch
    }

    /// A thread's scratch: its rows of the gates (and of r * h_prev), then the GEMM's packing buffer.
    func scratchFloats(rows: Int, prepackedWeights: Bool) -> Int {
        let reset = cell.kind == .gru && !cell.linearBeforeReset ? rows * hidden : 0
        return rows * gateColumns + reset + GemmBlocking.packingFloats(m: rows, n: gateColumns, k: hidden, packsB: !prepackedWeights, always: true)
    }
}

extension IRBuilder {
    func recurrentSequence(_ l: RecurrentGeometry, output: LLVMValue, operands x: [LLVMValue], scratch: LLVMValue, threadScratchFloats: Int,
                           prepackedWeights: Bool, split: ThreadSplit, thread: LLVMValue, threads: Int) {
        let (steps, batch, hidden, columns, cell) = (l.steps, l.batch, l.hidden, l.gateColumns, l.cell)
        let (gatesX, weights, h0) = (x[0], x[1], x[2])
        let most = l.rowsPerThread(split, threads: threads)
        let gates = pointer(scratch, imul(thread, int(threadScratchFloats)))
        let reset = pointer(gates, int(most * columns))
        let packing = pointer(gates, int(most * columns + (cell.kind == .gru && !cell.linearBeforeReset ? most * hidden : 0)))
        let (start, end) = unitShare(split, count: batch, thread: thread, threads: threads)
        let rows = isub(end, start)
        let plane = batch * hidden
        let blocking = GemmBlocking(vectorWidth: vectorWidth, rowsAtMost: most)
        let f = cell.activations[0].formula
        /// h_prev R^T (columns [first, first + count) of it) into `into`, plus the epilogue.
        func product(_ a: MatrixView, first: Int, count: Int, into c: MatrixView, epilogue: GemmEpilogue?) {
            packedGemm(blocking, m: rows, n: int(count), maxM: most, k: hidden, a: a,
                       b: MatrixView(base: weights, offset: int(first), rowStride: columns), c: c,
                       bias: .none, epilogue: epilogue, packing: packing, prepackedB: prepackedWeights)
        }
        /// For each of the thread's rows, `body(gate row offset, state row offset, j, lanes)` over the hidden units.
        func eachUnit(_ body: (LLVMValue, LLVMValue, LLVMValue, Int) -> Void) {
            loop(from: int(0), to: rows) { r in
                let gateRow = imul(r, int(columns)), stateRow = imul(iadd(start, r), int(hidden))
                let vectorEnd = hidden / vectorWidth * vectorWidth
                loop(0, vectorEnd, step: vectorWidth, unroll: false) { j in body(gateRow, stateRow, j, vectorWidth) }
                loop(vectorEnd, hidden, unroll: false) { j in body(gateRow, stateRow, j, 1) }
            }
        }
        ifElse(LLVMBuildICmp(builder, LLVMIntSGT, rows, int(0), "")!, then: {
            loop(from: int(0), to: int(steps)) { s in
                let t = cell.reverse ? isub(int(steps - 1), s) : s
                let previous = cell.reverse ? iadd(t, int(1)) : isub(t, int(1))
                let first = LLVMBuildICmp(builder, LLVMIntEQ, s, int(0), "")!
                let hPrevious = LLVMBuildSelect(builder, first, h0, pointer(output, imul(previous, int(plane))), "")!
                let hOut = pointer(output, imul(t, int(plane)))
                let stepInputs = pointer(gatesX, imul(iadd(imul(t, int(batch)), start), int(columns)))
                let hView = MatrixView(base: hPrevious, offset: imul(start, int(hidden)), rowStride: hidden)
                let gateView = MatrixView(base: gates, offset: int(0), rowStride: columns)
                switch cell.kind {
                case .lstm:
                    let cPrevious = LLVMBuildSelect(builder, first, x[3], pointer(output, imul(iadd(previous, int(steps)), int(plane))), "")!
                    let cOut = pointer(output, imul(iadd(t, int(steps)), int(plane)))
                    // gates[r, :] = gates_x[t, start + r, :] + h_prev[start + r, :] R^T
                    product(hView, first: 0, count: columns, into: gateView, epilogue: GemmEpilogue(formula: .arg(0) + .arg(1), extras: [(stepInputs, false)]))
                    let (g, h) = (cell.activations[1].formula, cell.activations[2].formula)
                    let peepholes = x.count > 4 ? x[4] : nil
                    eachUnit { gateRow, stateRow, j, lanes in
                        func preactivation(_ k: Int) -> LLVMValue { load(gates, iadd(gateRow, iadd(int(k * hidden), j)), lanes: lanes) }
                        /// The gate's preactivation plus its peephole (P_i, P_o, P_f: part `p`) times `state`.
                        func peeped(_ k: Int, _ p: Int, _ state: LLVMValue) -> LLVMValue {
                            guard let peepholes else { return preactivation(k) }
                            return fma(load(peepholes, iadd(int(p * hidden), j), lanes: lanes), state, preactivation(k))
                        }
                        let at = iadd(stateRow, j)
                        let cPrev = load(cPrevious, at, lanes: lanes)
                        let (i, forget, candidate) = (emit(f, [peeped(0, 0, cPrev)]), emit(f, [peeped(2, 2, cPrev)]), emit(g, [preactivation(3)]))
                        let c = fma(forget, cPrev, mul(i, candidate))
                        store(c, cOut, at)
                        store(mul(emit(f, [peeped(1, 1, c)]), emit(h, [c])), hOut, at)
                    }
                case .gru:
                    let g = cell.activations[1].formula
                    let candidateBias = x[3]
                    func inputShare(_ gateRow: LLVMValue, _ k: Int, _ j: LLVMValue, _ lanes: Int) -> LLVMValue {
                        load(stepInputs, iadd(gateRow, iadd(int(k * hidden), j)), lanes: lanes)
                    }
                    func gate(_ gateRow: LLVMValue, _ k: Int, _ j: LLVMValue, _ lanes: Int) -> LLVMValue {
                        emit(f, [add(inputShare(gateRow, k, j, lanes), load(gates, iadd(gateRow, iadd(int(k * hidden), j)), lanes: lanes))])
                    }
                    if cell.linearBeforeReset {
                        product(hView, first: 0, count: columns, into: gateView, epilogue: nil)
                    } else {
                        // z and r, then r * h_prev, then its product by the candidate's columns.
                        product(hView, first: 0, count: 2 * hidden, into: gateView, epilogue: nil)
                        eachUnit { gateRow, stateRow, j, lanes in
                            let r = gate(gateRow, 1, j, lanes)
                            store(mul(r, load(hPrevious, iadd(stateRow, j), lanes: lanes)), reset, iadd(isub(stateRow, imul(start, int(hidden))), j))
                        }
                        product(MatrixView(base: reset, offset: int(0), rowStride: hidden), first: 2 * hidden, count: hidden,
                                into: MatrixView(base: gates, offset: int(2 * hidden), rowStride: columns), epilogue: nil)
                    }
                    eachUnit { gateRow, stateRow, j, lanes in
                        let z = gate(gateRow, 0, j, lanes)
                        let recurrent = add(load(gates, iadd(gateRow, iadd(int(2 * hidden), j)), lanes: lanes), load(candidateBias, j, lanes: lanes))
                        let candidate = emit(g, [add(inputShare(gateRow, 2, j, lanes), cell.linearBeforeReset ? mul(gate(gateRow, 1, j, lanes), recurrent) : recurrent)])
                        let at = iadd(stateRow, j)
                        // (1 - z) n + z h_prev = n + z (h_prev - n)
                        store(fma(z, sub(load(hPrevious, at, lanes: lanes), candidate), candidate), hOut, at)
                    }
                case .rnn:
                    // The result block starts at the thread's first row, and the epilogue reads
                    // its extras at the result's offsets: the whole step's input share.
                    let stepPlane = pointer(gatesX, imul(t, int(batch * columns)))
                    product(hView, first: 0, count: columns, into: MatrixView(base: hOut, offset: imul(start, int(hidden)), rowStride: hidden),
                            epilogue: GemmEpilogue(formula: f.substituting([.arg(0) + .arg(1)]), extras: [(stepPlane, false)]))
                }
            }
        }, else: {})
    }
}
