/// The interpreter's kernels for tensors of any element type: formulas evaluated per element
/// type (TypedScalar.swift), data moved element by element whatever its type, and indices read
/// at run time checked.
extension Interpreter {
    /// A formula over operands of any types, each operation in its own type.
    static func typedElementwise(_ formula: ScalarExpr, _ x: [HostTensor], type: TensorType, strides: [[Int]]) -> HostTensor {
        let f = formula.makeTypedEvaluator(x.map(\.dtype), context: type.dtype)
        let bytes = x.map(\.rawBytes)
        var out: [UInt8] = []
        out.reserveCapacity(type.byteCount)
        var args = [Scalar](repeating: .bool(false), count: x.count)
        forEachOffset(shape: type.shape, strides: strides) { offsets in
            for k in x.indices { args[k] = bytes[k].withUnsafeBytes { x[k].dtype.scalar(in: $0, at: offsets[k]) } }
            // A narrow type's value is already one of the type's (its cast rounded it by its rule):
            // converting it again by the standard rule would saturate what the rule did not.
            let value = f(args)
            type.dtype.append(type.dtype.isComputed ? type.dtype.converting(value) : value, to: &out)
        }
        return (try? HostTensor(shape: type.shape, dtype: type.dtype, bytes: out)) ?? HostTensor(shape: type.shape)
    }

    /// Gather's indices as positions on an axis of `size`: integers wrapped when negative (ONNX)
    /// and checked, a typed error naming the node when one is outside -size..<size; float
    /// indices (the DSL's) truncated, wrapped and clamped (gatherIndex).
    static func checkedIndices(_ indices: HostTensor, size: Int, node: Node) throws -> [Int] {
        guard indices.dtype.isInteger else { return indices.scalars.map { gatherIndex($0, size: size) } }
        return try checkedIndices(indices, sizes: [size], node: node)
    }

    /// Integer indices read as tuples of `sizes.count` components, component j a position on an
    /// axis of `sizes[j]`: wrapped when negative and checked in order, tuple by tuple, as the
    /// compiled kernels check them (Gather.swift's ifIndicesInRange).
    static func checkedIndices(_ indices: HostTensor, sizes: [Int], node: Node) throws -> [Int] {
        let bytes = indices.rawBytes
        return try (0..<indices.count).map { i in
            let raw: Int64
            switch bytes.withUnsafeBytes({ indices.dtype.scalar(in: $0, at: i) }) {
            case let .signed(v): raw = v
            case let .unsigned(v): raw = Int64(clamping: v)
            default: raw = 0
            }
            let size = sizes[i % sizes.count]
            guard raw >= -Int64(size), raw < Int64(size) else {
                throw LatheError.indexOutOfRange(node: node.name, op: node.op.name, index: raw, bound: size, location: node.location)
            }
            return Int(raw < 0 ? raw + Int64(size) : raw)
        }
    }
}

extension Interpreter {
    /// The index of the first (or last) largest or smallest element along an axis; a NaN is
    /// both (NumPy's argmax and argmin pick the first NaN).
    static func argExtreme(_ x: HostTensor, _ kind: ArgKind, axis: Int, lastIndex: Bool, shape: [Int]) throws -> HostTensor {
        let values = x.scalars
        let (outer, length) = (x.shape[..<axis].reduce(1, *), x.shape[axis])
        let inner = x.shape[(axis + 1)...].reduce(1, *)
        var out: [Int64] = []
        out.reserveCapacity(outer * inner)
        for o in 0..<outer {
            for i in 0..<inner {
                var (best, index) = (values[o * length * inner + i], 0)
                for k in 1..<max(length, 1) {
                    let v = values[(o * length + k) * inner + i]
                    let better = kind == .max ? v > best : v < best
                    let tie = v == best || (v.isNaN && best.isNaN)
                    if !best.isNaN && (better || v.isNaN) || lastIndex && tie { (best, index) = (v, k) }
                }
                out.append(Int64(index))
            }
        }
        return try HostTensor(shape: shape, values: out)
    }
}

extension Interpreter {
    /// The data offsets gather_nd (and scatter_nd, with no batch axes) reads or writes, in
    /// order, and the slice length: each index tuple's slice, tuple by tuple, its components
    /// checked in order.
    static func ndSources(dataShape: [Int], indices: HostTensor, batchDims b: Int, node: Node) throws -> ([Int], Int) {
        let depth = indices.shape.last ?? 1
        let strides = contiguousStrides(dataShape)
        let slice = dataShape.dropFirst(b + depth).reduce(1, *)
        let tuples = indices.count / max(depth, 1)
        let perBatch = tuples / max(dataShape.prefix(b).reduce(1, *), 1)
        let batchStride = dataShape.dropFirst(b).reduce(1, *)
        let positions = try checkedIndices(indices, sizes: Array(dataShape[b..<(b + depth)]), node: node)
        var sources: [Int] = []
        for t in 0..<tuples {
            var base = (t / max(perBatch, 1)) * batchStride
            for j in 0..<depth { base += positions[t * depth + j] * strides[b + j] }
            sources += (0..<slice).map { base + $0 }
        }
        return (sources, slice)
    }

    /// The data with each update written or combined at its index, in order (Op.scatter).
    static func scatter(_ data: HostTensor, indices: HostTensor, updates: HostTensor, axis: Int?, reduction: ScatterReduction, node: Node) throws -> HostTensor {
        let type = data.dtype, strides = contiguousStrides(data.shape)
        var out = data.withUnsafeBytes { raw in (0..<data.count).map { type.scalar(in: raw, at: $0) } }
        let news = updates.withUnsafeBytes { raw in (0..<updates.count).map { type.scalar(in: raw, at: $0) } }
        // The element (ScatterElements) or the slice's first element (ScatterND) of each update.
        var targets: [Int] = []
        if let axis {
            let checked = try checkedIndices(indices, size: data.shape[axis], node: node)
            var k = 0
            forEachOffset(shape: indices.shape, strides: [strides.enumerated().map { $0.offset == axis ? 0 : $0.element }]) { offsets in
                targets.append(offsets[0] + checked[k] * strides[axis])
                k += 1
            }
        } else {
            targets = try ndSources(dataShape: data.shape, indices: indices, batchDims: 0, node: node).0
        }
        let combine = reduction.formula?.makeTypedEvaluator([type, type], context: type)
        for (update, target) in zip(news, targets) {
            out[target] = combine.map { type.normalized($0([out[target], update])) } ?? update
        }
        var bytes: [UInt8] = []
        for s in out { type.append(s, to: &bytes) }
        return (try? HostTensor(shape: data.shape, dtype: type, bytes: bytes)) ?? data
    }

    /// The positions of the k best elements along an axis, best first (Op.topK's order), the
    /// elements compared in their type.
    static func topK(_ x: HostTensor, k: Int, axis: Int, largest: Bool, shape: [Int]) throws -> HostTensor {
        let type = x.dtype
        let values = x.withUnsafeBytes { raw in (0..<x.count).map { type.scalar(in: raw, at: $0) } }
        let (outer, length) = (x.shape[..<axis].reduce(1, *), x.shape[axis])
        let inner = x.shape[(axis + 1)...].reduce(1, *)
        var out = [Int64](repeating: 0, count: outer * k * inner)
        for o in 0..<outer {
            for i in 0..<inner {
                let value = { (p: Int) in values[(o * length + p) * inner + i] }
                let order = (0..<length).sorted { topKPrecedes(value($0), $0, value($1), $1, largest: largest) }
                for (r, p) in order.prefix(k).enumerated() { out[(o * k + r) * inner + i] = Int64(p) }
            }
        }
        return try HostTensor(shape: shape, values: out)
    }

    /// Whether (a, at i) comes before (b, at j) in top_k's order: the better value (a NaN above
    /// any number), equal values by position. Both of one type.
    public static func topKPrecedes(_ a: Scalar, _ i: Int, _ b: Scalar, _ j: Int, largest: Bool) -> Bool {
        func order<T: Comparable>(_ a: T, _ b: T) -> Bool { a != b ? (largest ? a > b : a < b) : i < j }
        switch (a, b) {
        case let (.signed(x), .signed(y)): return order(x, y)
        case let (.unsigned(x), .unsigned(y)): return order(x, y)
        default:
            let (x, y) = (a.double, b.double)
            if x.isNaN || y.isNaN { return x.isNaN && y.isNaN ? i < j : x.isNaN == largest }
            return order(x, y)
        }
    }

    /// reduce_sum, max, min and prod of an integer tensor, in its type (TypedScalar's add, max,
    /// min, mul): integers wrap as the compiled code's do. The output cells are the input's
    /// with the reduced axes of stride 0 (`outStrides`).
    static func typedReduce(_ x: HostTensor, _ kind: ReduceKind, outStrides: [Int], count: Int, shape: [Int]) -> HostTensor {
        let type = x.dtype
        let values = x.withUnsafeBytes { raw in (0..<x.count).map { type.scalar(in: raw, at: $0) } }
        let bits = type.byteSize * 8
        let fn: ScalarBinary, start: Scalar
        switch kind {
        case .sum, .mean: (fn, start) = (.add, type.converting(.float(0)))
        case .prod: (fn, start) = (.mul, type.converting(.float(1)))
        case .max: (fn, start) = (.max, type.isSigned ? .signed(bits == 64 ? .min : -(Int64(1) << (bits - 1))) : .unsigned(0))
        case .min: (fn, start) = (.min, type.isSigned ? .signed(bits == 64 ? .max : (Int64(1) << (bits - 1)) - 1) : .unsigned(bits == 64 ? .max : (UInt64(1) << bits) - 1))
        }
        var acc = Array(repeating: start, count: count)
        var i = 0
        forEachOffset(shape: x.shape, strides: [outStrides]) { offsets in
            acc[offsets[0]] = type.normalized(fn.evaluate(acc[offsets[0]], values[i]))
            i += 1
        }
        var bytes: [UInt8] = []
        for s in acc { type.append(s, to: &bytes) }
        return (try? HostTensor(shape: shape, dtype: type, bytes: bytes)) ?? HostTensor(shape: shape)
    }

    /// Running sums (or products) along an axis, in the tensor's type (TypedScalar's add, mul).
    static func cumulativeSum(_ x: HostTensor, axis: Int, exclusive: Bool, reverse: Bool, product: Bool) -> HostTensor {
        let (outer, length) = (x.shape[..<axis].reduce(1, *), x.shape[axis])
        let inner = x.shape[(axis + 1)...].reduce(1, *)
        let type = x.dtype
        let values = x.withUnsafeBytes { raw in (0..<x.count).map { type.scalar(in: raw, at: $0) } }
        var sums = values
        for o in 0..<outer {
            for i in 0..<inner {
                var total = type.converting(.float(product ? 1 : 0))
                for step in 0..<length {
                    let k = reverse ? length - 1 - step : step
                    let at = (o * length + k) * inner + i
                    let before = total
                    total = type.normalized((product ? ScalarBinary.mul : .add).evaluate(total, values[at]))
                    sums[at] = exclusive ? before : total
                }
            }
        }
        var bytes: [UInt8] = []
        for s in sums { type.append(s, to: &bytes) }
        return (try? HostTensor(shape: x.shape, dtype: type, bytes: bytes)) ?? x
    }
}

extension HostTensor {
    /// A tensor of `shape` whose element i is this tensor's element sources[i], or `fill`
    /// (converted to the type) where sources[i] is negative. Any element type.
    public func picking(_ sources: [Int], shape: [Int], fill: Float = 0) -> HostTensor {
        if dtype == .float32 {
            let own = scalars
            return (try? HostTensor(shape: shape, scalars: sources.map { $0 < 0 ? fill : own[$0] })) ?? HostTensor(shape: shape)
        }
        let size = dtype.byteSize
        var filler: [UInt8] = []
        dtype.append(Double(fill), to: &filler)
        let own = rawBytes
        var out: [UInt8] = []
        out.reserveCapacity(sources.count * size)
        for s in sources {
            if s < 0 { out += filler } else { out += own[(s * size)..<((s + 1) * size)] }
        }
        return (try? HostTensor(shape: shape, dtype: dtype, bytes: out)) ?? HostTensor(shape: shape)
    }

    /// The elements at base + sum(index_d * strides[d]) for each index of `shape`, in order.
    public func picking(shape: [Int], strides: [Int], base: Int) -> HostTensor {
        var sources: [Int] = []
        sources.reserveCapacity(shape.reduce(1, *))
        forEachOffset(shape: shape, strides: [strides], bases: [base]) { sources.append($0[0]) }
        return picking(sources, shape: shape)
    }
}
