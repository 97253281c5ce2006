/// A static tensor type: element type and shape (row-major, every dimension known).
public struct TensorType: Hashable, Sendable, CustomStringConvertible {
    public var dtype: DType
    public var shape: [Int]

    public init(_ dtype: DType = .float32, _ shape: [Int]) {
        self.dtype = dtype
        self.shape = shape
    }

    public var rank: Int { shape.count }
    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int { count * dtype.byteSize }
    public var description: String { "\(dtype.rawValue)\(shape)" }
}

/// The most elements one tensor may have (64 GiB of float32): past it a shape is an error, not
/// an overflow or an allocation that brings the machine down.
public let maximumElementCount = 1 << 34

/// The number of elements of a shape, or nil when a dimension is negative or the count would
/// pass `maximumElementCount` (or overflow). Use it wherever a shape comes from outside.
public func elementCount(_ shape: [Int]) -> Int? {
    var count = 1
    for d in shape {
        guard d >= 0 else { return nil }
        let (product, overflow) = count.multipliedReportingOverflow(by: d)
        guard !overflow, product <= maximumElementCount else { return nil }
        count = product
    }
    return count
}

/// Row-major strides of a shape, in elements.
public func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var running = 1
    for axis in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[axis] = running
        running *= shape[axis]
    }
    return strides
}

/// Where in the user's Swift code a node was made: the DSL call's `#fileID` and `#line`.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    public var fileID: String
    public var line: Int

    public init(fileID: String, line: Int) {
        self.fileID = fileID
        self.line = line
    }

    public static let unknown = SourceLocation(fileID: "<unknown>", line: 0)
    public var isKnown: Bool { line > 0 }
    public var description: String { "\(fileID):\(line)" }
}

/// SplitMix64: a small, fast, seedable generator so that weights and test data are reproducible.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
