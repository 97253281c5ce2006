import CLLVM
import LatheIR

/// Max pooling of 8-bit integers: a quantized model's pools, which run on its quantized values
/// (a max commutes with a dequantization of positive scale), so that the kernel before stores
/// bytes, not floats, and no conversion runs after.
///
/// An output row is made 32 outputs at a time. For each tap of the window, one masked load of
/// the input row (32 x strideX bytes, every strideX-th kept) whose lanes outside the input (the
/// padding, or a whole row above or below it) are not read and take the type's least value,
/// which no maximum picks over a real one; then one store, masked past the row's end. The taps
/// are unrolled, as the float pool's are. Split among threads as the float pool is, by runs of
/// N x C planes.
extension IRBuilder {
    func bytePool2d(_ a: Pool2DAttributes, output: LLVMValue, input: LLVMValue, dtype: DType, inShape: [Int], outShape: [Int],
                    split: ThreadSplit = .single, thread: LLVMValue? = nil, threads: Int = 1) {
        let (h, w, oh, ow) = (inShape[2], inShape[3], outShape[2], outShape[3])
        let (sy, sx) = (a.strides[0], a.strides[1])
        let lanes = 32
        let loaded = integerType(8, lanes: lanes * sx)
        let signed = dtype.isSigned
        let least = LLVMConstInt(computeType(dtype), UInt64(bitPattern: signed ? -128 : 0), 1)!
        let (padding, start) = (splat(least, lanes: lanes * sx), splat(least, lanes: lanes))
        // Lane m of a load: byte m of the row from the tap's first (lanes of 16 bits where the
        // row is narrower than that counts). A load reads every byte of its span inside the row,
        // those between the strided ones and past the last output too: only the store is cut.
        let laneBits = w < 32_000 ? 16 : 32
        let laneType = LLVMIntTypeInContext(context, UInt32(laneBits))!
        func splatLane(_ v: LLVMValue, _ count: Int) -> LLVMValue { splat(LLVMBuildTrunc(builder, v, laneType, "")!, lanes: count) }
        let laneBytes = integerVector(Array(0..<(lanes * sx)), bits: laneBits), storeLanes = integerVector(Array(0..<lanes), bits: laneBits)
        forEachPlane(count: inShape[0] * inShape[1], split: split, thread: thread, threads: threads) { plane in
            let (inPlane, outPlane) = (imul(plane, int(h * w)), imul(plane, int(oh * ow)))
            loop(from: int(0), to: int(oh)) { oy in
                loop(from: int(0), to: int(ow), step: lanes) { x0 in
                    // Each tap column's first byte and the lanes inside the row, made once for its rows.
                    let columns = (0..<a.kernel[1]).map { kx -> (first: LLVMValue, inside: LLVMValue) in
                        let first = iadd(imul(x0, int(sx)), int(kx * a.dilations[1] - a.pads[1]))
                        let column = LLVMBuildAdd(builder, splatLane(first, lanes * sx), laneBytes, "")!
                        let inside = LLVMBuildAnd(builder, LLVMBuildICmp(builder, LLVMIntSGE, column, splatLane(int(0), lanes * sx), "")!,
                                                  LLVMBuildICmp(builder, LLVMIntSLT, column, splatLane(int(w), lanes * sx), "")!, "")!
                        return (first, inside)
                    }
                    var acc = start
                    for ky in 0..<a.kernel[0] {
                        let iy = iadd(imul(oy, int(sy)), int(ky * a.dilations[0] - a.pads[0]))
                        let rowInside = LLVMBuildAnd(builder, LLVMBuildICmp(builder, LLVMIntSGE, iy, int(0), "")!,
                                                     LLVMBuildICmp(builder, LLVMIntSLT, iy, int(h), "")!, "")!
                        let rowStart = iadd(inPlane, imul(select(rowInside, iy, int(0)), int(w)))
                        let rowMask = splat(rowInside, lanes: lanes * sx)
                        for (first, inside) in columns {
                            let mask = LLVMBuildAnd(builder, inside, rowMask, "")!
                            var v = maskedBytes(input, at: iadd(rowStart, first), loaded, mask: mask, passthru: padding)
                            if sx > 1 { v = shuffle(v, (0..<lanes).map { $0 * sx }) }
                            let greater = LLVMBuildICmp(builder, signed ? LLVMIntSGT : LLVMIntUGT, v, acc, "")!
                            acc = select(greater, v, acc)
                        }
                    }
                    let stored = LLVMBuildICmp(builder, LLVMIntSLT, LLVMBuildAdd(builder, splatLane(x0, lanes), storeLanes, "")!, splatLane(int(ow), lanes), "")!
                    storeMaskedBytes(acc, output, at: iadd(outPlane, iadd(imul(oy, int(ow)), x0)), mask: stored)
                }
            }
        }
    }
}
