import CLLVM
import LatheIR

/// Gather, gather_elements and gather's gradient, on data of any element type (moved as integers of its width) and
/// indices of i32, i64 or f32.
///
/// Integer indices come from outside (ONNX's token ids): a negative one counts from the end of
/// the axis, and one outside -size..<size is an error. The kernel checks every index before it
/// copies anything; the first one out of range is written to its index record (three i64s at
/// the start of its scratch: a flag, the index, its bound), and nothing is copied. The entry point reads
/// the flag after the kernel and stops the run there, and the runtime throws
/// LatheError.indexOutOfRange naming the node. Float indices (the DSL's) are truncated,
/// wrapped and clamped into range, as the interpreter's gatherIndex.
extension IRBuilder {
    /// Copies the slice of `data` each index picks, along `axis`.
    func gather(axis: Int, output: LLVMValue, data: LLVMValue, indices: LLVMValue, dataShape: [Int], indexCount: Int,
                dataType: DType, indexType: DType, record: LLVMValue?) {
        let outer = dataShape[..<axis].reduce(1, *), size = dataShape[axis], inner = dataShape[(axis + 1)...].reduce(1, *)
        let copy = {
            self.loop(0, outer, unroll: false) { o in
                self.loop(0, indexCount, unroll: false) { k in
                    let index = self.index(self.load(indices, k, indexType), indexType, size: size)
                    let source = self.pointer(data, self.imul(self.iadd(self.imul(o, self.int(size)), index), self.int(inner)), dataType)
                    let target = self.pointer(output, self.imul(self.iadd(self.imul(o, self.int(indexCount)), k), self.int(inner)), dataType)
                    self.elementwise(shape: [inner], output: StridedView(base: target, strides: [1], dtype: dataType),
                                     inputs: [StridedView(base: source, strides: [1], dtype: dataType)]) { v, _ in v[0] }
                }
            }
        }
        guard indexType.isInteger, let record else { return copy() }
        ifIndicesInRange(indices, count: indexCount, indexType, sizes: [size], record: record, copy)
    }

    /// out[p] = data[p, its `axis` coordinate replaced by indices[p]] for each position p of
    /// the indices (gather_elements), once every index is found in range.
    func gatherElements(axis: Int, output: LLVMValue, data: LLVMValue, indices: LLVMValue, dataShape: [Int], indexShape: [Int],
                        dataType: DType, indexType: DType, record: LLVMValue) {
        let size = dataShape[axis], dataStrides = contiguousStrides(dataShape)
        let views = [StridedView(base: output, strides: contiguousStrides(indexShape), dtype: dataType),
                     StridedView(base: indices, strides: contiguousStrides(indexShape), dtype: indexType),
                     StridedView(base: data, strides: dataStrides.enumerated().map { $0.offset == axis ? 0 : $0.element }, dtype: dataType)]
        ifIndicesInRange(indices, count: indexShape.reduce(1, *), indexType, sizes: [size], record: record) {
            self.forEachOffset(shape: indexShape, views: views) { offsets in
                let index = self.index(self.load(indices, offsets[1], indexType), indexType, size: size)
                let value = self.load(data, self.iadd(offsets[2], self.imul(index, self.int(dataStrides[axis]))), dataType)
                self.store(value, output, offsets[0], dataType)
            }
        }
    }

    /// Checks `count` tuples of integer indices, component j against an axis of `sizes[j]`
    /// (after the wrap of negative ones), writing the first one out of range and its bound to
    /// the index record, then runs `body` when none is.
    func ifIndicesInRange(_ indices: LLVMValue, count: Int, _ indexType: DType, sizes: [Int], record: LLVMValue, _ body: () -> Void) {
        let flag = LLVMBuildPointerCast(builder, record, LLVMPointerType(i64, 0), "")!
        let (badIndex, badBound) = (pointer(record, int(1), .int64), pointer(record, int(2), .int64))
        LLVMBuildStore(builder, int(0), flag)
        loop(0, count, unroll: false) { t in
            for (j, size) in sizes.enumerated() {
                let value = widenedIndex(load(indices, iadd(imul(t, int(sizes.count)), int(j)), indexType), indexType)
                let outside = LLVMBuildOr(builder, LLVMBuildICmp(builder, LLVMIntSLT, value, int(-size), "")!,
                                          LLVMBuildICmp(builder, LLVMIntSGE, value, int(size), "")!, "")!
                let first = LLVMBuildICmp(builder, LLVMIntEQ, LLVMBuildLoad2(builder, i64, flag, "")!, int(0), "")!
                ifElse(LLVMBuildAnd(builder, outside, first, "")!, then: {
                    LLVMBuildStore(builder, int(1), flag)
                    LLVMBuildStore(builder, value, badIndex)
                    LLVMBuildStore(builder, int(size), badBound)
                }, else: {})
            }
        }
        ifElse(LLVMBuildICmp(builder, LLVMIntEQ, LLVMBuildLoad2(builder, i64, flag, "")!, int(0), "")!, then: body, else: {})
    }

    /// gather's gradient: the output zeroed, then each dy slice added at the row its index picks,
    /// in order, so repeated indices add up. (Its gather checked the indices.)
    func gatherGradient(axis: Int, output: LLVMValue, indices: LLVMValue, dy: LLVMValue, shape: [Int], indexCount: Int, indexType: DType) {
        let outer = shape[..<axis].reduce(1, *), size = shape[axis], inner = shape[(axis + 1)...].reduce(1, *)
        fill(output, count: int(shape.reduce(1, *)), with: 0)
        loop(0, outer, unroll: false) { o in
            loop(0, indexCount, unroll: false) { k in
                let index = index(load(indices, k, indexType), indexType, size: size)
                let target = StridedView(base: pointer(output, imul(iadd(imul(o, int(size)), index), int(inner))), strides: [1])
                let source = StridedView(base: pointer(dy, imul(iadd(imul(o, int(indexCount)), k), int(inner))), strides: [1])
                elementwise(shape: [inner], output: target, inputs: [target, source]) { v, _ in add(v[0], v[1]) }
            }
        }
    }

    /// An index as an i64 (from i32 by sign extension).
    func widenedIndex(_ value: LLVMValue, _ type: DType) -> LLVMValue {
        type == .int64 ? value : LLVMBuildSExt(builder, value, i64, "")
    }

    /// The position an index picks on an axis of `size`: negative ones counted from the end,
    /// then clamped into 0..<size (a checked integer index is in range already; a float one is
    /// truncated first, as LatheIR's gatherIndex).
    func index(_ value: LLVMValue, _ type: DType, size: Int) -> LLVMValue {
        var k: LLVMValue
        if type.isInteger {
            k = widenedIndex(value, type)
        } else {
            // NaN and the infinities pick 0, as gatherIndex says.
            let bounded = minimum(maximum(value, float(-1e9)), float(1e9))
            let nonFinite = compare(LLVMRealUEQ, intrinsic("llvm.fabs", value), float(.infinity))
            k = LLVMBuildFPToSI(builder, select(nonFinite, float(0), bounded), i64, "")!
        }
        k = LLVMBuildSelect(builder, LLVMBuildICmp(builder, LLVMIntSLT, k, int(0), "")!, iadd(k, int(size)), k, "")
        k = LLVMBuildSelect(builder, LLVMBuildICmp(builder, LLVMIntSLT, k, int(0), "")!, int(0), k, "")
        return LLVMBuildSelect(builder, LLVMBuildICmp(builder, LLVMIntSGT, k, int(size - 1), "")!, int(size - 1), k, "")
    }
}
