import Lathe
import Testing

/// One operand of a test graph: a graph input with its shape and the range of its random values.
struct Operand: Sendable {
    var shape: [Int]
    var range: ClosedRange<Float> = -2...2
}

/// A graph built from inputs, to be run compiled and interpreted.
struct OpCase: Sendable, CustomStringConvertible {
    let description: String
    let operands: [Operand]
    let build: @Sendable ([Tensor]) throws -> Tensor

    init(_ description: String, _ operands: [Operand], _ build: @escaping @Sendable ([Tensor]) throws -> Tensor) {
        self.description = description
        self.operands = operands
        self.build = build
    }
}

/// max |compiled - reference| / max |reference|: a relative error that does not blow up on
/// elements near zero.
func relativeError(_ got: HostTensor, _ expected: HostTensor) -> Float {
    var worst: Float = 0, scale: Float = 0
    for (a, b) in zip(got.scalars, expected.scalars) {
        if a.isNaN != b.isNaN || (a.isInfinite && a != b) { return .infinity }
        if a.isNaN || a.isInfinite { continue }
        worst = max(worst, abs(a - b))
        scale = max(scale, abs(b))
    }
    return worst / max(scale, 1e-30)
}

/// Builds the case, runs it through the JIT and the interpreter on seeded random inputs, and
/// returns the relative error.
func compiledVersusInterpreter(_ c: OpCase, seed: UInt64 = 7, threads: Int = 1) throws -> Float {
    let g = Graph(seed: seed)
    let inputs = try c.operands.enumerated().map { try g.input("x\($0.offset)", shape: $0.element.shape) }
    let y = try c.build(inputs)
    var feeds: [String: HostTensor] = [:]
    for (i, operand) in c.operands.enumerated() {
        feeds["x\(i)"] = HostTensor.random(shape: operand.shape, seed: seed &+ UInt64(i) &* 31, in: operand.range)
    }
    let model = try g.compile(outputs: ["y": y], options: CompileOptions(threads: threads))
    let got = try model.run(feeds)["y"]!
    let expected = try g.interpret(outputs: [("y", y)], feeds: feeds)["y"]!
    #expect(got.shape == expected.shape)
    return relativeError(got, expected)
}
