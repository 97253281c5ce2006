import CLLVM
import LatheIR

extension IRBuilder {
    /// LRN across channels: for each image and channel, one vector loop over the spatial plane
    /// sums the squares of the `size` neighbouring channels. The window's offsets are unrolled;
    /// a neighbour outside 0..<C reads the centre channel and is weighted 0.
    func localResponseNorm(size: Int, alpha: Float, beta: Float, bias: Float, output: LLVMValue, input: LLVMValue, shape: [Int]) {
        let channels = shape[1]
        let plane = shape.dropFirst(2).reduce(1, *)
        let before = (size - 1) / 2, after = size - 1 - before
        loop(0, shape[0], unroll: false) { n in
            loop(0, channels, unroll: false) { c in
                let imageBase = imul(n, int(channels))
                let center = iadd(imageBase, c)
                var views = [StridedView(base: pointer(input, imul(center, int(plane))), strides: [1])]
                var weights: [LLVMValue] = []
                for d in -before...after where d != 0 {
                    let k = iadd(c, int(d))
                    let inside = LLVMBuildICmp(builder, LLVMIntULT, k, int(channels), "")!
                    let channel = LLVMBuildSelect(builder, inside, iadd(imageBase, k), center, "")!
                    views.append(StridedView(base: pointer(input, imul(channel, int(plane))), strides: [1]))
                    weights.append(LLVMBuildUIToFP(builder, inside, f32, "")!)
                }
                elementwise(shape: [plane], output: StridedView(base: pointer(output, imul(center, int(plane))), strides: [1]), inputs: views) { v, lanes in
                    var sum = mul(v[0], v[0])
                    for (k, weight) in weights.enumerated() {
                        sum = fma(mul(v[k + 1], v[k + 1]), splat(weight, lanes: lanes), sum)
                    }
                    let scale = fma(sum, float(alpha / Float(size), lanes: lanes), float(bias, lanes: lanes))
                    return div(v[0], intrinsic("llvm.pow", scale, float(beta, lanes: lanes)))
                }
            }
        }
    }
}
