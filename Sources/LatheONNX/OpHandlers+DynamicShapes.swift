import Foundation
import LatheIR

/// NonZero, NonMaxSuppression, Unique, and Compress with a condition computed at run time: ops
/// whose output sizes depend on their operands' values. With operands known at import they are computed then. Otherwise the import ends
/// there (ImportContext.stageEnd): ONNXModel runs the model in stages, compiling the graph up
/// to such a node for the sizes it has, computing the node on the host from that stage's
/// results (`DynamicShapeOps.evaluate`, as ONNX's reference does), and compiling the rest for
/// the sizes those results have.
extension OpHandlers {
    static let dynamicShapes: [String: Handler] = ["NonZero": valueDependent, "NonMaxSuppression": valueDependent, "Unique": valueDependent]

    /// The node computed now if its operands are known, else the end of a stage.
    static func valueDependent(_ c: ImportContext) throws -> [ImportedValue] {
        let operands = try (0..<c.node.input.count).map { try c.input($0) }
        let known = operands.map { v -> HostTensor? in if case let .constant(k)? = v { k.hostTensor } else { nil } }
        guard zip(operands, known).allSatisfy({ $0 == nil || $1 != nil }) else { throw try c.stageEnd(operands: Array(c.node.input)) }
        return try DynamicShapeOps.evaluate(c.node, known, location: c.location).map { .constant(ConstantTensor($0)) }
    }
}

/// The host computations of the ops whose output sizes depend on values.
enum DynamicShapeOps {
    static func evaluate(_ node: Onnx_NodeProto, _ operands: [HostTensor?], location: SourceLocation) throws -> [HostTensor] {
        func fail(_ reason: String) -> LatheError { .malformedModel("\(location): \(node.opType) node '\(node.displayName)' \(reason)") }
        func operand(_ i: Int) throws -> HostTensor {
            guard i < operands.count, let x = operands[i] else { throw fail("needs operand \(i + 1)") }
            return x
        }
        switch node.opType {
        case "NonZero":
            return [try nonZero(try operand(0))]
        case "NonMaxSuppression":
            let boxes = try operand(0), scores = try operand(1)
            guard boxes.shape.count == 3, boxes.shape[2] == 4, scores.shape.count == 3, scores.shape[0] == boxes.shape[0], scores.shape[2] == boxes.shape[1] else {
                throw fail("has boxes \(boxes.shape) and scores \(scores.shape); [B, N, 4] and [B, C, N] needed")
            }
            func scalar(_ i: Int) throws -> Double? {
                guard i < operands.count, let t = operands[i], t.count > 0 else { return nil }
                return try t.converted(to: .float64).values(as: Double.self)[0]
            }
            // The limit is an int64 (torchvision's is its largest value).
            let limit = try (2 < operands.count ? operands[2] : nil).flatMap { t in t.count > 0 ? try t.converted(to: .int64).values(as: Int64.self)[0] : nil } ?? 0
            return [try nonMaxSuppression(boxes: boxes, scores: scores, limit: Int(max(limit, 0)), iou: Float(try scalar(3) ?? 0),
                                          scoreThreshold: try scalar(4).map(Float.init), centerPoint: node.int("center_point_box", 0) != 0)]
        case "Unique":
            let x = try operand(0)
            let axis = try node.attribute("axis").map { a -> Int in
                let k = Int(a.i) < 0 ? Int(a.i) + x.shape.count : Int(a.i)
                guard (0..<x.shape.count).contains(k) else { throw fail("has axis \(a.i) for rank \(x.shape.count)") }
                return k
            }
            return try unique(x, axis: axis, sorted: node.int("sorted", 1) != 0)
        case "Compress":
            // NumPy's compress: the slices along `axis` (of the flattened input without one)
            // whose condition holds; a condition shorter than the axis leaves the rest out.
            let x = try operand(0), condition = try operand(1).converted(to: .float64).values(as: Double.self)
            let axis = try node.attribute("axis").map { a -> Int in
                let k = Int(a.i) < 0 ? Int(a.i) + x.shape.count : Int(a.i)
                guard (0..<x.shape.count).contains(k) else { throw fail("has axis \(a.i) for rank \(x.shape.count)") }
                return k
            }
            let shape = axis == nil ? [x.count] : x.shape
            let a = axis ?? 0
            guard condition.count <= shape[a] else { throw fail("has a condition of \(condition.count) for an axis of \(shape[a])") }
            let kept = condition.indices.filter { condition[$0] != 0 }
            let (outer, inner) = (shape[..<a].reduce(1, *), shape[(a + 1)...].reduce(1, *))
            var sources: [Int] = []
            for o in 0..<outer { for k in kept { for i in 0..<inner { sources.append((o * shape[a] + k) * inner + i) } } }
            var outShape = shape
            outShape[a] = kept.count
            return [x.picking(sources, shape: outShape)]
        default:
            throw LatheError.unsupported("\(location): \(node.opType) is not an op of value-dependent size")
        }
    }

    /// The positions of the non-zero elements, [rank, count], in row-major order.
    static func nonZero(_ x: HostTensor) throws -> HostTensor {
        let values = try x.converted(to: .float64).values(as: Double.self)
        let strides = contiguousStrides(x.shape)
        let found = values.indices.filter { values[$0] != 0 }
        var out = [Int64](repeating: 0, count: x.shape.count * found.count)
        for (k, flat) in found.enumerated() {
            for axis in x.shape.indices { out[axis * found.count + k] = Int64(flat / strides[axis] % x.shape[axis]) }
        }
        return try HostTensor(shape: [x.shape.count, found.count], values: out)
    }

    /// ONNX's greedy suppression, per batch and class: boxes by descending score (ties by
    /// index) above the score threshold, each kept unless its IoU with a kept one exceeds
    /// `iou`, at most `limit` a class. Rows (batch, class, box).
    static func nonMaxSuppression(boxes: HostTensor, scores: HostTensor, limit: Int, iou: Float, scoreThreshold: Float?,
                                  centerPoint: Bool) throws -> HostTensor {
        let (batches, count, classes) = (boxes.shape[0], boxes.shape[1], scores.shape[1])
        let b = try boxes.converted(to: .float32).scalars, s = try scores.converted(to: .float32).scalars
        /// x min, x max, y min, y max of a box.
        func corners(_ batch: Int, _ i: Int) -> (Float, Float, Float, Float) {
            let v = (0..<4).map { b[(batch * count + i) * 4 + $0] }
            if centerPoint { return (v[0] - v[2] / 2, v[0] + v[2] / 2, v[1] - v[3] / 2, v[1] + v[3] / 2) }
            return (min(v[1], v[3]), max(v[1], v[3]), min(v[0], v[2]), max(v[0], v[2]))
        }
        func overlaps(_ batch: Int, _ i: Int, _ j: Int) -> Bool {
            let (a, c) = (corners(batch, i), corners(batch, j))
            let (left, right) = (max(a.0, c.0), min(a.1, c.1)), (top, bottom) = (max(a.2, c.2), min(a.3, c.3))
            guard right > left, bottom > top else { return false }
            let intersection = (right - left) * (bottom - top)
            let areaA = (a.1 - a.0) * (a.3 - a.2), areaC = (c.1 - c.0) * (c.3 - c.2)
            let union = areaA + areaC - intersection
            guard intersection > 0, areaA > 0, areaC > 0, union > 0 else { return false }
            return intersection / union > iou
        }
        var rows: [Int64] = []
        for batch in 0..<batches {
            for cls in 0..<classes {
                let row = (batch * classes + cls) * count
                var candidates = (0..<count).filter { i in scoreThreshold.map { s[row + i] > $0 } ?? true }
                candidates.sort { s[row + $0] > s[row + $1] || (s[row + $0] == s[row + $1] && $0 < $1) }
                var kept: [Int] = []
                for i in candidates where kept.count < limit {
                    if kept.allSatisfy({ !overlaps(batch, i, $0) }) {
                        kept.append(i)
                        rows += [Int64(batch), Int64(cls), Int64(i)]
                    }
                }
            }
        }
        return try HostTensor(shape: [rows.count / 3, 3], values: rows)
    }

    /// The distinct elements (or slices along `axis`), sorted or in order of first appearance,
    /// with the index of each one's first appearance, each element's index among them, and
    /// their counts (NumPy's unique).
    static func unique(_ x: HostTensor, axis: Int?, sorted: Bool) throws -> [HostTensor] {
        let shape = axis == nil ? [x.count] : x.shape
        let a = axis ?? 0
        let (outer, length) = (shape[..<a].reduce(1, *), shape[a])
        let inner = shape[(a + 1)...].reduce(1, *)
        let size = x.dtype.byteSize, bytes = x.rawBytes
        let keys = try x.converted(to: .float64).values(as: Double.self)
        /// Slice k along the axis, as element positions.
        func positions(_ k: Int) -> [Int] { (0..<outer).flatMap { o in (0..<inner).map { (o * length + k) * inner + $0 } } }
        let slices = (0..<length).map(positions)
        func same(_ p: Int, _ q: Int) -> Bool { bytes[(p * size)..<((p + 1) * size)] == bytes[(q * size)..<((q + 1) * size)] }
        func less(_ i: Int, _ j: Int) -> Bool {
            for (p, q) in zip(slices[i], slices[j]) where !same(p, q) {
                if keys[p] != keys[q] { return keys[p] < keys[q] }
                // 64-bit integers that f64 rounds alike: compare exactly.
                switch x.dtype {
                case .int64: return Int64(truncatingIfNeeded: load(bytes, p, Int64.self)) < load(bytes, q, Int64.self)
                case .uint64: return load(bytes, p, UInt64.self) < load(bytes, q, UInt64.self)
                default: continue
                }
            }
            return false
        }
        var firsts: [Int] = [], inverse = [Int64](repeating: 0, count: length), counts: [Int64] = []
        for k in 0..<length {
            if let found = firsts.firstIndex(where: { f in zip(slices[f], slices[k]).allSatisfy { same($0, $1) } }) {
                inverse[k] = Int64(found)
                counts[found] += 1
            } else {
                inverse[k] = Int64(firsts.count)
                firsts.append(k)
                counts.append(1)
            }
        }
        var order = Array(firsts.indices)
        if sorted { order.sort { less(firsts[$0], firsts[$1]) } }
        let rank = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0) })
        var outShape = shape
        outShape[a] = firsts.count
        var y: [UInt8] = []
        y.reserveCapacity(outShape.reduce(1, *) * size)
        for o in 0..<outer {
            for u in order { for i in 0..<inner { let p = (o * length + firsts[u]) * inner + i; y += bytes[(p * size)..<((p + 1) * size)] } }
        }
        return [try HostTensor(shape: outShape, dtype: x.dtype, bytes: y),
                try HostTensor(shape: [firsts.count], values: order.map { Int64(firsts[$0]) }),
                try HostTensor(shape: [length], values: inverse.map { Int64(rank[Int($0)]!) }),
                try HostTensor(shape: [firsts.count], values: order.map { counts[$0] })]
    }

    private static func load<T>(_ bytes: [UInt8], _ index: Int, _: T.Type) -> T {
        bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: index * MemoryLayout<T>.size, as: T.self) }
    }
}
