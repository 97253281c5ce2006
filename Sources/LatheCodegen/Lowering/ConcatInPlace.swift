import LatheIR

/// Concatenation without a copy: the kernels that compute a concat's operands write them
/// straight into their places in the concat's buffer, and the concat itself runs no kernel
/// (SqueezeNet's eight fire modules each end in one; what their copies cost: benchmarks/RESULTS.md, "Measurements behind choices in the code").
///
/// An operand takes its place when its slab of the result is contiguous (every axis before the
/// concat's is 1: a batch-1 channel concat), a kernel of its own computes it (not an input, a
/// constant or another concat), the concat is its only reader and reads it once, and it is not
/// a graph output or written into a variable. A concat all of whose operands qualify, and which
/// is itself in the arena (not written to an output), needs no kernel. Its buffer lives from
/// the first of its operands' kernels on, so that the memory planner keeps it free for them.
extension KernelProgram {
    struct ConcatPlacement {
        /// The byte offset of each operand value in its concat's buffer, and the concat.
        var placed: [ValueID: (concat: ValueID, byteOffset: Int)] = [:]
        /// The concats that run no kernel.
        var concats: Set<ValueID> = []
    }

    static func concatsInPlace(_ graph: Graph, needed: [Bool], outputs: Set<ValueID>, fixed: Set<ValueID>) -> ConcatPlacement {
        var readers: [ValueID: Int] = [:]
        for node in graph.nodes where needed[node.id.index] {
            for v in node.operands { readers[v, default: 0] += 1 }
        }
        var result = ConcatPlacement()
        for node in graph.nodes where needed[node.id.index] {
            guard case let .concat(axis) = node.op, !outputs.contains(node.id), node.type.shape.prefix(axis).allSatisfy({ $0 == 1 }) else { continue }
            let qualifies = node.operands.allSatisfy { v in
                switch graph[v].op {
                case .input, .constant, .variable, .assign, .concat: return false
                default: return readers[v] == 1 && !outputs.contains(v) && !fixed.contains(v)
                }
            }
            guard qualifies else { continue }
            var offset = 0
            for v in node.operands {
                result.placed[v] = (node.id, offset)
                offset += graph[v].type.byteCount
            }
            result.concats.insert(node.id)
        }
        return result
    }
}
