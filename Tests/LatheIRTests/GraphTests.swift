import LatheIR
import LathePasses
import Testing

@Suite("Graph IR: shape rules, printer, verifier")
struct GraphTests {
    @Test func broadcasting() throws {
        #expect(try broadcastShapes([4, 1, 9], [5, 1]) == [4, 5, 9])
        #expect(try broadcastShapes([], [3]) == [3])
        #expect(throws: OpRuleFailure.self) { try broadcastShapes([3], [4]) }
        #expect(broadcastStrides(of: [5, 1], to: [4, 5, 9]) == [0, 1, 0])
    }

    @Test func matmulShapes() throws {
        #expect(try matmulShape([3, 1, 9, 13], [2, 13, 6]) == [3, 2, 9, 6])
        #expect(try matmulShape([13], [13, 5]) == [5])
        #expect(try matmulShape([4, 13], [13]) == [4])
        #expect(throws: OpRuleFailure.self) { try matmulShape([4, 12], [13, 2]) }
    }

    @Test func convAndPoolShapes() throws {
        let conv = Op.conv2d(Conv2DAttributes(strides: [2, 2], pads: [1, 1, 1, 1]))
        #expect(try conv.inferType([TensorType(.float32, [2, 3, 11, 13]), TensorType(.float32, [5, 3, 3, 3])]).shape == [2, 5, 6, 7])
        let pool = Op.pool2d(Pool2DAttributes(kind: .max, kernel: [2, 2], strides: [2, 2]))
        #expect(try pool.inferType([TensorType(.float32, [1, 32, 26, 26])]).shape == [1, 32, 13, 13])
        #expect(throws: OpRuleFailure.self) { try conv.inferType([TensorType(.float32, [2, 4, 11, 13]), TensorType(.float32, [5, 3, 3, 3])]) }
    }

    @Test func printedIR() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [2, 3], location: SourceLocation(fileID: "M/model.swift", line: 10))
        let b = g.addConstant(HostTensor(shape: [3], repeating: 1), name: "b")
        let y = try g.addNode(.binary(.add), [x, b], location: SourceLocation(fileID: "M/model.swift", line: 11))
        let z = try g.addNode(.softmax(axis: 1), [y], name: "probs")
        #expect(g.text(outputs: [("out", z)]) == """
            %0 = input {name="x"} : f32[2, 3]  # x  (M/model.swift:10)
            %1 = constant {slot=0} : f32[3]  # b
            %2 = add(%0, %1) : f32[2, 3]  # add_2  (M/model.swift:11)
            %3 = softmax(%2) {axis=1} : f32[2, 3]  # probs
            output "out" = %3

            """)
    }

    @Test func verifierAcceptsBuiltGraphsAndRejectsForeignOutputs() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [4])
        let y = try g.addNode(.unary(.relu), [x])
        try Verifier().run(g, outputs: [y])
        #expect(throws: LatheError.self) { try Verifier().run(g, outputs: [ValueID(7)]) }
    }

    @Test func errorsCarryTheLocation() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [4])
        let at = SourceLocation(fileID: "App/net.swift", line: 42)
        #expect(throws: LatheError.shapeMismatch(op: "matmul", shapes: [[4], [3, 2]], reason: "inner dimensions differ: 4 and 3", location: at)) {
            try g.addNode(.matmul, [x, try g.addInput(name: "w", shape: [3, 2])], location: at)
        }
        #expect(throws: LatheError.invalidAttribute(op: "transpose", reason: "perm [1] is not a permutation of the 1 axes", location: at)) {
            try g.addNode(.transpose(perm: [1]), [x], location: at)
        }
    }
}

@Suite("Reference interpreter: hand-computed values")
struct InterpreterTests {
    func run(_ g: Graph, _ v: ValueID, _ feeds: [String: HostTensor]) throws -> [Float] {
        try Interpreter.run(g, outputs: [v], feeds: feeds)[0].scalars
    }

    @Test func convolutionWithPaddingAndBias() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [1, 1, 3, 3])
        let w = g.addConstant(try HostTensor(shape: [1, 1, 2, 2], scalars: [1, 2, 3, 4]))
        let b = g.addConstant(try HostTensor(shape: [1], scalars: [10]))
        let y = try g.addNode(.conv2d(Conv2DAttributes(strides: [2, 2], pads: [1, 1, 0, 0])), [x, w, b])
        // Input 1...9; output (2x2): windows at (-1,-1), (-1,1), (1,-1), (1,1).
        let out = try run(g, y, ["x": try HostTensor(shape: [1, 1, 3, 3], scalars: [1, 2, 3, 4, 5, 6, 7, 8, 9])])
        let expected: [Float] = [14, 28, 46, 87]   // 10+4*1, 10+3*2+4*3, 10+2*4+4*7, 10+1*5+2*6+3*8+4*9
        #expect(out == expected)
    }

    @Test func averagePoolLeavesPaddingOut() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [1, 1, 2, 2])
        let y = try g.addNode(.pool2d(Pool2DAttributes(kind: .average, kernel: [2, 2], strides: [1, 1], pads: [1, 1, 0, 0])), [x])
        let out = try run(g, y, ["x": try HostTensor(shape: [1, 1, 2, 2], scalars: [1, 2, 3, 4])])
        #expect(out == [1, 1.5, 2, 2.5])
    }

    @Test func softmaxAndReductions() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [2, 2])
        let s = try g.addNode(.softmax(axis: 1), [x])
        let m = try g.addNode(.reduce(.max, axes: [0], keepDims: false), [x])
        let feeds = ["x": try HostTensor(shape: [2, 2], scalars: [0, 0, 1, 3])]
        let soft = try run(g, s, feeds)
        #expect(soft[0] == 0.5 && soft[1] == 0.5)
        #expect(abs(soft[3] - 0.880797) < 1e-6)
        #expect(try run(g, m, feeds) == [1, 3])
    }

    @Test func transposeSliceConcat() throws {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: [2, 3])
        let t = try g.addNode(.transpose(perm: [1, 0]), [x])
        let s = try g.addNode(.slice(starts: [0, 1], ends: [2, 3], steps: [1, 2]), [x])
        let c = try g.addNode(.concat(axis: 1), [x, s])
        let feeds = ["x": try HostTensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])]
        #expect(try run(g, t, feeds) == [1, 4, 2, 5, 3, 6])
        #expect(try run(g, s, feeds) == [2, 5])
        #expect(try run(g, c, feeds) == [1, 2, 3, 2, 4, 5, 6, 5])
    }
}
