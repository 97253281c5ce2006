import LatheIR

extension Op {
    /// The contraction under a fused epilogue, or the op itself.
    var unfused: Op {
        if case let .epilogue(base, _, _) = self { return base }
        return self
    }
}

/// Where a buffer lives when the compiled function runs.
public enum BufferLocation: Hashable, Sendable, CustomStringConvertible {
    /// Byte offset in the per-model arena of intermediates.
    case arena(Int)
    /// Byte offset in the weights region (constants, filled once at compile time).
    case weights(Int)
    /// The caller's input and output buffers, by position.
    case input(Int)
    case output(Int)

    public var description: String {
        switch self {
        case let .arena(o): return "arena+\(o)"
        case let .weights(o): return "weights+\(o)"
        case let .input(i): return "input[\(i)]"
        case let .output(i): return "output[\(i)]"
        }
    }
}

public struct KernelBuffer: Hashable, Sendable {
    public var location: BufferLocation
    public var type: TensorType
}

/// A variable's place in the weights region.
public struct VariablePlacement: Hashable, Sendable {
    public let name: String
    public let offset: Int
    public let type: TensorType
}

/// An intermediate's place in the arena and its life in kernel steps (inclusive).
public struct PlannedBuffer: Hashable, Sendable, Codable {
    public let name: String
    public let offset: Int
    public let bytes: Int
    public let firstUse: Int
    public let lastUse: Int
}

/// What a kernel computes: one graph node, or a plain copy (an output that is also an input,
/// a constant, or another output).
public enum KernelWork: Hashable, Sendable {
    case node(Op)
    case copy
}

public struct Kernel: Sendable {
    public let name: String
    public let work: KernelWork
    /// The graph node the kernel computes (for a copy, the value copied).
    public let node: ValueID
    public let operands: [KernelBuffer]
    public let result: KernelBuffer
    /// Working memory for the kernel alone (e.g. a convolution's unfolded input).
    public let scratch: KernelBuffer?
    /// The operand whose buffer the result overwrites (it dies here and is read only at the
    /// index each result is written to), or nil.
    public var inPlaceOperand: Int? = nil
    /// The graph node's name and the Swift source location that made it (for run-time errors).
    public var nodeName = ""
    public var location = SourceLocation.unknown
    /// How the kernel computes its node: algorithm, weight layout, split, scratch (KernelPlan).
    public let plan: KernelPlan
    /// The plan of the same kernel on one thread, for a split kernel whose split costs work of
    /// its own (chunks of a GEMM's rows or columns each pack the other operand again): what a
    /// run calls when the pool's workers have been busy elsewhere, so that a run left alone
    /// goes at one thread's speed, not at the split's run one share after another. Same weight
    /// layout and result placement; the kernel's scratch is sized for both.
    public internal(set) var alonePlan: KernelPlan? = nil
    /// How the work is divided among threads, and how many threads run it (the plan's).
    public var split: ThreadSplit { plan.split }
    public var threads: Int { plan.threads }
    /// The layout of the constant weights operand (the plan's).
    public var weightLayout: WeightLayout { plan.weightLayout }
    /// Its threads claim units from a counter at the start of its scratch (the plan's).
    public var claimsUnits: Bool { plan.claimsUnits }

    /// The kernel as its alone plan computes it (for the emitter), if it has one.
    var alone: Kernel? {
        guard let alonePlan else { return nil }
        var kernel = Kernel(name: name + "_alone", work: work, node: node, operands: operands, result: result, scratch: scratch,
                            inPlaceOperand: inPlaceOperand, plan: alonePlan)
        (kernel.nodeName, kernel.location) = (nodeName, location)
        return kernel
    }

    /// A reshape written in place moves no data: it has no code.
    public var isNoOp: Bool {
        guard inPlaceOperand != nil else { return false }
        switch work {
        case .copy, .node(.reshape), .node(.flatten), .node(.dropout): return true
        default: return false
        }
    }

    /// Floating-point operations of one run: exact multiply-adds (two each) for contractions,
    /// one per output element (per input element for reductions) otherwise.
    /// Bytes read and written by one run: operands and result once each.
    public var bytesMoved: Int { isNoOp ? 0 : operands.reduce(result.type.byteCount) { $0 + $1.type.byteCount } }

    public var flops: Int { isNoOp ? 0 : plan.flops }

    /// How a contraction is computed, for `lathe inspect` (the plan's algorithm name).
    public var algorithm: String? { plan.algorithmName }

    /// The floating-point operations of one node (see `flops`).
    public static func flops(of op: Op, operandShapes shapes: [[Int]], resultShape: [Int]) -> Int {
        let count = resultShape.reduce(1, *)
        if case let .pooled(base, a) = op, let convolved = try? base.inferType(shapes.map { TensorType(.float32, $0) }) {
            return flops(of: base, operandShapes: shapes, resultShape: convolved.shape) + count * a.kernel.reduce(1, *)
        }
        switch op.unfused {
        case .dense: return 2 * count * shapes[0][1]
        case .matmul: return 2 * count * (shapes[0].last ?? 1)
        case .conv2d: return 2 * count * shapes[1].dropFirst().reduce(1, *)
        case .convTranspose2d: return 2 * shapes[0].reduce(1, *) * shapes[1].dropFirst().reduce(1, *)
        case .conv2dWeightGrad: return 2 * count * shapes[1][0] * shapes[1].dropFirst(2).reduce(1, *)
        case let .recurrent(cell):   // each step's product, and its gates
            let states = cell.kind == .lstm ? count / 2 : count
            return states * (2 * cell.gates * shapes[1][0] + 3 * cell.gates)
        case let .pool2d(a): return count * a.kernel.reduce(1, *)
        case let .pool2dGrad(a): return shapes[1].reduce(1, *) * a.kernel.reduce(1, *)
        case .reduce, .globalAveragePool, .softmax, .logSoftmax, .layerNorm: return shapes[0].reduce(1, *)
        default: return count
        }
    }
}

/// The ordered kernels of a model with every buffer placed: what the code generator emits,
/// and what the memory planner, profiler and `lathe inspect` read.
public struct KernelProgram: Sendable {
    public let kernels: [Kernel]
    public let inputs: [InputSpec]
    public let outputs: [(name: String, type: TensorType)]
    public let arenaBytes: Int
    public let lowerBoundBytes: Int
    public let naiveBytes: Int
    /// Every arena buffer with its place and life, in kernel steps.
    public let buffers: [PlannedBuffer]
    public let weightsBytes: Int
    /// Constant slot, the byte offset it is copied to in the weights region, and its layout there.
    public let weightPlacements: [(slot: Int, offset: Int, layout: WeightLayout)]
    /// The variables (training state), by name, and where they live in the weights region.
    public var variables: [VariablePlacement] = []

    public var flops: Int { kernels.reduce(0) { $0 + $1.flops } }

    /// The operations done by the integer GEMM (quantized contractions), which a host with an
    /// 8-bit dot product does four to a lane per instruction where a float FMA does one.
    public var int8Flops: Int {
        kernels.reduce(0) { sum, kernel in
            if case .int8Gemm = kernel.plan.algorithm { return sum + kernel.flops }
            return sum
        }
    }
}

extension KernelProgram {
    /// Orders the nodes that the outputs need into kernels and places every buffer.
    /// `threads`: the threads a run uses; large contractions are split among them.
    /// `vectorWidth`: the target's, which sets the register block the weights are packed for.
    public static func build(_ graph: Graph, outputs: [(name: String, value: ValueID)], threads: Int = 1, vectorWidth: Int = 8) throws -> KernelProgram {
        var names = Set<String>()
        for (name, value) in outputs {
            guard names.insert(name).inserted else { throw LatheError.duplicateName(name) }
            guard graph.contains(value) else { throw LatheError.foreignValue("output '\(name)'") }
        }
        // The GEMM's register blocks exist for these widths only (ThreadSplit divides by them).
        guard [4, 8, 16].contains(vectorWidth) else { throw LatheError.unsupported("a vector width of \(vectorWidth) floats (4, 8 or 16)") }
        var builder = ProgramBuilder(graph, outputs: outputs, threads: threads, vectorWidth: vectorWidth)
        builder.planKernels()
        builder.placeWeights()
        builder.writeOutputs()
        try builder.writeVariables()
        builder.placeConcats()
        builder.schedule()
        builder.requestArena()
        builder.placeArena()
        return builder.program()
    }
}
