import Lathe
import Testing

/// Random values of any element type: integers drawn from the range (unsigned ones from its
/// non-negative part), bools fair coins, floats uniform in the range (then rounded to a half type).
func randomTensor(_ dtype: DType, shape: [Int], seed: UInt64, range: ClosedRange<Float> = -20...20) -> HostTensor {
    var rng = SeededGenerator(seed: seed)
    let count = shape.reduce(1, *)
    let values: [Float] = (0..<count).map { _ in
        if dtype == .bool { return Float(Int.random(in: 0...1, using: &rng)) }
        if dtype.isInteger {
            let low = dtype.isSigned ? Int(range.lowerBound) : max(0, Int(range.lowerBound))
            return Float(Int.random(in: low...max(low, Int(range.upperBound)), using: &rng))
        }
        return Float.random(in: range, using: &rng)
    }
    let floats = try! HostTensor(shape: shape, scalars: values)
    return try! floats.converted(to: dtype)
}

/// One typed operand of a test graph.
struct TypedOperand: Sendable {
    var dtype: DType
    var shape: [Int]
    var range: ClosedRange<Float> = -20...20
}

struct TypedCase: Sendable, CustomStringConvertible {
    let description: String
    let operands: [TypedOperand]
    let build: @Sendable ([Tensor]) throws -> Tensor

    init(_ description: String, _ operands: [TypedOperand], _ build: @escaping @Sendable ([Tensor]) throws -> Tensor) {
        (self.description, self.operands, self.build) = (description, operands, build)
    }
}

/// `expected` thrown by the compiled model and by the interpreter alike, on `feeds`.
func expectBothThrow(_ expected: LatheError, _ model: CompiledModel, _ g: Graph, _ y: Tensor, _ feeds: [String: HostTensor],
                     sourceLocation: Testing.SourceLocation = #_sourceLocation) {
    #expect(throws: expected, sourceLocation: sourceLocation) { try model.run(feeds) }
    #expect(throws: expected, sourceLocation: sourceLocation) { try g.interpret(outputs: [("y", y)], feeds: feeds) }
}

/// Runs a case compiled and interpreted on seeded random inputs; integer and bool results must
/// be equal bit for bit, float ones within `tolerance` (relativeError).
func checkTypedCase(_ c: TypedCase, threads: Int = 1, seed: UInt64 = 11) throws {
    let g = Graph(seed: seed)
    let inputs = try c.operands.enumerated().map { try g.input("x\($0.offset)", dtype: $0.element.dtype, shape: $0.element.shape) }
    let y = try c.build(inputs)
    var feeds: [String: HostTensor] = [:]
    for (i, operand) in c.operands.enumerated() {
        feeds["x\(i)"] = randomTensor(operand.dtype, shape: operand.shape, seed: seed &+ UInt64(i) &* 31, range: operand.range)
    }
    let model = try g.compile(outputs: ["y": y], options: CompileOptions(threads: threads))
    let got = try model.run(feeds)["y"]!
    let expected = try g.interpret(outputs: [("y", y)], feeds: feeds)["y"]!
    #expect(got.shape == expected.shape && got.dtype == expected.dtype, "\(c)")
    switch expected.dtype {
    case .float32, .float64: #expect(relativeError(got, expected) <= 1e-5, "\(c): \(got) vs \(expected)")
    case .float16, .bfloat16: #expect(relativeError(got, expected) <= 4e-3, "\(c): \(got) vs \(expected)")
    default: #expect(got.rawBytes == expected.rawBytes, "\(c): \(got) vs \(expected)")
    }
}

/// The types ops compute on (the narrow ones are only cast and moved).
let numericTypes = DType.allCases.filter { $0 != .bool && $0.isComputed }

let typedArithmeticCases: [TypedCase] = numericTypes.flatMap { t in
    ([BinaryFn.add, .sub, .mul, .div, .max, .min, .mod, .fmod] + (t.isFloatingPoint ? [.pow] : [.bitAnd, .bitOr, .bitXor, .shiftLeft, .shiftRight])).map { fn in
        // Integer divisors include 0, which gives 0 (never a trap); shift amounts run past
        // every width (and below 0 for signed types).
        let divisor: ClosedRange<Float> = t.isFloatingPoint && [.div, .mod, .fmod, .pow].contains(fn) ? 0.5...4
            : [.shiftLeft, .shiftRight].contains(fn) ? -3...70 : -6...6
        let base: ClosedRange<Float> = fn == .pow ? 0.1...3 : -30...30
        return TypedCase("\(fn.rawValue) \(t.rawValue)", [TypedOperand(dtype: t, shape: [3, 17], range: base), TypedOperand(dtype: t, shape: [17], range: divisor)]) {
            try $0[0].apply(.binary(fn), [$0[1]], .unknown)
        }
    }
}

let comparisonCases: [TypedCase] = DType.allCases.filter(\.isComputed).flatMap { t in
    [BinaryFn.equal, .less, .lessOrEqual, .greater, .greaterOrEqual].filter { t != .bool || $0 == .equal }.map { fn in
        // A small range, so that equal elements occur.
        TypedCase("\(fn.rawValue) \(t.rawValue)", [TypedOperand(dtype: t, shape: [4, 1, 9], range: -3...3), TypedOperand(dtype: t, shape: [5, 1], range: -3...3)]) {
            try $0[0].apply(.binary(fn), [$0[1]], .unknown)
        }
    }
}

let logicCases: [TypedCase] = [BinaryFn.and, .or, .xor].map { fn in
    TypedCase("\(fn.rawValue)", [TypedOperand(dtype: .bool, shape: [3, 35]), TypedOperand(dtype: .bool, shape: [35])]) {
        try $0[0].apply(.binary(fn), [$0[1]], .unknown)
    }
} + [TypedCase("not", [TypedOperand(dtype: .bool, shape: [2, 37])]) { try $0[0].not() }]

let whereCases: [TypedCase] = DType.allCases.map { t in
    TypedCase("where \(t.rawValue)", [TypedOperand(dtype: .bool, shape: [3, 17]), TypedOperand(dtype: t, shape: [17]), TypedOperand(dtype: t, shape: [])]) {
        try Tensor.where($0[0], $0[1], $0[2])
    }
}

/// Every pair of types, on values past the narrow types' ranges (saturation and wrapping) and
/// with fractions (truncation).
let castCases: [TypedCase] = DType.allCases.flatMap { from in
    DType.allCases.map { to in
        TypedCase("cast \(from.rawValue) to \(to.rawValue)", [TypedOperand(dtype: from, shape: [2, 33], range: -300...300)]) { try $0[0].cast(to: to) }
    }
}

/// A float cast to an 8- or 16-bit integer and back (one fused kernel: a quantized value
/// dequantized where it is made), on values past each range and with fractions.
let castRoundTripCases: [TypedCase] = [DType.float32, .float16, .float64].flatMap { from in
    [DType.uint8, .int8, .uint16, .int16].map { integer in
        TypedCase("cast \(from.rawValue) to \(integer.rawValue) and back", [TypedOperand(dtype: from, shape: [2, 33], range: -70_000...70_000)]) {
            try $0[0].cast(to: integer).cast(to: from)
        }
    } + [DType.uint8, .int8].map { integer in
        TypedCase("cast \(from.rawValue) to \(integer.rawValue) and back, near the range", [TypedOperand(dtype: from, shape: [2, 33], range: -300...300)]) {
            try $0[0].cast(to: integer).cast(to: from)
        }
    }
}

/// Max pools of 8-bit integers (a quantized model's): windows that reach into the padding on
/// every side, strides 1 to 3, dilation, rows wider than a vector of 32 outputs.
let bytePoolCases: [TypedCase] = [DType.uint8, .int8].flatMap { t in
    [(kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], dilations: [1, 1], shape: [1, 3, 13, 75]),
     (kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0], dilations: [1, 1], shape: [2, 2, 8, 8]),
     (kernel: [3, 2], strides: [1, 3], pads: [2, 0, 1, 1], dilations: [1, 1], shape: [1, 4, 7, 40]),
     (kernel: [2, 3], strides: [1, 1], pads: [1, 2, 0, 2], dilations: [2, 2], shape: [1, 2, 9, 33])].map { p in
        TypedCase("max pool \(t.rawValue) \(p.kernel) strides \(p.strides) pads \(p.pads) dilations \(p.dilations)",
                  [TypedOperand(dtype: t, shape: p.shape, range: -128...255)]) {
            try $0[0].apply(.pool2d(Pool2DAttributes(kind: .max, kernel: p.kernel, strides: p.strides, pads: p.pads, dilations: p.dilations)), [], .unknown)
        }
    }
}

/// BitCast: every pair of computed types of one width, the bits read as the other type (a
/// f16 or bf16 computed in f32 first stored, then read).
let bitCastCases: [TypedCase] = DType.allCases.filter(\.isComputed).flatMap { from in
    DType.allCases.filter { $0.isComputed && $0 != from && $0.byteSize == from.byteSize && $0 != .bool && from != .bool }.map { to in
        TypedCase("bitcast \(from.rawValue) to \(to.rawValue)", [TypedOperand(dtype: from, shape: [2, 33], range: -300...300)]) {
            try $0[0].apply(.cast(to: to, rule: CastRule(reinterpretsFrom: from)), [], .unknown)
        }
    }
}

let typedUnaryCases: [TypedCase] = {
    var cases: [TypedCase] = []
    let integerFns: [(UnaryFn, String)] = [(.neg, "neg"), (.abs, "abs"), (.sign, "sign"), (.relu, "relu"), (.bitNot, "bit_not")]
    for t in numericTypes {
        for (fn, name) in integerFns where (t.isSigned || fn == .relu || fn == .bitNot) && (fn != .bitNot || t.isInteger) {
            cases.append(TypedCase("\(name) \(t.rawValue)", [TypedOperand(dtype: t, shape: [3, 19])]) { try $0[0].apply(.unary(fn), [], .unknown) })
        }
    }
    let floatFns: [(UnaryFn, ClosedRange<Float>)] = [(.round, -5...5), (.floor, -5...5), (.exp, -4...4), (.sqrt, 0...9), (.tanh, -3...3), (.sigmoid, -6...6)]
    for t in [DType.float16, .bfloat16, .float64] {
        for (fn, range) in floatFns {
            cases.append(TypedCase("\(fn.name) \(t.rawValue)", [TypedOperand(dtype: t, shape: [37], range: range)]) { try $0[0].apply(.unary(fn), [], .unknown) })
        }
    }
    cases.append(TypedCase("round f32 halves", [TypedOperand(dtype: .float32, shape: [41], range: -4...4)]) { x in
        try (x[0] * 2).rounded().multiplied(by: x[0].graph.scalar(0.5))
    })
    return cases
}()

/// Data that moves, of types of each width.
let movementCases: [TypedCase] = [DType.int64, .bool, .float16, .uint8, .int32, .float8e5m2, .int4].flatMap { t in [
    TypedCase("transpose \(t.rawValue)", [TypedOperand(dtype: t, shape: [3, 5, 7])]) { try $0[0].transposed([2, 0, 1]) },
    TypedCase("slice \(t.rawValue)", [TypedOperand(dtype: t, shape: [6, 11])]) { try $0[0].sliced(axes: [0, 1], starts: [1, 2], ends: [5, 11], steps: [2, 3]) },
    TypedCase("concat \(t.rawValue)", [TypedOperand(dtype: t, shape: [2, 3, 5]), TypedOperand(dtype: t, shape: [2, 4, 5])]) { try concat([$0[0], $0[1]], axis: 1) },
    TypedCase("pad \(t.rawValue)", [TypedOperand(dtype: t, shape: [3, 5])]) { try $0[0].apply(.pad(pads: [1, 0, 2, 3], value: 1), [], .unknown) },
    TypedCase("reshape \(t.rawValue)", [TypedOperand(dtype: t, shape: [4, 6])]) { try $0[0].reshaped([2, 12]).transposed() },
    TypedCase("gather \(t.rawValue) by i64", [TypedOperand(dtype: t, shape: [9, 5]), TypedOperand(dtype: .int64, shape: [2, 3], range: -9...8)]) {
        try $0[0].apply(.gather(axis: 0), [$0[1]], .unknown)
    },
    TypedCase("gather \(t.rawValue) by i32 on axis 1", [TypedOperand(dtype: t, shape: [3, 6, 2]), TypedOperand(dtype: .int32, shape: [4], range: -6...5)]) {
        try $0[0].apply(.gather(axis: 1), [$0[1]], .unknown)
    },
] }

/// A concat whose operands are computed into their places in its buffer, at byte offsets that
/// are not multiples of 4 (ConcatInPlace).
let concatInPlaceCases: [TypedCase] = [DType.bool, .int16, .uint8].map { t in
    TypedCase("concat in place \(t.rawValue)", [TypedOperand(dtype: t, shape: [1, 3]), TypedOperand(dtype: t, shape: [1, 5]), TypedOperand(dtype: t, shape: [1, 1])]) { x in
        func computed(_ v: Tensor) throws -> Tensor { t == .bool ? try v.not() : try v + 1 }
        // Read by another kernel: a concat that is a graph output is not placed.
        return try computed(concat([computed(x[0]), computed(x[1]), computed(x[2])], axis: 1))
    }
}

/// gather_elements on two axes, of data of each width, by indices of both types (negative ones too).
let gatherElementsCases: [TypedCase] = [DType.float32, .int64, .bool, .float16].flatMap { t in [
    TypedCase("gather_elements \(t.rawValue) axis 0", [TypedOperand(dtype: t, shape: [4, 5, 3]), TypedOperand(dtype: .int64, shape: [2, 5, 3], range: -4...3)]) {
        try $0[0].apply(.gatherElements(axis: 0), [$0[1]], .unknown)
    },
    TypedCase("gather_elements \(t.rawValue) axis 1", [TypedOperand(dtype: t, shape: [4, 5, 3]), TypedOperand(dtype: .int32, shape: [4, 7, 2], range: -5...4)]) {
        try $0[0].apply(.gatherElements(axis: 1), [$0[1]], .unknown)
    },
] }

/// scatter_elements on two axes and scatter_nd on whole rows and on elements, every reduction,
/// with repeated indices (small index ranges), in several types.
let scatterCases: [TypedCase] = [DType.float32, .int64, .float16, .int8].flatMap { t in
    ScatterReduction.allCases.flatMap { reduction in [
        TypedCase("scatter_elements \(t.rawValue) axis 1 \(reduction.rawValue)",
                  [TypedOperand(dtype: t, shape: [4, 6]), TypedOperand(dtype: .int64, shape: [3, 5], range: -6...5), TypedOperand(dtype: t, shape: [3, 5])]) {
            try $0[0].apply(.scatter(axis: 1, reduction: reduction), [$0[1], $0[2]], .unknown)
        },
        TypedCase("scatter_nd \(t.rawValue) rows \(reduction.rawValue)",
                  [TypedOperand(dtype: t, shape: [5, 3]), TypedOperand(dtype: .int32, shape: [4, 1], range: -5...4), TypedOperand(dtype: t, shape: [4, 3])]) {
            try $0[0].apply(.scatter(axis: nil, reduction: reduction), [$0[1], $0[2]], .unknown)
        },
        TypedCase("scatter_nd \(t.rawValue) elements \(reduction.rawValue)",
                  [TypedOperand(dtype: t, shape: [3, 4]), TypedOperand(dtype: .int64, shape: [2, 3, 2], range: 0...2), TypedOperand(dtype: t, shape: [2, 3])]) {
            try $0[0].apply(.scatter(axis: nil, reduction: reduction), [$0[1], $0[2]], .unknown)
        },
    ] }
}

/// gather_nd picking elements, rows, and within batches.
let gatherNDCases: [TypedCase] = [DType.float32, .int64, .bool].flatMap { t in [
    TypedCase("gather_nd \(t.rawValue) elements", [TypedOperand(dtype: t, shape: [3, 4, 2]), TypedOperand(dtype: .int64, shape: [5, 3], range: -2...1)]) {
        try $0[0].apply(.gatherND(batchDims: 0), [$0[1]], .unknown)
    },
    TypedCase("gather_nd \(t.rawValue) rows", [TypedOperand(dtype: t, shape: [6, 5]), TypedOperand(dtype: .int32, shape: [2, 2, 1], range: -6...5)]) {
        try $0[0].apply(.gatherND(batchDims: 0), [$0[1]], .unknown)
    },
    TypedCase("gather_nd \(t.rawValue) batch_dims 1", [TypedOperand(dtype: t, shape: [2, 4, 3]), TypedOperand(dtype: .int64, shape: [2, 5, 1], range: 0...3)]) {
        try $0[0].apply(.gatherND(batchDims: 1), [$0[1]], .unknown)
    },
] }

/// top_k of values with ties (small integers as f32) and without, both orders, on two axes;
/// and in every number type it takes, with ties.
let topKCases: [TypedCase] = [true, false].flatMap { largest in
    [(0, 3), (1, 1), (1, 7)].flatMap { axis, k in [
        TypedCase("top_k \(k) axis \(axis) largest \(largest), ties", [TypedOperand(dtype: .int8, shape: [7, 9], range: -2...2)]) {
            try $0[0].cast(to: .float32).apply(.topK(k: k, axis: axis, largest: largest), [], .unknown)
        },
        TypedCase("top_k \(k) axis \(axis) largest \(largest)", [TypedOperand(dtype: .float32, shape: [7, 9])]) {
            try $0[0].apply(.topK(k: k, axis: axis, largest: largest), [], .unknown)
        },
    ] }
} + [DType.int64, .uint64, .int32, .uint32, .int16, .int8, .uint8, .float16, .bfloat16, .float64].flatMap { t in
    [true, false].map { largest in
        TypedCase("top_k \(t.rawValue) largest \(largest)", [TypedOperand(dtype: t, shape: [5, 11], range: -6...6)]) {
            try $0[0].apply(.topK(k: 4, axis: 1, largest: largest), [], .unknown)
        }
    }
}

/// cumsum on both axes, forward and reverse, inclusive and exclusive, in several types; and
/// cumprod (integers wrapping alike on both sides).
let cumulativeSumCases: [TypedCase] = [DType.float32, .int32, .int64, .float16, .uint8, .float64].flatMap { t in
    (0..<2).flatMap { axis in
        [(false, false), (true, false), (false, true), (true, true)].flatMap { exclusive, reverse in [
            TypedCase("cumsum \(t.rawValue) axis \(axis) exclusive \(exclusive) reverse \(reverse)", [TypedOperand(dtype: t, shape: [5, 19], range: -9...9)]) {
                try $0[0].apply(.cumulativeSum(axis: axis, exclusive: exclusive, reverse: reverse), [], .unknown)
            },
            TypedCase("cumprod \(t.rawValue) axis \(axis) exclusive \(exclusive) reverse \(reverse)", [TypedOperand(dtype: t, shape: [5, 7], range: -3...3)]) {
                try $0[0].apply(.cumulativeSum(axis: axis, exclusive: exclusive, reverse: reverse, product: true), [], .unknown)
            },
        ] }
    }
}

/// Integer reductions (sum, max, min, prod) in their type, over inner, outer and all axes, with
/// the extremes of each type reached (the identity of max and min is the type's least and
/// greatest value); and f32 reduce_min.
let integerReductionCases: [TypedCase] = [DType.int64, .int32, .uint8, .int8, .uint16].flatMap { t in
    [ReduceKind.sum, .max, .min, .prod].flatMap { kind in
        [[1], [0], [0, 2], [0, 1, 2]].map { axes in
            TypedCase("reduce_\(kind.rawValue) \(t.rawValue) axes \(axes)", [TypedOperand(dtype: t, shape: [3, 5, 7], range: kind == .prod ? -3...3 : -100...100)]) {
                try $0[0].apply(.reduce(kind, axes: axes, keepDims: axes.count == 1), [], .unknown)
            }
        }
    }
} + [[1], [2], [0, 2]].map { axes in
    TypedCase("reduce_min f32 axes \(axes)", [TypedOperand(dtype: .float32, shape: [4, 5, 37])]) {
        try $0[0].apply(.reduce(.min, axes: axes, keepDims: false), [], .unknown)
    }
}

/// arg_max and arg_min on every axis, of values with ties (small integers as f32) and without.
let argExtremeCases: [TypedCase] = [ArgKind.max, .min].flatMap { kind in
    (0..<3).flatMap { axis in
        [(false, false), (true, false), (false, true)].flatMap { keep, last in [
            TypedCase("arg_\(kind.rawValue) axis \(axis) keep \(keep) last \(last), ties", [TypedOperand(dtype: .int8, shape: [3, 7, 5], range: -2...2)]) {
                try $0[0].cast(to: .float32).apply(.argExtreme(kind, axis: axis, keepDims: keep, lastIndex: last), [], .unknown)
            },
            TypedCase("arg_\(kind.rawValue) axis \(axis) keep \(keep) last \(last)", [TypedOperand(dtype: .float32, shape: [4, 9, 3])]) {
                try $0[0].apply(.argExtreme(kind, axis: axis, keepDims: keep, lastIndex: last), [], .unknown)
            },
        ] }
    }
}

@Suite("Typed ops: JIT against the interpreter, every element type")
struct TypedOpTests {
    @Test(arguments: typedArithmeticCases) func arithmetic(_ c: TypedCase) throws { try checkTypedCase(c) }
    @Test(arguments: comparisonCases) func comparisons(_ c: TypedCase) throws { try checkTypedCase(c) }
    @Test(arguments: logicCases + whereCases) func logicAndWhere(_ c: TypedCase) throws { try checkTypedCase(c) }
    @Test(arguments: castCases) func casts(_ c: TypedCase) throws { try checkTypedCase(c) }
    @Test(arguments: bytePoolCases) func bytePools(_ c: TypedCase) throws { try checkTypedCase(c, threads: 2) }

    @Test("an average pool of integers is refused; a max pool keeps its type")
    func poolElementTypes() throws {
        let g = Graph(seed: 1)
        let x = try g.input("x", dtype: .uint8, shape: [1, 2, 4, 4])
        let max = try x.apply(.pool2d(Pool2DAttributes(kind: .max, kernel: [2, 2], strides: [2, 2])), [], .unknown)
        #expect(max.type.dtype == .uint8)
        #expect(throws: LatheError.self) { try x.apply(.pool2d(Pool2DAttributes(kind: .average, kernel: [2, 2], strides: [2, 2])), [], .unknown) }
    }
    @Test(arguments: castRoundTripCases) func castRoundTrips(_ c: TypedCase) throws { try checkTypedCase(c) }

    @Test("a float cast to uint8 or int8, and back, takes NaN to 0 and saturates infinities", arguments: [DType.uint8, .int8])
    func castsOfSpecialFloats(_ integer: DType) throws {
        let values: [Float] = [.nan, -.nan, .infinity, -.infinity, -0.0, -0.5, -0.99, 0.5, 127.5, 128, -128.5, -129, 254.99, 255.5, 256, 1e30, -1e30]
        let feeds = ["x": try HostTensor(shape: [values.count], scalars: values)]
        // The integers alone, and the round trip alone (one fused formula).
        for roundTrip in [false, true] {
            let g = Graph(seed: 1)
            let x = try g.input("x", shape: [values.count])
            let y = roundTrip ? try x.cast(to: integer).cast(to: .float32) : try x.cast(to: integer)
            let got = try g.compile(outputs: ["y": y]).run(feeds)["y"]!
            let expected = try g.interpret(outputs: [("y", y)], feeds: feeds)["y"]!
            #expect(got.rawBytes == expected.rawBytes, "\(got) vs \(expected)")
            if roundTrip { #expect(expected.scalars.prefix(4) == (integer == .uint8 ? [0, 0, 255, 0] : [0, 0, 127, -128])) }
        }
    }
    @Test(arguments: bitCastCases) func bitCasts(_ c: TypedCase) throws { try checkTypedCase(c) }
    @Test(arguments: typedUnaryCases) func unary(_ c: TypedCase) throws { try checkTypedCase(c) }
    @Test(arguments: argExtremeCases) func argExtremes(_ c: TypedCase) throws { try checkTypedCase(c) }
    @Test(arguments: gatherElementsCases) func gatherElements(_ c: TypedCase) throws { try checkTypedCase(c) }
    @Test(arguments: cumulativeSumCases) func cumulativeSums(_ c: TypedCase) throws { try checkTypedCase(c) }
    @Test(arguments: integerReductionCases) func integerReductions(_ c: TypedCase) throws { try checkTypedCase(c) }
    @Test(arguments: scatterCases) func scatters(_ c: TypedCase) throws { try checkTypedCase(c) }
    @Test(arguments: gatherNDCases) func gatherNDs(_ c: TypedCase) throws { try checkTypedCase(c) }
    @Test(arguments: topKCases) func topKs(_ c: TypedCase) throws { try checkTypedCase(c) }

    @Test("top_k takes NaN first when largest, last when smallest, and equal values by position")
    func topKByHand() throws {
        let g = Graph()
        let x = try g.input("x", shape: [5])
        let model = try g.compile(outputs: ["big": try x.apply(.topK(k: 3, axis: 0, largest: true), [], .unknown),
                                            "small": try x.apply(.topK(k: 3, axis: 0, largest: false), [], .unknown)])
        let out = try model.run(["x": try HostTensor(shape: [5], scalars: [2, .nan, 5, 2, -1])])
        #expect(try out["big"]!.values(as: Int64.self) == [1, 2, 0])
        #expect(try out["small"]!.values(as: Int64.self) == [4, 0, 3])
    }

    @Test("top_k orders 64-bit integers exactly: neighbours past 2^53, unsigned above 2^63")
    func topKWideIntegers() throws {
        let g = Graph()
        let signed = try g.input("signed", dtype: .int64, shape: [4])
        let unsigned = try g.input("unsigned", dtype: .uint64, shape: [4])
        let model = try g.compile(outputs: ["signed": try signed.apply(.topK(k: 4, axis: 0, largest: true), [], .unknown),
                                            "unsigned": try unsigned.apply(.topK(k: 2, axis: 0, largest: false), [], .unknown)])
        let feeds = ["signed": try HostTensor(shape: [4], values: [1 << 53, (1 << 53) + 1, -(1 << 62), (1 << 53) - 1] as [Int64]),
                     "unsigned": try HostTensor(shape: [4], values: [1 << 63, 7, (1 << 63) + 1, 6] as [UInt64])]
        let out = try model.run(feeds)
        #expect(try out["signed"]!.values(as: Int64.self) == [1, 0, 3, 2])
        #expect(try out["unsigned"]!.values(as: Int64.self) == [3, 1])
        let reference = try g.interpret(outputs: [("signed", try signed.apply(.topK(k: 4, axis: 0, largest: true), [], .unknown))], feeds: feeds)
        #expect(try reference["signed"]!.values(as: Int64.self) == [1, 0, 3, 2])
    }

    @Test("a scatter_nd index out of range names the bound of its own axis")
    func scatterOutOfRange() throws {
        let g = Graph()
        let data = try g.input("data", shape: [3, 7])
        let indices = try g.input("indices", dtype: .int64, shape: [2, 2])
        let updates = try g.input("updates", shape: [2])
        let y = try data.apply(.scatter(axis: nil, reduction: .add), [indices, updates], name: "put", SourceLocation(fileID: "M.swift", line: 5))
        let model = try g.compile(outputs: ["y": y])
        let feeds = ["data": HostTensor(shape: [3, 7]), "indices": try HostTensor(shape: [2, 2], values: [2, 6, 1, 7] as [Int64]),
                     "updates": try HostTensor(shape: [2], scalars: [1, 2])]
        expectBothThrow(.indexOutOfRange(node: "put", op: "scatter_nd", index: 7, bound: 7, location: SourceLocation(fileID: "M.swift", line: 5)),
                        model, g, y, feeds)
    }

    @Test("a gather_elements index out of range is a typed error, compiled and interpreted")
    func gatherElementsOutOfRange() throws {
        let g = Graph()
        let data = try g.input("data", shape: [3, 4])
        let indices = try g.input("indices", dtype: .int64, shape: [3, 2])
        let y = try data.apply(.gatherElements(axis: 1), [indices], name: "pick", SourceLocation(fileID: "M.swift", line: 3))
        let model = try g.compile(outputs: ["y": y])
        let feeds = ["data": HostTensor.random(shape: [3, 4], seed: 1), "indices": try HostTensor(shape: [3, 2], values: [0, 3, -4, 1, 4, 0] as [Int64])]
        expectBothThrow(.indexOutOfRange(node: "pick", op: "gather_elements", index: 4, bound: 4, location: SourceLocation(fileID: "M.swift", line: 3)),
                        model, g, y, feeds)
    }

    @Test("arg_max picks the first largest, a NaN first of all; last_index the last")
    func argExtremeByHand() throws {
        let g = Graph()
        let x = try g.input("x", shape: [2, 4])
        let first = try x.apply(.argExtreme(.max, axis: 1, keepDims: false, lastIndex: false), [], .unknown)
        let last = try x.apply(.argExtreme(.max, axis: 1, keepDims: false, lastIndex: true), [], .unknown)
        let smallest = try x.apply(.argExtreme(.min, axis: 1, keepDims: true, lastIndex: false), [], .unknown)
        let model = try g.compile(outputs: ["first": first, "last": last, "smallest": smallest])
        let out = try model.run(["x": try HostTensor(shape: [2, 4], scalars: [1, 3, 3, 2, 0, .nan, 5, .nan])])
        #expect(try out["first"]!.values(as: Int64.self) == [1, 1])
        #expect(try out["last"]!.values(as: Int64.self) == [2, 3])
        #expect(try out["smallest"]!.values(as: Int64.self) == [0, 1])
        #expect(out["smallest"]!.shape == [2, 1])
    }
    @Test(arguments: movementCases + concatInPlaceCases) func movement(_ c: TypedCase) throws { try checkTypedCase(c) }

    @Test("a formula over several types fuses into one kernel, split among threads")
    func fusedAcrossTypes() throws {
        let c = TypedCase("mask from ids, then where", [TypedOperand(dtype: .int64, shape: [4, 300], range: 0...5), TypedOperand(dtype: .float32, shape: [4, 300])]) { x in
            let padding = try x[0].equal(x[0].graph.scalar(0, dtype: .int64))
            let shifted = try (x[0] + 1).cast(to: .float32).multiplied(by: x[1])
            return try Tensor.where(padding.not(), shifted, x[1].graph.scalar(-1e4)).maximum(x[1])
        }
        try checkTypedCase(c)
        try checkTypedCase(c, threads: 2)
        let g = Graph()
        let ids = try g.input("ids", dtype: .int64, shape: [4, 300])
        let y = try Tensor.where(ids.equal(g.scalar(0, dtype: .int64)).not(), ids.cast(to: .float32) * 2, g.scalar(-1))
        let model = try g.compile(outputs: ["y": y])
        #expect(model.program.kernels.count == 1, "\(model.program.kernels.map(\.name))")
    }

    /// Values where computing in another precision, rounding twice or breaking a tie another way
    /// would show: compiled and interpreted agree exactly.
    @Test("edge values: f64 range, i64 to f32 rounding, a signed-zero tie, a non-finite float index")
    func edgeValues() throws {
        let g = Graph()
        let wide = try g.input("wide", dtype: .float64, shape: [4])
        let ids = try g.input("ids", dtype: .int64, shape: [2])
        let zeros = try g.input("zeros", shape: [2])
        let table = g.constant(HostTensor.random(shape: [5, 3], seed: 2))
        let index = try g.input("index", shape: [2])
        let outputs: [(name: String, value: Tensor)] = [
            ("exp", try wide.exp()), ("log", try wide.abs().log()), ("tanh", try wide.tanh()),
            ("f32", try ids.cast(to: .float32)), ("bf16", try ids.cast(to: .bfloat16)),
            ("min", try zeros.minimum(try zeros.negated())), ("row", try table.apply(.gather(axis: 0), [index], .unknown)),
        ]
        let model = try g.compile(outputs: outputs)
        let feeds = ["wide": try HostTensor(shape: [4], values: [100, -100, 1e-50, 3e-7] as [Double]),
                     "ids": try HostTensor(shape: [2], values: [4_611_686_293_305_294_849, -4_611_686_293_305_294_849] as [Int64]),
                     "zeros": try HostTensor(shape: [2], scalars: [0, -0.0]),
                     "index": try HostTensor(shape: [2], scalars: [.infinity, -.infinity])]
        let got = try model.run(feeds), expected = try g.interpret(outputs: outputs, feeds: feeds)
        for (name, _) in outputs where name != "exp" && name != "log" && name != "tanh" {
            #expect(got[name]!.rawBytes == expected[name]!.rawBytes, "\(name): \(got[name]!) vs \(expected[name]!)")
        }
        for name in ["exp", "log", "tanh"] { #expect(relativeError(got[name]!, expected[name]!) <= 1e-12, "\(name): \(got[name]!) vs \(expected[name]!)") }
        #expect(try got["exp"]!.values(as: Double.self)[0] > 1e43, "f64 exp keeps its range")
        #expect(try got["f32"]!.values(as: Float.self)[0] == Float(4_611_686_293_305_294_849 as Int64), "one rounding")
    }

    /// The narrow floats by every rule, on values around their ranges and ties, from float32
    /// and float16: compiled as interpreted, bit for bit.
    @Test(arguments: [DType.float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float4e2m1, .float8e8m0])
    func narrowFloatRules(_ to: DType) throws {
        let rules = [CastRule(), CastRule(saturate: false)] + PowerOfTwoRounding.allCases.flatMap { r in [CastRule(powerOfTwoRounding: r), CastRule(saturate: false, powerOfTwoRounding: r)] }
        let values: [Float] = [0.25, 0.75, 1.5, 2.5, 3.5, 5, 7, 0.1, 1e-7, 464, 480, 500, 57344, 61440, 1e6, 0x1.8p127, 3e38, 1e-40] + (0..<40).map { Float($0) * 0.37 - 7 }
        let feed = try HostTensor(shape: [values.count * 2 + 4], scalars: values + values.map { -$0 } + [.nan, .infinity, -.infinity, -0.0])
        for from in [DType.float32, .float16] {
            for rule in rules {
                let g = Graph()
                let x = try g.input("x", shape: feed.shape)
                let y = try x.cast(to: from).apply(.cast(to: to, rule: rule), [], .unknown)
                let got = try g.compile(outputs: ["y": y]).run(["x": feed])["y"]!
                let expected = try g.interpret(outputs: [("y", y)], feeds: ["x": feed])["y"]!
                #expect(got.rawBytes == expected.rawBytes, "\(from.rawValue) to \(to.rawValue) \(rule): \(got) vs \(expected)")
            }
        }
    }

    /// Every bit pattern of each narrow float (negative NaNs, both zeros, infinities) cast to
    /// f32, f16, another narrow float and an integer, and moved by where: compiled as interpreted.
    @Test(arguments: [DType.float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float4e2m1, .float8e8m0])
    func everyNarrowBitPattern(_ from: DType) throws {
        let count = from == .float4e2m1 ? 16 : 256
        let feed = try HostTensor(shape: [count], dtype: from, bytes: (0..<count).map(UInt8.init))
        let mask = try HostTensor(shape: [count], values: (0..<count).map { $0 % 3 != 0 })
        let g = Graph()
        let x = try g.input("x", dtype: from, shape: [count])
        let keep = try g.input("keep", dtype: .bool, shape: [count])
        let outputs: [(name: String, value: Tensor)] = [
            ("f32", try x.cast(to: .float32)), ("f16", try x.cast(to: .float16)), ("f4", try x.cast(to: .float4e2m1)),
            ("e5m2", try x.cast(to: .float8e5m2)), ("i8", try x.cast(to: .int8)), ("where", try Tensor.where(keep, x, x)),
        ]
        let got = try g.compile(outputs: outputs).run(["x": feed, "keep": mask])
        let expected = try g.interpret(outputs: outputs, feeds: ["x": feed, "keep": mask])
        for (name, _) in outputs { #expect(got[name]!.rawBytes == expected[name]!.rawBytes, "\(from.rawValue) \(name)") }
    }

    @Test("NaN and infinities cast as ONNX's Cast: NaN to 0, saturated at the type's range, non-zero true")
    func castSpecialValues() throws {
        for to in DType.allCases {
            let g = Graph()
            let x = try g.input("x", shape: [6])
            let model = try g.compile(outputs: ["y": try x.cast(to: to)])
            let feed = try HostTensor(shape: [6], scalars: [.nan, .infinity, -.infinity, 1e20, -1e20, -0.0])
            let got = try model.run(["x": feed])["y"]!
            let expected = try g.interpret(outputs: [("y", try x.cast(to: to))], feeds: ["x": feed])["y"]!
            #expect(got.rawBytes == expected.rawBytes, "f32 to \(to.rawValue): \(got) vs \(expected)")
        }
    }

    @Test("a gather index out of range is a typed error naming the node, compiled and interpreted; a negative one counts from the end")
    func indexOutOfRange() throws {
        let g = Graph()
        let table = g.constant(HostTensor.random(shape: [10, 4], seed: 3), name: "table")
        let ids = try g.input("ids", dtype: .int64, shape: [1, 5])
        let y = try table.apply(.gather(axis: 0), [ids], name: "lookup", SourceLocation(fileID: "Model.swift", line: 12))
        let model = try g.compile(outputs: ["y": y])
        let good = try HostTensor(shape: [1, 5], values: [0, 9, -1, -10, 3] as [Int64])
        let got = try model.run(["ids": good])["y"]!
        #expect(got == (try g.interpret(outputs: [("y", y)], feeds: ["ids": good])["y"]!))
        #expect(Array(got.scalars[8..<12]) == Array(got.scalars[4..<8]), "-1 picks row 9")
        for bad in [10, -11, Int64.max, Int64.min] {
            let feed = try HostTensor(shape: [1, 5], values: [1, 2, bad, 20, 0] as [Int64])
            expectBothThrow(.indexOutOfRange(node: "lookup", op: "gather", index: bad, bound: 10, location: SourceLocation(fileID: "Model.swift", line: 12)),
                            model, g, y, ["ids": feed])
        }
        // The model runs on after an error.
        #expect(try model.run(["ids": good])["y"]! == got)
    }
}
