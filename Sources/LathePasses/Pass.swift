import LatheIR

/// A graph pass: reads the graph, may rewrite it, throws on a broken invariant.
/// Later passes (folding, fusion) rewrite; for now the pipeline holds the verifier.
public protocol GraphPass {
    var name: String { get }
    func run(_ graph: Graph, outputs: [ValueID]) throws
}

/// The passes in the order the compiler runs them. `lathe dump --after NAME` prints the IR
/// after any of them.
public enum Pipeline {
    public static let passes: [any GraphPass] = [Verifier()]

    public static func run(_ graph: Graph, outputs: [ValueID]) throws {
        for pass in passes { try pass.run(graph, outputs: outputs) }
    }
}
