import LatheIR

/// Ops that move elements about, written with the IR's slices, pads, gathers, scatters and a
/// matmul: CenterCropPad, ReverseSequence, MaxUnpool, AffineGrid, Col2Im, Det of small
/// matrices (by cofactors), and Compress with a condition
/// known at import (one computed at run time makes its output's size depend on values:
/// OpHandlers+DynamicShapes.swift); and Scatter, ScatterElements' name before opset 11.
extension OpHandlers {
    static let rearrange: [String: Handler] = [
        "Scatter": { c in try indexing["ScatterElements"]!(c) },
        "CenterCropPad": centerCropPad,
        "ReverseSequence": reverseSequence,
        "MaxUnpool": maxUnpool,
        "AffineGrid": affineGrid,
        "Col2Im": col2Im,
        "Det": determinant,
        "Compress": { c in
            guard case let .constant(condition)? = try c.input(1) else { return try valueDependent(c) }
            let x = try c.required(0)
            let axis = try c.node.attribute("axis").map { try c.axis(Int($0.i), rank: c.shape(x).count) }
            let data = axis == nil ? try reshape(x, to: [c.shape(x).reduce(1, *)], c) : x
            let length = c.shape(data)[axis ?? 0]
            let chosen = try condition.hostTensor.converted(to: .float64).values(as: Double.self).prefix(length).enumerated().filter { $0.element != 0 }.map { Int64($0.offset) }
            return [try c.apply(.gather(axis: axis ?? 0), [data, .constant(ConstantTensor(shape: [chosen.count], ints: chosen))])]
        },
    ]

    /// Each listed axis cropped to its size around the centre, or padded with zeros around it
    /// (the odd cell after, as ONNX's reference places it).
    private static func centerCropPad(_ c: ImportContext) throws -> [ImportedValue] {
        let x = try c.required(0)
        let shape = c.shape(x)
        guard let sizes = try c.constantInput(1, "shape")?.intValues else { throw c.fail("needs its shape") }
        let axes = try (c.node.ints("axes") ?? Array(shape.indices)).map { try c.axis($0, rank: shape.count) }
        guard axes.count == sizes.count, sizes.allSatisfy({ $0 >= 0 }) else { throw c.fail("has shape \(sizes) for axes \(axes)") }
        var (starts, ends, pads) = (Array(repeating: 0, count: shape.count), shape, Array(repeating: 0, count: 2 * shape.count))
        for (axis, size) in zip(axes, sizes) {
            let d = shape[axis]
            if size < d {
                starts[axis] = (d - size) / 2
                ends[axis] = starts[axis] + size
            } else if size > d {
                pads[axis] = (size - d) / 2
                pads[axis + shape.count] = size - d - pads[axis]
            }
        }
        var y = x
        if starts != Array(repeating: 0, count: shape.count) || ends != shape {
            y = try c.apply(.slice(starts: starts, ends: ends, steps: Array(repeating: 1, count: shape.count)), [y], name: "cropped")
        }
        if pads.contains(where: { $0 > 0 }) { y = try c.apply(.pad(pads: pads, value: 0), [y], name: "padded") }
        return [y]
    }

    /// The first sequence_lens[b] steps of each batch row reversed along the time axis: a
    /// gather_elements at t < len ? len - 1 - t : t.
    private static func reverseSequence(_ c: ImportContext) throws -> [ImportedValue] {
        let x = try c.required(0), lengths = try cast(try c.required(1), to: .int64, c)
        let shape = c.shape(x)
        let (batchAxis, timeAxis) = (try c.axis(c.node.int("batch_axis", 1), rank: shape.count), try c.axis(c.node.int("time_axis", 0), rank: shape.count))
        guard shape.count >= 2, batchAxis != timeAxis, c.shape(lengths) == [shape[batchAxis]] else {
            throw c.fail("needs batch and time axes of one input and a length a batch row, not \(shape) with lengths \(c.shape(lengths))")
        }
        var timeShape = Array(repeating: 1, count: shape.count), batchShape = timeShape
        timeShape[timeAxis] = shape[timeAxis]
        batchShape[batchAxis] = shape[batchAxis]
        let t = ImportedValue.constant(ConstantTensor(shape: timeShape, ints: (0..<shape[timeAxis]).map(Int64.init)))
        let length = try reshape(lengths, to: batchShape, c)
        let reversed = try c.apply(.binary(.sub), [try c.apply(.binary(.sub), [length, c.scalar(1, .int64)], name: "last"), t], name: "reversed")
        let within = try c.apply(.binary(.less), [t, length], name: "within")
        let positions = try broadcast(try c.apply(.select, [within, reversed, t], name: "positions"), to: shape, c, name: "positions_full")
        return [try c.apply(.gatherElements(axis: timeAxis), [x, positions])]
    }

    /// The values put back at the flat positions MaxPool's Indices gave, zeros elsewhere, in
    /// the unpooled shape (or output_shape, padded at the end of each axis).
    private static func maxUnpool(_ c: ImportContext) throws -> [ImportedValue] {
        let x = try c.required(0), indices = try c.required(1)
        let shape = c.shape(x)
        guard let kernel = c.node.ints("kernel_shape"), shape.count == kernel.count + 2, c.shape(indices) == shape else {
            throw c.fail("needs X [N, C, spatial...], indices of its shape and a kernel_shape of its spatial rank")
        }
        let strides = c.node.ints("strides") ?? Array(repeating: 1, count: kernel.count)
        let pads = c.node.ints("pads") ?? Array(repeating: 0, count: 2 * kernel.count)
        guard strides.count == kernel.count, pads.count == 2 * kernel.count else { throw c.fail("has strides or pads of the wrong length") }
        let unpooled = Array(shape[..<2]) + kernel.indices.map { (shape[$0 + 2] - 1) * strides[$0] - pads[$0] - pads[$0 + kernel.count] + kernel[$0] }
        let target = try c.constantInput(2, "output_shape")?.intValues ?? unpooled
        guard target.count == shape.count, zip(target, unpooled).allSatisfy({ $0 >= $1 }) else {
            throw c.fail("has output_shape \(target), smaller than the unpooled \(unpooled)")
        }
        let count = unpooled.reduce(1, *), n = shape.reduce(1, *)
        let zeros = ImportedValue.constant(ConstantTensor(try HostTensor(shape: [count], repeating: 0).converted(to: c.dtype(x))))
        let flatIndices = try reshape(try cast(indices, to: .int64, c), to: [n, 1], c)
        let scattered = try c.apply(.scatter(axis: nil, reduction: .none), [zeros, flatIndices, try reshape(x, to: [n], c)], name: "scattered")
        let y = try reshape(scattered, to: unpooled, c)
        guard target != unpooled else { return [y] }
        return [try c.apply(.pad(pads: Array(repeating: 0, count: shape.count) + zip(target, unpooled).map { $0 - $1 }, value: 0), [y])]
    }

    /// Col2Im: each column's block of values added into the image at its sliding position
    /// (overlaps summed, cells in the padding dropped): a scatter_elements with add at
    /// constant positions, those in the padding sent to one extra cell that is then cut off.
    private static func col2Im(_ c: ImportContext) throws -> [ImportedValue] {
        let x = try c.required(0)
        guard let image = try c.constantInput(1, "image_shape")?.intValues, let block = try c.constantInput(2, "block_shape")?.intValues else {
            throw c.fail("needs image_shape and block_shape")
        }
        let rank = image.count, xs = c.shape(x)
        let dilations = c.node.ints("dilations") ?? Array(repeating: 1, count: rank), strides = c.node.ints("strides") ?? Array(repeating: 1, count: rank)
        let pads = c.node.ints("pads") ?? Array(repeating: 0, count: 2 * rank)
        let blocks = block.reduce(1, *)
        guard block.count == rank, dilations.count == rank, strides.count == rank, pads.count == 2 * rank, xs.count == 3, blocks > 0, xs[1] % blocks == 0 else {
            throw c.fail("has input \(xs), image_shape \(image) and block_shape \(block) that do not fit")
        }
        let counts = (0..<rank).map { a -> Int in
            let span = image[a] + pads[a] + pads[a + rank] - dilations[a] * (block[a] - 1) - 1
            return span / strides[a] + 1
        }
        guard counts.allSatisfy({ $0 >= 1 }), counts.reduce(1, *) == xs[2] else { throw c.fail("has \(xs[2]) columns for sliding blocks \(counts)") }
        let (batch, channels, columns, pixels) = (xs[0], xs[1] / blocks, xs[2], image.reduce(1, *))
        // Where each (block offset, column) lands, or `pixels` in the padding.
        var targets: [Int64] = []
        targets.reserveCapacity(blocks * columns)
        for b in 0..<blocks {
            var rest = b, offset = Array(repeating: 0, count: rank)
            for a in (0..<rank).reversed() { offset[a] = rest % block[a]; rest /= block[a] }
            for l in 0..<columns {
                var restL = l, at = 0, inside = true
                var position = Array(repeating: 0, count: rank)
                for a in (0..<rank).reversed() { position[a] = restL % counts[a]; restL /= counts[a] }
                for a in 0..<rank {
                    let p = position[a] * strides[a] - pads[a] + offset[a] * dilations[a]
                    inside = inside && (0..<image[a]).contains(p)
                    at = at * image[a] + p
                }
                targets.append(Int64(inside ? at : pixels))
            }
        }
        let values = try reshape(x, to: [batch, channels, blocks * columns], c)
        let indices = ImportedValue.constant(ConstantTensor(shape: [batch, channels, blocks * columns], ints: Array((0..<batch * channels).map { _ in targets }.joined())))
        let zeros = ImportedValue.constant(ConstantTensor(try HostTensor(shape: [batch, channels, pixels + 1], repeating: 0).converted(to: c.dtype(x))))
        let summed = try c.apply(.scatter(axis: 2, reduction: .add), [zeros, indices, values], name: "summed")
        let kept = try c.apply(.slice(starts: [0, 0, 0], ends: [batch, channels, pixels], steps: [1, 1, 1]), [summed], name: "image")
        return [try reshape(kept, to: [batch, channels] + image, c)]
    }

    /// The determinant of each [n, n] matrix of the last two axes, n up to 3, by cofactors.
    private static func determinant(_ c: ImportContext) throws -> [ImportedValue] {
        let x = try c.required(0), shape = c.shape(x)
        guard shape.count >= 2, shape[shape.count - 1] == shape[shape.count - 2] else { throw c.fail("needs square matrices, not \(shape)") }
        let n = shape.last!, batch = Array(shape.dropLast(2))
        guard (1...3).contains(n) else { throw c.unsupported("computes determinants of matrices up to 3 x 3, not \(n) x \(n)") }
        let flat = try reshape(x, to: batch + [n * n], c)
        func entry(_ i: Int, _ j: Int) throws -> ImportedValue {
            let k = i * n + j
            let s = c.shape(flat)
            return try reshape(try c.apply(.slice(starts: Array(repeating: 0, count: s.count - 1) + [k], ends: Array(s.dropLast()) + [k + 1],
                                                  steps: Array(repeating: 1, count: s.count)), [flat], name: "m\(i)\(j)"), to: batch, c)
        }
        func mul(_ a: ImportedValue, _ b: ImportedValue) throws -> ImportedValue { try c.apply(.binary(.mul), [a, b], name: "product") }
        func minor(_ a: Int, _ b: Int, _ d: Int, _ e: Int) throws -> ImportedValue {
            try c.apply(.binary(.sub), [try mul(try entry(a, b), try entry(d, e)), try mul(try entry(a, e), try entry(d, b))], name: "minor")
        }
        switch n {
        case 1: return [try entry(0, 0)]
        case 2: return [try minor(0, 0, 1, 1)]
        default:
            let terms = [try mul(try entry(0, 0), try minor(1, 1, 2, 2)), try mul(try entry(0, 1), try minor(1, 0, 2, 2)), try mul(try entry(0, 2), try minor(1, 0, 2, 1))]
            return [try c.apply(.binary(.add), [try c.apply(.binary(.sub), [terms[0], terms[1]], name: "first_two"), terms[2]])]
        }
    }

    /// The sampling grid of an affine transform: theta [N, 2, 3] (or [N, 3, 4]) times the
    /// homogeneous coordinates (x, y[, z], 1) of each output position, in [-1, 1] (pixel
    /// centres, or corners with align_corners), as [N, (D,) H, W, 2 (or 3)].
    private static func affineGrid(_ c: ImportContext) throws -> [ImportedValue] {
        let theta = try c.required(0)
        guard let size = try c.constantInput(1, "size")?.intValues, size.count == 4 || size.count == 5 else { throw c.fail("needs a size of 4 or 5 numbers") }
        let spatial = Array(size[2...]), rank = spatial.count
        guard c.shape(theta) == [size[0], rank, rank + 1], spatial.allSatisfy({ $0 > 0 }) else {
            throw c.fail("has theta \(c.shape(theta)) for size \(size)")
        }
        let aligned = c.node.int("align_corners", 0) != 0
        func coordinates(_ n: Int) -> [Double] {
            guard n > 1 || !aligned else { return [-1] }
            let step = aligned ? 2 / Double(n - 1) : 2 / Double(n)
            let start = aligned ? -1 : -1 + step / 2
            return (0..<n).map { start + Double($0) * step }
        }
        // Rows (x, y[, z], 1), positions in row-major order of the spatial axes.
        let axes = spatial.map(coordinates)
        let positions = spatial.reduce(1, *)
        var rows: [Float] = []
        rows.reserveCapacity(positions * (rank + 1))
        for p in 0..<positions {
            var rest = p, index = Array(repeating: 0, count: rank)
            for a in (0..<rank).reversed() { index[a] = rest % spatial[a]; rest /= spatial[a] }
            rows += (0..<rank).reversed().map { Float(axes[$0][index[$0]]) } + [1]
        }
        let base = ImportedValue.constant(ConstantTensor(shape: [rank + 1, positions], floats: (0..<(rank + 1) * positions).map { rows[($0 % positions) * (rank + 1) + $0 / positions] }))
        let grid = try c.apply(.matmul, [try cast(theta, to: .float32, c), base], name: "grid_t")
        let moved = try c.apply(.transpose(perm: [0, 2, 1]), [grid], name: "grid")
        return [try cast(try reshape(moved, to: [size[0]] + spatial + [rank], c), to: c.dtype(theta), c)]
    }
}

