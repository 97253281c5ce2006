import LatheIR

/// A graph pass: a new graph from the old one (values are never edited in place), with the
/// outputs mapped to their new values.
public protocol GraphPass {
    /// The name `lathe dump --after NAME` takes.
    var name: String { get }
    /// One line for `lathe dump --list-passes`.
    var summary: String { get }
    func run(_ graph: Graph, outputs: [ValueID]) throws -> (graph: Graph, outputs: [ValueID])
}

/// The passes in the order the compiler runs them.
public enum Pipeline {
    public static let passes: [any GraphPass] = [
        Verifier(),
        ConstantFolding(),
        IdentityRemoval(),
        BatchNormFolding(),
        ConstantFolding(),
        CommonSubexpressionElimination(),
        DeadCodeElimination(),
        Verifier(),
    ]

    /// Runs the pipeline, or its passes up to and including the first named `after`.
    public static func run(_ graph: Graph, outputs: [ValueID], after: String? = nil) throws -> (graph: Graph, outputs: [ValueID]) {
        if let after, !passes.contains(where: { $0.name == after }) {
            throw LatheError.unsupported("no pass named '\(after)'; the passes are \(passes.map(\.name).joined(separator: ", "))")
        }
        var current = (graph: graph, outputs: outputs)
        for pass in passes {
            current = try pass.run(current.graph, outputs: current.outputs)
            if pass.name == after { break }
        }
        return current
    }
}
