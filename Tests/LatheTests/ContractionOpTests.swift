import Lathe
import LatheCodegen
import Testing

let matmulCases: [OpCase] = [
    ([5, 7], [7, 19]), ([1, 1], [1, 33]), ([13], [13, 5]), ([4, 9], [9]), ([3, 1, 9, 13], [2, 13, 6]),
    ([2, 17, 23], [23, 41]), ([7, 64], [64, 17]), ([6, 16], [16, 16]), ([13, 100], [100, 3]),
    ([2, 1, 31, 300], [3, 300, 45]), ([130, 9], [9, 1030]),
].map { a, b in
    OpCase("matmul \(a) x \(b)", [Operand(shape: a), Operand(shape: b)]) { x in try x[0].matmul(x[1]) }
}

/// Packed and blocked (GemmPacked.swift): 125 rows are two MC blocks and a cut register block;
/// K = 530 is two KC blocks; N = 1041 two NC blocks and a cut panel. Fewer than 6 rows with
/// K >= 64 stream B (K = 703: four rows of B a pass and a remainder).
let denseCases: [OpCase] = [(1, 10, 64, true), (7, 33, 19, true), (13, 5, 3, false), (64, 784, 128, true), (6, 17, 1, true),
                            (125, 530, 40, true), (7, 20, 1041, true), (12, 256, 32, false), (6, 257, 16, true),
                            (1, 703, 45, true), (3, 130, 1000, true), (5, 64, 16, false)].map { m, k, n, bias in
    OpCase("dense \(m)x\(k) x \(k)x\(n)\(bias ? " + bias" : "")",
           [Operand(shape: [m, k]), Operand(shape: [k, n])] + (bias ? [Operand(shape: [n])] : [])) { x in
        try x[0].dense(weight: x[1], bias: x.count == 3 ? x[2] : nil)
    }
}

/// Compiled with the passes, so the bias and activation run in the GEMM's epilogue.
let epilogueCases: [OpCase] = [
    OpCase("matmul [2,13,17] x [17,21] + bias [21], relu", [Operand(shape: [2, 13, 17]), Operand(shape: [17, 21]), Operand(shape: [21])]) { x in
        try (x[0].matmul(x[1]) + x[2]).relu()
    },
    OpCase("matmul [7,33] x [33,1] + bias [1], tanh", [Operand(shape: [7, 33]), Operand(shape: [33, 1]), Operand(shape: [1])]) { x in
        try (x[0].matmul(x[1]) + x[2]).tanh()
    },
    OpCase("matmul [3,5,17] x [1,17,21] + bias [21] + residual [3,5,21], relu: one product of 15 rows", [Operand(shape: [3, 5, 17]), Operand(shape: [1, 17, 21]), Operand(shape: [21]), Operand(shape: [3, 5, 21])]) { x in
        try (x[0].matmul(x[1]) + x[2] + x[3]).relu()
    },
    OpCase("dense [5,19] + residual [5,11] + column vector [1,11]", [Operand(shape: [5, 19]), Operand(shape: [19, 11]), Operand(shape: [5, 11]), Operand(shape: [1, 11])]) { x in
        try x[0].dense(weight: x[1]) + x[2] + x[3]
    },
]

/// Constant right operands the packed GEMM reads as B panels laid out at compile time
/// (WeightLayout.gemmColumnPanels): column counts that are not whole panels, two NC blocks
/// (1041 columns), two K blocks (530), a batched matmul sharing one B, and an epilogue.
let constantWeightProductCases: [OpCase] = [
    ([37, 70], [70, 45], true), ([13, 530], [530, 1041], false), ([2, 29, 50], [50, 100], false), ([1, 128, 64], [64, 96], true),
].map { a, b, bias in
    OpCase("\(a.count == 2 ? "dense" : "matmul") \(a) x constant \(b)\(bias ? " + bias, relu" : "")", [Operand(shape: a)]) { x in
        let w = x[0].graph.constant(.random(shape: b, seed: 23, in: -1...1))
        guard bias else { return a.count == 2 ? try x[0].dense(weight: w) : try x[0].matmul(w) }
        let c = x[0].graph.constant(.random(shape: [b[1]], seed: 24, in: -1...1))
        return try (a.count == 2 ? x[0].dense(weight: w, bias: c) : x[0].matmul(w) + c).relu()
    }
}

struct ConvSetup: Sendable {
    var input: [Int], weight: [Int]
    var strides = [1, 1], pads = [0, 0, 0, 0], dilations = [1, 1], groups = 1, bias = true
}

let convCases: [OpCase] = [
    ConvSetup(input: [1, 1, 28, 28], weight: [32, 1, 3, 3]),
    ConvSetup(input: [2, 3, 11, 13], weight: [5, 3, 3, 3], strides: [2, 2], pads: [1, 1, 1, 1]),
    ConvSetup(input: [1, 4, 12, 10], weight: [7, 4, 3, 3], dilations: [2, 2], bias: false),
    ConvSetup(input: [1, 6, 9, 9], weight: [6, 1, 3, 3], pads: [1, 1, 1, 1], groups: 6),
    ConvSetup(input: [2, 8, 7, 7], weight: [12, 4, 1, 1], groups: 2),
    ConvSetup(input: [1, 16, 9, 11], weight: [17, 16, 1, 1]),
    // 1x1 to few channels, B read in place: 65 = 4 x 16 + 1 columns (a last strip of at most
    // half a panel); K = 330 in two blocks and N = 1101 in two column blocks, the last strip cut.
    ConvSetup(input: [2, 24, 5, 13], weight: [9, 24, 1, 1]),
    ConvSetup(input: [1, 330, 3, 367], weight: [20, 330, 1, 1]),
    ConvSetup(input: [1, 3, 17, 15], weight: [9, 3, 5, 5], strides: [2, 1], pads: [2, 1, 0, 2]),
    ConvSetup(input: [3, 2, 6, 5], weight: [4, 2, 2, 3], strides: [1, 2], pads: [0, 1, 1, 0]),
    // Unfolded a few output rows at a time: 41 rows as tiles of 4 and a last tile of 1.
    ConvSetup(input: [1, 24, 41, 61], weight: [7, 24, 3, 3], pads: [1, 1, 1, 1]),
    ConvSetup(input: [2, 40, 37, 45], weight: [8, 40, 3, 3], strides: [2, 2], pads: [1, 0, 2, 1]),
    // Direct (DirectConvolution.swift): depthwise, and first layers of few channels. Rows of
    // pairs of vectors, single vectors and a tail; strides through phases of the padded rows;
    // dilation; one-sided padding; a block of 6 output channels and a rest of 1 or 4.
    ConvSetup(input: [2, 5, 37, 29], weight: [5, 1, 3, 3], strides: [2, 2], pads: [1, 1, 1, 1], groups: 5),
    ConvSetup(input: [1, 7, 20, 41], weight: [7, 1, 3, 3], pads: [1, 0, 1, 2], dilations: [1, 2], groups: 7, bias: false),
    ConvSetup(input: [1, 4, 12, 35], weight: [4, 1, 5, 5], strides: [1, 2], pads: [2, 2, 2, 2], groups: 4),
    ConvSetup(input: [1, 3, 40, 75], weight: [7, 3, 3, 3], strides: [2, 2], pads: [1, 1, 1, 1]),
    ConvSetup(input: [1, 3, 20, 90], weight: [6, 1, 3, 3], strides: [2, 3], pads: [0, 1, 1, 0], groups: 3),
    // Grouped layers of up to 16 channels a group, direct: 16 in and out (RegNet's), a block of
    // 6 channels and a rest of 4; 8 in and 12 out with a stride of 2 read in place; 5 x 7 output
    // rows shorter than a vector; 2 images.
    ConvSetup(input: [1, 32, 13, 21], weight: [32, 16, 3, 3], pads: [1, 1, 1, 1], groups: 2),
    ConvSetup(input: [2, 24, 15, 19], weight: [36, 8, 3, 3], strides: [2, 2], pads: [1, 1, 1, 1], groups: 3),
    ConvSetup(input: [1, 48, 7, 5], weight: [48, 16, 3, 3], pads: [1, 1, 1, 1], groups: 3, bias: false),
    // Strided windows read in place: unmasked blocks inside the row, masked ones at its ends,
    // a row shorter than a vector, dilated taps from further loads.
    ConvSetup(input: [1, 3, 9, 70], weight: [6, 1, 3, 3], strides: [2, 2], pads: [1, 1, 1, 1], groups: 3),
    ConvSetup(input: [2, 6, 14, 14], weight: [6, 1, 3, 3], strides: [2, 2], pads: [1, 1, 1, 1], groups: 6),
    ConvSetup(input: [1, 2, 11, 53], weight: [2, 1, 3, 3], strides: [2, 2], pads: [2, 3, 0, 1], dilations: [2, 3], groups: 2),
    // A strided depthwise row of 70 outputs: a block of 6 vectors, the 2 left, a tail of 6 (with
    // 16-float vectors: 4 vectors and the tail); a strided first layer's 8 + 3 channels.
    ConvSetup(input: [1, 3, 9, 139], weight: [3, 1, 3, 3], strides: [2, 2], pads: [1, 1, 1, 1], groups: 3),
    ConvSetup(input: [1, 3, 15, 61], weight: [11, 3, 3, 3], strides: [2, 2], pads: [1, 1, 1, 1]),
    // Rows ending in a vector and a partial one (26 = 16 + 8 + 2; 28 = 16 + 8 + 4).
    ConvSetup(input: [2, 1, 28, 28], weight: [32, 1, 3, 3]),
    ConvSetup(input: [1, 4, 28, 28], weight: [4, 1, 3, 3], pads: [1, 1, 1, 1], groups: 4),
    ConvSetup(input: [2, 1, 9, 60], weight: [10, 1, 3, 3], pads: [1, 1, 1, 1], bias: false),
].map { s in
    OpCase("conv2d \(s.input) w\(s.weight) s\(s.strides) p\(s.pads) d\(s.dilations) g\(s.groups)",
           [Operand(shape: s.input), Operand(shape: s.weight)] + (s.bias ? [Operand(shape: [s.weight[0]])] : [])) { x in
        try x[0].conv2d(weight: x[1], bias: x.count == 3 ? x[2] : nil, strides: s.strides, pads: s.pads, dilations: s.dilations, groups: s.groups)
    }
}

/// Constant weights: the packed GEMM reads them in panels laid out at compile time
/// (WeightLayout.gemmPanels), output channels padded to whole panels per group, but for the
/// direct kernel's (a gray image's first layer, of channel multiplier 32, is one). The 1x1
/// convolution of one image splits its output positions among threads (ThreadSplit.columns).
/// An unpadded 1x1 one to 13 channels reads its input in place, in columns split among threads;
/// one to 70 channels, more than GemmBlocking.inPlaceRows, packs it.
let constantWeightConvCases: [OpCase] = [
    ([1, 8, 19, 23], [13, 8, 3, 3], 1, 1), ([2, 12, 15, 9], [28, 3, 3, 3], 4, 1), ([1, 64, 9, 9], [40, 64, 1, 1], 1, 1),
    ([1, 16, 30, 33], [16, 1, 3, 3], 16, 1), ([2, 1, 28, 28], [32, 1, 3, 3], 1, 1), ([1, 32, 20, 20], [16, 32, 1, 1], 1, 1),
    ([1, 40, 21, 23], [13, 40, 1, 1], 1, 0), ([2, 130, 9, 9], [70, 130, 1, 1], 1, 0),
].map { input, weight, groups, pad in
    OpCase("conv2d \(input) constant w\(weight) g\(groups) p\(pad)", [Operand(shape: input)]) { x in
        let w = x[0].graph.constant(.random(shape: weight, seed: 21, in: -1...1))
        let b = x[0].graph.constant(.random(shape: [weight[0]], seed: 22, in: -1...1))
        return try x[0].conv2d(weight: w, bias: b, pads: Array(repeating: pad, count: 4), groups: groups).relu()
    }
}

struct ConvTransposeSetup: Sendable {
    var input: [Int], weight: [Int]
    var strides = [1, 1], pads = [0, 0, 0, 0], outputPadding = [0, 0], dilations = [1, 1], groups = 1, bias = true
}

let convTransposeCases: [OpCase] = [
    ConvTransposeSetup(input: [1, 3, 5, 5], weight: [3, 4, 3, 3]),
    ConvTransposeSetup(input: [2, 8, 7, 7], weight: [8, 4, 4, 4], strides: [2, 2], pads: [1, 1, 1, 1]),
    ConvTransposeSetup(input: [1, 2, 4, 6], weight: [2, 3, 3, 2], strides: [2, 3], pads: [0, 1, 1, 0], outputPadding: [1, 2], bias: false),
    ConvTransposeSetup(input: [1, 6, 5, 4], weight: [6, 2, 3, 3], dilations: [2, 1], groups: 3),
    ConvTransposeSetup(input: [3, 5, 9, 9], weight: [5, 17, 2, 2], strides: [2, 2]),
].map { s in
    OpCase("conv_transpose2d \(s.input) w\(s.weight) s\(s.strides) p\(s.pads) op\(s.outputPadding) d\(s.dilations) g\(s.groups)",
           [Operand(shape: s.input), Operand(shape: s.weight)] + (s.bias ? [Operand(shape: [s.weight[1] * s.groups])] : [])) { x in
        let a = ConvTranspose2DAttributes(strides: s.strides, pads: s.pads, outputPadding: s.outputPadding, dilations: s.dilations, groups: s.groups)
        return try x[0].apply(.convTranspose2d(a), Array(x.dropFirst()), .unknown)
    }
}

@Suite("Contractions: JIT against the interpreter")
struct ContractionOpTests {
    @Test(arguments: matmulCases)
    func matmul(_ c: OpCase) throws { #expect(try compiledVersusInterpreter(c) <= 1e-5) }

    /// Split among 2 and 3 threads (units, rows or columns: ThreadSplit), each with its own
    /// scratch, the products give the same numbers.
    @Test(arguments: constantWeightConvCases)
    func conv2dWithConstantWeights(_ c: OpCase) throws { #expect(try compiledVersusInterpreter(c) <= 1e-5) }

    @Test(arguments: constantWeightProductCases)
    func productsWithConstantWeights(_ c: OpCase) throws { #expect(try compiledVersusInterpreter(c) <= 1e-5) }

    /// Those cases do read B packed at compile time; a batch-1 product keeps its weights plain
    /// (it streams them).
    @Test func constantRightOperandsArePackedWhereTheGemmPacks() throws {
        for c in constantWeightProductCases {
            let g = Graph(seed: 1)
            let y = try c.build([try g.input("x0", shape: c.operands[0].shape)])
            let program = try KernelProgram.build(g, outputs: [("y", y.id)])
            #expect(program.kernels.contains { if case .gemmColumnPanels = $0.weightLayout { return true } else { return false } }, "\(c)")
        }
        let g = Graph(seed: 1)
        let y = try g.input("x", shape: [1, 300]).dense(weight: g.constant(.random(shape: [300, 200], seed: 2)))
        #expect(try KernelProgram.build(g, outputs: [("y", y.id)]).kernels.allSatisfy { $0.weightLayout == .plain })
    }

    @Test(arguments: [2, 3], matmulCases + denseCases + convCases + epilogueCases + constantWeightConvCases + constantWeightProductCases)
    func threaded(_ threads: Int, _ c: OpCase) throws { #expect(try compiledVersusInterpreter(c, threads: threads) <= 1e-5) }

    @Test(arguments: epilogueCases)
    func epilogue(_ c: OpCase) throws { #expect(try compiledVersusInterpreter(c) <= 1e-5) }

    /// A convolution split by units claims them from a counter at the start of its scratch,
    /// zeroed before every run: a second and third run (a counter left spent would skip every
    /// unit) give the interpreter's numbers too, and so does a pool of max pooling planes.
    @Test func unitsAreClaimedAfreshEachRun() throws {
        let g = Graph(seed: 2)
        let x = try g.input("x", shape: [6, 3, 20, 20])
        let y = try x.conv2d(weight: g.constant(.random(shape: [16, 3, 3, 3], seed: 3, in: -0.5...0.5)))
            .relu().maxPool2d(kernel: [2, 2], strides: [2, 2])
        let program = try KernelProgram.build(g, outputs: [("y", y.id)], threads: 2)
        let claiming = program.kernels.filter(\.claimsUnits)
        #expect(claiming.count >= 1)
        #expect(claiming.allSatisfy { ($0.scratch?.type.count ?? 0) >= 16 })
        let model = try g.compile(outputs: ["y": y], options: CompileOptions(threads: 2))
        let feeds = ["x": HostTensor.random(shape: [6, 3, 20, 20], seed: 4, in: -1...1)]
        let expected = try g.interpret(outputs: [("y", y)], feeds: feeds)["y"]!
        for _ in 0..<3 { #expect(relativeError(try model.run(feeds)["y"]!, expected) <= 1e-5) }
    }

    /// Rows and columns splits claim their threads' shares from a counter too: a dense layer split
    /// by columns and a batched matmul split by rows of each of its two products (one counter
    /// over both) give the interpreter's numbers on every run, on 3 threads.
    @Test func rowsAndColumnsAreClaimedAfreshEachRun() throws {
        let g = Graph(seed: 3)
        let x = try g.input("x", shape: [64, 300])
        let dense = try x.dense(weight: g.constant(.random(shape: [300, 256], seed: 5, in: -0.1...0.1)))
        let a = try g.input("a", shape: [2, 48, 64]), b = try g.input("b", shape: [2, 64, 40])
        let product = try a.matmul(b)
        let outputs = [("dense", dense.id), ("product", product.id)]
        let program = try KernelProgram.build(g, outputs: outputs, threads: 3)
        let splits = program.kernels.filter(\.claimsUnits).map(\.split)
        #expect(splits.contains { if case .columns = $0 { true } else { false } })
        #expect(splits.contains { if case .rows = $0 { true } else { false } })
        let model = try g.compile(outputs: ["dense": dense, "product": product], options: CompileOptions(threads: 3))
        let feeds = ["x": HostTensor.random(shape: [64, 300], seed: 6, in: -1...1), "a": HostTensor.random(shape: [2, 48, 64], seed: 7, in: -1...1),
                     "b": HostTensor.random(shape: [2, 64, 40], seed: 8, in: -1...1)]
        let expected = try g.interpret(outputs: [("dense", dense), ("product", product)], feeds: feeds)
        for _ in 0..<3 {
            let got = try model.run(feeds)
            #expect(relativeError(got["dense"]!, expected["dense"]!) <= 1e-5)
            #expect(relativeError(got["product"]!, expected["product"]!) <= 1e-5)
        }
    }

    @Test(arguments: denseCases)
    func dense(_ c: OpCase) throws { #expect(try compiledVersusInterpreter(c) <= 1e-5) }

    @Test(arguments: convCases)
    func conv2d(_ c: OpCase) throws { #expect(try compiledVersusInterpreter(c) <= 1e-5) }

    @Test(arguments: convTransposeCases)
    func convTranspose2d(_ c: OpCase) throws { #expect(try compiledVersusInterpreter(c) <= 1e-5) }
}
