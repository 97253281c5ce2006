import CLLVM
import LatheIR

/// A convolution pooled in its kernel (Op.pooled): image by image, the convolution (with its
/// epilogue) writes one image's result into the thread's scratch, and the pooling reads it
/// from there, still in cache, into the output. The whole result is never written: the Keras
/// CNN's first layer at batch 64 wrote 5.5 MB for its pool to read back.
struct PooledConvolution {
    /// The convolution alone, and its epilogue's formula, if any.
    let conv: Op
    let formula: ScalarExpr?
    let pool: Pool2DAttributes
    let batch: Int
    /// The operands' shapes for one image, and one image's convolution result [1, C, H, W].
    let imageShapes: [[Int]]
    let imageResult: [Int]

    init?(_ op: Op, operandShapes shapes: [[Int]]) {
        guard case let .pooled(base, pool) = op, let first = shapes.first, first.count == 4 else { return nil }
        switch base {
        case .conv2d: (conv, formula) = (base, nil)
        case let .epilogue(inner, _, formula): (conv, self.formula) = (inner, formula)
        default: return nil
        }
        self.pool = pool
        batch = first[0]
        imageShapes = [[1] + first.dropFirst()] + shapes.dropFirst()
        guard let result = try? conv.inferType(imageShapes.map { TensorType(.float32, $0) }) else { return nil }
        imageResult = result.shape
    }

}

extension IRBuilder {
    /// Images split among the threads (`.units`), each convolved into the thread's scratch and
    /// pooled from there. A thread's scratch (`plan.scratchFloatsPerThread`) holds the image's
    /// convolution's own (`image`'s plan), then one image's result.
    func pooledConvolution(_ p: PooledConvolution, image imagePlan: KernelPlan, output: LLVMValue, x: [LLVMValue], pooledShape: [Int],
                           scratch: LLVMValue?, plan: KernelPlan, thread: LLVMValue) throws {
        guard let scratch else { throw LatheError.backend("\(p.conv.name) pooled in its kernel: no scratch") }
        let (split, threads) = (plan.split, plan.threads)
        let mine = pointer(scratch, imul(thread, int(plan.scratchFloatsPerThread)))
        let convolved = pointer(mine, int(roundUp(imagePlan.scratchFloatsPerThread, 16)))
        let imageFloats = p.imageShapes[0].reduce(1, *), pooledFloats = pooledShape.dropFirst().reduce(1, *)
        var failure: Error?
        func image(_ n: LLVMValue) {
            do {
                try contraction(p.conv, out: convolved, x: [pointer(x[0], imul(n, int(imageFloats)))] + x.dropFirst(), shapes: p.imageShapes,
                                shape: p.imageResult, scratch: mine, epilogue: p.formula.map { GemmEpilogue(formula: $0, extras: []) },
                                plan: imagePlan, thread: int(0))
            } catch {
                failure = failure ?? error
            }
            pool2d(p.pool, output: pointer(output, imul(n, int(pooledFloats))), input: convolved, inShape: p.imageResult,
                   outShape: [1] + pooledShape.dropFirst())
        }
        if case .units = split {
            forEachUnit(count: p.batch, thread: thread, threads: threads, image)
        } else {
            onThreadZero(thread) { loop(from: int(0), to: int(p.batch), image) }
        }
        if let failure { throw failure }
    }
}
