import Foundation
import Lathe
import LatheONNX
import Testing

private func node(_ op: String, _ inputs: [String], _ outputs: [String], graphs: [String: Onnx_GraphProto] = [:], ints: [String: Int] = [:]) -> Onnx_NodeProto {
    var n = Onnx_NodeProto()
    (n.opType, n.name, n.input, n.output) = (op, outputs.first ?? op, inputs, outputs)
    n.attribute = graphs.sorted { $0.key < $1.key }.map { name, g in
        var a = Onnx_AttributeProto()
        (a.name, a.type, a.g) = (name, .graph, g)
        return a
    } + ints.sorted { $0.key < $1.key }.map { name, v in
        var a = Onnx_AttributeProto()
        (a.name, a.type, a.i) = (name, .int, Int64(v))
        return a
    }
    return n
}

private func graph(_ nodes: [Onnx_NodeProto], inputs: [Onnx_ValueInfoProto] = [], outputs: [String]) -> Onnx_GraphProto {
    var g = Onnx_GraphProto()
    (g.name, g.node, g.input) = ("body", nodes, inputs)
    g.output = outputs.map { name in var v = Onnx_ValueInfoProto(); v.name = name; return v }
    return g
}

private func constant(_ name: String, _ tensor: HostTensor) -> Onnx_NodeProto {
    var n = node("Constant", [], [name])
    var a = Onnx_AttributeProto()
    (a.name, a.type) = ("value", .tensor)
    (a.t.dims, a.t.dataType, a.t.rawData) = (tensor.shape.map(Int64.init), Int32(tensor.dtype.onnxCode), Data(tensor.rawBytes))
    n.attribute = [a]
    return n
}

/// A model of one control-flow node over graph inputs, its outputs "y0", "y1"...
private func model(_ n: Onnx_NodeProto, inputs: [Onnx_ValueInfoProto], opset: Int64 = 17) throws -> Data {
    var m = emptyONNXModel()
    m.opsetImport[0].version = opset
    m.graph.node = [n]
    m.graph.input = inputs
    m.graph.output = n.output.map { name in var v = onnxValueInfo(name, .float32, []); v.type.tensorType.clearShape(); return v }
    return try m.serializedData()
}

private func run(_ data: Data, _ feeds: [String: HostTensor]) throws -> [String: HostTensor] {
    try ONNXModel(data).run(feeds)
}

@Suite("Control flow: If, Loop and Scan")
struct ControlFlowTests {
    /// then: x + 1, else: x * 2, with x from outside the branches.
    static func ifModel() throws -> Data {
        let one = try HostTensor(shape: [], scalars: [1]), two = try HostTensor(shape: [], scalars: [2])
        let thenBranch = graph([constant("one", one), node("Add", ["x", "one"], ["plus"])], outputs: ["plus"])
        let elseBranch = graph([constant("two", two), node("Mul", ["x", "two"], ["times"])], outputs: ["times"])
        return try model(node("If", ["c"], ["y0"], graphs: ["then_branch": thenBranch, "else_branch": elseBranch]),
                         inputs: [onnxValueInfo("c", .bool, []), onnxValueInfo("x", .float32, [3])])
    }

    @Test func ifWithARunTimeConditionPicksItsBranchesOutput() throws {
        let x = try HostTensor(shape: [3], scalars: [1, 2, 3])
        #expect(try run(try Self.ifModel(), ["c": try HostTensor(shape: [], values: [true]), "x": x])["y0"]?.scalars == [2, 3, 4])
        #expect(try run(try Self.ifModel(), ["c": try HostTensor(shape: [], values: [false]), "x": x])["y0"]?.scalars == [2, 4, 6])
    }

    @Test func ifWithAKnownConditionImportsOneBranch() throws {
        var m = try Onnx_ModelProto(serializedBytes: try Self.ifModel())
        m.graph.input.removeFirst()
        m.graph.node.insert(constant("c", try HostTensor(shape: [], values: [false])), at: 0)
        let imported = try ONNXImporter.load(try m.serializedData())
        let ops = imported.graph.nodes.map(\.op.name)
        #expect(ops.contains("mul") && !ops.contains("add") && !ops.contains("select"))
    }

    /// Loop: y = y + i for i in 0..<trip, the running y as a scan output; trip a value input.
    static func loopModel(conditionFromBody: Bool = false) throws -> Data {
        let body = graph([node("Cast", ["i"], ["fi"], ints: ["to": 1]), node("Add", ["y_in", "fi"], ["y_out"]),
                          node("Identity", ["y_out"], ["scan"])] + (conditionFromBody ? [constant("limit", try HostTensor(shape: [], scalars: [3])), node("Less", ["y_out", "limit"], ["more"])] : [node("Identity", ["c_in"], ["more"])]),
                         inputs: [onnxValueInfo("i", .int64, []), onnxValueInfo("c_in", .bool, []), onnxValueInfo("y_in", .float32, [])],
                         outputs: conditionFromBody ? ["more", "y_out"] : ["more", "y_out", "scan"])
        return try model(node("Loop", ["trip", "", "y"], conditionFromBody ? ["y0"] : ["y0", "y1"], graphs: ["body": body]),
                         inputs: [onnxValueInfo("trip", .int64, []), onnxValueInfo("y", .float32, [])])
    }

    @Test func loopUnrollsForItsTripCount() throws {
        let out = try run(try Self.loopModel(), ["trip": try HostTensor(shape: [], values: [Int64(4)]), "y": try HostTensor(shape: [], scalars: [10])])
        #expect(try out["y0"]?.scalars == [16])
        #expect(try out["y1"]?.scalars == [10, 11, 13, 16])
        let three = try run(try Self.loopModel(), ["trip": try HostTensor(shape: [], values: [Int64(3)]), "y": try HostTensor(shape: [], scalars: [0])])
        #expect(try three["y1"]?.scalars == [0, 1, 3])
    }

    /// A condition computed at run time (y < 3) stops the carried value changing.
    @Test func aRunTimeConditionFreezesTheCarriedValues() throws {
        let data = try Self.loopModel(conditionFromBody: true)
        let trip = try HostTensor(shape: [], values: [Int64(6)])
        // 0, +0 = 0 (0 < 3), +1 = 1, +2 = 3 (stops: 3 < 3 is false)
        #expect(try run(data, ["trip": trip, "y": try HostTensor(shape: [], scalars: [0])])["y0"]?.scalars == [3])
        #expect(try run(data, ["trip": trip, "y": try HostTensor(shape: [], scalars: [5])])["y0"]?.scalars == [5])
    }

    /// Scan: running sums of x's rows, backwards, stacked along axis 1.
    @Test func scanRunsBackwardsAndStacksAlongItsAxis() throws {
        let body = graph([node("Add", ["sum_in", "row"], ["sum_out"]), node("Identity", ["sum_out"], ["scan"])],
                         inputs: [onnxValueInfo("sum_in", .float32, [2]), onnxValueInfo("row", .float32, [2])], outputs: ["sum_out", "scan"])
        var scan = node("Scan", ["init", "x"], ["y0", "y1"], graphs: ["body": body], ints: ["num_scan_inputs": 1])
        for (name, value) in [("scan_input_directions", 1), ("scan_output_axes", 1)] {
            var a = Onnx_AttributeProto()
            (a.name, a.type, a.ints) = (name, .ints, [Int64(value)])
            scan.attribute.append(a)
        }
        let data = try model(scan, inputs: [onnxValueInfo("init", .float32, [2]), onnxValueInfo("x", .float32, [3, 2])])
        let out = try run(data, ["init": try HostTensor(shape: [2], scalars: [0, 100]), "x": try HostTensor(shape: [3, 2], scalars: [1, 2, 3, 4, 5, 6])])
        #expect(try out["y0"]?.scalars == [9, 112])
        // Steps see rows 2, 1, 0: sums [5, 106], [8, 110], [9, 112]; stacked as columns.
        #expect(out["y1"]?.shape == [2, 3])
        #expect(try out["y1"]?.scalars == [5, 8, 9, 106, 110, 112])
    }

    // MARK: malformed and unsupported control flow

    private func expectMalformed(_ data: Data, _ fragments: [String], sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        #expect(sourceLocation: sourceLocation) {
            _ = try ONNXImporter.load(data, inputValues: ["trip": try HostTensor(shape: [], values: [Int64(2)])])
        } throws: { error in
            guard case let LatheError.malformedModel(message) = error else { return false }
            return fragments.allSatisfy(message.contains)
        }
    }

    @Test func aMissingBranchIsAMalformedModel() throws {
        var m = try Onnx_ModelProto(serializedBytes: try Self.ifModel())
        m.graph.node[0].attribute.removeAll { $0.name == "else_branch" }
        expectMalformed(try m.serializedData(), ["If node 'y0'", "has no else_branch graph"])
    }

    @Test func aBranchReadingAnUndefinedOuterValueIsAMalformedModel() throws {
        var m = try Onnx_ModelProto(serializedBytes: try Self.ifModel())
        m.graph.node[0].attribute[0].g.node[1].input[0] = "nowhere"
        expectMalformed(try m.serializedData(), ["reads 'nowhere', which nothing before it defines"])
    }

    @Test func aCutBodyIsAMalformedModel() throws {
        // The body's last node gone: its scan output is defined by nothing.
        var m = try Onnx_ModelProto(serializedBytes: try Self.loopModel())
        m.graph.node[0].attribute[0].g.node.removeLast()
        expectMalformed(try m.serializedData(), ["Loop node 'y0'", "its body#0 returns 'more', which nothing in it or before it defines"])
        // A body that takes fewer inputs than the loop carries.
        var n = try Onnx_ModelProto(serializedBytes: try Self.loopModel())
        n.graph.node[0].attribute[0].g.input.removeLast()
        expectMalformed(try n.serializedData(), ["Loop node 'y0'", "has a body of 2 inputs for 1 carried values"])
    }

    @Test func aCarriedValueOfTheWrongTypeIsAMalformedModel() throws {
        var m = try Onnx_ModelProto(serializedBytes: try Self.loopModel())
        m.graph.node[0].attribute[0].g.input[2] = onnxValueInfo("y_in", .int32, [])
        expectMalformed(try m.serializedData(), ["its body#0's input 'y_in' is int32, given float32"])
    }

    @Test func anUnsupportedOpInABranchIsListed() throws {
        var m = try Onnx_ModelProto(serializedBytes: try Self.ifModel())
        m.graph.node[0].attribute[1].g.node.append(node("StringNormalizer", ["x"], ["s"]))
        #expect {
            _ = try ONNXImporter.load(try m.serializedData())
        } throws: { error in
            guard case let LatheError.unsupportedOps(ops) = error else { return false }
            return ops.map(\.opType) == ["StringNormalizer"]
        }
    }

    @Test func branchesOfDifferentShapesUnderARunTimeConditionAreRefused() throws {
        var m = try Onnx_ModelProto(serializedBytes: try Self.ifModel())
        m.graph.node[0].attribute[0].g.node[0] = constant("two", try HostTensor(shape: [2, 1], scalars: [2, 2]))
        #expect {
            _ = try ONNXImporter.load(try m.serializedData())
        } throws: { error in
            guard case let LatheError.unsupported(message) = error else { return false }
            return message.contains("shaped [3] and [2, 3]")
        }
    }
}
