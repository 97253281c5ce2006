import Lathe
import Testing

/// Shapes for elementwise tests: sizes below, at and past the vector width, none a multiple of 8.
let elementwiseShapes: [[Int]] = [[1], [7], [3, 17], [2, 5, 9], [4, 3, 33], [1003]]

let unaryCases: [OpCase] = {
    let fns: [(UnaryFn, ClosedRange<Float>)] = [
        (.neg, -3...3), (.abs, -3...3), (.exp, -10...10), (.log, 0.01...50), (.sqrt, 0...50), (.reciprocal, 0.5...4),
        (.relu, -3...3), (.sigmoid, -12...12), (.tanh, -10...10), (.tanh, -0.01...0.01), (.gelu, -6...6),
        (.leakyRelu(alpha: 0.1), -3...3), (.clip(min: -0.5, max: 0.7), -2...2), (.erf, -4...4), (.erf, -0.4...0.4),
        (.floor, -5...5), (.geluTanh, -6...6), (.ceil, -5...5), (.softplus, -30...30), (.softsign, -5...5), (.hardSwish, -5...5),
        (.step, -3...3), (.elu(alpha: 0.7), -4...4), (.selu(alpha: 1.67326, gamma: 1.0507), -4...4), (.hardSigmoid(alpha: 0.2, beta: 0.5), -5...5),
        (.sin, -7...7), (.cos, -7...7), (.round, -5...5), (.sign, -3...3),
    ]
    return fns.flatMap { fn, range in
        elementwiseShapes.map { shape in
            OpCase("\(fn.name) \(shape) in \(range)", [Operand(shape: shape, range: range)]) { x in
                try x[0].apply(.unary(fn), [], .unknown)
            }
        }
    }
}()

/// Pairs that exercise NumPy broadcasting from either side.
let broadcastPairs: [([Int], [Int])] = [
    ([3, 17], [3, 17]), ([3, 17], [17]), ([17], [3, 17]), ([4, 1, 9], [5, 1]), ([], [7]), ([2, 3, 1], [1, 1, 11]), ([2, 9, 13], [9, 1]),
]

/// Every binary op that takes f32 (the logical ones take bools, the bitwise ones integers: TypedOpTests).
let binaryCases: [OpCase] = BinaryFn.allCases.filter { (try? $0.formula.elementType([.float32, .float32])) != nil }.flatMap { fn in
    broadcastPairs.map { a, b in
        let (ra, rb): (ClosedRange<Float>, ClosedRange<Float>) = switch fn {
        case .div, .mod, .fmod: (-2...2, 0.5...3)
        case .pow: (0.1...3, -2...2)
        default: (-2...2, -2...2)
        }
        return OpCase("\(fn.rawValue) \(a) \(b)", [Operand(shape: a, range: ra), Operand(shape: b, range: rb)]) { x in
            try x[0].apply(.binary(fn), [x[1]], .unknown)
        }
    }
}

@Suite("Elementwise ops: JIT against the interpreter")
struct ElementwiseOpTests {
    @Test(arguments: unaryCases)
    func unary(_ c: OpCase) throws {
        #expect(try compiledVersusInterpreter(c) <= 1e-5)
    }

    @Test(arguments: binaryCases)
    func binary(_ c: OpCase) throws {
        #expect(try compiledVersusInterpreter(c) <= 1e-5)
    }

    @Test("large elementwise ops split their outer axis among threads", arguments: [2, 3])
    func threaded(threads: Int) throws {
        let cases = [
            OpCase("sub [5, 301, 401] - [401]", [Operand(shape: [5, 301, 401]), Operand(shape: [401])]) { try $0[0].subtracting($0[1]) },
            OpCase("tanh [7, 90001]", [Operand(shape: [7, 90001])]) { try $0[0].tanh() },
            OpCase("fused over [3, 1, 500, 300] and [3, 4, 1, 300]", [Operand(shape: [3, 1, 500, 300]), Operand(shape: [3, 4, 1, 300])]) {
                try $0[0].apply(.fusedElementwise(.max(.arg(0) * .arg(1), .const(0))), [$0[1]], .unknown)
            },
        ]
        for c in cases { #expect(try compiledVersusInterpreter(c, threads: threads) <= 1e-6, "\(c)") }
    }

    @Test(arguments: [[2, 3, 5, 7], [4, 17], [1, 9, 3], [3, 8, 2, 2]])
    func batchNorm(_ shape: [Int]) throws {
        let c = shape[1]
        let params = [Operand(shape: [c]), Operand(shape: [c]), Operand(shape: [c]), Operand(shape: [c], range: 0.1...2)]
        let bn = OpCase("batch_norm \(shape)", [Operand(shape: shape)] + params) { x in
            try x[0].batchNorm(scale: x[1], bias: x[2], mean: x[3], variance: x[4], epsilon: 1e-3)
        }
        #expect(try compiledVersusInterpreter(bn) <= 1e-5)
    }

    @Test(arguments: [[5, 9], [2, 3, 17]])
    func dropoutIsIdentityForInference(_ shape: [Int]) throws {
        let c = OpCase("dropout \(shape)", [Operand(shape: shape)]) { x in try x[0].dropout(rate: 0.5) }
        #expect(try compiledVersusInterpreter(c) == 0)
    }

    /// NaN propagates through max, min and relu as in NumPy.
    @Test func nanPropagates() throws {
        let g = Graph()
        let x = try g.input("x", shape: [11])
        let y = try g.input("y", shape: [11])
        let model = try g.compile(outputs: ["max": try x.maximum(y), "min": try x.minimum(y), "relu": try x.relu()])
        var xs = HostTensor(shape: [11], repeating: 1)
        xs.scalars[3] = .nan
        xs.scalars[10] = .nan
        var ys = HostTensor(shape: [11], repeating: 2)
        ys.scalars[5] = .nan
        let out = try model.run(["x": xs, "y": ys])
        for name in ["max", "min"] {
            #expect(out[name]!.scalars[3].isNaN && out[name]!.scalars[5].isNaN && out[name]!.scalars[10].isNaN)
        }
        #expect(out["max"]!.scalars[0] == 2 && out["min"]!.scalars[0] == 1)
        #expect(out["relu"]!.scalars[3].isNaN && out["relu"]!.scalars[0] == 1)
    }
}
