import Foundation
import Lathe
import LatheONNX
import Testing

/// Seeded values for the quantization tests (a linear congruential generator: the same values
/// on every machine).
/// The graph convolves on the integer GEMM: uint8 x, int8 weights, the padding at x's zero point.
/// The imported model's output y for input x, compiled for 2 threads.
func runOnTwoThreads(_ imported: ImportedModel, x: HostTensor) throws -> HostTensor {
    try Compiler.compile(imported.graph, outputs: imported.outputs, options: CompileOptions(threads: 2)).run(["x": x])["y"]!
}

func hasIntegerConvolution(_ graph: Graph, padValue: Int) -> Bool {
    graph.nodes.contains { node in
        guard case let .conv2d(a) = node.op else { return false }
        return a.padValue == padValue && Op.isIntegerContraction(node.operands.map { graph[$0].type.dtype })
    }
}

private struct Values {
    var state: UInt64
    mutating func next(_ range: ClosedRange<Float>) -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return range.lowerBound + Float(state >> 40) / Float(1 << 24) * (range.upperBound - range.lowerBound)
    }
}

@Suite("QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear against a scalar reference")
struct QuantizeTests {
    /// Per-axis int8 quantization of an odd-shaped tensor, with values on the ties between two
    /// steps (which round to even), past both ends of int8, and in between.
    @Test func perAxisQuantizeRoundsTiesToEvenAndSaturates() throws {
        let shape = [3, 5, 7]
        let scales: [Float] = [0.5, 0.1, 0.03, 2, 0.25], zeros: [Int8] = [0, -3, 10, 127, -128]
        var values = Values(state: 7), x: [Float] = []
        for i in 0..<shape.reduce(1, *) {
            let channel = i / 7 % 5
            switch i % 4 {
            case 0: x.append((Float(Int(values.next(-20...20))) + 0.5) * scales[channel])  // a tie
            case 1: x.append(values.next(-1000...1000))  // saturates
            default: x.append(values.next(-5...5))
            }
        }
        let model = try oneNodeModel("QuantizeLinear", inputs: [("x", .float32, shape)],
                                     initializers: [("scale", try HostTensor(shape: [5], scalars: scales)), ("zero", try HostTensor(shape: [5], values: zeros))],
                                     operands: ["x", "scale", "zero"], attributes: ["axis": 1], output: (.int8, shape))
        let got = try runOneNode(model, ["x": try HostTensor(shape: shape, scalars: x)]).values(as: Int8.self)
        let expected = x.indices.map { i -> Int8 in
            let channel = i / 7 % 5
            let steps = (x[i] / scales[channel]).rounded(.toNearestOrEven) + Float(zeros[channel])
            return Int8(min(max(steps, -128), 127))
        }
        #expect(got == expected)
    }

    /// Blocked dequantization: one scale and zero point per 4 columns of a [3, 10] uint8 tensor
    /// (the last block short), in f32.
    @Test func blockedDequantizeUsesEachBlocksScale() throws {
        let (rows, columns, block) = (3, 10, 4)
        let q = (0..<rows * columns).map { UInt8(($0 * 37) % 256) }
        let scales = (0..<rows * 3).map { Float($0 + 1) * 0.01 }, zeros = (0..<rows * 3).map { UInt8($0 * 20) }
        let model = try oneNodeModel("DequantizeLinear", inputs: [("q", .uint8, [rows, columns])],
                                     initializers: [("scale", try HostTensor(shape: [rows, 3], scalars: scales)), ("zero", try HostTensor(shape: [rows, 3], values: zeros))],
                                     operands: ["q", "scale", "zero"], attributes: ["axis": 1, "block_size": block], output: (.float32, [rows, columns]))
        let got = try runOneNode(model, ["q": try HostTensor(shape: [rows, columns], values: q)]).scalars
        let expected = q.indices.map { i -> Float in
            let b = i / columns * 3 + i % columns / block
            return (Float(q[i]) - Float(zeros[b])) * scales[b]
        }
        #expect(got == expected)
    }

    /// DynamicQuantizeLinear maps [min(x, 0), max(x, 0)] onto 0...255: all-positive values get
    /// zero point 0 and their largest 255.
    @Test func dynamicQuantizeCoversTheRange() throws {
        let x: [Float] = [0.5, 3, 1.25, 2, 0.1, 2.9, 0.75]
        var model = try oneNodeModel("DynamicQuantizeLinear", inputs: [("x", .float32, [7])], initializers: [], operands: ["x"], output: (.uint8, [7]))
        var proto = try Onnx_ModelProto(serializedBytes: model)
        proto.graph.node[0].output = ["y", "scale", "zero"]
        proto.graph.output += [onnxValueInfo("scale", .float32, []), onnxValueInfo("zero", .uint8, [])]
        model = try proto.serializedData()
        let imported = try ONNXImporter.load(model)
        let out = try Compiler.compile(imported.graph, outputs: imported.outputs).run(["x": try HostTensor(shape: [7], scalars: x)])
        let scale: Float = 3 / 255
        #expect(try out["scale"]?.scalars == [scale])
        #expect(try out["zero"]?.values(as: UInt8.self) == [0])
        #expect(try out["y"]?.values(as: UInt8.self) == x.map { UInt8(($0 / scale).rounded(.toNearestOrEven)) })
    }

    /// A dynamically quantized product: uint8 a with its zero point fed at run time, constant
    /// uint8 b with one zero point a column, on the integer GEMM (b less its zero points in int8,
    /// the run-time zero point taken off the sums), giving the exact int32 sums.
    @Test func matMulIntegerWithARunTimeZeroPoint() throws {
        let (batch, m, k, n) = (2, 5, 37, 19)
        var values = Values(state: 7)
        let a = (0..<batch * m * k).map { _ in UInt8(values.next(0...255)) }
        let b = (0..<k * n).map { _ in UInt8(values.next(60...190)) }
        let bZero = (0..<n).map { _ in UInt8(values.next(120...130)) }
        let aZero: UInt8 = 131
        let model = try oneNodeModel("MatMulInteger", inputs: [("a", .uint8, [batch, m, k]), ("a_zero", .uint8, [])],
                                     initializers: [("b", try HostTensor(shape: [k, n], values: b)), ("b_zero", try HostTensor(shape: [n], values: bZero))],
                                     operands: ["a", "b", "a_zero", "b_zero"], output: (.int32, [batch, m, n]))
        let imported = try ONNXImporter.load(model)
        #expect(imported.graph.nodes.contains { $0.op == .dense && Op.isIntegerContraction($0.operands.map { imported.graph[$0].type.dtype }) })
        let got = try Compiler.compile(imported.graph, outputs: imported.outputs, options: CompileOptions(threads: 2))
            .run(["a": try HostTensor(shape: [batch, m, k], values: a), "a_zero": try HostTensor(shape: [], values: [aZero])])["y"]!
        var expected: [Int32] = []
        for row in 0..<batch * m {
            for j in 0..<n {
                var sum = 0
                for p in 0..<k { sum += (Int(a[row * k + p]) - Int(aZero)) * (Int(b[p * n + j]) - Int(bZero[j])) }
                expected.append(Int32(sum))
            }
        }
        #expect(try got.values(as: Int32.self) == expected)
    }

    /// ConvInteger with constant weights: on the integer GEMM, the padding at x's zero point
    /// (where x - zero is 0), the weights less their zero point; the exact int32 sums.
    @Test func convIntegerPadsWithTheZeroPoint() throws {
        let (c, k, size) = (5, 6, 7)
        var values = Values(state: 5)
        let x = (0..<c * size * size).map { _ in UInt8(values.next(0...255)) }
        // Weights less their zero point within int8 (-125...124 + 3), as a quantizer writes them.
        let w = (0..<k * c * 9).map { _ in Int8(values.next(-125...124)) }
        let (xZero, wZero): (UInt8, Int8) = (200, -3)
        var data = try oneNodeModel("ConvInteger", inputs: [("x", .uint8, [1, c, size, size])],
                                    initializers: [("w", try HostTensor(shape: [k, c, 3, 3], values: w)), ("x_zero", try HostTensor(shape: [], values: [xZero])),
                                                   ("w_zero", try HostTensor(shape: [], values: [wZero]))],
                                    operands: ["x", "w", "x_zero", "w_zero"], output: (.int32, [1, k, size, size]))
        var proto = try Onnx_ModelProto(serializedBytes: data)
        var pads = Onnx_AttributeProto()
        (pads.name, pads.type, pads.ints) = ("pads", .ints, [1, 1, 1, 1])
        proto.graph.node[0].attribute = [pads]
        data = try proto.serializedData()
        let imported = try ONNXImporter.load(data)
        #expect(hasIntegerConvolution(imported.graph, padValue: 200))
        let got = try runOnTwoThreads(imported, x: try HostTensor(shape: [1, c, size, size], values: x)).values(as: Int32.self)
        var expected: [Int32] = []
        for o in 0..<k {
            for i in 0..<size {
                for j in 0..<size {
                    var sum = 0
                    for ch in 0..<c {
                        for u in 0..<3 {
                            for v in 0..<3 where (0..<size).contains(i + u - 1) && (0..<size).contains(j + v - 1) {
                                let input = Int(x[(ch * size + i + u - 1) * size + j + v - 1]) - Int(xZero)
                                sum += input * (Int(w[((o * c + ch) * 3 + u) * 3 + v]) - Int(wZero))
                            }
                        }
                    }
                    expected.append(Int32(sum))
                }
            }
        }
        #expect(got == expected)
    }

    @Test func aScaleOfTheWrongLengthIsAMalformedModel() throws {
        let model = try oneNodeModel("DequantizeLinear", inputs: [("q", .int8, [2, 3])],
                                     initializers: [("scale", try HostTensor(shape: [2], scalars: [1, 2]))],
                                     operands: ["q", "scale"], attributes: ["axis": 1], output: (.float32, [2, 3]))
        #expect {
            _ = try ONNXImporter.load(model)
        } throws: { error in
            guard case let LatheError.malformedModel(message) = error else { return false }
            return message.contains("DequantizeLinear node 'n'") && message.contains("2 values for axis 1 of size 3")
        }
    }
}

/// DequantizeLinear -> Conv -> QuantizeLinear, as ONNX Runtime's quantizer writes it, computes
/// as ONNX Runtime does: integer sums, then round(acc * x_scale w_scale / y_scale) + y_zero,
/// ties to even. With scales 0.5, 0.25 and 1 the multiplier is 1/8, so every sum of 4 mod 8
/// is a tie; computing the float product and quantizing it rounds those alike, but a
/// transformed (Winograd) or reassociated sum would not. The unit runs on the integer GEMM.
@Suite("QDQ units against an integer reference")
struct QDQUnitTests {
    private func tensor<T: TensorElement>(_ name: String, _ shape: [Int], _ v: [T]) throws -> Onnx_TensorProto {
        let t = try HostTensor(shape: shape, values: v)
        var proto = Onnx_TensorProto()
        (proto.name, proto.dims, proto.dataType, proto.rawData) = (name, shape.map(Int64.init), Int32(t.dtype.onnxCode), Data(t.rawBytes))
        return proto
    }

    private func node(_ op: String, _ inputs: [String], _ output: String) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        (n.opType, n.name, n.input, n.output) = (op, output, inputs, [output])
        return n
    }

    /// DequantizeLinear -> MaxPool -> QuantizeLinear pools the uint8 values: with the same scale
    /// and zero point after as before, no QuantizeLinear is left (its division by the scale), and
    /// with another, the pooled values are quantized again; both give the integer reference's
    /// window maxima.
    @Test(arguments: [(Float(0.5), UInt8(3)), (Float(0.25), UInt8(9))])
    func aQuantizedMaxPoolPoolsTheIntegers(outScale: Float, outZero: UInt8) throws {
        let (c, size, out) = (5, 9, 5)
        var values = Values(state: 5)
        let x = (0..<c * size * size).map { _ in UInt8(values.next(0...255)) }
        var model = emptyONNXModel()
        model.graph.initializer = [try tensor("xs", [], [Float(0.5)]), try tensor("xz", [], [UInt8(3)]), try tensor("ys", [], [outScale]),
                                   try tensor("yz", [], [outZero])]
        var pool = node("MaxPool", ["xf"], "yf")
        var kernel = Onnx_AttributeProto(), strides = Onnx_AttributeProto(), pads = Onnx_AttributeProto()
        (kernel.name, kernel.type, kernel.ints) = ("kernel_shape", .ints, [3, 3])
        (strides.name, strides.type, strides.ints) = ("strides", .ints, [2, 2])
        (pads.name, pads.type, pads.ints) = ("pads", .ints, [1, 1, 1, 1])
        pool.attribute = [kernel, strides, pads]
        model.graph.node = [node("DequantizeLinear", ["x", "xs", "xz"], "xf"), pool, node("QuantizeLinear", ["yf", "ys", "yz"], "y")]
        model.graph.input = [onnxValueInfo("x", .uint8, [1, c, size, size])]
        model.graph.output = [onnxValueInfo("y", .uint8, [1, c, out, out])]
        let imported = try ONNXImporter.load(try model.serializedData())
        let divides = imported.graph.nodes.contains { if case .binary(.div) = $0.op { return true } else { return false } }
        #expect(divides == (outScale != 0.5), "a QuantizeLinear is left only where the scale changes")
        let got = try runOnTwoThreads(imported, x: try HostTensor(shape: [1, c, size, size], values: x)).values(as: UInt8.self)
        var expected: [UInt8] = []
        for plane in 0..<c {
            for i in 0..<out {
                for j in 0..<out {
                    var best = 0
                    for u in 0..<3 {
                        for v in 0..<3 {
                            let (y, z) = (2 * i + u - 1, 2 * j + v - 1)
                            if (0..<size).contains(y), (0..<size).contains(z) { best = max(best, Int(x[(plane * size + y) * size + z])) }
                        }
                    }
                    let q = ((Float(best) - 3) * 0.5 / outScale).rounded(.toNearestOrEven) + Float(outZero)
                    expected.append(UInt8(min(max(q, 0), 255)))
                }
            }
        }
        #expect(got == expected)
    }

    @Test func aQuantizedConvolutionRoundsAsOnnxRuntime() throws {
        let (c, k, size) = (16, 16, 6)
        var values = Values(state: 11)
        let x = (0..<c * size * size).map { _ in UInt8(values.next(0...40)) }
        let w = (0..<k * c * 9).map { _ in Int8(values.next(-20...20)) }
        let bias = (0..<k).map { _ in Int32(values.next(-300...300)) }
        var model = emptyONNXModel()
        model.graph.initializer = [try tensor("xs", [], [Float(0.5)]), try tensor("xz", [], [UInt8(3)]), try tensor("w", [k, c, 3, 3], w),
                                   try tensor("ws", [], [Float(0.25)]), try tensor("wz", [], [Int8(0)]), try tensor("b", [k], bias),
                                   try tensor("bs", [], [Float(0.125)]), try tensor("bz", [], [Int32(0)]), try tensor("ys", [], [Float(1)]),
                                   try tensor("yz", [], [UInt8(10)])]
        var conv = node("Conv", ["xf", "wf", "bf"], "yf")
        var pads = Onnx_AttributeProto()
        (pads.name, pads.type, pads.ints) = ("pads", .ints, [1, 1, 1, 1])
        conv.attribute = [pads]
        model.graph.node = [node("DequantizeLinear", ["x", "xs", "xz"], "xf"), node("DequantizeLinear", ["w", "ws", "wz"], "wf"),
                            node("DequantizeLinear", ["b", "bs", "bz"], "bf"), conv, node("QuantizeLinear", ["yf", "ys", "yz"], "y")]
        model.graph.input = [onnxValueInfo("x", .uint8, [1, c, size, size])]
        model.graph.output = [onnxValueInfo("y", .uint8, [1, k, size, size])]
        let data = try model.serializedData()
        let imported = try ONNXImporter.load(data)
        #expect(hasIntegerConvolution(imported.graph, padValue: 3))
        let got = try runOnTwoThreads(imported, x: try HostTensor(shape: [1, c, size, size], values: x)).values(as: UInt8.self)
        var expected: [UInt8] = [], ties = 0
        for o in 0..<k {
            for i in 0..<size {
                for j in 0..<size {
                    var acc = Int(bias[o])
                    for ch in 0..<c {
                        for u in 0..<3 {
                            for v in 0..<3 {
                                let (y, z) = (i + u - 1, j + v - 1)
                                guard (0..<size).contains(y), (0..<size).contains(z) else { continue }
                                acc += (Int(x[(ch * size + y) * size + z]) - 3) * Int(w[((o * c + ch) * 3 + u) * 3 + v])
                            }
                        }
                    }
                    if ((acc % 8) + 8) % 8 == 4 { ties += 1 }
                    let q = (Float(acc) * 0.125).rounded(.toNearestOrEven) + 10
                    expected.append(UInt8(min(max(q, 0), 255)))
                }
            }
        }
        #expect(ties > 20, "the case has ties to round")
        #expect(got == expected)
    }
}
