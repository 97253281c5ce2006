import Foundation
import Lathe
import LatheONNX
import Testing

/// A one-node ONNX model: `op` over the graph inputs and initializers named in `inputs`, in
/// that order, with integer attributes.
func oneNodeModel(_ op: String, inputs: [(name: String, type: DType, shape: [Int])], initializers: [(String, HostTensor)],
                          operands: [String], attributes: [String: Int] = [:], output: (type: DType, shape: [Int])) throws -> Data {
    var model = emptyONNXModel()
    var node = Onnx_NodeProto()
    (node.opType, node.name, node.input, node.output) = (op, "n", operands, ["y"])
    node.attribute = attributes.sorted { $0.key < $1.key }.map { key, value in
        var a = Onnx_AttributeProto()
        (a.name, a.type, a.i) = (key, .int, Int64(value))
        return a
    }
    model.graph.node = [node]
    model.graph.input = inputs.map { onnxValueInfo($0.name, $0.type, $0.shape) }
    model.graph.output = [onnxValueInfo("y", output.type, output.shape)]
    model.graph.initializer = initializers.map { name, t in
        var proto = Onnx_TensorProto()
        (proto.name, proto.dims, proto.dataType, proto.rawData) = (name, t.shape.map(Int64.init), Int32(t.dtype.onnxCode), Data(t.rawBytes))
        return proto
    }
    return try model.serializedData()
}

func runOneNode(_ data: Data, _ feeds: [String: HostTensor]) throws -> HostTensor {
    let imported = try ONNXImporter.load(data)
    return try Compiler.compile(imported.graph, outputs: imported.outputs).run(feeds)["y"]!
}

@Suite("ONNX ops written with the IR's own: hand-computed values")
struct ComposedOpTests {
    @Test func cumSumOfTokenMask() throws {
        // RoBERTa's position ids: the running count of real tokens.
        let model = try oneNodeModel("CumSum", inputs: [("mask", .int64, [2, 5])], initializers: [("axis", try HostTensor(shape: [], values: [Int64(1)]))],
                                     operands: ["mask", "axis"], output: (.int64, [2, 5]))
        let mask = try HostTensor(shape: [2, 5], values: [1, 1, 1, 0, 0, 1, 1, 1, 1, 1] as [Int64])
        #expect(try runOneNode(model, ["mask": mask]).values(as: Int64.self) == [1, 2, 3, 3, 3, 1, 2, 3, 4, 5])
        let reversed = try oneNodeModel("CumSum", inputs: [("x", .float32, [4])], initializers: [("axis", try HostTensor(shape: [1], values: [Int64(0)]))],
                                        operands: ["x", "axis"], attributes: ["exclusive": 1, "reverse": 1], output: (.float32, [4]))
        #expect(try runOneNode(reversed, ["x": try HostTensor(shape: [4], scalars: [1, 2, 3, 4])]).scalars == [9, 7, 4, 0])
    }

    /// RotaryEmbedding turns (x1, x2) pairs by the angle of each token's position: a quarter
    /// turn takes (1, 0) to (0, 1), none leaves it; features past rotary_embedding_dim stay.
    @Test func rotaryEmbeddingTurnsByThePositionsAngle() throws {
        // X [B=1, N=1, S=2, H=4], rotating the first 2 features (one pair: x1 = x[0], x2 = x[1]).
        let caches = [("cos", try HostTensor(shape: [3, 1], scalars: [1, 0, -1])), ("sin", try HostTensor(shape: [3, 1], scalars: [0, 1, 0]))]
        let model = try oneNodeModel("RotaryEmbedding", inputs: [("x", .float32, [1, 1, 2, 4]), ("positions", .int64, [1, 2])], initializers: caches,
                                     operands: ["x", "cos", "sin", "positions"], attributes: ["rotary_embedding_dim": 2], output: (.float32, [1, 1, 2, 4]))
        let x = try HostTensor(shape: [1, 1, 2, 4], scalars: [1, 0, 7, 8, 2, 3, 9, 10])
        let out = try runOneNode(model, ["x": x, "positions": try HostTensor(shape: [1, 2], values: [1, 2] as [Int64])])
        #expect(out.scalars == [0, 1, 7, 8, -2, -3, 9, 10])
        let odd = try oneNodeModel("RotaryEmbedding", inputs: [("x", .float32, [1, 1, 2, 4]), ("positions", .int64, [1, 2])], initializers: caches,
                                   operands: ["x", "cos", "sin", "positions"], attributes: ["rotary_embedding_dim": 3], output: (.float32, [1, 1, 2, 4]))
        #expect(throws: LatheError.self) { _ = try ONNXImporter.load(odd) }
    }

    /// GridSample with the identity grid (align_corners) gives X back in every mode; shifted
    /// one pixel left with zeros padding, the last column reads outside the image: 0.
    @Test(arguments: ["nearest", "linear", "cubic"])
    func gridSampleReadsWhereTheGridPoints(mode: String) throws {
        let (h, w) = (3, 5)
        var grid: [Float] = []
        for i in 0..<h { for j in 0..<w { grid += [Float(j) / Float(w - 1) * 2 - 1, Float(i) / Float(h - 1) * 2 - 1] } }
        let x = try HostTensor(shape: [1, 1, h, w], scalars: (0..<h * w).map { Float($0 * $0 % 7) })
        func model(_ shift: Float) throws -> Data {
            var proto = try Onnx_ModelProto(serializedBytes: try oneNodeModel("GridSample", inputs: [("x", .float32, [1, 1, h, w])],
                initializers: [("grid", try HostTensor(shape: [1, h, w, 2], scalars: grid.enumerated().map { $0.offset % 2 == 0 ? $0.element + shift : $0.element }))],
                operands: ["x", "grid"], attributes: ["align_corners": 1], output: (.float32, [1, 1, h, w])))
            var a = Onnx_AttributeProto()
            (a.name, a.type, a.s) = ("mode", .string, Data(mode.utf8))
            proto.graph.node[0].attribute.append(a)
            proto.opsetImport[0].version = 20
            return try proto.serializedData()
        }
        let same = try runOneNode(try model(0), ["x": x]).scalars
        #expect(zip(same, x.scalars).allSatisfy { abs($0 - $1) < 1e-5 }, "\(same)")
        // One pixel is 2 / (w - 1) in grid units.
        let shifted = try runOneNode(try model(2 / Float(w - 1)), ["x": x]).scalars
        let expected = (0..<h * w).map { $0 % w == w - 1 ? 0 : x.scalars[$0 + 1] }
        #expect(zip(shifted, expected).allSatisfy { abs($0 - $1) < 1e-5 }, "\(shifted)")
    }

    /// DFT of an odd-length real signal against the sum that defines it, and rfft then irfft
    /// (onesided both ways) gives an even-length signal back.
    @Test func dftMatchesItsDefinitionAndInverts() throws {
        func model(_ n: Int, parts: Int, inverse: Bool, onesided: Bool, length: Int? = nil) throws -> Data {
            var proto = try Onnx_ModelProto(serializedBytes: try oneNodeModel("DFT", inputs: [("x", .float32, [1, n, parts])], initializers: [],
                operands: ["x"], attributes: ["axis": 1, "inverse": inverse ? 1 : 0, "onesided": onesided ? 1 : 0], output: (.float32, [])))
            proto.opsetImport[0].version = 19
            if let length {
                var t = Onnx_TensorProto()
                (t.name, t.dataType, t.int64Data) = ("length", 7, [Int64(length)])
                proto.graph.initializer = [t]
                proto.graph.node[0].input = ["x", "length"]
            }
            return try proto.serializedData()
        }
        let signal: [Float] = [0.5, -1, 2, 0.25, 3, -0.75, 1.5]
        let spectrum = try runOneNode(try model(7, parts: 1, inverse: false, onesided: false), ["x": try HostTensor(shape: [1, 7, 1], scalars: signal)]).scalars
        for k in 0..<7 {
            let re = signal.enumerated().reduce(0.0) { $0 + Double($1.element) * cos(2 * .pi * Double(k * $1.offset) / 7) }
            let im = signal.enumerated().reduce(0.0) { $0 - Double($1.element) * sin(2 * .pi * Double(k * $1.offset) / 7) }
            #expect(abs(Double(spectrum[2 * k]) - re) < 1e-5 && abs(Double(spectrum[2 * k + 1]) - im) < 1e-5, "bin \(k)")
        }
        let even = Array(signal.prefix(6))
        let half = try runOneNode(try model(6, parts: 1, inverse: false, onesided: true), ["x": try HostTensor(shape: [1, 6, 1], scalars: even)])
        #expect(half.shape == [1, 4, 2])
        let back = try runOneNode(try model(4, parts: 2, inverse: true, onesided: true, length: 6), ["x": half]).scalars
        #expect(zip(back, even).allSatisfy { abs($0 - $1) < 1e-5 }, "\(back)")
    }

    /// Atan, Asin and Acos against Foundation's, across their domains and at their ends.
    @Test(arguments: ["Atan", "Asin", "Acos"])
    func inverseTrigonometry(op: String) throws {
        let xs: [Float] = op == "Atan" ? (-400...400).map { Float($0) * 0.05 } + [-1e30, 1e30, 0.41421, 2.41422, -2.41421]
            : (-100...100).map { Float($0) * 0.01 }
        let model = try oneNodeModel(op, inputs: [("x", .float32, [xs.count])], initializers: [], operands: ["x"], output: (.float32, [xs.count]))
        let got = try runOneNode(model, ["x": try HostTensor(shape: [xs.count], scalars: xs)]).scalars
        for (x, y) in zip(xs, got) {
            let want = op == "Atan" ? Foundation.atan(Double(x)) : op == "Asin" ? Foundation.asin(Double(x)) : Foundation.acos(Double(x))
            #expect(abs(Double(y) - want) <= 4e-7 * max(1, abs(want)), "\(op)(\(x)) = \(y), not \(want)")
        }
    }

    /// MaxPool's Indices over two images of two channels: the flat position of each window's
    /// largest element in the whole input, row-major or (storage_order 1) column-major within
    /// each plane.
    @Test(arguments: [0, 1])
    func maxPoolIndicesAreFlatPositions(storageOrder: Int) throws {
        let (h, w) = (4, 3)
        let values = (0..<2 * 2 * h * w).map { Float(($0 * 7) % 11) }
        var proto = try Onnx_ModelProto(serializedBytes: try oneNodeModel("MaxPool", inputs: [("x", .float32, [2, 2, h, w])], initializers: [],
            operands: ["x"], attributes: ["storage_order": storageOrder], output: (.float32, [])))
        var kernel = Onnx_AttributeProto(), strides = Onnx_AttributeProto()
        (kernel.name, kernel.type, kernel.ints) = ("kernel_shape", .ints, [2, 2])
        (strides.name, strides.type, strides.ints) = ("strides", .ints, [2, 1])
        proto.graph.node[0].attribute += [kernel, strides]
        proto.graph.node[0].output = ["y", "z"]
        proto.graph.output.append(onnxValueInfo("z", .int64, []))
        proto.graph.output[1].type.tensorType.clearShape()
        let imported = try ONNXImporter.load(try proto.serializedData())
        let out = try Compiler.compile(imported.graph, outputs: imported.outputs).run(["x": try HostTensor(shape: [2, 2, h, w], scalars: values)])
        var expected: [Int64] = []
        for plane in 0..<4 {
            for oy in 0..<2 {
                for ox in 0..<2 {
                    var best = (value: -Float.infinity, y: 0, x: 0)
                    for dy in 0..<2 { for dx in 0..<2 {
                        let (y, x) = (oy * 2 + dy, ox + dx)
                        let v = values[(plane * h + y) * w + x]
                        if v > best.value { best = (v, y, x) }
                    } }
                    expected.append(Int64(plane * h * w + (storageOrder == 0 ? best.y * w + best.x : best.x * h + best.y)))
                }
            }
        }
        #expect(try out["z"]?.values(as: Int64.self) == expected)
    }

    /// Det of a batch of 3 x 3 matrices by cofactors; a 4 x 4 one is refused by name.
    @Test func determinantsByCofactors() throws {
        let m: [Float] = [2, -1, 0, 1, 3, 2, 0, 5, -4, 1, 0, 0, 0, 1, 0, 0, 0, 1]
        let model = try oneNodeModel("Det", inputs: [("x", .float32, [2, 3, 3])], initializers: [], operands: ["x"], output: (.float32, [2]))
        // 2 (3 * -4 - 2 * 5) + 1 (1 * -4 - 0) = -44 - 4; the identity's 1.
        #expect(try runOneNode(model, ["x": try HostTensor(shape: [2, 3, 3], scalars: m)]).scalars == [-48, 1])
        let big = try oneNodeModel("Det", inputs: [("x", .float32, [4, 4])], initializers: [], operands: ["x"], output: (.float32, []))
        #expect(throws: LatheError.self) { _ = try ONNXImporter.load(big) }
    }

    /// RoiAlign of one region covering a 2 x 2 image exactly (output_half_pixel, one sample a
    /// bin) averages bilinearly; adaptive sampling of regions known only at run time is refused.
    @Test func roiAlignSamplesItsRegions() throws {
        let model = try oneNodeModel("RoiAlign", inputs: [("x", .float32, [1, 1, 2, 2]), ("rois", .float32, [1, 4]), ("b", .int64, [1])], initializers: [],
                                     operands: ["x", "rois", "b"], attributes: ["sampling_ratio": 1, "output_height": 1, "output_width": 1], output: (.float32, [1, 1, 1, 1]))
        var proto = try Onnx_ModelProto(serializedBytes: model)
        var mode = Onnx_AttributeProto()
        (mode.name, mode.type, mode.s) = ("coordinate_transformation_mode", .string, Data("output_half_pixel".utf8))
        proto.graph.node[0].attribute.append(mode)
        proto.opsetImport[0].version = 16
        let feeds = ["x": try HostTensor(shape: [1, 1, 2, 2], scalars: [1, 2, 3, 4]), "rois": try HostTensor(shape: [1, 4], scalars: [0, 0, 1, 1]),
                     "b": try HostTensor(shape: [1], values: [Int64(0)])]
        // The one sample sits at (0.5, 0.5): the mean of the four pixels.
        #expect(try runOneNode(try proto.serializedData(), feeds).scalars == [2.5])
        proto.graph.node[0].attribute.removeAll { $0.name == "sampling_ratio" }
        #expect(throws: LatheError.self) { _ = try ONNXImporter.load(try proto.serializedData()) }
    }

    @Test func oneHotWrapsNegativeIndicesAndLeavesOthersOff() throws {
        let model = try oneNodeModel("OneHot", inputs: [("i", .int64, [4])],
                                     initializers: [("depth", try HostTensor(shape: [], values: [Int64(3)])), ("values", try HostTensor(shape: [2], scalars: [-1, 5]))],
                                     operands: ["i", "depth", "values"], output: (.float32, [4, 3]))
        let out = try runOneNode(model, ["i": try HostTensor(shape: [4], values: [0, 2, -1, 7] as [Int64])])
        #expect(out.scalars == [5, -1, -1, -1, -1, 5, -1, -1, 5, -1, -1, -1])
    }

    @Test func triluKeepsATriangle() throws {
        let model = try oneNodeModel("Trilu", inputs: [("x", .int32, [3, 4])], initializers: [("k", try HostTensor(shape: [], values: [Int64(1)]))],
                                     operands: ["x", "k"], attributes: ["upper": 0], output: (.int32, [3, 4]))
        let x = try HostTensor(shape: [3, 4], values: (1...12).map(Int32.init))
        #expect(try runOneNode(model, ["x": x]).values(as: Int32.self) == [1, 2, 0, 0, 5, 6, 7, 0, 9, 10, 11, 12])
    }

    @Test func topKGivesTheLargestValuesInOrder() throws {
        let model = try oneNodeModel("TopK", inputs: [("x", .float16, [2, 5])], initializers: [("k", try HostTensor(shape: [1], values: [Int64(2)]))],
                                     operands: ["x", "k"], output: (.float16, [2, 2]))
        let x = try HostTensor(shape: [2, 5], values: [1, 9, 3, 9, 0, -1, -5, 4, 2, 8].map { Float16($0) })
        #expect(try runOneNode(model, ["x": x]).values(as: Float16.self) == [9, 9, 8, 4])
    }

    /// numpy.pad's modes edge, reflect and wrap on [[1, 2, 3], [4, 5, 6]], pads 1 before and 2
    /// after the columns.
    @Test(arguments: [("edge", [1, 1, 2, 3, 3, 3, 4, 4, 5, 6, 6, 6] as [Int32]), ("reflect", [2, 1, 2, 3, 2, 1, 5, 4, 5, 6, 5, 4]),
                      ("wrap", [3, 1, 2, 3, 1, 2, 6, 4, 5, 6, 4, 5])])
    func padModes(mode: String, expected: [Int32]) throws {
        var model = try oneNodeModel("Pad", inputs: [("x", .int32, [2, 3])], initializers: [("pads", try HostTensor(shape: [4], values: [0, 1, 0, 2] as [Int64]))],
                                     operands: ["x", "pads"], output: (.int32, [2, 6]))
        var proto = try Onnx_ModelProto(serializedBytes: model)
        var attribute = Onnx_AttributeProto()
        (attribute.name, attribute.type, attribute.s) = ("mode", .string, Data(mode.utf8))
        proto.graph.node[0].attribute.append(attribute)
        model = try proto.serializedData()
        let x = try HostTensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6] as [Int32])
        #expect(try runOneNode(model, ["x": x]).values(as: Int32.self) == expected)
    }

    @Test func hardmaxMarksTheFirstLargest() throws {
        let model = try oneNodeModel("Hardmax", inputs: [("x", .float32, [2, 3])], initializers: [], operands: ["x"], output: (.float32, [2, 3]))
        #expect(try runOneNode(model, ["x": try HostTensor(shape: [2, 3], scalars: [1, 3, 3, -1, -2, -3])]).scalars == [0, 1, 0, 1, 0, 0])
    }
}
