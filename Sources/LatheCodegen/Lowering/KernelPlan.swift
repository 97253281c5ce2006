import LatheIR

/// How one kernel computes its node, decided once, after the graph passes, by the plan
/// function of its op family (`KernelPlan.make`): the algorithm with its geometry, the layout
/// its constant weights are stored in, how its work is split among threads, the scratch it
/// needs and the work it does. The emitter, the scratch sizing, the thread plan, `lathe
/// inspect` and `bench --profile` read the plan; none of them decides any of it again. (The
/// GEMM emitter still picks each product's loop, packed, streaming or register-blocked, by the
/// size of a thread's chunk; `writesResultOnce` accounts for every chunk a split leaves.)
///
/// The plan functions, one an op family:
/// - `KernelPlan.convolution` (ConvolutionPlan.swift): conv2d, alone, with an epilogue, or
///   pooled in its kernel: Winograd, direct, im2col + GEMM, or a 1x1 GEMM.
/// - `KernelPlan.int8Contraction` (Int8Plan.swift): conv2d, dense and matmul on quantized 8-bit
///   integers.
/// - `KernelPlan.product` (ProductPlan.swift): dense, matmul and the LSTM's recurrent product.
/// - `KernelPlan.loops` (LoopPlan.swift): every other op, and the convolution gradients.
public struct KernelPlan: Sendable {
    /// The algorithm, carrying the geometry its emitter reads.
    let algorithm: KernelAlgorithm
    /// The layout of the constant weights operand (operand 1 of a convolution, dense, matmul or
    /// LSTM): packed for its GEMM, or transformed for Winograd, at compile time.
    public let weightLayout: WeightLayout
    /// How the work is divided among threads, and how many threads run it.
    public let split: ThreadSplit
    public let threads: Int
    /// Floats of working memory one thread uses (its unit counter not included); the kernel's
    /// scratch holds one such part for each of its threads.
    public let scratchFloatsPerThread: Int
    /// Floating-point operations of one run (Kernel.flops(of:)).
    public let flops: Int
    /// A contraction that stores each result once, after reading its epilogue operands (not
    /// over several K blocks, nor streaming B into a few rows of C): its result may overwrite a
    /// residual operand (KernelProgram's in-place choice).
    public let writesResultOnce: Bool
    /// The model's ops the kernel computes, as the fusion passes recorded them (Node.sourceOps):
    /// "conv2d", "add", "relu" for a convolution with a residual Add and a ReLU fused in.
    public internal(set) var sourceOps: [String] = []
    /// The element types of its operands and of its result: what the emitter generates code for
    /// (float32 everywhere until typed tensors).
    public internal(set) var operandElementTypes: [DType] = []
    public internal(set) var resultElementType: DType = .float32
    /// It reads indices from outside (gather's integer indices) and checks them: its scratch
    /// starts with an index record, whose flag the entry reads after it (Gather.swift).
    public internal(set) var checksIndices = false
    /// The floats of an index record: an i64 flag, the i64 index out of range and its bound.
    static let indexRecordFloats = 6

    init(_ algorithm: KernelAlgorithm, weightLayout: WeightLayout = .plain, split: ThreadSplit = .single, threads: Int,
         scratchFloatsPerThread: Int = 0, flops: Int, writesResultOnce: Bool = false) {
        self.algorithm = algorithm
        self.writesResultOnce = writesResultOnce
        self.weightLayout = weightLayout
        self.split = split
        self.threads = split == .single ? 1 : threads
        self.scratchFloatsPerThread = scratchFloatsPerThread
        self.flops = flops
    }

    /// Its threads claim units one at a time from a counter at the start of its scratch
    /// (Threading.swift's forEachUnit), which the entry zeroes before each run of the kernel.
    public var claimsUnits: Bool { ThreadSplit.claimsUnits(split, threads: threads) }

    /// Whether every GEMM of k that a split leaves a thread, of m rows or of a chunk of them
    /// (the last chunk of a rows split may be a single row, which streams B into C), stores each
    /// result once (GemmBlocking.writesResultOnce).
    static func writesResultOnce(m: Int, k: Int, split: ThreadSplit) -> Bool {
        var rows = [m]
        if case let .rows(total, chunk) = split, chunk > 0, total > 0 { rows = [min(chunk, total), total - (total - 1) / chunk * chunk] }
        return rows.allSatisfy { GemmBlocking.writesResultOnce((m: $0, k: k)) }
    }

    /// Whether running its shares one after another on one thread does markedly more work than
    /// its plan on one thread: a matrix product's chunks of rows each pack all of B again (the
    /// Keras CNN's 11 x 11 Winograd convolution split by output channels: 47 us its two shares
    /// in a row, 38 us alone), its chunks of columns all of A unless A was packed at compile
    /// time, and each chunk is tiled for its own size. What is done again is a share of the work
    /// that shrinks as the product grows: above `aloneFlopsLimit` a second plan is not worth its
    /// compile time. A split into units does each unit's work once, whoever claims it; loops
    /// split by rows do no work twice. (A run on a busy machine runs alone from its start,
    /// ThreadPool, so these plans are what it runs.)
    var splitCostsWork: Bool {
        guard threads > 1, flops < Self.aloneFlopsLimit else { return false }
        switch algorithm {
        case .winograd, .unfoldedGemm, .pointwiseGemm, .gemm: break
        default: return false
        }
        switch split {
        case .rows: return true
        case .columns: return !weightLayout.isPacked
        case .single, .units: return false
        }
    }

    /// Kernels of fewer FLOPs than this whose split costs work are also planned for one thread:
    /// SqueezeNet's 3 x 3 expand convolutions (about 50 MFLOP, split by rows) ran their two
    /// chunks in a row markedly slower than their one-thread plan (benchmarks/RESULTS.md).
    static let aloneFlopsLimit = 100_000_000

    /// Whether this plan (on one thread) may run in place of `split`'s: the same weight layout,
    /// a result it may write wherever `split`'s may (over a residual only if it too writes
    /// each result once), and no index record (whose place in the scratch the entry reads).
    func canStandIn(for split: KernelPlan) -> Bool {
        threads == 1 && weightLayout == split.weightLayout && (writesResultOnce || !split.writesResultOnce)
            && !checksIndices && !split.checksIndices
    }

    /// The floats of the kernel's scratch: its counter, then each thread's part.
    public var scratchFloats: Int {
        let parts = scratchFloatsPerThread * threads
        return parts + (claimsUnits ? ThreadSplit.unitCounterFloats : 0)
    }

    /// How a contraction is computed, for `lathe inspect`: "winograd F(4x4,3x3)", "direct",
    /// "im2col+gemm", "gemm"; "packed weights" where its constant operand was packed at compile
    /// time. Nil for other kernels.
    public var algorithmName: String? { algorithm.name(packed: weightLayout.isPacked) }

    /// The plan of a kernel computing `op` (a graph node, fused or not) on operands of these
    /// types. `constantWeights`: operand 1 is a constant, which may be laid out for the kernel
    /// at compile time. `threads`: the threads a run uses. `vectorWidth`: the target's, which
    /// sets the GEMM's register block and so the weights' panels.
    /// `sourceOps`: the model's ops the node holds (by default, `op` alone).
    public static func make(_ op: Op, operandTypes: [TensorType], resultType: TensorType, constantWeights: Bool,
                            threads: Int, vectorWidth: Int, sourceOps: [String]? = nil) -> KernelPlan {
        let (shapes, resultShape) = (operandTypes.map(\.shape), resultType.shape)
        let flops = Kernel.flops(of: op, operandShapes: shapes, resultShape: resultShape)
        let context = PlanContext(shapes: shapes, resultShape: resultShape, constantWeights: constantWeights, threads: max(threads, 1),
                                  blocking: GemmBlocking(vectorWidth: vectorWidth), vectorWidth: vectorWidth, flops: flops,
                                  operandTypes: operandTypes.map(\.dtype))
        var plan = int8Contraction(op, context) ?? convolution(op, context) ?? product(op, context) ?? loops(op, context)
        plan.sourceOps = sourceOps ?? [op.name]
        plan.operandElementTypes = operandTypes.map(\.dtype)
        plan.resultElementType = resultType.dtype
        switch op {
        case .gather, .gatherElements, .gatherND, .scatter: plan.checksIndices = operandTypes[1].dtype.isInteger
        default: break
        }
        return plan
    }

    /// A plain copy: an output that is also an input, a constant or another output.
    static let copy: KernelPlan = {
        var plan = KernelPlan(.loops, threads: 1, flops: 0)
        plan.sourceOps = ["copy"]
        return plan
    }()
}

/// What every plan function is given.
struct PlanContext {
    let shapes: [[Int]]
    let resultShape: [Int]
    let constantWeights: Bool
    let threads: Int
    let blocking: GemmBlocking
    let vectorWidth: Int
    let flops: Int
    let operandTypes: [DType]
}

/// A kernel's algorithm and the geometry its emitter reads.
indirect enum KernelAlgorithm: Sendable {
    /// Winograd's F(m x m, 3 x 3) on transformed weights (WinogradConvolution.swift).
    case winograd(WinogradGeometry)
    /// Taps unrolled over a window, for depthwise and first layers, a block of output channels
    /// x vectors of outputs at a time (DirectConvolution.swift).
    case direct(ConvGeometry, block: DirectBlock)
    /// The input unfolded a tile of output rows at a time, then a GEMM (Convolution.swift).
    case unfoldedGemm(ConvolutionGemm)
    /// A 1x1, stride-1, unpadded convolution: a GEMM reading the input as its B.
    case pointwiseGemm(ConvolutionGemm)
    /// A convolution pooled in its kernel, image by image; `image` is the plan of one image's
    /// convolution, on one thread (PooledConvolution.swift).
    case pooled(PooledConvolution, image: KernelPlan)
    /// A matrix product (dense, matmul): `batch` GEMMs of m x k by k x n (Gemm.swift, GemmPacked.swift).
    case gemm(m: Int, n: Int, k: Int, batch: Int)
    /// A quantized convolution or matrix product on the integer GEMM (Int8Gemm.swift).
    case int8Gemm(Int8Contraction)
    /// A recurrent layer's steps, a GEMM (two for a GRU without linear_before_reset) and the
    /// gates each (RecurrentKernel.swift).
    case recurrent(RecurrentGeometry)
    /// A convolution's weight gradient: unfold, then a GEMM per group (TrainingKernels.swift);
    /// `transposed`: the product dW^T = unfolded x dy^T, for fewer output channels than a
    /// register block's rows.
    case weightGradient(ConvGeometry, transposed: Bool)
    /// A transposed convolution: a GEMM into columns, then their scatter (ConvolutionTransposed.swift).
    case transposedConvolution(ConvTransposeGeometry)
    /// Loops over the elements: elementwise ops, pooling, reductions, softmax, copies.
    case loops

    func name(packed: Bool) -> String? {
        let packedText = packed ? ", packed weights" : ""
        switch self {
        case let .winograd(w): return "winograd F(\(w.transform.tile)x\(w.transform.tile),3x3)"
        case .direct: return "direct"
        case .unfoldedGemm: return "im2col+gemm" + packedText
        case .pointwiseGemm, .gemm: return "gemm" + packedText
        case let .pooled(_, image): return (image.algorithmName ?? "") + ", pooled an image at a time"
        case let .int8Gemm(q):
            if case let .convolution(g, _, input) = q.form {
                let reads = input == .pixelRows ? "shifted copies (pixel rows)+" : input == .shiftedCopies ? "shifted copies+" : g.needsUnfold ? "im2col+" : ""
                return reads + "int8 gemm" + packedText
            }
            return "int8 gemm" + packedText
        case .recurrent, .weightGradient, .transposedConvolution, .loops: return nil
        }
    }
}

/// The register block of a direct convolution: output channels x vectors of outputs along a row
/// whose sums stay in registers, each vector's sum kept as `partials` independent sums (a window
/// row's taps dealt among them in turn) that are added once at the end.
struct DirectBlock: Sendable, Hashable {
    let channels: Int
    let vectors: Int
    var partials = 1

    /// The vector registers of a target: 32 with 16-float vectors (AVX-512), else 16.
    static func registers(vectorWidth: Int) -> Int { vectorWidth >= 16 ? 32 : 16 }

    /// Whether `count` channels by `vectors` vectors of the block keep the weights of a whole
    /// window of `taps` taps (every input channel's) in registers beside their sums: the emitter
    /// then unrolls every window row; otherwise it loops over them, loading the weights again.
    func keepsWeights(count: Int, vectors: Int, taps: Int, vectorWidth: Int) -> Bool {
        count * taps <= DirectBlock.registers(vectorWidth: vectorWidth) - count * vectors * partials - vectors - 1
    }
}

/// A convolution computed as a GEMM per unit (image x group x tile of output rows), and how its
/// GEMM runs.
struct ConvolutionGemm: Sendable {
    let geometry: ConvGeometry
    /// The packed GEMM runs it (the sizes are run-time values, one copy of the code for every
    /// tile and chunk), else a small GEMM specialized for its sizes.
    let packs: Bool
    /// The input is unfolded a tile of output rows at a time (im2col); else (a 1x1, stride-1,
    /// unpadded convolution) the GEMM reads it as B.
    let unfolds: Bool
    /// A 1x1 convolution to a few output channels: the packed GEMM reads B where it is.
    let readsInputInPlace: Bool
}
