import LatheIR
import Testing

/// The narrow types' conversions, on values whose results ONNX's own Cast tests fix (their
/// inputs and expected outputs, from onnx's backend test data), and on every bit pattern.
@Suite("Narrow types: 8- and 4-bit floats, 4- and 2-bit integers")
struct NarrowTypeTests {
    static func cast(_ values: [Float], to dtype: DType, rule: CastRule = .standard) -> [Double] {
        values.map { dtype.converting(.float(Double($0)), rule: rule).double }
    }

    /// Equal, NaN equal to NaN, and zeros by their sign.
    static func same(_ a: [Double], _ b: [Double]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { x, y in (x.isNaN && y.isNaN) || (x == y && x.sign == y.sign) }
    }

    static let onnxInputs: [Float] = [0.47892547, 0.48033667, 0.49968487, 0.81910545, 0.47031248, 0.7229038, 1_000_000, 1e-7,
                                      .nan, .infinity, .infinity, -.infinity, -0.0000001, 0.0000001, -1_000_000]

    @Test func float8AsOnnxCasts() {
        #expect(Self.same(Self.cast(Self.onnxInputs, to: .float8e4m3fn),
                          [0.46875, 0.46875, 0.5, 0.8125, 0.46875, 0.75, 448, 0, .nan, 448, 448, -448, -0.0, 0, -448]))
        #expect(Self.same(Self.cast(Self.onnxInputs, to: .float8e4m3fn, rule: CastRule(saturate: false)),
                          [0.46875, 0.46875, 0.5, 0.8125, 0.46875, 0.75, .nan, 0, .nan, .nan, .nan, .nan, -0.0, 0, .nan]))
        #expect(Self.same(Self.cast(Self.onnxInputs, to: .float8e5m2, rule: CastRule(saturate: false)),
                          [0.5, 0.5, 0.5, 0.875, 0.5, 0.75, .infinity, 0, .nan, .infinity, .infinity, -.infinity, -0.0, 0, -.infinity]))
        #expect(Self.same(Self.cast(Self.onnxInputs, to: .float8e5m2),
                          [0.5, 0.5, 0.5, 0.875, 0.5, 0.75, 57344, 0, .nan, 57344, 57344, -57344, -0.0, 0, -57344]))
        // No negative zero in the FNUZ types; their largest values 240 and 57344.
        #expect(Self.same(Self.cast([-0.0000001, 0.0000001, -1_000_000, 300], to: .float8e4m3fnuz), [0, 0, -240, 240]))
        #expect(Self.same(Self.cast([1e6, -1e6, .nan], to: .float8e5m2fnuz, rule: CastRule(saturate: false)), [.nan, .nan, .nan]))
    }

    @Test func float4AsOnnxCasts() {
        let inputs: [Float] = [0.48, 0.25, 1.05, -3.5, -8, 9, 1_000_000, 1e-7, .nan, .infinity, .infinity, -.infinity, -4, 0.01, -0.0]
        // 0.25 and -3.5 are ties (to 0 and -4, the even ones); a NaN becomes -0 (ml_dtypes').
        #expect(Self.same(Self.cast(inputs, to: .float4e2m1), [0.5, 0, 1, -4, -6, 6, 6, 0, -0.0, 6, 6, -6, -4, 0, -0.0]))
        #expect(Self.same(Self.cast(inputs, to: .float4e2m1, rule: CastRule(saturate: false)), Self.cast(inputs, to: .float4e2m1)), "no infinity or NaN to overflow to")
    }

    @Test func powerOfTwoAsOnnxCasts() {
        let inputs: [Float] = [0, 0.124, 0.25, 0.5, 1.1, 2, 4, 8]
        let tiny = 0x1p-127
        #expect(Self.same(Self.cast(inputs, to: .float8e8m0), [tiny, 0.125, 0.25, 0.5, 2, 2, 4, 8]))
        #expect(Self.same(Self.cast(inputs, to: .float8e8m0, rule: CastRule(powerOfTwoRounding: .down)), [tiny, 0.0625, 0.25, 0.5, 1, 2, 4, 8]))
        #expect(Self.same(Self.cast([1.1, 1.5, 0.124, 3, -3], to: .float8e8m0, rule: CastRule(powerOfTwoRounding: .nearest)), [1, 2, 0.125, 4, 4]))
        #expect(Self.same(Self.cast([.infinity, .nan, 0x1.8p127], to: .float8e8m0), [.nan, .nan, 0x1p127]), "saturating keeps 2^127")
        #expect(Self.same(Self.cast([0x1.8p127], to: .float8e8m0, rule: CastRule(saturate: false)), [.nan]))
    }

    @Test func narrowIntegersWrap() {
        let inputs = (-9...15).map(Float.init)
        #expect(Self.cast(inputs, to: .int4) == [7, -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1])
        #expect(Self.cast(inputs, to: .uint4) == (-9...15).map { Double(($0 + 16) % 16) })
        #expect(Self.cast([-3, -2, -1, 0, 1, 2, 3, 2.9, .nan], to: .uint2) == [1, 2, 3, 0, 1, 2, 3, 2, 0])
        #expect(Self.cast([-3, -2, -1, 0, 1, 2, 3], to: .int2) == [1, -2, -1, 0, 1, -2, -1])
        #expect(DType.int4.converting(.signed(300)) == .signed(-4) && DType.uint2.converting(.unsigned(7)) == .unsigned(3))
    }

    /// Every bit pattern decodes to a value that encodes back to it (NaNs to the type's NaN, the
    /// FNUZ types' one NaN being where -0 would be), and rounding a value of the type keeps it.
    @Test(arguments: [DType.float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float4e2m1])
    func everyBitPatternRoundTrips(_ dtype: DType) throws {
        let format = try #require(dtype.narrowFloat)
        let codes = 0..<(format.signBit * 2)
        for code in codes.map(UInt8.init) {
            let v = format.decode(code)
            if v.isNaN {
                #expect(format.decode(format.encode(v)).isNaN, "\(dtype) \(code)")
                continue
            }
            #expect(format.encode(v) == code, "\(dtype) code \(code) is \(v), encoded as \(format.encode(v))")
            #expect(Self.same([format.rounded(v, saturate: true)], [v]) || (v.isInfinite), "\(dtype) \(v)")
        }
        // Halfway between the two largest finite values rounds to the even one; past the last,
        // saturation or overflow.
        let largest = format.maxFinite
        #expect(format.rounded(largest * 1.01, saturate: true) == largest)
        #expect(format.rounded(-.infinity, saturate: true) == -largest)
    }

    @Test func powerOfTwoBitPatterns() {
        for code in 0...254 {
            let v = PowerOfTwoFormat.decode(UInt8(code))
            #expect(PowerOfTwoFormat.encode(v) == UInt8(code), "\(code)")
            // 2^-127 is a float32 subnormal, whose fraction ONNX's rule rounds up to 2^-126.
            #expect(PowerOfTwoFormat.code(Float(v), rule: .standard) == UInt8(code == 0 ? 1 : code), "\(code): a power of two is kept")
        }
        #expect(PowerOfTwoFormat.decode(0xFF).isNaN)
    }

    /// A narrow integer's byte is its value wrapped to its width, however it was given.
    @Test func narrowIntegerBytesAreWrapped() throws {
        #expect(try HostTensor(shape: [3], dtype: .int4, bytes: [0x0F, 0x07, 0xF8]).scalars == [-1, 7, -8])
        #expect(try HostTensor(shape: [2], dtype: .uint2, bytes: [0x07, 0xFF]).scalars == [3, 3])
    }

    /// Ops other than cast and data movement refuse them, naming the cure.
    @Test func onlyCastAndMovementTakeThem() throws {
        for dtype in [DType.float8e4m3fn, .int4, .float8e8m0] {
            do {
                _ = try Op.binary(.add).inferType([TensorType(dtype, [3]), TensorType(dtype, [3])])
                Issue.record("add on \(dtype.rawValue) was accepted")
            } catch {
                #expect(error.isElementType && error.reason == "add does not compute on \(dtype.rawValue), which is only converted and moved: cast it first", "\(error.reason)")
            }
            #expect(try Op.cast(to: .float32).inferType([TensorType(dtype, [3])]) == TensorType(.float32, [3]))
            #expect(try Op.transpose(perm: [1, 0]).inferType([TensorType(dtype, [2, 3])]) == TensorType(dtype, [3, 2]))
            #expect(!dtype.isComputed)
        }
    }
}
