import Foundation
import LatheIR
import Testing

/// docs/ir.md's op table names every op of the IR, and only ops that exist.
@Suite("docs/ir.md: the op table against the IR")
struct OpDocumentationTests {
    static let conv = Op.conv2d(Conv2DAttributes())
    static let maxPool = Pool2DAttributes(kind: .max, kernel: [2, 2], strides: [2, 2])
    static let relu = ScalarExpr.max(.arg(0), .const(0))

    /// Ops of every kind. `kindNumber` is an exhaustive switch over Op, UnaryFn and PoolKind: a
    /// new case fails to compile until it has a number there, and this test until it has an
    /// example here (and then until docs/ir.md names it).
    static let examples: [Op] = [
        .input(name: "x"), .constant(slot: 0), .variable(slot: 0), .assign,
        .fusedElementwise(relu), .epilogue(base: conv, baseOperands: 2, formula: relu), .epilogue(base: .dense, baseOperands: 2, formula: relu),
        .epilogue(base: .matmul, baseOperands: 2, formula: relu), .pooled(base: conv, pool: maxPool),
        .pooled(base: .epilogue(base: conv, baseOperands: 2, formula: relu), pool: Pool2DAttributes(kind: .average, kernel: [2, 2], strides: [2, 2])),
        .matmul, .dense, conv, .batchNorm(epsilon: 1e-5), .pool2d(maxPool), .pool2d(Pool2DAttributes(kind: .average, kernel: [2, 2], strides: [2, 2])),
        .conv2dWeightGrad(Conv2DAttributes(), kernel: [3, 3]), .gatherGrad(axis: 0, size: 4), .pool2dGrad(maxPool),
        .dropoutMask(shape: [4], rate: 0.5, seed: 1), .augment(ImageAugment(height: 2, width: 2, seed: 1)),
        .augmentGrad(ImageAugment(height: 2, width: 2, seed: 1), inputSize: [3, 3]), .globalAveragePool, .reshape(shape: [4]), .flatten(axis: 1), .transpose(perm: [1, 0]),
        .concat(axis: 0), .slice(starts: [0], ends: [1], steps: [1]), .softmax(axis: 1), .logSoftmax(axis: 1), .layerNorm(axis: 1, epsilon: 1e-5),
        .dropout(rate: 0.5), .convTranspose2d(ConvTranspose2DAttributes()), .gather(axis: 0), .pad(pads: [1, 1], value: 0), .lstm(reverse: false), .recurrent(RecurrentCell(.gru)), .recurrent(RecurrentCell(.rnn)),
        .lrn(size: 5, alpha: 1e-4, beta: 0.75, bias: 1), .cast(to: .int64), .select, .argExtreme(.max, axis: 0, keepDims: true, lastIndex: false), .argExtreme(.min, axis: 0, keepDims: true, lastIndex: false), .gatherElements(axis: 0), .cumulativeSum(axis: 0, exclusive: false, reverse: false), .cumulativeSum(axis: 0, exclusive: false, reverse: false, product: true), .scatter(axis: 0, reduction: .none), .scatter(axis: nil, reduction: .add), .gatherND(batchDims: 0), .topK(k: 1, axis: 0, largest: true),
    ] + unaryExamples.map(Op.unary) + BinaryFn.allCases.map(Op.binary) + ReduceKind.allCases.map { .reduce($0, axes: [0], keepDims: false) }

    static let unaryExamples: [UnaryFn] = [
        .neg, .abs, .exp, .log, .sqrt, .reciprocal, .erf, .floor, .ceil, .step, .relu, .sigmoid, .tanh, .gelu, .geluTanh, .softplus,
        .softsign, .hardSwish, .leakyRelu(alpha: 0.1), .clip(min: 0, max: 6), .elu(alpha: 1), .selu(alpha: 1.67, gamma: 1.05),
        .hardSigmoid(alpha: 0.2, beta: 0.5), .round, .sign, .not, .isNaN, .bitNot, .sin, .cos,
    ]

    static let opKinds = 44, unaryKinds = 30, poolKinds = 2
    static func kindNumber(_ op: Op) -> Int {
        switch op {
        case .input: 0
        case .constant: 1
        case .variable: 2
        case .assign: 3
        case .unary: 4
        case .binary: 5
        case .fusedElementwise: 6
        case .epilogue: 7
        case .pooled: 8
        case .matmul: 9
        case .dense: 10
        case .conv2d: 11
        case .batchNorm: 12
        case .pool2d: 13
        case .conv2dWeightGrad: 14
        case .gatherGrad: 15
        case .pool2dGrad: 16
        case .dropoutMask: 17
        case .globalAveragePool: 18
        case .reshape: 19
        case .flatten: 20
        case .transpose: 21
        case .concat: 22
        case .slice: 23
        case .softmax: 24
        case .logSoftmax: 25
        case .layerNorm: 26
        case .reduce: 27
        case .dropout: 28
        case .convTranspose2d: 29
        case .gather: 30
        case .pad: 31
        case .recurrent: 32
        case .lrn: 33
        case .cast: 34
        case .select: 35
        case .argExtreme: 36
        case .gatherElements: 37
        case .cumulativeSum: 38
        case .scatter: 39
        case .gatherND: 40
        case .topK: 41
        case .augment: 42
        case .augmentGrad: 43
        }
    }

    static func kindNumber(_ fn: UnaryFn) -> Int {
        switch fn {
        case .neg: 0
        case .abs: 1
        case .exp: 2
        case .log: 3
        case .sqrt: 4
        case .reciprocal: 5
        case .erf: 6
        case .floor: 7
        case .ceil: 8
        case .step: 9
        case .relu: 10
        case .sigmoid: 11
        case .tanh: 12
        case .gelu: 13
        case .geluTanh: 14
        case .softplus: 15
        case .softsign: 16
        case .hardSwish: 17
        case .leakyRelu: 18
        case .clip: 19
        case .elu: 20
        case .selu: 21
        case .hardSigmoid: 22
        case .round: 23
        case .sign: 24
        case .not: 25
        case .isNaN: 26
        case .bitNot: 27
        case .sin: 28
        case .cos: 29
        }
    }

    static func kindNumber(_ kind: PoolKind) -> Int {
        switch kind {
        case .max: 0
        case .average: 1
        }
    }

    @Test func everyKindHasAnExample() {
        #expect(Set(Self.examples.map(Self.kindNumber)) == Set(0..<Self.opKinds))
        #expect(Set(Self.unaryExamples.map(Self.kindNumber)) == Set(0..<Self.unaryKinds))
        let pools = Self.examples.compactMap { op -> PoolKind? in if case let .pool2d(a) = op { return a.kind } else { return nil } }
        #expect(Set(pools.map(Self.kindNumber)) == Set(0..<Self.poolKinds))
    }

    /// The first column of the op table, each cell split at commas ("..." left out).
    static func documentedNames() throws -> Set<String> {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/ir.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        guard let start = text.range(of: "| op | operands | attributes | result |") else { return [] }
        var names = Set<String>()
        for line in text[start.upperBound...].split(separator: "\n").dropFirst() {
            guard line.hasPrefix("| ") else { break }
            let cell = line.dropFirst(2).prefix { $0 != "|" }
            for name in cell.split(separator: ",") {
                let trimmed = name.trimmingCharacters(in: .whitespaces)
                if trimmed != "..." { names.insert(trimmed) }
            }
        }
        return names
    }

    @Test func theTableNamesEveryOpAndNoOther() throws {
        let names = Set(Self.examples.map(\.name))
        let documented = try Self.documentedNames()
        #expect(names.subtracting(documented).isEmpty, "missing from docs/ir.md's op table: \(names.subtracting(documented).sorted())")
        #expect(documented.subtracting(names).isEmpty, "docs/ir.md names ops the IR does not have: \(documented.subtracting(names).sorted())")
    }
}
