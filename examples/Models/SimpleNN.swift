import Lathe

extension Examples {
    /// Linear 10 -> 64, ReLU, Linear 64 -> 1, batch 256: the smallest regression network.
    public static let simpleNN = ExampleModel(name: "simple-nn", summary: "Dense 10->64 relu, 64->1; batch 256", defaultBatch: 256) { g, batch in
        let x = try g.input("x", shape: [batch, 10])
        let model = simpleNNLayers()
        return [("y", try model(x))]
    }

    /// SimpleNN's layers (fresh weights each call).
    public static func simpleNNLayers() -> Sequential {
        Sequential {
            Dense(64, activation: .relu)
            Dense(1)
        }
    }
}
