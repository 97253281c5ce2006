import LatheIR

/// Quantized contractions as ONNX Runtime computes them: QLinearConv and QLinearMatMul, and the
/// QDQ node units its quantizer writes, DequantizeLinear -> Conv, Gemm or MatMul ->
/// QuantizeLinear (activations and constant weights dequantized, the result quantized and read
/// by nothing else), which ONNX Runtime runs as one integer kernel:
///
///   acc = sum (x - x_zero) (w - w_zero) + bias            (integers; bias int32, in x_scale w_scale)
///   q   = saturate(round_to_even(acc * x_scale w_scale / y_scale) + y_zero)
///
/// per output channel where the weights' scale is. Here the integers are exact f32 (the
/// contraction's sums are exact below 2^24; the convolution is marked `exactSums`, so no
/// Winograd transform rounds them), contracted by the f32 kernels, and the requantization fuses
/// into their epilogue. A QDQ unit gives the Conv's float output as
/// (q - y_zero) y_scale, which the QuantizeLinear after it turns back into q exactly; computing
/// the dequantized float product and quantizing it instead would land a step away from ONNX
/// Runtime wherever the float and integer roundings part, and such steps add up layer by layer.
extension OpHandlers {
    /// The contractions whose quantized forms this file computes.
    enum QuantizedContraction {
        case conv, gemm, matmul
    }

    /// A quantized contraction's operands: quantized x and w with their scales and zero
    /// points (the weights' along `weightAxis` of their stored layout), an int32 bias, and the
    /// result's scale and zero point.
    struct QuantizedOperands {
        var x: ImportedValue, xScale: ImportedValue, xZero: ImportedValue?
        var w: ImportedValue, wScale: ImportedValue, wZero: ImportedValue?, weightAxis: Int
        var bias: ImportedValue?
        var yScale: ImportedValue, yZero: ImportedValue
    }

    /// The node's output as a QDQ unit computes it, or nil when the node and its neighbours are
    /// not one (the node then imports as a float op).
    static func qdqUnit(_ kind: QuantizedContraction, _ c: ImportContext) throws -> ImportedValue? {
        let node = c.node
        guard node.output.count == 1, let output = node.output.first else { return nil }
        let readers = c.consumers(of: output)
        guard !readers.returned, readers.nodes.count == 1, let quantize = readers.nodes.first, quantize.opType == "QuantizeLinear",
              quantize.input.first == output, quantize.input.count >= 3, !quantize.input[2].isEmpty,
              c.shape(try c.value(quantize.input[1])).reduce(1, *) == 1 else { return nil }
        func dequantized(_ name: String) -> Onnx_NodeProto? {
            guard let p = c.producer(of: name), p.opType == "DequantizeLinear", p.input.count >= 2 else { return nil }
            return p
        }
        guard node.input.count >= 2, let xNode = dequantized(node.input[0]), let wNode = dequantized(node.input[1]) else { return nil }
        let x = try c.value(xNode.input[0]), w = try c.value(wNode.input[0])
        guard [.uint8, .int8].contains(c.dtype(x)), [.uint8, .int8].contains(c.dtype(w)), case .constant = w else { return nil }
        func optional(_ n: Onnx_NodeProto, _ i: Int) throws -> ImportedValue? { i < n.input.count && !n.input[i].isEmpty ? try c.value(n.input[i]) : nil }
        let xScale = try c.value(xNode.input[1]), wScale = try c.value(wNode.input[1])
        guard c.shape(xScale).reduce(1, *) == 1, try optional(xNode, 2).map({ c.shape($0).reduce(1, *) == 1 }) ?? true else { return nil }
        let yScale = try c.value(quantize.input[1]), yZero = try c.value(quantize.input[2])
        guard [.uint8, .int8].contains(c.dtype(yZero)), c.shape(yScale).reduce(1, *) == 1 else { return nil }
        var operands = QuantizedOperands(x: x, xScale: xScale, xZero: try optional(xNode, 2), w: w, wScale: wScale, wZero: try optional(wNode, 2),
                                         weightAxis: wNode.int("axis", 1), bias: nil, yScale: yScale, yZero: yZero)
        // An int32 bias quantized at x_scale w_scale with zero point 0 (as the quantizer writes it).
        if kind != .matmul, node.input.count > 2, !node.input[2].isEmpty {
            guard let bNode = dequantized(node.input[2]), case let .constant(b) = try c.value(bNode.input[0]), b.dtype == .int32,
                  case let .constant(bScale) = try c.value(bNode.input[1]), case let .constant(xs) = xScale, case let .constant(ws) = wScale,
                  try optional(bNode, 2).map({ v in if case let .constant(z) = v { z.floats.allSatisfy { $0 == 0 } } else { false } }) ?? true else { return nil }
            let expected = ws.floats.map { xs.floats[0] * $0 }
            guard bScale.floats == expected || (expected.count == 1 && bScale.floats.allSatisfy { $0 == expected[0] }) else { return nil }
            operands.bias = .constant(b)
        }
        if kind == .gemm {
            guard c.node.int("transA", 0) == 0, c.node.float("alpha", 1) == 1, c.node.float("beta", 1) == 1 else { return nil }
        }
        guard let q = try quantizedContraction(kind, operands, c) else { return nil }
        // The float the QuantizeLinear after it reads: it gives q back.
        let zero = try cast(yZero, to: .float32, c)
        let centred = try c.apply(.binary(.sub), [try cast(q, to: .float32, c), try reshape(zero, to: [], c)], name: "q_centred")
        let float = try c.apply(.binary(.mul), [centred, try reshape(try cast(yScale, to: .float32, c), to: [], c)])
        if case let .node(id) = float, let known = Dequantized(q, type: c.dtype(yZero), scale: yScale, zero: yZero) { c.dequantized[id] = known }
        return float
    }

    /// The quantized result q (of y_zero's type) of a quantized conv, gemm or matmul, or nil
    /// where the weights' scales are not per tensor or per output channel.
    static func quantizedContraction(_ kind: QuantizedContraction, _ q: QuantizedOperands, _ c: ImportContext) throws -> ImportedValue? {
        let wShape = c.shape(q.w)
        let transposed = kind == .gemm && c.node.int("transB", 0) != 0
        // The weights' axis of output channels in their stored layout.
        let outputAxis = kind == .conv || transposed ? 0 : wShape.count - 1
        let outputs = wShape.isEmpty ? 1 : wShape[outputAxis]
        let scaleCount = c.shape(q.wScale).reduce(1, *)
        let weightAxis = try c.axis(q.weightAxis, rank: wShape.count)
        guard scaleCount == 1 || weightAxis == outputAxis && scaleCount == outputs else { return nil }
        if let zero = q.wZero, c.shape(zero).reduce(1, *) != 1, c.shape(zero).reduce(1, *) != outputs { return nil }
        if let sums = try integerSums(kind, x: q.x, xZero: q.xZero, w: q.w, wZero: q.wZero, bias: q.bias, outputAxis: outputAxis, transposed: transposed, c) {
            let q = try requantized(sums.value, q, perChannel: scaleCount > 1, outputs: outputs, kind: kind, c)
            return try q.map { c.shape($0) == sums.shape ? $0 : try reshape($0, to: sums.shape, c) }
        }
        let x = try integers(q.x, lessZeroPoint: q.xZero, axis: 0, c, name: "x_integers")
        var w = try integers(q.w, lessZeroPoint: q.wZero, axis: outputAxis, c, name: "w_integers")
        let bias = try q.bias.map { try cast($0, to: .float32, c) }
        let accumulated: ImportedValue
        switch kind {
        case .conv:
            accumulated = try convolution(x, weights: w, bias: bias, c, name: "accumulated", exactSums: true)
        case .gemm, .matmul:
            if transposed { w = try c.apply(.transpose(perm: [1, 0]), [w], name: "w_t") }
            if kind == .gemm {
                accumulated = try c.apply(.dense, [x, w] + (try bias.map { [try reshape($0, to: [outputs], c)] } ?? []), name: "accumulated")
            } else {
                accumulated = try c.apply(.matmul, [x, w], name: "accumulated")
            }
        }
        return try requantized(accumulated, q, perChannel: scaleCount > 1, outputs: outputs, kind: kind, c)
    }

    /// clip(round(acc x_scale w_scale / y_scale) + y_zero), of y_zero's type, from the exact
    /// sums `accumulated` (f32, or int32 from the integer GEMM), with one multiplier per output
    /// channel (`perChannel`: axis 1 of a convolution's result, the last of a product's), or nil
    /// for a y_zero of a type with no integer range.
    private static func requantized(_ accumulated: ImportedValue, _ q: QuantizedOperands, perChannel: Bool, outputs: Int, kind: QuantizedContraction,
                                    _ c: ImportContext) throws -> ImportedValue? {
        // x_scale w_scale / y_scale in f32.
        let xs = try reshape(try cast(q.xScale, to: .float32, c), to: [], c), ys = try reshape(try cast(q.yScale, to: .float32, c), to: [], c)
        var multiplier = try c.apply(.binary(.div), [try c.apply(.binary(.mul), [xs, try cast(q.wScale, to: .float32, c)], name: "xw_scale"), ys], name: "multiplier")
        let rank = c.shape(accumulated).count
        if perChannel {
            var target = Array(repeating: 1, count: rank)
            target[kind == .conv ? 1 : rank - 1] = outputs
            multiplier = try reshape(multiplier, to: target, c)
        } else {
            multiplier = try reshape(multiplier, to: [], c)
        }
        // One formula, clip(round(acc * multiplier) + y_zero), which the epilogue fusion puts in
        // the kernel: as separate ops the constant per-channel Mul would fold into the weights
        // (fold-batchnorm), and the sums would no longer be of integers.
        let type = c.dtype(q.yZero)
        guard let (low, high) = integerRange(type) else { return nil }
        let sum: ScalarExpr = c.dtype(accumulated) == .float32 ? .arg(0) : .cast(.float32, .arg(0))
        let rounded = UnaryFn.round.formula.substituting([sum * .arg(1)])
        let requantize = UnaryFn.clip(min: low, max: high).formula.substituting([rounded + .arg(2)])
        let zero = try reshape(try cast(q.yZero, to: .float32, c), to: [], c)
        return try cast(try c.apply(.fusedElementwise(requantize), [accumulated, multiplier, zero], name: "requantized"), to: type, c)
    }

    /// The exact int32 sums of a quantized contraction on the integer GEMM, the shape its result
    /// takes (a matmul of more than 2-D x runs as 2-D), and each output channel's sum of weights
    /// (less their zero points), or nil where that GEMM does not apply: x not uint8 or its zero
    /// point not one constant, weights not constant, or (less their zero points) not int8
    /// values, a 3-D convolution, a matmul whose weights are not 2-D. The weights' zero points
    /// are taken off at import; the input's, z, is the padding's value, so that every tap of a
    /// window reads x - z + z, and bias - z * (sum of the channel's weights) takes the z's back
    /// off.
    static func integerSums(_ kind: QuantizedContraction, x: ImportedValue, xZero zeroPoint: ImportedValue?, w weights: ImportedValue,
                            wZero: ImportedValue?, bias: ImportedValue?, outputAxis: Int, transposed: Bool,
                            _ c: ImportContext) throws -> (value: ImportedValue, shape: [Int], weightSums: [Int])? {
        guard c.dtype(x) == .uint8, case let .constant(w) = weights, w.dtype == .int8 || w.dtype == .uint8 else { return nil }
        var xZero = 0
        if let z = zeroPoint {
            guard case let .constant(zero) = z, zero.count == 1 else { return nil }
            xZero = zero.intValues[0]
        }
        let (ws, xs) = (w.shape, c.shape(x))
        guard kind == .conv ? (3...4).contains(ws.count) && xs.count == ws.count : ws.count == 2 && xs.count >= 2 else { return nil }
        let outputs = ws[outputAxis], inner = ws.dropFirst(outputAxis + 1).reduce(1, *)
        var zeros = Array(repeating: 0, count: outputs)
        if let z = wZero {
            guard case let .constant(zero) = z, zero.count == 1 || zero.count == outputs else { return nil }
            zeros = zero.count == 1 ? Array(repeating: zero.intValues[0], count: outputs) : zero.intValues
        }
        var centred = [Int8](), sums = Array(repeating: 0, count: outputs)
        centred.reserveCapacity(w.count)
        for (i, v) in w.intValues.enumerated() {
            let o = i / inner % outputs, value = v - zeros[o]
            guard (-128...127).contains(value) else { return nil }
            centred.append(Int8(value))
            sums[o] += value
        }
        var biasValues = Array(repeating: 0, count: outputs)
        if let b = bias {
            guard case let .constant(bias) = b, bias.count == outputs else { return nil }
            biasValues = bias.intValues
        }
        let corrected = zip(biasValues, sums).map { $0 - xZero * $1 }
        guard corrected.allSatisfy({ Int(Int32.min)...Int(Int32.max) ~= $0 }) else { return nil }
        let correctedBias = ImportedValue.constant(ConstantTensor(try HostTensor(shape: [outputs], values: corrected.map { Int32($0) })))
        switch kind {
        case .conv:
            let weights = ImportedValue.constant(ConstantTensor(try HostTensor(shape: ws, values: centred)))
            let result = try convolution(x, weights: weights, bias: correctedBias, c, name: "sums", padValue: xZero)
            return (result, c.shape(result), sums)
        case .gemm, .matmul:
            // Weights [K, N] (a transposed Gemm's [N, K] turned).
            let (k, n) = transposed ? (ws[1], ws[0]) : (ws[0], ws[1])
            let values = transposed ? (0..<(k * n)).map { centred[$0 % n * k + $0 / n] } : centred
            let weights = ImportedValue.constant(ConstantTensor(try HostTensor(shape: [k, n], values: values)))
            guard xs.last == k else { return nil }
            let rows = xs.dropLast().reduce(1, *)
            let rowsOfX = xs.count == 2 ? x : try reshape(x, to: [rows, k], c)
            return (try c.apply(.dense, [rowsOfX, weights, correctedBias], name: "sums"), Array(xs.dropLast()) + [n], sums)
        }
    }
}
