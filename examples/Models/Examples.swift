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

    /// Models for benchmarks only: too large for the interpreter that the tests compare with.
    public static let benchmarks: [ExampleModel] = [gemm1024]

    /// Every built-in model `lathe` knows by name.
    public static var builtIn: [ExampleModel] { all + benchmarks }

    public static func named(_ name: String) -> ExampleModel? { builtIn.first { $0.name == name } }
}
