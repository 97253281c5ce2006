import CLLVM
import LatheIR

/// A tensor seen through strides: element (i0, i1, ...) lives at base[offset + sum(i_d * strides[d])].
/// Broadcasting is stride 0, a transpose permutes strides, a slice scales them. Its elements
/// are of `dtype`, loaded in their compute type and stored back as `dtype` (TypedMath).
struct StridedView {
    var base: LLVMValue
    var offset: Int = 0
    var strides: [Int]
    var dtype: DType = .float32
}

/// Merges adjacent axes that every view walks contiguously, so that an elementwise op over
/// [64, 32, 26, 26] becomes one loop of 1,384,448 and vectorizes cleanly.
func coalesce(shape: [Int], strides: [[Int]]) -> (shape: [Int], strides: [[Int]]) {
    guard !shape.isEmpty else { return ([1], strides.map { _ in [0] }) }
    var outShape = [shape[0]]
    var outStrides = strides.map { [$0[0]] }
    for axis in 1..<shape.count {
        let mergeable = strides.allSatisfy { $0[axis - 1] == $0[axis] * shape[axis] }
        if mergeable {
            outShape[outShape.count - 1] *= shape[axis]
            for s in strides.indices { outStrides[s][outStrides[s].count - 1] = strides[s][axis] }
        } else {
            outShape.append(shape[axis])
            for s in strides.indices { outStrides[s].append(strides[s][axis]) }
        }
    }
    return (outShape, outStrides)
}

extension IRBuilder {
    /// Loops over every index of `shape` and hands `body` the element offset of each view.
    func forEachOffset(shape: [Int], views: [StridedView], _ body: ([LLVMValue]) -> Void) {
        let (loopShape, strides) = coalesce(shape: shape, strides: views.map(\.strides))
        func level(_ axis: Int, _ offsets: [LLVMValue]) {
            if axis == loopShape.count { body(offsets); return }
            loop(0, loopShape[axis], unroll: axis == loopShape.count - 1) { i in
                level(axis + 1, offsets.indices.map { offset(offsets[$0], i, times: strides[$0][axis]) })
            }
        }
        level(0, views.map { int($0.offset) })
    }

    /// out[index] = compute(inputs[index]...) over `shape`. The innermost loop runs on full
    /// vectors when the output is contiguous there and every input is contiguous or broadcast,
    /// with a scalar loop for the remainder; otherwise it is scalar. `compute` receives each
    /// input in its element type's compute type, scalar or vector of the given lanes, and
    /// returns the output's.
    func elementwise(shape: [Int], output: StridedView, inputs: [StridedView], _ compute: ([LLVMValue], Int) -> LLVMValue) {
        let views = [output] + inputs
        let (loopShape, strides) = coalesce(shape: shape, strides: views.map(\.strides))
        let inner = loopShape.count - 1
        let innerStrides = strides.map { $0[inner] }
        let vectorizable = innerStrides[0] == 1 && innerStrides.dropFirst().allSatisfy { $0 == 0 || $0 == 1 }
        let width = vectorizable ? vectorWidth : 1

        func emitElement(_ offsets: [LLVMValue], lanes: Int) {
            let values = inputs.indices.map { k -> LLVMValue in
                let at = offsets[k + 1]
                if innerStrides[k + 1] == 0 && lanes > 1 { return splat(load(inputs[k].base, at, inputs[k].dtype), lanes: lanes) }
                return load(inputs[k].base, at, lanes: lanes, inputs[k].dtype)
            }
            store(compute(values, lanes), output.base, offsets[0], output.dtype)
        }

        func level(_ axis: Int, _ offsets: [LLVMValue]) {
            let step = { (i: LLVMValue) in offsets.indices.map { self.offset(offsets[$0], i, times: strides[$0][axis]) } }
            if axis < inner {
                loop(0, loopShape[axis], unroll: false) { i in level(axis + 1, step(i)) }
                return
            }
            let n = loopShape[axis]
            let vectorEnd = n / width * width
            if width > 1 { loop(0, vectorEnd, step: width) { i in emitElement(step(i), lanes: width) } }
            loop(width > 1 ? vectorEnd : 0, n) { i in emitElement(step(i), lanes: 1) }
        }
        level(0, views.map { int($0.offset) })
    }

    /// A row of a zero-padded plane: row[0..<length] holds `left` zeros, source[0..<width], then
    /// zeros (the direct and Winograd convolutions' padded copies).
    func copyPaddedRow(from source: LLVMValue, width: Int, into row: LLVMValue, left: Int, length: Int) {
        if left > 0 { fill(row, count: int(left), with: 0) }
        elementwise(shape: [width], output: StridedView(base: pointer(row, int(left)), strides: [1]),
                    inputs: [StridedView(base: source, strides: [1])]) { v, _ in v[0] }
        if length > left + width { fill(pointer(row, int(left + width)), count: int(length - left - width), with: 0) }
    }

    /// base[0 ..< count] = value (a scalar of `dtype`'s compute type), for a count known at run time.
    func fill(_ base: LLVMValue, count: LLVMValue, with value: LLVMValue, _ dtype: DType) {
        let width = vectorWidth
        let vectorEnd = LLVMBuildAnd(builder, count, int(-width), "")!
        loop(from: int(0), to: vectorEnd, step: width) { i in store(splat(value, lanes: width), base, i, dtype) }
        loop(from: vectorEnd, to: count) { i in store(value, base, i, dtype) }
    }

    /// base[0 ..< count] = value (floats), for a count known at run time.
    func fill(_ base: LLVMValue, count: LLVMValue, with value: Float) { fill(base, count: count, with: float(value), .float32) }
}
