import Lathe
import LatheCodegen
import LathePasses
import Testing

@Suite("In-place reuse: a result overwrites an operand that dies at its kernel")
struct InPlaceTests {
    @Test func elementwiseKernelsReuseDyingOperands() throws {
        let g = Graph(seed: 1)
        let x = try g.input("x", shape: [3, 33])
        let a = try x.exp()
        let b = try a.relu()        // a dies here: b takes its buffer
        let c = try b.tanh()        // b is read again below: c needs a buffer of its own
        let d = try c + b           // both die here: d takes the first, c's
        let bias = try x.sliced(axes: [0], starts: [0], ends: [1]).exp()
        let e = try d + bias        // d dies, bias is broadcast: e takes d's
        let y = try e.matmul(g.constant(.random(shape: [33, 33], seed: 2)))   // a GEMM reads e across its rows: never in place
        let program = try KernelProgram.build(g, outputs: [("y", y.id)])
        func kernel(_ t: Tensor) -> Kernel { program.kernels.first { $0.node == t.id }! }

        #expect(kernel(b).inPlaceOperand == 0)
        #expect(kernel(b).result.location == kernel(a).result.location)
        #expect(kernel(c).inPlaceOperand == nil)
        #expect(kernel(c).result.location != kernel(b).result.location)
        #expect(kernel(d).inPlaceOperand == 0)
        #expect(kernel(d).result.location == kernel(c).result.location)
        #expect(kernel(e).inPlaceOperand == 0)
        #expect(kernel(y).inPlaceOperand == nil)
        // Two buffers hold a, b and c, d, e: the plan lists each value, at its group's offset,
        // and at most the two groups are ever live at once.
        let offsets = Dictionary(program.buffers.map { ($0.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
        #expect(offsets[a.name] == offsets[b.name])
        #expect(Set([c, d, e].map { offsets[$0.name] }).count == 1)
        #expect(program.lowerBoundBytes == 2 * MemoryPlanner.align(3 * 33 * 4))
    }

    /// A dense layer with a residual Add and ReLU: after epilogue fusion the GEMM writes its
    /// result over the residual, element by element, and still gives the interpreter's numbers.
    @Test func residualEpilogueOverwritesTheResidual() throws {
        let g = Graph(seed: 3)
        let x = try g.input("x", shape: [5, 19])
        let residual = try x.matmul(g.constant(.random(shape: [19, 19], seed: 8)))
        let h = try x.dense(weight: g.constant(.random(shape: [19, 19], seed: 4)), bias: g.constant(.random(shape: [19], seed: 5)))
        let r = try (h + residual).relu()
        let y = try r.matmul(g.constant(.random(shape: [19, 3], seed: 7)))
        let optimized = try Pipeline.run(g, outputs: [y.id])
        let program = try KernelProgram.build(optimized.graph, outputs: [("y", optimized.outputs[0])])
        let epilogue = try #require(program.kernels.first { if case .node(.epilogue) = $0.work { return true } else { return false } })
        let k = try #require(epilogue.inPlaceOperand)
        #expect(epilogue.operands[k].location == epilogue.result.location)
        #expect(epilogue.operands[k].type.shape == [5, 19])

        let feeds = ["x": HostTensor.random(shape: [5, 19], seed: 6, in: -2...2)]
        let got = try g.compile(outputs: ["y": y]).run(feeds)["y"]!
        let expected = try g.interpret(outputs: [("y", y)], feeds: feeds)["y"]!
        #expect(relativeError(got, expected) <= 1e-5)
    }

    /// A product over several K blocks, or one that streams B, writes partial sums into its
    /// result before it reads the residual, so there the residual keeps its own buffer.
    @Test(arguments: [(13, 700), (2, 200)])
    func aResidualOfAMultiBlockProductIsNotOverwritten(rows: Int, depth: Int) throws {
        // 13 x 700: K is two K blocks; 2 x 200: one block, but B is streamed into C.
        let g = Graph(seed: 9)
        let x = try g.input("x", shape: [rows, depth])
        let residual = try x.matmul(g.constant(.random(shape: [depth, 20], seed: 10)))
        let h = try x.dense(weight: g.constant(.random(shape: [depth, 20], seed: 11)))
        let y = try (h + residual).relu().matmul(g.constant(.random(shape: [20, 3], seed: 12)))
        let optimized = try Pipeline.run(g, outputs: [y.id])
        let program = try KernelProgram.build(optimized.graph, outputs: [("y", optimized.outputs[0])])
        let epilogue = try #require(program.kernels.first { if case .node(.epilogue) = $0.work { return true } else { return false } })
        #expect(epilogue.inPlaceOperand == nil)
        let feeds = ["x": HostTensor.random(shape: [rows, depth], seed: 13, in: -1...1)]
        let got = try g.compile(outputs: ["y": y]).run(feeds)["y"]!
        let expected = try g.interpret(outputs: [("y", y)], feeds: feeds)["y"]!
        #expect(relativeError(got, expected) <= 1e-5)
    }

    /// Split by rows among 3 threads, 37 rows go as 18, 18 and 1: the last thread's one row
    /// streams B into C before it reads the residual, so the residual keeps its own buffer even
    /// though the whole product would write C once.
    @Test func aResidualOfAProductWhoseLastRowChunkStreamsIsNotOverwritten() throws {
        let g = Graph(seed: 14)
        let a = try g.input("a", shape: [37, 256]), b = try g.input("b", shape: [256, 24]), z = try g.input("z", shape: [37, 24])
        let residual = try z.softmax(axis: 1)   // a kernel of its own, whose result dies at the sum
        let y = try (a.matmul(b) + residual).softmax(axis: 1)   // the sum in the arena, not an output
        let optimized = try Pipeline.run(g, outputs: [y.id])
        let program = try KernelProgram.build(optimized.graph, outputs: [("y", optimized.outputs[0])], threads: 3)
        let epilogue = try #require(program.kernels.first { if case .node(.epilogue) = $0.work { return true } else { return false } })
        #expect(epilogue.split == .rows(total: 37, chunk: 18))
        #expect(epilogue.operands.count == 3, "the residual is the epilogue's operand")
        #expect(epilogue.inPlaceOperand == nil)
        let feeds = ["a": HostTensor.random(shape: [37, 256], seed: 15), "b": HostTensor.random(shape: [256, 24], seed: 16),
                     "z": HostTensor.random(shape: [37, 24], seed: 17)]
        let got = try g.compile(outputs: ["y": y], options: CompileOptions(threads: 3)).run(feeds)["y"]!
        let expected = try g.interpret(outputs: [("y", y)], feeds: feeds)["y"]!
        #expect(relativeError(got, expected) <= 1e-5)
    }

    /// A batch-1 channel concat whose operands are computed for it alone runs no kernel: its
    /// operands' kernels write into its buffer (ConcatInPlace.swift). One that reads an input, or
    /// a value read elsewhere too, or concatenates along an axis after a longer one, copies.
    @Test(arguments: [1, 2])
    func concatOperandsAreWrittenInPlace(_ threads: Int) throws {
        let g = Graph(seed: 5)
        let x = try g.input("x", shape: [1, 8, 9, 9])
        func conv(_ t: Tensor, _ channels: Int, _ seed: UInt64) throws -> Tensor {
            try t.conv2d(weight: g.constant(.random(shape: [channels, t.shape[1], 3, 3], seed: seed, in: -0.5...0.5)), pads: [1, 1, 1, 1]).relu()
        }
        let a = try conv(x, 16, 1), b = try conv(x, 12, 2)
        let joined = try concat([a, b], axis: 1)                 // runs no kernel
        let shared = try conv(joined, 8, 3)
        let again = try concat([shared, x], axis: 1)              // reads an input: copies
        let wide = try concat([try shared.exp(), try shared.tanh()], axis: 3)   // axis 3 after 8 channels: copies
        let y = try conv(again, 4, 4) + wide.sliced(axes: [1, 3], starts: [0, 0], ends: [4, 9])
        let program = try KernelProgram.build(g, outputs: [("y", y.id)], threads: threads)
        let kernelNodes = Set(program.kernels.map(\.node))
        #expect(!kernelNodes.contains(joined.id))
        #expect(kernelNodes.contains(again.id) && kernelNodes.contains(wide.id))
        let location = { (t: Tensor) in program.kernels.first { $0.node == t.id }!.result.location }
        guard case let .arena(aOffset) = location(a), case let .arena(bOffset) = location(b) else {
            Issue.record("the operands are not in the arena"); return
        }
        #expect(bOffset == aOffset + 16 * 81 * 4)
        // The next convolution reads the whole concat from where its first operand begins.
        #expect(program.kernels.contains { $0.operands.contains { $0.location == .arena(aOffset) && $0.type == joined.type } })

        let feeds = ["x": HostTensor.random(shape: [1, 8, 9, 9], seed: 6, in: -1...1)]
        let got = try g.compile(outputs: ["y": y], options: CompileOptions(threads: threads)).run(feeds)["y"]!
        let expected = try g.interpret(outputs: [("y", y)], feeds: feeds)["y"]!
        #expect(relativeError(got, expected) <= 1e-5)
    }
}
