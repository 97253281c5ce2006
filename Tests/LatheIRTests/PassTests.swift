import LatheIR
import LathePasses
import Testing

/// Golden IR text before and after each pass, and the values unchanged.
@Suite("Passes: golden IR before and after")
struct PassTests {
    func at(_ line: Int) -> LatheIR.SourceLocation { LatheIR.SourceLocation(fileID: "M/net.swift", line: line) }

    func constant(_ g: Graph, _ shape: [Int], _ values: [Float], _ name: String) throws -> ValueID {
        g.addConstant(try HostTensor(shape: shape, scalars: values), name: name)
    }

    /// Runs a pass and checks the text after it and that the outputs compute the same values.
    func check(_ pass: any GraphPass, _ g: Graph, _ outputs: [ValueID], after expected: String, feeds: [String: HostTensor]) throws {
        let (result, newOutputs) = try pass.run(g, outputs: outputs)
        #expect(result.text(outputs: newOutputs.enumerated().map { ("y\($0.offset)", $0.element) }) == expected)
        try expectSameValues(g, outputs, result, newOutputs, feeds: feeds)
        try Verifier().check(result, outputs: newOutputs)
    }

    /// The rewritten graph computes what the original did, to 1e-5 relative.
    func expectSameValues(_ g: Graph, _ outputs: [ValueID], _ result: Graph, _ newOutputs: [ValueID], feeds: [String: HostTensor]) throws {
        let before = try Interpreter.run(g, outputs: outputs, feeds: feeds)
        let afterValues = try Interpreter.run(result, outputs: newOutputs, feeds: feeds)
        for (a, b) in zip(before, afterValues) {
            #expect(a.shape == b.shape)
            for (p, q) in zip(a.scalars, b.scalars) { #expect(abs(p - q) <= 1e-5 * max(1, abs(p))) }
        }
    }

    @Test func constantFolding() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [3], location: at(1))
        let a = try constant(g, [3], [1, 2, 3], "a")
        let b = try constant(g, [], [2], "b")
        let ab = try g.addNode(.binary(.mul), [a, b], name: "ab", location: at(2))
        let e = try g.addNode(.unary(.exp), [ab], name: "e", location: at(3))
        let y = try g.addNode(.binary(.add), [x, e], name: "y", location: at(4))
        #expect(g.text() == """
            %0 = input {name="x"} : f32[3]  # x  (M/net.swift:1)
            %1 = constant {slot=0} : f32[3]  # a
            %2 = constant {slot=1} : f32[]  # b
            %3 = mul(%1, %2) : f32[3]  # ab  (M/net.swift:2)
            %4 = exp(%3) : f32[3]  # e  (M/net.swift:3)
            %5 = add(%0, %4) : f32[3]  # y  (M/net.swift:4)

            """)
        try check(ConstantFolding(), g, [y], after: """
            %0 = input {name="x"} : f32[3]  # x  (M/net.swift:1)
            %1 = constant {slot=0} : f32[3]  # a
            %2 = constant {slot=1} : f32[]  # b
            %3 = constant {slot=2} : f32[3]  # ab  (M/net.swift:2)
            %4 = constant {slot=3} : f32[3]  # e  (M/net.swift:3)
            %5 = add(%0, %4) : f32[3]  # y  (M/net.swift:4)
            output "y0" = %5

            """, feeds: ["x": HostTensor.random(shape: [3], seed: 1)])
    }

    @Test func deadCodeKeepsInputsAndWhatOutputsNeed() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [4])
        _ = try g.addInput(name: "unused", shape: [2])
        let dead = try g.addNode(.unary(.exp), [x], name: "dead")
        _ = try g.addNode(.unary(.neg), [dead], name: "dead_too")
        let y = try g.addNode(.unary(.relu), [x], name: "y")
        try check(DeadCodeElimination(), g, [y], after: """
            %0 = input {name="x"} : f32[4]  # x
            %1 = input {name="unused"} : f32[2]  # unused
            %2 = relu(%0) : f32[4]  # y
            output "y0" = %2

            """, feeds: ["x": HostTensor.random(shape: [4], seed: 2), "unused": HostTensor(shape: [2])])
    }

    @Test func commonSubexpressionsAndEqualSmallConstantsMerge() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [4])
        let one = try constant(g, [], [1], "one")
        let alsoOne = try constant(g, [], [1], "also_one")
        let a = try g.addNode(.binary(.add), [x, one], name: "a")
        let b = try g.addNode(.binary(.add), [x, alsoOne], name: "b")
        let y = try g.addNode(.binary(.mul), [a, b], name: "y")
        try check(CommonSubexpressionElimination(), g, [y], after: """
            %0 = input {name="x"} : f32[4]  # x
            %1 = constant {slot=0} : f32[]  # one
            %2 = add(%0, %1) : f32[4]  # a
            %3 = mul(%2, %2) : f32[4]  # y
            output "y0" = %3

            """, feeds: ["x": HostTensor.random(shape: [4], seed: 3)])
    }

    @Test func identitiesDisappearAndReshapeChainsCollapse() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [2, 3, 4])
        let d = try g.addNode(.dropout(rate: 0.5), [x], name: "drop")
        let t = try g.addNode(.transpose(perm: [0, 1, 2]), [d], name: "same_order")
        let s = try g.addNode(.slice(starts: [0, 0, 0], ends: [2, 3, 4], steps: [1, 1, 1]), [t], name: "everything")
        let r1 = try g.addNode(.reshape(shape: [6, 4]), [s], name: "r1")
        let r2 = try g.addNode(.reshape(shape: [24]), [r1], name: "r2")
        let r3 = try g.addNode(.reshape(shape: [24]), [r2], name: "r3")
        try check(IdentityRemoval(), g, [r3], after: """
            %0 = input {name="x"} : f32[2, 3, 4]  # x
            %1 = reshape(%0) {shape=[6,4]} : f32[6, 4]  # r1
            %2 = reshape(%0) {shape=[24]} : f32[24]  # r2
            output "y0" = %2

            """, feeds: ["x": HostTensor.random(shape: [2, 3, 4], seed: 4)])
    }

    /// Pools whose window is the whole unpadded plane become a global average and a max
    /// reduction; a padded one, and one of a smaller window, stay pools.
    @Test func poolsOverWholePlanesBecomeReductions() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [2, 3, 5, 4], location: at(1))
        let avg = try g.addNode(.pool2d(Pool2DAttributes(kind: .average, kernel: [5, 4], strides: [1, 1])), [x], name: "avg", location: at(2))
        let max = try g.addNode(.pool2d(Pool2DAttributes(kind: .max, kernel: [5, 4], strides: [5, 4])), [x], name: "max", location: at(3))
        let padded = try g.addNode(.pool2d(Pool2DAttributes(kind: .average, kernel: [5, 4], strides: [1, 1], pads: [1, 0, 0, 0])), [x], name: "padded")
        let smaller = try g.addNode(.pool2d(Pool2DAttributes(kind: .max, kernel: [5, 3], strides: [1, 1])), [x], name: "smaller")
        try check(WholePlanePooling(), g, [avg, max, padded, smaller], after: """
            %0 = input {name="x"} : f32[2, 3, 5, 4]  # x  (M/net.swift:1)
            %1 = global_avg_pool(%0) : f32[2, 3, 1, 1]  # avg  (M/net.swift:2)
            %2 = reduce_max(%0) {axes=[2,3], keep_dims=true} : f32[2, 3, 1, 1]  # max  (M/net.swift:3)
            %3 = avg_pool2d(%0) {kernel=[5,4], strides=[1,1], pads=[1,0,0,0], count_include_pad=false} : f32[2, 3, 2, 1]  # padded
            %4 = max_pool2d(%0) {kernel=[5,3], strides=[1,1], pads=[0,0,0,0]} : f32[2, 3, 1, 2]  # smaller
            output "y0" = %1
            output "y1" = %2
            output "y2" = %3
            output "y3" = %4

            """, feeds: ["x": HostTensor.random(shape: [2, 3, 5, 4], seed: 5)])
    }

    /// The decomposition older ONNX exporters write (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt,
    /// Div, Mul, Add) becomes one layer_norm (the constants it no longer reads are left for
    /// dead-code elimination); the same with the centered value read elsewhere stays as it is.
    @Test func layerNormWrittenInOpsBecomesOneNode() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [2, 3, 6], location: at(1))
        let mean = try g.addNode(.reduce(.mean, axes: [2], keepDims: true), [x], name: "mean")
        let centered = try g.addNode(.binary(.sub), [x, mean], name: "centered")
        let two = try constant(g, [], [2], "two")
        let squared = try g.addNode(.binary(.pow), [centered, two], name: "squared")
        let variance = try g.addNode(.reduce(.mean, axes: [2], keepDims: true), [squared], name: "variance")
        let eps = try constant(g, [], [1e-5], "eps")
        let shifted = try g.addNode(.binary(.add), [variance, eps], name: "shifted")
        let deviation = try g.addNode(.unary(.sqrt), [shifted], name: "deviation")
        let normalized = try g.addNode(.binary(.div), [centered, deviation], name: "normalized")
        let gamma = try constant(g, [6], [1, 2, 3, 4, 5, 6], "gamma")
        let scaled = try g.addNode(.binary(.mul), [normalized, gamma], name: "scaled")
        let beta = try constant(g, [6], [0, 0.5, -0.5, 1, -1, 2], "beta")
        let y = try g.addNode(.binary(.add), [scaled, beta], name: "ln", location: at(9))
        let feeds = ["x": HostTensor.random(shape: [2, 3, 6], seed: 9, in: -3...5)]
        try check(LayerNormFusion(), g, [y], after: """
            %0 = input {name="x"} : f32[2, 3, 6]  # x  (M/net.swift:1)
            %1 = constant {slot=0} : f32[]  # two
            %2 = constant {slot=1} : f32[]  # eps
            %3 = constant {slot=2} : f32[6]  # gamma
            %4 = constant {slot=3} : f32[6]  # beta
            %5 = layer_norm(%0, %3, %4) {axis=2, epsilon=1e-05} : f32[2, 3, 6]  # ln  (M/net.swift:9)
            output "y0" = %5

            """, feeds: feeds)

        let alsoCentered = try g.addNode(.unary(.abs), [centered], name: "also_reads_centered")
        let (kept, _) = try LayerNormFusion().run(g, outputs: [y, alsoCentered])
        #expect(!kept.nodes.contains { if case .layerNorm = $0.op { return true } else { return false } })
    }

    @Test func batchNormAndChannelMulAddFoldIntoTheConvolution() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [1, 2, 5, 5])
        let w = g.addConstant(HostTensor.random(shape: [3, 2, 3, 3], seed: 5), name: "w")
        let b = try constant(g, [3], [0.1, -0.2, 0.3], "b")
        let conv = try g.addNode(.conv2d(Conv2DAttributes(pads: [1, 1, 1, 1])), [x, w, b], name: "conv", location: at(7))
        let values: [(String, [Float])] = [("scale", [1.5, 0.5, 2]), ("shift", [0, 1, -1]), ("mean", [0.2, 0.1, 0]), ("var", [1, 4, 0.25])]
        let params = try values.map {
            try constant(g, [3], $0.1, $0.0)
        }
        let bn = try g.addNode(.batchNorm(epsilon: 1e-5), [conv] + params, name: "bn")
        let scale = try constant(g, [3, 1, 1], [2, 3, 4], "per_channel")
        let scaled = try g.addNode(.binary(.mul), [bn, scale], name: "scaled")
        let y = try g.addNode(.unary(.relu), [scaled], name: "y")
        let folded = try BatchNormFolding().run(g, outputs: [y])
        let (result, outputs) = try DeadCodeElimination().run(folded.graph, outputs: folded.outputs)
        #expect(result.text(outputs: [("y0", outputs[0])]) == """
            %0 = input {name="x"} : f32[1, 2, 5, 5]  # x
            %1 = constant {slot=0} : f32[3, 2, 3, 3]  # conv+bn+scaled.weight  (M/net.swift:7)
            %2 = constant {slot=1} : f32[3]  # conv+bn+scaled.bias  (M/net.swift:7)
            %3 = conv2d(%0, %1, %2) {strides=[1,1], pads=[1,1,1,1], dilations=[1,1], groups=1} : f32[1, 3, 5, 5]  # conv+bn+scaled  (M/net.swift:7)
            %4 = relu(%3) : f32[1, 3, 5, 5]  # y
            output "y0" = %4

            """)
        let feeds = ["x": HostTensor.random(shape: [1, 2, 5, 5], seed: 6)]
        try expectSameValues(g, [y], result, outputs, feeds: feeds)
    }

    @Test func aLayerWithTwoReadersIsNotFolded() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [2, 3])
        let w = g.addConstant(HostTensor.random(shape: [3, 2], seed: 7), name: "w")
        let d = try g.addNode(.dense, [x, w], name: "d")
        let c = try constant(g, [2], [2, 3], "c")
        let m = try g.addNode(.binary(.mul), [d, c], name: "m")
        let y = try g.addNode(.binary(.add), [m, d], name: "y")
        let (result, _) = try BatchNormFolding().run(g, outputs: [y])
        #expect(result.text() == g.text())
    }

    @Test func elementwiseChainsAndTreesFuseIntoOneLoop() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [2, 3])
        let z = try g.addInput(name: "z", shape: [2, 3])
        let bias = try constant(g, [3], [1, 2, 3], "bias")
        let a = try g.addNode(.binary(.add), [x, bias], name: "a")
        let r = try g.addNode(.unary(.relu), [a], name: "r")
        let e = try g.addNode(.unary(.exp), [z], name: "e")
        let m = try g.addNode(.binary(.mul), [r, e], name: "m")
        let s = try g.addNode(.unary(.sigmoid), [m], name: "s")
        let shared = try g.addNode(.unary(.neg), [x], name: "shared")
        let y2 = try g.addNode(.binary(.add), [shared, shared], name: "twice")
        let remarks = RemarkLog()
        let fused = try ElementwiseFusion().run(g, outputs: [s, y2], remarks: remarks)
        let (result, outputs) = try DeadCodeElimination().run(fused.graph, outputs: fused.outputs)
        #expect(result.text(outputs: [("y0", outputs[0]), ("y1", outputs[1])]) == """
            %0 = input {name="x"} : f32[2, 3]  # x
            %1 = input {name="z"} : f32[2, 3]  # z
            %2 = constant {slot=0} : f32[3]  # bias
            %3 = fused_elementwise(%0, %2, %1) {1 / (1 + exp(-(max($0 + $1, 0) * exp($2))))} : f32[2, 3]  # s
            %4 = neg(%0) : f32[2, 3]  # shared
            %5 = add(%4, %4) : f32[2, 3]  # twice
            output "y0" = %3
            output "y1" = %5

            """)
        #expect(remarks.fusions == [RemarkLog.Fusion(kind: "elementwise", nodes: ["a", "r", "e", "m", "s"])])
        #expect(remarks.refusals == [RemarkLog.Refusal(candidate: "shared into twice", reason: "shared has 2 readers")])
        let feeds = ["x": HostTensor.random(shape: [2, 3], seed: 8), "z": HostTensor.random(shape: [2, 3], seed: 9)]
        let want = try Interpreter.run(g, outputs: [s, y2], feeds: feeds), got = try Interpreter.run(result, outputs: outputs, feeds: feeds)
        for (a, b) in zip(want, got) { for (p, q) in zip(a.scalars, b.scalars) { #expect(abs(p - q) <= 1e-6) } }
    }

    @Test func activationAndResidualMoveIntoTheConvolution() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [1, 2, 4, 4])
        let skip = try g.addInput(name: "skip", shape: [1, 3, 4, 4])
        let w = g.addConstant(HostTensor.random(shape: [3, 2, 3, 3], seed: 10), name: "w")
        let conv = try g.addNode(.conv2d(Conv2DAttributes(pads: [1, 1, 1, 1])), [x, w], name: "conv")
        let half = try constant(g, [], [0.5], "half")
        let sum = try g.addNode(.binary(.add), [conv, skip], name: "sum")
        let scaled = try g.addNode(.binary(.mul), [sum, half], name: "scaled")
        let y = try g.addNode(.unary(.relu), [scaled], name: "y")
        let remarks = RemarkLog()
        var step = try ElementwiseFusion().run(g, outputs: [y], remarks: remarks)
        step = try EpilogueFusion().run(step.graph, outputs: step.outputs, remarks: remarks)
        let (result, outputs) = try DeadCodeElimination().run(step.graph, outputs: step.outputs)
        #expect(result.text(outputs: [("y0", outputs[0])]) == """
            %0 = input {name="x"} : f32[1, 2, 4, 4]  # x
            %1 = input {name="skip"} : f32[1, 3, 4, 4]  # skip
            %2 = constant {slot=0} : f32[3, 2, 3, 3]  # w
            %3 = conv2d_epilogue(%0, %2, %1) {strides=[1,1], pads=[1,1,1,1], dilations=[1,1], groups=1, epilogue=max(($0 + $1) * 0.5, 0)} : f32[1, 3, 4, 4]  # y
            output "y0" = %3

            """)
        #expect(remarks.fusions.map(\.kind) == ["elementwise", "epilogue"])
        #expect(result[outputs[0]].sourceOps == ["conv2d", "add", "mul", "relu"])
        let feeds = ["x": HostTensor.random(shape: [1, 2, 4, 4], seed: 11), "skip": HostTensor.random(shape: [1, 3, 4, 4], seed: 12)]
        try expectSameValues(g, [y], result, outputs, feeds: feeds)
    }

    /// A MatMul followed by a bias Add (the ONNX export of a linear layer on [batch, time,
    /// features]) takes the bias into its epilogue, read at each result's column.
    @Test func biasAfterMatMulMovesIntoTheMatMul() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [2, 5, 7])
        let w = g.addConstant(HostTensor.random(shape: [7, 9], seed: 14), name: "w")
        let b = g.addConstant(HostTensor.random(shape: [9], seed: 15), name: "b")
        let mm = try g.addNode(.matmul, [x, w], name: "mm")
        let biased = try g.addNode(.binary(.add), [mm, b], name: "biased")
        let y = try g.addNode(.unary(.relu), [biased], name: "y")
        var step = try ElementwiseFusion().run(g, outputs: [y])
        step = try EpilogueFusion().run(step.graph, outputs: step.outputs)
        let (result, outputs) = try DeadCodeElimination().run(step.graph, outputs: step.outputs)
        #expect(result.text(outputs: [("y0", outputs[0])]) == """
            %0 = input {name="x"} : f32[2, 5, 7]  # x
            %1 = constant {slot=0} : f32[7, 9]  # w
            %2 = constant {slot=1} : f32[9]  # b
            %3 = matmul_epilogue(%0, %1, %2) {epilogue=max($0 + $1, 0)} : f32[2, 5, 9]  # y
            output "y0" = %3

            """)
        #expect(result[outputs[0]].sourceOps == ["matmul", "add", "relu"])
        let feeds = ["x": HostTensor.random(shape: [2, 5, 7], seed: 16)]
        try expectSameValues(g, [y], result, outputs, feeds: feeds)
    }

    /// A fused node records the ops it holds as it is made, also when an epilogue grows one
    /// absorption at a time (a bias Add, then an activation): `lathe inspect` and the plan read
    /// them from the node, not from the names in the remarks.
    @Test func aFusedNodeRecordsTheOpsItHolds() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [4, 6])
        let w = g.addConstant(HostTensor.random(shape: [6, 8], seed: 17), name: "w")
        let b = g.addConstant(HostTensor.random(shape: [8], seed: 18), name: "b")
        let mm = try g.addNode(.matmul, [x, w], name: "mm")
        let biased = try g.addNode(.binary(.add), [mm, b], name: "biased")
        let y = try g.addNode(.unary(.tanh), [biased], name: "y")
        #expect(g[y].sourceOps == ["tanh"])
        let (result, outputs) = try EpilogueFusion().run(g, outputs: [y])
        #expect(result[outputs[0]].sourceOps == ["matmul", "add", "tanh"])
        let (rewritten, kept) = try DeadCodeElimination().run(result, outputs: outputs)
        #expect(rewritten[kept[0]].sourceOps == ["matmul", "add", "tanh"], "a pass that copies the node keeps them")
    }

    /// A residual Add of two convolutions (MobileNet v2's blocks: the block's input is a
    /// convolution that the next block reads too) moves into the one read only by the Add.
    @Test func aResidualAddMovesIntoTheConvolutionReadOnlyThere() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [1, 2, 3, 3])
        let w1 = g.addConstant(HostTensor.random(shape: [2, 2, 1, 1], seed: 17), name: "w1")
        let w2 = g.addConstant(HostTensor.random(shape: [2, 2, 1, 1], seed: 18), name: "w2")
        let block = try g.addNode(.conv2d(Conv2DAttributes()), [x, w1], name: "block")
        let inner = try g.addNode(.conv2d(Conv2DAttributes()), [block, w2], name: "inner")
        let y = try g.addNode(.binary(.add), [block, inner], name: "y")
        let step = try EpilogueFusion().run(g, outputs: [y])
        let (result, outputs) = try DeadCodeElimination().run(step.graph, outputs: step.outputs)
        #expect(result.text(outputs: [("y0", outputs[0])]) == """
            %0 = input {name="x"} : f32[1, 2, 3, 3]  # x
            %1 = constant {slot=0} : f32[2, 2, 1, 1]  # w1
            %2 = constant {slot=1} : f32[2, 2, 1, 1]  # w2
            %3 = conv2d(%0, %1) {strides=[1,1], pads=[0,0,0,0], dilations=[1,1], groups=1} : f32[1, 2, 3, 3]  # block
            %4 = conv2d_epilogue(%3, %2, %3) {strides=[1,1], pads=[0,0,0,0], dilations=[1,1], groups=1, epilogue=$1 + $0} : f32[1, 2, 3, 3]  # y
            output "y0" = %4

            """)
        try expectSameValues(g, [y], result, outputs, feeds: ["x": HostTensor.random(shape: [1, 2, 3, 3], seed: 19)])
    }

    @Test func aContractionReadTwiceKeepsItsResult() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [2, 3])
        let w = g.addConstant(HostTensor.random(shape: [3, 3], seed: 13), name: "w")
        let d = try g.addNode(.dense, [x, w], name: "d")
        let r = try g.addNode(.unary(.relu), [d], name: "r")
        let y = try g.addNode(.binary(.add), [r, d], name: "y")
        let remarks = RemarkLog()
        let (result, _) = try EpilogueFusion().run(g, outputs: [y], remarks: remarks)
        #expect(result.text() == g.text())
        #expect(remarks.refusals.first == RemarkLog.Refusal(candidate: "d into r", reason: "d has 2 readers"))
    }

    /// A first layer's convolution, with its ReLU, takes the max pool after it; a wider layer,
    /// and a first layer read by more than its pool, keep theirs.
    @Test func aFirstLayersPoolMovesIntoItsConvolution() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [2, 1, 6, 7])
        let w = g.addConstant(HostTensor.random(shape: [6, 1, 3, 3], seed: 20), name: "w")
        let b = g.addConstant(HostTensor.random(shape: [6], seed: 21), name: "b")
        let conv = try g.addNode(.conv2d(Conv2DAttributes(pads: [1, 1, 1, 1])), [x, w, b], name: "conv")
        let relu = try g.addNode(.unary(.relu), [conv], name: "relu")
        let pool = try g.addNode(.pool2d(Pool2DAttributes(kind: .max, kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0])), [relu], name: "pool")
        let w2 = g.addConstant(HostTensor.random(shape: [5, 6, 1, 1], seed: 22), name: "w2")
        let wide = try g.addNode(.conv2d(Conv2DAttributes()), [pool, w2], name: "wide")
        let widePool = try g.addNode(.pool2d(Pool2DAttributes(kind: .average, kernel: [3, 3], strides: [1, 1], pads: [0, 0, 0, 0])), [wide], name: "wide_pool")
        let w3 = g.addConstant(HostTensor.random(shape: [2, 1, 2, 2], seed: 23), name: "w3")
        let shared = try g.addNode(.conv2d(Conv2DAttributes()), [x, w3], name: "shared")
        let sharedPool = try g.addNode(.pool2d(Pool2DAttributes(kind: .max, kernel: [2, 2], strides: [1, 1], pads: [0, 0, 0, 0])), [shared], name: "shared_pool")
        let remarks = RemarkLog()
        let outputs = [widePool, sharedPool, shared]
        var step = try EpilogueFusion().run(g, outputs: outputs, remarks: remarks)
        step = try ConvPoolFusion().run(step.graph, outputs: step.outputs, remarks: remarks)
        let (result, newOutputs) = try DeadCodeElimination().run(step.graph, outputs: step.outputs)
        #expect(result.text(outputs: newOutputs.enumerated().map { ("y\($0.offset)", $0.element) }) == """
            %0  = input {name="x"} : f32[2, 1, 6, 7]  # x
            %1  = constant {slot=0} : f32[6, 1, 3, 3]  # w
            %2  = constant {slot=1} : f32[6]  # b
            %3  = conv2d_epilogue_max_pool2d(%0, %1, %2) {strides=[1,1], pads=[1,1,1,1], dilations=[1,1], groups=1, epilogue=max($0, 0), pool=max_pool2d(kernel=[2,2], strides=[2,2], pads=[0,0,0,0])} : f32[2, 6, 3, 3]  # pool
            %4  = constant {slot=2} : f32[5, 6, 1, 1]  # w2
            %5  = conv2d(%3, %4) {strides=[1,1], pads=[0,0,0,0], dilations=[1,1], groups=1} : f32[2, 5, 3, 3]  # wide
            %6  = avg_pool2d(%5) {kernel=[3,3], strides=[1,1], pads=[0,0,0,0], count_include_pad=false} : f32[2, 5, 1, 1]  # wide_pool
            %7  = constant {slot=3} : f32[2, 1, 2, 2]  # w3
            %8  = conv2d(%0, %7) {strides=[1,1], pads=[0,0,0,0], dilations=[1,1], groups=1} : f32[2, 2, 5, 6]  # shared
            %9  = max_pool2d(%8) {kernel=[2,2], strides=[1,1], pads=[0,0,0,0]} : f32[2, 2, 4, 5]  # shared_pool
            output "y0" = %6
            output "y1" = %9
            output "y2" = %8

            """)
        #expect(remarks.fusions.map(\.kind) == ["epilogue", "pool"])
        #expect(result[newOutputs[0]].sourceOps == ["avg_pool2d"])
        #expect(result.nodes[3].sourceOps == ["conv2d", "relu", "max_pool2d"])
        #expect(remarks.refusals == [
            RemarkLog.Refusal(candidate: "wide into wide_pool", reason: "it is not a first layer (one group, at most 4 input channels)"),
            RemarkLog.Refusal(candidate: "shared into shared_pool", reason: "its result is read elsewhere"),
        ])
        try expectSameValues(g, outputs, result, newOutputs, feeds: ["x": HostTensor.random(shape: [2, 1, 6, 7], seed: 24)])
        try Verifier().check(result, outputs: newOutputs)
    }

    @Test func theWholePipelineAndAfter() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [2, 3])
        let y = try g.addNode(.dropout(rate: 0.1), [x], name: "y")
        #expect(throws: LatheError.self) { try Pipeline.run(g, outputs: [y], after: "no-such-pass") }
        let (result, outputs) = try Pipeline.run(g, outputs: [y])
        #expect(outputs == [ValueID(0)])
        #expect(result.nodes.count == 1)
        #expect(Set(Pipeline.passes.map(\.name)).count == 11)
    }
}
