import Foundation
import LatheIR

/// Keras' preprocessing layers: input normalization and data augmentation.
///
/// Data augmentation layers: in a training step each image of
/// the batch gets its own random flip, shift or crop, drawn inside the compiled step from the
/// step number (so each step draws anew, and a step run again draws the same); compiled for
/// inference they are the identity (RandomCrop: a center crop). They take images [N, C, H, W]
/// (any rank from 3, the last two axes the image) of any element type, and have no weights.
///
///     let model = Sequential {
///         RandomFlip(.horizontal)
///         RandomTranslation(height: 0.1, width: 0.1)
///         Conv2D(32, kernel: 3, activation: .relu)
///         ...
///     }
extension Tensor {
    /// The images randomly transformed as `augment` says, in a training graph.
    func augmented(_ a: ImageAugment, name: String, _ location: SourceLocation) throws -> Tensor {
        try apply(.augment(a), [graph.trainingStep(location)], name: name, location)
    }

    /// The last two axes' sizes, or the error that the layer takes images.
    func imageSize(_ layer: String, _ location: SourceLocation) throws -> (height: Int, width: Int) {
        guard rank >= 3 else {
            throw LatheError.invalidAttribute(op: layer, reason: "takes images [N, ..., H, W], got \(shape)", location: location)
        }
        return (shape[rank - 2], shape[rank - 1])
    }
}

/// Flips each image left to right (`.horizontal`), top to bottom (`.vertical`), or each
/// independently (`.horizontalAndVertical`, Keras' default), each with probability 1/2.
public final class RandomFlip: Layer {
    public enum Mode: Sendable { case horizontal, vertical, horizontalAndVertical }
    /// Has no weights: `trainable` changes nothing.
    public var trainable = true
    public let mode: Mode
    let location: SourceLocation

    public init(_ mode: Mode = .horizontalAndVertical, fileID: String = #fileID, line: Int = #line) {
        self.mode = mode
        location = SourceLocation(fileID: fileID, line: line)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let (height, width) = try x.imageSize("random_flip", location)
        let g = x.graph
        guard g.isTraining else { return x }
        let a = ImageAugment(height: height, width: width, flipsRows: mode != .horizontal, flipsColumns: mode != .vertical,
                             seed: UInt32.random(in: 0...UInt32.max, using: &g.random))
        return try x.augmented(a, name: g.freshName("random_flip"), location)
    }
}

/// Shifts each image by a whole number of pixels, up to `rows` up or down and `columns` left or
/// right, each uniform; the pixels shifted in come from `fill` (Keras' fill modes: reflect by
/// default, or constant, nearest, wrap). `RandomTranslation(rows: 4, columns: 4, fill:
/// .constant(0))` is torchvision's `RandomCrop(size, padding: 4)`.
public final class RandomTranslation: Layer {
    /// Has no weights: `trainable` changes nothing.
    public var trainable = true
    /// The largest shift, as a fraction of the image's height and width (Keras' factors), or nil
    /// where the layer was given pixels.
    public let heightFactor: Double?, widthFactor: Double?
    let pixels: (rows: Int, columns: Int)?
    public let fill: ImageAugment.Fill
    let location: SourceLocation

    /// Shifts of up to `height` x the image's height (rounded down to whole pixels) and `width`
    /// x its width, as Keras' `RandomTranslation(height_factor, width_factor)`.
    public init(height: Double, width: Double, fill: ImageAugment.Fill = .reflect, fileID: String = #fileID, line: Int = #line) {
        (heightFactor, widthFactor, pixels, self.fill) = (height, width, nil, fill)
        location = SourceLocation(fileID: fileID, line: line)
    }

    /// Shifts of up to `rows` and `columns` pixels.
    public init(rows: Int, columns: Int, fill: ImageAugment.Fill = .reflect, fileID: String = #fileID, line: Int = #line) {
        (heightFactor, widthFactor, pixels, self.fill) = (nil, nil, (rows, columns), fill)
        location = SourceLocation(fileID: fileID, line: line)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let (height, width) = try x.imageSize("random_translation", location)
        let rows = pixels?.rows ?? Int((heightFactor ?? 0) * Double(height)), columns = pixels?.columns ?? Int((widthFactor ?? 0) * Double(width))
        guard (0...height).contains(rows), (0...width).contains(columns) else {
            throw LatheError.invalidAttribute(op: "random_translation", reason: "shifts of up to \(rows)x\(columns) pixels do not fit images \(height)x\(width)",
                                              location: location)
        }
        let g = x.graph
        guard g.isTraining, rows > 0 || columns > 0 else { return x }
        let a = ImageAugment(height: height, width: width, rowOffsets: -rows...rows, columnOffsets: -columns...columns, fill: fill,
                             seed: UInt32.random(in: 0...UInt32.max, using: &g.random))
        return try x.augmented(a, name: g.freshName("random_translation"), location)
    }
}

/// Crops each image to `height` x `width` at a uniformly random place while training, and at
/// the center for inference (Keras' RandomCrop, without its resize of images smaller than the
/// crop: those are an error).
public final class RandomCrop: Layer {
    /// Has no weights: `trainable` changes nothing.
    public var trainable = true
    public let height: Int, width: Int
    let location: SourceLocation

    public init(height: Int, width: Int, fileID: String = #fileID, line: Int = #line) {
        (self.height, self.width) = (height, width)
        location = SourceLocation(fileID: fileID, line: line)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let (inHeight, inWidth) = try x.imageSize("random_crop", location)
        guard height > 0, width > 0, height <= inHeight, width <= inWidth else {
            throw LatheError.invalidAttribute(op: "random_crop", reason: "a \(height)x\(width) crop of images \(inHeight)x\(inWidth)", location: location)
        }
        let g = x.graph, name = g.freshName("random_crop")
        guard g.isTraining else {
            let (top, left) = ((inHeight - height) / 2, (inWidth - width) / 2)
            let lead = Array(repeating: 0, count: x.rank - 2)
            return try x.apply(.slice(starts: lead + [top, left], ends: x.shape.dropLast(2) + [top + height, left + width],
                                      steps: Array(repeating: 1, count: x.rank)), [], name: name, location)
        }
        let a = ImageAugment(height: height, width: width, rowOffsets: 0...(inHeight - height), columnOffsets: 0...(inWidth - width),
                             seed: UInt32.random(in: 0...UInt32.max, using: &g.random))
        return try x.augmented(a, name: name, location)
    }
}

/// Standardizes its input by a mean and variance per feature: (x - mean) / max(sqrt(variance),
/// 1e-7), as Keras' Normalization. The statistics are given, or learned from data with `adapt`
/// (before the model is built); they are constants of the graph, never trained.
///
///     let normalize = Normalization(axis: 1)      // per channel of NCHW images
///     try normalize.adapt(train.inputs)
///     let model = Sequential { normalize; Conv2D(32, kernel: 3, activation: .relu); ... }
public final class Normalization: Layer {
    /// Has no trainable weights: `trainable` changes nothing.
    public var trainable = true
    /// The axis of the features, each with its own statistics (counted in the input's shape,
    /// batch axis included; negative from the end), or nil for one mean and variance over all.
    public let axis: Int?
    public private(set) var mean: [Float]?, variance: [Float]?
    let location: SourceLocation

    /// Keras' default axis is the last: a flat input's features, or channels-last images.
    public init(axis: Int? = -1, mean: [Float]? = nil, variance: [Float]? = nil, fileID: String = #fileID, line: Int = #line) {
        (self.axis, self.mean, self.variance) = (axis, mean, variance)
        location = SourceLocation(fileID: fileID, line: line)
    }

    /// Sets the mean and (population) variance of each feature from `data` (a batch of inputs).
    public func adapt(_ data: HostTensor) throws {
        guard data.shape.count >= 2, data.count > 0 else {
            throw LatheError.invalidAttribute(op: "normalization", reason: "adapts to a batch of inputs [N, ...], got \(data.shape)", location: location)
        }
        let values = try (data.dtype == .float32 ? data : data.converted(to: .float32)).values(as: Float.self)
        let features = try featureAxis(rank: data.shape.count).map { data.shape[$0] } ?? 1
        let inner = try featureAxis(rank: data.shape.count).map { data.shape[($0 + 1)...].reduce(1, *) } ?? 1
        var sums = [Double](repeating: 0, count: features), squares = sums
        for (i, v) in values.enumerated() {
            let f = i / inner % features
            sums[f] += Double(v)
        }
        let perFeature = Double(values.count / features)
        let means = sums.map { $0 / perFeature }
        for (i, v) in values.enumerated() {
            let d = Double(v) - means[i / inner % features]
            squares[i / inner % features] += d * d
        }
        mean = means.map { Float($0) }
        variance = squares.map { Float($0 / perFeature) }
    }

    private func featureAxis(rank: Int) throws -> Int? {
        guard let axis else { return nil }
        let resolved = axis < 0 ? axis + rank : axis
        guard (1..<rank).contains(resolved) else {
            throw LatheError.invalidAttribute(op: "normalization", reason: "axis \(axis) is not a feature axis of inputs of rank \(rank)", location: location)
        }
        return resolved
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let g = x.graph, name = g.freshName("normalization")
        guard let mean, let variance else {
            throw LatheError.invalidAttribute(op: "normalization", reason: "\(name) has no statistics: call adapt(data), or give mean and variance", location: location)
        }
        let axis = try featureAxis(rank: x.rank)
        let features = axis.map { x.shape[$0] } ?? 1
        guard mean.count == features, variance.count == features else {
            throw LatheError.invalidAttribute(op: "normalization", reason: "\(mean.count) means and \(variance.count) variances for \(features) features of \(x.shape)",
                                              location: location)
        }
        let shape = axis.map { a in (0..<x.rank).map { $0 == a ? features : 1 } } ?? [1]
        let scale = variance.map { 1 / Swift.max($0.squareRoot(), 1e-7) }
        let centered = try x.apply(.binary(.sub), [g.constant(HostTensor(shape: shape, scalars: mean), name: "\(name).mean")], name: "\(name).centered", location)
        return try centered.apply(.binary(.mul), [g.constant(HostTensor(shape: shape, scalars: scale), name: "\(name).scale")], name: name, location)
    }
}
