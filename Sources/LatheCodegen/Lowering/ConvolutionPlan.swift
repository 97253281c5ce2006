import LatheIR

/// The plan of a convolution kernel: conv2d alone, under a fused epilogue, or pooled in its
/// kernel. The one place a convolution's algorithm, weight layout, split and scratch are chosen.
///
/// The algorithm, in order of preference:
/// 1. Winograd F(4x4, 3x3) or F(2x2, 3x3) where WinogradGeometry serves the convolution (3 x 3,
///    stride 1, enough channels and tiles, sums that need not be exact) and its weights are constant: they are transformed at
///    compile time (WeightLayout.winograd). The work is split by strips of tiles, else by output
///    channels.
/// 2. Direct, where `runsDirect` (depthwise, or a first layer of at most 4 channels):
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
        if c.constantWeights, let transform = winogradTransform(g) {
            let w = WinogradGeometry(g, transform: transform)
            let split = ThreadSplit.plan(units: w.units, rows: g.outChannels, flops: c.flops, threads: c.threads, blocking: c.blocking)
            return KernelPlan(.winograd(w), weightLayout: .winograd(tile: w.transform.tile, outChannels: g.outChannels, inChannels: g.channels, panel: c.blocking.rows),
                              split: split, threads: c.threads, scratchFloatsPerThread: w.scratchFloats, flops: c.flops, writesResultOnce: once)
        }
        if runsDirect(g) {
            return KernelPlan(.direct(g, block: directBlock(g, vectorWidth: c.vectorWidth)), split: directSplit(g, c), threads: c.threads, scratchFloatsPerThread: g.directScratchFloats,
                              flops: c.flops, writesResultOnce: once)
        }
        let packs = g.packs(vectorWidth: c.vectorWidth)
        let layout: WeightLayout = c.constantWeights && packs
            ? .gemmPanels(groups: g.groups, rows: g.groupOutChannels, depth: g.unfoldedRows, panel: c.blocking.rows) : .plain
        // Only where every target packs it: the columns split has no unpacked form.
        let columns = g.needsUnfold || !g.packs(vectorWidth: 16) ? 0 : g.outputPlane
        let split = ThreadSplit.plan(units: g.units, rows: g.groupOutChannels, columns: columns, flops: c.flops, threads: c.threads, blocking: c.blocking)
        let gemm = ConvolutionGemm(geometry: g, packs: packs, unfolds: g.needsUnfold,
                                   readsInputInPlace: !g.needsUnfold && g.groupOutChannels <= GemmBlocking.inPlaceRows)
        // Each GEMM is one group's output channels, or a chunk of them.
        let gemmWritesOnce = once && writesResultOnce(m: g.groupOutChannels, k: g.unfoldedRows, split: split)
        return KernelPlan(g.needsUnfold ? .unfoldedGemm(gemm) : .pointwiseGemm(gemm), weightLayout: layout, split: split, threads: c.threads,
                          scratchFloatsPerThread: g.gemmScratchFloats(prepackedWeights: layout.isPacked), flops: c.flops, writesResultOnce: gemmWritesOnce)
    }

    /// The convolutions Winograd serves: 3 x 3, stride 1, undilated, ungrouped, with enough
    /// input channels that the transforms are paid back (they cost about as much as a GEMM with a
    /// dozen channels) and at least 4 x 4 tiles an image: below that the transforms compute
    /// mostly padding (the Keras CNN's 11 x 11 images as 3 x 3 tiles of 4 x 4 ran slower than the
    /// GEMM). Those images take F(2x2, 3x3) when the batch has 16 of its tiles, a register
    /// block's columns: ResNet's 7 x 7 images of batch 1 as 4 x 4 tiles, whose im2col GEMM of 49
    /// columns pads a fourth of its work; its transformed filters, 1.8 times the size of the
    /// filters, come from memory (both measured: benchmarks/RESULTS.md, "Measurements behind
    /// choices in the code").
    static func winogradTransform(_ g: ConvGeometry) -> WinogradTransform? {
        let a = g.attributes
        guard !a.exactSums, g.kernelH == 3, g.kernelW == 3, a.strides == [1, 1], a.dilations == [1, 1], g.groups == 1,
              g.channels >= 16, g.outChannels >= 16 else { return nil }
        func tiles(_ t: WinogradTransform) -> (Int, Int) { ((g.outH + t.tile - 1) / t.tile, (g.outW + t.tile - 1) / t.tile) }
        let (y4, x4) = tiles(.f4x4), (y2, x2) = tiles(.f2x2)
        if y4 >= 4 && x4 >= 4 { return .f4x4 }
        if y2 >= 4 && x2 >= 4 && g.batch * y2 * x2 >= 16 { return .f2x2 }
        return nil
    }

    /// The direct kernel runs it: one input channel a group (depthwise, any channel multiplier)
    /// and a window of at most 7 x 7; one group of at most 4 channels and a window of at most 9
    /// (a first layer: RGB or gray); or groups of at most 16 channels in and out and a window of
    /// 2 to 9 taps (RegNet's and ResNeXt-style 3x3 grouped layers, whose GEMM per group of 16
    /// rows ran at a fifth of the FMA rate). Its taps are unrolled, so the windows are bounded.
    static func runsDirect(_ g: ConvGeometry) -> Bool {
        (g.groups == g.channels && g.groups > 1 && g.outChannels % g.channels == 0 && g.kernelH * g.kernelW <= 49)
            || (g.groups == 1 && g.channels <= 4 && g.kernelH * g.kernelW <= 9)
            || (g.groups > 1 && g.groupChannels <= 16 && g.groupOutChannels <= 16 && (2...9).contains(g.kernelH * g.kernelW))
    }

    /// Output channels and vectors of outputs along a row whose sums stay in registers (measured
    /// with AVX2's 16 registers: benchmarks/RESULTS.md, "Measurements behind choices in the code"): 6 x 2, but for windows read in place, whose taps need
    /// the wide loads and their shuffles in registers too. There a strided first layer takes 8
    /// channels x 1 vector (6 x 2 spilled its sums every window row) and a strided depthwise
    /// layer 1 x 6 (six sums in flight hide the FMA's latency, where two waited on it). Stride-1
    /// depthwise layers, which read a padded copy, ran best at 1 x 2.
    ///
    /// And its partial sums: an FMA waits 4 cycles for the sum it adds to, and two issue a cycle,
    /// so fewer than 8 independent sums leave the FMA units idle (a depthwise layer's 1 x 2 block
    /// added a 5 x 5 window's 25 taps in one chain a vector). A block of fewer sums deals each
    /// window row's taps among up to `kernelW` partial sums, as many as still keep the window's
    /// weights in registers where they fitted with one.
    static func directBlock(_ g: ConvGeometry, vectorWidth: Int) -> DirectBlock {
        let perGroup = g.groupOutChannels
        var block = !g.readsInPlace ? DirectBlock(channels: min(6, perGroup), vectors: 2)
            : perGroup == 1 ? DirectBlock(channels: 1, vectors: 6) : DirectBlock(channels: min(8, perGroup), vectors: 1)
        let sums = block.channels * block.vectors, taps = g.groupChannels * g.kernelH * g.kernelW
        let kept = block.keepsWeights(count: block.channels, vectors: block.vectors, taps: taps, vectorWidth: vectorWidth)
        block.partials = min(g.kernelW, (8 + sums - 1) / sums)
        while kept && block.partials > 1 && !block.keepsWeights(count: block.channels, vectors: block.vectors, taps: taps, vectorWidth: vectorWidth) { block.partials -= 1 }
        return block
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
                                               blocking: c.blocking, vectorWidth: c.vectorWidth, flops: imageFlops, operandTypes: c.operandTypes))
        let batch = c.shapes[0][0]
        let split: ThreadSplit = c.threads > 1 && c.flops >= ThreadSplit.minimumFlops && batch >= c.threads ? .units(batch) : .single
        // A thread's scratch: the image's convolution's own, then one image's result.
        let perThread = roundUp(image.scratchFloatsPerThread, 16) + p.imageResult.reduce(1, *)
        return KernelPlan(.pooled(p, image: image), split: split, threads: c.threads, scratchFloatsPerThread: perThread, flops: c.flops)
    }
}
