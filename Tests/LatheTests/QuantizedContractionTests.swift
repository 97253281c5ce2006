import Lathe
import LatheRuntime
import Testing

/// Quantized contractions on the integer GEMM: conv2d, dense and matmul of uint8 x and int8
/// weights give the interpreter's int32 sums exactly, with constant weights (packed at compile
/// time) and weights fed at run time, on one and two threads, and with a requantization to
/// uint8 in the epilogue.
@Suite struct QuantizedContractionTests {
    /// Random uint8 activations and int8 weights over their whole ranges.
    static func activations(_ shape: [Int], seed: UInt64) -> HostTensor { randomTensor(.uint8, shape: shape, seed: seed, range: 0...255) }
    static func weights(_ shape: [Int], seed: UInt64) -> HostTensor { randomTensor(.int8, shape: shape, seed: seed, range: -128...127) }
    static func bias(_ count: Int, seed: UInt64) -> HostTensor { randomTensor(.int32, shape: [count], seed: seed, range: -50_000...50_000) }

    struct ConvCase: Sendable, CustomStringConvertible {
        var input: [Int], outChannels: Int, kernel: [Int]
        var strides = [1, 1], pads = [0, 0, 0, 0], dilations = [1, 1], groups = 1, padValue = 0
        /// Unfolded and packed, not read as shifted copies (when the weights are constant).
        var unfolds = false
        /// Computed with its output pixels as rows (a small image, on a host with AVX-512).
        var pixelRows = false
        var description: String {
            "conv \(input) -> \(outChannels), kernel \(kernel), strides \(strides), pads \(pads), dilations \(dilations), groups \(groups), pad value \(padValue)"
        }
    }

    static let convolutions: [ConvCase] = [
        // 3 channels take 49 words of 4 channels for 37 of the unfold's rows.
        ConvCase(input: [1, 3, 17, 19], outChannels: 13, kernel: [7, 7], strides: [2, 2], pads: [3, 3, 3, 3], padValue: 37, unfolds: true),
        ConvCase(input: [2, 16, 9, 11], outChannels: 29, kernel: [3, 3], pads: [1, 1, 1, 1], padValue: 128),
        ConvCase(input: [1, 5, 12, 7], outChannels: 7, kernel: [1, 1]),
        ConvCase(input: [1, 24, 8, 8], outChannels: 40, kernel: [1, 1], strides: [2, 2]),
        ConvCase(input: [1, 12, 10, 10], outChannels: 12, kernel: [3, 3], pads: [0, 1, 2, 1], groups: 3, padValue: 255),
        ConvCase(input: [1, 64, 6, 6], outChannels: 70, kernel: [3, 3], pads: [1, 1, 1, 1], padValue: 3),
        // Stride 1, read as shifted copies: rows wider than a copy's 16 columns and than 64, an
        // unpadded (valid) one, channels not a multiple of 4, a 5x5 kernel with asymmetric
        // padding, dilation, and tiles of a few rows.
        ConvCase(input: [1, 8, 5, 70], outChannels: 9, kernel: [3, 3], pads: [1, 1, 1, 1], padValue: 200),
        ConvCase(input: [2, 7, 13, 21], outChannels: 17, kernel: [3, 3], padValue: 5),
        ConvCase(input: [1, 8, 11, 9], outChannels: 16, kernel: [5, 5], pads: [2, 1, 0, 3], padValue: 77),
        ConvCase(input: [1, 12, 12, 17], outChannels: 8, kernel: [3, 3], pads: [2, 2, 2, 2], dilations: [2, 2], padValue: 1),
        ConvCase(input: [1, 256, 12, 64], outChannels: 24, kernel: [3, 3], pads: [1, 1, 1, 1], padValue: 90),
        // Strided: a copy a tap, every stride-th byte kept.
        ConvCase(input: [1, 16, 15, 150], outChannels: 11, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], padValue: 60),
        ConvCase(input: [2, 7, 14, 13], outChannels: 9, kernel: [3, 3], strides: [2, 3], pads: [0, 2, 1, 0], padValue: 250),
        ConvCase(input: [1, 64, 14, 14], outChannels: 128, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], padValue: 8, pixelRows: true),
        // Small images: pixels as rows, in blocks of 7 (the last of 9 pixels cut), output channels
        // in panels of 32 (the last of 90 cut).
        ConvCase(input: [1, 64, 7, 7], outChannels: 96, kernel: [3, 3], pads: [1, 1, 1, 1], padValue: 17, pixelRows: true),
        ConvCase(input: [1, 32, 13, 13], outChannels: 90, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], padValue: 200, pixelRows: true),
        ConvCase(input: [2, 24, 3, 3], outChannels: 70, kernel: [3, 3], pads: [1, 1, 1, 1], padValue: 3, pixelRows: true),
    ]

    /// Pixels as rows need AVX-512's registers.
    static let hostTakesPixelRows = HostTarget.detect().vectorWidth >= 16

    @Test(arguments: convolutions, [1, 2])
    func convolutionSumsAreExact(_ c: ConvCase, threads: Int) throws {
        for constantWeights in [true, false] {
            let g = Graph(seed: 3)
            let x = try g.input("x", dtype: .uint8, shape: c.input)
            let wShape = [c.outChannels, c.input[1] / c.groups] + c.kernel
            let w = constantWeights ? g.constant(Self.weights(wShape, seed: 5)) : try g.input("w", dtype: .int8, shape: wShape)
            let b = g.constant(Self.bias(c.outChannels, seed: 7))
            let a = Conv2DAttributes(strides: c.strides, pads: c.pads, dilations: c.dilations, groups: c.groups, padValue: c.padValue)
            let y = try x.apply(.conv2d(a), [w, b], SourceLocation(fileID: #fileID, line: #line))
            #expect(y.type.dtype == .int32)
            var feeds = ["x": Self.activations(c.input, seed: 11)]
            if !constantWeights { feeds["w"] = Self.weights(wShape, seed: 5) }
            let readsInPlace = c.kernel == [1, 1] && c.strides == [1, 1] && c.pads.allSatisfy { $0 == 0 }
            let shifted = constantWeights && !readsInPlace && !c.unfolds
            try expectExact(g, y, feeds: feeds, threads: threads, shiftedCopies: shifted, pixelRows: shifted && c.pixelRows && Self.hostTakesPixelRows,
                            "\(c), constant weights \(constantWeights)")
        }
    }

    /// m x k by k x n, x of any rank (dense: 2-D), weights 2-D or batched.
    struct ProductCase: Sendable, CustomStringConvertible {
        var x: [Int], w: [Int], dense = false
        var description: String { "\(dense ? "dense" : "matmul") \(x) x \(w)" }
    }

    static let products: [ProductCase] = [
        ProductCase(x: [1, 37], w: [37, 45], dense: true),
        ProductCase(x: [29, 64], w: [64, 70], dense: true),
        ProductCase(x: [130, 33], w: [33, 1030], dense: true),
        ProductCase(x: [2, 7, 19], w: [19, 23]),
        ProductCase(x: [3, 13, 8], w: [3, 8, 35]),
    ]

    @Test(arguments: products, [1, 2])
    func productSumsAreExact(_ c: ProductCase, threads: Int) throws {
        for constantWeights in [true, false] {
            let g = Graph(seed: 3)
            let x = try g.input("x", dtype: .uint8, shape: c.x)
            let w = constantWeights ? g.constant(Self.weights(c.w, seed: 5)) : try g.input("w", dtype: .int8, shape: c.w)
            let y = c.dense
                ? try x.apply(.dense, [w, g.constant(Self.bias(c.w[1], seed: 7))], SourceLocation(fileID: #fileID, line: #line))
                : try x.matmul(w)
            var feeds = ["x": Self.activations(c.x, seed: 11)]
            if !constantWeights { feeds["w"] = Self.weights(c.w, seed: 5) }
            try expectExact(g, y, feeds: feeds, threads: threads, "\(c), constant weights \(constantWeights)")
        }
    }

    /// A quantized model's unit: the int32 sums requantized per output channel to uint8
    /// (clip(round(acc * m) + z)), plus a uint8 residual, in the convolution's epilogue.
    /// On a 10 x 10 image and on a 7 x 7 one (pixels as rows, stored transposed, with AVX-512).
    @Test(arguments: [1, 2], [10, 7])
    func requantizationFusesIntoTheConvolution(threads: Int, size: Int) throws {
        let g = Graph(seed: 3)
        let x = try g.input("x", dtype: .uint8, shape: [1, 16, size, size])
        let residual = try g.input("r", dtype: .uint8, shape: [1, 32, size, size])
        let w = g.constant(Self.weights([32, 16, 3, 3], seed: 5))
        let sums = try x.apply(.conv2d(Conv2DAttributes(pads: [1, 1, 1, 1], padValue: 9)), [w, g.constant(Self.bias(32, seed: 7))],
                               SourceLocation(fileID: #fileID, line: #line))
        let scales = try HostTensor(shape: [1, 32, 1, 1], scalars: (0..<32).map { 0.0005 + Float($0) * 0.00003 })
        let clipped = UnaryFn.clip(min: 0, max: 255).formula.substituting([.unary(.round, .binary(.mul, .cast(.float32, .arg(0)), .arg(1))) + .arg(2)])
        let q = try sums.apply(.fusedElementwise(.cast(.uint8, clipped)), [g.constant(scales), g.scalar(100)], SourceLocation(fileID: #fileID, line: #line))
        // A residual Add of two quantized values, requantized again.
        let added: ScalarExpr = .cast(.uint8, UnaryFn.clip(min: 0, max: 255).formula.substituting([
            .unary(.round, .binary(.mul, .binary(.sub, .cast(.float32, .arg(0)), .const(100)), .const(0.9))
                + .binary(.mul, .binary(.sub, .cast(.float32, .arg(1)), .const(7)), .const(0.4))) + .const(120)]))
        let y = try q.apply(.fusedElementwise(added), [residual], SourceLocation(fileID: #fileID, line: #line))
        let model = try g.compile(outputs: ["y": y], options: CompileOptions(threads: threads))
        #expect(model.program.kernels.filter { !$0.isNoOp }.count == 1, "\(model.program.planText)")
        #expect(model.program.kernels.contains { $0.algorithm?.contains("pixel rows") == true } == (size == 7 && Self.hostTakesPixelRows))
        let feeds = ["x": Self.activations([1, 16, size, size], seed: 11), "r": Self.activations([1, 32, size, size], seed: 13)]
        let got = try model.run(feeds)["y"]!
        let expected = try g.interpret(outputs: [("y", y)], feeds: feeds)["y"]!
        #expect(got.dtype == .uint8 && got.rawBytes == expected.rawBytes)
        #expect(Set(expected.rawBytes).count > 100, "the test's values span the uint8 range")
    }

    @Test func mixedOperandTypesAreRefused() throws {
        let g = Graph(seed: 3)
        let x = try g.input("x", dtype: .uint8, shape: [1, 4, 5, 5])
        let w = g.constant(HostTensor(shape: [2, 4, 3, 3], repeating: 1))
        #expect(throws: LatheError.self) { try x.apply(.conv2d(Conv2DAttributes()), [w], SourceLocation(fileID: #fileID, line: #line)) }
        let f = try g.input("f", shape: [1, 4, 5, 5])
        #expect(throws: LatheError.self) {
            try f.apply(.conv2d(Conv2DAttributes(padValue: 3)), [w], SourceLocation(fileID: #fileID, line: #line))
        }
    }

    /// The compiled model's result equals the interpreter's, byte for byte.
    /// `shiftedCopies`: whether the convolution reads shifted copies of its input; `pixelRows`,
    /// with its output pixels as the GEMM's rows.
    private func expectExact(_ g: Graph, _ y: Tensor, feeds: [String: HostTensor], threads: Int, shiftedCopies: Bool = false, pixelRows: Bool = false,
                             _ what: String) throws {
        let model = try g.compile(outputs: ["y": y], options: CompileOptions(threads: threads))
        let algorithms = model.program.kernels.compactMap(\.algorithm)
        #expect(algorithms.contains { $0.contains("int8 gemm") && $0.contains("shifted copies") == shiftedCopies && $0.contains("pixel rows") == pixelRows },
                "\(what): \(model.program.planText)")
        let got = try model.run(feeds)["y"]!
        let expected = try g.interpret(outputs: [("y", y)], feeds: feeds)["y"]!
        #expect(got.shape == expected.shape && got.dtype == .int32 && expected.dtype == .int32, "\(what)")
        #expect(got.rawBytes == expected.rawBytes, "\(what): \(got) vs \(expected)")
    }
}
