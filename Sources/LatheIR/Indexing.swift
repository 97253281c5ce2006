/// Index arithmetic shared by the interpreter and the code generator.

/// Strides that read `shape` as if it had `target`'s shape under NumPy broadcasting:
/// right-aligned, 0 on every axis where `shape` has 1 (or no axis at all).
public func broadcastStrides(of shape: [Int], to target: [Int]) -> [Int] {
    let own = contiguousStrides(shape)
    let offset = target.count - shape.count
    return target.indices.map { axis in
        let a = axis - offset
        return a < 0 || shape[a] == 1 ? 0 : own[a]
    }
}

/// Strides that spread a [C] parameter along axis 1 of `target` (BatchNorm's parameters).
public func channelStrides(rank: Int) -> [Int] {
    (0..<rank).map { $0 == 1 ? 1 : 0 }
}

/// Visits every index of `shape` in row-major order and hands the body one element offset per
/// stride set, without allocating per element.
public func forEachOffset(shape: [Int], strides: [[Int]], bases: [Int]? = nil, _ body: ([Int]) -> Void) {
    let total = shape.reduce(1, *)
    guard total > 0 else { return }
    let rank = shape.count
    var index = [Int](repeating: 0, count: rank)
    var offsets = bases ?? [Int](repeating: 0, count: strides.count)
    for _ in 0..<total {
        body(offsets)
        var axis = rank - 1
        while axis >= 0 {
            index[axis] += 1
            for s in strides.indices { offsets[s] += strides[s][axis] }
            if index[axis] < shape[axis] { break }
            for s in strides.indices { offsets[s] -= strides[s][axis] * shape[axis] }
            index[axis] = 0
            axis -= 1
        }
    }
}
