import LatheIR

/// Quantization: QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear, and the integer
/// contractions MatMulInteger and ConvInteger (QLinearConv and QLinearMatMul: OpHandlers+QDQ.swift),
/// as ONNX's reference defines them:
///
///   dequantize: y = (x - zero_point) * scale, computed in f32, then in the scale's type
///   quantize:   y = saturate(round_to_even(x / scale) + zero_point)  (integer types)
///               y = cast(x / scale, saturate)                         (8- and 4-bit floats)
///
/// with the scale and zero point one value (per tensor), one per position of `axis` (per axis),
/// or one per `block_size` positions along `axis` (blocked, the other axes one each). They are
/// built from cast, round, clip and broadcast arithmetic, so a quantize or dequantize fuses
/// into the kernel before or after it, and one of constants (a model's int8 weights) is
/// computed at import. The *Integer ops subtract the zero points and contract the exact
/// integers in f32 (exact while a sum stays below 2^24).
extension OpHandlers {
    static let quantize: [String: Handler] = [
        "DequantizeLinear": { c in
            let x = try c.required(0), scale = try c.required(1)
            let type = c.opset >= 23 ? try outputType(c, default: c.dtype(scale)) : c.dtype(scale)
            let y = try dequantize(x, scale: scale, zeroPoint: try c.input(2), to: type, c)
            if type == .float32, case let .node(id) = y, let known = Dequantized(x, type: c.dtype(x), scale: scale, zero: try c.input(2)) {
                c.dequantized[id] = known
            }
            return [y]
        },
        "QuantizeLinear": { c in
            let x = try c.required(0), scale = try c.required(1), zeroPoint = try c.input(2)
            let type = try zeroPoint.map(c.dtype) ?? outputType(c, default: .uint8)
            // A quantized tensor dequantized and quantized again at its own scale and zero point
            // (QDQ pairs around a node with its own quantized output) is itself: as ONNX Runtime
            // removes such pairs.
            if case let .node(id) = x, let known = c.dequantized[id], known.type == type,
               let same = Dequantized(known.q, type: type, scale: scale, zero: zeroPoint), same.scale == known.scale, same.zero == known.zero {
                return [known.q]
            }
            let rule = CastRule(saturate: c.node.int("saturate", 1) != 0)
            return [try quantize(x, scale: scale, zeroPoint: zeroPoint, to: type, rule: rule, c)]
        },
        "DynamicQuantizeLinear": { c in
            // The range [min(x, 0), max(x, 0)] mapped onto 0...255: scale = range / 255, zero
            // point = saturate(round(-min / scale)).
            let x = try c.required(0)
            guard c.dtype(x) == .float32 else { throw c.fail("takes a float32 input, not \(c.dtype(x))") }
            let all = Array(0..<c.shape(x).count)
            let negated = try c.apply(.unary(.neg), [x], name: "negated")
            let negatedLow = try c.apply(.binary(.max), [try c.apply(.reduce(.max, axes: all, keepDims: false), [negated], name: "negated_min"), c.scalar(0)], name: "negated_low")
            let low = try c.apply(.unary(.neg), [negatedLow], name: "low")
            let high = try c.apply(.binary(.max), [try c.apply(.reduce(.max, axes: all, keepDims: false), [x], name: "max"), c.scalar(0)], name: "high")
            let scale = try c.apply(.binary(.div), [try c.apply(.binary(.sub), [high, low], name: "range"), c.scalar(255)], name: "scale")
            let zero = try c.apply(.unary(.neg), [try c.apply(.binary(.div), [low, scale], name: "low_steps")], name: "zero_steps")
            let rounded = try c.apply(.unary(.round), [zero], name: "zero_rounded")
            let zeroPoint = try c.apply(.cast(to: .uint8), [try saturated(rounded, .uint8, c)], name: "zero_point")
            return [try quantize(x, scale: scale, zeroPoint: zeroPoint, to: .uint8, rule: .standard, c), scale, zeroPoint]
        },
        "MatMulInteger": { c in
            if let sums = try integerMatMul(c) { return [sums] }
            let a = try integerOperand(0, zeroPoint: 2, axis: -2, c), b = try integerOperand(1, zeroPoint: 3, axis: -1, c)
            let product = try c.apply(.matmul, [a, b], name: "f32")
            return [try c.apply(.cast(to: .int32), [product])]
        },
        "ConvInteger": { c in
            // On the integer GEMM where x is uint8 with one zero point known at import (the
            // padding's value) and the weights are constant: its sums are ConvInteger's result.
            if try c.input(2)?.isConstant ?? true,
               let sums = try integerSums(.conv, x: try c.required(0), xZero: try c.input(2), w: try c.required(1), wZero: try c.input(3), bias: nil,
                                          outputAxis: 0, transposed: false, c) {
                return [sums.value]
            }
            let x = try integerOperand(0, zeroPoint: 2, axis: -1, c), w = try integerOperand(1, zeroPoint: 3, axis: 0, c)
            let sum = try convolution(x, weights: w, bias: nil, c, name: "f32")
            return [try c.apply(.cast(to: .int32), [sum])]
        },
        "QLinearMatMul": { c in
            let operands = QuantizedOperands(x: try c.required(0), xScale: try c.required(1), xZero: try c.input(2), w: try c.required(3),
                                             wScale: try c.required(4), wZero: try c.input(5), weightAxis: -1, bias: nil,
                                             yScale: try c.required(6), yZero: try c.required(7))
            if c.shape(operands.xScale).reduce(1, *) == 1, let q = try quantizedContraction(.matmul, operands, c) { return [q] }
            // Per-row scales of a: the reference's composition, dequantized operands.
            let a = try dequantize(operands.x, scale: operands.xScale, zeroPoint: operands.xZero, to: .float32, c, axis: -2, name: "a")
            let b = try dequantize(operands.w, scale: operands.wScale, zeroPoint: operands.wZero, to: .float32, c, axis: -1, name: "b")
            let product = try c.apply(.matmul, [a, b], name: "product")
            return [try quantize(product, scale: operands.yScale, zeroPoint: operands.yZero, to: c.dtype(operands.yZero), rule: .standard, c, axis: -1)]
        },
        "QLinearConv": { c in
            let operands = QuantizedOperands(x: try c.required(0), xScale: try c.required(1), xZero: try c.input(2), w: try c.required(3),
                                             wScale: try c.required(4), wZero: try c.input(5), weightAxis: 0, bias: try c.input(8),
                                             yScale: try c.required(6), yZero: try c.required(7))
            guard let q = try quantizedContraction(.conv, operands, c) else {
                throw c.fail("has w_scale \(c.shape(operands.wScale)) for weights \(c.shape(operands.w)); one value or one per output channel")
            }
            return [q]
        },
    ]

    /// MatMulInteger on the integer GEMM where it applies (uint8 a; constant 2-D b whose values
    /// less their zero points are int8; a's zero point one value): a dynamically quantized
    /// model's products, whose a and zero point DynamicQuantizeLinear computes as the model runs.
    /// A zero point z known at run time is taken off after the sums: - z * (sum of each column
    /// of b), in int32.
    private static func integerMatMul(_ c: ImportContext) throws -> ImportedValue? {
        let a = try c.required(0), b = try c.required(1), aZero = try c.input(2)
        guard c.dtype(a) == .uint8, c.shape(b).count == 2, c.shape(a).count >= 2 else { return nil }
        if let aZero, c.shape(aZero).reduce(1, *) != 1 { return nil }
        let known = aZero?.isConstant ?? true
        guard let sums = try integerSums(.matmul, x: a, xZero: known ? aZero : nil, w: b, wZero: try c.input(3), bias: nil, outputAxis: 1,
                                         transposed: false, c) else { return nil }
        var result = sums.value
        if let aZero, !known {
            let z = try reshape(try OpHandlers.cast(aZero, to: .int32, c), to: [], c)
            let columnSums = ImportedValue.constant(ConstantTensor(try HostTensor(shape: [sums.weightSums.count], values: sums.weightSums.map { Int32($0) })))
            let correction = try c.apply(.binary(.mul), [z, columnSums], name: "zero_point_sums")
            result = try c.apply(.binary(.sub), [result, correction], name: "sums_less_zero_point")
        }
        return c.shape(result) == sums.shape ? result : try reshape(result, to: sums.shape, c)
    }

    /// The `output_dtype` attribute (0 or absent: `default`).
    private static func outputType(_ c: ImportContext, default type: DType) throws -> DType {
        let code = c.node.int("output_dtype", 0)
        guard code != 0 else { return type }
        guard let dtype = DType(onnxCode: code) else { throw c.fail("has output_dtype \(code), not an ONNX element type") }
        return dtype
    }

    /// The max pool of a dequantized tensor (a QDQ model's DequantizeLinear -> MaxPool): the
    /// quantized values pooled (pool2d computes in f32, exact for 8-bit integers) and
    /// dequantized after, as ONNX Runtime pools them. Dequantization with a positive scale
    /// never decreases, so the max commutes with it exactly; a QuantizeLinear back to the same
    /// scale and zero point then takes the pooled integers as they are, where it divided by the
    /// scale and rounded. Nil where the input is not such a tensor.
    static func quantizedMaxPool(_ c: ImportContext) throws -> ImportedValue? {
        guard case let .node(id) = try c.required(0), let known = c.dequantized[id], known.scale > 0 else { return nil }
        let pooled = try pool(.max, c, of: known.q)
        let y = try dequantize(pooled, scale: known.scaleValue, zeroPoint: known.zeroValue, to: .float32, c, axis: 1, name: "dequantized")
        if case let .node(yID) = y {
            c.dequantized[yID] = Dequantized(pooled, type: known.type, scale: known.scaleValue, zero: known.zeroValue)
        }
        return y
    }

    /// (x - zero_point) * scale in f32, then converted to `type`.
    static func dequantize(_ x: ImportedValue, scale: ImportedValue, zeroPoint: ImportedValue?, to type: DType,
                           _ c: ImportContext, axis defaultAxis: Int? = nil, name: String? = nil) throws -> ImportedValue {
        func named(_ part: String) -> String { name.map { "\($0)_\(part)" } ?? part }
        let axis = defaultAxis ?? c.node.int("axis", 1)
        var y = try OpHandlers.cast(x, to: .float32, c)
        if let zeroPoint {
            let zero = try spread(try OpHandlers.cast(zeroPoint, to: .float32, c), over: c.shape(x), axis: axis, c, name: named("zero_point"))
            y = try c.apply(.binary(.sub), [y, zero], name: named("centred"))
        }
        let factor = try spread(try OpHandlers.cast(scale, to: .float32, c), over: c.shape(x), axis: axis, c, name: named("scale"))
        y = try c.apply(.binary(.mul), [y, factor], name: type == .float32 ? name : named("f32"))
        return try OpHandlers.cast(y, to: type, c)
    }

    /// saturate(round(x / scale) + zero_point) for integer types; x / scale cast to a float type.
    static func quantize(_ x: ImportedValue, scale: ImportedValue, zeroPoint: ImportedValue?, to type: DType, rule: CastRule,
                         _ c: ImportContext, axis defaultAxis: Int? = nil) throws -> ImportedValue {
        let axis = defaultAxis ?? c.node.int("axis", 1)
        let factor = try spread(try OpHandlers.cast(scale, to: .float32, c), over: c.shape(x), axis: axis, c, name: "scale")
        var y = try c.apply(.binary(.div), [try OpHandlers.cast(x, to: .float32, c), factor], name: "steps")
        guard integerRange(type) != nil else {
            guard type.isFloatingPoint, type.byteSize == 1 else { throw c.unsupported("quantizes to \(type)") }
            // The zero point (0 in any float model) is added as the reference adds it: -0 becomes +0.
            if let zeroPoint {
                let zero = try spread(try OpHandlers.cast(zeroPoint, to: .float32, c), over: c.shape(x), axis: axis, c, name: "zero_point")
                y = try c.apply(.binary(.add), [y, zero], name: "shifted")
            }
            return try OpHandlers.cast(y, to: type, rule: rule, c)
        }
        y = try c.apply(.unary(.round), [y], name: "rounded")
        if let zeroPoint {
            let zero = try spread(try OpHandlers.cast(zeroPoint, to: .float32, c), over: c.shape(x), axis: axis, c, name: "zero_point")
            y = try c.apply(.binary(.add), [y, zero], name: "shifted")
        }
        return try OpHandlers.cast(try saturated(y, type, c), to: type, c)
    }

    /// x clipped to the range of an integer type.
    private static func saturated(_ x: ImportedValue, _ type: DType, _ c: ImportContext) throws -> ImportedValue {
        guard let (low, high) = integerRange(type) else { throw c.unsupported("quantizes to \(type)") }
        return try c.apply(.unary(.clip(min: low, max: high)), [x], name: "saturated")
    }

    /// The values of the integer types a quantized tensor may have.
    static func integerRange(_ type: DType) -> (Float, Float)? {
        switch type {
        case .int8: return (-128, 127)
        case .uint8: return (0, 255)
        case .int16: return (-32768, 32767)
        case .uint16: return (0, 65535)
        case .int4: return (-8, 7)
        case .uint4: return (0, 15)
        case .int2: return (-2, 1)
        case .uint2: return (0, 3)
        default: return nil
        }
    }

    /// A scale or zero point shaped to broadcast against `shape`: one value as it is; a 1-D one
    /// along `axis`; a blocked one (the rank of the data) repeated `block_size` times along it.
    private static func spread(_ v: ImportedValue, over shape: [Int], axis given: Int, _ c: ImportContext, name: String) throws -> ImportedValue {
        let own = c.shape(v)
        if own.reduce(1, *) == 1 && own.count <= 1 { return try OpHandlers.reshape(v, to: [], c) }
        let axis = try c.axis(given, rank: shape.count)
        if own.count == 1 {
            guard own[0] == shape[axis] else { throw c.fail("has a \(name) of \(own[0]) values for axis \(axis) of size \(shape[axis])") }
            var target = Array(repeating: 1, count: shape.count)
            target[axis] = own[0]
            return try OpHandlers.reshape(v, to: target, c)
        }
        let block = c.node.int("block_size", 0)
        let blocks = block > 0 ? (shape[axis] + block - 1) / block : 0
        guard own.count == shape.count, block > 0, own[axis] == blocks,
              own.indices.allSatisfy({ $0 == axis || own[$0] == shape[$0] }) else {
            throw c.fail("has a \(name) shaped \(own) for input \(shape) (axis \(axis), block_size \(block))")
        }
        let positions = ConstantTensor(shape: [shape[axis]], ints: (0..<shape[axis]).map { Int64($0 / block) })
        return try c.apply(.gather(axis: axis), [v, .constant(positions)], name: "\(name)_blocks")
    }

    /// Operand `i` of an integer contraction less its zero point (operand `zeroPoint`: one value,
    /// or one per row of `axis`), as exact f32 integers.
    private static func integerOperand(_ i: Int, zeroPoint: Int, axis: Int, _ c: ImportContext) throws -> ImportedValue {
        let x = try c.required(i)
        guard [.int8, .uint8].contains(c.dtype(x)) else { throw c.fail("takes int8 or uint8 operands, not \(c.dtype(x))") }
        return try integers(x, lessZeroPoint: try c.input(zeroPoint), axis: axis, c, name: "operand\(i)")
    }

    /// x as exact f32 integers less its zero point: one value, or one per position of `axis`
    /// (negative from the end; MatMulInteger's b_zero_point per column, the weights' per output
    /// channel).
    static func integers(_ x: ImportedValue, lessZeroPoint zero: ImportedValue?, axis: Int, _ c: ImportContext, name: String) throws -> ImportedValue {
        let y = try OpHandlers.cast(x, to: .float32, c)
        guard let zero else { return y }
        var z = try OpHandlers.cast(zero, to: .float32, c)
        if c.shape(z).reduce(1, *) > 1 {
            var target = Array(repeating: 1, count: c.shape(x).count)
            target[try c.axis(axis, rank: target.count)] = c.shape(z).reduce(1, *)
            z = try OpHandlers.reshape(z, to: target, c)
        } else {
            z = try OpHandlers.reshape(z, to: [], c)
        }
        return try c.apply(.binary(.sub), [y, z], name: name)
    }
}
