import Lathe
import LatheExamples
import LatheRuntime
import Testing

/// The kernel plan of whole models as text (`lathe dump MODEL --kernels`), compared line for
/// line: a change to any kernel's algorithm, geometry, weight layout, split, scratch or buffers
/// shows here. Planned for 2 threads and 8-float vectors (AVX2's), so the text is the same on
/// every host. When a plan changes on purpose, check the new line and paste it.
@Suite("Kernel plans: golden text")
struct KernelPlanGoldenTests {
    static func planText(_ graph: Graph, _ outputs: [(name: String, value: ValueID)]) throws -> String {
        try Compiler.lower(graph, outputs: outputs, threads: 2, vectorWidth: 8).program.planText
    }

    static func expectLines(_ got: String, _ golden: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        let (gotLines, goldenLines) = (got.split(separator: "\n"), golden.split(separator: "\n"))
        #expect(gotLines.count == goldenLines.count, "kernels: \(gotLines.count), golden: \(goldenLines.count)\n\(got)", sourceLocation: sourceLocation)
        for (g, e) in zip(gotLines, goldenLines) where g != e {
            Issue.record("plan line differs:\n  got:    \(g)\n  golden: \(e)", sourceLocation: sourceLocation)
        }
    }

    /// Vector widths the GEMM has register blocks for: 4, 8 and 16 floats; any other is an error.
    @Test func anUnknownVectorWidthIsAnError() throws {
        let (graph, outputs) = try Examples.mnistCNN.graph(batch: 1, seed: 0)
        let named = outputs.map { ($0.name, $0.value.id) }
        for width in [0, 3, 32] {
            #expect(throws: LatheError.unsupported("a vector width of \(width) floats (4, 8 or 16)")) {
                try Compiler.lower(graph, outputs: named, threads: 2, vectorWidth: width)
            }
        }
        for width in [4, 8, 16] { _ = try Compiler.lower(graph, outputs: named, threads: 2, vectorWidth: width) }
    }

    @Test func mnistCNN() throws {
        let (graph, outputs) = try Examples.mnistCNN.graph(batch: 64, seed: 0)
        Self.expectLines(try Self.planText(graph, outputs.map { ($0.name, $0.value.id) }), """
        k0_conv2d_epilogue_max_pool2d  conv2d+relu+max_pool2d  an image at a time: direct 3x3, 1->32 channels, 6x2 register block, padded planes; then max_pool2d kernel=[2,2], strides=[2,2], pads=[0,0,0,0]  f32[64, 1, 28, 28], f32[32, 1, 3, 3], f32[32] -> f32[64, 32, 13, 13]  2 threads: 64 units  scratch 179776 B at arena+0  in input[0], weights+0, weights+1152 out arena+3546624
        k1_conv2d_epilogue             conv2d+relu  winograd F(2x2,3x3) 32->64 channels, 6x6 tiles an image, 22 units of 6 tile rows  f32[64, 32, 13, 13], f32[64, 32, 3, 3], f32[64] -> f32[64, 64, 11, 11]  weights winograd F(2x2,3x3) in panels of 6 rows  2 threads: 22 units  scratch 1564160 B at arena+1982464  in arena+3546624, weights+1536, weights+1280 out arena+0
        k2_max_pool2d                  max_pool2d  loops  f32[64, 64, 11, 11] -> f32[64, 64, 5, 5]  2 threads: 4096 units  scratch 64 B at arena+2392064  in arena+0 out arena+1982464
        k3_flatten                     flatten  no code (in place)  f32[64, 64, 5, 5] -> f32[64, 1600]  1 thread  in arena+1982464 out arena+1982464 (over operand 0)
        k4_dense_epilogue              dense+relu  gemm M=64 N=128 K=1600  f32[64, 1600], f32[1600, 128], f32[128] -> f32[64, 128]  weights gemm column panels of 16  2 threads: columns 128 in chunks of 64  scratch 184384 B at arena+0  in arena+1982464, weights+137216, weights+136704 out arena+184384
        k5_dense                       dense  gemm M=64 N=10 K=128  f32[64, 128], f32[128, 10], f32[10] -> f32[64, 10]  1 thread  scratch 53248 B at arena+0  in arena+184384, weights+956416, weights+961536 out arena+53248
        k6_softmax                     softmax  loops  f32[64, 10] -> f32[64, 10]  1 thread  in arena+53248 out output[0]
        """)
    }

    /// The same CNN at batch 1: its Winograd convolution (one strip of tiles) is split by output
    /// channels and its first dense by columns of unpacked weights, chunks that each pack the
    /// other operand again, so both are also planned for one thread ("or 1 thread alone"), with
    /// their scratch sized for either plan.
    @Test func mnistCNNBatch1() throws {
        let (graph, outputs) = try Examples.mnistCNN.graph(batch: 1, seed: 0)
        Self.expectLines(try Self.planText(graph, outputs.map { ($0.name, $0.value.id) }), """
        k0_conv2d_epilogue_max_pool2d  conv2d+relu+max_pool2d  an image at a time: direct 3x3, 1->32 channels, 6x2 register block, padded planes; then max_pool2d kernel=[2,2], strides=[2,2], pads=[0,0,0,0]  f32[1, 1, 28, 28], f32[32, 1, 3, 3], f32[32] -> f32[1, 32, 13, 13]  1 thread  scratch 89856 B at arena+0  in input[0], weights+0, weights+1152 out arena+694016
        k1_conv2d_epilogue             conv2d+relu  winograd F(2x2,3x3) 32->64 channels, 6x6 tiles an image, 1 unit of 6 tile rows  f32[1, 32, 13, 13], f32[64, 32, 3, 3], f32[64] -> f32[1, 64, 11, 11]  weights winograd F(2x2,3x3) in panels of 6 rows  2 threads: rows 64 in chunks of 36, or 1 thread alone  scratch 663040 B at arena+0  in arena+694016, weights+1536, weights+1280 out arena+663040
        k2_max_pool2d                  max_pool2d  loops  f32[1, 64, 11, 11] -> f32[1, 64, 5, 5]  1 thread  in arena+663040 out arena+0
        k3_flatten                     flatten  no code (in place)  f32[1, 64, 5, 5] -> f32[1, 1600]  1 thread  in arena+0 out arena+0 (over operand 0)
        k4_dense_epilogue              dense+relu  gemm M=1 N=128 K=1600  f32[1, 1600], f32[1600, 128], f32[128] -> f32[1, 128]  2 threads: columns 128 in chunks of 64, or 1 thread alone  scratch 64 B at arena+6912  in arena+0, weights+136704, weights+955904 out arena+6400
        k5_dense                       dense  gemm M=1 N=10 K=128  f32[1, 128], f32[128, 10], f32[10] -> f32[1, 10]  1 thread  in arena+6400, weights+956416, weights+961536 out arena+0
        k6_softmax                     softmax  loops  f32[1, 10] -> f32[1, 10]  1 thread  in arena+0 out output[0]
        """)
    }

    /// ResNet-50's first bottleneck block of stage 2 at batch 1: 1x1 reduce, 3x3, 1x1 expand,
    /// each with BatchNorm (folded), the residual Add and ReLU fused into the last.
    @Test func resnetBottleneck() throws {
        let g = Graph(seed: 1)
        let x = try g.input("x", shape: [1, 256, 56, 56])
        let branch = Sequential {
            Conv2D(64, kernel: 1); BatchNorm(); ActivationLayer(.relu)
            Conv2D(64, kernel: 3, padding: .same); BatchNorm(); ActivationLayer(.relu)
            Conv2D(256, kernel: 1); BatchNorm()
        }
        let y = try (try branch(x) + x).relu()
        Self.expectLines(try Self.planText(g, [("y", y.id)]), """
        k0_conv2d_epilogue  conv2d+relu  gemm 1x1, M=64 N=3136 K=256 a unit, 1 unit  f32[1, 256, 56, 56], f32[64, 256, 1, 1], f32[64] -> f32[1, 64, 56, 56]  weights gemm panels of 6 rows  2 threads: columns 3136 in chunks of 1568  scratch 2097216 B at arena+0  in input[0], weights+256, weights+0 out arena+4300288
        k1_conv2d_epilogue  conv2d+relu  winograd F(4x4,3x3) 64->64 channels, 14x14 tiles an image, 2 units of 7 tile rows  f32[1, 64, 56, 56], f32[64, 64, 3, 3], f32[64] -> f32[1, 64, 56, 56]  weights winograd F(4x4,3x3) in panels of 6 rows  2 threads: 2 units  scratch 4300256 B at arena+0  in arena+4300288, weights+67840, weights+0 out arena+5103104
        k2_conv2d_epilogue  conv2d+add+relu  gemm 1x1, M=256 N=3136 K=64 a unit, 1 unit  f32[1, 64, 56, 56], f32[256, 64, 1, 1], f32[256], f32[1, 256, 56, 56] -> f32[1, 256, 56, 56]  weights gemm panels of 6 rows  2 threads: columns 3136 in chunks of 1568  scratch 524352 B at arena+0  in arena+5103104, weights+677120, weights+676096, input[0] out output[0]
        """)
    }

    /// A quantized residual block as a QDQ model imports (uint8 activations, int8 weights): two
    /// 3x3 convolutions on the integer GEMM, reading shifted copies of their input (their
    /// weights tap by tap), each requantized to uint8 in its epilogue, the
    /// second adding the block's input, then a quantized dense layer.
    @Test func quantizedResidualBlock() throws {
        let g = Graph(seed: 1)
        let x = try g.input("x", dtype: .uint8, shape: [1, 32, 28, 28])
        let here = SourceLocation(fileID: #fileID, line: #line)
        func convolution(_ input: Tensor, seed: UInt64) throws -> Tensor {
            let w = g.constant(randomTensor(.int8, shape: [32, 32, 3, 3], seed: seed, range: -128...127))
            let b = g.constant(randomTensor(.int32, shape: [32], seed: seed + 1, range: -1000...1000))
            return try input.apply(.conv2d(Conv2DAttributes(pads: [1, 1, 1, 1], padValue: 7)), [w, b], here)
        }
        let requantize: ScalarExpr = .cast(.uint8, UnaryFn.clip(min: 0, max: 255).formula.substituting(
            [.unary(.round, .binary(.mul, .cast(.float32, .arg(0)), .const(0.002))) + .const(7)]))
        let first = try convolution(x, seed: 3).apply(.fusedElementwise(requantize), [], here)
        let added: ScalarExpr = .cast(.uint8, UnaryFn.clip(min: 0, max: 255).formula.substituting(
            [.unary(.round, .binary(.mul, .cast(.float32, .arg(0)), .const(0.002)) + .cast(.float32, .arg(1))) + .const(7)]))
        let second = try convolution(first, seed: 5).apply(.fusedElementwise(added), [x], here)
        let flat = try second.apply(.reshape(shape: [1, 32 * 28 * 28]), [], here)
        let w = g.constant(randomTensor(.int8, shape: [32 * 28 * 28, 10], seed: 7, range: -128...127))
        let y = try flat.apply(.dense, [w, g.constant(randomTensor(.int32, shape: [10], seed: 8, range: -1000...1000))], here)
        Self.expectLines(try Self.planText(g, [("y", y.id)]), """
        k0_conv2d_epilogue  conv2d+fused_elementwise  shifted copies+int8 gemm 3x3 pad 1,1,1,1, M=32 N=784 K=288 a unit, 14-row tiles, pad value 7  u8[1, 32, 28, 28], i8[32, 32, 3, 3], i32[32] -> u8[1, 32, 28, 28]  weights int8 panels of 4 rows, tap by tap  2 threads: 2 units  scratch 86592 B at arena+0  in input[0], weights+128, weights+0 out arena+86592
        k1_conv2d_epilogue  conv2d+fused_elementwise  shifted copies+int8 gemm 3x3 pad 1,1,1,1, M=32 N=784 K=288 a unit, 14-row tiles, pad value 7  u8[1, 32, 28, 28], i8[32, 32, 3, 3], i32[32], u8[1, 32, 28, 28] -> u8[1, 32, 28, 28]  weights int8 panels of 4 rows, tap by tap  2 threads: 2 units  scratch 86592 B at arena+0  in arena+86592, weights+9472, weights+9344, input[0] out arena+301056
        k2_reshape          reshape  no code (in place)  u8[1, 32, 28, 28] -> u8[1, 25088]  1 thread  in arena+301056 out arena+301056 (over operand 0)
        k3_dense            dense  int8 gemm M=1 N=10 K=25088  u8[1, 25088], i8[25088, 10], i32[10] -> i32[1, 10]  weights int8 column panels of 16  1 thread  scratch 301056 B at arena+0  in arena+301056, weights+18752, weights+18688 out output[0]
        """)
    }

    /// A quantized 3x3 convolution on a 7 x 7 image, planned for AVX-512 (16-float vectors):
    /// its 49 pixels are the GEMM's rows, 7 blocks of 7 (as columns they would fill 64), its 64
    /// output channels two panels of 32 columns that the threads share.
    @Test func quantizedSmallImage() throws {
        let g = Graph(seed: 1)
        let x = try g.input("x", dtype: .uint8, shape: [1, 64, 7, 7])
        let w = g.constant(randomTensor(.int8, shape: [64, 64, 3, 3], seed: 3, range: -128...127))
        let b = g.constant(randomTensor(.int32, shape: [64], seed: 4, range: -1000...1000))
        let y = try x.apply(.conv2d(Conv2DAttributes(pads: [1, 1, 1, 1], padValue: 7)), [w, b], SourceLocation(fileID: #fileID, line: #line))
        Self.expectLines(try Compiler.lower(g, outputs: [("y", y.id)], threads: 2, vectorWidth: 16).program.planText, """
        k0_conv2d  conv2d  shifted copies (pixel rows)+int8 gemm 3x3 pad 1,1,1,1, M=64 N=49 K=576 a unit, 7-row tiles, pad value 7  u8[1, 64, 7, 7], i8[64, 64, 3, 3], i32[64] -> i32[1, 64, 7, 7]  weights int8 column panels of 32, tap by tap  2 threads: rows 64 in chunks of 32  scratch 24768 B at arena+0  in input[0], weights+256, weights+0 out output[0]
        """)
    }

    /// A projection of (L, N, E) tokens, as PyTorch's MultiheadAttention exports it: the 197
    /// products of one row share B, so they are one product of 197 rows, its B packed at compile
    /// time; a batched product whose B differs per batch stays a batch.
    @Test func sharedWeightMatmulIsOneProduct() throws {
        let g = Graph(seed: 2)
        let tokens = try g.input("tokens", shape: [197, 1, 384])
        let projected = try tokens.matmul(g.constant(.random(shape: [384, 1152], seed: 1))) + g.constant(.random(shape: [1152], seed: 2))
        let keys = try g.input("keys", shape: [6, 64, 197])
        let scores = try g.input("queries", shape: [6, 197, 64]).matmul(keys)
        Self.expectLines(try Self.planText(g, [("projected", projected.id), ("scores", scores.id)]), """
        k0_matmul_epilogue  matmul+add  gemm M=197 N=1152 K=384  f32[197, 1, 384], f32[384, 1152], f32[1152] -> f32[197, 1, 1152]  weights gemm column panels of 16  2 threads: columns 1152 in chunks of 576  scratch 184384 B at arena+0  in input[0], weights+4608, weights+0 out output[0]
        k1_matmul           matmul  gemm M=197 N=197 K=64, 6 products  f32[6, 197, 64], f32[6, 64, 197] -> f32[6, 197, 197]  2 threads: 6 units  scratch 176192 B at arena+0  in input[2], input[1] out output[1]
        """)
    }

    /// Depthwise convolutions run direct, one channel by two vectors a block: too few sums for
    /// the FMA units in one chain each, so each vector's sum is dealt among partial sums (a
    /// 5x5 window's row among 4; a 3x3's among 2, as 3 would leave no room for its 9 weights in
    /// the 16 registers of 8-float vectors).
    @Test func depthwisePartialSums() throws {
        let g = Graph(seed: 2)
        let x = try g.input("x", shape: [1, 24, 14, 14])
        let five = try x.apply(.conv2d(Conv2DAttributes(pads: [2, 2, 2, 2], groups: 24)), [g.constant(.random(shape: [24, 1, 5, 5], seed: 1))], SourceLocation(fileID: #fileID, line: #line))
        let three = try five.apply(.conv2d(Conv2DAttributes(pads: [1, 1, 1, 1], groups: 24)), [g.constant(.random(shape: [24, 1, 3, 3], seed: 2))], SourceLocation(fileID: #fileID, line: #line))
        Self.expectLines(try Self.planText(g, [("y", three.id)]), """
        k0_conv2d  conv2d  direct 5x5 pad 2,2,2,2, 24->24 channels in 24 groups, 1x2 register block of 4 partial sums, padded planes  f32[1, 24, 14, 14], f32[24, 1, 5, 5] -> f32[1, 24, 14, 14]  1 thread  scratch 1376 B at arena+18816  in input[0], weights+0 out arena+0
        k1_conv2d  conv2d  direct 3x3 pad 1,1,1,1, 24->24 channels in 24 groups, 1x2 register block of 2 partial sums, padded planes  f32[1, 24, 14, 14], f32[24, 1, 3, 3] -> f32[1, 24, 14, 14]  1 thread  scratch 1096 B at arena+18816  in arena+0, weights+2432 out output[0]
        """)
    }

    /// A BERT-base encoder layer: 128 tokens of 768, 12 heads of 64, a 3072-wide GELU
    /// feed-forward network, post-norm.
    @Test func bertLayer() throws {
        let g = Graph(seed: 2)
        let tokens = try g.input("tokens", shape: [1, 128, 768])
        let attention = MultiHeadAttention(heads: 12, keyDim: 64)
        let feedForward = Sequential { Dense(3072, activation: .gelu); Dense(768) }
        let (norm1, norm2) = (LayerNorm(), LayerNorm())
        let attended = try norm1(try tokens + attention(tokens))
        let encoded = try norm2(try attended + feedForward(attended))
        Self.expectLines(try Self.planText(g, [("encoded", encoded.id)]), """
        k0_reshape           reshape  loops  f32[1, 128, 768] -> f32[128, 768]  1 thread  in input[0] out arena+0
        k1_dense             dense  gemm M=128 N=768 K=768  f32[128, 768], f32[768, 768], f32[768] -> f32[128, 768]  weights gemm column panels of 16  2 threads: columns 768 in chunks of 384  scratch 245824 B at arena+786432  in arena+0, weights+3072, weights+0 out arena+393216
        k2_reshape           reshape  no code (in place)  f32[128, 768] -> f32[1, 128, 12, 64]  1 thread  in arena+393216 out arena+393216 (over operand 0)
        k3_transpose         transpose  loops  f32[1, 128, 12, 64] -> f32[1, 12, 128, 64]  2 threads: rows 12 in chunks of 6  scratch 64 B at arena+1179648  in arena+393216 out arena+786432
        k4_dense             dense  gemm M=128 N=768 K=768  f32[128, 768], f32[768, 768], f32[768] -> f32[128, 768]  weights gemm column panels of 16  2 threads: columns 768 in chunks of 384  scratch 245824 B at arena+1179648  in arena+0, weights+2365440, weights+2362368 out arena+393216
        k5_reshape           reshape  no code (in place)  f32[128, 768] -> f32[1, 128, 12, 64]  1 thread  in arena+393216 out arena+393216 (over operand 0)
        k6_transpose         transpose  loops  f32[1, 128, 12, 64] -> f32[1, 12, 128, 64]  2 threads: rows 12 in chunks of 6  scratch 64 B at arena+1572864  in arena+393216 out arena+1179648
        k7_dense             dense  gemm M=128 N=768 K=768  f32[128, 768], f32[768, 768], f32[768] -> f32[128, 768]  weights gemm column panels of 16  2 threads: columns 768 in chunks of 384  scratch 245824 B at arena+1572864  in arena+0, weights+4727808, weights+4724736 out arena+393216
        k8_reshape           reshape  no code (in place)  f32[128, 768] -> f32[1, 128, 12, 64]  1 thread  in arena+393216 out arena+393216 (over operand 0)
        k9_transpose         transpose  loops  f32[1, 128, 12, 64] -> f32[1, 12, 128, 64]  2 threads: rows 12 in chunks of 6  scratch 64 B at arena+0  in arena+393216 out arena+1572864
        k10_transpose        transpose  loops  f32[1, 12, 128, 64] -> f32[1, 12, 64, 128]  2 threads: rows 12 in chunks of 6  scratch 64 B at arena+0  in arena+1179648 out arena+1966080
        k11_matmul_epilogue  matmul+mul  gemm M=128 N=128 K=64, 12 products  f32[1, 12, 128, 64], f32[1, 12, 64, 128] -> f32[1, 12, 128, 128]  2 threads: 12 units  scratch 127040 B at arena+1179648  in arena+786432, arena+1966080 out arena+0
        k12_softmax          softmax  loops  f32[1, 12, 128, 128] -> f32[1, 12, 128, 128]  2 threads: rows 1536 in chunks of 768  scratch 64 B at arena+1966080  in arena+0 out arena+786432
        k13_matmul           matmul  gemm M=128 N=64 K=128, 12 products  f32[1, 12, 128, 128], f32[1, 12, 128, 64] -> f32[1, 12, 128, 64]  2 threads: 12 units  scratch 188480 B at arena+393216  in arena+786432, arena+1572864 out arena+0
        k14_transpose        transpose  loops  f32[1, 12, 128, 64] -> f32[1, 128, 12, 64]  2 threads: rows 128 in chunks of 64  scratch 64 B at arena+786432  in arena+0 out arena+393216
        k15_reshape          reshape  no code (in place)  f32[1, 128, 12, 64] -> f32[128, 768]  1 thread  in arena+393216 out arena+393216 (over operand 0)
        k16_dense            dense  gemm M=128 N=768 K=768  f32[128, 768], f32[768, 768], f32[768] -> f32[128, 768]  weights gemm column panels of 16  2 threads: columns 768 in chunks of 384  scratch 245824 B at arena+786432  in arena+393216, weights+7090176, weights+7087104 out arena+0
        k17_reshape          reshape  no code (in place)  f32[128, 768] -> f32[1, 128, 768]  1 thread  in arena+0 out arena+0 (over operand 0)
        k18_add              add  loops  f32[1, 128, 768], f32[1, 128, 768] -> f32[1, 128, 768]  1 thread  in input[0], arena+0 out arena+0 (over operand 1)
        k19_layer_norm       layer_norm  loops  f32[1, 128, 768], f32[768], f32[768] -> f32[1, 128, 768]  1 thread  in arena+0, weights+9449472, weights+9452544 out arena+1572864
        k20_reshape          reshape  loops  f32[1, 128, 768] -> f32[128, 768]  1 thread  in arena+1572864 out arena+1966080
        k21_dense            dense  gemm M=128 N=3072 K=768  f32[128, 768], f32[768, 3072], f32[3072] -> f32[128, 3072]  weights gemm column panels of 16  2 threads: columns 3072 in chunks of 1536  scratch 245824 B at arena+2359296  in arena+1966080, weights+9467904, weights+9455616 out arena+0
        k22_reshape          reshape  no code (in place)  f32[128, 3072] -> f32[1, 128, 3072]  1 thread  in arena+0 out arena+0 (over operand 0)
        k23_gelu             gelu  loops  f32[1, 128, 3072] -> f32[1, 128, 3072]  1 thread  in arena+0 out arena+0 (over operand 0)
        k24_reshape          reshape  no code (in place)  f32[1, 128, 3072] -> f32[128, 3072]  1 thread  in arena+0 out arena+0 (over operand 0)
        k25_dense            dense  gemm M=128 N=768 K=3072  f32[128, 3072], f32[3072, 768], f32[768] -> f32[128, 768]  weights gemm column panels of 16  2 threads: columns 768 in chunks of 384  scratch 295744 B at arena+2359296  in arena+0, weights+18908160, weights+18905088 out arena+1966080
        k26_reshape          reshape  no code (in place)  f32[128, 768] -> f32[1, 128, 768]  1 thread  in arena+1966080 out arena+1966080 (over operand 0)
        k27_add              add  loops  f32[1, 128, 768], f32[1, 128, 768] -> f32[1, 128, 768]  1 thread  in arena+1572864, arena+1966080 out arena+1572864 (over operand 0)
        k28_layer_norm       layer_norm  loops  f32[1, 128, 768], f32[768], f32[768] -> f32[1, 128, 768]  1 thread  in arena+1572864, weights+28345344, weights+28348416 out output[0]
        """)
    }
}
