import Foundation
import LatheIR

/// DFT and STFT as matrix products: along the transformed axis, the real and imaginary parts
/// times constant cosine and sine matrices (the transform's length known at import), as
/// NumPy's fft, ifft and irfft compute them for ONNX's reference:
///
///   forward:        Y_k = sum_m x_m e^{-2 pi i k m / L}          (onesided: k up to L/2)
///   inverse:        y_n = (1/L) sum_k X_k e^{+2 pi i k n / L}
///   inverse onesided (irfft): real y_n = (1/L) sum_k a_k Re(X_k e^{+2 pi i k n / L}), a_k = 2
///                   but for the bins k = 0 and k = L/2, which count once
///
/// An input shorter than L is taken as padded with zeros, a longer one as truncated. STFT
/// gathers its frames, applies the window and transforms each.
extension OpHandlers {
    static let spectral: [String: Handler] = [
        "DFT": { c in
            let x = try c.required(0)
            let rank = c.shape(x).count
            let axisGiven = c.opset >= 20 ? try c.constantInput(2, "axis")?.intValues.first ?? -2 : c.node.int("axis", 1)
            let axis = try c.axis(axisGiven, rank: rank)
            guard axis < rank - 1, [1, 2].contains(c.shape(x).last) else { throw c.fail("needs [..., 1 or 2] with the transformed axis before the last, not \(c.shape(x)) on axis \(axis)") }
            let inverse = c.node.int("inverse", 0) != 0, onesided = c.node.int("onesided", 0) != 0
            let given = try c.constantInput(1, "dft_length")?.intValues.first
            let length = given ?? (inverse && onesided ? 2 * (c.shape(x)[axis] - 1) : c.shape(x)[axis])
            guard length > 0 else { throw c.fail("has a transform length of \(length)") }
            return [try dft(x, axis: axis, length: length, inverse: inverse, onesided: onesided, c)]
        },
        "STFT": { c in
            let signal = try c.required(0)
            let shape = c.shape(signal)
            guard shape.count == 3, [1, 2].contains(shape[2]) else { throw c.fail("needs a signal [batch, length, 1 or 2], not \(shape)") }
            guard let step = try c.constantInput(1, "frame_step")?.intValues.first, step > 0 else { throw c.fail("needs a positive frame_step") }
            let window = try c.input(2)
            let frameLength = try c.constantInput(3, "frame_length")?.intValues.first ?? window.map { c.shape($0).reduce(1, *) }
            guard let frameLength, frameLength > 0, frameLength <= shape[1] else { throw c.fail("needs a frame_length (or window) of 1 to \(shape[1])") }
            if let window, c.shape(window).reduce(1, *) != frameLength { throw c.fail("has a window of \(c.shape(window)) for frames of \(frameLength)") }
            let frames = (shape[1] - frameLength) / step + 1
            let positions = (0..<frames).flatMap { f in (0..<frameLength).map { Int64(f * step + $0) } }
            var framed = try c.apply(.gather(axis: 1), [signal, .constant(ConstantTensor(shape: [frames, frameLength], ints: positions))], name: "frames")
            if let window {
                let w = try reshape(try cast(window, to: c.dtype(signal), c), to: [1, 1, frameLength, 1], c)
                framed = try c.apply(.binary(.mul), [framed, w], name: "windowed")
            }
            let onesided = c.node.int("onesided", 1) != 0 && shape[2] == 1
            return [try dft(framed, axis: 2, length: frameLength, inverse: false, onesided: onesided, c)]
        },
    ]

    /// The transform of x [..., 1 or 2] along `axis`; [..., 2] out, or [..., 1] for irfft.
    private static func dft(_ x: ImportedValue, axis: Int, length: Int, inverse: Bool, onesided: Bool, _ c: ImportContext) throws -> ImportedValue {
        let type = c.dtype(x)
        let x32 = try cast(x, to: .float32, c)
        let shape = c.shape(x32), rank = shape.count
        let parts = shape[rank - 1]
        // The real and imaginary parts, the transformed axis last.
        var perm = Array(0..<(rank - 1))
        perm.remove(at: axis)
        perm.append(axis)
        func part(_ k: Int) throws -> ImportedValue {
            var (starts, ends) = (Array(repeating: 0, count: rank), shape)
            (starts[rank - 1], ends[rank - 1]) = (k, k + 1)
            let sliced = try reshape(try c.apply(.slice(starts: starts, ends: ends, steps: Array(repeating: 1, count: rank)), [x32], name: "part\(k)"), to: Array(shape.dropLast()), c)
            return perm == Array(0..<(rank - 1)) ? sliced : try c.apply(.transpose(perm: perm), [sliced], name: "part\(k)_last")
        }
        let re = try part(0), im = parts == 2 ? try part(1) : nil
        let inputs = shape[axis]
        let outputs = inverse ? length : (onesided ? length / 2 + 1 : length)
        /// [inputs, outputs]: f(row, column) where the row is within the transform, else 0.
        func matrix(_ f: (Int, Int) -> Double) -> ImportedValue {
            var v = [Float](repeating: 0, count: inputs * outputs)
            let rows = inverse && onesided ? min(inputs, length / 2 + 1) : min(inputs, length)
            for m in 0..<rows { for k in 0..<outputs { v[m * outputs + k] = Float(f(m, k)) } }
            return .constant(ConstantTensor(shape: [inputs, outputs], floats: v))
        }
        let turn = 2 * Double.pi / Double(length)
        func angle(_ m: Int, _ k: Int) -> Double { turn * Double((m * k) % length) }
        func product(_ v: ImportedValue?, _ m: ImportedValue, _ name: String) throws -> ImportedValue? {
            try v.map { try c.apply(.matmul, [$0, m], name: name) }
        }
        func sum(_ a: ImportedValue?, _ b: ImportedValue?, _ name: String) throws -> ImportedValue {
            guard let a else { return b! }
            guard let b else { return a }
            return try c.apply(.binary(.add), [a, b], name: name)
        }
        var outParts: [ImportedValue]
        if inverse && onesided {
            // Each bin counts twice but the first and, for an even length, the middle one.
            func weight(_ k: Int) -> Double { k == 0 || 2 * k == length ? 1 : 2 }
            let cosine = matrix { k, n in weight(k) * cos(angle(k, n)) / Double(length) }
            let sine = matrix { k, n in -weight(k) * sin(angle(k, n)) / Double(length) }
            outParts = [try sum(try product(re, cosine, "re_cos"), try product(im, sine, "im_sin"), "real")]
        } else {
            let scale = inverse ? 1 / Double(length) : 1, sign: Double = inverse ? 1 : -1
            let cosine = matrix { m, k in cos(angle(m, k)) * scale }, sine = matrix { m, k in sign * sin(angle(m, k)) * scale }
            let negatedSine = matrix { m, k in -sign * sin(angle(m, k)) * scale }
            // (re + i im)(cos + i sign sin) = re cos - im sign sin + i (re sign sin + im cos)
            outParts = [try sum(try product(re, cosine, "re_cos"), try product(im, negatedSine, "im_sin"), "real"),
                        try sum(try product(re, sine, "re_sin"), try product(im, cosine, "im_cos"), "imaginary")]
        }
        // Back to the input's axis order, the parts stacked last.
        var back = Array(repeating: 0, count: rank - 1)
        for (i, p) in perm.enumerated() { back[p] = i }
        let restored = try outParts.enumerated().map { k, v -> ImportedValue in
            let ordered = back == Array(0..<(rank - 1)) ? v : try c.apply(.transpose(perm: back), [v], name: "out\(k)")
            return try reshape(ordered, to: c.shape(ordered) + [1], c)
        }
        let result = restored.count == 1 ? restored[0] : try c.apply(.concat(axis: rank - 1), restored, name: type == .float32 ? nil : "f32")
        return try cast(result, to: type, c)
    }
}
