import CLLVM
import LatheIR

/// Lowers one kernel to one LLVM function
/// `void kN_op(float* result, float* operands..., float* scratch, i64 thread)`, where `thread`
/// picks this call's share of the work (ThreadSplit). The one switch over ops in the code
/// generator.
extension IRBuilder {
    func emitKernel(_ kernel: Kernel) throws -> LLVMValue {
        let pointerCount = 1 + kernel.operands.count + (kernel.scratch == nil ? 0 : 1)
        let aliasing: Set<Int> = kernel.inPlaceOperand.map { [0, $0 + 1] } ?? []
        let function = beginFunction(kernel.name, pointerCount: pointerCount, aliasing: aliasing, integerCount: 1)
        let thread = LLVMGetParam(function, UInt32(pointerCount))!
        let out = LLVMGetParam(function, 0)!
        let x = kernel.operands.indices.map { LLVMGetParam(function, UInt32($0 + 1))! }
        var scratch = kernel.scratch == nil ? nil : LLVMGetParam(function, UInt32(pointerCount - 1))
        if kernel.claimsUnits, let counterAndScratch = scratch {
            unitCounter = LLVMBuildPointerCast(builder, counterAndScratch, LLVMPointerType(i64, 0), "")
            scratch = pointer(counterAndScratch, int(ThreadSplit.unitCounterFloats))
        }
        defer { unitCounter = nil }
        let shape = kernel.result.type.shape
        let shapes = kernel.operands.map(\.type.shape)
        let types = kernel.operands.map(\.type.dtype), resultType = kernel.result.type.dtype
        // Data that only moves is moved as integers of its width: exact for any type.
        let moved = resultType.movementType
        let dense = StridedView(base: out, strides: contiguousStrides(shape), dtype: resultType)
        func contiguous(_ k: Int, as dtype: DType? = nil) -> StridedView {
            StridedView(base: x[k], strides: contiguousStrides(shapes[k]), dtype: dtype ?? types[k])
        }
        func copy() {
            elementwise(shape: [kernel.result.type.count], output: StridedView(base: out, strides: [1], dtype: moved),
                        inputs: [StridedView(base: x[0], strides: [1], dtype: moved)]) { v, _ in v[0] }
        }

        switch kernel.work {
        case .copy:
            copy()
        case let .node(.epilogue(base, count, formula)):
            try contraction(base, out: out, x: Array(x.prefix(count)), shapes: Array(shapes.prefix(count)), shape: shape, scratch: scratch,
                            epilogue: GemmEpilogue(formula: formula, extras: x.indices.dropFirst(count).map { (x[$0], shapes[$0] != shape) }),
                            plan: kernel.plan, thread: thread, resultType: resultType, extraTypes: Array(types.dropFirst(count)))
        case let .node(.pooled(base, _)):
            guard case let .pooled(p, image) = kernel.plan.algorithm else {
                throw LatheError.unsupported("\(base.name) pooled in its kernel, with shapes \(shapes)")
            }
            try pooledConvolution(p, image: image, output: out, x: x, pooledShape: shape, scratch: scratch, plan: kernel.plan, thread: thread)
        case let .node(op):
            switch op {
            case .input, .constant, .variable, .assign, .epilogue, .pooled:
                throw LatheError.unsupported("\(op.name) is not a kernel")
            case .conv2dWeightGrad:
                guard case let .weightGradient(g, transposed) = kernel.plan.algorithm, let scratch else {
                    throw LatheError.unsupported("conv2d_weight_grad with shapes \(shapes)")
                }
                convolutionWeightGradient(g, transposed: transposed, dw: out, x: x[0], dy: x[1], scratch: scratch,
                                          threadScratchFloats: kernel.plan.scratchFloatsPerThread, split: kernel.split, thread: thread, threads: kernel.threads)
            case let .gatherGrad(axis, _):
                gatherGradient(axis: axis, output: out, indices: x[0], dy: x[1], shape: shape, indexCount: kernel.operands[0].type.count, indexType: types[0])
            case let .pool2dGrad(a):
                pool2dGradient(a, dx: out, x: x[0], dy: x[1], inShape: shapes[0], outShape: shapes[1], split: kernel.split, thread: thread, threads: kernel.threads)
            case let .dropoutMask(_, rate, seed):
                dropoutMask(DropoutMask(rate: rate, seed: seed), count: kernel.result.type.count, output: out, counter: x[0])
            case let .augment(a):
                augment(a, output: out, input: x[0], counter: x[1], inputShape: shapes[0], dtype: a.constantFill == 0 ? moved : resultType)
            case .augmentGrad(let a, _):
                augmentGradient(a, dx: out, dy: x[0], counter: x[1], inputShape: shape)
            case .unary, .binary, .fusedElementwise, .select, .cast, .batchNorm:
                let formula = op.formula!
                var inputs = x.indices.map { StridedView(base: x[$0], strides: broadcastStrides(of: shapes[$0], to: shape), dtype: types[$0]) }
                if case .batchNorm = op { inputs = [contiguous(0)] + (1..<5).map { StridedView(base: x[$0], strides: channelStrides(rank: shape.count)) } }
                let float32Only = resultType == .float32 && types.allSatisfy { $0 == .float32 } && formula.isFloat32Only
                forOuterRows(kernel.split, thread: thread, shape: shape, views: [dense] + inputs) { rows, views in
                    elementwise(shape: rows, output: views[0], inputs: Array(views.dropFirst())) { v, lanes in
                        float32Only ? emit(formula, v) : emit(formula, v, types: types, context: resultType, lanes: lanes)
                    }
                }
            case .reshape, .flatten, .dropout:
                copy()
            case let .transpose(perm):
                let inStrides = contiguousStrides(shapes[0])
                let views = [StridedView(base: out, strides: contiguousStrides(shape), dtype: moved),
                             StridedView(base: x[0], strides: perm.map { inStrides[$0] }, dtype: moved)]
                forOuterRows(kernel.split, thread: thread, shape: shape, views: views) { rows, views in
                    elementwise(shape: rows, output: views[0], inputs: [views[1]]) { v, _ in v[0] }
                }
            case let .slice(starts, _, steps):
                let inStrides = contiguousStrides(shapes[0])
                let view = StridedView(base: x[0], offset: zip(starts, inStrides).map(*).reduce(0, +), strides: zip(steps, inStrides).map(*), dtype: moved)
                elementwise(shape: shape, output: StridedView(base: out, strides: contiguousStrides(shape), dtype: moved), inputs: [view]) { v, _ in v[0] }
            case let .concat(axis):
                let outStrides = contiguousStrides(shape)
                var start = 0
                for k in x.indices {
                    elementwise(shape: shapes[k], output: StridedView(base: out, offset: start * outStrides[axis], strides: outStrides, dtype: moved),
                                inputs: [contiguous(k, as: moved)]) { v, _ in v[0] }
                    start += shapes[k][axis]
                }
            case .matmul, .dense, .conv2d:
                try contraction(op, out: out, x: x, shapes: shapes, shape: shape, scratch: scratch, epilogue: nil, plan: kernel.plan, thread: thread,
                                resultType: resultType)
            case let .pool2d(a) where types[0].byteSize == 1:
                bytePool2d(a, output: out, input: x[0], dtype: types[0], inShape: shapes[0], outShape: shape, split: kernel.split, thread: thread,
                           threads: kernel.threads)
            case let .pool2d(a):
                pool2d(a, output: out, input: x[0], inShape: shapes[0], outShape: shape, split: kernel.split, thread: thread, threads: kernel.threads)
            case .globalAveragePool:
                reduce(.mean, axes: Array(2..<shapes[0].count), output: out, input: x[0], inShape: shapes[0])
            case let .reduce(kind, axes, _):
                reduce(kind, axes: axes, output: out, input: x[0], inShape: shapes[0], type: resultType)
            case let .softmax(axis), let .logSoftmax(axis):
                var log = false
                if case .logSoftmax = op { log = true }
                if shape.dropFirst(axis + 1).allSatisfy({ $0 == 1 }) {
                    let length = shape[axis]
                    forRowShare(kernel.split, rows: shape.prefix(axis).reduce(1, *), thread: thread) { start, count in
                        let at = imul(start, int(length))
                        softmaxRows(log: log, output: pointer(out, at), input: pointer(x[0], at), rows: count, length: length)
                    }
                } else {
                    onThreadZero(thread) { softmax(axis: axis, log: log, output: out, input: x[0], shape: shape) }
                }
            case let .layerNorm(axis, epsilon):
                let counts = kernel.operands.map(\.type.count)
                forRowShare(kernel.split, rows: shape.prefix(axis).reduce(1, *), thread: thread) { start, count in
                    layerNorm(axis: axis, epsilon: epsilon, output: out, x: x, counts: counts, shape: shape, firstRow: start, rows: count)
                }
            case .convTranspose2d:
                guard case let .transposedConvolution(g) = kernel.plan.algorithm, let scratch else {
                    throw LatheError.unsupported("conv_transpose2d with shapes \(shapes)")
                }
                convolutionTransposed(g, output: out, input: x[0], weights: x[1], bias: x.count == 3 ? x[2] : nil, scratch: scratch,
                                      threadScratchFloats: kernel.plan.scratchFloatsPerThread,
                                      split: kernel.split, thread: thread, threads: kernel.threads)
            case let .gatherND(batchDims):
                guard let scratch else { throw LatheError.backend("gather_nd \(shapes) without its index record") }
                gatherND(batchDims: batchDims, output: out, data: x[0], indices: x[1], dataShape: shapes[0], indexShape: shapes[1],
                         type: moved, indexType: types[1], record: scratch)
            case let .scatter(axis, reduction):
                guard let scratch else { throw LatheError.backend("scatter \(shapes) without its index record") }
                scatter(axis: axis, reduction: reduction, output: out, data: x[0], indices: x[1], updates: x[2], dataShape: shapes[0], indexShape: shapes[1],
                        type: resultType, indexType: types[1], record: scratch)
            case let .topK(k, axis, largest):
                topK(k: k, axis: axis, largest: largest, output: out, input: x[0], inShape: shapes[0], type: types[0])
            case let .cumulativeSum(axis, exclusive, reverse, product):
                cumulativeSum(axis: axis, exclusive: exclusive, reverse: reverse, product: product, output: out, input: x[0], shape: shape, type: resultType)
            case let .gatherElements(axis):
                guard let scratch else { throw LatheError.backend("gather_elements \(shapes) without its index record") }
                gatherElements(axis: axis, output: out, data: x[0], indices: x[1], dataShape: shapes[0], indexShape: shapes[1],
                               dataType: moved, indexType: types[1], record: scratch)
            case let .gather(axis):
                gather(axis: axis, output: out, data: x[0], indices: x[1], dataShape: shapes[0], indexCount: kernel.operands[1].type.count,
                       dataType: moved, indexType: types[1], record: scratch)
            case let .pad(pads, value):
                // Fill, then copy the input into the interior.
                elementwise(shape: [kernel.result.type.count], output: StridedView(base: out, strides: [1], dtype: resultType), inputs: []) { _, lanes in
                    constant(value, resultType, lanes: lanes)
                }
                let outStrides = contiguousStrides(shape)
                let interior = StridedView(base: out, offset: zip(pads.prefix(shape.count), outStrides).map(*).reduce(0, +), strides: outStrides, dtype: moved)
                elementwise(shape: shapes[0], output: interior, inputs: [contiguous(0, as: moved)]) { v, _ in v[0] }
            case let .recurrent(cell):
                guard case let .recurrent(l) = kernel.plan.algorithm, let scratch else { throw LatheError.unsupported("\(cell.kind.rawValue) with shapes \(shapes)") }
                recurrentSequence(l, output: out, operands: x, scratch: scratch, threadScratchFloats: kernel.plan.scratchFloatsPerThread,
                                  prepackedWeights: kernel.weightLayout.isPacked, split: kernel.split, thread: thread, threads: kernel.threads)
            case let .argExtreme(kind, axis, _, last):
                argExtreme(kind, axis: axis, lastIndex: last, output: out, input: x[0], inShape: shapes[0])
            case let .lrn(size, alpha, beta, bias):
                localResponseNorm(size: size, alpha: alpha, beta: beta, bias: bias, output: out, input: x[0], shape: shape)
            }
        }
        endFunction()
        return function
    }

    /// Dense, matmul and conv2d, each a GEMM, with the epilogue applied as results are stored,
    /// this thread's share of it, by the algorithm its plan chose.
    func contraction(_ op: Op, out: LLVMValue, x: [LLVMValue], shapes: [[Int]], shape: [Int], scratch: LLVMValue?, epilogue: GemmEpilogue?,
                     plan: KernelPlan, thread: LLVMValue, resultType: DType = .float32, extraTypes: [DType] = []) throws {
        let (split, threads, prepacked) = (plan.split, plan.threads, plan.weightLayout.isPacked)
        let bias = x.count == 3 ? x[2] : nil
        switch (op, plan.algorithm) {
        case let (.matmul, .gemm(m, n, k, 1)), let (.dense, .gemm(m, n, k, _)):
            // One product (a matmul batch that shares B is one product of all its rows: ProductPlan).
            matrixShare(m: m, n: n, split: split, thread: thread, epilogue: epilogue) { _, rowStart, rows, columnStart, columns, epilogue in
                gemm(m: rows, n: columns, k: k, a: MatrixView(base: x[0], offset: imul(rowStart, int(k)), rowStride: k),
                     b: MatrixView(base: x[1], offset: columnStart, rowStride: n),
                     c: MatrixView(base: out, offset: iadd(imul(rowStart, int(n)), columnStart), rowStride: n),
                     bias: op == .dense && x.count == 3 ? .perColumn(x[2], offset: columnStart) : .none, epilogue: epilogue,
                     packing: scratch.map { pointer($0, imul(thread, int(plan.scratchFloatsPerThread))) }, prepackedB: prepacked)
            }
        case (.matmul, .gemm):
            batchedMatmul(out: out, a: x[0], b: x[1], aShape: shapes[0], bShape: shapes[1], epilogue: epilogue,
                          packing: scratch.map { pointer($0, imul(thread, int(plan.scratchFloatsPerThread))) }, prepackedB: prepacked,
                          split: split, thread: thread, threads: threads)
        case let (.conv2d, .winograd(w)):
            // The weights are transformed: no other kernel may read them.
            guard let scratch else { throw LatheError.backend("conv2d \(shapes): Winograd without scratch") }
            winogradConvolution(w, output: out, input: x[0], weights: x[1], bias: bias, scratch: scratch, threadScratchFloats: plan.scratchFloatsPerThread,
                                epilogue: epilogue, split: split, thread: thread, threads: threads)
        case let (.conv2d, .direct(g, block)):
            guard scratch != nil || g.readsInPlace else { throw LatheError.backend("conv2d \(shapes): a direct convolution without scratch") }
            directConvolution(g, block: block, output: out, input: x[0], weights: x[1], bias: bias, scratch: scratch,
                              threadScratchFloats: plan.scratchFloatsPerThread,
                              epilogue: epilogue, split: split, thread: thread, threads: threads)
        case let (.conv2d, .unfoldedGemm(g)), let (.conv2d, .pointwiseGemm(g)):
            guard scratch != nil || !(g.packs || g.unfolds) else { throw LatheError.backend("conv2d \(shapes): a GEMM convolution without scratch") }
            convolution(g, output: out, input: x[0], weights: x[1], bias: bias, scratch: scratch,
                        threadScratchFloats: plan.scratchFloatsPerThread, epilogue: epilogue,
                        split: split, thread: thread, threads: threads, prepackedWeights: prepacked)
        case let (.conv2d, .int8Gemm(q)):
            guard case let .convolution(g, tileRows, input) = q.form else { throw LatheError.backend("conv2d \(shapes) planned as a product") }
            try int8Convolution(g, tileRows: tileRows, reading: input, registerRows: q.rows, output: out, resultType: resultType, input: x[0], weights: x[1], bias: bias, epilogue: epilogue,
                                extraTypes: extraTypes, scratch: scratch, plan: plan, thread: thread)
        case let (.dense, .int8Gemm(q)), let (.matmul, .int8Gemm(q)):
            guard case let .product(m, n, k, batch) = q.form else { throw LatheError.backend("\(op.name) \(shapes) planned as a convolution") }
            try int8Product(m: m, n: n, k: k, batch: batch, registerRows: q.rows, output: out, resultType: resultType, x: x[0], w: x[1], shapes: shapes, bias: bias,
                            epilogue: epilogue, extraTypes: extraTypes, scratch: scratch, plan: plan, thread: thread)
        default:
            throw LatheError.unsupported("\(op.name) with shapes \(shapes) has no contraction plan")
        }
    }

    /// Calls `body(product, rowStart, rows, columnStart, columns, epilogue)` with this thread's
    /// blocks of each of `outer` m x n products (a batched matmul's): all of one, or its chunks
    /// of rows or columns. Per-column epilogue operands are shifted with the columns.
    private func matrixShare(m: Int, n: Int, split: ThreadSplit, thread: LLVMValue, epilogue: GemmEpilogue?, outer: Int = 1,
                             _ body: (LLVMValue, LLVMValue, Int, LLVMValue, Int, GemmEpilogue?) -> Void) {
        switch split {
        case let .rows(total, chunk):
            forThreadChunk(total: total, chunk: chunk, thread: thread, outer: outer) { o, start, rows in
                body(o, start, rows, int(0), n, epilogue)
            }
        case let .columns(total, chunk):
            forThreadChunk(total: total, chunk: chunk, thread: thread, outer: outer) { o, start, columns in
                let shifted = epilogue.map { e in
                    GemmEpilogue(formula: e.formula, extras: e.extras.map { ($0.perColumn ? pointer($0.base, start) : $0.base, $0.perColumn) })
                }
                body(o, int(0), m, start, columns, shifted)
            }
        case .single, .units:
            loop(from: int(0), to: int(outer)) { o in body(o, int(0), m, int(0), n, epilogue) }
        }
    }

    /// The number of products of a NumPy matmul.
    func matmulBatchCount(_ aShape: [Int], _ bShape: [Int]) -> Int { matmulBatch(aShape, bShape).batch.reduce(1, *) }

    /// The element offsets of C, A and B of a NumPy matmul's product u (batch axes broadcast by
    /// stride 0).
    func matmulBatchOffsets(_ aShape: [Int], _ bShape: [Int]) -> (LLVMValue) -> (c: LLVMValue, a: LLVMValue, b: LLVMValue) {
        let (m, n, k) = matmulSizes(aShape, bShape)
        let (batch, aBatch, bBatch) = matmulBatch(aShape, bShape)
        let strides = [contiguousStrides(batch).map { $0 * m * n }, broadcastStrides(of: aBatch, to: batch).map { $0 * m * k },
                       broadcastStrides(of: bBatch, to: batch).map { $0 * k * n }]
        return { u in
            var result = [self.int(0), self.int(0), self.int(0)]
            var rest = u
            for axis in batch.indices.reversed() {
                let index = LLVMBuildURem(self.builder, rest, self.int(batch[axis]), "")!
                rest = LLVMBuildUDiv(self.builder, rest, self.int(batch[axis]), "")!
                for v in 0..<3 { result[v] = self.offset(result[v], index, times: strides[v][axis]) }
            }
            return (result[0], result[1], result[2])
        }
    }

    /// NumPy matmul: a GEMM per batch index, batch axes broadcast by stride 0. A thread takes a
    /// run of batch indices (`.units`), or its share of every product.
    private func batchedMatmul(out: LLVMValue, a: LLVMValue, b: LLVMValue, aShape: [Int], bShape: [Int], epilogue: GemmEpilogue?, packing: LLVMValue?,
                               prepackedB: Bool, split: ThreadSplit, thread: LLVMValue, threads: Int) {
        let (m, n, k) = matmulSizes(aShape, bShape)
        let offsets = matmulBatchOffsets(aShape, bShape)
        let count = matmulBatchCount(aShape, bShape)
        /// The products of batch indices first..<first + batches, or this thread's share of each.
        func products(_ split: ThreadSplit, first: LLVMValue, batches: Int) {
            matrixShare(m: m, n: n, split: split, thread: thread, epilogue: epilogue, outer: batches) { j, rowStart, rows, columnStart, columns, epilogue in
                let o = offsets(iadd(first, j))
                gemm(m: rows, n: columns, k: k, a: MatrixView(base: a, offset: iadd(o.a, imul(rowStart, int(k))), rowStride: k),
                     b: MatrixView(base: b, offset: iadd(o.b, columnStart), rowStride: n),
                     c: MatrixView(base: out, offset: iadd(o.c, iadd(imul(rowStart, int(n)), columnStart)), rowStride: n),
                     bias: .none, epilogue: epilogue, packing: packing, prepackedB: prepackedB)
            }
        }
        if case .units = split {
            forEachUnit(count: count, thread: thread, threads: threads) { u in products(.single, first: u, batches: 1) }
        } else {
            products(split, first: int(0), batches: count)
        }
    }
}
