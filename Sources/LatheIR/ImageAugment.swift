/// Data augmentation inside a compiled training step: the attributes of `augment` and
/// `augment_grad`, the random draws that the interpreter and the code generator share, and the
/// reference kernels.
///
/// Each image (a slice along axis 0 of [N, ..., H, W]) gets its own transform, drawn from a
/// counter-based hash of (seed, step, image): a flip of its rows and of its columns, each with
/// probability 1/2 where enabled, and a whole-pixel offset per axis, uniform over its range.
/// Result pixel (i, j) of an image reads source pixel (i' + rowOffset, j' + columnOffset), where
/// i' is i, or height-1-i when the rows flip (j' likewise). So an offset range of
/// -m...m with the input's size is a random shift by up to m pixels (torchvision's
/// `RandomCrop(size, padding: m)`), and 0...H-h with a smaller result a random crop (Keras'
/// `RandomCrop`). A source pixel outside the image is resolved by `fill`: a constant, the
/// nearest edge pixel, the image reflected about its edge (d c b a | a b c d | d c b a, Keras'
/// "reflect"), or the image repeated ("wrap").
///
/// Every channel of an image moves alike. The step counter (operand 1) is the training step's,
/// so each step draws new transforms, and the same step the same ones.
public struct ImageAugment: Hashable, Sendable {
    public enum Fill: Hashable, Sendable {
        case constant(Float), nearest, reflect, wrap
    }

    /// The result's height and width.
    public var height: Int, width: Int
    /// The offsets, in pixels, added to a result pixel's row and column to find its source.
    public var rowOffsets: ClosedRange<Int>, columnOffsets: ClosedRange<Int>
    /// Whether an image's rows (a vertical flip) and columns (a horizontal flip) may flip.
    public var flipsRows: Bool, flipsColumns: Bool
    public var fill: Fill
    public var seed: UInt32

    public init(height: Int, width: Int, rowOffsets: ClosedRange<Int> = 0...0, columnOffsets: ClosedRange<Int> = 0...0,
                flipsRows: Bool = false, flipsColumns: Bool = false, fill: Fill = .constant(0), seed: UInt32) {
        (self.height, self.width, self.rowOffsets, self.columnOffsets) = (height, width, rowOffsets, columnOffsets)
        (self.flipsRows, self.flipsColumns, self.fill, self.seed) = (flipsRows, flipsColumns, fill, seed)
    }

    /// The hash stream index of an image's k-th draw (k < drawsPerImage).
    public static let drawsPerImage = 4
    public enum Draw: Int, CaseIterable { case flipColumns, flipRows, rowOffset, columnOffset }

    /// One image's transform at one step.
    public struct Transform: Equatable, Sendable {
        public var flipRows: Bool, flipColumns: Bool, rowOffset: Int, columnOffset: Int
    }

    public func transform(step: UInt32, image: Int) -> Transform {
        let hash = CounterHash(seed: seed)
        func draw(_ d: Draw) -> UInt32 { hash.value(step: step, index: UInt32(truncatingIfNeeded: image * Self.drawsPerImage + d.rawValue)) }
        func offset(_ range: ClosedRange<Int>, _ d: Draw) -> Int { range.lowerBound + Self.scaled(draw(d), count: range.count) }
        return Transform(flipRows: flipsRows && draw(.flipRows) >> 31 == 1, flipColumns: flipsColumns && draw(.flipColumns) >> 31 == 1,
                         rowOffset: offset(rowOffsets, .rowOffset), columnOffset: offset(columnOffsets, .columnOffset))
    }

    /// A uniform pick in 0..<count from a hash's top 24 bits, by multiplication rather than a
    /// remainder (no division in the generated code).
    public static func scaled(_ hash: UInt32, count: Int) -> Int { Int((UInt64(hash >> 8) * UInt64(count)) >> 24) }

    /// Where a source coordinate `s` of an axis of `size` reads, nil for the constant fill.
    public func resolve(_ s: Int, size: Int) -> Int? {
        if (0..<size).contains(s) { return s }
        switch fill {
        case .constant: return nil
        case .nearest: return min(max(s, 0), size - 1)
        case .wrap: return ((s % size) + size) % size
        case .reflect:
            let period = 2 * size, m = ((s % period) + period) % period
            return m < size ? m : period - 1 - m
        }
    }

    /// The fill's constant (0 for the fills that read the image).
    public var constantFill: Float {
        if case let .constant(value) = fill { return value }
        return 0
    }

    /// The result type for an input of `input`, or why it does not fit.
    func resultType(_ input: TensorType, step: TensorType) throws(OpRuleFailure) -> TensorType {
        try Op.checkStepCounter(step)
        guard input.shape.count >= 3 else { throw .shape("augment takes images [N, ..., H, W], got \(input.shape)") }
        guard height > 0, width > 0 else { throw .attribute("the result's size \(height)x\(width) is not positive") }
        guard abs(rowOffsets.lowerBound) < 1 << 24, abs(rowOffsets.upperBound) < 1 << 24,
              abs(columnOffsets.lowerBound) < 1 << 24, abs(columnOffsets.upperBound) < 1 << 24 else {
            throw .attribute("offsets \(rowOffsets), \(columnOffsets) are too large")
        }
        if case let .constant(value) = fill, value != 0, input.dtype != .float32 {
            throw .elementType("a fill of \(value) needs f32 images, got \(input.dtype.rawValue)")
        }
        return TensorType(input.dtype, input.shape.dropLast(2) + [height, width])
    }

    /// The flat source index of every result element (-1 for the constant fill): each
    /// image's transform at `step`, applied to every channel.
    public func sources(inputShape: [Int], step: UInt32) -> [Int] {
        let (inHeight, inWidth) = (inputShape[inputShape.count - 2], inputShape[inputShape.count - 1])
        let images = inputShape[0], planesPerImage = inputShape.dropFirst().dropLast(2).reduce(1, *)
        var out: [Int] = []
        out.reserveCapacity(images * planesPerImage * height * width)
        for n in 0..<images {
            let t = transform(step: step, image: n)
            let rows = (0..<height).map { resolve((t.flipRows ? height - 1 - $0 : $0) + t.rowOffset, size: inHeight) }
            let columns = (0..<width).map { resolve((t.flipColumns ? width - 1 - $0 : $0) + t.columnOffset, size: inWidth) }
            for p in 0..<planesPerImage {
                let plane = (n * planesPerImage + p) * inHeight * inWidth
                for row in rows {
                    for column in columns {
                        if let row, let column { out.append(plane + row * inWidth + column) } else { out.append(-1) }
                    }
                }
            }
        }
        return out
    }
}

/// A counter-based 32-bit hash, murmur3's finalizer over an index mixed with a seed and a step
/// counter: the random stream of dropout masks and augmentation. The code generator emits the
/// same arithmetic on integer vectors, so compiled steps and the interpreter draw the same bits.
public struct CounterHash: Sendable {
    public let seed: UInt32
    public init(seed: UInt32) { self.seed = seed }

    public static let indexMultiplier: UInt32 = 0x9E37_79B1, stepMultiplier: UInt32 = 0x85EB_CA77
    public static let mix1: UInt32 = 0x85EB_CA6B, mix2: UInt32 = 0xC2B2_AE35

    public func value(step: UInt32, index: UInt32) -> UInt32 {
        var h = (index &* Self.indexMultiplier) ^ (step &* Self.stepMultiplier &+ seed)
        h ^= h >> 16
        h &*= Self.mix1
        h ^= h >> 13
        h &*= Self.mix2
        h ^= h >> 16
        return h
    }
}

extension Interpreter {
    /// The step counter as the kernels read it: truncated to an unsigned integer, below 2^24.
    static func stepCounter(_ counter: HostTensor) -> UInt32 { UInt32(max(0, min(counter.scalars[0], 16_777_216))) }

    static func augment(_ x: HostTensor, _ a: ImageAugment, step: HostTensor, shape: [Int]) -> HostTensor {
        x.picking(a.sources(inputShape: x.shape, step: stepCounter(step)), shape: shape, fill: a.constantFill)
    }

    /// Each dy element added to the input pixel it was read from (the fills that read the image
    /// may read one pixel many times).
    static func augmentGrad(_ dy: HostTensor, _ a: ImageAugment, step: HostTensor, shape: [Int]) -> HostTensor {
        var sums = [Double](repeating: 0, count: shape.reduce(1, *))
        for (k, source) in a.sources(inputShape: shape, step: stepCounter(step)).enumerated() where source >= 0 {
            sums[source] += Double(dy.scalars[k])
        }
        return (try? HostTensor(shape: shape, scalars: sums.map { Float($0) })) ?? HostTensor(shape: shape)
    }
}

extension ImageAugment {
    /// As printed in the IR text.
    var attributeText: String {
        var parts = ["size=[\(height),\(width)]"]
        if rowOffsets != 0...0 { parts.append("row_offsets=\(rowOffsets.lowerBound)...\(rowOffsets.upperBound)") }
        if columnOffsets != 0...0 { parts.append("column_offsets=\(columnOffsets.lowerBound)...\(columnOffsets.upperBound)") }
        if flipsRows { parts.append("flip_rows=true") }
        if flipsColumns { parts.append("flip_columns=true") }
        switch fill {
        case let .constant(value): if value != 0 { parts.append("fill=\(value)") }
        case .nearest: parts.append("fill=nearest")
        case .reflect: parts.append("fill=reflect")
        case .wrap: parts.append("fill=wrap")
        }
        return (parts + ["seed=\(seed)"]).joined(separator: ", ")
    }
}
