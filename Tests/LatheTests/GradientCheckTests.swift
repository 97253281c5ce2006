import Lathe
import Testing

/// loss = sum(y * r) for a fixed random r, so every element of y matters with its own weight.
private func weightedLoss(_ y: Tensor, seed: UInt64) throws -> Tensor {
    let r = y.graph.constant(HostTensor.random(shape: y.shape, seed: seed, in: -1...1), name: "loss_weights")
    return try y.multiplied(by: r).sum()
}

/// Autodiff's gradient of each operand (by the interpreter) against central differences of the
/// loss at up to 10 random elements. Returns the worst |analytic - numeric| / max(1, |analytic|).
func gradientCheck(_ c: OpCase, seed: UInt64 = 5, epsilon: Float = 1e-3) throws -> Float {
    let g = Graph(seed: seed)
    let inputs = try c.operands.enumerated().map { try g.input("x\($0.offset)", shape: $0.element.shape) }
    let loss = try weightedLoss(try c.build(inputs), seed: seed &+ 99)
    let grads = try g.gradients(of: loss.id, wrt: inputs.map(\.id))
    var feeds: [String: HostTensor] = [:]
    for (i, operand) in c.operands.enumerated() {
        feeds["x\(i)"] = HostTensor.random(shape: operand.shape, seed: seed &+ UInt64(i) &* 31, in: operand.range)
    }
    let analytic = try Interpreter.run(g, outputs: grads, feeds: feeds)
    var rng = SeededGenerator(seed: seed)
    var worst: Float = 0
    for (i, operand) in c.operands.enumerated() {
        #expect(analytic[i].shape == operand.shape, "\(c): gradient of x\(i) has shape \(analytic[i].shape)")
        let count = operand.shape.reduce(1, *)
        for _ in 0..<min(count, 10) {
            let j = Int.random(in: 0..<count, using: &rng)
            var plus = feeds, minus = feeds
            plus["x\(i)"]!.scalars[j] += epsilon
            minus["x\(i)"]!.scalars[j] -= epsilon
            let up = try Interpreter.run(g, outputs: [loss.id], feeds: plus)[0].scalars[0]
            let down = try Interpreter.run(g, outputs: [loss.id], feeds: minus)[0].scalars[0]
            let numeric = (Double(up) - Double(down)) / Double(2 * epsilon)
            let a = Double(analytic[i].scalars[j])
            worst = max(worst, Float(abs(a - numeric) / max(1, abs(a))))
        }
    }
    return worst
}

let gradientCases: [OpCase] = {
    var cases: [OpCase] = []
    let unary: [(UnaryFn, ClosedRange<Float>)] = [
        (.neg, -3...3), (.abs, -3...3), (.exp, -3...3), (.log, 0.2...5), (.sqrt, 0.2...5), (.reciprocal, 0.5...4), (.relu, -3...3),
        (.sigmoid, -6...6), (.tanh, -3...3), (.gelu, -4...4), (.geluTanh, -4...4), (.leakyRelu(alpha: 0.1), -3...3),
        (.clip(min: -0.5, max: 0.7), -2...2), (.erf, -2...2), (.floor, -3...3), (.ceil, -3...3), (.step, -3...3), (.softplus, -5...5),
        (.softsign, -3...3), (.hardSwish, -5...5), (.elu(alpha: 0.7), -3...3), (.selu(alpha: 1.67326, gamma: 1.0507), -3...3),
        (.hardSigmoid(alpha: 0.2, beta: 0.5), -5...5),
    ]
    for (fn, range) in unary {
        cases.append(OpCase("\(fn.name)", [Operand(shape: [3, 7], range: range)]) { try $0[0].apply(.unary(fn), [], .unknown) })
    }
    // The arithmetic ones on floats (comparisons and logic give bools, which have no slope); mod's
    // operands keep a / b in (0, 1), away from its jumps.
    for fn in BinaryFn.allCases where !fn.formula.isComparisonOrLogic && (try? fn.formula.elementType([.float32, .float32])) != nil {
        for (a, b) in [([3, 5], [3, 5]), ([2, 3, 5], [5]), ([4, 1], [1, 6])] {
            let ranges: (ClosedRange<Float>, ClosedRange<Float>) = switch fn {
            case .pow: (0.5...2, -2...2)
            case .div: (-2...2, 0.5...2)
            case .mod, .fmod: (0.2...0.9, 1.2...2)
            default: (-2...2, -2...2)
            }
            cases.append(OpCase("\(fn.rawValue) \(a) \(b)", [Operand(shape: a, range: ranges.0), Operand(shape: b, range: ranges.1)]) {
                try $0[0].apply(.binary(fn), [$0[1]], .unknown)
            })
        }
    }
    let formula: ScalarExpr = .max(.arg(0) * .arg(1), .const(0)) + .exp(-.arg(2))
    cases.append(OpCase("fused_elementwise \(formula)", [Operand(shape: [2, 6]), Operand(shape: [6]), Operand(shape: [2, 1])]) {
        try $0[0].apply(.fusedElementwise(formula), [$0[1], $0[2]], .unknown)
    })
    cases.append(OpCase("batch_norm", [Operand(shape: [2, 3, 4, 5]), Operand(shape: [3]), Operand(shape: [3]), Operand(shape: [3]), Operand(shape: [3], range: 0.5...2)]) {
        try $0[0].batchNorm(scale: $0[1], bias: $0[2], mean: $0[3], variance: $0[4])
    })
    cases.append(OpCase("matmul [3,4]x[4,5]", [Operand(shape: [3, 4]), Operand(shape: [4, 5])]) { try $0[0].matmul($0[1]) })
    cases.append(OpCase("matmul [2,3,4]x[4,5] broadcast", [Operand(shape: [2, 3, 4]), Operand(shape: [4, 5])]) { try $0[0].matmul($0[1]) })
    cases.append(OpCase("dense with bias", [Operand(shape: [3, 6]), Operand(shape: [6, 4]), Operand(shape: [4])]) { try $0[0].dense(weight: $0[1], bias: $0[2]) })
    for (strides, pads, dilations) in [([1, 1], [0, 0, 0, 0], [1, 1]), ([2, 2], [1, 1, 1, 1], [1, 1]), ([1, 2], [0, 1, 2, 0], [2, 1])] {
        cases.append(OpCase("conv2d strides \(strides) pads \(pads) dilations \(dilations)",
                            [Operand(shape: [2, 3, 7, 8]), Operand(shape: [4, 3, 3, 3]), Operand(shape: [4])]) {
            try $0[0].conv2d(weight: $0[1], bias: $0[2], strides: strides, pads: pads, dilations: dilations)
        })
    }
    cases.append(OpCase("conv2d groups 2", [Operand(shape: [2, 4, 6, 6]), Operand(shape: [6, 2, 3, 3]), Operand(shape: [6])]) {
        try $0[0].conv2d(weight: $0[1], bias: $0[2], pads: [1, 1, 1, 1], groups: 2)
    })
    cases.append(OpCase("conv2d depthwise stride 2", [Operand(shape: [2, 3, 7, 7]), Operand(shape: [3, 1, 3, 3])]) {
        try $0[0].conv2d(weight: $0[1], strides: [2, 2], pads: [1, 1, 1, 1], groups: 3)
    })
    cases.append(OpCase("conv2d to one channel", [Operand(shape: [2, 4, 6, 5]), Operand(shape: [1, 4, 3, 3]), Operand(shape: [1])]) {
        try $0[0].conv2d(weight: $0[1], bias: $0[2], pads: [1, 1, 1, 1])
    })
    cases.append(OpCase("conv2d 1x1", [Operand(shape: [2, 5, 4, 3]), Operand(shape: [7, 5, 1, 1])]) { try $0[0].conv2d(weight: $0[1]) })
    cases.append(OpCase("conv_transpose2d stride 2", [Operand(shape: [2, 3, 4, 5]), Operand(shape: [3, 2, 3, 3]), Operand(shape: [2])]) {
        try $0[0].apply(.convTranspose2d(ConvTranspose2DAttributes(strides: [2, 2], pads: [1, 1, 0, 0], outputPadding: [1, 0])), [$0[1], $0[2]], .unknown)
    })
    cases.append(OpCase("max_pool2d 2x2", [Operand(shape: [2, 3, 6, 7])]) { try $0[0].maxPool2d(kernel: [2, 2]) })
    cases.append(OpCase("max_pool2d 3x3 stride 2 padded", [Operand(shape: [1, 2, 7, 6])]) { try $0[0].maxPool2d(kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]) })
    cases.append(OpCase("avg_pool2d 3x3 stride 2 padded", [Operand(shape: [1, 2, 7, 6])]) { try $0[0].avgPool2d(kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]) })
    cases.append(OpCase("avg_pool2d counting padding", [Operand(shape: [1, 2, 5, 5])]) {
        try $0[0].avgPool2d(kernel: [2, 2], strides: [2, 2], pads: [1, 1, 0, 0], countIncludePad: true)
    })
    cases.append(OpCase("global_avg_pool", [Operand(shape: [2, 3, 4, 5])]) { try $0[0].globalAvgPool() })
    cases.append(OpCase("reshape", [Operand(shape: [2, 6])]) { try $0[0].reshaped([3, 4]) })
    cases.append(OpCase("flatten", [Operand(shape: [2, 3, 4])]) { try $0[0].flattened() })
    cases.append(OpCase("transpose", [Operand(shape: [2, 3, 4])]) { try $0[0].transposed([2, 0, 1]) })
    cases.append(OpCase("slice", [Operand(shape: [4, 6])]) { try $0[0].sliced(axes: [0, 1], starts: [1, 2], ends: [3, 5]) })
    cases.append(OpCase("concat", [Operand(shape: [2, 3]), Operand(shape: [2, 4])]) { try concat([$0[0], $0[1]], axis: 1) })
    cases.append(OpCase("pad", [Operand(shape: [2, 3])]) { try $0[0].apply(.pad(pads: [1, 0, 0, 2], value: 0.5), [], .unknown) })
    cases.append(OpCase("softmax", [Operand(shape: [3, 5])]) { try $0[0].softmax() })
    cases.append(OpCase("softmax axis 0", [Operand(shape: [3, 5])]) { try $0[0].softmax(axis: 0) })
    cases.append(OpCase("log_softmax", [Operand(shape: [3, 5])]) { try $0[0].logSoftmax() })
    for (kind, keep) in [(ReduceKind.sum, false), (.mean, true), (.max, false), (.max, true), (.min, false), (.min, true)] {
        cases.append(OpCase("reduce_\(kind.rawValue) keep \(keep)", [Operand(shape: [3, 4, 5])]) {
            try $0[0].apply(.reduce(kind, axes: [0, 2], keepDims: keep), [], .unknown)
        })
    }
    cases.append(OpCase("layer_norm", [Operand(shape: [2, 3, 6]), Operand(shape: [6]), Operand(shape: [6])]) {
        try $0[0].apply(.layerNorm(axis: 2, epsilon: 1e-3), [$0[1], $0[2]], .unknown)
    })
    cases.append(OpCase("layer_norm over two axes, one-element scale", [Operand(shape: [2, 3, 4]), Operand(shape: [1])]) {
        try $0[0].apply(.layerNorm(axis: 1, epsilon: 1e-3), [$0[1]], .unknown)
    })
    // Whole-number indices (a nudged index would jump rows): repeated, negative, out of range.
    cases.append(OpCase("gather rows, repeated indices", [Operand(shape: [4, 3])]) {
        let indices = $0[0].graph.constant(try HostTensor(shape: [2, 3], scalars: [0, 2, 2, 3, 0, 1]))
        return try $0[0].apply(.gather(axis: 0), [indices], .unknown)
    })
    cases.append(OpCase("gather axis 1", [Operand(shape: [2, 5, 3])]) {
        let indices = $0[0].graph.constant(try HostTensor(shape: [4], scalars: [-1, 4, 9, 1]))
        return try $0[0].apply(.gather(axis: 1), [indices], .unknown)
    })
    for size in [3, 4] {
        cases.append(OpCase("lrn size \(size)", [Operand(shape: [2, 5, 3, 3])]) {
            try $0[0].apply(.lrn(size: size, alpha: 0.5, beta: 0.75, bias: 1), [], .unknown)
        })
    }
    cases.append(OpCase("dropout (inference)", [Operand(shape: [3, 4])]) { try $0[0].dropout(rate: 0.5) })
    return cases
}()

@Suite("Gradients")
struct GradientTests {
    @Test("autodiff agrees with finite differences", arguments: gradientCases)
    func finiteDifferences(_ c: OpCase) throws {
        let error = try gradientCheck(c)
        #expect(error < 1e-2, "\(c): worst error \(error)")
    }

    @Test("a compiled gradient graph matches the interpreter", arguments: [1, 2])
    func compiledGradients(threads: Int) throws {
        // Large enough that two threads split the weight gradient (by input channels, unevenly;
        // by output channels when the input has too few; by groups).
        let split = [
            OpCase("conv2d 5->8 on 13x13, batch 3", [Operand(shape: [3, 5, 13, 13]), Operand(shape: [8, 5, 3, 3])]) { try $0[0].conv2d(weight: $0[1], strides: [1, 2]) },
            OpCase("conv2d 16->1 on 20x20, batch 8 (transposed product)", [Operand(shape: [8, 16, 20, 20]), Operand(shape: [1, 16, 3, 3])]) { try $0[0].conv2d(weight: $0[1]) },
            OpCase("conv2d 3->3 on 24x24, batch 4 (transposed product)", [Operand(shape: [4, 3, 24, 24]), Operand(shape: [3, 3, 3, 3])]) {
                try $0[0].conv2d(weight: $0[1], pads: [1, 1, 1, 1])
            },
            OpCase("conv2d 1->16 on 30x30, batch 3", [Operand(shape: [3, 1, 30, 30]), Operand(shape: [16, 1, 3, 3])]) { try $0[0].conv2d(weight: $0[1]) },
            OpCase("conv2d 8->16 on 12x12, batch 3", [Operand(shape: [3, 8, 12, 12]), Operand(shape: [16, 8, 3, 3])]) { try $0[0].conv2d(weight: $0[1], pads: [1, 1, 1, 1]) },
            OpCase("conv2d groups 4 on 12x12, batch 3", [Operand(shape: [3, 8, 12, 12]), Operand(shape: [16, 2, 3, 3])]) {
                try $0[0].conv2d(weight: $0[1], strides: [2, 2], groups: 4)
            },
        ]
        // pool2d_grad itself on whole numbers, which tie often: the first largest tap takes dy.
        let pool2x2 = Pool2DAttributes(kind: .max, kernel: [2, 2], strides: [2, 2])
        let ties = [[1, 2, 7, 20], [3, 4, 26, 26], [2, 3, 6, 7]].map { shape in
            OpCase("pool2d_grad 2x2 with ties \(shape)", [Operand(shape: shape, range: 0...3), Operand(shape: [shape[0], shape[1], shape[2] / 2, shape[3] / 2])]) {
                try $0[0].apply(.unary(.floor), [], .unknown).apply(.pool2dGrad(pool2x2), [$0[1]], .unknown)
            }
        }
        for c in ties { #expect(try compiledVersusInterpreter(c, threads: threads) < 1e-6, "\(c)") }
        for c in split + gradientCases where ["conv2d", "max_pool", "avg_pool", "softmax", "dense", "conv_transpose", "reduce_max", "layer_norm", "gather", "lrn"].contains(where: { c.description.hasPrefix($0) }) {
            for k in c.operands.indices {
                let gradient = OpCase("d/dx\(k) of \(c)", c.operands) { x in
                    let loss = try weightedLoss(try c.build(x), seed: 11)
                    return Tensor(graph: loss.graph, id: try loss.graph.gradients(of: loss.id, wrt: [x[k].id])[0])
                }
                let error = try compiledVersusInterpreter(gradient, threads: threads)
                #expect(error < 1e-5, "\(gradient): \(error)")
            }
        }
    }

    @Test("a loss of more than one element is refused")
    func nonScalarLoss() throws {
        let g = Graph()
        let x = try g.input("x", shape: [3])
        #expect(throws: LatheError.self) { _ = try g.gradients(of: try x.relu().id, wrt: [x.id]) }
    }
}

extension ScalarExpr {
    /// A comparison or a logical op: a formula whose result is a bool.
    var isComparisonOrLogic: Bool {
        if case let .binary(fn, _, _) = self { return fn.isComparison || fn.isLogical }
        return false
    }
}
