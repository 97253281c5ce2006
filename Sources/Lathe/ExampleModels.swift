/// The seed models, built from the DSL: what `lathe dump/run NAME` and the demo use, and what
/// the end-to-end tests check against the interpreter.
public struct ExampleModel: Sendable {
    public let name: String
    public let summary: String
    public let defaultBatch: Int
    let build: @Sendable (_ graph: Graph, _ batch: Int) throws -> [(name: String, value: Tensor)]

    /// Builds the model on a new graph (weights from `seed`) and returns the graph and its named outputs.
    public func graph(batch: Int? = nil, seed: UInt64 = 0) throws -> (graph: Graph, outputs: [(name: String, value: Tensor)]) {
        let g = Graph(seed: seed)
        return (g, try build(g, batch ?? defaultBatch))
    }
}

public enum Examples {
    public static let all: [ExampleModel] = [simpleNN, mnistMLP, mnistCNN]

    public static func named(_ name: String) -> ExampleModel? { all.first { $0.name == name } }

    /// Linear 10 -> 64, ReLU, Linear 64 -> 1, batch 256.
    public static let simpleNN = ExampleModel(name: "simple-nn", summary: "Dense 10->64 relu, 64->1; batch 256", defaultBatch: 256) { g, batch in
        let x = try g.input("x", shape: [batch, 10])
        let model = Sequential {
            Dense(64, activation: .relu)
            Dense(1)
        }
        return [("y", try model(x))]
    }

    /// The Keras MNIST MLP: 784 -> 128 relu -> 64 relu -> 10 softmax.
    public static let mnistMLP = ExampleModel(name: "mnist-mlp", summary: "Dense 784->128 relu, 128->64 relu, 64->10 softmax; batch 64", defaultBatch: 64) { g, batch in
        let x = try g.input("image", shape: [batch, 784])
        let model = Sequential {
            Dense(128, activation: .relu)
            Dense(64, activation: .relu)
            Dense(10, activation: .softmax)
        }
        return [("probs", try model(x))]
    }

    /// The Keras MNIST CNN: two 3x3 conv + 2x2 max-pool stages, then two dense layers.
    public static let mnistCNN = ExampleModel(name: "mnist-cnn", summary: "Conv 32 3x3 relu, pool, Conv 64 3x3 relu, pool, Dense 128 relu, Dense 10 softmax; 1x28x28", defaultBatch: 1) { g, batch in
        let x = try g.input("image", shape: [batch, 1, 28, 28])
        let model = Sequential {
            Conv2D(32, kernel: 3, activation: .relu)
            MaxPool2D(2)
            Conv2D(64, kernel: 3, activation: .relu)
            MaxPool2D(2)
            Flatten()
            Dense(128, activation: .relu)
            Dense(10, activation: .softmax)
        }
        return [("probs", try model(x))]
    }
}
