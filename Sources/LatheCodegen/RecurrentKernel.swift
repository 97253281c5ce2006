import CLLVM
import LatheIR

/// The fused LSTM (Op.lstm): a whole layer's time steps in one kernel. Unrolled into per-step
/// kernels, a small LSTM (the seed time-series model: 30 steps, batch 16, 50 units) spends its
/// time between kernels: a 16 x 50 x 200 product of 4 microseconds, then slices, two small
/// gate kernels, and each kernel's start, 8 kernels a step. Here each step is one packed GEMM
/// (gates = h_prev R^T, with R^T packed at compile time and the step's input share added in its
/// epilogue) into a scratch row block, then one pass over the block that applies the gates and
/// writes c_t and h_t straight into the result, where the next step reads them.
///
/// The batch rows never meet: row b's state depends only on row b's past. So the threads split
/// the batch (`.units`) and each runs all the steps on its rows, with no barrier between steps.
struct LSTMGeometry {
    let steps: Int, batch: Int, hidden: Int
    var gateColumns: Int { 4 * hidden }

    /// From the result's shape [2, T, B, H].
    init?(resultShape: [Int]) {
        guard resultShape.count == 4, resultShape[0] == 2 else { return nil }
        (steps, batch, hidden) = (resultShape[1], resultShape[2], resultShape[3])
    }

    /// The most batch rows one thread takes.
    func rowsPerThread(_ split: ThreadSplit, threads: Int) -> Int {
        if case .units = split { return (batch + threads - 1) / threads }
        return batch
    }

    /// A thread's scratch: its rows of the gates, then the GEMM's packing buffer.
    func scratchFloats(rows: Int, prepackedWeights: Bool) -> Int {
        rows * gateColumns + GemmBlocking.packingFloats(m: rows, n: gateColumns, k: hidden, packsB: !prepackedWeights, always: true)
    }
}

extension IRBuilder {
    func lstmSequence(_ l: LSTMGeometry, reverse: Bool, output: LLVMValue, gatesX: LLVMValue, weights: LLVMValue, h0: LLVMValue, c0: LLVMValue,
                      scratch: LLVMValue, threadScratchFloats: Int, prepackedWeights: Bool, split: ThreadSplit, thread: LLVMValue, threads: Int) {
        let (steps, batch, hidden, columns) = (l.steps, l.batch, l.hidden, l.gateColumns)
        let most = l.rowsPerThread(split, threads: threads)
        let gates = pointer(scratch, imul(thread, int(threadScratchFloats)))
        let packing = pointer(gates, int(most * columns))
        let (start, end) = unitShare(split, count: batch, thread: thread, threads: threads)
        let rows = isub(end, start)
        let plane = batch * hidden
        ifElse(LLVMBuildICmp(builder, LLVMIntSGT, rows, int(0), "")!, then: {
            loop(from: int(0), to: int(steps)) { s in
                let t = reverse ? isub(int(steps - 1), s) : s
                let previous = reverse ? iadd(t, int(1)) : isub(t, int(1))
                let first = LLVMBuildICmp(builder, LLVMIntEQ, s, int(0), "")!
                let hPrevious = LLVMBuildSelect(builder, first, h0, pointer(output, imul(previous, int(plane))), "")!
                let cPrevious = LLVMBuildSelect(builder, first, c0, pointer(output, imul(iadd(previous, int(steps)), int(plane))), "")!
                // gates[r, :] = gates_x[t, start + r, :] + h_prev[start + r, :] R^T
                let epilogue = GemmEpilogue(formula: .arg(0) + .arg(1), extras: [(pointer(gatesX, imul(iadd(imul(t, int(batch)), start), int(columns))), false)])
                packedGemm(GemmBlocking(vectorWidth: vectorWidth, rowsAtMost: most), m: rows, n: int(columns), maxM: most, k: hidden,
                           a: MatrixView(base: hPrevious, offset: imul(start, int(hidden)), rowStride: hidden),
                           b: MatrixView(base: weights, offset: int(0), rowStride: columns),
                           c: MatrixView(base: gates, offset: int(0), rowStride: columns),
                           bias: .none, epilogue: epilogue, packing: packing, prepackedB: prepackedWeights)
                let hOut = pointer(output, imul(t, int(plane)))
                let cOut = pointer(output, imul(iadd(t, int(steps)), int(plane)))
                loop(from: int(0), to: rows) { r in
                    let gateRow = imul(r, int(columns))
                    let stateRow = imul(iadd(start, r), int(hidden))
                    func cell(_ j: LLVMValue, lanes: Int) {
                        func gate(_ k: Int, _ fn: UnaryFn) -> LLVMValue {
                            emit(fn.formula, [load(gates, iadd(gateRow, iadd(int(k * hidden), j)), lanes: lanes)])
                        }
                        let (i, o, f, g) = (gate(0, .sigmoid), gate(1, .sigmoid), gate(2, .sigmoid), gate(3, .tanh))
                        let at = iadd(stateRow, j)
                        let c = fma(f, load(cPrevious, at, lanes: lanes), mul(i, g))
                        store(c, cOut, at)
                        store(mul(o, emit(UnaryFn.tanh.formula, [c])), hOut, at)
                    }
                    let vectorEnd = hidden / vectorWidth * vectorWidth
                    loop(0, vectorEnd, step: vectorWidth, unroll: false) { j in cell(j, lanes: vectorWidth) }
                    loop(vectorEnd, hidden, unroll: false) { j in cell(j, lanes: 1) }
                }
            }
        }, else: {})
    }
}
