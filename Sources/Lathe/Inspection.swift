import Foundation
import LatheCodegen
import LatheRuntime

/// What the compiler made of a model, without generating machine code: the kernels in order,
/// the fusions, and the memory plan. `lathe inspect` prints it; its JSON form is documented in
/// docs/inspect.md and stable.
public struct Inspection: Codable, Sendable {
    public struct KernelInfo: Codable, Sendable {
        public let name: String
        /// The IR ops the kernel computes (several once fusion merges them).
        public let ops: [String]
        /// The result's element type ("f32", "i64", "bool", ...) and shape.
        public let dtype: String
        public let shape: [Int]
        public let flops: Int
        public let bytes: Int
        /// The operand whose buffer the result overwrites, when the kernel works in place.
        public let inPlaceOf: String?
        /// How the kernel is split among threads, when it is (`lathe inspect --threads N`).
        public let split: String?
        /// How a convolution or matrix product is computed ("winograd F(4x4,3x3)", "direct",
        /// "im2col+gemm, packed weights", ...).
        public let algorithm: String?
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

    /// Runs the passes (or, without `optimize`, only the verifier) and the planner on the graph,
    /// which it does not change (Compiler.lower, the front half a compile runs).
    public init(_ graph: Graph, outputs: [(name: String, value: ValueID)], optimize: Bool = true, threads: Int = 1) throws {
        self.init(try Compiler.lower(graph, outputs: outputs, optimize: optimize, threads: threads))
    }

    /// The report of a model already lowered: a compiled model's `lowered`, say.
    public init(_ lowered: LoweredModel) {
        let program = lowered.program
        kernels = zip(program.kernels, lowered.inPlaceOf).map { k, inPlaceOf in
            KernelInfo(name: k.name, ops: k.plan.sourceOps, dtype: k.result.type.dtype.rawValue, shape: k.result.type.shape, flops: k.flops, bytes: k.bytesMoved, inPlaceOf: inPlaceOf,
                       split: k.threads > 1 ? "\(k.threads) threads: \(k.split)" : nil, algorithm: k.algorithm)
        }
        fusions = lowered.fusions.map { Fusion(kind: $0.kind, nodes: $0.nodes) }
        refused = lowered.refusals.map { Refusal(candidate: $0.candidate, reason: $0.reason) }
        memory = Memory(arenaBytes: program.arenaBytes, lowerBoundBytes: program.lowerBoundBytes, naiveBytes: program.naiveBytes,
                        weightsBytes: program.weightsBytes, buffers: program.buffers)
    }

    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// The memory plan as an SVG chart: kernel steps across, arena offsets up; each buffer a box
    /// over its life at its place. The dashed line is the lower bound.
    public var svg: String {
        let m = memory
        let steps = max((m.buffers.map(\.lastUse).max() ?? 0) + 1, 1)
        let (width, height, margin) = (900.0, 420.0, 50.0)
        let top = Double(max(m.arenaBytes, m.lowerBoundBytes, 1))
        func x(_ step: Int) -> Double { margin + Double(step) / Double(steps) * (width - 2 * margin) }
        func y(_ offset: Int) -> Double { height - margin - Double(offset) / top * (height - 2 * margin) }
        func escaped(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        var parts = [
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"Helvetica\" font-size=\"11\">",
            "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            "<text x=\"\(margin)\" y=\"20\">arena \(m.arenaBytes) bytes, lower bound \(m.lowerBoundBytes), naive sum \(m.naiveBytes)</text>",
            "<text x=\"\(width / 2)\" y=\"\(height - 12)\" text-anchor=\"middle\">kernel step</text>",
            "<text x=\"14\" y=\"\(height / 2)\" transform=\"rotate(-90 14 \(height / 2))\" text-anchor=\"middle\">offset</text>",
        ]
        for (i, b) in m.buffers.enumerated() {
            let hue = (i * 47) % 360
            let (x0, x1, y0, y1) = (x(b.firstUse), x(b.lastUse + 1), y(b.offset + b.bytes), y(b.offset))
            parts.append(String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"hsl(%d,60%%,75%%)\" stroke=\"#333\" stroke-width=\"0.5\"><title>%@: offset %d, %d bytes, steps %d...%d</title></rect>",
                                x0, y0, max(x1 - x0, 1), max(y1 - y0, 1), hue, escaped(b.name), b.offset, b.bytes, b.firstUse, b.lastUse))
        }
        let bound = y(m.lowerBoundBytes)
        parts.append(String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"red\" stroke-dasharray=\"4 3\"/>", margin, width - margin, bound, bound))
        parts.append(String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"black\"/>", margin, margin, width - 2 * margin, height - 2 * margin))
        parts.append("</svg>")
        return parts.joined(separator: "\n") + "\n"
    }

    /// The report as text: a kernel table, then the memory plan.
    public var text: String {
        var lines = ["kernels (\(kernels.count)):"]
        let width = kernels.map(\.name.count).max() ?? 0
        for k in kernels {
            lines.append("  \(k.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(k.ops.joined(separator: "+")) -> \(k.dtype)\(k.shape)  \(k.flops) flop  \(k.bytes) bytes" + (k.algorithm.map { "  by \($0)" } ?? "") + (k.inPlaceOf.map { "  in place of \($0)" } ?? "")
                         + (k.split.map { "  [\($0)]" } ?? ""))
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
