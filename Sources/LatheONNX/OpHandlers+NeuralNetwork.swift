import LatheIR

extension OpHandlers {
    static let neuralNetwork: [String: Handler] = [
        "Conv": conv,
        "ConvTranspose": convTranspose,
        "MaxPool": { c in
            let indices = c.node.output.count > 1 && !c.node.output[1].isEmpty
            if !indices, let pooled = try quantizedMaxPool(c) { return [pooled] }
            let y = try pool(.max, c)
            guard indices else { return [y] }
            return [y, try maxPoolIndices(c, pooled: c.shape(y))]
        },
        "AveragePool": { c in [try pool(.average, c)] },
        "GlobalAveragePool": { c in [try c.apply(.globalAveragePool, [try c.required(0)])] },
        "GlobalMaxPool": { c in
            let x = try c.required(0)
            return [try c.apply(.reduce(.max, axes: Array(2..<max(c.shape(x).count, 2)), keepDims: true), [x])]
        },
        "BatchNormalization": { c in
            let operands = try (0..<5).map { try c.required($0) }
            guard c.node.int("training_mode", 0) != 0 else { return [try c.apply(.batchNorm(epsilon: c.node.float("epsilon", 1e-5)), operands)] }
            return try trainingBatchNorm(operands, c)
        },
        "LRN": { c in
            guard let size = c.node.attribute("size").map({ Int($0.i) }) else { throw c.fail("has no size") }
            let op = Op.lrn(size: size, alpha: c.node.float("alpha", 1e-4), beta: c.node.float("beta", 0.75), bias: c.node.float("bias", 1))
            return [try c.apply(op, [try c.required(0)])]
        },
        "MatMul": { c in [try qdqUnit(.matmul, c) ?? c.apply(.matmul, [try c.required(0), try c.required(1)])] },
        "Gemm": gemm,
        "Softmax": { c in [try softmax(log: false, c)] },
        "LogSoftmax": { c in [try softmax(log: true, c)] },
        "LayerNormalization": layerNorm,
    ]

    /// ONNX's auto_pad: explicit pads, or SAME_UPPER/SAME_LOWER padding that gives
    /// ceil(input / stride) outputs, or none (VALID).
    static func pads(_ c: ImportContext, input: [Int], kernel: [Int], strides: [Int], dilations: [Int]) throws -> [Int] {
        let rank = kernel.count
        switch c.node.string("auto_pad", "NOTSET") {
        case "NOTSET": return c.node.ints("pads") ?? Array(repeating: 0, count: 2 * rank)
        case "VALID": return Array(repeating: 0, count: 2 * rank)
        case let mode where mode == "SAME_UPPER" || mode == "SAME_LOWER":
            var begin: [Int] = [], end: [Int] = []
            for i in 0..<rank {
                let out = (input[i] + strides[i] - 1) / strides[i]
                let total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - input[i], 0)
                let small = total / 2
                begin.append(mode == "SAME_UPPER" ? small : total - small)
                end.append(total - begin[i])
            }
            return begin + end
        case let mode: throw c.fail("has unknown auto_pad '\(mode)'")
        }
    }

    /// 1-D convolution and pooling run as 2-D over a height of 1: [N, C, L] becomes
    /// [N, C, 1, L] (weights [OC, C, K] likewise), pads [b, e] become [0, b, 0, e], and the result
    /// loses the height again.
    static func addHeight(_ v: ImportedValue, _ c: ImportContext) throws -> ImportedValue {
        var shape = c.shape(v)
        shape.insert(1, at: 2)
        return try reshape(v, to: shape, c)
    }

    static func removeHeight(_ v: ImportedValue, _ c: ImportContext) throws -> ImportedValue {
        var shape = c.shape(v)
        shape.remove(at: 2)
        return try reshape(v, to: shape, c)
    }

    static func heightPads(_ pads: [Int]) -> [Int] { [0, pads[0], 0, pads[1]] }

    /// BatchNormalization with training_mode: normalized by the batch's own mean and (biased)
    /// variance over every axis but the channels', and the running statistics moved toward them:
    /// running = running momentum + batch (1 - momentum). Outputs y, running mean and variance.
    static func trainingBatchNorm(_ operands: [ImportedValue], _ c: ImportContext) throws -> [ImportedValue] {
        let x = operands[0], shape = c.shape(x)
        guard shape.count >= 2 else { throw c.fail("needs an input of rank 2 or more, not \(shape)") }
        let axes = shape.indices.filter { $0 != 1 }
        var perChannel = Array(repeating: 1, count: shape.count)
        perChannel[1] = shape[1]
        let mean = try c.apply(.reduce(.mean, axes: axes, keepDims: true), [x], name: "batch_mean")
        let centred = try c.apply(.binary(.sub), [x, mean], name: "centred")
        let variance = try c.apply(.reduce(.mean, axes: axes, keepDims: true), [try c.apply(.binary(.mul), [centred, centred], name: "squared")], name: "batch_var")
        let deviation = try c.apply(.unary(.sqrt), [try c.apply(.binary(.add), [variance, c.scalar(c.node.float("epsilon", 1e-5), c.dtype(x))], name: "var_eps")], name: "deviation")
        let scale = try reshape(operands[1], to: perChannel, c), bias = try reshape(operands[2], to: perChannel, c)
        let normalized = try c.apply(.binary(.div), [centred, deviation], name: "normalized")
        let y = try c.apply(.binary(.add), [try c.apply(.binary(.mul), [normalized, scale], name: "scaled"), bias])
        let momentum = c.node.float("momentum", 0.9)
        func running(_ old: ImportedValue, _ batch: ImportedValue, _ name: String) throws -> ImportedValue {
            let kept = try c.apply(.binary(.mul), [old, c.scalar(momentum, c.dtype(old))], name: "\(name)_kept")
            let moved = try c.apply(.binary(.mul), [try reshape(batch, to: [shape[1]], c), c.scalar(1 - momentum, c.dtype(old))], name: "\(name)_moved")
            return try c.apply(.binary(.add), [kept, moved], name: name)
        }
        return [y, try running(operands[3], mean, "running_mean"), try running(operands[4], variance, "running_var")]
    }

    static func conv(_ c: ImportContext) throws -> [ImportedValue] {
        if let unit = try qdqUnit(.conv, c) { return [unit] }
        return [try convolution(try c.required(0), weights: try c.required(1), bias: try c.input(2), c)]
    }

    /// 2-D convolution, and 1-D as 2-D over a height of 1, with the node's attributes.
    static func convolution(_ x: ImportedValue, weights w: ImportedValue, bias: ImportedValue?, _ c: ImportContext,
                            name: String? = nil, exactSums: Bool = false, padValue: Int = 0) throws -> ImportedValue {
        var (x, w) = (x, w)
        let (xs, ws) = (c.shape(x), c.shape(w))
        let spatial = xs.count - 2
        guard (1...3).contains(spatial), ws.count == xs.count else {
            throw c.unsupported("only 1-D, 2-D and 3-D convolutions are supported (input rank \(xs.count), weights rank \(ws.count))")
        }
        let kernel = c.node.ints("kernel_shape") ?? Array(ws[2...])
        guard kernel == Array(ws[2...]) else { throw c.fail("kernel_shape \(kernel) differs from the weights' \(Array(ws[2...]))") }
        var strides = c.node.ints("strides") ?? Array(repeating: 1, count: spatial)
        var dilations = c.node.ints("dilations") ?? Array(repeating: 1, count: spatial)
        var pads = try pads(c, input: Array(xs[2...]), kernel: kernel, strides: strides, dilations: dilations)
        guard strides.count == spatial, dilations.count == spatial, pads.count == 2 * spatial else {
            throw c.fail("has strides, dilations or pads of the wrong length")
        }
        if spatial == 3 {
            return try convolution3d(x, w, bias: bias, strides: strides, dilations: dilations, pads: pads, groups: c.node.int("group", 1), exactSums: exactSums, c)
        }
        if spatial == 1 {
            (x, w) = (try addHeight(x, c), try addHeight(w, c))
            (strides, dilations, pads) = ([1] + strides, [1] + dilations, heightPads(pads))
        }
        let attributes = Conv2DAttributes(strides: strides, pads: pads, dilations: dilations, groups: c.node.int("group", 1), exactSums: exactSums,
                                          padValue: padValue)
        let y = try c.apply(.conv2d(attributes), [x, w] + (bias.map { [$0] } ?? []), name: spatial == 1 ? "2d" : name)
        return spatial == 1 ? try removeHeight(y, c) : y
    }

    /// 2-D transposed convolution, 1-D as 2-D over a height of 1, 3-D as 2-D ones (Volume). With output_shape (or SAME
    /// auto_pad, meaning input x stride) the padding is what gives that shape, split as the ONNX
    /// spec says; a shape past the full output grows the output padding.
    static func convTranspose(_ c: ImportContext) throws -> [ImportedValue] {
        var (x, w) = (try c.required(0), try c.required(1))
        let (xs, ws) = (c.shape(x), c.shape(w))
        let spatial = xs.count - 2
        guard (1...3).contains(spatial), ws.count == xs.count else {
            throw c.unsupported("only 1-D, 2-D and 3-D transposed convolutions are supported (input rank \(xs.count), weights rank \(ws.count))")
        }
        var strides = c.node.ints("strides") ?? Array(repeating: 1, count: spatial)
        var dilations = c.node.ints("dilations") ?? Array(repeating: 1, count: spatial)
        var outputPadding = c.node.ints("output_padding") ?? Array(repeating: 0, count: spatial)
        var pads = c.node.ints("pads") ?? Array(repeating: 0, count: 2 * spatial)
        guard strides.count == spatial, dilations.count == spatial, outputPadding.count == spatial, pads.count == 2 * spatial else {
            throw c.fail("has strides, dilations, pads or output_padding of the wrong length")
        }
        let mode = c.node.string("auto_pad", "NOTSET")
        var target = c.node.ints("output_shape").map { Array($0.suffix(spatial)) }
        if target == nil, mode == "SAME_UPPER" || mode == "SAME_LOWER" { target = (0..<spatial).map { xs[2 + $0] * strides[$0] } }
        if let target {
            guard target.count == spatial else { throw c.fail("has an output_shape of the wrong length") }
            var begin: [Int] = [], end: [Int] = []
            for i in 0..<spatial {
                let total = strides[i] * (xs[2 + i] - 1) + outputPadding[i] + (ws[2 + i] - 1) * dilations[i] + 1 - target[i]
                if total < 0 { outputPadding[i] -= total }
                let t = max(total, 0)
                begin.append(mode == "SAME_UPPER" ? t / 2 : t - t / 2)
                end.append(t - begin[i])
            }
            pads = begin + end
        }
        if spatial == 3 {
            return [try convolutionTransposed3d(x, w, bias: try c.input(2), strides: strides, dilations: dilations, pads: pads,
                                                outputPadding: outputPadding, groups: c.node.int("group", 1), c)]
        }
        if spatial == 1 {
            (x, w) = (try addHeight(x, c), try addHeight(w, c))
            (strides, dilations, outputPadding, pads) = ([1] + strides, [1] + dilations, [0] + outputPadding, heightPads(pads))
        }
        let attributes = ConvTranspose2DAttributes(strides: strides, pads: pads, outputPadding: outputPadding, dilations: dilations, groups: c.node.int("group", 1))
        let y = try c.apply(.convTranspose2d(attributes), [x, w] + (try c.input(2).map { [$0] } ?? []), name: spatial == 1 ? "2d" : nil)
        return [spatial == 1 ? try removeHeight(y, c) : y]
    }

    /// 2-D pooling, and 1-D as 2-D over a height of 1.
    /// `operand` in place of the node's input, `countsPads` in place of its count_include_pad.
    static func pool(_ kind: PoolKind, _ c: ImportContext, of operand: ImportedValue? = nil, countsPads: Bool? = nil) throws -> ImportedValue {
        var x = try operand ?? c.required(0)
        let original = c.shape(x)
        let spatial = original.count - 2
        guard (1...3).contains(spatial) else { throw c.unsupported("only 1-D, 2-D and 3-D pooling are supported (input rank \(original.count))") }
        guard var kernel = c.node.ints("kernel_shape"), kernel.count == spatial else { throw c.fail("needs a kernel_shape of \(spatial) sizes") }
        var dilations = c.node.ints("dilations") ?? Array(repeating: 1, count: spatial)
        var strides = c.node.ints("strides") ?? Array(repeating: 1, count: spatial)
        var pads = try pads(c, input: Array(original[2...]), kernel: kernel, strides: strides, dilations: dilations)
        guard strides.count == spatial, dilations.count == spatial, pads.count == 2 * spatial else {
            throw c.fail("has strides, dilations or pads of the wrong length")
        }
        var extra = Array(repeating: 0, count: spatial)
        if c.node.int("ceil_mode", 0) != 0 {
            // Ceil mode adds windows at the end; padding them reproduces it, except that a window
            // starting wholly in the end padding is dropped (as ONNX Runtime and PyTorch do).
            for i in 0..<spatial {
                let size = original[2 + i]
                let span = size + pads[i] + pads[i + spatial] - ((kernel[i] - 1) * dilations[i] + 1)
                var out = (span + strides[i] - 1) / strides[i] + 1
                if (out - 1) * strides[i] >= size + pads[i] { out -= 1 }
                extra[i] = max(0, (out - 1) * strides[i] - span)
            }
        }
        var include = countsPads ?? (c.node.int("count_include_pad", 0) != 0)
        if kind == .average && include && extra.contains(where: { $0 > 0 }) {
            // The divisor counts the real pads but not the cells ceil mode adds: the real pads
            // become zeros of the input, and only the added cells stay padding, not counted.
            x = try c.apply(.pad(pads: [0, 0] + pads.prefix(spatial) + [0, 0] + pads.suffix(spatial), value: 0), [x], name: "padded")
            (pads, include) = (Array(repeating: 0, count: spatial) + extra, false)
        } else {
            for i in 0..<spatial { pads[i + spatial] += extra[i] }
        }
        if spatial == 3 {
            return try pool3d(kind, x, kernel: kernel, strides: strides, pads: pads, dilations: dilations, countIncludePad: include, c)
        }
        if spatial == 1 {
            x = try addHeight(x, c)
            (kernel, strides, dilations, pads) = ([1] + kernel, [1] + strides, [1] + dilations, heightPads(pads))
        }
        let attributes = Pool2DAttributes(kind: kind, kernel: kernel, strides: strides, pads: pads, countIncludePad: include, dilations: dilations)
        let y = try c.apply(.pool2d(attributes), [x], name: spatial == 1 ? "2d" : nil)
        return spatial == 1 ? try removeHeight(y, c) : y
    }

    /// MaxPool's Indices (2-D): each window's first largest element, as its flat position in
    /// the input (row-major, or column-major with storage_order 1 within each N, C plane). The
    /// windows' taps are strided slices of the input padded with -inf, stacked; arg_max picks a
    /// tap, whose offset a constant table gives, added to the window's origin.
    static func maxPoolIndices(_ c: ImportContext, pooled: [Int]) throws -> ImportedValue {
        let x = try cast(try c.required(0), to: .float32, c)
        let shape = c.shape(x)
        guard shape.count == 4, pooled.count == 4 else { throw c.unsupported("the Indices output is supported for 2-D pooling, not input rank \(shape.count)") }
        let (n, channels, h, w, oh, ow) = (shape[0], shape[1], shape[2], shape[3], pooled[2], pooled[3])
        let kernel = c.node.ints("kernel_shape") ?? [1, 1]
        let strides = c.node.ints("strides") ?? [1, 1], dilations = c.node.ints("dilations") ?? [1, 1]
        let pads = try self.pads(c, input: [h, w], kernel: kernel, strides: strides, dilations: dilations)
        // Enough padding after for every window (ceil mode's too).
        let after = [max(0, (oh - 1) * strides[0] + (kernel[0] - 1) * dilations[0] + 1 - h - pads[0]),
                     max(0, (ow - 1) * strides[1] + (kernel[1] - 1) * dilations[1] + 1 - w - pads[1])]
        let padded = try c.apply(.pad(pads: [0, 0, pads[0], pads[1], 0, 0, after[0], after[1]], value: -.infinity), [x], name: "indices_padded")
        let columnMajor = c.node.int("storage_order", 0) != 0
        var taps: [ImportedValue] = [], offsets: [Int64] = []
        for i in 0..<kernel[0] {
            for j in 0..<kernel[1] {
                let (top, left) = (i * dilations[0], j * dilations[1])
                let tap = try c.apply(.slice(starts: [0, 0, top, left], ends: [n, channels, top + (oh - 1) * strides[0] + 1, left + (ow - 1) * strides[1] + 1],
                                             steps: [1, 1, strides[0], strides[1]]), [padded], name: "tap\(i)_\(j)")
                taps.append(try reshape(tap, to: [n, channels, oh, ow, 1], c))
                offsets.append(Int64(columnMajor ? top + left * h : top * w + left))
            }
        }
        let windows = taps.count == 1 ? taps[0] : try c.apply(.concat(axis: 4), taps, name: "windows")
        let best = try c.apply(.argExtreme(.max, axis: 4, keepDims: false, lastIndex: false), [windows], name: "best_tap")
        let offset = try c.apply(.gather(axis: 0), [.constant(ConstantTensor(shape: [offsets.count], ints: offsets)), best], name: "tap_offset")
        // The window's origin: its plane's first element, then its first row's and column's.
        let planes = ImportedValue.constant(ConstantTensor(shape: [n, channels, 1, 1], ints: (0..<n * channels).map { Int64($0 * h * w) }))
        let rows = ImportedValue.constant(ConstantTensor(shape: [1, 1, oh, 1], ints: (0..<oh).map { Int64(($0 * strides[0] - pads[0]) * (columnMajor ? 1 : w)) }))
        let columns = ImportedValue.constant(ConstantTensor(shape: [1, 1, 1, ow], ints: (0..<ow).map { Int64(($0 * strides[1] - pads[1]) * (columnMajor ? h : 1)) }))
        let origin = try c.apply(.binary(.add), [try c.apply(.binary(.add), [planes, rows], name: "origin_rows"), columns], name: "origin")
        return try c.apply(.binary(.add), [origin, offset], name: "indices")
    }

    /// 3-D pooling as two 2-D ones: over height and width, each depth slice ([N, C*D, H, W]);
    /// then over depth, each (channel, row and column of the result) ([N, C, D, H'*W'], a
    /// kd x 1 window). Exact for max; for average too, since a window's count of cells (padded
    /// ones counted or not) is the product of its counts along depth and across the slice.
    static func pool3d(_ kind: PoolKind, _ x: ImportedValue, kernel: [Int], strides: [Int], pads: [Int], dilations: [Int], countIncludePad: Bool,
                       _ c: ImportContext) throws -> ImportedValue {
        let s = c.shape(x)
        let (n, channels, depth, height, width) = (s[0], s[1], s[2], s[3], s[4])
        let slices = try reshape(x, to: [n, channels * depth, height, width], c)
        let across = Pool2DAttributes(kind: kind, kernel: [kernel[1], kernel[2]], strides: [strides[1], strides[2]],
                                      pads: [pads[1], pads[2], pads[4], pads[5]], countIncludePad: countIncludePad, dilations: [dilations[1], dilations[2]])
        let pooled = try c.apply(.pool2d(across), [slices], name: "height_width")
        let (rows, columns) = (c.shape(pooled)[2], c.shape(pooled)[3])
        let alongDepth = Pool2DAttributes(kind: kind, kernel: [kernel[0], 1], strides: [strides[0], 1], pads: [pads[0], 0, pads[3], 0],
                                          countIncludePad: countIncludePad, dilations: [dilations[0], 1])
        let y = try c.apply(.pool2d(alongDepth), [try reshape(pooled, to: [n, channels, depth, rows * columns], c)], name: "depth")
        return try reshape(y, to: [n, channels, c.shape(y)[2], rows, columns], c)
    }

    /// Gemm: Y = alpha * A' B' + beta * C, with A' and B' optionally transposed. A bias that is
    /// one row becomes the dense kernel's bias.
    static func gemm(_ c: ImportContext) throws -> [ImportedValue] {
        if let unit = try qdqUnit(.gemm, c) { return [unit] }
        var a = try c.required(0), b = try c.required(1)
        if c.node.int("transA", 0) != 0 { a = try c.apply(.transpose(perm: [1, 0]), [a], name: "a_t") }
        if c.node.int("transB", 0) != 0 { b = try c.apply(.transpose(perm: [1, 0]), [b], name: "b_t") }
        let alpha = c.node.float("alpha", 1), beta = c.node.float("beta", 1)
        if alpha != 1 { b = try c.apply(.binary(.mul), [b, c.scalar(alpha)], name: "alpha") }
        guard var bias = try c.input(2), beta != 0 else { return [try c.apply(.dense, [a, b])] }
        if beta != 1 { bias = try c.apply(.binary(.mul), [bias, c.scalar(beta)], name: "beta") }
        let n = c.shape(b).last ?? 0
        let biasShape = c.shape(bias)
        if biasShape.reduce(1, *) == n, biasShape.last == n || biasShape == [1] && n == 1 {
            if biasShape != [n] { bias = try c.apply(.reshape(shape: [n]), [bias], name: "bias") }
            return [try c.apply(.dense, [a, b, bias])]
        }
        let product = try c.apply(.dense, [a, b], name: "product")
        return [try c.apply(.binary(.add), [product, bias])]
    }

    /// Before opset 13, softmax flattens the input to 2-D at `axis` (default 1) and normalizes
    /// each row; from 13 on it normalizes along `axis` (default -1).
    static func softmax(log: Bool, _ c: ImportContext) throws -> ImportedValue {
        let x = try c.required(0)
        let shape = c.shape(x)
        if c.opset >= 13 {
            let axis = try c.axis(c.node.int("axis", -1), rank: shape.count)
            return try c.apply(log ? .logSoftmax(axis: axis) : .softmax(axis: axis), [x])
        }
        let axis = try c.axis(c.node.int("axis", 1), rank: shape.count)
        guard axis != shape.count - 1 else { return try c.apply(log ? .logSoftmax(axis: axis) : .softmax(axis: axis), [x]) }
        let rows = [shape.prefix(axis).reduce(1, *), shape.dropFirst(axis).reduce(1, *)]
        let flat = try c.apply(.reshape(shape: rows), [x], name: "rows")
        let normalized = try c.apply(log ? .logSoftmax(axis: 1) : .softmax(axis: 1), [flat], name: "softmax")
        return try c.apply(.reshape(shape: shape), [normalized])
    }

    /// LayerNormalization over the axes from `axis` on: (x - mean) / sqrt(var + eps) * scale + bias,
    /// one `layer_norm` node. When the optional outputs (the mean and 1 / sqrt(var + eps)) are
    /// asked for, or scale or bias only broadcast to the normalized shape, it is written with
    /// reductions and elementwise ops instead.
    static func layerNorm(_ c: ImportContext) throws -> [ImportedValue] {
        let x = try c.required(0), scale = try c.required(1)
        let rank = c.shape(x).count
        let axis = try c.axis(c.node.int("axis", -1), rank: rank)
        let axes = Array(axis..<rank)
        let epsilon = c.node.float("epsilon", 1e-5)
        let bias = try c.input(2)
        let wantsStatistics = c.node.output.dropFirst().contains { !$0.isEmpty }
        let operands = [x, scale] + (bias.map { [$0] } ?? [])
        let op = Op.layerNorm(axis: axis, epsilon: epsilon)
        if !wantsStatistics, (try? op.inferType(operands.map { TensorType(.float32, c.shape($0)) })) != nil {
            return [try c.apply(op, operands)]
        }
        let mean = try c.apply(.reduce(.mean, axes: axes, keepDims: true), [x], name: "mean")
        let centered = try c.apply(.binary(.sub), [x, mean], name: "centered")
        let squared = try c.apply(.binary(.mul), [centered, centered], name: "squared")
        let variance = try c.apply(.reduce(.mean, axes: axes, keepDims: true), [squared], name: "variance")
        let shifted = try c.apply(.binary(.add), [variance, c.scalar(epsilon)], name: "variance_eps")
        let deviation = try c.apply(.unary(.sqrt), [shifted], name: "deviation")
        let normalized = try c.apply(.binary(.div), [centered, deviation], name: "normalized")
        let extra = wantsStatistics ? [mean, try c.apply(.unary(.reciprocal), [deviation], name: "inv_std")] : []
        guard let bias else { return [try c.apply(.binary(.mul), [normalized, scale])] + extra }
        let scaled = try c.apply(.binary(.mul), [normalized, scale], name: "scaled")
        return [try c.apply(.binary(.add), [scaled, bias])] + extra
    }
}
