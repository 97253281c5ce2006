import Foundation
import Lathe
import LatheONNX
import Testing

/// A one-node model of `op` over named graph inputs, its outputs of any shape.
private func model(_ op: String, inputs: [(String, DType, [Int])], operands: [String], outputs: [String],
                   ints: [String: Int] = [:], strings: [String: String] = [:]) throws -> Data {
    var m = emptyONNXModel()
    m.opsetImport[0].version = 28
    var n = Onnx_NodeProto()
    (n.opType, n.name, n.input, n.output) = (op, op, operands, outputs)
    n.attribute = ints.sorted { $0.key < $1.key }.map { key, value in var a = Onnx_AttributeProto(); (a.name, a.type, a.i) = (key, .int, Int64(value)); return a }
        + strings.sorted { $0.key < $1.key }.map { key, value in var a = Onnx_AttributeProto(); (a.name, a.type, a.s) = (key, .string, Data(value.utf8)); return a }
    m.graph.node = [n]
    m.graph.input = inputs.map { onnxValueInfo($0.0, $0.1, $0.2) }
    m.graph.output = outputs.map { name in var v = onnxValueInfo(name, .float32, []); v.type.tensorType.clearShape(); return v }
    return try m.serializedData()
}

@Suite("Stateful decoder ops: LinearAttention, CausalConvWithState, TensorScatter")
struct StateSpaceTests {
    /// A sequence run in two pieces, the state of the first fed to the second, gives what the
    /// whole sequence gives: for the causal convolution and for linear attention.
    @Test func stateCarriesAcrossPieces() throws {
        let (c, k, length, split) = (3, 4, 9, 5)
        let x = (0..<c * length).map { Float(($0 * 5) % 7) - 3 }, w = (0..<c * k).map { Float($0 % 5) * 0.25 - 0.5 }
        func piece(_ from: Int, _ to: Int) throws -> HostTensor {
            try HostTensor(shape: [1, c, to - from], scalars: (0..<c).flatMap { ch in (from..<to).map { x[ch * length + $0] } })
        }
        let conv = { (l: Int) in try model("CausalConvWithState", inputs: [("x", .float32, [1, c, l]), ("w", .float32, [c, 1, k]), ("s", .float32, [1, c, k - 1])],
                                            operands: ["x", "w", "", "s"], outputs: ["y", "state"], strings: ["activation": "silu"]) }
        let weights = try HostTensor(shape: [c, 1, k], scalars: w), zeros = try HostTensor(shape: [1, c, k - 1], scalars: Array(repeating: 0, count: c * (k - 1)))
        let whole = try ONNXModel(try conv(length)).run(["x": try piece(0, length), "w": weights, "s": zeros])
        let first = try ONNXModel(try conv(split)).run(["x": try piece(0, split), "w": weights, "s": zeros])
        let second = try ONNXModel(try conv(length - split)).run(["x": try piece(split, length), "w": weights, "s": first["state"]!])
        let (a, b) = (try first["y"]!.scalars, try second["y"]!.scalars)
        var joined: [Float] = []
        for ch in 0..<c {
            joined += a[(ch * split)..<((ch + 1) * split)]
            joined += b[(ch * (length - split))..<((ch + 1) * (length - split))]
        }
        #expect(zip(joined, try whole["y"]!.scalars).allSatisfy { abs($0 - $1) < 1e-5 })
        #expect(try second["state"]!.scalars == whole["state"]!.scalars)

        // Linear attention, gated delta rule, 2 query heads on 1 kv head.
        let (dk, dv, steps) = (3, 2, 6)
        func attention(_ t: Int) throws -> Data {
            try model("LinearAttention", inputs: [("q", .float32, [1, t, 2 * dk]), ("k", .float32, [1, t, dk]), ("v", .float32, [1, t, dv]),
                                                   ("s", .float32, [1, 1, dk, dv]), ("g", .float32, [1, t, 1]), ("b", .float32, [1, t, 1])],
                      operands: ["q", "k", "v", "s", "g", "b"], outputs: ["y", "state"], ints: ["q_num_heads": 2, "kv_num_heads": 1])
        }
        func series(_ width: Int, _ seed: Int) -> [Float] { (0..<steps * width).map { Float(($0 * 7 + seed) % 11) / 10 - 0.5 } }
        let feeds = [("q", 2 * dk, 1), ("k", dk, 2), ("v", dv, 3), ("g", 1, 4), ("b", 1, 5)]
        func part(_ from: Int, _ to: Int) throws -> [String: HostTensor] {
            try Dictionary(uniqueKeysWithValues: feeds.map { name, width, seed in
                (name, try HostTensor(shape: [1, to - from, width], scalars: Array(series(width, seed)[(from * width)..<(to * width)])))
            })
        }
        let start = try HostTensor(shape: [1, 1, dk, dv], scalars: Array(repeating: 0, count: dk * dv))
        let all = try ONNXModel(try attention(steps)).run(try part(0, steps).merging(["s": start]) { $1 })
        let early = try ONNXModel(try attention(2)).run(try part(0, 2).merging(["s": start]) { $1 })
        let late = try ONNXModel(try attention(steps - 2)).run(try part(2, steps).merging(["s": early["state"]!]) { $1 })
        #expect(zip(try early["y"]!.scalars + late["y"]!.scalars, try all["y"]!.scalars).allSatisfy { abs($0 - $1) < 1e-5 })
        #expect(zip(try late["state"]!.scalars, try all["state"]!.scalars).allSatisfy { abs($0 - $1) < 1e-5 })
    }

    /// TensorScatter writes each row's update from its write index, wrapping in circular mode.
    @Test func tensorScatterWritesFromEachRowsIndex() throws {
        let data = try model("TensorScatter", inputs: [("cache", .float32, [2, 4, 1]), ("update", .float32, [2, 2, 1]), ("at", .int64, [2])],
                             operands: ["cache", "update", "at"], outputs: ["y"], strings: ["mode": "circular"])
        let out = try ONNXModel(data).run(["cache": try HostTensor(shape: [2, 4, 1], scalars: Array(repeating: 0, count: 8)),
                                           "update": try HostTensor(shape: [2, 2, 1], scalars: [1, 2, 3, 4]),
                                           "at": try HostTensor(shape: [2], values: [1, 3] as [Int64])])
        #expect(try out["y"]?.scalars == [0, 1, 2, 0, 4, 0, 0, 3])
    }
}

/// TfIdfVectorizer counts the pool's n-grams (skips allowed), then weighs them by mode.
@Suite("TfIdfVectorizer")
struct TfIdfTests {
    @Test(arguments: [("TF", [Float(2), 1, 2]), ("IDF", [0.5, 2, 3]), ("TFIDF", [1, 2, 6])])
    func countsAndWeighs(mode: String, expected: [Float]) throws {
        var m = emptyONNXModel()
        m.opsetImport[0].version = 9
        var n = Onnx_NodeProto()
        (n.opType, n.name, n.input, n.output) = ("TfIdfVectorizer", "tfidf", ["x"], ["y"])
        func ints(_ name: String, _ v: [Int]) -> Onnx_AttributeProto { var a = Onnx_AttributeProto(); (a.name, a.type, a.ints) = (name, .ints, v.map(Int64.init)); return a }
        func int(_ name: String, _ v: Int) -> Onnx_AttributeProto { var a = Onnx_AttributeProto(); (a.name, a.type, a.i) = (name, .int, Int64(v)); return a }
        var modeAttribute = Onnx_AttributeProto(), weights = Onnx_AttributeProto()
        (modeAttribute.name, modeAttribute.type, modeAttribute.s) = ("mode", .string, Data(mode.utf8))
        (weights.name, weights.type, weights.floats) = ("weights", .floats, [0.5, 2, 3])
        // Unigrams 1 and 3, the bigram (1, 2); distances 1 and 2.
        n.attribute = [ints("pool_int64s", [1, 3, 1, 2]), ints("ngram_counts", [0, 2]), ints("ngram_indexes", [0, 1, 2]),
                       int("min_gram_length", 1), int("max_gram_length", 2), int("max_skip_count", 1), modeAttribute, weights]
        m.graph.node = [n]
        m.graph.input = [onnxValueInfo("x", .int64, [5])]
        m.graph.output = [onnxValueInfo("y", .float32, [3])]
        let out = try ONNXModel(try m.serializedData()).run(["x": try HostTensor(shape: [5], values: [1, 2, 1, 2, 3] as [Int64])])
        #expect(try out["y"]?.scalars == expected)
    }
}
