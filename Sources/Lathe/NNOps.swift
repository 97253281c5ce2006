/// Neural-network operations on symbolic tensors, each one IR node.
extension Tensor {
    /// x[M, K] * weight[K, N] + bias[N].
    public func dense(weight: Tensor, bias: Tensor? = nil, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try apply(.dense, [weight] + (bias.map { [$0] } ?? []), SourceLocation(fileID: fileID, line: line))
    }

    /// NCHW convolution with weight [OC, IC/groups, KH, KW] and an optional bias [OC].
    /// `pads` is [top, left, bottom, right].
    public func conv2d(weight: Tensor, bias: Tensor? = nil, strides: [Int] = [1, 1], pads: [Int] = [0, 0, 0, 0],
                       dilations: [Int] = [1, 1], groups: Int = 1, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        let attributes = Conv2DAttributes(strides: strides, pads: pads, dilations: dilations, groups: groups)
        return try apply(.conv2d(attributes), [weight] + (bias.map { [$0] } ?? []), SourceLocation(fileID: fileID, line: line))
    }

    public func maxPool2d(kernel: [Int], strides: [Int]? = nil, pads: [Int] = [0, 0, 0, 0], fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try apply(.pool2d(Pool2DAttributes(kind: .max, kernel: kernel, strides: strides ?? kernel, pads: pads)), [], SourceLocation(fileID: fileID, line: line))
    }

    /// Average pooling; padded cells are left out of the mean unless `countIncludePad`.
    public func avgPool2d(kernel: [Int], strides: [Int]? = nil, pads: [Int] = [0, 0, 0, 0], countIncludePad: Bool = false,
                          fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        let attributes = Pool2DAttributes(kind: .average, kernel: kernel, strides: strides ?? kernel, pads: pads, countIncludePad: countIncludePad)
        return try apply(.pool2d(attributes), [], SourceLocation(fileID: fileID, line: line))
    }

    public func globalAvgPool(fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try apply(.globalAveragePool, [], SourceLocation(fileID: fileID, line: line))
    }

    /// Inference BatchNorm over axis 1 with learned scale and bias and running mean and variance.
    public func batchNorm(scale: Tensor, bias: Tensor, mean: Tensor, variance: Tensor, epsilon: Float = 1e-5,
                          fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try apply(.batchNorm(epsilon: epsilon), [scale, bias, mean, variance], SourceLocation(fileID: fileID, line: line))
    }

    /// Dropout: the identity in a graph compiled for inference.
    public func dropout(rate: Float, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        try apply(.dropout(rate: rate), [], SourceLocation(fileID: fileID, line: line))
    }
}
