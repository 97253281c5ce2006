import CLLVM
import LatheIR

/// Scatter (ONNX's ScatterElements and ScatterND): the data copied to the result, then, once
/// every index is found in range (Gather.swift's index record), each update written, or
/// combined by the reduction, at its place, in order. gather_nd walks index tuples as
/// scatter_nd does.
extension IRBuilder {
    func scatter(axis: Int?, reduction: ScatterReduction, output: LLVMValue, data: LLVMValue, indices: LLVMValue, updates: LLVMValue,
                 dataShape: [Int], indexShape: [Int], type: DType, indexType: DType, record: LLVMValue) {
        let count = dataShape.reduce(1, *), strides = contiguousStrides(dataShape)
        elementwise(shape: [count], output: StridedView(base: output, strides: [1], dtype: type.movementType),
                    inputs: [StridedView(base: data, strides: [1], dtype: type.movementType)]) { v, _ in v[0] }
        /// The update's value landing at element `target` of the result.
        func land(_ update: LLVMValue, at target: LLVMValue) {
            var value = update
            if let formula = reduction.formula {
                value = emit(formula, [load(output, target, type), update], types: [type, type], context: type, lanes: 1)
            }
            store(value, output, target, type)
        }
        if let axis {
            let views = [StridedView(base: indices, strides: contiguousStrides(indexShape), dtype: indexType),
                         StridedView(base: updates, strides: contiguousStrides(indexShape), dtype: type),
                         StridedView(base: output, strides: strides.enumerated().map { $0.offset == axis ? 0 : $0.element }, dtype: type)]
            ifIndicesInRange(indices, count: indexShape.reduce(1, *), indexType, sizes: [dataShape[axis]], record: record) {
                // Scalar loops, one position after another: a repeated index sees the updates before it.
                self.forEachOffset(shape: indexShape, views: views) { offsets in
                    let index = self.index(self.load(indices, offsets[0], indexType), indexType, size: dataShape[axis])
                    land(self.load(updates, offsets[1], type), at: self.iadd(offsets[2], self.imul(index, self.int(strides[axis]))))
                }
            }
            return
        }
        forEachSlice(dataShape: dataShape, indices: indices, indexShape: indexShape, indexType: indexType, batchDims: 0, record: record) { t, slice, base, s in
            land(self.load(updates, self.iadd(self.imul(t, self.int(slice)), s), type), at: self.iadd(base, s))
        }
    }

    /// gather_nd: each index tuple's slice of the data, tuple after tuple.
    func gatherND(batchDims: Int, output: LLVMValue, data: LLVMValue, indices: LLVMValue, dataShape: [Int], indexShape: [Int],
                  type: DType, indexType: DType, record: LLVMValue) {
        forEachSlice(dataShape: dataShape, indices: indices, indexShape: indexShape, indexType: indexType, batchDims: batchDims, record: record) { t, slice, base, s in
            self.store(self.load(data, self.iadd(base, s), type), output, self.iadd(self.imul(t, self.int(slice)), s), type)
        }
    }

    /// Once every index tuple (the last axis of the indices) is found in range, calls
    /// `body(tuple, slice length, the slice's first data offset, position in the slice)` for
    /// every element of every tuple's slice: the tuples share the data's first `batchDims` axes.
    private func forEachSlice(dataShape: [Int], indices: LLVMValue, indexShape: [Int], indexType: DType, batchDims b: Int, record: LLVMValue,
                              _ body: @escaping (LLVMValue, Int, LLVMValue, LLVMValue) -> Void) {
        let strides = contiguousStrides(dataShape)
        let depth = indexShape.last ?? 1
        let tuples = indexShape.reduce(1, *) / max(depth, 1), slice = dataShape.dropFirst(b + depth).reduce(1, *)
        let perBatch = tuples / max(dataShape.prefix(b).reduce(1, *), 1), batchStride = dataShape.dropFirst(b).reduce(1, *)
        ifIndicesInRange(indices, count: tuples, indexType, sizes: Array(dataShape[b..<(b + depth)]), record: record) {
            self.loop(0, tuples, unroll: false) { t in
                var base = self.imul(LLVMBuildUDiv(self.builder, t, self.int(max(perBatch, 1)), "")!, self.int(batchStride))
                for j in 0..<depth {
                    let component = self.load(indices, self.iadd(self.imul(t, self.int(depth)), self.int(j)), indexType)
                    base = self.iadd(base, self.imul(self.index(component, indexType, size: dataShape[b + j]), self.int(strides[b + j])))
                }
                self.loop(0, slice, unroll: false) { s in body(t, slice, base, s) }
            }
        }
    }
}
