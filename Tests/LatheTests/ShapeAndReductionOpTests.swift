import Lathe
import Testing

let poolCases: [OpCase] = [
    ([1, 32, 26, 26], PoolKind.max, [2, 2], [2, 2], [0, 0, 0, 0], false),
    ([2, 3, 7, 9], .max, [3, 3], [1, 1], [1, 1, 1, 1], false),
    ([2, 3, 7, 9], .average, [3, 3], [1, 1], [1, 1, 1, 1], false),
    ([1, 5, 11, 10], .average, [3, 3], [2, 2], [1, 1, 1, 1], true),
    ([1, 4, 13, 13], .average, [2, 2], [2, 2], [0, 0, 0, 0], false),
    ([3, 2, 9, 5], .max, [3, 2], [2, 1], [1, 0, 1, 1], false),
    // Horizontal stride 1 or 2: vectors of the outputs whose taps miss the padding, the others
    // one at a time (rows wide enough for two 16-float vectors).
    ([1, 3, 27, 27], .max, [3, 3], [2, 2], [0, 0, 0, 0], false),
    ([2, 2, 9, 45], .average, [2, 3], [1, 2], [0, 0, 0, 0], false),
    ([1, 2, 6, 40], .max, [3, 3], [1, 1], [0, 0, 0, 0], false),
    ([1, 2, 8, 37], .average, [2, 4], [3, 1], [0, 0, 0, 0], false),
    ([1, 3, 35, 75], .max, [3, 3], [2, 2], [1, 1, 1, 1], false),
    ([1, 2, 21, 71], .average, [3, 3], [2, 2], [1, 1, 1, 1], true),
    ([2, 2, 9, 43], .average, [3, 3], [1, 1], [1, 1, 1, 1], false),
    ([1, 2, 10, 38], .max, [2, 3], [1, 2], [0, 2, 1, 1], false),
    // Stride 2, rows reduced first: windows 1, 2 and 3 wide.
    ([1, 2, 9, 70], .max, [3, 1], [2, 2], [0, 0, 0, 0], false),
    ([1, 3, 13, 67], .average, [3, 3], [2, 2], [0, 0, 0, 0], false),
    ([2, 2, 8, 69], .max, [1, 2], [1, 2], [0, 0, 0, 0], false),
    // Rows of fewer outputs than a vector: one masked vector a row (the Keras CNN's second pool;
    // 15 outputs fill no 16-float vector).
    ([2, 8, 11, 11], .max, [2, 2], [2, 2], [0, 0, 0, 0], false),
    ([1, 2, 5, 17], .max, [3, 3], [1, 1], [0, 0, 0, 0], false),
    ([1, 3, 9, 9], .average, [3, 3], [2, 2], [1, 1, 1, 1], false),
].map { shape, kind, kernel, strides, pads, include in
    OpCase("\(kind) pool \(shape) k\(kernel) s\(strides) p\(pads)\(include ? " include-pad" : "")", [Operand(shape: shape)]) { x in
        try x[0].apply(.pool2d(Pool2DAttributes(kind: kind, kernel: kernel, strides: strides, pads: pads, countIncludePad: include)), [], .unknown)
    }
} + [PoolKind.max, .average].map { kind in
    OpCase("\(kind) pool dilated [1,3,11,12] k[3,2] d[2,3] p[2,1,2,1]", [Operand(shape: [1, 3, 11, 12])]) { x in
        try x[0].apply(.pool2d(Pool2DAttributes(kind: kind, kernel: [3, 2], strides: [1, 2], pads: [2, 1, 2, 1], dilations: [2, 3])), [], .unknown)
    }
}

let shapeCases: [OpCase] = [
    OpCase("global avg pool [2,3,7,5]", [Operand(shape: [2, 3, 7, 5])]) { x in try x[0].globalAvgPool() },
    OpCase("global avg pool [1,17,9,9]", [Operand(shape: [1, 17, 9, 9])]) { x in try x[0].globalAvgPool() },
    OpCase("reshape [6,35] -> [5,42]", [Operand(shape: [6, 35])]) { x in try x[0].reshaped([5, -1]) },
    OpCase("flatten axis 0", [Operand(shape: [2, 3, 5])]) { x in try x[0].flattened(axis: 0) },
    OpCase("flatten axis 2", [Operand(shape: [2, 3, 5, 7])]) { x in try x[0].flattened(axis: 2) },
    OpCase("transpose [1,0]", [Operand(shape: [9, 17])]) { x in try x[0].transposed() },
    OpCase("transpose [0,2,3,1]", [Operand(shape: [2, 3, 5, 7])]) { x in try x[0].transposed([0, 2, 3, 1]) },
    OpCase("transpose [2,0,1]", [Operand(shape: [3, 11, 4])]) { x in try x[0].transposed([2, 0, 1]) },
    OpCase("concat axis 0", [Operand(shape: [2, 9]), Operand(shape: [5, 9])]) { x in try concat(x, axis: 0) },
    OpCase("concat axis 1 of 3", [Operand(shape: [2, 3, 5]), Operand(shape: [2, 1, 5]), Operand(shape: [2, 7, 5])]) { x in try concat(x, axis: 1) },
    OpCase("concat axis -1", [Operand(shape: [3, 4, 9]), Operand(shape: [3, 4, 17])]) { x in try concat(x, axis: -1) },
    OpCase("slice steps", [Operand(shape: [7, 20])]) { x in try x[0].sliced(axes: [0, 1], starts: [1, 2], ends: [6, 19], steps: [2, 3]) },
    OpCase("slice negative", [Operand(shape: [4, 5, 33])]) { x in try x[0].sliced(axes: [2], starts: [-20], ends: [100]) },
    OpCase("softmax last axis", [Operand(shape: [5, 10], range: -20...20)]) { x in try x[0].softmax() },
    OpCase("softmax axis 1 of 3", [Operand(shape: [2, 7, 9])]) { x in try x[0].softmax(axis: 1) },
    OpCase("softmax axis 0", [Operand(shape: [13, 3])]) { x in try x[0].softmax(axis: 0) },
    OpCase("log softmax last axis", [Operand(shape: [4, 33], range: -20...20)]) { x in try x[0].logSoftmax() },
    OpCase("log softmax axis 1", [Operand(shape: [3, 5, 2])]) { x in try x[0].logSoftmax(axis: 1) },
    OpCase("softmax rows of 1003", [Operand(shape: [3, 1003], range: -30...30)]) { x in try x[0].softmax() },
    OpCase("softmax axis 1 of [2,19,1]", [Operand(shape: [2, 19, 1])]) { x in try x[0].softmax(axis: 1) },
    OpCase("log softmax rows of 7", [Operand(shape: [5, 7], range: -20...20)]) { x in try x[0].logSoftmax() },
    OpCase("layer norm [3,17] + scale, bias", [Operand(shape: [3, 17], range: 10...14), Operand(shape: [17]), Operand(shape: [17])]) { x in
        try x[0].apply(.layerNorm(axis: 1, epsilon: 1e-5), [x[1], x[2]], .unknown)
    },
    OpCase("layer norm [2,5,33] over the last axis, no bias", [Operand(shape: [2, 5, 33]), Operand(shape: [33])]) { x in
        try x[0].apply(.layerNorm(axis: 2, epsilon: 1e-3), [x[1]], .unknown)
    },
    OpCase("layer norm [2,3,4,5] over axes 1..., scale [1,3,4,5], one-element bias",
           [Operand(shape: [2, 3, 4, 5]), Operand(shape: [1, 3, 4, 5]), Operand(shape: [1])]) { x in
        try x[0].apply(.layerNorm(axis: 1, epsilon: 1e-5), [x[1], x[2]], .unknown)
    },
    OpCase("lrn size 5", [Operand(shape: [2, 7, 3, 5])]) { x in try x[0].apply(.lrn(size: 5, alpha: 1e-4, beta: 0.75, bias: 1), [], .unknown) },
    OpCase("lrn size 4 large alpha", [Operand(shape: [1, 6, 9])]) { x in try x[0].apply(.lrn(size: 4, alpha: 0.5, beta: 0.6, bias: 2), [], .unknown) },
    OpCase("gather rows", [Operand(shape: [10, 7]), Operand(shape: [4, 3], range: -3...12)]) { x in try x[0].apply(.gather(axis: 0), [x[1]], .unknown) },
    OpCase("gather axis 1", [Operand(shape: [2, 5, 9]), Operand(shape: [6], range: -5...5)]) { x in try x[0].apply(.gather(axis: 1), [x[1]], .unknown) },
    OpCase("gather last axis", [Operand(shape: [3, 17]), Operand(shape: [2, 2], range: 0...16)]) { x in try x[0].apply(.gather(axis: 1), [x[1]], .unknown) },
    OpCase("pad", [Operand(shape: [2, 3, 5])]) { x in try x[0].apply(.pad(pads: [0, 1, 2, 1, 0, 3], value: 0.5), [], .unknown) },
    OpCase("pad one axis", [Operand(shape: [17])]) { x in try x[0].apply(.pad(pads: [4, 9], value: -1), [], .unknown) },
] + reductionCases

let reductionCases: [OpCase] = ReduceKind.allCases.flatMap { kind in
    [([5, 17], [1], false), ([5, 17], [0], true), ([4, 3, 7, 5], [0, 2, 3], false), ([3, 2, 40], [2], true), ([2, 5, 6, 7], [0, 2, 3], true), ([2, 3, 9, 4], [1, 3], false), ([2, 3, 9, 4], [0, 1, 2, 3], true), ([6, 11, 7], [2], true), ([33], [0], false)]
        .map { shape, axes, keep in
            OpCase("reduce_\(kind.rawValue) \(shape) axes \(axes) keep \(keep)", [Operand(shape: shape)]) { x in
                try x[0].apply(.reduce(kind, axes: axes, keepDims: keep), [], .unknown)
            }
        }
}

@Suite("Pooling, shape ops, softmax and reductions: JIT against the interpreter")
struct ShapeAndReductionOpTests {
    @Test(arguments: poolCases)
    func pool(_ c: OpCase) throws { #expect(try compiledVersusInterpreter(c) <= 1e-5) }

    /// A max pool's window with a NaN gives NaN, as `maximum` does, on every path: the stride-2
    /// vectors (MAXPS, rechecked for NaNs), the stride-1 ones and the padded edges one at a time.
    @Test(arguments: [([1, 2, 9, 70], [2, 2], [0, 0, 0, 0]), ([1, 2, 8, 40], [1, 1], [1, 1, 1, 1])])
    func maxPoolPropagatesNaN(_ shape: [Int], _ strides: [Int], _ pads: [Int]) throws {
        let g = Graph()
        let x = try g.input("x", shape: shape)
        let model = try g.compile(outputs: ["y": try x.maxPool2d(kernel: [3, 3], strides: strides, pads: pads)])
        var xs = HostTensor(shape: shape, repeating: 1)
        let (h, w) = (shape[2], shape[3])
        // Each corner of each window position, and the last column (the odd lane of a stride-2 row).
        let nans = [(0, 0, 5), (0, 4, 33), (1, h - 1, w - 1), (1, 3, 17)]
        for (c, y, x) in nans { xs.scalars[(c * h + y) * w + x] = .nan }
        let y = try model.run(["x": xs])["y"]!
        let (oh, ow) = (y.shape[2], y.shape[3])
        for c in 0..<shape[1] {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    let rows = (oy * strides[0] - pads[0])..<(oy * strides[0] - pads[0] + 3)
                    let columns = (ox * strides[1] - pads[1])..<(ox * strides[1] - pads[1] + 3)
                    let covered = nans.contains { $0.0 == c && rows.contains($0.1) && columns.contains($0.2) }
                    let value = y.scalars[(c * oh + oy) * ow + ox]
                    #expect(covered ? value.isNaN : value == 1, "channel \(c), output (\(oy), \(ox))")
                }
            }
        }
    }

    /// A first layer pooled in its kernel (fuse-conv-pool), image by image, on 1 to 3 threads:
    /// odd sizes, a padded and a stride-2 convolution (read in place), with and without an
    /// epilogue, max and average pools (padded too), batch 1.
    @Test(arguments: [1, 2, 3], [
        ([5, 3, 17, 19], [7, 3, 3, 3], [1, 1], [1, 1, 1, 1], true, Pool2DAttributes(kind: .max, kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0])),
        ([3, 1, 28, 28], [32, 1, 3, 3], [1, 1], [0, 0, 0, 0], true, Pool2DAttributes(kind: .max, kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0])),
        ([4, 2, 15, 13], [6, 2, 3, 3], [2, 2], [1, 1, 1, 1], false,
         Pool2DAttributes(kind: .average, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], countIncludePad: false)),
        ([1, 4, 9, 10], [5, 4, 2, 2], [1, 1], [0, 0, 0, 0], true, Pool2DAttributes(kind: .max, kernel: [3, 3], strides: [1, 1], pads: [0, 0, 0, 0])),
    ])
    func pooledConvolution(_ threads: Int, _ s: ([Int], [Int], [Int], [Int], Bool, Pool2DAttributes)) throws {
        let (input, weight, strides, pads, relu, pool) = s
        let c = OpCase("conv \(input) w\(weight) s\(strides) p\(pads) then \(pool.kind) pool k\(pool.kernel) s\(pool.strides)", [Operand(shape: input)]) { x in
            let w = x[0].graph.constant(.random(shape: weight, seed: 25, in: -1...1))
            let b = x[0].graph.constant(.random(shape: [weight[0]], seed: 26, in: -1...1))
            let conv = try x[0].conv2d(weight: w, bias: b, strides: strides, pads: pads)
            return try (relu ? conv.relu() : conv).apply(.pool2d(pool), [], .unknown)
        }
        #expect(try compiledVersusInterpreter(c, threads: threads) <= 1e-5)
        let g = Graph()
        let y = try c.build([g.input("x", shape: input)])
        let kernels = try Inspection(g, outputs: [("y", y.id)], threads: threads).kernels
        #expect(kernels.map(\.ops) == [["conv2d"] + (relu ? ["relu"] : []) + [Op.pool2d(pool).name]])
    }

    /// Pools large enough to split among threads, a run of planes each.
    @Test(arguments: [2, 3], [
        OpCase("max pool [4,32,64,64] k2 s2", [Operand(shape: [4, 32, 64, 64])]) { x in try x[0].maxPool2d(kernel: [2, 2], strides: [2, 2]) },
        OpCase("avg pool [3,7,60,60] k3 p1", [Operand(shape: [3, 7, 60, 60])]) { x in
            try x[0].avgPool2d(kernel: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1])
        },
    ])
    func threadedPool(_ threads: Int, _ c: OpCase) throws { #expect(try compiledVersusInterpreter(c, threads: threads) <= 1e-5) }

    /// Transposes, softmaxes and layer norms large enough to split among threads: rows of the first axis
    /// longer than 1 (after leading 1s), and an uneven last chunk.
    @Test(arguments: [2, 3], [
        OpCase("transpose [1,12,67,130] to [1,12,130,67]", [Operand(shape: [1, 12, 67, 130])]) { x in try x[0].transposed([0, 1, 3, 2]) },
        OpCase("transpose [1,1,13,5,1100] to [5,1,1100,13,1]", [Operand(shape: [1, 1, 13, 5, 1100])]) { x in try x[0].transposed([3, 0, 4, 2, 1]) },
        OpCase("softmax [1,7,129,100] axis 3", [Operand(shape: [1, 7, 129, 100])]) { x in try x[0].softmax(axis: 3) },
        OpCase("log softmax [13,65,101] axis 2", [Operand(shape: [13, 65, 101])]) { x in try x[0].apply(.logSoftmax(axis: 2), [], .unknown) },
        OpCase("layer norm [1,57,29,97] axis 3, scale and bias", [Operand(shape: [1, 57, 29, 97]), Operand(shape: [97]), Operand(shape: [97])]) { x in
            try x[0].apply(.layerNorm(axis: 3, epsilon: 1e-6), [x[1], x[2]], .unknown)
        },
        OpCase("layer norm [3,301,250] axis 1, scale only", [Operand(shape: [3, 301, 250]), Operand(shape: [301, 250])]) { x in
            try x[0].apply(.layerNorm(axis: 1, epsilon: 1e-5), [x[1]], .unknown)
        },
    ])
    func threadedRows(_ threads: Int, _ c: OpCase) throws { #expect(try compiledVersusInterpreter(c, threads: threads) <= 1e-5) }

    @Test(arguments: shapeCases)
    func shapeOrReduction(_ c: OpCase) throws { #expect(try compiledVersusInterpreter(c) <= 1e-5) }
}
