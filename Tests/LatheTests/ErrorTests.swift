import Lathe
import Testing

@Suite("Errors: typed, with the op, the shapes and the caller's file:line")
struct ErrorTests {
    @Test func methodShapeErrorNamesOpShapesAndLine() throws {
        let g = Graph()
        let a = try g.input("a", shape: [2, 3])
        let b = try g.input("b", shape: [4, 5])
        let line = #line + 1
        let error = #expect(throws: LatheError.self) { try a.matmul(b) }
        guard case let .shapeMismatch(op, shapes, _, location) = error else {
            Issue.record("expected a shape mismatch, got \(String(describing: error))")
            return
        }
        #expect(op == "matmul")
        #expect(shapes == [[2, 3], [4, 5]])
        #expect(location == SourceLocation(fileID: #fileID, line: line))
        let text = error!.description
        #expect(text.contains("LatheTests/ErrorTests.swift:\(line)"))
        #expect(text.contains("[2, 3]") && text.contains("[4, 5]") && text.contains("matmul"))
    }

    /// A layer's error points at the line where the user created the layer.
    @Test func layerShapeErrorPointsAtTheLayer() throws {
        let g = Graph()
        let x = try g.input("x", shape: [1, 3, 8, 8])
        let line = #line + 1
        let conv = Conv2D(8, kernel: 3, weight: HostTensor(shape: [8, 4, 3, 3]))
        let error = #expect(throws: LatheError.self) { try conv(x) }
        #expect(error?.description.contains("ErrorTests.swift:\(line)") == true)
        #expect(error?.description.contains("[8, 4, 3, 3]") == true)
    }

    /// Token ids declared in the DSL: an op that computes on floats names the op, the types and
    /// the line; ids passed straight through come back as they went in; a feed of another type
    /// is refused by name, compiled or interpreted.
    @Test func typedInputsReachOnlyOpsThatTakeThem() throws {
        let g = Graph()
        let ids = try g.input("ids", dtype: .int64, shape: [1, 4])
        let line = #line + 1
        let error = #expect(throws: LatheError.self) { try ids.softmax() }
        #expect(error?.description.hasPrefix("LatheTests/ErrorTests.swift:\(line): element type error in softmax") == true, "\(String(describing: error))")
        let model = try g.compile(outputs: ["ids": ids, "next": try ids + 1])
        let feed = try HostTensor(shape: [1, 4], values: [101, 16_777_217, -1, Int64.max] as [Int64])
        let out = try model.run(["ids": feed])
        #expect(out["ids"] == feed)
        #expect(try out["next"]!.values(as: Int64.self) == [102, 16_777_218, 0, Int64.min])
        #expect(throws: LatheError.inputElementTypeMismatch(name: "ids", expected: .int64, got: .float32)) {
            try model.run(["ids": HostTensor(shape: [1, 4], scalars: [1, 2, 3, 4])])
        }
        // The float-buffer path is for f32 models; the byte path takes any type.
        var out64 = [Float](repeating: 0, count: 8)
        #expect(throws: LatheError.self) {
            try [Float](repeating: 0, count: 4).withUnsafeBufferPointer { input in
                try out64.withUnsafeMutableBufferPointer { try model.run(inputs: [input], outputs: [$0, $0]) }
            }
        }
    }

    @Test func kernelTooLargeForInput() throws {
        let g = Graph()
        let x = try g.input("x", shape: [1, 1, 4, 4])
        let w = try g.input("w", shape: [2, 1, 5, 5])
        let line = #line + 1
        let error = #expect(throws: LatheError.self) { try x.conv2d(weight: w) }
        #expect(error?.description.contains("ErrorTests.swift:\(line): shape error in conv2d") == true)
    }

    /// Operators cannot capture #line, so their errors say where the operands were made.
    @Test func operatorErrorNamesOperandOrigins() throws {
        let g = Graph()
        let line = #line + 1
        let a = try g.input("a", shape: [3]), b = try g.input("b", shape: [4])
        let error = #expect(throws: LatheError.self) { try a + b }
        let text = error?.description ?? ""
        #expect(text.contains("add of a from LatheTests/ErrorTests.swift:\(line), b from LatheTests/ErrorTests.swift:\(line)"))
        #expect(text.contains("do not broadcast"))
    }

    @Test func invalidAttributes() throws {
        let g = Graph()
        let x = try g.input("x", shape: [2, 3])
        #expect(throws: LatheError.self) { try x.transposed([0, 0]) }
        #expect(throws: LatheError.self) { try x.softmax(axis: 2) }
        #expect(throws: LatheError.self) { try x.reshaped([4, -1]) }
        #expect(throws: LatheError.self) { try x.dropout(rate: 1.5) }
        #expect(throws: LatheError.duplicateName("x")) { try g.input("x", shape: [1]) }
        #expect(throws: LatheError.self) { try g.input("bad", shape: [-1, 2]) }
    }

    @Test func valuesOfAnotherGraphAreRejected() throws {
        let g1 = Graph(), g2 = Graph()
        let a = try g1.input("a", shape: [3]), b = try g2.input("b", shape: [3])
        #expect(throws: LatheError.self) { try a.adding(b) }
        #expect(throws: LatheError.self) { try g2.compile(outputs: ["a": a]) }
    }

    @Test func runTimeInputChecks() throws {
        let g = Graph()
        let x = try g.input("x", shape: [2, 3])
        let model = try g.compile(outputs: ["y": try x.relu()])
        #expect(throws: LatheError.inputShapeMismatch(name: "x", expected: [2, 3], got: [3, 2])) {
            try model.run(["x": HostTensor(shape: [3, 2])])
        }
        #expect(throws: LatheError.missingInput(name: "x")) { try model.run([:]) }
        #expect(throws: LatheError.unknownInput(name: "z", known: ["x"])) {
            try model.run(["x": HostTensor(shape: [2, 3]), "z": HostTensor(shape: [1])])
        }
        let small = [Float](repeating: 0, count: 5)
        var out = [Float](repeating: 0, count: 6)
        try small.withUnsafeBufferPointer { input in
            try out.withUnsafeMutableBufferPointer { output in
                #expect(throws: LatheError.inputSizeMismatch(name: "x", expectedCount: 6, got: 5)) {
                    try model.run(inputs: [input], outputs: [output])
                }
                #expect(throws: LatheError.wrongInputCount(expected: 1, got: 2)) {
                    try model.run(inputs: [input, input], outputs: [output])
                }
            }
        }
        #expect(throws: LatheError.invalidTensor(shape: [2, 2], scalarCount: 3)) { try HostTensor(shape: [2, 2], scalars: [1, 2, 3]) }
    }

    @Test func duplicateOutputNames() throws {
        let g = Graph()
        let x = try g.input("x", shape: [2])
        #expect(throws: LatheError.duplicateName("y")) { try g.compile(outputs: [("y", x), ("y", x)]) }
    }

    /// Outputs that are inputs, or repeat, are copied; the arena path stays correct.
    @Test func outputsThatAreInputsOrRepeat() throws {
        let g = Graph()
        let x = try g.input("x", shape: [3])
        let y = try x.exp()
        let model = try g.compile(outputs: [("x", x), ("y", y), ("y2", y)])
        let xs = try HostTensor(shape: [3], scalars: [0, 1, -1])
        let out = try model.run(["x": xs])
        #expect(out["x"] == xs)
        #expect(out["y"] == out["y2"])
        #expect(abs(out["y"]!.scalars[1] - 2.7182817) < 1e-6)
    }
}

@Suite("Layer configuration errors")
struct LayerConfigurationTests {
    @Test func badLayerSettingsThrowInsteadOfTrapping() throws {
        let g = Graph()
        let image = try g.input("image", shape: [1, 3, 8, 8])
        let flat = try g.input("flat", shape: [2, 5])
        #expect(throws: LatheError.self) { try Dense(0)(flat) }
        #expect(throws: LatheError.self) { try Conv2D(4, kernel: 0)(image) }
        #expect(throws: LatheError.self) { try Conv2D(4, kernel: 3, stride: 0, padding: .same)(image) }
        #expect(throws: LatheError.self) { try Conv2D(5, kernel: 3, groups: 3)(image) }
        #expect(throws: LatheError.self) { try MaxPool2D(0)(image) }
        #expect(throws: LatheError.self) { try MaxPool2D(2, stride: 0, padding: .same)(image) }
        #expect(throws: LatheError.self) { try BatchNorm(scale: HostTensor(shape: [3]))(image) }
        #expect(throws: LatheError.self) {
            let p = HostTensor(shape: [4])
            return try BatchNorm(scale: p, bias: p, mean: p, variance: p)(image)
        }
        #expect(HostTensor(shape: [-2, 3]).count == 0)
    }
}

@Suite("Absurd sizes are errors, not traps")
struct HugeShapeTests {
    @Test func hugeShapesThrow() throws {
        let g = Graph()
        #expect(throws: LatheError.self) { try g.input("x", shape: [1 << 40, 1 << 40]) }
        let x = try g.input("x", shape: [2, 3])
        #expect(throws: LatheError.self) { try x.reshaped([Int.max, 2, -1]) }
        #expect(throws: LatheError.self) { try x.reshaped([1 << 62, 1 << 62]) }
        #expect(throws: LatheError.self) { try x.apply(.pad(pads: [0, 0, Int.max, 0], value: 0), [], .unknown) }
        #expect(throws: LatheError.self) { try HostTensor(shape: [1 << 62, 4], scalars: []) }
        #expect(HostTensor(shape: [1 << 40, 1 << 40]).count == 0)
    }
}
