import LatheIR

/// The plan of a convolution kernel: conv2d alone, under a fused epilogue, or pooled in its
/// kernel. The one place a convolution's algorithm, weight layout, split and scratch are chosen.
///
/// The algorithm, in order of preference:
/// 1. Winograd F(4x4, 3x3) or F(2x2, 3x3) where WinogradGeometry serves the convolution (3 x 3,
///    stride 1, enough channels and tiles) and its weights are constant: they are transformed at
///    compile time (WeightLayout.winograd). The work is split by strips of tiles, else by output
///    channels.
/// 2. Direct, where ConvGeometry.runsDirect (depthwise, or a first layer of at most 4 channels):
///    the taps unrolled over each window. Split by images x groups, else by output rows.
/// 3. A GEMM per image, group and tile of output rows: the input unfolded into scratch a tile at
///    a time (im2col), or read in place by a 1x1, stride-1, unpadded convolution. Constant
///    weights are packed into the GEMM's A panels at compile time where its GEMM packs. Split by
///    units (images x groups x tiles) when they divide evenly enough, else by chunks of output
///    positions (a packed 1x1) or of output channels.
/// A pooled convolution runs image by image on one thread each (split by images), its image's
/// convolution planned as above for one image and one thread, with plain weights.
extension KernelPlan {
    static func convolution(_ op: Op, _ c: PlanContext) -> KernelPlan? {
        if case .pooled = op { return pooledConvolution(op, c) }
        guard case let .conv2d(a) = op.unfused,
              let g = ConvGeometry(input: c.shapes[0], weights: c.shapes[1], output: c.resultShape, a) else { return nil }
        return convolution(g, c)
    }

    private static func convolution(_ g: ConvGeometry, _ c: PlanContext) -> KernelPlan {
        // A GEMM over several K blocks, or one streaming B, stores partial sums into C before
        // it reads the residual: only one that writes C once may overwrite it.
        let once = GemmBlocking.writesResultOnce((m: g.outChannels, k: g.unfoldedRows))
        if c.constantWeights, let w = WinogradGeometry(g) {
            let split = ThreadSplit.plan(units: w.units, rows: g.outChannels, flops: c.flops, threads: c.threads, blocking: c.blocking)
            return KernelPlan(.winograd(w), weightLayout: .winograd(tile: w.transform.tile, outChannels: g.outChannels, inChannels: g.channels, panel: c.blocking.rows),
                              split: split, threads: c.threads, scratchFloatsPerThread: w.scratchFloats, flops: c.flops, writesResultOnce: once)
        }
        if g.runsDirect {
            return KernelPlan(.direct(g, block: directBlock(g)), split: directSplit(g, c), threads: c.threads, scratchFloatsPerThread: g.directScratchFloats,
                              flops: c.flops, writesResultOnce: once)
        }
        let packs = g.packs(vectorWidth: c.vectorWidth)
        let layout: WeightLayout = c.constantWeights && packs
            ? .gemmPanels(groups: g.groups, rows: g.groupOutChannels, depth: g.unfoldedRows, panel: c.blocking.rows) : .plain
        // Only where every target packs it: the columns split has no unpacked form.
        let columns = g.needsUnfold || !g.packs(vectorWidth: 16) ? 0 : g.outputPlane
        let split = ThreadSplit.plan(units: g.units, rows: g.groupOutChannels, columns: columns, flops: c.flops, threads: c.threads, blocking: c.blocking)
        let gemm = ConvolutionGemm(geometry: g, packs: packs, readsInputInPlace: !g.needsUnfold && g.groupOutChannels <= GemmBlocking.inPlaceRows)
        return KernelPlan(g.needsUnfold ? .unfoldedGemm(gemm) : .pointwiseGemm(gemm), weightLayout: layout, split: split, threads: c.threads,
                          scratchFloatsPerThread: g.gemmScratchFloats(prepackedWeights: layout.isPacked), flops: c.flops, writesResultOnce: once)
    }

    /// Output channels and vectors of outputs along a row whose sums stay in registers (measured
    /// with AVX2's 16 registers: benchmarks/RESULTS.md, "Measurements behind choices in the code"): 6 x 2, but for windows read in place, whose taps need
    /// the wide loads and their shuffles in registers too. There a strided first layer takes 8
    /// channels x 1 vector (6 x 2 spilled its sums every window row) and a strided depthwise
    /// layer 1 x 6 (six sums in flight hide the FMA's latency, where two waited on it). Stride-1
    /// depthwise layers, which read a padded copy, ran best at 1 x 2.
    private static func directBlock(_ g: ConvGeometry) -> DirectBlock {
        let perGroup = g.groupOutChannels
        guard g.readsInPlace else { return DirectBlock(channels: min(6, perGroup), vectors: 2) }
        return perGroup == 1 ? DirectBlock(channels: 1, vectors: 6) : DirectBlock(channels: min(8, perGroup), vectors: 1)
    }

    /// Images x groups, else rows of the output image (DirectConvolution.swift).
    private static func directSplit(_ g: ConvGeometry, _ c: PlanContext) -> ThreadSplit {
        guard c.threads > 1, c.flops >= ThreadSplit.minimumFlops else { return .single }
        let units = g.batch * g.groups
        if units >= 2 * c.threads || units % c.threads == 0 { return .units(units) }
        return g.outH >= 2 * c.threads ? .rows(total: g.outH, chunk: ThreadSplit.chunk(g.outH, threads: c.threads, align: 1)) : .single
    }

    private static func pooledConvolution(_ op: Op, _ c: PlanContext) -> KernelPlan? {
        guard let p = PooledConvolution(op, operandShapes: c.shapes), case let .conv2d(a) = p.conv,
              let g = ConvGeometry(input: p.imageShapes[0], weights: p.imageShapes[1], output: p.imageResult, a) else { return nil }
        let imageFlops = Kernel.flops(of: p.conv, operandShapes: p.imageShapes, resultShape: p.imageResult)
        let image = convolution(g, PlanContext(shapes: p.imageShapes, resultShape: p.imageResult, constantWeights: false, threads: 1,
                                               blocking: c.blocking, vectorWidth: c.vectorWidth, flops: imageFlops))
        let batch = c.shapes[0][0]
        let split: ThreadSplit = c.threads > 1 && c.flops >= ThreadSplit.minimumFlops && batch >= c.threads ? .units(batch) : .single
        // A thread's scratch: the image's convolution's own, then one image's result.
        let perThread = roundUp(image.scratchFloatsPerThread, 16) + p.imageResult.reduce(1, *)
        return KernelPlan(.pooled(p, image: image), split: split, threads: c.threads, scratchFloatsPerThread: perThread, flops: c.flops)
    }
}
