import Lathe

extension Examples {
    /// The Keras MNIST MLP: 784 -> 128 relu -> 64 relu -> 10 softmax.
    public static let mnistMLP = ExampleModel(name: "mnist-mlp", summary: "Dense 784->128 relu, 128->64 relu, 64->10 softmax; batch 64", defaultBatch: 64) { g, batch in
        let x = try g.input("image", shape: [batch, 784])
        let model = mnistMLPLayers()
        return [("probs", try model(x))]
    }

    /// The Keras MNIST MLP's layers (fresh weights each call).
    public static func mnistMLPLayers() -> Sequential {
        Sequential {
            Dense(128, activation: .relu)
            Dense(64, activation: .relu)
            Dense(10, activation: .softmax)
        }
    }
}
