import Foundation
import LatheIR
import Testing

@Suite("Element types: host tensors of every type, .npy files, feeds")
struct ElementTypeTests {
    /// A tensor of each type whose values that type holds exactly, extremes included.
    static func sample(_ dtype: DType) throws -> HostTensor {
        let shape = [2, 3]
        switch dtype {
        case .float32: return try HostTensor(shape: shape, values: [Float(0), -1.5, .greatestFiniteMagnitude, .infinity, 1e-40, 3])
        case .float64: return try HostTensor(shape: shape, values: [0, -1.5, 1e300, -.infinity, 5e-324, 1.0 / 3])
        case .float16: return try HostTensor(shape: shape, values: [Float16(0), -1.5, 65504, .infinity, Float16(bitPattern: 1), 0.333])
        case .bfloat16:
            var t = try HostTensor(shape: shape, dtype: .bfloat16, bytes: Array(repeating: 0, count: 12))
            t.scalars = [0, -1.5, 3.0e38, .infinity, 1, 256]
            return t
        case .int8: return try HostTensor(shape: shape, values: [Int8.min, -1, 0, 1, 100, .max])
        case .uint8: return try HostTensor(shape: shape, values: [UInt8(0), 1, 2, 127, 128, .max])
        case .int16: return try HostTensor(shape: shape, values: [Int16.min, -1, 0, 1, 300, .max])
        case .uint16: return try HostTensor(shape: shape, values: [UInt16(0), 1, 2, 300, 40000, .max])
        case .int32: return try HostTensor(shape: shape, values: [Int32.min, -1, 0, 16_777_217, 100, .max])
        case .uint32: return try HostTensor(shape: shape, values: [UInt32(0), 1, 2, 16_777_217, 3_000_000_000, .max])
        case .int64: return try HostTensor(shape: shape, values: [Int64.min, -1, 0, 16_777_217, 9_007_199_254_740_993, .max])
        case .uint64: return try HostTensor(shape: shape, values: [UInt64(0), 1, 2, 9_007_199_254_740_993, 1 << 63, .max])
        case .bool: return try HostTensor(shape: shape, values: [true, false, false, true, true, false])
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1, .int4, .uint4, .int2, .uint2:
            // Bytes holding values of the type: codes 0...5 of a narrow float, a narrow integer's smallest and largest.
            let low = dtype.isSigned && dtype.isInteger ? -(1 << (dtype.valueBits - 1)) : 0
            let high = dtype.isInteger ? (1 << (dtype.valueBits - (dtype.isSigned ? 1 : 0))) - 1 : 5
            let bytes: [UInt8] = dtype.isInteger ? [low, -1, 0, 1, high - 1, high].map { UInt8(truncatingIfNeeded: max(low, min(high, $0))) } : [0, 1, 2, 3, 4, 5]
            return try HostTensor(shape: shape, dtype: dtype, bytes: bytes)
        }
    }

    @Test(arguments: DType.allCases)
    func everyTypeKeepsItsValuesThroughNpy(_ dtype: DType) throws {
        let t = try Self.sample(dtype)
        #expect(t.dtype == dtype && t.count == 6 && t.rawBytes.count == 6 * dtype.byteSize)
        let back = try HostTensor(npy: t.npyData)
        if dtype.numpyDescr == nil {
            // NumPy has no bfloat16 and no narrow types: written as float32, the same values.
            #expect(back.dtype == .float32 && back.scalars == t.scalars)
        } else {
            #expect(back == t, "\(dtype) through .npy")
        }
        #expect(DType(onnxCode: dtype.onnxCode) == dtype)
        if let descr = dtype.numpyDescr { #expect(DType(numpyDescr: descr) == dtype) }
    }

    /// Integer ids past float32's 2^24 come back exactly: an int64 file is no longer read as floats.
    @Test func largeIntegersStayExact() throws {
        let ids: [Int64] = [16_777_217, 9_007_199_254_740_993, -9_007_199_254_740_993]
        let t = try HostTensor(npy: HostTensor(shape: [3], values: ids).npyData)
        #expect(try t.values(as: Int64.self) == ids)
        #expect(throws: LatheError.elementTypeMismatch(what: "tensor [3]", expected: .int32, got: .int64)) { try t.values(as: Int32.self) }
    }

    /// Setting the float32 view stores the values as ONNX's Cast would: integers truncated
    /// toward zero and saturated (NaN to 0), bool true for non-zero, halves rounded to even.
    @Test func settingScalarsConvertsAsCastDoes() throws {
        var small = try HostTensor(shape: [5], values: [Int8](repeating: 0, count: 5))
        small.scalars = [300, -300, 2.7, -2.7, .nan]
        #expect(try small.values(as: Int8.self) == [127, -128, 2, -2, 0])
        small.scalars[0] = 5   // in place, through the float32 view
        #expect(try small.values(as: Int8.self) == [5, -128, 2, -2, 0])
        var flags = try HostTensor(shape: [3], values: [false, false, false])
        flags.scalars = [0, 2, -0.5]
        #expect(try flags.values(as: Bool.self) == [false, true, true])
        var halves = try HostTensor(shape: [2], values: [Float16(0), 0])
        halves.scalars = [1 + 0x1p-11, 1 + 3 * 0x1p-11]   // halfway cases: to the even neighbour
        #expect(try halves.values(as: Float16.self) == [1, 1 + 0x1p-9])
        var brains = try HostTensor(shape: [2], dtype: .bfloat16, bytes: [0, 0, 0, 0])
        brains.scalars = [1 + 0x1p-8, 1 + 3 * 0x1p-8]
        #expect(brains.scalars == [1, 1 + 0x1p-6])
        let oddBool = try HostTensor(shape: [2], dtype: .bool, bytes: [0, 7])
        #expect(try oddBool.values(as: Bool.self) == [false, true])
    }

    @Test func badTypedTensorsThrow() throws {
        #expect(throws: LatheError.self) { try HostTensor(shape: [2, 2], values: [Int64(1), 2, 3]) }
        #expect(throws: LatheError.self) { try HostTensor(shape: [2], dtype: .int32, bytes: [0, 0, 0]) }
        #expect(DType(numpyDescr: ">i8") == nil && DType(numpyDescr: "<U3") == nil && DType(onnxCode: 8) == nil)
    }

    /// A feed of another element type is an error naming both types, never a conversion.
    @Test func feedsOfAnotherTypeAreRefused() throws {
        let specs = [InputSpec(name: "x", shape: [2])]
        #expect(throws: LatheError.inputElementTypeMismatch(name: "x", expected: .float32, got: .int64)) {
            try checkFeeds(specs, ["x": HostTensor(shape: [2], values: [Int64(1), 2])])
        }
        try checkFeeds(specs, ["x": HostTensor(shape: [2], scalars: [1, 2])])
        let message = LatheError.inputElementTypeMismatch(name: "x", expected: .float32, got: .int64).description
        #expect(message == "input 'x' holds i64 elements, the model expects f32 (feeds are not converted)")
    }
}

@Suite("Element types in the graph: typed inputs and constants, and ops that refuse them")
struct GraphElementTypeTests {
    @Test func anOpGivenAnotherTypeIsAnElementTypeError() throws {
        let g = Graph()
        let ids = try g.addInput(name: "ids", shape: [2, 3], dtype: .int64, location: SourceLocation(fileID: "M/ids.swift", line: 4))
        let x = try g.addInput(name: "x", shape: [2, 3])
        #expect(g[ids].type == TensorType(.int64, [2, 3]))
        #expect(throws: LatheError.elementTypeError(op: "add", types: [.float32, .int64], reason: "add takes operands of one type, got f32 and i64",
                                                   location: SourceLocation(fileID: "M/net.swift", line: 9))) {
            try g.addNode(.binary(.add), [x, ids], location: SourceLocation(fileID: "M/net.swift", line: 9))
        }
        let message = LatheError.elementTypeError(op: "add", types: [.float32, .int64], reason: "add takes operands of one type, got f32 and i64",
                                                  location: SourceLocation(fileID: "M/net.swift", line: 9)).description
        #expect(message == "M/net.swift:9: element type error in add: add takes operands of one type, got f32 and i64 (operand types: f32, i64)")
        // An op that computes on f32 alone names the operand.
        #expect(throws: LatheError.elementTypeError(op: "softmax", types: [.int64], reason: "takes f32 operands; operand 0 is i64[2, 3]",
                                                   location: SourceLocation(fileID: "M/net.swift", line: 10))) {
            try g.addNode(.softmax(axis: 1), [ids], location: SourceLocation(fileID: "M/net.swift", line: 10))
        }
        let mask = g.addConstant(try HostTensor(shape: [3], values: [true, false, true]), name: "mask")
        #expect(g[mask].type == TensorType(.bool, [3]))
    }

    /// The interpreter passes a typed input through to an output, fed with its own type only.
    @Test func theInterpreterTakesTypedFeeds() throws {
        let g = Graph()
        let ids = try g.addInput(name: "ids", shape: [3], dtype: .int64)
        let feed = try HostTensor(shape: [3], values: [Int64(7), 16_777_217, -1])
        #expect(try Interpreter.run(g, outputs: [ids], feeds: ["ids": feed]) == [feed])
        #expect(throws: LatheError.inputElementTypeMismatch(name: "ids", expected: .int64, got: .float32)) {
            try Interpreter.run(g, outputs: [ids], feeds: ["ids": HostTensor(shape: [3], scalars: [7, 1, -1])])
        }
    }
}

@Suite("cast: ONNX's Cast between element types, in the interpreter")
struct CastTests {
    func cast(_ t: HostTensor, to dtype: DType) throws -> HostTensor {
        let g = Graph()
        let x = try g.addInput(name: "x", shape: t.shape, dtype: t.dtype)
        let y = try g.addNode(.cast(to: dtype), [x])
        #expect(g[y].type == TensorType(dtype, t.shape))
        return try Interpreter.run(g, outputs: [y], feeds: ["x": t])[0]
    }

    @Test func convertsAsCastDoes() throws {
        let floats = try HostTensor(shape: [6], scalars: [300, -300, 2.7, -2.7, .nan, 0])
        #expect(try cast(floats, to: .int8).values(as: Int8.self) == [127, -128, 2, -2, 0, 0])
        #expect(try cast(floats, to: .uint8).values(as: UInt8.self) == [255, 0, 2, 0, 0, 0])
        #expect(try cast(floats, to: .bool).values(as: Bool.self) == [true, true, true, true, true, false])
        let ids = try HostTensor(shape: [3], values: [Int64(16_777_217), -5, 7])
        #expect(try cast(ids, to: .float32).scalars == [16_777_216, -5, 7])   // f32's nearest
        #expect(try cast(ids, to: .float64).values(as: Double.self) == [16_777_217, -5, 7])
        #expect(try cast(ids, to: .int64) == ids)
        let halves = try cast(HostTensor(shape: [2], scalars: [1 + 0x1p-11, 65520]), to: .float16)
        #expect(try halves.values(as: Float16.self) == [1, .infinity])   // halfway to even; past the largest half
    }

    /// A host tensor converts as the cast op does (one rule, DType.converting): a narrower
    /// integer wraps, an int64 past 2^53 rounds once to f32.
    @Test func hostConversionIsTheCastOps() throws {
        let ids = try HostTensor(shape: [3], values: [300, -129, 4_611_686_293_305_294_849] as [Int64])
        for to in [DType.int8, .uint8, .float32, .bfloat16, .float16, .int32] {
            #expect(try ids.converted(to: to) == cast(ids, to: to), "i64 to \(to.rawValue)")
        }
        #expect(try ids.converted(to: .int8).values(as: Int8.self) == [44, 127, 1])
    }

    /// Token ids cast to f32 feed the float ops; a float-only op given the ids uncast is an
    /// element type error.
    @Test func idsCastToFloatFeedFloatOps() throws {
        let g = Graph()
        let ids = try g.addInput(name: "ids", shape: [4], dtype: .int64)
        let x = try g.addNode(.cast(to: .float32), [ids])
        let y = try g.addNode(.unary(.neg), [x])
        let out = try Interpreter.run(g, outputs: [y], feeds: ["ids": HostTensor(shape: [4], values: [Int64(1), 2, -3, 0])])[0]
        #expect(out.scalars == [-1, -2, 3, 0])
        #expect(throws: LatheError.self) { try g.addNode(.unary(.exp), [ids]) }
    }
}
