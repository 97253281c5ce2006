import LatheIR

extension OpHandlers {
    /// Unary ops that are one IR formula, with their ONNX attributes and defaults.
    static let unaryOps: [String: (Onnx_NodeProto) -> UnaryFn] = [
        "Relu": { _ in .relu }, "Sigmoid": { _ in .sigmoid }, "Tanh": { _ in .tanh }, "Exp": { _ in .exp },
        "Log": { _ in .log }, "Sqrt": { _ in .sqrt }, "Abs": { _ in .abs }, "Neg": { _ in .neg },
        "Reciprocal": { _ in .reciprocal }, "Erf": { _ in .erf }, "Floor": { _ in .floor }, "Ceil": { _ in .ceil },
        "Softplus": { _ in .softplus }, "Softsign": { _ in .softsign }, "HardSwish": { _ in .hardSwish },
        "LeakyRelu": { .leakyRelu(alpha: $0.float("alpha", 0.01)) },
        "Elu": { .elu(alpha: $0.float("alpha", 1)) },
        "Selu": { .selu(alpha: $0.float("alpha", 1.67326319217681884765625), gamma: $0.float("gamma", 1.05070102214813232421875)) },
        "HardSigmoid": { .hardSigmoid(alpha: $0.float("alpha", 0.2), beta: $0.float("beta", 0.5)) },
        "Not": { _ in .not }, "IsNaN": { _ in .isNaN }, "Sign": { _ in .sign }, "Round": { _ in .round }, "BitwiseNot": { _ in .bitNot },
    ]

    static let binaryOps: [String: BinaryFn] = [
        "Add": .add, "Sub": .sub, "Mul": .mul, "Div": .div, "Pow": .pow,
        "Equal": .equal, "Less": .less, "LessOrEqual": .lessOrEqual, "Greater": .greater, "GreaterOrEqual": .greaterOrEqual,
        "And": .and, "Or": .or, "Xor": .xor, "BitwiseAnd": .bitAnd, "BitwiseOr": .bitOr, "BitwiseXor": .bitXor,
    ]

    static let elementwise: [String: Handler] = {
        var table: [String: Handler] = [:]
        for (name, fn) in unaryOps {
            table[name] = { c in [try c.apply(.unary(fn(c.node)), [try c.required(0)])] }
        }
        for (name, fn) in binaryOps where fn != .pow {
            table[name] = { c in
                [try c.apply(.binary(fn), [try c.required(0), try c.required(1)])]
            }
        }
        table["Gelu"] = { c in
            switch c.node.string("approximate", "none") {
            case "none": return [try c.apply(.unary(.gelu), [try c.required(0)])]
            case "tanh": return [try c.apply(.unary(.geluTanh), [try c.required(0)])]
            case let other: throw c.fail("has unknown approximate '\(other)'")
            }
        }
        table["Clip"] = { c in
            let x = try c.required(0)
            if c.opset < 11 {
                return [try c.apply(.unary(.clip(min: c.node.float("min", -.infinity), max: c.node.float("max", .infinity))), [x])]
            }
            let (lo, hi) = (try c.input(1), try c.input(2))
            if case let .constant(a)? = lo, case let .constant(b)? = hi, a.count == 1, b.count == 1 {
                return [try c.apply(.unary(.clip(min: a.floats[0], max: b.floats[0])), [x])]
            }
            // Bounds computed at run time (or only one given): max with the lower, min with the upper.
            var y = x
            if let lo { y = try c.apply(.binary(.max), [y, lo], name: hi == nil ? nil : "lower") }
            if let hi { y = try c.apply(.binary(.min), [y, hi]) }
            return [y]
        }
        table["Pow"] = { c in
            // The exponent may be of another type than the base: a float base takes it in its
            // own type; an integer base is raised in f64 and truncated back, as ONNX Runtime does.
            let (base, exponent) = (try c.required(0), try c.required(1))
            let type = c.dtype(base)
            if type.isFloatingPoint { return [try c.apply(.binary(.pow), [base, try cast(exponent, to: type, c)])] }
            let raised = try c.apply(.binary(.pow), [try cast(base, to: .float64, c), try cast(exponent, to: .float64, c)], name: "f64")
            return [try cast(raised, to: type, c)]
        }
        table["Mod"] = { c in
            let (a, b) = (try c.required(0), try c.required(1))
            // fmod 0: the remainder takes the divisor's sign (Python's %); 1: the dividend's (C's fmod).
            return [try c.apply(.binary(c.node.int("fmod", 0) != 0 ? .fmod : .mod), [a, b])]
        }
        table["BitShift"] = { c in
            let fn: BinaryFn
            switch c.node.string("direction", "") {
            case "LEFT": fn = .shiftLeft
            case "RIGHT": fn = .shiftRight
            case let other: throw c.fail("has direction '\(other)', not LEFT or RIGHT")
            }
            return [try c.apply(.binary(fn), [try c.required(0), try c.required(1)])]
        }
        table["IsInf"] = { c in
            // x == +inf, x == -inf, or |x| == inf; neither detected: no element is (NaN equals nothing).
            let x = try c.required(0)
            let (negative, positive) = (c.node.int("detect_negative", 1) != 0, c.node.int("detect_positive", 1) != 0)
            let type = c.dtype(x)
            switch (negative, positive) {
            case (true, true): return [try c.apply(.binary(.equal), [try c.apply(.unary(.abs), [x], name: "abs"), c.scalar(.infinity, type)])]
            case (false, true): return [try c.apply(.binary(.equal), [x, c.scalar(.infinity, type)])]
            case (true, false): return [try c.apply(.binary(.equal), [x, c.scalar(-.infinity, type)])]
            case (false, false): return [try c.apply(.binary(.equal), [x, c.scalar(.nan, type)])]
            }
        }
        table["BitCast"] = { c in
            // The bits reinterpreted, as a cast with a bitwise rule (fused like any cast).
            let x = try c.required(0)
            guard let to = DType(onnxCode: c.node.int("to", 0)) else { throw c.fail("has to=\(c.node.int("to", 0)), not an element type") }
            let from = c.dtype(x)
            guard from.byteSize == to.byteSize, from.isComputed, to.isComputed else {
                throw c.unsupported("reinterprets \(from) as \(to): types of one width, neither a 4-, 2-bit or 8-bit float type, are supported")
            }
            return [try cast(x, to: to, rule: CastRule(reinterpretsFrom: from), c)]
        }
        table["Where"] = { c in [try c.apply(.select, [try c.required(0), try c.required(1), try c.required(2)])] }
        table["Max"] = { c in [try variadic(.max, c)] }
        table["Min"] = { c in [try variadic(.min, c)] }
        table["Sum"] = { c in [try variadic(.add, c)] }
        table["Mean"] = { c in
            let sum = try variadic(.add, c)
            return [try c.apply(.binary(.mul), [sum, c.scalar(1 / Float(c.node.input.count), c.dtype(sum))], name: "mean")]
        }
        table["PRelu"] = { c in
            // max(x, 0) + slope * min(x, 0)
            let (x, slope) = (try c.required(0), try c.required(1))
            let positive = try c.apply(.binary(.max), [x, c.scalar(0, c.dtype(x))], name: "positive")
            let negative = try c.apply(.binary(.min), [x, c.scalar(0, c.dtype(x))], name: "negative")
            let scaled = try c.apply(.binary(.mul), [slope, negative], name: "scaled")
            return [try c.apply(.binary(.add), [positive, scaled])]
        }
        return table
    }()

    /// Folds a variadic op (Sum, Max, Min) left to right.
    static func variadic(_ fn: BinaryFn, _ c: ImportContext) throws -> ImportedValue {
        var result = try c.required(0)
        for i in 1..<max(c.node.input.count, 1) {
            result = try c.apply(.binary(fn), [result, try c.required(i)], name: i + 1 < c.node.input.count ? "\(i)" : nil)
        }
        return result
    }
}

import Foundation
