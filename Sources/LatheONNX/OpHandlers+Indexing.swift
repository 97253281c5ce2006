import LatheIR

/// Ops that read or write by indices: Gather, GatherElements, GatherND, ScatterElements and
/// ScatterND. Indices computed at run time go to the IR op, whose kernel checks them as it
/// runs; constant ones are checked at import.
extension OpHandlers {
    static let indexing: [String: Handler] = [
        "Gather": gather,
        "ScatterElements": { c in
            let data = try c.required(0)
            let axis = try c.axis(c.node.int("axis", 0), rank: c.shape(data).count)
            return [try c.apply(.scatter(axis: axis, reduction: try scatterReduction(c)), [data, try c.required(1), try c.required(2)])]
        },
        "GatherND": { c in [try c.apply(.gatherND(batchDims: c.node.int("batch_dims", 0)), [try c.required(0), try c.required(1)])] },
        "ScatterND": { c in [try c.apply(.scatter(axis: nil, reduction: try scatterReduction(c)), [try c.required(0), try c.required(1), try c.required(2)])] },
        "TopK": { c in
            // The positions by the top_k op, the values gathered at them.
            let x = try c.required(0)
            let axis = try c.axis(c.node.int("axis", -1), rank: c.shape(x).count)
            guard let k = try c.constantInput(1, "k")?.intValues.first ?? c.node.ints("k")?.first else { throw c.fail("has no k") }
            let indices = try c.apply(.topK(k: k, axis: axis, largest: c.node.int("largest", 1) != 0), [x], name: "indices")
            return [try c.apply(.gatherElements(axis: axis), [x, indices]), indices]
        },
        "GatherElements": { c in
            let data = try c.required(0)
            let axis = try c.axis(c.node.int("axis", 0), rank: c.shape(data).count)
            return [try c.apply(.gatherElements(axis: axis), [data, try c.required(1)])]
        },
    ]

    /// The node's reduction attribute (none, add, mul, max, min).
    static func scatterReduction(_ c: ImportContext) throws -> ScatterReduction {
        let name = c.node.string("reduction", "none")
        guard let reduction = ScatterReduction(rawValue: name) else { throw c.fail("has reduction '\(name)' (none, add, mul, max or min)") }
        return reduction
    }

    /// Gather. Indices computed at run time go to the gather op, which checks them as it runs.
    /// Constant indices are checked now: a constant result when the data is constant too, else
    /// one slice per index, joined and reshaped to data[:axis] + indices + data[axis+1:].
    static func gather(_ c: ImportContext) throws -> [ImportedValue] {
        let data = try c.required(0)
        let shape = c.shape(data)
        let axis = try c.axis(c.node.int("axis", 0), rank: shape.count)
        if case .node? = try c.input(1) {
            return [try c.apply(.gather(axis: axis), [data, try c.required(1)])]
        }
        guard let indices = try c.constantInput(1, "indices") else { throw c.fail("has no indices") }
        let picks = try indices.intValues.map { i -> Int in
            let j = i < 0 ? i + shape[axis] : i
            guard (0..<shape[axis]).contains(j) else { throw c.fail("has index \(i) out of range for axis size \(shape[axis])") }
            return j
        }
        let outShape = Array(shape[..<axis]) + indices.shape + Array(shape[(axis + 1)...])
        if case let .constant(k) = data {
            let strides = contiguousStrides(shape)
            let parts = picks.map { k.gathered(shape: Array(shape[..<axis]) + [1] + Array(shape[(axis + 1)...]), strides: strides, base: $0 * strides[axis]) }
            return [.constant(ConstantTensor.concatenated(parts, axis: axis).reshaped(outShape))]
        }
        // One kernel whatever the number of indices (checked here, so in range).
        let checked = ConstantTensor(shape: indices.shape, ints: picks.map(Int64.init))
        return [try c.apply(.gather(axis: axis), [data, .constant(checked)])]
    }
}
