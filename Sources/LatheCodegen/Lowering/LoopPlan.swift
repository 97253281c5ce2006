import LatheIR

/// The plan of every kernel that is not a convolution or a matrix product: elementwise ops,
/// pooling, reductions, softmax, copies, and the convolution gradients.
///
/// Only the split is chosen here (the algorithm is the op's own loops). A kernel is split when
/// it is large enough to pay for handing work to another thread: at least
/// ThreadSplit.minimumFlops, or, for kernels that read more than they compute, an input of at
/// least ThreadSplit.minimumPoolInput elements (pooling, transpose, softmax) or
/// ThreadSplit.minimumLayerNormInput (layer_norm):
/// - elementwise ops and transposes: both cores' bandwidth, a share of the outermost axis each
///   (after leading axes of 1: forOuterRows);
/// - softmax over a last axis: a share of its contiguous rows each (RowKernels' softmaxRows),
///   and layer_norm likewise (a share of the rows it normalizes);
/// - pooling and its gradient: planes; a transposed convolution: images x groups;
/// - a weight gradient: groups, else input channels (each thread unfolds and packs only its
///   own), else output channels.
/// The convolution gradients' scratch holds their unfolded input and packing buffers per thread.
extension KernelPlan {
    static func loops(_ op: Op, _ c: PlanContext) -> KernelPlan {
        let (s, result) = (c.shapes, c.resultShape)
        var algorithm = KernelAlgorithm.loops
        var scratch = 0
        switch op.unfused {
        case let .conv2dWeightGrad(a, _):
            if let g = ConvGeometry(input: s[0], weights: result, output: s[1], a) {
                // Fewer output channels than a register block's rows (an autoencoder's last
                // layer): the transposed product fills the register blocks instead.
                let transposed = g.groupOutChannels < c.blocking.rows && g.unfoldedRows > g.groupOutChannels
                algorithm = .weightGradient(g, transposed: transposed)
                scratch = g.weightGradientScratch.floats
            }
        case let .convTranspose2d(a):
            if let g = ConvTransposeGeometry(input: s[0], weights: s[1], output: result, a) {
                algorithm = .transposedConvolution(g)
                scratch = g.scratchFloats
            }
        case .gather where c.operandTypes[1].isInteger, .gatherElements, .gatherND, .scatter:
            scratch = KernelPlan.indexRecordFloats
        default:
            break
        }
        return KernelPlan(algorithm, split: split(op, c), threads: c.threads, scratchFloatsPerThread: scratch, flops: c.flops)
    }

    private static func split(_ op: Op, _ c: PlanContext) -> ThreadSplit {
        let (s, result, threads) = (c.shapes, c.resultShape, c.threads)
        var readBound = false
        switch op {
        case .pool2d, .transpose, .softmax, .logSoftmax: readBound = s[0].reduce(1, *) >= ThreadSplit.minimumPoolInput
        case .layerNorm: readBound = s[0].reduce(1, *) >= ThreadSplit.minimumLayerNormInput
        default: break
        }
        guard threads > 1, c.flops >= ThreadSplit.minimumFlops || readBound else { return .single }
        func chunk(_ total: Int, _ align: Int) -> Int { ThreadSplit.chunk(total, threads: threads, align: align) }
        switch op.unfused {
        case let .conv2dWeightGrad(a, _):
            let rows = result[0] / max(a.groups, 1), channels = result[1]
            if a.groups >= 2 * threads || (a.groups > 1 && a.groups % threads == 0) { return .units(a.groups) }
            if channels >= 2 * threads { return .columns(total: channels, chunk: chunk(channels, 1)) }
            return rows >= 2 * threads ? .rows(total: rows, chunk: chunk(rows, 4)) : .single
        case .unary, .binary, .fusedElementwise, .select, .cast, .batchNorm, .transpose:
            guard let rows = result.first(where: { $0 > 1 }), rows >= threads else { return .single }
            return .rows(total: rows, chunk: chunk(rows, 1))
        case let .layerNorm(axis, _):
            let rows = result.prefix(axis).reduce(1, *)
            return rows >= threads ? .rows(total: rows, chunk: chunk(rows, 1)) : .single
        case let .softmax(axis), let .logSoftmax(axis):
            let rows = result.prefix(axis).reduce(1, *)
            guard result.dropFirst(axis + 1).allSatisfy({ $0 == 1 }), rows >= threads else { return .single }
            return .rows(total: rows, chunk: chunk(rows, 1))
        case let .convTranspose2d(a):
            let units = s[0][0] * a.groups
            return units >= threads ? .units(units) : .single
        case .pool2d, .pool2dGrad:
            let planes = s[0].prefix(2).reduce(1, *)
            return planes >= threads ? .units(planes) : .single
        default:
            return .single
        }
    }
}

extension ConvGeometry {
    /// A weight gradient's working memory per thread, in floats from its start: the whole
    /// unfolded image, then the GEMM's packing buffers (for either product, the straight or the
    /// transposed, on any target, whether or not the sizes would pack), then dW^T for the
    /// transposed product.
    var weightGradientScratch: (packing: Int, partial: Int, floats: Int) {
        let packing = needsUnfold ? unfoldedRows * outputPlane : 0
        let most = max(groupOutChannels, unfoldedRows)
        let partial = packing + GemmBlocking.packingFloats(m: most, n: most, k: outputPlane, always: true)
        return (packing, partial, partial + unfoldedRows * groupOutChannels)
    }
}
