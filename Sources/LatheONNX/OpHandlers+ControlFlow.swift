import LatheIR

/// Control flow: If, Loop and Scan, whose subgraphs are imported in place
/// (ImportContext.importSubgraph), with the values defined around them in view.
///
/// - **If**: a condition known at import (a constant, or computed from inputs the model is
///   compiled for the values of) imports the branch it picks and nothing of the other. One
///   computed at run time imports both branches and picks each output with `select`: both are
///   computed, so their outputs must agree in element type and shape.
/// - **Loop**: unrolled, one copy of the body an iteration, with the iteration number a
///   constant. The trip count must be known at import (a constant, or from inputs the model is
///   compiled for the values of: `LatheError.inputValuesNeeded`). A condition known at import
///   ends the loop where it turns false; one computed at run time keeps the trip count's
///   iterations and freezes the carried values from the iteration it turns false on (select).
///   Where the iterations must be known (scan outputs, whose length they set, or no trip
///   count), the first condition is one the model is compiled for, as for a trip count, and
///   the body's must then fold at import.
/// - **Scan**: unrolled over the scan inputs' length along their axes (known from shapes),
///   forward or backward, each scan output stacked along its axis.
///
/// An unrolled loop holds at most `maxUnrolledNodes` nodes of body copies.
extension OpHandlers {
    static let controlFlow: [String: Handler] = ["If": ifNode, "Loop": loop, "Scan": scan]

    static let maxUnrolledNodes = 200_000

    private static func subgraph(_ name: String, _ c: ImportContext) throws -> Onnx_GraphProto {
        guard let attribute = c.node.attribute(name), attribute.hasG else { throw c.fail("has no \(name) graph") }
        return attribute.g
    }

    /// A constant's single value as a bool (nil for a computed value).
    private static func knownCondition(_ v: ImportedValue, _ c: ImportContext) throws -> Bool? {
        guard case let .constant(k) = v else { return nil }
        guard k.count == 1 else { throw c.fail("has a condition of \(k.count) elements, not one") }
        return k.floats[0] != 0
    }

    static func ifNode(_ c: ImportContext) throws -> [ImportedValue] {
        let condition = try c.required(0)
        guard c.dtype(condition) == .bool, c.shape(condition).reduce(1, *) == 1 else {
            throw c.fail("has a condition \(c.dtype(condition)) \(c.shape(condition)), not one bool")
        }
        let (thenGraph, elseGraph) = (try subgraph("then_branch", c), try subgraph("else_branch", c))
        guard thenGraph.output.count == elseGraph.output.count, thenGraph.output.count >= c.node.output.count else {
            throw c.fail("has branches of \(thenGraph.output.count) and \(elseGraph.output.count) outputs for \(c.node.output.count)")
        }
        if let known = try knownCondition(condition, c) {
            return try c.importSubgraph(known ? thenGraph : elseGraph, named: known ? "then_branch" : "else_branch", inputs: [])
        }
        let thenOutputs = try c.importSubgraph(thenGraph, named: "then_branch", inputs: [])
        let elseOutputs = try c.importSubgraph(elseGraph, named: "else_branch", inputs: [])
        let flag = try reshape(condition, to: [], c)
        return try zip(thenOutputs, elseOutputs).enumerated().map { k, pair in
            let (a, b) = pair
            guard c.dtype(a) == c.dtype(b) else { throw c.fail("has branches whose output \(k + 1) is \(c.dtype(a)) and \(c.dtype(b))") }
            guard c.shape(a) == c.shape(b) else {
                throw c.unsupported("its branches' output \(k + 1) is shaped \(c.shape(a)) and \(c.shape(b)); with a condition computed at run time both branches run, and their outputs must have one shape")
            }
            return try c.apply(.select, [flag, a, b], name: "chosen\(k)")
        }
    }

    static func loop(_ c: ImportContext) throws -> [ImportedValue] {
        let body = try subgraph("body", c)
        let carriedCount = max(c.node.input.count - 2, 0)
        guard body.input.count == carriedCount + 2 else {
            throw c.fail("has a body of \(body.input.count) inputs for \(carriedCount) carried values (it takes the iteration number, the condition, then those)")
        }
        guard body.output.count >= carriedCount + 1 else {
            throw c.fail("has a body of \(body.output.count) outputs for \(carriedCount) carried values (it gives the condition, then those, then scan outputs)")
        }
        let scanCount = body.output.count - 1 - carriedCount
        let tripCount = try c.constantInput(0, "trip count").map { k -> Int in
            guard k.count == 1, let n = k.intValues.first else { throw c.fail("has a trip count of \(k.count) elements") }
            return Int(n)
        }
        var condition = try c.input(1) ?? .constant(ConstantTensor(try HostTensor(shape: [], values: [true])))
        if case .node = condition, scanCount > 0 || tripCount == nil, let known = try c.constantInput(1, "condition") {
            // The number of iterations sets the scan outputs' length (or has no other bound):
            // a condition from inputs is one the model is compiled for the values of.
            condition = .constant(known)
        }
        var carried = try (0..<carriedCount).map { try c.required($0 + 2) }
        var scans: [[ImportedValue]] = Array(repeating: [], count: scanCount)
        var iteration = 0, unrolled = 0
        while tripCount.map({ iteration < $0 }) ?? true {
            let known = try knownCondition(condition, c)
            if known == false { break }
            if known == nil {
                guard tripCount != nil else {
                    throw c.unsupported("runs while a condition computed at run time holds, with no trip count; Lathe unrolls loops, which needs a bound")
                }
                guard scanCount == 0 else {
                    throw c.unsupported("has scan outputs and a condition computed at run time: their length would depend on it")
                }
            }
            unrolled += body.node.count
            guard unrolled <= maxUnrolledNodes else {
                throw c.unsupported("unrolls to more than \(maxUnrolledNodes) nodes (\(iteration) iterations of \(body.node.count)); Lathe unrolls loops")
            }
            let number = ImportedValue.constant(ConstantTensor(shape: [], ints: [Int64(iteration)]))
            c.unrolling += 1
            defer { c.unrolling -= 1 }
            let outputs = try c.importSubgraph(body, named: "body#\(iteration)", inputs: [number, condition] + carried)
            let next = Array(outputs[1..<(1 + carriedCount)])
            for (k, value) in outputs.suffix(scanCount).enumerated() { scans[k].append(value) }
            if known == nil {
                // Run-time condition: carried values change only while it holds.
                let flag = try reshape(condition, to: [], c)
                carried = try zip(carried, next).enumerated().map { k, pair in
                    guard c.shape(pair.0) == c.shape(pair.1), c.dtype(pair.0) == c.dtype(pair.1) else {
                        throw c.unsupported("carries value \(k + 1) as \(c.dtype(pair.0)) \(c.shape(pair.0)) into \(c.dtype(pair.1)) \(c.shape(pair.1)) under a condition computed at run time")
                    }
                    return try c.apply(.select, [flag, pair.1, pair.0], name: "carried\(k)_\(iteration)")
                }
                condition = try c.apply(.binary(.and), [flag, try reshape(outputs[0], to: [], c)], name: "condition\(iteration)")
            } else {
                carried = next
                condition = outputs[0]
            }
            iteration += 1
        }
        let stacked = try scans.enumerated().map { k, values in
            try stack(values, axis: 0, emptyLike: body.output[1 + carriedCount + k], c, name: "scan\(k)")
        }
        return carried + stacked
    }

    static func scan(_ c: ImportContext) throws -> [ImportedValue] {
        let body = try subgraph("body", c)
        let scanInputs = c.node.int("num_scan_inputs", 0)
        // Opset 8 has a batch axis first on every input, and sequence lengths before them.
        let batched = c.opset < 9
        let operands = (batched ? 1 : 0)..<c.node.input.count
        let values = try operands.map { try c.required($0) }
        guard scanInputs > 0, scanInputs <= values.count else { throw c.fail("has num_scan_inputs \(scanInputs) for \(values.count) inputs") }
        let stateCount = values.count - scanInputs
        guard body.input.count == values.count, body.output.count >= stateCount else {
            throw c.fail("has a body of \(body.input.count) inputs and \(body.output.count) outputs for \(stateCount) states and \(scanInputs) scan inputs")
        }
        if batched {
            if let lengths = try c.constantInput(0, "sequence_lens"), Set(lengths.intValues).count > 1 {
                throw c.unsupported("sequences of different lengths are not supported")
            }
            // One scan a batch row, stacked back along the batch axis.
            let batch = c.shape(values[0]).first ?? 0
            guard values.allSatisfy({ c.shape($0).first == batch }) else { throw c.fail("has inputs of different batch sizes") }
            var rows: [[ImportedValue]] = []
            for b in 0..<batch {
                let row = try values.enumerated().map { k, v in try taken(v, axis: 0, at: b, c, name: "row\(b)_\(k)") }
                rows.append(try scanRows(body, states: Array(row.prefix(stateCount)), scanned: Array(row.suffix(scanInputs)), axes: nil, c, name: "row\(b)/"))
            }
            return try (0..<body.output.count).map { k in
                try stack(rows.map { $0[k] }, axis: 0, emptyLike: body.output[k], c, name: "batch\(k)")
            }
        }
        return try scanRows(body, states: Array(values.prefix(stateCount)), scanned: Array(values.suffix(scanInputs)), axes: c.node.ints("scan_input_axes"), c, name: "")
    }

    /// One Scan: the body run over the scanned inputs' slices along their axes.
    private static func scanRows(_ body: Onnx_GraphProto, states initial: [ImportedValue], scanned: [ImportedValue], axes given: [Int]?,
                                 _ c: ImportContext, name: String) throws -> [ImportedValue] {
        let directions = c.node.ints("scan_input_directions") ?? Array(repeating: 0, count: scanned.count)
        let axes = try (given ?? Array(repeating: 0, count: scanned.count)).enumerated().map { k, a in try c.axis(a, rank: c.shape(scanned[k]).count) }
        guard axes.count == scanned.count, directions.count == scanned.count else { throw c.fail("has scan_input_axes or directions of the wrong length") }
        let lengths = zip(scanned, axes).map { c.shape($0)[$1] }
        guard let steps = lengths.first, lengths.allSatisfy({ $0 == steps }) else { throw c.fail("scans inputs of lengths \(lengths)") }
        guard steps * body.node.count <= maxUnrolledNodes else {
            throw c.unsupported("unrolls to more than \(maxUnrolledNodes) nodes (\(steps) iterations of \(body.node.count)); Lathe unrolls scans")
        }
        let outputCount = body.output.count - initial.count
        let outputAxes = c.node.ints("scan_output_axes") ?? Array(repeating: 0, count: outputCount)
        let outputDirections = c.node.ints("scan_output_directions") ?? Array(repeating: 0, count: outputCount)
        guard outputAxes.count == outputCount, outputDirections.count == outputCount else { throw c.fail("has scan_output_axes or directions of the wrong length") }
        var states = initial
        var outputs: [[ImportedValue]] = Array(repeating: [], count: outputCount)
        for t in 0..<steps {
            let slices = try scanned.enumerated().map { k, v in
                try taken(v, axis: axes[k], at: directions[k] != 0 ? steps - 1 - t : t, c, name: "\(name)scan\(k)_\(t)")
            }
            c.unrolling += 1
            defer { c.unrolling -= 1 }
            let results = try c.importSubgraph(body, named: "\(name)body#\(t)", inputs: states + slices)
            states = Array(results.prefix(states.count))
            for k in 0..<outputCount { outputs[k].append(results[states.count + k]) }
        }
        let stacked = try outputs.enumerated().map { k, values in
            let ordered = outputDirections[k] != 0 ? values.reversed() : values
            let rank = (values.first.map { c.shape($0).count } ?? 0) + 1
            return try stack(ordered, axis: try c.axis(outputAxes[k], rank: rank), emptyLike: body.output[states.count + k], c, name: "\(name)scan_output\(k)")
        }
        return states + stacked
    }

    /// Values of one shape joined along a new axis; none: an empty tensor of the declared type.
    private static func stack(_ values: [ImportedValue], axis: Int, emptyLike declared: Onnx_ValueInfoProto, _ c: ImportContext,
                              name: String) throws -> ImportedValue {
        guard let first = values.first else {
            guard case let .tensorType(t)? = declared.type.value, let dtype = DType(onnxCode: Int(t.elemType)),
                  t.shape.dim.allSatisfy({ $0.dimValue > 0 }) else {
                throw c.unsupported("runs no iteration, and its output '\(declared.name)' declares no element type and fixed shape to be empty with")
            }
            var shape = t.shape.dim.map { Int($0.dimValue) }
            shape.insert(0, at: min(axis, shape.count))
            return .constant(ConstantTensor(try HostTensor(shape: [0], repeating: 0).converted(to: dtype)).reshaped(shape))
        }
        var shape = c.shape(first)
        guard values.allSatisfy({ c.shape($0) == shape && c.dtype($0) == c.dtype(first) }) else {
            throw c.unsupported("stacks iterations' outputs of different shapes or types: \(values.map { "\(c.dtype($0)) \(c.shape($0))" })")
        }
        shape.insert(1, at: axis)
        let parts = try values.map { try reshape($0, to: shape, c) }
        return parts.count == 1 ? parts[0] : try c.apply(.concat(axis: axis), parts, name: name)
    }
}
