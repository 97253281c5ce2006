import LatheCodegen
import LatheIR
import LathePasses

/// What the front half of the compiler makes of a model: the graph passes (and what they fused
/// or refused to fuse), then a plan for every kernel and the memory plan (KernelProgram). Both
/// `Compiler.compile` and `lathe inspect` start here; a compiled model keeps it, so that
/// `bench --profile` reports the kernels of the very compile it timed.
public struct LoweredModel: Sendable {
    public let program: KernelProgram
    public let fusions: [RemarkLog.Fusion]
    public let refusals: [RemarkLog.Refusal]
    /// For each kernel, the name of the operand whose buffer its result overwrites, if any.
    public let inPlaceOf: [String?]
}

extension Compiler {
    /// Runs the passes (or, without `optimize`, only the verifier) and plans the kernels for
    /// `threads` threads and the host's vector width (or `vectorWidth`). The graph is not changed.
    public static func lower(_ graph: Graph, outputs: [(name: String, value: ValueID)], optimize: Bool = true, threads: Int = 1,
                             vectorWidth: Int? = nil) throws -> LoweredModel {
        try lowerKeepingGraph(graph, outputs: outputs, optimize: optimize, threads: threads,
                              vectorWidth: vectorWidth ?? HostTarget.detect().vectorWidth).lowered
    }

    /// Also the optimized graph, whose constants the weights region is laid out from.
    static func lowerKeepingGraph(_ graph: Graph, outputs: [(name: String, value: ValueID)], optimize: Bool, threads: Int,
                                  vectorWidth: Int) throws -> (lowered: LoweredModel, graph: Graph) {
        let remarks = RemarkLog()
        let optimized = try Pipeline.run(graph, outputs: outputs.map(\.value), after: optimize ? nil : Verifier().name, remarks: remarks)
        let program = try KernelProgram.build(optimized.graph, outputs: Array(zip(outputs.map(\.name), optimized.outputs)),
                                              threads: threads, vectorWidth: vectorWidth)
        let g = optimized.graph
        let inPlaceOf = program.kernels.map { k in k.inPlaceOperand.map { g[g[k.node].operands[$0]].name } }
        return (LoweredModel(program: program, fusions: remarks.fusions, refusals: remarks.refusals, inPlaceOf: inPlaceOf), g)
    }
}
