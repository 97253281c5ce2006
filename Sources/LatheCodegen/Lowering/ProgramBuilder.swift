import LatheIR

/// KernelProgram.build's stages, in order, one method each:
///
/// 1. `planKernels`: a KernelPlan for every node that will run (KernelPlan.make).
/// 2. `placeWeights`: the weights region: each constant read as it is, each variable, and each
///    constant weight operand in the layout its kernel's plan reads (only there, when nothing
///    else reads it plainly).
/// 3. Aliasing, one rule each: `writeOutputs` (a computed output is written straight into the
///    caller's buffer; other outputs copy), `variableWrites` (an optimizer's update written into
///    its variable), `concatsInPlace` (a concat's operands written into their places in it).
/// 4. `schedule`: the kernels in graph order, each value's last reader.
/// 5. `requestArena`: a request per arena buffer, with its life in steps: the values no output
///    or variable holds (a value computed in place over a dying operand joins that operand's
///    request: `inPlaceCandidates`), each kernel's scratch, the concats that run no kernel.
/// 6. `placeArena`: the memory planner's offsets, then every buffer's location.
/// 7. `program`: the kernels with their buffers.
struct ProgramBuilder {
    let graph: Graph
    let outputs: [(name: String, value: ValueID)]
    let threads: Int
    let vectorWidth: Int
    /// The nodes the outputs and the assigns need, by index, and in graph order.
    let needed: [Bool]
    let neededNodes: [Node]

    private(set) var plans: [ValueID: KernelPlan] = [:]
    /// A split kernel's plan on one thread, where its split costs work (Kernel.alonePlan).
    private var alonePlans: [ValueID: KernelPlan] = [:]
    private var location: [ValueID: BufferLocation] = [:]
    // placeWeights
    private var weightPlacements: [(slot: Int, offset: Int, layout: WeightLayout)] = []
    private var weightsBytes = 0
    private var packedLocation: [WeightLayout: [ValueID: BufferLocation]] = [:]
    private var variables: [VariablePlacement] = []
    // aliasing
    private var writesOutput: [ValueID: Int] = [:]
    private var copies: [(value: ValueID, output: Int)] = []
    private var writesVariable: [ValueID: ValueID] = [:]
    private var concats = KernelProgram.ConcatPlacement()
    // schedule
    private var computed: [Node] = []
    private var step: [ValueID: Int] = [:]
    private var lastUse: [ValueID: Int] = [:]
    // requestArena
    private var requests: [BufferRequest] = []
    private var request: [ValueID: Int] = [:]
    private var scratchRequest: [ValueID: Int] = [:]
    private var concatRequest: [ValueID: Int] = [:]
    private var inPlaceOperand: [ValueID: Int] = [:]
    // placeArena
    private var memory = MemoryPlan(offsets: [], arenaBytes: 0, lowerBoundBytes: 0, naiveBytes: 0)
    private var planned: [PlannedBuffer] = []
    private var scratchLocation: [ValueID: KernelBuffer] = [:]

    init(_ graph: Graph, outputs: [(name: String, value: ValueID)], threads: Int, vectorWidth: Int) {
        (self.graph, self.outputs, self.threads, self.vectorWidth) = (graph, outputs, threads, vectorWidth)
        needed = graph.liveNodes(outputs: outputs.map(\.value))
        neededNodes = graph.nodes.filter { [needed] in needed[$0.id.index] }
        for (i, node) in graph.inputs.enumerated() { location[node.id] = .input(i) }
    }

    mutating func planKernels() {
        for node in neededNodes {
            switch node.op {
            case .input, .constant, .variable, .assign: continue
            default: break
            }
            var constantWeights = false
            if node.operands.count >= 2, case .constant = graph[node.operands[1]].op { constantWeights = true }
            let plan = KernelPlan.make(node.op, operandTypes: node.operands.map { graph[$0].type }, resultType: node.type,
                                       constantWeights: constantWeights, threads: threads, vectorWidth: vectorWidth, sourceOps: node.sourceOps)
            plans[node.id] = plan
            if plan.splitCostsWork {
                let alone = KernelPlan.make(node.op, operandTypes: node.operands.map { graph[$0].type }, resultType: node.type,
                                            constantWeights: constantWeights, threads: 1, vectorWidth: vectorWidth, sourceOps: node.sourceOps)
                if alone.canStandIn(for: plan) { alonePlans[node.id] = alone }
            }
        }
    }

    /// The layout a kernel reads its operand 1 in, when its plan packs or transforms it.
    private func prepacked(_ v: ValueID) -> WeightLayout? {
        guard let layout = plans[v]?.weightLayout, layout.isPacked else { return nil }
        return layout
    }

    mutating func placeWeights() {
        var readPlain = Set(outputs.map(\.value))
        for node in neededNodes {
            for (k, operand) in node.operands.enumerated() where !(k == 1 && prepacked(node.id) != nil) { readPlain.insert(operand) }
        }
        for node in neededNodes {
            if case let .constant(slot) = node.op, readPlain.contains(node.id) {
                location[node.id] = placeWeight(slot, .plain, bytes: node.type.byteCount)
            }
            if case let .variable(slot) = node.op {
                variables.append(VariablePlacement(name: node.name, offset: weightsBytes, type: node.type))
                location[node.id] = placeWeight(slot, .plain, bytes: node.type.byteCount)
            }
            if let layout = prepacked(node.id), case let .constant(slot) = graph[node.operands[1]].op {
                let key = node.operands[1]
                if packedLocation[layout, default: [:]][key] == nil {
                    packedLocation[layout, default: [:]][key] = placeWeight(slot, layout, bytes: layout.floatCount(graph[key].type.count) * 4)
                }
            }
        }
    }

    private mutating func placeWeight(_ slot: Int, _ layout: WeightLayout, bytes: Int) -> BufferLocation {
        weightPlacements.append((slot, weightsBytes, layout))
        defer { weightsBytes += MemoryPlanner.align(bytes) }
        return .weights(weightsBytes)
    }

    /// The first output naming a computed value is written in place; other outputs copy.
    mutating func writeOutputs() {
        for (i, (_, v)) in outputs.enumerated() {
            switch graph[v].op {
            case .input, .constant, .variable, .assign: copies.append((v, i))
            default:
                if writesOutput[v] == nil { writesOutput[v] = i } else { copies.append((v, i)) }
            }
        }
    }

    mutating func writeVariables() throws {
        writesVariable = try KernelProgram.variableWrites(graph, needed: needed, outputs: outputs.map(\.value))
    }

    mutating func placeConcats() {
        concats = KernelProgram.concatsInPlace(graph, needed: needed, outputs: Set(outputs.map(\.value)), fixed: Set(writesVariable.keys))
    }

    /// The kernels in graph order (a concat in place and an assign written by its value's kernel
    /// run none), and each value's last reader; outputs that copy are read by the last steps.
    mutating func schedule() {
        computed = neededNodes.filter { node in
            guard !concats.concats.contains(node.id) else { return false }
            switch node.op {
            case .input, .constant, .variable: return false
            case .assign: return writesVariable[node.operands[1]] != node.operands[0]
            default: return true
            }
        }
        for (s, node) in computed.enumerated() { step[node.id] = s }
        for (value, variable) in writesVariable { location[value] = location[variable] }
        for node in neededNodes where node.op == .assign { location[node.id] = location[node.operands[0]] }
        let lastStep = computed.count + copies.count - 1
        for node in computed { for operand in node.operands { lastUse[operand] = step[node.id] } }
        for c in copies { lastUse[c.value] = lastStep }
    }

    mutating func requestArena() {
        for node in computed {
            let s = step[node.id]!
            let life = max(s, lastUse[node.id] ?? s)
            if writesOutput[node.id] == nil && location[node.id] == nil && concats.placed[node.id] == nil {
                let candidates = KernelProgram.inPlaceCandidates(node, graph, plan: plans[node.id], dyingAt: s, lastUse: lastUse)
                if let k = candidates.first(where: { request[node.operands[$0]] != nil }), let shared = request[node.operands[k]] {
                    // Computed over an operand that dies here: one buffer, which lives on.
                    inPlaceOperand[node.id] = k
                    request[node.id] = shared
                    requests[shared].lastUse = max(requests[shared].lastUse, life)
                } else {
                    request[node.id] = requests.count
                    requests.append(BufferRequest(bytes: node.type.byteCount, firstUse: s, lastUse: life))
                }
            }
            let scratch = max(plans[node.id]?.scratchFloats ?? 0, alonePlans[node.id]?.scratchFloats ?? 0) * 4
            if scratch > 0 {
                scratchRequest[node.id] = requests.count
                requests.append(BufferRequest(bytes: scratch, firstUse: s, lastUse: s))
            }
        }
        // A concat that runs no kernel holds its operands from the first one's kernel on.
        for c in concats.concats.sorted(by: { $0.index < $1.index }) {
            let first = graph[c].operands.compactMap { step[$0] }.min() ?? 0
            concatRequest[c] = requests.count
            requests.append(BufferRequest(bytes: graph[c].type.byteCount, firstUse: first, lastUse: max(first, lastUse[c] ?? first)))
        }
    }

    mutating func placeArena() {
        memory = MemoryPlanner.plan(requests)
        let offsets = memory.offsets
        for node in computed {
            let s = step[node.id]!
            if let r = request[node.id] {
                location[node.id] = .arena(offsets[r])
                planned.append(PlannedBuffer(name: node.name, offset: offsets[r], bytes: node.type.byteCount, firstUse: s, lastUse: max(s, lastUse[node.id] ?? s)))
            }
            if let r = scratchRequest[node.id] {
                scratchLocation[node.id] = KernelBuffer(location: .arena(offsets[r]), type: TensorType(.float32, [requests[r].bytes / 4]))
                planned.append(PlannedBuffer(name: "\(node.name) (scratch)", offset: offsets[r], bytes: requests[r].bytes, firstUse: s, lastUse: s))
            }
        }
        for (c, r) in concatRequest.sorted(by: { $0.key.index < $1.key.index }) {
            location[c] = .arena(offsets[r])
            planned.append(PlannedBuffer(name: graph[c].name, offset: offsets[r], bytes: requests[r].bytes,
                                         firstUse: requests[r].firstUse, lastUse: requests[r].lastUse))
        }
        for (v, place) in concats.placed { location[v] = .arena(offsets[concatRequest[place.concat]!] + place.byteOffset) }
        for (v, i) in writesOutput { location[v] = .output(i) }
    }

    func program() -> KernelProgram {
        func buffer(_ v: ValueID) -> KernelBuffer { KernelBuffer(location: location[v]!, type: graph[v].type) }
        var kernels: [Kernel] = computed.map { node in
            if node.op == .assign {
                return Kernel(name: "k\(step[node.id]!)_assign", work: .copy, node: node.id, operands: [buffer(node.operands[1])],
                              result: buffer(node.operands[0]), scratch: nil, plan: .copy)
            }
            let operands = node.operands.enumerated().map { k, v in
                if k == 1, let layout = prepacked(node.id) { return KernelBuffer(location: packedLocation[layout]![v]!, type: graph[v].type) }
                return buffer(v)
            }
            var inPlace = inPlaceOperand[node.id]
            if let variable = writesVariable[node.id] { inPlace = node.operands.firstIndex(of: variable) }
            var kernel = Kernel(name: "k\(step[node.id]!)_\(node.op.name)", work: .node(node.op), node: node.id,
                                operands: operands, result: buffer(node.id), scratch: scratchLocation[node.id],
                                inPlaceOperand: inPlace, plan: plans[node.id]!)
            (kernel.nodeName, kernel.location) = (node.name, node.location)
            kernel.alonePlan = alonePlans[node.id]
            return kernel
        }
        for (c, copy) in copies.enumerated() {
            kernels.append(Kernel(name: "k\(computed.count + c)_copy", work: .copy, node: copy.value, operands: [buffer(copy.value)],
                                  result: KernelBuffer(location: .output(copy.output), type: graph[copy.value].type), scratch: nil, plan: .copy))
        }
        return KernelProgram(kernels: kernels,
                             inputs: graph.inputs.map { InputSpec(name: $0.name, shape: $0.type.shape, dtype: $0.type.dtype) },
                             outputs: outputs.map { ($0.name, graph[$0.value].type) },
                             arenaBytes: memory.arenaBytes, lowerBoundBytes: memory.lowerBoundBytes,
                             naiveBytes: planned.reduce(0) { $0 + MemoryPlanner.align($1.bytes) }, buffers: planned,
                             weightsBytes: weightsBytes, weightPlacements: weightPlacements, variables: variables)
    }
}
