import CLLVM
import LatheIR

/// The shifted copies of a stride-1 quantized convolution's tile (laid out by
/// Int8Contraction.ShiftedCopies, Lowering/Int8Plan.swift), which the integer GEMM reads as its
/// B where other convolutions unfold their tile and pack it.
///
/// Word x of row r of channel group c4 in copy kx holds the bytes input[4 c4 + q, firstRow -
/// padTop + r, x - padLeft + kx * dilationX] for q in 0..<4: the pad value where that falls
/// outside the input, and for the channels past the last of a group of 4 (whose weights are
/// zero). Tap (ky, kx) of the tile's output (oy, ox) reads input row firstRow + oy - padTop +
/// ky * dilationY, which is row oy + ky * dilationY of copy kx: the tap's B is copy kx from
/// ky * dilationY * outW words on, the tile's outputs its columns, in their order.
///
/// A row of a copy is made 16 columns at a time: 16 bytes of each of 4 channels, interleaved into
/// 16 words by one shuffle and stored whole. The loads are masked only where the 16 columns
/// cross the input's edge or the row's end: lanes outside the input are not read and take the
/// pad value. A store's words past the row's end are written over by the next row (or land in
/// the copies' slack), so no store is masked. Rows outside the input are filled.
extension IRBuilder {
    /// Makes the copies of output rows firstRow..<firstRow+rows of one image and group, whose
    /// input channels start at `input`, in `scratch`.
    func int8ShiftedCopies(_ copies: Int8Contraction.ShiftedCopies, input: LLVMValue, into scratch: LLVMValue, firstRow: LLVMValue, rows: LLVMValue) {
        let g = copies.g
        let a = g.attributes
        let sizes = [g.groupChannels, g.height, g.width, g.kernelW, a.pads[0], a.pads[1], a.dilations[1], g.outW, copies.reach, copies.planeWords,
                     copies.copyWords, a.padValue]
        call(shiftedCopiesFunction(), [input, scratch, firstRow, rows] + sizes.map(int))
    }

    /// `void lathe_i8_shifted_copies(u8* input, i32* copies, i64 firstRow, i64 rows, i64 channels,
    /// i64 height, i64 width, i64 kernelW, i64 padTop, i64 padLeft, i64 dilationX, i64 outW,
    /// i64 reach, i64 planeWords, i64 copyWords, i64 padValue)`.
    private func shiftedCopiesFunction() -> LLVMValue {
        sharedFunction("lathe_i8_shifted_copies", pointerCount: 2, integerCount: 14) { function in
            let input = LLVMGetParam(function, 0)!, copies = LLVMGetParam(function, 1)!
            let p = (2..<16).map { LLVMGetParam(function, UInt32($0))! }
            let (firstRow, rows, channels, height, width) = (p[0], p[1], p[2], p[3], p[4])
            let (kernelW, padTop, padLeft, dilationX, outW) = (p[5], p[6], p[7], p[8], p[9])
            let (reach, planeWords, copyWords) = (p[10], p[11], p[12])
            let padByte = LLVMBuildTrunc(builder, p[13], computeType(.uint8), "")!
            let lanes = 16
            let byteVector = integerType(8, lanes: lanes)
            let padding = splat(padByte, lanes: lanes)
            let i16 = LLVMInt16TypeInContext(context)!
            var steps: [LLVMValue?] = (0..<lanes).map { LLVMConstInt(i16, UInt64($0), 0) }
            let laneSteps = LLVMConstVector(&steps, UInt32(lanes))!
            func column16(_ v: LLVMValue) -> LLVMValue { splat(LLVMBuildTrunc(builder, v, i16, "")!, lanes: lanes) }
            let channelWords = LLVMBuildSDiv(builder, iadd(channels, int(3)), int(4), "")!
            let plane = imul(height, width)
            loop(from: int(0), to: kernelW) { kx in
                let shift = isub(imul(kx, dilationX), padLeft)
                // The columns x whose input column x + shift is inside the input: lo..<hi.
                let lo = imin(imax(int(0), isub(int(0), shift)), outW)
                let hi = imax(lo, imin(outW, isub(width, shift)))
                let (loVector, hiVector) = (column16(lo), column16(hi))
                loop(from: int(0), to: channelWords) { c4 in
                    // The group's 4 channels; one past the last reads the last and keeps the pad value.
                    let channelRows = (0..<4).map { q -> (LLVMValue, LLVMValue) in
                        let channel = iadd(imul(c4, int(4)), int(q))
                        let exists = LLVMBuildICmp(builder, LLVMIntSLT, channel, channels, "")!
                        return (pointer(input, imul(imin(channel, isub(channels, int(1))), plane), .uint8), exists)
                    }
                    loop(from: int(0), to: iadd(rows, reach)) { r in
                        let iy = iadd(isub(firstRow, padTop), r)
                        let target = pointer(copies, iadd(iadd(imul(kx, copyWords), imul(c4, planeWords)), imul(r, outW)), .int32)
                        let inside = LLVMBuildAnd(builder, LLVMBuildICmp(builder, LLVMIntSGE, iy, int(0), "")!,
                                                  LLVMBuildICmp(builder, LLVMIntSLT, iy, height, "")!, "")!
                        ifElse(inside, then: {
                            let rowStart = iadd(imul(iy, width), shift)
                            loop(from: int(0), to: outW, step: lanes) { x0 in
                                let whole = LLVMBuildAnd(builder, LLVMBuildICmp(builder, LLVMIntSGE, x0, lo, "")!,
                                                         LLVMBuildICmp(builder, LLVMIntSLE, iadd(x0, int(lanes)), hi, "")!, "")!
                                func storeWords(_ load: (LLVMValue, LLVMValue) -> LLVMValue) {
                                    let bytes = channelRows.map { row, exists in select(exists, load(row, iadd(rowStart, x0)), padding) }
                                    store(transpose(bytes), target, imul(x0, int(4)), .uint8)
                                }
                                ifElse(whole, then: {
                                    storeWords { base, at in self.load(base, at, lanes: lanes, .uint8) }
                                }, else: {
                                    let column = LLVMBuildAdd(builder, column16(x0), laneSteps, "")!
                                    let mask = LLVMBuildAnd(builder, LLVMBuildICmp(builder, LLVMIntSGE, column, loVector, "")!,
                                                            LLVMBuildICmp(builder, LLVMIntSLT, column, hiVector, "")!, "")!
                                    storeWords { base, at in self.maskedBytes(base, at: at, byteVector, mask: mask, passthru: padding) }
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
