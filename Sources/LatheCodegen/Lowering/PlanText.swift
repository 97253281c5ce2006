import LatheIR

/// The kernel plan as text, one kernel a line (`lathe dump MODEL --kernels`):
///
///     k5_conv2d_epilogue  conv2d+add+relu  gemm 1x1, M=256 N=3136 K=64 a unit, 1 unit  f32[1, 64, 56, 56], ...
///         -> f32[1, 256, 56, 56]  weights gemm panels of 6 rows  2 threads: columns 3136 in chunks of 1568
///         scratch 524352 B at arena+0  in arena+8314368, weights+732864, weights+664768, arena+4300288
///         out arena+4300288 (over operand 3)
///
/// (one line in the output): its name, the model's ops it holds, its algorithm with the
/// geometry the emitter reads, its operand and result types, the layout of its constant
/// weights (when not plain), its split among threads (", or 1 thread alone" when it also has a
/// plan for one thread: Kernel.alonePlan), its scratch and where its result goes.
/// The golden plan tests compare this text.
extension KernelProgram {
    public var planText: String {
        let width = kernels.map(\.name.count).max() ?? 0
        return kernels.map { $0.planLine(nameWidth: width) }.joined(separator: "\n") + "\n"
    }
}

extension Kernel {
    func planLine(nameWidth: Int) -> String {
        var fields = [name.padding(toLength: nameWidth, withPad: " ", startingAt: 0), plan.sourceOps.joined(separator: "+")]
        fields.append(isNoOp ? "no code (in place)" : plan.algorithm.detail())
        fields.append(operands.map(\.type.description).joined(separator: ", ") + " -> " + result.type.description)
        if plan.weightLayout.isPacked { fields.append("weights " + plan.weightLayout.detail) }
        fields.append(threads > 1 ? "\(threads) threads: \(split)" + (alonePlan != nil ? ", or 1 thread alone" : "") : "1 thread")
        if let scratch { fields.append("scratch \(scratch.type.count * 4) B at \(scratch.location)") }
        fields.append("in " + operands.map(\.location.description).joined(separator: ", ") + " out \(result.location)"
                      + (inPlaceOperand.map { " (over operand \($0))" } ?? ""))
        return fields.joined(separator: "  ")
    }
}

extension WeightLayout {
    /// "gemm panels of 6 rows", "gemm column panels of 16", "winograd F(4x4,3x3) in panels of 6 rows".
    var detail: String {
        switch self {
        case .plain: return "plain"
        case let .gemmPanels(groups, _, _, panel): return "gemm panels of \(panel) rows" + (groups > 1 ? ", \(groups) groups" : "")
        case let .gemmColumnPanels(_, _, panel): return "gemm column panels of \(panel)"
        case let .winograd(tile, _, _, panel): return "winograd F(\(tile)x\(tile),3x3) in panels of \(panel) rows"
        case let .int8Rows(groups, _, _, panel): return "int8 panels of \(panel) rows" + (groups > 1 ? ", \(groups) groups" : "")
        case let .int8TapRows(groups, _, _, _, panel): return "int8 panels of \(panel) rows, tap by tap" + (groups > 1 ? ", \(groups) groups" : "")
        case let .int8TapColumns(groups, _, _, _, panel): return "int8 column panels of \(panel), tap by tap" + (groups > 1 ? ", \(groups) groups" : "")
        case let .int8Columns(_, _, panel): return "int8 column panels of \(panel)"
        }
    }
}

extension KernelAlgorithm {
    /// The algorithm and the geometry its emitter reads.
    func detail() -> String {
        let name = self.name(packed: false) ?? ""
        switch self {
        case let .winograd(w):
            return "\(name) \(w.conv.channels)->\(w.conv.outChannels) channels, \(w.tilesY)x\(w.tilesX) tiles an image, \(count(w.units, "unit")) of \(w.stripRows) tile rows"
        case let .direct(g, block):
            return "direct \(g.window), \(g.channels)->\(g.outChannels) channels" + (g.groups > 1 ? " in \(g.groups) groups" : "")
                + ", \(block.channels)x\(block.vectors) register block" + (block.partials > 1 ? " of \(block.partials) partial sums" : "") + (g.readsInPlace ? ", reads in place" : ", padded planes")
        case let .unfoldedGemm(gemm):
            let g = gemm.geometry
            return "\(name) \(g.window), M=\(g.groupOutChannels) N=\(g.outputPlane) K=\(g.unfoldedRows) a unit, \(count(g.units, "unit")) (\(g.tileRows)-row tiles)"
        case let .pointwiseGemm(gemm):
            let g = gemm.geometry
            return "\(name) 1x1, M=\(g.groupOutChannels) N=\(g.outputPlane) K=\(g.unfoldedRows) a unit, \(count(g.units, "unit"))"
        case let .pooled(p, image):
            let pool = Op.pool2d(p.pool)
            return "an image at a time: \(image.algorithm.detail()); then \(pool.name) \(pool.attributeText)"
        case let .int8Gemm(q):
            switch q.form {
            case let .convolution(g, tileRows, _):
                let tiles = g.needsUnfold ? ", \(tileRows)-row tiles" : ""
                return "\(name) \(g.window), M=\(g.groupOutChannels) N=\(g.outputPlane) K=\(g.unfoldedRows) a unit\(tiles), pad value \(g.attributes.padValue)"
            case let .product(m, n, k, batch):
                return "\(name) M=\(m) N=\(n) K=\(k)" + (batch > 1 ? ", \(count(batch, "product"))" : "")
            }
        case let .gemm(m, n, k, batch):
            return "gemm M=\(m) N=\(n) K=\(k)" + (batch > 1 ? ", \(count(batch, "product"))" : "")
        case let .recurrent(l):
            let products = l.cell.kind == .gru && !l.cell.linearBeforeReset ? "two gemms" : "a gemm"
            return "\(l.cell.kind.rawValue) \(l.steps) steps, batch \(l.batch), hidden \(l.hidden): \(products) and the gates a step"
        case let .weightGradient(g, transposed):
            let (m, n) = transposed ? (g.unfoldedRows, g.groupOutChannels) : (g.groupOutChannels, g.unfoldedRows)
            return "weight gradient \(g.window)\(transposed ? ", transposed" : ""), M=\(m) N=\(n) K=\(g.outputPlane) a group"
        case let .transposedConvolution(g):
            return "transposed convolution \(g.kernelH)x\(g.kernelW), gemm M=\(g.columnRows) N=\(g.inputPlane) K=\(g.groupChannels) then scatter"
        case .loops:
            return "loops"
        }
    }
}

extension ConvGeometry {
    /// "3x3 window, stride 2, pad [1, 1, 1, 1]" (stride and pads only when not 1 and 0).
    var window: String {
        let a = attributes
        var text = "\(kernelH)x\(kernelW)"
        if a.strides != [1, 1] { text += " stride \(a.strides.map(String.init).joined(separator: "x"))" }
        if a.pads.contains(where: { $0 != 0 }) { text += " pad \(a.pads.map(String.init).joined(separator: ","))" }
        if a.dilations != [1, 1] { text += " dilation \(a.dilations.map(String.init).joined(separator: "x"))" }
        return text
    }
}

/// "1 unit", "38 units".
private func count(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }
