/// Element types: ONNX's numeric types and bool. Host tensors (HostTensor), graph values and
/// compiled kernels' buffers hold any of them; each op's type rule says which it takes
/// (ShapeRules.swift), and a feed of another type than its input's is refused at run time.
public enum DType: String, Hashable, Sendable, CaseIterable {
    case float32 = "f32"
    case float64 = "f64"
    case float16 = "f16"
    case bfloat16 = "bf16"
    case int8 = "i8"
    case uint8 = "u8"
    case int16 = "i16"
    case uint16 = "u16"
    case int32 = "i32"
    case uint32 = "u32"
    case int64 = "i64"
    case uint64 = "u64"
    case bool = "bool"
    // The narrow types (NarrowTypes.swift): converted and moved only, a byte an element.
    case float8e4m3fn = "f8e4m3fn"
    case float8e4m3fnuz = "f8e4m3fnuz"
    case float8e5m2 = "f8e5m2"
    case float8e5m2fnuz = "f8e5m2fnuz"
    case float8e8m0 = "f8e8m0"
    case float4e2m1 = "f4e2m1"
    case int4 = "i4"
    case uint4 = "u4"
    case int2 = "i2"
    case uint2 = "u2"

    /// Bytes an element: bool takes one, as in ONNX and NumPy, and so does each narrow type
    /// (unpacked).
    public var byteSize: Int {
        switch self {
        case .int8, .uint8, .bool, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1,
             .int4, .uint4, .int2, .uint2: return 1
        case .float16, .bfloat16, .int16, .uint16: return 2
        case .float32, .int32, .uint32: return 4
        case .float64, .int64, .uint64: return 8
        }
    }

    public var isFloatingPoint: Bool {
        [.float32, .float64, .float16, .bfloat16].contains(self) || isNarrowFloat
    }
    public var isInteger: Bool { !isFloatingPoint && self != .bool }
    public var isSigned: Bool { isFloatingPoint || [.int8, .int16, .int32, .int64, .int4, .int2].contains(self) }
    /// The values of an integer type of 8 to 32 bits, to which a float converts by saturating
    /// (Cast); nil for other types (64-bit bounds are not floats, and the narrow integers wrap).
    public var saturatedRange: ClosedRange<Double>? {
        guard isInteger, !isNarrowInteger, byteSize <= 4 else { return nil }
        let bits = byteSize * 8
        return isSigned ? -Double(1 << (bits - 1))...Double((1 << (bits - 1)) - 1) : 0...Double((1 << bits) - 1)
    }

    /// ONNX's TensorProto.DataType code (1 FLOAT, 2 UINT8, ..., 16 BFLOAT16).
    public var onnxCode: Int {
        switch self {
        case .float32: return 1
        case .uint8: return 2
        case .int8: return 3
        case .uint16: return 4
        case .int16: return 5
        case .int32: return 6
        case .int64: return 7
        case .bool: return 9
        case .float16: return 10
        case .float64: return 11
        case .uint32: return 12
        case .uint64: return 13
        case .bfloat16: return 16
        case .float8e4m3fn: return 17
        case .float8e4m3fnuz: return 18
        case .float8e5m2: return 19
        case .float8e5m2fnuz: return 20
        case .uint4: return 21
        case .int4: return 22
        case .float4e2m1: return 23
        case .float8e8m0: return 24
        case .uint2: return 25
        case .int2: return 26
        }
    }

    /// The type of an ONNX TensorProto.DataType code; nil for strings and complex numbers.
    public init?(onnxCode: Int) {
        guard let type = DType.allCases.first(where: { $0.onnxCode == onnxCode }) else { return nil }
        self = type
    }

    /// NumPy's type string, little-endian ("<f4", "|b1"); bfloat16 and the narrow types have
    /// none (NumPy lacks them).
    public var numpyDescr: String? {
        switch self {
        case .float32: return "<f4"
        case .float64: return "<f8"
        case .float16: return "<f2"
        case .bfloat16: return nil
        case .int8: return "|i1"
        case .uint8: return "|u1"
        case .int16: return "<i2"
        case .uint16: return "<u2"
        case .int32: return "<i4"
        case .uint32: return "<u4"
        case .int64: return "<i8"
        case .uint64: return "<u8"
        case .bool: return "|b1"
        default: return nil
        }
    }

    /// The type of a NumPy type string, of either byte order mark ('<', '|' or '=' on this
    /// little-endian host); nil for others, and for big-endian data.
    public init?(numpyDescr descr: String) {
        guard let order = descr.first, "<|=".contains(order) else { return nil }
        let code = descr.dropFirst()
        guard let type = DType.allCases.first(where: { $0.numpyDescr?.dropFirst() == code }) else { return nil }
        self = type
    }

    /// Element `index` of little-endian `bytes` of this type, as a Double (exact for every type
    /// but int64 and uint64 beyond 2^53).
    func value(in bytes: UnsafeRawBufferPointer, at index: Int) -> Double {
        let offset = index * byteSize
        switch self {
        case .float32: return Double(bytes.loadUnaligned(fromByteOffset: offset, as: Float.self))
        case .float64: return bytes.loadUnaligned(fromByteOffset: offset, as: Double.self)
        case .float16: return Double(Float(Float16(bitPattern: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
        case .bfloat16: return Double(Float(bitPattern: UInt32(bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self)) << 16))
        case .int8: return Double(bytes.loadUnaligned(fromByteOffset: offset, as: Int8.self))
        case .uint8: return Double(bytes.loadUnaligned(fromByteOffset: offset, as: UInt8.self))
        case .int16: return Double(bytes.loadUnaligned(fromByteOffset: offset, as: Int16.self))
        case .uint16: return Double(bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
        case .int32: return Double(bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self))
        case .uint32: return Double(bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        case .int64: return Double(bytes.loadUnaligned(fromByteOffset: offset, as: Int64.self))
        case .uint64: return Double(bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        case .bool: return bytes[offset] != 0 ? 1 : 0
        case .float8e8m0: return PowerOfTwoFormat.decode(bytes[offset])
        case .int4, .int2: return Double(Int8(bitPattern: bytes[offset]))
        case .uint4, .uint2: return Double(bytes[offset])
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float4e2m1: return narrowFloat?.decode(bytes[offset]) ?? .nan
        }
    }

    /// Appends `value` converted to this type as ONNX's Cast converts (`converting`, the one
    /// conversion rule: floats rounded to nearest-even, integers truncated toward zero and
    /// saturated at the type's range, NaN to 0, bool true for any non-zero value).
    func append(_ value: Double, to bytes: inout [UInt8]) {
        append(converting(.float(value)), to: &bytes)
    }
}

extension Float {
    /// bfloat16: the upper half of the float32, rounded to nearest-even (NaN kept a NaN).
    var bfloat16Bits: UInt16 {
        let bits = bitPattern
        if isNaN { return UInt16(bits >> 16) | 0x40 }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(rounded >> 16)
    }
}
