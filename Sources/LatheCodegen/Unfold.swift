import CLLVM
import LatheIR

/// im2col, one tile of output rows at a time, as one function per module and horizontal stride
/// (`lathe_unfold_s1`, `lathe_unfold_s2`, ...) that takes the convolution's sizes at run time.
///
/// Row (c, ky, kx) of the tile holds input[c, oy*sh - pt + ky*dh, ox*sw - pl + kx*dw] for each
/// output (oy, ox) of the tile, zero where that falls in the padding. Each tap's in-bounds output
/// rows and columns are computed once, so the copy loops carry no bounds checks; a copy with
/// stride 1 is a vector copy, a wider stride loads stride x width floats and keeps every
/// stride-th lane. Unrolling the taps into each kernel instead (49 copy loops for a 7x7
/// convolution) made one kernel take 1.7 s of LLVM's time (loop strength reduction).
extension IRBuilder {
    struct UnfoldSizes {
        let channels, height, width, kernelH, kernelW, strideY, padTop, padLeft, dilationY, dilationX, outH, outW: Int
        let padded: Bool

        init(_ g: ConvGeometry) {
            let a = g.attributes
            (channels, height, width, kernelH, kernelW) = (g.groupChannels, g.height, g.width, g.kernelH, g.kernelW)
            (strideY, padTop, padLeft, dilationY, dilationX) = (a.strides[0], a.pads[0], a.pads[1], a.dilations[0], a.dilations[1])
            (outH, outW, padded) = (g.outH, g.outW, g.hasPadding)
        }

        var values: [Int] {
            [channels, height, width, kernelH, kernelW, strideY, padTop, padLeft, dilationY, dilationX, outH, outW, padded ? 1 : 0]
        }
    }

    /// Unfolds output rows firstRow..<firstRow+rows of one image and group into `scratch`; with
    /// `channels`, only that many input channels from `input` on (a thread's share). Elements of
    /// `dtype`: f32, or a quantized convolution's uint8, whose padding holds `g`'s padValue.
    func unfold(_ g: ConvGeometry, input: LLVMValue, into scratch: LLVMValue, firstRow: LLVMValue, rows: LLVMValue, channels: LLVMValue? = nil,
                dtype: DType = .float32) {
        let function = unfoldFunction(strideX: g.attributes.strides[1], dtype: dtype)
        var sizes = UnfoldSizes(g).values.map(int)
        if let channels { sizes[0] = channels }
        call(function, [input, scratch, firstRow, rows] + sizes + (dtype == .float32 ? [] : [int(g.attributes.padValue)]))
    }

    private func unfoldFunction(strideX sx: Int, dtype: DType) -> LLVMValue {
        let name = dtype == .float32 ? "lathe_unfold_s\(sx)" : "lathe_unfold_\(dtype.rawValue)_s\(sx)"
        return sharedFunction(name, pointerCount: 2, integerCount: dtype == .float32 ? 15 : 16) { function in
            let input = LLVMGetParam(function, 0)!, scratch = LLVMGetParam(function, 1)!
            let p = (2..<17).map { LLVMGetParam(function, UInt32($0))! }
            let padValue = dtype == .float32 ? float(0) : LLVMBuildTrunc(builder, LLVMGetParam(function, 17)!, computeType(dtype), "")!
            func fill(_ base: LLVMValue, count: LLVMValue) { self.fill(base, count: count, with: padValue, dtype) }
            let (firstRow, rows, channels, height, width) = (p[0], p[1], p[2], p[3], p[4])
            let (kernelH, kernelW, strideY, padTop, padLeft) = (p[5], p[6], p[7], p[8], p[9])
            let (dilationY, dilationX, outH, outW, padded) = (p[10], p[11], p[12], p[13], p[14])
            let columns = imul(rows, outW)
            let taps = imul(kernelH, kernelW)
            let hasPadding = LLVMBuildICmp(builder, LLVMIntNE, padded, int(0), "")!
            let endRow = iadd(firstRow, rows)
            loop(from: int(0), to: channels) { c in
                let channelInput = pointer(input, imul(c, imul(height, width)), dtype)
                loop(from: int(0), to: kernelH) { ky in
                    let tapY = imul(ky, dilationY)
                    let (rowsLo, rowsHi) = validRange(count: outH, size: height, stride: strideY, pad: padTop, tap: tapY)
                    let y0 = imax(firstRow, rowsLo), y1 = imin(endRow, rowsHi)
                    loop(from: int(0), to: kernelW) { kx in
                        let tapX = imul(kx, dilationX)
                        let (lo, hi) = validRange(count: outW, size: width, stride: int(sx), pad: padLeft, tap: tapX)
                        let row = iadd(imul(c, taps), iadd(imul(ky, kernelW), kx))
                        let rowBase = pointer(scratch, imul(row, columns), dtype)
                        let ix = iadd(isub(imul(lo, int(sx)), padLeft), tapX)
                        let count = isub(hi, lo)
                        // Whole vectors whose stride x width load stays inside the input row.
                        let vectors = imax(int(0), imin(LLVMBuildSDiv(builder, count, int(vectorWidth), "")!,
                                                         LLVMBuildSDiv(builder, isub(width, ix), int(vectorWidth * sx), "")!))
                        loop(from: y0, to: y1) { oy in
                            let iy = iadd(isub(imul(oy, strideY), padTop), tapY)
                            let source = pointer(channelInput, iadd(imul(iy, width), ix), dtype)
                            let target = pointer(rowBase, iadd(imul(isub(oy, firstRow), outW), lo), dtype)
                            copyStrided(from: source, stride: sx, to: target, count: count, vectors: vectors, dtype)
                        }
                        // Zero only what falls in the padding: the columns before `lo` and from
                        // `hi` on of the rows copied, and the rows outside y0..<y1 whole (zeroing
                        // the whole tile first wrote it twice: ResNet-50's first convolution
                        // writes 7.4 MB of unfolded taps).
                        ifElse(hasPadding, then: {
                            let before = isub(imax(y0, firstRow), firstRow)
                            fill(rowBase, count: imul(imin(before, rows), outW))
                            let after = imax(y1, y0)
                            let afterStart = isub(imax(after, firstRow), firstRow)
                            fill(pointer(rowBase, imul(imin(afterStart, rows), outW), dtype), count: imul(imax(int(0), isub(rows, afterStart)), outW))
                            loop(from: y0, to: y1) { oy in
                                let rowStart = pointer(rowBase, imul(isub(oy, firstRow), outW), dtype)
                                fill(rowStart, count: lo)
                                fill(pointer(rowStart, hi, dtype), count: isub(outW, hi))
                            }
                        }, else: {})
                    }
                }
            }
        }
    }

    /// target[i] = source[i * stride] for i in 0..<count, the first `vectors` x width by vectors.
    private func copyStrided(from source: LLVMValue, stride: Int, to target: LLVMValue, count: LLVMValue, vectors: LLVMValue, _ dtype: DType) {
        let width = vectorWidth
        let vectorEnd = imul(vectors, int(width))
        loop(from: int(0), to: vectorEnd, step: width) { i in
            if stride == 1 {
                store(load(source, i, lanes: width, dtype), target, i, dtype)
            } else {
                store(lanes(of: load(source, imul(i, int(stride)), lanes: width * stride, dtype), step: stride), target, i, dtype)
            }
        }
        loop(from: vectorEnd, to: count) { i in store(load(source, imul(i, int(stride)), dtype), target, i, dtype) }
    }

    /// The output positions o in 0..<count whose input index o*stride - pad + tap is in
    /// 0..<size, as a half-open range (ConvGeometry.validRange at run time).
    private func validRange(count: LLVMValue, size: LLVMValue, stride: LLVMValue, pad: LLVMValue, tap: LLVMValue) -> (LLVMValue, LLVMValue) {
        let a = isub(pad, tap)
        let nonNegative = LLVMBuildICmp(builder, LLVMIntSGE, a, int(0), "")!
        let up = LLVMBuildSDiv(builder, iadd(a, isub(stride, int(1))), stride, "")!
        let lo = imax(int(0), select(nonNegative, up, LLVMBuildSDiv(builder, a, stride, "")!))
        let last = isub(iadd(size, a), int(1))
        let hi = LLVMBuildICmp(builder, LLVMIntSLT, last, int(0), "")!
        let end = select(hi, int(0), imin(count, iadd(LLVMBuildSDiv(builder, last, stride, "")!, int(1))))
        return (lo, imax(lo, end))
    }
}
