import LatheIR

/// Where a kernel may write its result over a buffer another value holds, instead of a buffer of
/// its own (ProgramBuilder's aliasing stage; concats in place are in ConcatInPlace.swift).
extension KernelProgram {
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
            case .unary, .binary, .fusedElementwise, .select, .cast: overwritable = producer.operands.allSatisfy { $0 != variable || graph[$0].type.shape == producer.type.shape }
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
        case .unary, .binary, .fusedElementwise, .select, .cast:
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
            // Elements of one size: a wider result would overwrite operand elements not yet read.
            return lastUse[v] == step && graph[v].type.count == node.type.count && graph[v].type.dtype.byteSize == node.type.dtype.byteSize
                && (reshapes || graph[v].type.shape == node.type.shape)
        }
    }
}
