import CLLVM
import LatheIR

/// A convolution by Winograd's F(m x m, 3 x 3) (WinogradGeometry), a strip of tile rows (or a few
/// small images) at a time:
///
///     for each image of the unit, each input channel c:
///       copy the strip's input rows of c, zero-padded, into scratch
///       for each row of tiles, for each vector of tiles:      (lanes = neighbouring tiles)
///         V[ξν][c][tile] = (Bᵀ d B)[ξ][ν]
///     for each ξν: M[ξν] = U[ξν] x V[ξν]                      (packed GEMM; U packed at compile time)
///     for each output channel, row of tiles, vector of tiles:
///       Y = Aᵀ M A (+ bias, epilogue), stored m rows of m x lanes outputs
///
/// The lanes of a vector hold neighbouring tiles, so the transforms are whole-vector additions;
/// their input patches are gathered by loading m x lanes floats and keeping every m-th, and their
/// output rows interleaved by one shuffle. Vectors that run past a row's last tile compute on the
/// padding: their lanes land in the next row's columns, overwritten afterwards, or in the slack
/// after the last; only the output store is cut to the outputs that exist.
extension IRBuilder {
    /// This thread's share: a run of strips (`.units`), or its chunk of output channels of every
    /// strip (`.rows`; each thread then transforms the whole strip's input, about 2% of the
    /// work with 128 output channels, for a split that needs no barrier).
    func winogradConvolution(_ w: WinogradGeometry, output: LLVMValue, input: LLVMValue, weights: LLVMValue, bias: LLVMValue?,
                             scratch: LLVMValue, threadScratchFloats: Int, epilogue: GemmEpilogue?, split: ThreadSplit, thread: LLVMValue, threads: Int) {
        let g = w.conv
        let mine = pointer(scratch, imul(thread, int(threadScratchFloats)))
        let strip = mine
        let transformed = pointer(mine, int(w.stripFloats))
        let products = pointer(transformed, int(w.transformedFloats))
        let packing = pointer(products, int(w.productFloats))
        let blocking = GemmBlocking(vectorWidth: vectorWidth)
        let panelRows = roundUp(g.outChannels, blocking.rows)

        func unit(_ u: LLVMValue, firstChannel: LLVMValue, channels: LLVMValue) {
            let firstImage = imul(LLVMBuildUDiv(builder, u, int(w.stripsPerImage), "")!, int(w.imagesPerUnit))
            let images = imin(int(w.imagesPerUnit), isub(int(g.batch), firstImage))
            let firstTileRow = imul(LLVMBuildURem(builder, u, int(w.stripsPerImage), "")!, int(w.stripRows))
            let tileRows = imin(int(w.stripRows), isub(int(w.tilesY), firstTileRow))
            let imageColumns = imul(tileRows, int(w.tilesX))
            loop(from: int(0), to: images) { j in
                let imageInput = pointer(input, imul(iadd(firstImage, j), int(g.channels * g.inputPlane)))
                loop(from: int(0), to: int(g.channels)) { c in
                    copyStrip(w, from: pointer(imageInput, imul(c, int(g.inputPlane))), to: strip, firstTileRow: firstTileRow)
                    transformInput(w, strip: strip, into: pointer(transformed, iadd(imul(c, int(w.rowStride)), imul(j, imageColumns))), tileRows: tileRows)
                }
            }
            loop(from: int(0), to: int(w.alpha * w.alpha)) { e in
                packedGemm(blocking, m: channels, n: imul(images, imageColumns), maxM: g.outChannels, k: g.channels,
                           a: MatrixView(base: weights, offset: imul(iadd(imul(e, int(panelRows)), firstChannel), int(g.channels)), rowStride: g.channels),
                           b: MatrixView(base: transformed, offset: imul(e, int(g.channels * w.rowStride)), rowStride: w.rowStride),
                           c: MatrixView(base: products, offset: imul(iadd(imul(e, int(g.outChannels)), firstChannel), int(w.rowStride)), rowStride: w.rowStride),
                           bias: .none, epilogue: nil, packing: packing, prepackedA: true)
            }
            loop(from: int(0), to: images) { j in
                let image = iadd(firstImage, j)
                loop(from: firstChannel, to: iadd(firstChannel, channels)) { o in
                    let channelOutput = imul(iadd(imul(image, int(g.outChannels)), o), int(g.outputPlane))
                    transformOutput(w, products: pointer(products, iadd(imul(o, int(w.rowStride)), imul(j, imageColumns))), output: output,
                                    at: channelOutput, firstTileRow: firstTileRow, tileRows: tileRows, bias: bias.map { load($0, o) }, epilogue: epilogue)
                }
            }
        }
        switch split {
        case let .rows(total, chunk):
            forThreadShare(total: total, chunk: chunk, thread: thread) { _, start, count in
                loop(from: int(0), to: int(w.units)) { u in unit(u, firstChannel: start, channels: count) }
            }
        case .units:
            forEachUnit(count: w.units, thread: thread, threads: threads) { u in unit(u, firstChannel: int(0), channels: int(g.outChannels)) }
        case .single, .columns:
            // (No plan splits a Winograd convolution by columns; were one to, thread 0 does it all.)
            onThreadZero(thread) { loop(from: int(0), to: int(w.units)) { u in unit(u, firstChannel: int(0), channels: int(g.outChannels)) } }
        }
    }

    /// strip[r][x] = input[firstTileRow*m - padTop + r][x - padLeft], zero outside the image.
    private func copyStrip(_ w: WinogradGeometry, from input: LLVMValue, to strip: LLVMValue, firstTileRow: LLVMValue) {
        let g = w.conv
        let (padTop, padLeft) = (g.attributes.pads[0], g.attributes.pads[1])
        let length = w.inputRowLength
        // Only what this target's vectors of tiles read: the rest of the row is never loaded.
        let used = roundUp(w.tilesX, vectorWidth) * w.tile + w.alpha - 1
        let top = isub(imul(firstTileRow, int(w.tile)), int(padTop))
        loop(from: int(0), to: int(w.inputRows)) { r in
            let row = pointer(strip, imul(r, int(length)))
            let y = iadd(top, r)
            let inside = LLVMBuildAnd(builder, LLVMBuildICmp(builder, LLVMIntSGE, y, int(0), "")!,
                                      LLVMBuildICmp(builder, LLVMIntSLT, y, int(g.height), "")!, "")!
            ifElse(inside, then: {
                copyPaddedRow(from: pointer(input, imul(y, int(g.width))), width: g.width, into: row, left: padLeft, length: used)
            }, else: {
                fill(row, count: int(used), with: 0)
            })
        }
    }

    /// V[ξν][tile] for every tile of the strip (`out` at channel c of matrix 0).
    private func transformInput(_ w: WinogradGeometry, strip: LLVMValue, into out: LLVMValue, tileRows: LLVMValue) {
        call(inputTransformFunction(w.transform), [strip, out, tileRows, int(w.tilesX), int(w.inputRowLength), int(w.conv.channels * w.rowStride)])
    }

    /// `void lathe_winograd_input_M(float* strip, float* out, i64 tileRows, i64 tilesX,
    /// i64 rowLength, i64 matrixStride)`: one function a module and tile size, for every
    /// Winograd convolution (a copy in each made them the slowest kernels to compile).
    private func inputTransformFunction(_ t: WinogradTransform) -> LLVMValue {
        let (m, a, lanes) = (t.tile, t.alpha, vectorWidth)
        return sharedFunction("lathe_winograd_input_\(m)", pointerCount: 2, integerCount: 4) { function in
            let (strip, out) = (LLVMGetParam(function, 0)!, LLVMGetParam(function, 1)!)
            let (tileRows, tilesX, rowLength, matrixStride) = (LLVMGetParam(function, 2)!, LLVMGetParam(function, 3)!, LLVMGetParam(function, 4)!,
                                                               LLVMGetParam(function, 5)!)
            loop(from: int(0), to: tileRows) { r in
                loop(from: int(0), to: tilesX, step: lanes) { tx in
                    // d[i][j], lane k: strip[r*m + i][(tx + k)*m + j].
                    var d: [[LLVMValue]] = []
                    for i in 0..<a {
                        let rowStart = iadd(imul(iadd(imul(r, int(m)), int(i)), rowLength), imul(tx, int(m)))
                        d.append((0..<a).map { j in self.lanes(of: load(strip, iadd(rowStart, int(j)), lanes: m * lanes), step: m) })
                    }
                    // Bᵀ d, then (Bᵀ d) B.
                    let left = (0..<a).map { xi in (0..<a).map { j in combine(t.inputT[xi], (0..<a).map { d[$0][j] }) } }
                    let column = iadd(imul(r, tilesX), tx)
                    for xi in 0..<a {
                        for nu in 0..<a {
                            store(combine(t.inputT[nu], left[xi]), out, iadd(imul(int(xi * a + nu), matrixStride), column))
                        }
                    }
                }
            }
        }
    }

    /// Y = Aᵀ M A for every tile of the strip, of one output channel (`products` at that channel
    /// of matrix 0), plus bias and epilogue, into the output plane at `plane`.
    private func transformOutput(_ w: WinogradGeometry, products: LLVMValue, output: LLVMValue, at plane: LLVMValue, firstTileRow: LLVMValue,
                                 tileRows: LLVMValue, bias: LLVMValue?, epilogue: GemmEpilogue?) {
        let g = w.conv
        let (m, a, lanes) = (w.tile, w.alpha, vectorWidth)
        let t = w.transform
        let matrixStride = g.outChannels * w.rowStride
        loop(from: int(0), to: tileRows) { r in
            loop(from: int(0), to: int(w.tilesX), step: lanes) { tx in
                let column = iadd(imul(r, int(w.tilesX)), tx)
                let mv = (0..<a).map { xi in (0..<a).map { nu in load(products, iadd(int((xi * a + nu) * matrixStride), column), lanes: lanes) } }
                // Aᵀ M, then (Aᵀ M) A.
                let left = (0..<m).map { i in (0..<a).map { nu in combine(t.outputT[i], (0..<a).map { mv[$0][nu] }) } }
                let tileRow = iadd(firstTileRow, r)
                for i in 0..<m {
                    let y = (0..<m).map { j in combine(t.outputT[j], left[i]) }
                    let oy = iadd(imul(tileRow, int(m)), int(i))
                    let row = interleave(y), firstX = imul(tx, int(m))
                    let store = { self.storeOutputRow(row, g: g, output: output, plane: plane, oy: oy, firstX: firstX, bias: bias, epilogue: epilogue) }
                    if g.outH % m == 0 || i == 0 { store() } else {
                        ifElse(LLVMBuildICmp(builder, LLVMIntSLT, oy, int(g.outH), "")!, then: store, else: {})
                    }
                }
            }
        }
    }

    /// output[plane + oy*outW + firstX + x] = epilogue(values[x] + bias) for the x < outW - firstX,
    /// a vector at a time where whole vectors fit, else a value at a time.
    private func storeOutputRow(_ values: LLVMValue, g: ConvGeometry, output: LLVMValue, plane: LLVMValue, oy: LLVMValue, firstX: LLVMValue,
                                bias: LLVMValue?, epilogue: GemmEpilogue?) {
        let width = vectorWidth
        let chunks = lanes(of: values) / width
        let rowOffset = imul(oy, int(g.outW))
        func finish(_ v: LLVMValue, spatial: LLVMValue, lanes: Int) -> LLVMValue {
            var value = v
            if let bias { value = add(value, lanes == 1 ? bias : splat(bias, lanes: lanes)) }
            // A convolution's epilogue operands are laid out like its result (Op.epilogueReadsPerColumn).
            if let epilogue { value = emit(epilogue.formula, [value] + epilogue.extras.map { load($0.base, iadd(plane, spatial), lanes: lanes) }) }
            return value
        }
        for q in 0..<chunks {
            let x = iadd(firstX, int(q * width))
            let spatial = iadd(rowOffset, x)
            let chunk = shuffle(values, (0..<width).map { q * width + $0 })
            let valid = isub(int(g.outW), x)
            ifElse(LLVMBuildICmp(builder, LLVMIntSGE, valid, int(width), "")!, then: {
                store(finish(chunk, spatial: spatial, lanes: width), output, iadd(plane, spatial))
            }, else: {
                loop(from: int(0), to: imin(valid, int(width))) { k in
                    let s = iadd(spatial, k)
                    store(finish(LLVMBuildExtractElement(builder, chunk, k, "")!, spatial: s, lanes: 1), output, iadd(plane, s))
                }
            })
        }
    }

    /// Σ coefficient[k] · values[k] over the nonzero coefficients, ±1 as additions.
    private func combine(_ coefficients: [Double], _ values: [LLVMValue]) -> LLVMValue {
        var sum: LLVMValue?
        for (c, v) in zip(coefficients, values) where c != 0 {
            if let s = sum {
                sum = c == 1 ? add(s, v) : c == -1 ? sub(s, v) : fma(float(Float(c), like: v), v, s)
            } else {
                sum = c == 1 ? v : mul(float(Float(c), like: v), v)
            }
        }
        return sum ?? float(0, like: values[0])
    }

    /// The vectors' lanes interleaved: result[k * n + j] = vectors[j][k].
    private func interleave(_ vectors: [LLVMValue]) -> LLVMValue {
        var parts = vectors
        let lanes = lanes(of: vectors[0])
        // Concatenate pairwise (padding an odd count with undef) until one vector holds them all.
        while parts.count > 1 {
            if parts.count % 2 == 1 { parts.append(LLVMGetUndef(LLVMTypeOf(parts[0]))) }
            parts = stride(from: 0, to: parts.count, by: 2).map { k in
                let width = self.lanes(of: parts[k])
                return shuffle(parts[k], with: parts[k + 1], Array(0..<(2 * width)))
            }
        }
        let n = vectors.count
        return shuffle(parts[0], (0..<(n * lanes)).map { ($0 % n) * lanes + $0 / n })
    }
}
