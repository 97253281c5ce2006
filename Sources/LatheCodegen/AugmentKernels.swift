import CLLVM
import LatheIR

/// The random kernels of training steps: dropout's mask and data augmentation, both drawing
/// from CounterHash as the interpreter does, so that a compiled step and the interpreter agree
/// bit for bit.
///
/// augment and augment_grad run on one thread, image by image: per image, four scalar hashes
/// pick its flips and offsets (ImageAugment.transform); then each result row finds its source
/// row once, and each pixel its source column, resolved by the fill (a select for the constant
/// fill, a clamp, or a remainder for reflect and wrap). The work is one load and one store per
/// result element, small beside the convolutions of the step it feeds.
extension IRBuilder {
    /// CounterHash.value over i32 lanes: `index` (lanes of i32), `stepMix` the scalar
    /// step * stepMultiplier + seed.
    func counterHash(_ index: LLVMValue, stepMix: LLVMValue) -> LLVMValue {
        let lanes = lanes(of: index)
        func constant(_ v: UInt32) -> LLVMValue { self.constant(LLVMConstInt(i32, UInt64(v), 0), lanes: lanes) }
        var h = LLVMBuildXor(builder, LLVMBuildMul(builder, index, constant(CounterHash.indexMultiplier), ""), splat(stepMix, lanes: lanes), "")!
        h = LLVMBuildXor(builder, h, LLVMBuildLShr(builder, h, constant(16), ""), "")
        h = LLVMBuildMul(builder, h, constant(CounterHash.mix1), "")
        h = LLVMBuildXor(builder, h, LLVMBuildLShr(builder, h, constant(13), ""), "")
        h = LLVMBuildMul(builder, h, constant(CounterHash.mix2), "")
        return LLVMBuildXor(builder, h, LLVMBuildLShr(builder, h, constant(16), ""), "")
    }

    /// The step counter (a one-element f32 buffer) as i32, mixed with a seed.
    func stepMix(counter: LLVMValue, seed: UInt32) -> LLVMValue {
        let step = LLVMBuildFPToUI(builder, load(counter, int(0)), i32, "")!
        return LLVMBuildAdd(builder, LLVMBuildMul(builder, step, LLVMConstInt(i32, UInt64(CounterHash.stepMultiplier), 0), ""),
                            LLVMConstInt(i32, UInt64(seed), 0), "")!
    }

    /// dropout_mask: one hash lane per element index.
    func dropoutMask(_ mask: DropoutMask, count: Int, output: LLVMValue, counter: LLVMValue) {
        let mix = stepMix(counter: counter, seed: mask.seed)
        func emit(_ start: LLVMValue, lanes: Int) {
            var index = splat(LLVMBuildTrunc(builder, start, i32, "")!, lanes: lanes)
            if lanes > 1 { index = LLVMBuildAdd(builder, index, integerVector(Array(0..<lanes), bits: 32), "") }
            let h = counterHash(index, stepMix: mix)
            let top = LLVMBuildLShr(builder, h, constant(LLVMConstInt(i32, 8, 0), lanes: lanes), "")!
            let keep = LLVMBuildICmp(builder, LLVMIntUGE, top, constant(LLVMConstInt(i32, UInt64(mask.threshold), 0), lanes: lanes), "")!
            store(select(keep, float(mask.scale, lanes: lanes), float(0, lanes: lanes)), output, start)
        }
        let vectorEnd = count / vectorWidth * vectorWidth
        loop(0, vectorEnd, step: vectorWidth, unroll: false) { emit($0, lanes: vectorWidth) }
        loop(vectorEnd, count, unroll: false) { emit($0, lanes: 1) }
    }

    /// augment: result[n, p, i, j] = input[n, p, source row, source column], or the fill.
    func augment(_ a: ImageAugment, output: LLVMValue, input: LLVMValue, counter: LLVMValue, inputShape: [Int], dtype: DType) {
        let fill = constant(a.constantFill, dtype, lanes: 1)
        forEachAugmentedPixel(a, counter: counter, imageShape: inputShape) { resultIndex, sourceIndex, valid in
            let value = load(input, sourceIndex, dtype)
            store(valid.map { select($0, value, fill) } ?? value, output, resultIndex, dtype)
        }
    }

    /// augment_grad: dx zeroed, then each dy element added to the input pixel it was read from.
    func augmentGradient(_ a: ImageAugment, dx: LLVMValue, dy: LLVMValue, counter: LLVMValue, inputShape: [Int]) {
        fill(dx, count: int(inputShape.reduce(1, *)), with: 0)
        forEachAugmentedPixel(a, counter: counter, imageShape: inputShape) { resultIndex, sourceIndex, valid in
            let add = { self.store(self.add(self.load(dx, sourceIndex), self.load(dy, resultIndex)), dx, sourceIndex) }
            if let valid { ifElse(valid, then: add, else: {}) } else { add() }
        }
    }

    /// Calls `body(result index, source index, valid)` for every result element in order, with
    /// `valid` nil for the fills that always read the image (the source index is then in range;
    /// for the constant fill it is clamped in range, and `valid` says whether to use it).
    private func forEachAugmentedPixel(_ a: ImageAugment, counter: LLVMValue, imageShape: [Int],
                                       _ body: (LLVMValue, LLVMValue, LLVMValue?) -> Void) {
        let (inHeight, inWidth) = (imageShape[imageShape.count - 2], imageShape[imageShape.count - 1])
        let planes = imageShape.dropFirst().dropLast(2).reduce(1, *)
        let mix = stepMix(counter: counter, seed: a.seed)
        loop(0, imageShape[0], unroll: false) { n in
            func draw(_ d: ImageAugment.Draw) -> LLVMValue {
                let index = iadd(imul(n, int(ImageAugment.drawsPerImage)), int(d.rawValue))
                return counterHash(LLVMBuildTrunc(builder, index, i32, "")!, stepMix: mix)
            }
            func flips(_ enabled: Bool, _ d: ImageAugment.Draw) -> LLVMValue {
                guard enabled else { return LLVMConstInt(i1, 0, 0) }
                return LLVMBuildICmp(builder, LLVMIntNE, LLVMBuildLShr(builder, draw(d), LLVMConstInt(i32, 31, 0), ""), LLVMConstInt(i32, 0, 0), "")
            }
            func offset(_ range: ClosedRange<Int>, _ d: ImageAugment.Draw) -> LLVMValue {
                guard range.count > 1 else { return int(range.lowerBound) }
                let top = LLVMBuildZExt(builder, LLVMBuildLShr(builder, draw(d), LLVMConstInt(i32, 8, 0), ""), i64, "")!
                return iadd(int(range.lowerBound), LLVMBuildLShr(builder, imul(top, int(range.count)), int(24), "")!)
            }
            let (flipRows, flipColumns) = (flips(a.flipsRows, .flipRows), flips(a.flipsColumns, .flipColumns))
            let (rowOffset, columnOffset) = (offset(a.rowOffsets, .rowOffset), offset(a.columnOffsets, .columnOffset))
            loop(0, planes, unroll: false) { p in
                let planeIndex = iadd(imul(n, int(planes)), p)
                let plane = imul(planeIndex, int(inHeight * inWidth))
                loop(0, a.height, unroll: false) { i in
                    let row = resolve(iadd(LLVMBuildSelect(builder, flipRows, isub(int(a.height - 1), i), i, "")!, rowOffset), size: inHeight, a.fill)
                    let rowStart = iadd(plane, imul(row.index, int(inWidth)))
                    let resultRow = imul(iadd(imul(planeIndex, int(a.height)), i), int(a.width))
                    loop(0, a.width, unroll: false) { j in
                        let column = resolve(iadd(LLVMBuildSelect(builder, flipColumns, isub(int(a.width - 1), j), j, "")!, columnOffset),
                                             size: inWidth, a.fill)
                        var valid: LLVMValue?
                        if let r = row.valid, let c = column.valid { valid = LLVMBuildAnd(builder, r, c, "") }
                        body(iadd(resultRow, j), iadd(rowStart, column.index), valid)
                    }
                }
            }
        }
    }

    /// ImageAugment.resolve on an i64 coordinate: the index it reads, always in 0..<size, and
    /// for the constant fill whether it is the coordinate itself (else the fill is used).
    private func resolve(_ s: LLVMValue, size: Int, _ fill: ImageAugment.Fill) -> (index: LLVMValue, valid: LLVMValue?) {
        func positiveRemainder(_ period: Int) -> LLVMValue {
            let m = LLVMBuildSRem(builder, s, int(period), "")!
            return LLVMBuildSelect(builder, LLVMBuildICmp(builder, LLVMIntSLT, m, int(0), ""), iadd(m, int(period)), m, "")!
        }
        switch fill {
        case .constant:
            let valid = LLVMBuildICmp(builder, LLVMIntULT, s, int(size), "")!   // unsigned: a negative s is out too
            return (LLVMBuildSelect(builder, valid, s, int(0), "")!, valid)
        case .nearest:
            return (imin(imax(s, int(0)), int(size - 1)), nil)
        case .wrap:
            return (positiveRemainder(size), nil)
        case .reflect:
            let m = positiveRemainder(2 * size)
            return (LLVMBuildSelect(builder, LLVMBuildICmp(builder, LLVMIntSLT, m, int(size), ""), m, isub(int(2 * size - 1), m), "")!, nil)
        }
    }
}
