import Foundation
import LatheCodegen
import LathePasses

/// What the compiler made of a model, without generating machine code: the kernels in order,
/// the fusions, and the memory plan. `lathe inspect` prints it; its JSON form is documented in
/// docs/inspect.md and stable.
public struct Inspection: Codable, Sendable {
    public struct KernelInfo: Codable, Sendable {
        public let name: String
        /// The IR ops the kernel computes (several once fusion merges them).
        public let ops: [String]
        public let shape: [Int]
        public let flops: Int
        public let bytes: Int
    }

    public struct Fusion: Codable, Sendable {
        public let kind: String
        public let nodes: [String]
    }

    public struct Refusal: Codable, Sendable {
        public let candidate: String
        public let reason: String
    }

    public struct Memory: Codable, Sendable {
        public let arenaBytes: Int
        public let lowerBoundBytes: Int
        public let naiveBytes: Int
        public let weightsBytes: Int
        public let buffers: [PlannedBuffer]
    }

    public let kernels: [KernelInfo]
    public let fusions: [Fusion]
    public let refused: [Refusal]
    public let memory: Memory

    /// Runs the passes and the planner on the graph (which it does not change).
    public init(_ graph: Graph, outputs: [(name: String, value: ValueID)]) throws {
        let remarks = RemarkLog()
        let optimized = try Pipeline.run(graph, outputs: outputs.map(\.value), remarks: remarks)
        let program = try KernelProgram.build(optimized.graph, outputs: Array(zip(outputs.map(\.name), optimized.outputs)))
        let groups = Dictionary(remarks.fusions.filter { $0.kind == "elementwise" }.map { ($0.nodes.last!, $0.nodes) }, uniquingKeysWith: { a, _ in a })
        let opByName = Dictionary(graph.nodes.map { ($0.name, $0.op.name) }, uniquingKeysWith: { a, _ in a })
        kernels = program.kernels.map { k in
            let name = optimized.graph[k.node].name
            let ops: [String]
            switch k.work {
            case .node(.fusedElementwise): ops = (groups[name] ?? [name]).map { opByName[$0] ?? $0 }
            case let .node(.epilogue(base, _, _)): ops = [base.name] + (groups[name] ?? [name]).map { opByName[$0] ?? $0 }
            case let .node(o): ops = [o.name]
            case .copy: ops = ["copy"]
            }
            return KernelInfo(name: k.name, ops: ops, shape: k.result.type.shape, flops: k.flops, bytes: k.bytesMoved)
        }
        fusions = remarks.fusions.map { Fusion(kind: $0.kind, nodes: $0.nodes) }
        refused = remarks.refusals.map { Refusal(candidate: $0.candidate, reason: $0.reason) }
        memory = Memory(arenaBytes: program.arenaBytes, lowerBoundBytes: program.lowerBoundBytes, naiveBytes: program.naiveBytes,
                        weightsBytes: program.weightsBytes, buffers: program.buffers)
    }

    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// The report as text: a kernel table, then the memory plan.
    public var text: String {
        var lines = ["kernels (\(kernels.count)):"]
        let width = kernels.map(\.name.count).max() ?? 0
        for k in kernels {
            lines.append("  \(k.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(k.ops.joined(separator: "+")) -> f32\(k.shape)  \(k.flops) flop  \(k.bytes) bytes")
        }
        if fusions.isEmpty && refused.isEmpty { lines.append("fusions: none") }
        for f in fusions { lines.append("fused \(f.kind): \(f.nodes.joined(separator: " + "))") }
        for r in refused { lines.append("not fused \(r.candidate): \(r.reason)") }
        let m = memory
        let ratio = m.lowerBoundBytes > 0 ? Double(m.arenaBytes) / Double(m.lowerBoundBytes) : 1
        lines.append(String(format: "memory: arena %d bytes, lower bound %d (arena / bound %.3f), naive sum %d; weights %d",
                            m.arenaBytes, m.lowerBoundBytes, ratio, m.naiveBytes, m.weightsBytes))
        for b in m.buffers.sorted(by: { ($0.offset, $0.firstUse) < ($1.offset, $1.firstUse) }) {
            lines.append("  \(b.name): offset \(b.offset), \(b.bytes) bytes, steps \(b.firstUse)...\(b.lastUse)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
