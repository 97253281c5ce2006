import Lathe

extension Examples {
    /// One 1024 x 1024 x 1024 matrix product (a dense layer without bias at batch 1024): how
    /// close the GEMM comes to the machine's peak, with `lathe bench gemm-1024`.
    public static let gemm1024 = ExampleModel(name: "gemm-1024", summary: "x[1024,1024] x w[1024,1024]: the GEMM benchmark", defaultBatch: 1024) { g, batch in
        let x = try g.input("x", shape: [batch, 1024])
        let w = g.constant(.random(shape: [1024, 1024], seed: 1), name: "w")
        return [("y", try x.matmul(w))]
    }
}
