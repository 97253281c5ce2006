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
    /// How the kernel computes its node: algorithm, weight layout, split, scratch (KernelPlan).
    public let plan: KernelPlan
    /// How the work is divided among threads, and how many threads run it (the plan's).
    public var split: ThreadSplit { plan.split }
    public var threads: Int { plan.threads }
    /// The layout of the constant weights operand (the plan's).
    public var weightLayout: WeightLayout { plan.weightLayout }
    /// Its threads claim units from a counter at the start of its scratch (the plan's).
    public var claimsUnits: Bool { plan.claimsUnits }

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
        case .lstm: return count / 2 * (2 * 4 * shapes[1][0] + 12)   // each step's product, and its gates
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
        let needed = graph.liveNodes(outputs: outputs.map(\.value))

        var location: [ValueID: BufferLocation] = [:]
        let inputNodes = graph.inputs
        for (i, node) in inputNodes.enumerated() { location[node.id] = .input(i) }

        // Each kernel's plan, decided once: its algorithm, weight layout, split and scratch.
        var plans: [ValueID: KernelPlan] = [:]
        for node in graph.nodes where needed[node.id.index] {
            switch node.op {
            case .input, .constant, .variable, .assign: continue
            default: break
            }
            var constantWeights = false
            if node.operands.count >= 2, case .constant = graph[node.operands[1]].op { constantWeights = true }
            plans[node.id] = KernelPlan.make(node.op, operandShapes: node.operands.map { graph[$0].type.shape }, resultShape: node.type.shape,
                                             constantWeights: constantWeights, threads: threads, vectorWidth: vectorWidth, sourceOps: node.sourceOps)
        }

        // Constants go to the weights region: as they are, and, for the kernels whose plan reads
        // them packed or transformed, in that layout (only there, when nothing else reads them).
        let prepacks = plans.compactMapValues { $0.weightLayout.isPacked ? $0.weightLayout : nil }
        var readPlain = Set(outputs.map(\.value))
        for node in graph.nodes where needed[node.id.index] {
            for (k, operand) in node.operands.enumerated() where !(k == 1 && prepacks[node.id] != nil) { readPlain.insert(operand) }
        }
        var weightPlacements: [(Int, Int, WeightLayout)] = []
        var weightsBytes = 0
        var packedLocation: [WeightLayout: [ValueID: BufferLocation]] = [:]
        func place(_ slot: Int, _ layout: WeightLayout, floats: Int) -> BufferLocation {
            weightPlacements.append((slot, weightsBytes, layout))
            defer { weightsBytes += MemoryPlanner.align(floats * 4) }
            return .weights(weightsBytes)
        }
        var variables: [VariablePlacement] = []
        for node in graph.nodes where needed[node.id.index] {
            if case let .constant(slot) = node.op, readPlain.contains(node.id) {
                location[node.id] = place(slot, .plain, floats: node.type.count)
            }
            if case let .variable(slot) = node.op {
                variables.append(VariablePlacement(name: node.name, offset: weightsBytes, type: node.type))
                location[node.id] = place(slot, .plain, floats: node.type.count)
            }
            if let layout = prepacks[node.id], case let .constant(slot) = graph[node.operands[1]].op {
                let key = node.operands[1]
                if packedLocation[layout, default: [:]][key] == nil {
                    packedLocation[layout, default: [:]][key] = place(slot, layout, floats: layout.floatCount(graph[key].type.count))
                }
            }
        }

        // The first output naming a computed value is written in place; other outputs copy.
        var writesOutput: [ValueID: Int] = [:]
        var copies: [(value: ValueID, output: Int)] = []
        for (i, (_, v)) in outputs.enumerated() {
            switch graph[v].op {
            case .input, .constant, .variable, .assign: copies.append((v, i))
            default:
                if writesOutput[v] == nil { writesOutput[v] = i } else { copies.append((v, i)) }
            }
        }

        let writesVariable = try variableWrites(graph, needed: needed, outputs: outputs.map(\.value))
        let concats = concatsInPlace(graph, needed: needed, outputs: Set(outputs.map(\.value)), fixed: Set(writesVariable.keys))
        let computed = graph.nodes.filter { node in
            guard needed[node.id.index], !concats.concats.contains(node.id) else { return false }
            switch node.op {
            case .input, .constant, .variable: return false
            case .assign: return writesVariable[node.operands[1]] != node.operands[0]
            default: return true
            }
        }
        var step: [ValueID: Int] = [:]
        for (s, node) in computed.enumerated() { step[node.id] = s }
        for (value, variable) in writesVariable { location[value] = location[variable] }
        for node in graph.nodes where needed[node.id.index] && node.op == .assign { location[node.id] = location[node.operands[0]] }
        let lastStep = computed.count + copies.count - 1
        var lastUse: [ValueID: Int] = [:]
        for node in computed { for operand in node.operands { lastUse[operand] = step[node.id] } }
        for c in copies { lastUse[c.value] = lastStep }

        // Arena requests: computed values that are not written to an output, and scratch. A value
        // computed in place joins the request of the operand it overwrites, which then lives on.
        var requests: [BufferRequest] = []
        var request: [ValueID: Int] = [:]
        var scratchRequest: [ValueID: Int] = [:]
        var inPlaceOperand: [ValueID: Int] = [:]
        for node in computed {
            let s = step[node.id]!
            let life = max(s, lastUse[node.id] ?? s)
            if writesOutput[node.id] == nil && location[node.id] == nil && concats.placed[node.id] == nil {
                if let k = inPlaceCandidates(node, graph, plan: plans[node.id], dyingAt: s, lastUse: lastUse).first(where: { request[node.operands[$0]] != nil }),
                   let shared = request[node.operands[k]] {
                    inPlaceOperand[node.id] = k
                    request[node.id] = shared
                    requests[shared].lastUse = max(requests[shared].lastUse, life)
                } else {
                    request[node.id] = requests.count
                    requests.append(BufferRequest(bytes: node.type.byteCount, firstUse: s, lastUse: life))
                }
            }
            let scratch = (plans[node.id]?.scratchFloats ?? 0) * 4
            if scratch > 0 {
                scratchRequest[node.id] = requests.count
                requests.append(BufferRequest(bytes: scratch, firstUse: s, lastUse: s))
            }
        }
        // A concat that runs no kernel holds its operands from the first one's kernel on.
        var concatRequest: [ValueID: Int] = [:]
        for c in concats.concats.sorted(by: { $0.index < $1.index }) {
            let first = graph[c].operands.compactMap { step[$0] }.min() ?? 0
            concatRequest[c] = requests.count
            requests.append(BufferRequest(bytes: graph[c].type.byteCount, firstUse: first, lastUse: max(first, lastUse[c] ?? first)))
        }
        let plan = MemoryPlanner.plan(requests)
        var planned: [PlannedBuffer] = []
        var scratchLocation: [ValueID: KernelBuffer] = [:]
        for node in computed {
            let s = step[node.id]!
            if let r = request[node.id] {
                location[node.id] = .arena(plan.offsets[r])
                planned.append(PlannedBuffer(name: node.name, offset: plan.offsets[r], bytes: node.type.byteCount, firstUse: s, lastUse: max(s, lastUse[node.id] ?? s)))
            }
            if let r = scratchRequest[node.id] {
                scratchLocation[node.id] = KernelBuffer(location: .arena(plan.offsets[r]), type: TensorType(.float32, [requests[r].bytes / 4]))
                planned.append(PlannedBuffer(name: "\(node.name) (scratch)", offset: plan.offsets[r], bytes: requests[r].bytes, firstUse: s, lastUse: s))
            }
        }
        for (c, r) in concatRequest {
            location[c] = .arena(plan.offsets[r])
            planned.append(PlannedBuffer(name: graph[c].name, offset: plan.offsets[r], bytes: requests[r].bytes,
                                         firstUse: requests[r].firstUse, lastUse: requests[r].lastUse))
        }
        for (v, place) in concats.placed { location[v] = .arena(plan.offsets[concatRequest[place.concat]!] + place.byteOffset) }
        for (v, i) in writesOutput { location[v] = .output(i) }

        func buffer(_ v: ValueID) -> KernelBuffer { KernelBuffer(location: location[v]!, type: graph[v].type) }
        var kernels: [Kernel] = computed.map { node in
            if node.op == .assign {
                return Kernel(name: "k\(step[node.id]!)_assign", work: .copy, node: node.id, operands: [buffer(node.operands[1])],
                              result: buffer(node.operands[0]), scratch: nil, plan: .copy)
            }
            let operands = node.operands.enumerated().map { k, v in
                if k == 1, let layout = prepacks[node.id] { return KernelBuffer(location: packedLocation[layout]![v]!, type: graph[v].type) }
                return buffer(v)
            }
            var inPlace = inPlaceOperand[node.id]
            if let variable = writesVariable[node.id] { inPlace = node.operands.firstIndex(of: variable) }
            return Kernel(name: "k\(step[node.id]!)_\(node.op.name)", work: .node(node.op), node: node.id,
                          operands: operands, result: buffer(node.id), scratch: scratchLocation[node.id],
                          inPlaceOperand: inPlace, plan: plans[node.id]!)
        }
        for (c, copy) in copies.enumerated() {
            kernels.append(Kernel(name: "k\(computed.count + c)_copy", work: .copy, node: copy.value, operands: [buffer(copy.value)],
                                  result: KernelBuffer(location: .output(copy.output), type: graph[copy.value].type), scratch: nil, plan: .copy))
        }
        return KernelProgram(kernels: kernels,
                             inputs: inputNodes.map { InputSpec(name: $0.name, shape: $0.type.shape) },
                             outputs: outputs.map { ($0.name, graph[$0.value].type) },
                             arenaBytes: plan.arenaBytes, lowerBoundBytes: plan.lowerBoundBytes,
                             naiveBytes: planned.reduce(0) { $0 + MemoryPlanner.align($1.bytes) }, buffers: planned,
                             weightsBytes: weightsBytes, weightPlacements: weightPlacements, variables: variables)
    }

    /// The values whose kernel writes its result straight into the variable an assign names
    /// (an optimizer's update into the weight), instead of into the arena and then a copy. That
    /// needs the value computed by a kernel of its own, not a graph output, assigned once, and
    /// every other reader of the variable earlier in the order; the kernel itself may read the
    /// variable only elementwise (it then updates it in place). Other assigns copy, and must
    /// still come after every reader of their variable.
    static func variableWrites(_ graph: Graph, needed: [Bool], outputs: [ValueID]) throws -> [ValueID: ValueID] {
        // Every live reader of each value (an assign reads its value, and a variable it copies).
        var readers: [ValueID: [ValueID]] = [:]
        var assignsOf: [ValueID: Int] = [:]
        for node in graph.nodes where needed[node.id.index] {
            let read = node.op == .assign ? [node.operands[1]] : node.operands
            for v in Set(read) { readers[v, default: []].append(node.id) }
            if node.op == .assign { assignsOf[node.operands[1], default: 0] += 1 }
        }
        let outputSet = Set(outputs)
        var writes: [ValueID: ValueID] = [:]
        var assignedVariables = Set<ValueID>()
        for node in graph.nodes where needed[node.id.index] && node.op == .assign {
            let (variable, value) = (node.operands[0], node.operands[1])
            guard assignedVariables.insert(variable).inserted else {
                throw LatheError.invalidGraph(node: node.name, reason: "variable \(graph[variable].name) is assigned twice")
            }
            let others = (readers[variable] ?? []).filter { $0 != value }
            if let late = others.first(where: { $0.index > node.id.index }) {
                throw LatheError.invalidGraph(node: node.name, reason: "\(graph[late].name) reads variable \(graph[variable].name) after it is assigned")
            }
            let producer = graph[value]
            let computedByItsOwnKernel: Bool
            switch producer.op {
            case .input, .constant, .variable, .assign, .reshape, .flatten, .dropout: computedByItsOwnKernel = false
            default: computedByItsOwnKernel = true
            }
            // Writing the result over the variable is safe if the kernel reads it only at the
            // index it writes (elementwise, same shape), or not at all.
            let overwritable: Bool
            switch producer.op {
            case .unary, .binary, .fusedElementwise: overwritable = producer.operands.allSatisfy { $0 != variable || graph[$0].type.shape == producer.type.shape }
            default: overwritable = !producer.operands.contains(variable)
            }
            guard computedByItsOwnKernel, overwritable, !outputSet.contains(value), assignsOf[value] == 1,
                  others.allSatisfy({ $0.index < value.index }) else { continue }
            writes[value] = variable
        }
        return writes
    }

    /// The operands a node may overwrite with its result: those that die at this node, has the
    /// result's shape, and is read only at the index of the result being written (an
    /// elementwise input, a reshape's input, a contraction's residual operand; never a GEMM's A
    /// or B, which are read across the whole result).
    static func inPlaceCandidates(_ node: Node, _ graph: Graph, plan: KernelPlan?, dyingAt step: Int, lastUse: [ValueID: Int]) -> [Int] {
        let readAtIndex: [Int]
        var reshapes = false
        switch node.op {
        case .unary, .binary, .fusedElementwise:
            readAtIndex = Array(node.operands.indices)
        case .batchNorm:
            readAtIndex = [0]
        case .reshape, .flatten, .dropout:
            readAtIndex = [0]
            reshapes = true
        case let .epilogue(_, baseCount, _):
            // Only a contraction that writes C once, after reading the residual, may overwrite it.
            guard plan?.writesResultOnce == true else { return [] }
            let base = Set(node.operands.prefix(baseCount))
            readAtIndex = node.operands.indices.dropFirst(baseCount).filter { !base.contains(node.operands[$0]) }
        default:
            return []
        }
        return readAtIndex.filter { k in
            let v = node.operands[k]
            return lastUse[v] == step && graph[v].type.count == node.type.count && (reshapes || graph[v].type.shape == node.type.shape)
        }
    }

    /// A weight gradient's working memory per thread, in floats from its start: the whole
    /// unfolded image, then the GEMM's packing buffers (for either product, the straight or the
    /// transposed, on any target, whether or not the sizes would pack), then dW^T for the
    /// transposed product.
    static func weightGradientScratch(_ g: ConvGeometry) -> (packing: Int, partial: Int, floats: Int) {
        let packing = g.needsUnfold ? g.unfoldedRows * g.outputPlane : 0
        let most = max(g.groupOutChannels, g.unfoldedRows)
        let partial = packing + GemmBlocking.packingFloats(m: most, n: most, k: g.outputPlane, always: true)
        return (packing, partial, partial + g.unfoldedRows * g.groupOutChannels)
    }
}
