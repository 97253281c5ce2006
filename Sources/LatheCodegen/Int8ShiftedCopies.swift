import CLLVM
import LatheIR

/// The shifted copies of a quantized convolution's tile (laid out by
/// Int8Contraction.ShiftedCopies, Lowering/Int8Plan.swift), which the integer GEMM reads as its
/// B where other convolutions unfold their tile and pack it.
///
/// Word x of row r of channel group c4 in copy (cy, kx) holds the bytes input[4 c4 + q, iy, ix]
/// for q in 0..<4, iy = (firstRow + r) strideY - padTop + cy dilationY, ix = x strideX - padLeft
/// + kx dilationX: the pad value where that falls outside the input, and for the channels past
/// the last of a group of 4 (whose weights are zero). With a vertical stride of 1 (one row of
/// copies, cy = 0), tap (ky, kx) of the tile's output (oy, ox) reads copy kx's row oy + ky
/// dilationY; with a larger one, copy (ky, kx)'s row oy. Either way a tap's B is its copy from
/// some row on, the tile's outputs its columns, in their order.
///
/// A row of a copy is made 16 columns at a time: 16 x strideX bytes of each of 4 channels, of
/// which every strideX-th is kept, interleaved into 16 words by shuffles and stored whole. The
/// loads are masked only where the 16 columns cross the input's edge or the row's end: lanes
/// outside the input are not read and take the pad value. A store's words past the row's end
/// are written over by the next row (or land in the copies' slack), so no store is masked.
/// Rows outside the input are filled.
extension IRBuilder {
    /// Makes the copies of output rows firstRow..<firstRow+rows of one image and group, whose
    /// input channels start at `input`, in `scratch`.
    func int8ShiftedCopies(_ copies: Int8Contraction.ShiftedCopies, input: LLVMValue, into scratch: LLVMValue, firstRow: LLVMValue, rows: LLVMValue) {
        let g = copies.g
        let a = g.attributes
        let sizes = [g.groupChannels, g.height, g.width, copies.copiesY, g.kernelW, a.strides[0], a.pads[0], a.pads[1], a.dilations[0], a.dilations[1], g.outW,
                     copies.reach, copies.planeWords, copies.copyWords, a.padValue]
        call(shiftedCopiesFunction(strideX: a.strides[1]), [input, scratch, firstRow, rows] + sizes.map(int))
    }

    /// `void lathe_i8_shifted_copies_sX(u8* input, i32* copies, i64 firstRow, i64 rows, i64
    /// channels, i64 height, i64 width, i64 copiesY, i64 kernelW, i64 strideY, i64 padTop, i64
    /// padLeft, i64 dilationY, i64 dilationX, i64 outW, i64 reach, i64 planeWords, i64
    /// copyWords, i64 padValue)`, for horizontal stride X.
    private func shiftedCopiesFunction(strideX sx: Int) -> LLVMValue {
        sharedFunction("lathe_i8_shifted_copies_s\(sx)", pointerCount: 2, integerCount: 17) { function in
            let input = LLVMGetParam(function, 0)!, copies = LLVMGetParam(function, 1)!
            let p = (2..<19).map { LLVMGetParam(function, UInt32($0))! }
            let (firstRow, rows, channels, height, width, copiesY) = (p[0], p[1], p[2], p[3], p[4], p[5])
            let (kernelW, strideY, padTop, padLeft, dilationY, dilationX, outW) = (p[6], p[7], p[8], p[9], p[10], p[11], p[12])
            let (reach, planeWords, copyWords) = (p[13], p[14], p[15])
            let padByte = LLVMBuildTrunc(builder, p[16], computeType(.uint8), "")!
            let lanes = 16
            let loaded = integerType(8, lanes: lanes * sx)
            let padding = splat(padByte, lanes: lanes * sx)
            // Lane m of a load is column x0 + m / sx, read only when m % sx == 0.
            let i16 = LLVMInt16TypeInContext(context)!
            let laneSteps = integerVector((0..<(lanes * sx)).map { $0 / sx }, bits: 16)
            let kept = integerVector((0..<(lanes * sx)).map { $0 % sx == 0 ? 1 : 0 }, bits: 1)
            func column16(_ v: LLVMValue) -> LLVMValue { splat(LLVMBuildTrunc(builder, v, i16, "")!, lanes: lanes * sx) }
            func everyStride(_ v: LLVMValue) -> LLVMValue { sx == 1 ? v : shuffle(v, (0..<lanes).map { $0 * sx }) }
            let channelWords = LLVMBuildSDiv(builder, iadd(channels, int(3)), int(4), "")!
            let plane = imul(height, width)
            loop(from: int(0), to: copiesY) { cy in
                loop(from: int(0), to: kernelW) { kx in
                    let shift = isub(imul(kx, dilationX), padLeft)
                    // The columns x whose input column x * sx + shift is inside the input: lo..<hi.
                    let (lo, hi) = validRange(count: outW, size: width, stride: int(sx), pad: padLeft, tap: imul(kx, dilationX))
                    let (loVector, hiVector) = (column16(lo), column16(hi))
                    let copy = imul(iadd(imul(cy, kernelW), kx), copyWords)
                    loop(from: int(0), to: channelWords) { c4 in
                        // The group's 4 channels; one past the last reads the last and keeps the pad value.
                        let channelRows = (0..<4).map { q -> (LLVMValue, LLVMValue) in
                            let channel = iadd(imul(c4, int(4)), int(q))
                            let exists = LLVMBuildICmp(builder, LLVMIntSLT, channel, channels, "")!
                            return (pointer(input, imul(imin(channel, isub(channels, int(1))), plane), .uint8), exists)
                        }
                        loop(from: int(0), to: iadd(rows, reach)) { r in
                            let iy = iadd(isub(imul(firstRow, strideY), padTop), iadd(imul(r, strideY), imul(cy, dilationY)))
                            let target = pointer(copies, iadd(iadd(copy, imul(c4, planeWords)), imul(r, outW)), .int32)
                            let inside = LLVMBuildAnd(builder, LLVMBuildICmp(builder, LLVMIntSGE, iy, int(0), "")!,
                                                      LLVMBuildICmp(builder, LLVMIntSLT, iy, height, "")!, "")!
                            ifElse(inside, then: {
                                let rowStart = iadd(imul(iy, width), shift)
                                loop(from: int(0), to: outW, step: lanes) { x0 in
                                    // Whole: all 16 x sx bytes from column x0 on are inside the row.
                                    let first = iadd(imul(x0, int(sx)), shift)
                                    let whole = LLVMBuildAnd(builder, LLVMBuildICmp(builder, LLVMIntSGE, first, int(0), "")!,
                                                             LLVMBuildICmp(builder, LLVMIntSLE, iadd(first, int(lanes * sx)), width, "")!, "")!
                                    let wholeOutputs = LLVMBuildICmp(builder, LLVMIntSLE, iadd(x0, int(lanes)), hi, "")!
                                    func storeWords(_ load: (LLVMValue, LLVMValue) -> LLVMValue) {
                                        let bytes = channelRows.map { row, exists in
                                            everyStride(select(exists, load(row, iadd(rowStart, imul(x0, int(sx)))), padding))
                                        }
                                        store(transpose(bytes), target, imul(x0, int(4)), .uint8)
                                    }
                                    ifElse(LLVMBuildAnd(builder, whole, wholeOutputs, "")!, then: {
                                        storeWords { base, at in self.load(base, at, lanes: lanes * sx, .uint8) }
                                    }, else: {
                                        let column = LLVMBuildAdd(builder, column16(x0), laneSteps, "")!
                                        let inRange = LLVMBuildAnd(builder, LLVMBuildICmp(builder, LLVMIntSGE, column, loVector, "")!,
                                                                   LLVMBuildICmp(builder, LLVMIntSLT, column, hiVector, "")!, "")!
                                        let mask = LLVMBuildAnd(builder, inRange, kept, "")!
                                        storeWords { base, at in self.maskedBytes(base, at: at, loaded, mask: mask, passthru: padding) }
                                    })
                                }
                            }, else: {
                                fill(target, count: imul(outW, int(4)), with: padByte, .uint8)
                            })
                        }
                    }
                }
            }
        }
    }
}
