/// The interpreter's kernels for the ops only training graphs use.
extension Interpreter {
    /// Max pooling sends each dy to the first largest tap of its window (the one the forward
    /// pass kept); average pooling spreads dy / divisor over the window's taps.
    static func pool2dGrad(_ x: HostTensor, _ dy: HostTensor, _ a: Pool2DAttributes) -> HostTensor {
        let (h, w) = (x.shape[2], x.shape[3])
        let (oh, ow) = (dy.shape[2], dy.shape[3])
        var dx = [Double](repeating: 0, count: x.count)
        for plane in 0..<(x.shape[0] * x.shape[1]) {
            for y in 0..<oh {
                for xo in 0..<ow {
                    let g = Double(dy.scalars[(plane * oh + y) * ow + xo])
                    var taps: [Int] = []
                    var best = -Float.infinity, bestTap = -1
                    for ky in 0..<a.kernel[0] {
                        for kx in 0..<a.kernel[1] {
                            let iy = y * a.strides[0] - a.pads[0] + ky * a.dilations[0]
                            let ix = xo * a.strides[1] - a.pads[1] + kx * a.dilations[1]
                            guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                            let at = (plane * h + iy) * w + ix
                            taps.append(at)
                            if bestTap < 0 || x.scalars[at] > best { (best, bestTap) = (x.scalars[at], at) }
                        }
                    }
                    if a.kind == .max {
                        if bestTap >= 0 { dx[bestTap] += g }
                    } else {
                        let divisor = Double(a.countIncludePad ? a.kernel[0] * a.kernel[1] : taps.count)
                        for t in taps { dx[t] += g / divisor }
                    }
                }
            }
        }
        var out = HostTensor(shape: x.shape)
        for i in dx.indices { out.scalars[i] = Float(dx[i]) }
        return out
    }

    static func conv2dWeightGrad(_ x: HostTensor, _ dy: HostTensor, _ a: Conv2DAttributes, shape: [Int]) -> HostTensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oc, oh, ow) = (dy.shape[1], dy.shape[2], dy.shape[3])
        let (cg, ocg, kh, kw) = (c / a.groups, oc / a.groups, shape[2], shape[3])
        var out = HostTensor(shape: shape)
        for o in 0..<oc {
            let group = o / ocg
            for ci in 0..<cg {
                for i in 0..<kh {
                    for j in 0..<kw {
                        var sum = 0.0
                        for image in 0..<n {
                            for y in 0..<oh {
                                let iy = y * a.strides[0] - a.pads[0] + i * a.dilations[0]
                                guard iy >= 0, iy < h else { continue }
                                for xo in 0..<ow {
                                    let ix = xo * a.strides[1] - a.pads[1] + j * a.dilations[1]
                                    guard ix >= 0, ix < w else { continue }
                                    sum += Double(dy.scalars[((image * oc + o) * oh + y) * ow + xo]) * Double(x.scalars[((image * c + group * cg + ci) * h + iy) * w + ix])
                                }
                            }
                        }
                        out.scalars[((o * cg + ci) * kh + i) * kw + j] = Float(sum)
                    }
                }
            }
        }
        return out
    }

    static func gatherGrad(indices: [Int], dy: HostTensor, axis: Int, shape: [Int]) -> HostTensor {
        var sums = [Double](repeating: 0, count: shape.reduce(1, *))
        forEachGathered(dataShape: shape, axis: axis, indices: indices) { data, gathered in sums[data] += Double(dy.scalars[gathered]) }
        var out = HostTensor(shape: shape)
        for k in sums.indices { out.scalars[k] = Float(sums[k]) }
        return out
    }

    static func dropoutMask(shape: [Int], rate: Float, seed: UInt32, step: HostTensor) -> HostTensor {
        let mask = DropoutMask(rate: rate, seed: seed)
        let counter = stepCounter(step)
        var out = HostTensor(shape: shape)
        for i in out.scalars.indices { out.scalars[i] = mask.value(step: counter, index: UInt32(truncatingIfNeeded: i)) }
        return out
    }
}

/// The dropout mask's generator, shared by the interpreter and the code generator so that both
/// draw the same bits: CounterHash over the element index, the seed and the step.
public struct DropoutMask: Sendable {
    public let seed: UInt32
    /// An element is kept when its hash's top 24 bits are at least this.
    public let threshold: UInt32
    public let scale: Float

    public init(rate: Float, seed: UInt32) {
        self.seed = seed
        threshold = UInt32((Double(rate) * 16_777_216).rounded())
        scale = 1 / (1 - rate)
    }

    public func value(step: UInt32, index: UInt32) -> Float { CounterHash(seed: seed).value(step: step, index: index) >> 8 >= threshold ? scale : 0 }
}
