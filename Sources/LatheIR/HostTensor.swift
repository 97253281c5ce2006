/// A dense tensor in host memory, of any element type (DType): what users pass in and get back,
/// and what the reference interpreter computes on. A float32 tensor keeps its elements as
/// `[Float]`; a tensor of another type keeps them as their little-endian bytes, exactly (an
/// int64 id past 2^24 stays that id).
///
///     let image = try HostTensor(shape: [1, 3], scalars: [0.5, 1, 2])          // float32
///     let ids = try HostTensor(shape: [1, 4], values: [101, 2023, 2003, 102] as [Int64])
///     let mask = try HostTensor(shape: [1, 4], values: [true, true, true, false])
///     try ids.values(as: Int64.self)                                          // [101, 2023, 2003, 102]
public struct HostTensor: Equatable, Sendable, CustomStringConvertible {
    public let shape: [Int]
    public let dtype: DType
    /// The elements of a float32 tensor (empty for other types).
    private var floats: [Float]
    /// The little-endian elements of a tensor of another type (empty for float32).
    private var bytes: [UInt8]

    private init(checked shape: [Int], dtype: DType, floats: [Float], bytes: [UInt8]) {
        (self.shape, self.dtype, self.floats, self.bytes) = (shape, dtype, floats, bytes)
    }

    /// A float32 tensor. Throws when the number of scalars does not match the shape.
    public init(shape: [Int], scalars: [Float]) throws {
        guard elementCount(shape) == scalars.count else {
            throw LatheError.invalidTensor(shape: shape, scalarCount: scalars.count)
        }
        self.init(checked: shape, dtype: .float32, floats: scalars, bytes: [])
    }

    /// A tensor of the values' element type (Float, Double, Float16, Int8 ... UInt64, Bool).
    public init<T: TensorElement>(shape: [Int], values: [T]) throws {
        guard elementCount(shape) == values.count else {
            throw LatheError.invalidTensor(shape: shape, scalarCount: values.count)
        }
        // By the type, not by a cast: an empty [Float16] casts to [Float].
        if T.self == Float.self, let floats = values as? [Float] {
            self.init(checked: shape, dtype: .float32, floats: floats, bytes: [])
        } else {
            self.init(checked: shape, dtype: T.dtype, floats: [], bytes: values.withUnsafeBytes { Array($0) })
        }
    }

    /// A tensor of `dtype` from its elements' little-endian bytes.
    public init(shape: [Int], dtype: DType, bytes: [UInt8]) throws {
        guard let count = elementCount(shape), count * dtype.byteSize == bytes.count else {
            throw LatheError.invalidTensor(shape: shape, scalarCount: bytes.count / dtype.byteSize)
        }
        if dtype == .float32 {
            let floats = bytes.withUnsafeBytes { raw in (0..<count).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
            self.init(checked: shape, dtype: .float32, floats: floats, bytes: [])
        } else {
            // A bool is one byte, 0 or 1: any other non-zero byte is true. A narrow integer's byte
            // is its value wrapped to its width (an int4 0x0F is -1).
            var normalized = bytes
            if dtype == .bool { normalized = bytes.map { $0 == 0 ? 0 : 1 } }
            if dtype.isNarrowInteger { normalized = bytes.map(dtype.wrappedNarrowByte) }
            self.init(checked: shape, dtype: dtype, floats: [], bytes: normalized)
        }
    }

    /// A float32 tensor of one value. A negative dimension, or a shape past
    /// `maximumElementCount`, gives an empty tensor (shape with a 0), never a trap.
    public init(shape: [Int], repeating value: Float = 0) {
        let clamped = shape.map { max($0, 0) }
        let safe = elementCount(clamped) == nil ? clamped.map { _ in 0 } : clamped
        self.init(checked: safe, dtype: .float32, floats: [Float](repeating: value, count: elementCount(safe) ?? 0), bytes: [])
    }

    /// Uniform float32 values in [low, high) from a seeded generator: the same seed gives the
    /// same tensor.
    public static func random(shape: [Int], seed: UInt64, in range: ClosedRange<Float> = -1...1) -> HostTensor {
        var rng = SeededGenerator(seed: seed)
        var t = HostTensor(shape: shape)
        for i in t.floats.indices { t.floats[i] = Float.random(in: range, using: &rng) }
        return t
    }

    /// Seeded inputs of any element type, for runs that were given none: floats uniform in
    /// [0, 1), integers 0 or 1 (a token id of any vocabulary, and a valid mask), bools either.
    public static func random(shape: [Int], dtype: DType, seed: UInt64) -> HostTensor {
        let floats = random(shape: shape, seed: seed, in: 0...(dtype.isFloatingPoint ? 1 : 1.999))
        return (try? floats.converted(to: dtype)) ?? floats
    }

    /// The elements as float32: a float32 tensor's own, another type's converted (exact for the
    /// 8- and 16-bit types; integers past 2^24 round). Setting them stores them in the tensor's
    /// type, converted as ONNX's Cast converts.
    public var scalars: [Float] {
        get { dtype == .float32 ? floats : floatView }
        set {
            if dtype == .float32 { floats = newValue } else { bytes = Self.encode(newValue, as: dtype) }
        }
        _modify {
            if dtype == .float32 {
                yield &floats
            } else {
                var values = floatView
                yield &values
                bytes = Self.encode(values, as: dtype)
            }
        }
    }

    /// The tensor in element type `dtype`, converted as ONNX's Cast converts (DType.converting,
    /// as the cast op does), by `rule` where ONNX leaves a choice (the narrow floats).
    public func converted(to dtype: DType, rule: CastRule = .standard) throws -> HostTensor {
        if dtype == self.dtype { return self }
        if self.dtype == .float32 && rule == .standard { return try HostTensor(shape: shape, dtype: dtype, bytes: Self.encode(floats, as: dtype)) }
        var out: [UInt8] = []
        out.reserveCapacity(count * dtype.byteSize)
        // Element by element through `converting`, as the cast op converts (an int64 past 2^53
        // stays exact, and a narrower integer type wraps).
        bytes.withUnsafeBytes { raw in for i in 0..<count { dtype.append(dtype.converting(self.dtype.scalar(in: raw, at: i), rule: rule), to: &out) } }
        return try HostTensor(shape: shape, dtype: dtype, bytes: out)
    }

    /// The elements, when the tensor's type is `T`'s.
    public func values<T: TensorElement>(as type: T.Type) throws -> [T] {
        guard dtype == T.dtype else { throw LatheError.elementTypeMismatch(what: "tensor \(shape)", expected: T.dtype, got: dtype) }
        if dtype == .float32, let values = floats as? [T] { return values }
        return bytes.withUnsafeBytes { raw in (0..<count).map { raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.stride, as: T.self) } }
    }

    /// Calls `body` with the elements' little-endian bytes, copying none.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        dtype == .float32 ? try floats.withUnsafeBytes(body) : try bytes.withUnsafeBytes(body)
    }

    /// The elements' little-endian bytes, of any type.
    public var rawBytes: [UInt8] { dtype == .float32 ? floats.withUnsafeBytes { Array($0) } : bytes }

    public var count: Int { dtype == .float32 ? floats.count : bytes.count / dtype.byteSize }

    /// Another type's elements as float32.
    private var floatView: [Float] {
        bytes.withUnsafeBytes { raw in (0..<count).map { Float(dtype.value(in: raw, at: $0)) } }
    }

    private static func encode(_ values: [Float], as dtype: DType) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * dtype.byteSize)
        for v in values { dtype.append(Double(v), to: &bytes) }
        return bytes
    }

    /// A position-weighted sum: equal tensors give equal checksums, and a swap of two
    /// elements changes it (a plain sum would not notice).
    public var checksum: Double {
        var total = 0.0
        for (i, v) in scalars.enumerated() { total += Double(v) * Double(i % 97 + 1) }
        return total
    }

    public var description: String {
        let type = dtype == .float32 ? "" : "\(dtype.rawValue) "
        return "HostTensor(\(type)\(shape), \(scalars.prefix(8))\(count > 8 ? "..." : ""))"
    }
}

/// A Swift type whose arrays a HostTensor holds as they are (`HostTensor(shape:values:)`).
public protocol TensorElement: Sendable {
    static var dtype: DType { get }
}

extension Float: TensorElement { public static var dtype: DType { .float32 } }
extension Double: TensorElement { public static var dtype: DType { .float64 } }
extension Float16: TensorElement { public static var dtype: DType { .float16 } }
extension Int8: TensorElement { public static var dtype: DType { .int8 } }
extension UInt8: TensorElement { public static var dtype: DType { .uint8 } }
extension Int16: TensorElement { public static var dtype: DType { .int16 } }
extension UInt16: TensorElement { public static var dtype: DType { .uint16 } }
extension Int32: TensorElement { public static var dtype: DType { .int32 } }
extension UInt32: TensorElement { public static var dtype: DType { .uint32 } }
extension Int64: TensorElement { public static var dtype: DType { .int64 } }
extension UInt64: TensorElement { public static var dtype: DType { .uint64 } }
extension Bool: TensorElement { public static var dtype: DType { .bool } }
