import LatheIR

/// A graph pass: a new graph from the old one (values are never edited in place), with the
/// outputs mapped to their new values.
public protocol GraphPass {
    /// The name `lathe dump --after NAME` takes.
    var name: String { get }
    /// One line for `lathe dump --list-passes`.
    var summary: String { get }
    func run(_ graph: Graph, outputs: [ValueID]) throws -> (graph: Graph, outputs: [ValueID])
    /// The same, noting what it fused and what it refused; most passes have nothing to note.
    func run(_ graph: Graph, outputs: [ValueID], remarks: RemarkLog) throws -> (graph: Graph, outputs: [ValueID])
}

extension GraphPass {
    public func run(_ graph: Graph, outputs: [ValueID], remarks: RemarkLog) throws -> (graph: Graph, outputs: [ValueID]) {
        try run(graph, outputs: outputs)
    }
}

/// What the fusion passes did: each fusion made, and each candidate refused with its reason.
public final class RemarkLog {
    public struct Fusion: Equatable, Sendable {
        public let kind: String
        public let nodes: [String]
        public init(kind: String, nodes: [String]) {
            self.kind = kind
            self.nodes = nodes
        }
    }

    public struct Refusal: Equatable, Sendable {
        public let candidate: String
        public let reason: String
        public init(candidate: String, reason: String) {
            self.candidate = candidate
            self.reason = reason
        }
    }

    public private(set) var fusions: [Fusion] = []
    public private(set) var refusals: [Refusal] = []

    public init() {}
    public func fused(_ kind: String, _ nodes: [String]) { fusions.append(Fusion(kind: kind, nodes: nodes)) }
    public func refused(_ candidate: String, _ reason: String) {
        let refusal = Refusal(candidate: candidate, reason: reason)
        if refusals.last != refusal { refusals.append(refusal) }
    }
}

/// The passes in the order the compiler runs them.
public enum Pipeline {
    public static let passes: [any GraphPass] = [
        Verifier(),
        ConstantFolding(),
        IdentityRemoval(),
        WholePlanePooling(),
        BatchNormFolding(),
        ConstantFolding(),
        CommonSubexpressionElimination(),
        LayerNormFusion(),
        ElementwiseFusion(),
        EpilogueFusion(),
        ConvPoolFusion(),
        DeadCodeElimination(),
        Verifier(),
    ]

    /// Runs the pipeline, or its passes up to and including the first named `after`.
    public static func run(_ graph: Graph, outputs: [ValueID], after: String? = nil, remarks: RemarkLog = RemarkLog()) throws -> (graph: Graph, outputs: [ValueID]) {
        if let after, !passes.contains(where: { $0.name == after }) {
            throw LatheError.unsupported("no pass named '\(after)'; the passes are \(passes.map(\.name).joined(separator: ", "))")
        }
        var current = (graph: graph, outputs: outputs)
        for pass in passes {
            current = try pass.run(current.graph, outputs: current.outputs, remarks: remarks)
            if pass.name == after { break }
        }
        return current
    }
}
