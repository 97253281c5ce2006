import LatheIR

/// The plan of a matrix-product kernel: dense, matmul (either under a fused epilogue) and the
/// LSTM, whose every step is a product with the recurrent weights.
///
/// - A constant 2-D right operand shared by every product is packed at compile time into the
///   GEMM's column panels (WeightLayout.gemmColumnPanels) where the GEMM packs at these sizes (a
///   batch-1 layer streams its weights instead); the LSTM's Rᵀ always is, since every step reads
///   it and its packed GEMM runs whatever the sizes.
/// - A matmul whose right operand has no batch axes ([..., M, K] x [K, N], a transformer's
///   projections and a ConvNeXt block's channel MLP on NHWC) is one product of all the rows,
///   (batch x M) x K by K x N: the batch's products share B, and A and C are contiguous, so their
///   rows follow one another. As a batch of products each would be M rows, a single token's row
///   for an (L, N, E) attention input, and pack B again.
/// - Split: a batched matmul by whole products when there are enough; a single product by
///   chunks of rows or of columns, whole register blocks each (ThreadSplit.matrix); the LSTM by
///   batch rows, independent through every step.
/// - Scratch: each thread's GEMM packing buffers (not for an operand packed at compile time);
///   the LSTM's also holds its rows' gates.
extension KernelPlan {
    static func product(_ op: Op, _ c: PlanContext) -> KernelPlan? {
        let s = c.shapes
        switch op.unfused {
        case .dense:
            let (m, k, n) = (s[0][0], s[0][1], s[1][1])
            let layout = columnPanels(m: m, n: n, k: k, c)
            let split = c.threads > 1 && c.flops >= ThreadSplit.minimumFlops
                ? ThreadSplit.matrix(rows: m, columns: n, threads: c.threads, blocking: c.blocking) : .single
            return KernelPlan(.gemm(m: m, n: n, k: k, batch: 1), weightLayout: layout, split: split, threads: c.threads,
                              scratchFloatsPerThread: GemmBlocking.packingFloats(m: m, n: n, k: k, packsB: !layout.isPacked), flops: c.flops,
                              writesResultOnce: writesResultOnce(m: m, k: k, split: split))
        case .matmul:
            var (m, n, k) = matmulSizes(s[0], s[1])
            let axes = matmulBatch(s[0], s[1])
            var batch = axes.batch.reduce(1, *)
            if batch > 1, axes.b.reduce(1, *) == 1, axes.a.reduce(1, *) == batch {
                (m, batch) = (m * batch, 1)
            }
            let layout = columnPanels(m: m, n: n, k: k, c)
            var split = ThreadSplit.single
            if c.threads > 1 && c.flops >= ThreadSplit.minimumFlops {
                split = batch >= c.threads
                    ? .units(batch) : ThreadSplit.matrix(rows: m, columns: n, threads: c.threads, blocking: c.blocking)
            }
            return KernelPlan(.gemm(m: m, n: n, k: k, batch: batch), weightLayout: layout, split: split, threads: c.threads,
                              scratchFloatsPerThread: GemmBlocking.packingFloats(m: m, n: n, k: k, packsB: !layout.isPacked), flops: c.flops,
                              writesResultOnce: writesResultOnce(m: m, k: k, split: split))
        case let .recurrent(cell):
            guard let l = RecurrentGeometry(cell: cell, gatesShape: s[0]) else { return KernelPlan(.loops, threads: 1, flops: c.flops) }
            let layout: WeightLayout = c.constantWeights && l.packsWeights ? .gemmColumnPanels(depth: s[1][0], columns: s[1][1], panel: c.blocking.columns) : .plain
            let split: ThreadSplit = c.threads > 1 && c.flops >= ThreadSplit.minimumFlops && l.batch >= c.threads ? .units(l.batch) : .single
            let threads = split == .single ? 1 : c.threads
            let rows = l.rowsPerThread(split, threads: threads)
            return KernelPlan(.recurrent(l), weightLayout: layout, split: split, threads: c.threads,
                              scratchFloatsPerThread: l.scratchFloats(rows: rows, prepackedWeights: layout.isPacked), flops: c.flops)
        default:
            return nil
        }
    }

    /// A constant right operand [K, N] in the GEMM's column panels, where the GEMM packs.
    private static func columnPanels(m: Int, n: Int, k: Int, _ c: PlanContext) -> WeightLayout {
        guard c.constantWeights, c.shapes[1].count == 2, c.shapes[0].count >= 2, c.blocking.packs(m: m, n: n, k: k) else { return .plain }
        return .gemmColumnPanels(depth: k, columns: n, panel: c.blocking.columns)
    }
}
