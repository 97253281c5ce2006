import Foundation
import Lathe
import LatheONNX
import Testing

/// Einsum by its definition: every assignment of sizes to the labels, each product added to the
/// output element its output labels pick. `labels` are the operands' and the output's, spelled
/// out (no ellipsis).
private func naiveEinsum(_ inputs: [[Character]], _ output: [Character], _ tensors: [(shape: [Int], values: [Float])]) -> [Float] {
    var sizes: [Character: Int] = [:]
    for (labels, t) in zip(inputs, tensors) { for (l, s) in zip(labels, t.shape) { sizes[l] = max(sizes[l] ?? 1, s) } }
    let all = Array(Set(inputs.joined())).sorted()
    let outShape = output.map { sizes[$0]! }
    var out = [Float](repeating: 0, count: outShape.reduce(1, *))
    var index = [Character: Int]()
    func offset(_ labels: [Character], _ shape: [Int]) -> Int {
        zip(labels, shape).reduce(0) { $0 * $1.1 + ($1.1 == 1 ? 0 : index[$1.0]!) }
    }
    func visit(_ k: Int) {
        guard k < all.count else {
            let product = zip(inputs, tensors).reduce(Float(1)) { $0 * $1.1.values[offset($1.0, $1.1.shape)] }
            out[offset(output, outShape)] += product
            return
        }
        for v in 0..<sizes[all[k]]! { index[all[k]] = v; visit(k + 1) }
    }
    visit(0)
    return out
}

@Suite("Einsum against its definition")
struct EinsumTests {
    /// (equation, operand shapes, the labels spelled out for the reference)
    static let cases: [(String, [[Int]], [String], String)] = [
        ("bhqd,bhkd->bhqk", [[2, 3, 4, 5], [2, 3, 6, 5]], ["bhqd", "bhkd"], "bhqk"),   // attention scores
        ("...ij,...jk", [[2, 1, 3, 4], [5, 4, 2]], ["xyij", "yjk"], "xyik"),            // implicit output, broadcast batch
        ("ij,jk,kl->il", [[3, 4], [4, 5], [5, 2]], ["ij", "jk", "kl"], "il"),            // a chain of three
        ("bii->b", [[3, 4, 4]], ["bii"], "b"),                                          // traces
        ("i,j->ij", [[3], [5]], ["i", "j"], "ij"),                                      // outer product
        ("abc->cba", [[2, 3, 4]], ["abc"], "cba"),
        ("ij,ij->", [[3, 7], [3, 7]], ["ij", "ij"], ""),                                // a full contraction
        ("bn,anm,bm->ba", [[2, 3], [4, 3, 5], [2, 5]], ["bn", "anm", "bm"], "ba"),      // a bilinear layer
    ]

    @Test(arguments: cases.indices)
    func matchesTheDefinition(_ k: Int) throws {
        let (equation, shapes, labels, output) = Self.cases[k]
        var model = emptyONNXModel()
        var node = Onnx_NodeProto()
        let names = shapes.indices.map { "x\($0)" }
        (node.opType, node.name, node.input, node.output) = ("Einsum", "einsum", names, ["y"])
        var attribute = Onnx_AttributeProto()
        (attribute.name, attribute.type, attribute.s) = ("equation", .string, Data(equation.utf8))
        node.attribute = [attribute]
        model.graph.node = [node]
        model.graph.input = zip(names, shapes).map { onnxValueInfo($0, .float32, $1) }
        var y = onnxValueInfo("y", .float32, [])
        y.type.tensorType.clearShape()
        model.graph.output = [y]
        let tensors: [(shape: [Int], values: [Float])] = shapes.enumerated().map { i, shape in
            let values: [Float] = (0..<shape.reduce(1, *)).map { Float(($0 * 7 + i * 3) % 11) / 4 - 1 }
            return (shape: shape, values: values)
        }
        let imported = try ONNXImporter.load(try model.serializedData())
        let feeds = Dictionary(uniqueKeysWithValues: try zip(names, tensors).map { ($0, try HostTensor(shape: $1.shape, scalars: $1.values)) })
        let got = try Compiler.compile(imported.graph, outputs: imported.outputs).run(feeds)["y"]!.scalars
        let expected = naiveEinsum(labels.map(Array.init), Array(output), tensors)
        #expect(got.count == expected.count)
        #expect(zip(got, expected).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) }, "\(equation): \(got) vs \(expected)")
    }

    @Test func badEquationsAreMalformedModels() throws {
        for (equation, reason) in [("ijk->iz", "output label 'z'"), ("ij,jk->i", "2 terms"), ("ij->i", "term 'ij' for an operand of rank 3"), ("i1k->i", "'1'")] {
            let model = oneNodeModel("Einsum", inputs: ["X"], x: onnxValueInfo("X", .float32, [2, 3, 4]), initializers: [],
                                     attributes: [{ var a = Onnx_AttributeProto(); (a.name, a.type, a.s) = ("equation", .string, Data(equation.utf8)); return a }()])
            #expect {
                _ = try ONNXImporter.load(model)
            } throws: { error in
                guard case let LatheError.malformedModel(message) = error else { return false }
                return message.contains(reason)
            }
        }
    }
}
