import LatheIR

extension OpHandlers {
    /// A 3-D convolution as a sum of 2-D ones, one a depth tap: for tap k, the input planes each
    /// output depth reads there (od * stride + k * dilation, in the depth-padded input) are
    /// gathered, folded into the batch ([N * OD, C, H, W]), and convolved with the weights' k-th
    /// slice [O, C/groups, KH, KW]; the taps' results are added (the epilogue fusion moves each
    /// Add into the next tap's kernel) and unfolded to [N, O, OD, OH, OW].
    static func convolution3d(_ x: ImportedValue, _ w: ImportedValue, bias: ImportedValue?, strides: [Int], dilations: [Int], pads: [Int],
                              groups: Int, exactSums: Bool, _ c: ImportContext) throws -> ImportedValue {
        let (xs, ws) = (c.shape(x), c.shape(w))
        let (n, channels, depth, outChannels, kernelDepth) = (xs[0], xs[1], xs[2], ws[0], ws[2])
        let span = depth + pads[0] + pads[3] - dilations[0] * (kernelDepth - 1) - 1
        guard span >= 0, strides.allSatisfy({ $0 > 0 }), dilations.allSatisfy({ $0 > 0 }) else {
            throw c.fail("has a depth of \(depth) too small for its kernel of \(kernelDepth) (pads \(pads), dilations \(dilations))")
        }
        let outDepth = span / strides[0] + 1
        var padded = x
        if pads[0] > 0 || pads[3] > 0 {
            padded = try c.apply(.pad(pads: [0, 0, pads[0], 0, 0, 0, 0, pads[3], 0, 0], value: 0), [x], name: "depth_padded")
        }
        let depthSecond = try c.apply(.transpose(perm: [0, 2, 1, 3, 4]), [padded], name: "depth_second")
        let planes = Conv2DAttributes(strides: Array(strides[1...]), pads: [pads[1], pads[2], pads[4], pads[5]], dilations: Array(dilations[1...]),
                                      groups: groups, exactSums: exactSums)
        var sum: ImportedValue? = nil
        for k in 0..<kernelDepth {
            let positions = ConstantTensor(shape: [outDepth], ints: (0..<outDepth).map { Int64($0 * strides[0] + k * dilations[0]) })
            let taken = try c.apply(.gather(axis: 1), [depthSecond, .constant(positions)], name: "tap\(k)_planes")
            let folded = try reshape(taken, to: [n * outDepth, channels, xs[3], xs[4]], c)
            let slice = try c.apply(.slice(starts: [0, 0, k, 0, 0], ends: [ws[0], ws[1], k + 1, ws[3], ws[4]], steps: [1, 1, 1, 1, 1]), [w], name: "tap\(k)_weights")
            let weights = try reshape(slice, to: [ws[0], ws[1], ws[3], ws[4]], c)
            let y = try c.apply(.conv2d(planes), [folded, weights] + (k == 0 ? (bias.map { [$0] } ?? []) : []), name: "tap\(k)")
            sum = try sum.map { try c.apply(.binary(.add), [$0, y], name: "taps\(k)") } ?? y
        }
        let s = c.shape(sum!)
        let unfolded = try reshape(sum!, to: [n, outDepth, outChannels, s[2], s[3]], c)
        return try c.apply(.transpose(perm: [0, 2, 1, 3, 4]), [unfolded])
    }

    /// A 3-D transposed convolution as 2-D ones, one a depth tap: for tap k, every input plane
    /// (folded into the batch) is transposed-convolved with the weights' k-th slice [C, O/groups,
    /// KH, KW], and its result added into output depth id * stride + k * dilation - pad (a
    /// scatter with add; depths the padding removes go to one extra plane, cut off after).
    static func convolutionTransposed3d(_ x: ImportedValue, _ w: ImportedValue, bias: ImportedValue?, strides: [Int], dilations: [Int], pads: [Int],
                                        outputPadding: [Int], groups: Int, _ c: ImportContext) throws -> ImportedValue {
        let (xs, ws) = (c.shape(x), c.shape(w))
        let (n, channels, depth, kernelDepth) = (xs[0], xs[1], xs[2], ws[2])
        let outDepth = strides[0] * (depth - 1) + outputPadding[0] + (kernelDepth - 1) * dilations[0] + 1 - pads[0] - pads[3]
        guard outDepth > 0 else { throw c.fail("has an output depth of \(outDepth)") }
        let planes = ConvTranspose2DAttributes(strides: Array(strides[1...]), pads: [pads[1], pads[2], pads[4], pads[5]],
                                               outputPadding: Array(outputPadding[1...]), dilations: Array(dilations[1...]), groups: groups)
        let folded = try reshape(try c.apply(.transpose(perm: [0, 2, 1, 3, 4]), [x], name: "depth_second"), to: [n * depth, channels, xs[3], xs[4]], c)
        var sum: ImportedValue? = nil
        for k in 0..<kernelDepth {
            let slice = try c.apply(.slice(starts: [0, 0, k, 0, 0], ends: [ws[0], ws[1], k + 1, ws[3], ws[4]], steps: [1, 1, 1, 1, 1]), [w], name: "tap\(k)_weights")
            let y = try c.apply(.convTranspose2d(planes), [folded, try reshape(slice, to: [ws[0], ws[1], ws[3], ws[4]], c)], name: "tap\(k)")
            let s = c.shape(y)
            let unfolded = try reshape(y, to: [n, depth, s[1], s[2], s[3]], c)
            if sum == nil {
                let zeros = try HostTensor(shape: [n, outDepth + 1, s[1], s[2], s[3]], repeating: 0).converted(to: c.dtype(unfolded))
                sum = .constant(ConstantTensor(zeros))
            }
            // Each input depth's landing place, or the extra plane outDepth.
            let landing = (0..<depth).map { d -> Int64 in
                let at = d * strides[0] + k * dilations[0] - pads[0]
                return Int64((0..<outDepth).contains(at) ? at : outDepth)
            }
            let plane = s[1] * s[2] * s[3]
            let indices = ConstantTensor(shape: [n, depth, s[1], s[2], s[3]], ints: (0..<n * depth * plane).map { landing[$0 / plane % depth] })
            sum = try c.apply(.scatter(axis: 1, reduction: .add), [sum!, .constant(indices), unfolded], name: "taps\(k)")
        }
        let s = c.shape(sum!)
        let kept = try c.apply(.slice(starts: [0, 0, 0, 0, 0], ends: [n, outDepth, s[2], s[3], s[4]], steps: [1, 1, 1, 1, 1]), [sum!], name: "depths")
        var y = try c.apply(.transpose(perm: [0, 2, 1, 3, 4]), [kept], name: bias == nil ? nil : "unbiased")
        if let bias { y = try c.apply(.binary(.add), [y, try reshape(bias, to: [1, s[2], 1, 1, 1], c)]) }
        return y
    }
}
