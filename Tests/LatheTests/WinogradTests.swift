import Lathe
import LatheCodegen
import Testing

struct WinogradSetup: Sendable {
    var input: [Int], outChannels: Int, pads = [1, 1, 1, 1], residual = false
}

/// 3x3 stride-1 convolutions with constant weights that run as Winograd F(4x4, 3x3): output
/// sides that are not multiples of 4 (cut tiles at the right and bottom), channel counts that are
/// not multiples of the register block, rows of tiles wider and narrower than a vector, several
/// strips an image, several images a unit, no padding and one-sided padding, and a residual Add
/// in the epilogue.
let winogradCases: [OpCase] = [
    WinogradSetup(input: [1, 17, 27, 30], outChannels: 19),
    WinogradSetup(input: [2, 16, 24, 26], outChannels: 16, pads: [0, 0, 0, 0]),
    WinogradSetup(input: [1, 24, 28, 28], outChannels: 24, residual: true),
    WinogradSetup(input: [1, 16, 70, 69], outChannels: 21, pads: [1, 0, 0, 1]),
    WinogradSetup(input: [1, 32, 23, 44], outChannels: 40, pads: [0, 1, 2, 1], residual: false),
    // Small images, several a unit: 5 images of 5 x 5 tiles as units of 3 and 2.
    WinogradSetup(input: [5, 16, 18, 18], outChannels: 16, residual: true),
    // Too small for 4 x 4 tiles (3 x 3 of them): F(2x2, 3x3), as for the Keras CNN's second layer.
    WinogradSetup(input: [4, 16, 13, 13], outChannels: 20, pads: [0, 0, 0, 0]),
    // One 7 x 7 image, ResNet-50's last stage: F(2x2, 3x3) as 4 x 4 tiles, the last row and
    // column of tiles cut.
    WinogradSetup(input: [1, 40, 7, 7], outChannels: 40, residual: true),
].map { s in
    OpCase("winograd conv2d \(s.input) -> \(s.outChannels) p\(s.pads)\(s.residual ? " + residual" : "")", [Operand(shape: s.input)]) { x in
        let w = x[0].graph.constant(.random(shape: [s.outChannels, s.input[1], 3, 3], seed: 31, in: -0.5...0.5))
        let b = x[0].graph.constant(.random(shape: [s.outChannels], seed: 32, in: -1...1))
        let y = try x[0].conv2d(weight: w, bias: b, pads: s.pads)
        return try (s.residual ? y + x[0] : y).relu()
    }
}

@Suite("Winograd convolution: JIT against the interpreter")
struct WinogradTests {
    @Test(arguments: [1, 2, 3], winogradCases)
    func againstInterpreter(_ threads: Int, _ c: OpCase) throws {
        #expect(try compiledVersusInterpreter(c, threads: threads) <= 1e-5)
    }

    /// The cases above do run as Winograd (else they would test the GEMM path again), and a
    /// convolution Winograd does not serve keeps its GEMM.
    @Test func choosesWinogradWhereItServes() throws {
        for c in winogradCases {
            let g = Graph(seed: 1)
            let inputs = try c.operands.enumerated().map { try g.input("x\($0.offset)", shape: $0.element.shape) }
            let y = try c.build(inputs)
            let program = try KernelProgram.build(g, outputs: [("y", y.id)])
            let tiles = program.kernels.compactMap { kernel -> Int? in
                if case let .winograd(tile, _, _, _) = kernel.weightLayout { return tile } else { return nil }
            }
            #expect(tiles == [c.operands[0].shape[2] < 16 ? 2 : 4], "\(c)")
        }
        let g = Graph(seed: 1)
        let x = try g.input("x", shape: [1, 16, 28, 28])
        let strided = try x.conv2d(weight: g.constant(.random(shape: [16, 16, 3, 3], seed: 2)), strides: [2, 2])
        let fewChannels = try g.input("z", shape: [1, 3, 28, 28]).conv2d(weight: g.constant(.random(shape: [16, 3, 3, 3], seed: 3)))
        // A quantized convolution's integers must sum exactly: Winograd's transforms round them.
        let exact = try x.apply(.conv2d(Conv2DAttributes(pads: [1, 1, 1, 1], exactSums: true)), [g.constant(.random(shape: [16, 16, 3, 3], seed: 4))], .unknown)
        let program = try KernelProgram.build(g, outputs: [("a", strided.id), ("b", fewChannels.id), ("c", exact.id)])
        for kernel in program.kernels {
            if case .winograd = kernel.weightLayout { Issue.record("\(kernel.name) should not run as Winograd") }
        }
    }
}
