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
        let byteMasks = hasByteMasks && dtype.byteSize == 1
        let function = byteMasks ? maskedByteUnfoldFunction(strideX: g.attributes.strides[1]) : unfoldFunction(strideX: g.attributes.strides[1], dtype: dtype)
        var sizes = UnfoldSizes(g).values.map(int)
        if let channels { sizes[0] = channels }
        call(function, [input, scratch, firstRow, rows] + sizes + (dtype == .float32 && !byteMasks ? [] : [int(g.attributes.padValue)]))
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

    /// `lathe_unfold_u8_masked_sX`, the byte unfold where the host masks byte moves (AVX-512BW):
    /// each tap's row of the tile is made 64 output columns at a time by one masked load of the
    /// input row (with stride X, of X x 64 bytes, every X-th kept), whose lanes in the padding
    /// are not read but take the pad value, and one masked store; rows in the vertical padding
    /// are filled. Where the float unfold copies a vector at a time and a byte at a time past
    /// the last whole vector, then fills the padding, a row of ResNet's 56 columns is two
    /// instructions (benchmarks/RESULTS.md, "Measurements behind choices in the code"). Rows of
    /// at most 32 columns of a same-size, stride-1 convolution move 64 / W rows at a time.
    private func maskedByteUnfoldFunction(strideX sx: Int) -> LLVMValue {
        sharedFunction("lathe_unfold_u8_masked_s\(sx)", pointerCount: 2, integerCount: 16) { function in
            let input = LLVMGetParam(function, 0)!, scratch = LLVMGetParam(function, 1)!
            let p = (2..<18).map { LLVMGetParam(function, UInt32($0))! }
            let (firstRow, rows, channels, height, width) = (p[0], p[1], p[2], p[3], p[4])
            let (kernelH, kernelW, strideY, padTop, padLeft) = (p[5], p[6], p[7], p[8], p[9])
            let (dilationY, dilationX, outH, outW) = (p[10], p[11], p[12], p[13])
            let padValue = LLVMBuildTrunc(builder, p[15], computeType(.uint8), "")!
            let lanes = 64
            let byteVector = integerType(8, lanes: lanes * sx), narrow = integerType(8, lanes: lanes)
            let i16 = LLVMInt16TypeInContext(context)!
            // Lane m of a load is output column chunk + m / sx, read only when m % sx == 0.
            let laneColumns = integerVector((0..<(lanes * sx)).map { $0 / sx }, bits: 16)
            let keptLanes = integerVector((0..<(lanes * sx)).map { $0 % sx == 0 ? 1 : 0 }, bits: 1)
            let storeColumns = integerVector(Array(0..<lanes), bits: 16)
            func column16(_ v: LLVMValue) -> LLVMValue { LLVMBuildTrunc(builder, v, i16, "")! }
            let columns = imul(rows, outW)
            let taps = imul(kernelH, kernelW)
            let endRow = iadd(firstRow, rows)
            // Rows of at most 32 columns read from rows as wide (stride 1, a same-size
            // convolution: ResNet's 28 x 28, 14 x 14 and 7 x 7 layers) move several at a time, the
            // tile's rows and the input's both contiguous: lane t is row t / W, column t % W.
            let rowsPerMove = LLVMBuildSDiv(builder, int(lanes), outW, "")!
            let severalRows = sx == 1 ? LLVMBuildAnd(builder, LLVMBuildAnd(builder, LLVMBuildICmp(builder, LLVMIntEQ, strideY, int(1), "")!,
                                                                               LLVMBuildICmp(builder, LLVMIntEQ, width, outW, "")!, "")!,
                                                     LLVMBuildICmp(builder, LLVMIntSGE, rowsPerMove, int(2), "")!, "")! : LLVMConstInt(i1, 0, 0)!
            let outW16 = splat(column16(imax(outW, int(1))), lanes: lanes)
            let laneRows = LLVMBuildUDiv(builder, storeColumns, outW16, "")!, laneInRow = LLVMBuildURem(builder, storeColumns, outW16, "")!
            loop(from: int(0), to: channels) { c in
                let channelInput = pointer(input, imul(c, imul(height, width)), .uint8)
                loop(from: int(0), to: kernelH) { ky in
                    let tapY = imul(ky, dilationY)
                    let (rowsLo, rowsHi) = validRange(count: outH, size: height, stride: strideY, pad: padTop, tap: tapY)
                    // The tile's rows that read the input: y0..<y1, within firstRow..<endRow.
                    let y0 = imin(imax(firstRow, rowsLo), endRow), y1 = imax(y0, imin(endRow, rowsHi))
                    loop(from: int(0), to: kernelW) { kx in
                        let tapX = imul(kx, dilationX)
                        let (lo, hi) = validRange(count: outW, size: width, stride: int(sx), pad: padLeft, tap: tapX)
                        let rowBase = pointer(scratch, imul(iadd(imul(c, taps), iadd(imul(ky, kernelW), kx)), columns), .uint8)
                        // The tile's rows above and below the input: the pad value throughout.
                        fill(rowBase, count: imul(isub(y0, firstRow), outW), with: padValue, .uint8)
                        fill(pointer(rowBase, imul(isub(y1, firstRow), outW), .uint8), count: imul(isub(endRow, y1), outW), with: padValue, .uint8)
                        let (loVector, hiVector) = (splat(column16(lo), lanes: lanes * sx), splat(column16(hi), lanes: lanes * sx))
                        let padding = splat(padValue, lanes: lanes * sx)
                        /// The tile's rows of a chunk of 64 columns, its masks made once.
                        func chunkRows(_ chunk: LLVMValue) {
                            let laneColumn = LLVMBuildAdd(builder, splat(column16(chunk), lanes: lanes * sx), laneColumns, "")!
                            let inside = LLVMBuildAnd(builder, LLVMBuildICmp(builder, LLVMIntSGE, laneColumn, loVector, "")!,
                                                      LLVMBuildICmp(builder, LLVMIntSLT, laneColumn, hiVector, "")!, "")!
                            let mask = LLVMBuildAnd(builder, inside, keptLanes, "")!
                            let stored = LLVMBuildICmp(builder, LLVMIntSLT, storeColumns, splat(column16(isub(outW, chunk)), lanes: lanes), "")!
                            let first = iadd(isub(imul(chunk, int(sx)), padLeft), tapX)
                            loop(from: y0, to: y1) { oy in
                                let inputRow = imul(iadd(isub(imul(oy, strideY), padTop), tapY), width)
                                let loaded = maskedBytes(channelInput, at: iadd(inputRow, first), byteVector, mask: mask, passthru: padding)
                                let row = sx == 1 ? loaded : shuffle(loaded, (0..<lanes).map { $0 * sx })
                                storeMaskedBytes(row, rowBase, at: iadd(imul(isub(oy, firstRow), outW), chunk), mask: stored)
                            }
                        }
                        // A tap's rows a chunk of 64 columns at a time.
                        func byChunks() {
                            loop(from: int(0), to: outW, step: lanes) { chunk in
                                chunkRows(chunk)
                            }
                        }
                        guard sx == 1 else { return byChunks() }
                        // Several rows a move: lane t is column t % W of row t / W, in the input
                        // as in the tile; lanes of rows past y1 are neither read nor stored.
                        ifElse(severalRows, then: {
                            let inRow = LLVMBuildAnd(builder, LLVMBuildICmp(builder, LLVMIntSGE, laneInRow, loVector, "")!,
                                                     LLVMBuildICmp(builder, LLVMIntSLT, laneInRow, hiVector, "")!, "")!
                            let moves = LLVMBuildSDiv(builder, iadd(isub(y1, y0), isub(rowsPerMove, int(1))), rowsPerMove, "")!
                            loop(from: int(0), to: moves) { move in
                                let oy = iadd(y0, imul(move, rowsPerMove))
                                let rowsHere = splat(column16(imin(rowsPerMove, isub(y1, oy))), lanes: lanes)
                                let stored = LLVMBuildICmp(builder, LLVMIntULT, laneRows, rowsHere, "")!
                                let mask = LLVMBuildAnd(builder, inRow, stored, "")!
                                let first = iadd(imul(iadd(isub(oy, padTop), tapY), width), isub(tapX, padLeft))
                                let loaded = maskedBytes(channelInput, at: first, narrow, mask: mask, passthru: padding)
                                storeMaskedBytes(loaded, rowBase, at: imul(isub(oy, firstRow), outW), mask: stored)
                            }
                        }, else: byChunks)
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
    func validRange(count: LLVMValue, size: LLVMValue, stride: LLVMValue, pad: LLVMValue, tap: LLVMValue) -> (LLVMValue, LLVMValue) {
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
