import Lathe

/// A seed model, built from the DSL: what `lathe dump/run NAME` and the demo use, and what
/// the end-to-end tests check against the interpreter.
public struct ExampleModel: Sendable {
    public let name: String
    public let summary: String
    public let defaultBatch: Int
    let build: @Sendable (_ graph: Graph, _ batch: Int) throws -> [(name: String, value: Tensor)]

    public init(name: String, summary: String, defaultBatch: Int,
                build: @escaping @Sendable (_ graph: Graph, _ batch: Int) throws -> [(name: String, value: Tensor)]) {
        self.name = name
        self.summary = summary
        self.defaultBatch = defaultBatch
        self.build = build
    }

    /// Builds the model on a new graph (weights from `seed`) and returns the graph and its named outputs.
    public func graph(batch: Int? = nil, seed: UInt64 = 0) throws -> (graph: Graph, outputs: [(name: String, value: Tensor)]) {
        let g = Graph(seed: seed)
        return (g, try build(g, batch ?? defaultBatch))
    }
}

public enum Examples {
    public static let all: [ExampleModel] = [simpleNN, mnistMLP, mnistCNN, lstmTimeSeries, transformerEncoder, convAutoencoder,
                                             dcganGenerator, dcganDiscriminator]

    public static func named(_ name: String) -> ExampleModel? { all.first { $0.name == name } }
}
