import Lathe

extension Examples {
    /// The Keras MNIST CNN: two 3x3 convolution + 2x2 max-pool stages, then two dense layers.
    public static let mnistCNN = ExampleModel(name: "mnist-cnn", summary: "Conv 32 3x3 relu, pool, Conv 64 3x3 relu, pool, Dense 128 relu, Dense 10 softmax; 1x28x28; batch 1", defaultBatch: 1) { g, batch in
        let x = try g.input("image", shape: [batch, 1, 28, 28])
        let model = mnistCNNLayers()
        return [("probs", try model(x))]
    }

    /// The Keras MNIST CNN's layers (fresh weights each call). With `dropout`, Keras'
    /// mnist_cnn regularization: Dropout(0.25) after the convolutions, Dropout(0.5) after
    /// Dense 128 (identities in an inference graph; the weights keep their names).
    public static func mnistCNNLayers(dropout: Bool = false) -> Sequential {
        Sequential {
            Conv2D(32, kernel: 3, activation: .relu)
            MaxPool2D(2)
            Conv2D(64, kernel: 3, activation: .relu)
            MaxPool2D(2)
            if dropout { Dropout(0.25) }
            Flatten()
            Dense(128, activation: .relu)
            if dropout { Dropout(0.5) }
            Dense(10, activation: .softmax)
        }
    }
}
