import Foundation
import LatheIR

/// A tensor known at import time: an initializer, a Constant node, or the folded result of a
/// computation over constants (shape subgraphs: Shape, Gather, Concat, Unsqueeze, ...). It
/// keeps its ONNX element type exactly, so that shape arithmetic folds exactly and a constant
/// becomes a graph constant of its own type.
struct ConstantTensor {
    var tensor: HostTensor
    /// The ONNX name it was defined under (an initializer or a Constant's output), so that it
    /// becomes one graph constant however often it is used.
    var origin: String?

    init(_ tensor: HostTensor) { self.tensor = tensor }

    init(shape: [Int], floats: [Float]) {
        tensor = (try? HostTensor(shape: shape, scalars: floats)) ?? HostTensor(shape: [0])
    }

    /// An int64 tensor (ONNX's type for shapes and indices), or of `dtype` converted from them.
    init(shape: [Int], ints: [Int64], dtype: DType = .int64) {
        let values = (try? HostTensor(shape: shape, values: ints)) ?? HostTensor(shape: [0])
        tensor = (try? values.converted(to: dtype)) ?? values
    }

    var shape: [Int] { tensor.shape }
    var dtype: DType { tensor.dtype }
    var count: Int { tensor.count }
    /// Integers and bools: what shape computations fold.
    var isInteger: Bool { !dtype.isFloatingPoint }

    var floats: [Float] { tensor.scalars }

    /// The values as int64: exact for integer types, floats truncated and clamped.
    var ints: [Int64] {
        guard isInteger else { return floats.map { $0.isFinite ? Int64(max(min($0, 9.2e18), -9.2e18)) : 0 } }
        return tensor.withUnsafeBytes { raw in
            (0..<count).map { i -> Int64 in
                switch dtype.scalar(in: raw, at: i) {
                case let .signed(v): return v
                case let .unsigned(v): return Int64(truncatingIfNeeded: v)
                case let .bool(v): return v ? 1 : 0
                case let .float(v): return Int64(v)
                }
            }
        }
    }

    /// The values as Ints, clamped into Int's range.
    var intValues: [Int] { ints.map { Int($0) } }

    var hostTensor: HostTensor { tensor }

    func reshaped(_ newShape: [Int]) -> ConstantTensor {
        ConstantTensor((try? HostTensor(shape: newShape, dtype: dtype, bytes: tensor.rawBytes)) ?? tensor)
    }
}

extension ConstantTensor {
    /// Decodes a TensorProto: raw little-endian bytes or the typed repeated fields.
    init(_ proto: Onnx_TensorProto, name: String) throws {
        let shape = proto.dims.map { Int($0) }
        guard let count = elementCount(shape) else {
            throw LatheError.malformedModel("tensor '\(name)' has shape \(shape): a negative dimension or too many elements")
        }
        if proto.dataLocation == .external {
            throw LatheError.malformedModel("tensor '\(name)' keeps its data in an external file, which Lathe does not read yet")
        }
        // ONNX's codes are DType's (DType.onnxCode); 8 is STRING.
        if proto.dataType == 8 { throw LatheError.malformedModel("tensor '\(name)' holds strings, which Lathe does not compute on") }
        guard let type = DType(onnxCode: Int(proto.dataType)) else {
            throw LatheError.malformedModel("tensor '\(name)' has data type \(proto.dataType), which Lathe does not read")
        }
        let raw = proto.rawData
        func fromRaw<T>(_: T.Type) throws -> [T] {
            guard raw.count % MemoryLayout<T>.size == 0, raw.count / MemoryLayout<T>.size == count else {
                throw LatheError.malformedModel("tensor '\(name)' of shape \(shape) has \(raw.count) bytes of data")
            }
            return raw.withUnsafeBytes { bytes in (0..<count).map { bytes.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self) } }
        }
        func checked<T>(_ values: [T]) throws -> [T] {
            guard values.count == count else {
                throw LatheError.malformedModel("tensor '\(name)' of shape \(shape) has \(values.count) values")
            }
            return values
        }
        let hasRaw = !raw.isEmpty || count == 0
        func typed<T: TensorElement>(_ values: [T]) throws -> ConstantTensor { ConstantTensor(try HostTensor(shape: shape, values: values)) }
        switch type {
        case .float32:
            self = try typed(hasRaw ? try fromRaw(Float.self) : try checked(proto.floatData))
        case .float64:
            self = try typed(hasRaw ? try fromRaw(Double.self) : try checked(proto.doubleData))
        case .float16:
            let bits: [UInt16] = hasRaw ? try fromRaw(UInt16.self) : try checked(proto.int32Data).map { UInt16(truncatingIfNeeded: $0) }
            self = try typed(bits.map { Float16(bitPattern: $0) })
        case .bfloat16:
            let bits: [UInt16] = hasRaw ? try fromRaw(UInt16.self) : try checked(proto.int32Data).map { UInt16(truncatingIfNeeded: $0) }
            self = ConstantTensor(try HostTensor(shape: shape, dtype: .bfloat16, bytes: bits.withUnsafeBytes { Array($0) }))
        case .int64:
            self = try typed(hasRaw ? try fromRaw(Int64.self) : try checked(proto.int64Data))
        case .int32:
            self = try typed(hasRaw ? try fromRaw(Int32.self) : try checked(proto.int32Data))
        case .int16:
            self = try typed(hasRaw ? try fromRaw(Int16.self) : try checked(proto.int32Data).map { Int16(truncatingIfNeeded: $0) })
        case .int8:
            self = try typed(hasRaw ? try fromRaw(Int8.self) : try checked(proto.int32Data).map { Int8(truncatingIfNeeded: $0) })
        case .uint8:
            self = try typed(hasRaw ? try fromRaw(UInt8.self) : try checked(proto.int32Data).map { UInt8(truncatingIfNeeded: $0) })
        case .bool:
            self = try typed((hasRaw ? try fromRaw(UInt8.self) : try checked(proto.int32Data).map { UInt8(truncatingIfNeeded: $0) }).map { $0 != 0 })
        case .uint16:
            self = try typed(hasRaw ? try fromRaw(UInt16.self) : try checked(proto.int32Data).map { UInt16(truncatingIfNeeded: $0) })
        case .uint32:
            self = try typed(hasRaw ? try fromRaw(UInt32.self) : try checked(proto.uint64Data).map { UInt32(truncatingIfNeeded: $0) })
        case .uint64:
            self = try typed(hasRaw ? try fromRaw(UInt64.self) : try checked(proto.uint64Data))
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1, .int4, .uint4, .int2, .uint2:
            let packed = hasRaw ? [UInt8](raw) : proto.int32Data.map { UInt8(truncatingIfNeeded: $0) }
            self = ConstantTensor(try HostTensor(shape: shape, dtype: type, bytes: try Self.unpacked(packed, type, count: count, name: name)))
        }
    }

    /// A narrow type's elements a byte each, from ONNX's packing: the 4-bit types two to a byte
    /// and the 2-bit ones four, low bits first (HostTensor sign-extends a signed integer's bits).
    static func unpacked(_ packed: [UInt8], _ type: DType, count: Int, name: String) throws -> [UInt8] {
        let per = type.elementsPerPackedByte
        guard packed.count == (count + per - 1) / per else {
            throw LatheError.malformedModel("tensor '\(name)' of \(count) \(type.rawValue) elements has \(packed.count) bytes of data")
        }
        guard per > 1 else { return packed }
        let bits = 8 / per
        return (0..<count).map { i in (packed[i / per] >> UInt8((i % per) * bits)) & UInt8((1 << bits) - 1) }
    }
}
