import Foundation
import LatheIR

/// A tensor known at import time: an initializer, a Constant node, or the folded result of a
/// shape computation. Integers stay integers, so that shape subgraphs (Shape, Gather, Concat,
/// Unsqueeze, ...) fold exactly.
struct ConstantTensor {
    enum Elements {
        case float([Float])
        case int([Int64])
    }

    var shape: [Int]
    var elements: Elements
    /// The ONNX name it was defined under (an initializer or a Constant's output), so that it
    /// becomes one graph constant however often it is used.
    var origin: String?

    init(shape: [Int], floats: [Float]) {
        self.shape = shape
        elements = .float(floats)
    }

    init(shape: [Int], ints: [Int64]) {
        self.shape = shape
        elements = .int(ints)
    }

    var count: Int { shape.reduce(1, *) }
    var isInteger: Bool { if case .int = elements { return true } else { return false } }

    var floats: [Float] {
        switch elements {
        case let .float(v): return v
        case let .int(v): return v.map { Float($0) }
        }
    }

    var ints: [Int64] {
        switch elements {
        case let .int(v): return v
        case let .float(v): return v.map { $0.isFinite ? Int64(max(min($0, 9.2e18), -9.2e18)) : 0 }
        }
    }

    /// The values as Ints, clamped into Int's range.
    var intValues: [Int] { ints.map { Int($0) } }

    var hostTensor: HostTensor { HostTensor(uncheckedShape: shape, scalars: floats) }

    func reshaped(_ newShape: [Int]) -> ConstantTensor {
        var copy = self
        copy.shape = newShape
        copy.origin = nil
        return copy
    }
}

extension HostTensor {
    /// For shapes and scalars already known to agree.
    init(uncheckedShape shape: [Int], scalars: [Float]) {
        self.init(shape: shape.map { max($0, 0) })
        if self.scalars.count == scalars.count { self.scalars = scalars }
    }
}

/// ONNX's TensorProto.DataType values that Lathe reads.
enum ONNXDataType: Int32 {
    case float = 1, uint8 = 2, int8 = 3, uint16 = 4, int16 = 5, int32 = 6, int64 = 7, string = 8, bool = 9
    case float16 = 10, double = 11, uint32 = 12, uint64 = 13
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
        guard let type = ONNXDataType(rawValue: proto.dataType) else {
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
        switch type {
        case .float:
            self.init(shape: shape, floats: hasRaw ? try fromRaw(Float.self) : try checked(proto.floatData))
        case .double:
            self.init(shape: shape, floats: (hasRaw ? try fromRaw(Double.self) : try checked(proto.doubleData)).map { Float($0) })
        case .float16:
            let bits: [UInt16] = hasRaw ? try fromRaw(UInt16.self) : try checked(proto.int32Data).map { UInt16(truncatingIfNeeded: $0) }
            self.init(shape: shape, floats: bits.map { Float(Float16(bitPattern: $0)) })
        case .int64:
            self.init(shape: shape, ints: hasRaw ? try fromRaw(Int64.self) : try checked(proto.int64Data))
        case .int32:
            self.init(shape: shape, ints: (hasRaw ? try fromRaw(Int32.self) : try checked(proto.int32Data)).map { Int64($0) })
        case .int16:
            self.init(shape: shape, ints: (hasRaw ? try fromRaw(Int16.self).map { Int64($0) } : try checked(proto.int32Data).map { Int64($0) }))
        case .int8:
            self.init(shape: shape, ints: (hasRaw ? try fromRaw(Int8.self).map { Int64($0) } : try checked(proto.int32Data).map { Int64($0) }))
        case .uint8, .bool:
            self.init(shape: shape, ints: (hasRaw ? try fromRaw(UInt8.self).map { Int64($0) } : try checked(proto.int32Data).map { Int64($0) }))
        case .uint16:
            self.init(shape: shape, ints: (hasRaw ? try fromRaw(UInt16.self).map { Int64($0) } : try checked(proto.int32Data).map { Int64($0) }))
        case .uint32:
            self.init(shape: shape, ints: (hasRaw ? try fromRaw(UInt32.self).map { Int64($0) } : try checked(proto.uint64Data).map { Int64($0) }))
        case .uint64:
            self.init(shape: shape, ints: (hasRaw ? try fromRaw(UInt64.self) : try checked(proto.uint64Data)).map { Int64(truncatingIfNeeded: $0) })
        case .string:
            throw LatheError.malformedModel("tensor '\(name)' holds strings, which Lathe does not compute on")
        }
    }

    /// Whether a data type is one Lathe reads as floats (else integers or booleans).
    static func isFloat(_ dataType: Int32) -> Bool {
        dataType == ONNXDataType.float.rawValue || dataType == ONNXDataType.double.rawValue || dataType == ONNXDataType.float16.rawValue
    }
}
