import LatheIR

/// How a constant is laid out in the weights region.
public enum WeightLayout: Hashable, Sendable {
    case plain
    /// A convolution's weights [OC, ICg*KH*KW] as the packed GEMM reads its A: for each group,
    /// its output channels in panels of `panel` rows (the last padded with zeros), each panel
    /// stored [depth][panel].
    case gemmPanels(groups: Int, rows: Int, depth: Int, panel: Int)
    /// A matrix product's constant right operand [K, N] as the packed GEMM reads its B: panels of
    /// `panel` columns (the last padded with zeros), each stored [K][panel].
    case gemmColumnPanels(depth: Int, columns: Int, panel: Int)
    /// A 3x3 convolution's weights transformed for Winograd's F(tile x tile, 3x3): α² matrices
    /// [OC, IC], each in the panel layout above (WinogradGeometry).
    case winograd(tile: Int, outChannels: Int, inChannels: Int, panel: Int)
    /// A quantized convolution's int8 weights [OC, ICg*KH*KW] as the integer GEMM reads its A
    /// (Int8Gemm.swift): for each group, its output channels in panels of `panel` rows, each
    /// panel [depth/4][panel] words of 4 bytes, a row's 4 consecutive weights along K in a word
    /// (K padded with zeros to a multiple of 4, the last panel's rows with zero rows).
    case int8Rows(groups: Int, rows: Int, depth: Int, panel: Int)
    /// A quantized convolution's int8 weights [OC, ICg, KH, KW] as the integer GEMM reads its A
    /// when B is the input's shifted copies (Lowering/Int8Plan.swift): the panels of `int8Rows`
    /// over a K that runs tap by tap (`taps` = KH x KW), each tap's `channels` padded with zeros
    /// to a multiple of 4, so that a word holds 4 channels of one tap.
    case int8TapRows(groups: Int, rows: Int, channels: Int, taps: Int, panel: Int)
    /// The same weights as the integer GEMM reads its B when A is the input's shifted copies with
    /// the output pixels as rows: for each group, its output channels in panels of `panel`
    /// columns, each [K/4][panel] words over the same K as `int8TapRows`.
    case int8TapColumns(groups: Int, columns: Int, channels: Int, taps: Int, panel: Int)
    /// A quantized product's int8 right operand [K, N] as the integer GEMM reads its B: panels of
    /// `panel` columns, each [depth/4][panel] words, a column's 4 consecutive values along K in a
    /// word (zero-padded as above).
    case int8Columns(depth: Int, columns: Int, panel: Int)

    /// The weights are in a GEMM's panel layout, not as the graph holds them.
    public var isPacked: Bool { self != .plain }

    var panels: WeightLayout {
        guard case let .winograd(tile, outChannels, inChannels, panel) = self else { return self }
        return .gemmPanels(groups: (tile + 2) * (tile + 2), rows: outChannels, depth: inChannels, panel: panel)
    }

    public func floatCount(_ plainCount: Int) -> Int {
        switch self {
        case .plain: return plainCount
        case let .gemmPanels(groups, rows, depth, panel): return groups * roundUp(rows, panel) * depth
        case .winograd: return panels.floatCount(0)
        case let .gemmColumnPanels(depth, columns, panel): return depth * roundUp(columns, panel)
        case let .int8Rows(groups, rows, depth, panel): return groups * roundUp(rows, panel) * roundUp(depth, 4) / 4
        case let .int8TapRows(groups, rows, channels, taps, panel), let .int8TapColumns(groups, rows, channels, taps, panel):
            return groups * roundUp(rows, panel) * taps * roundUp(channels, 4) / 4
        case let .int8Columns(depth, columns, panel): return roundUp(depth, 4) / 4 * roundUp(columns, panel)
        }
    }

    /// The layout holds bytes (8-bit integers in 4-byte words), not floats.
    public var holdsBytes: Bool {
        switch self {
        case .int8Rows, .int8TapRows, .int8TapColumns, .int8Columns: return true
        default: return false
        }
    }

    /// Writes an 8-bit tensor's values in an int8 layout to all of `out` (`floatCount` x 4
    /// bytes, padding zeroed).
    public func writeBytes(_ t: HostTensor, into out: UnsafeMutableRawBufferPointer) {
        out.initializeMemory(as: UInt8.self, repeating: 0)
        let source = t.rawBytes
        switch self {
        case let .int8Rows(groups, rows, depth, panel):
            let (words, paddedRows) = (roundUp(depth, 4) / 4, roundUp(rows, panel))
            for g in 0..<groups {
                for row in 0..<rows {
                    let panelStart = (g * paddedRows + row / panel * panel) * words * 4
                    for k in 0..<depth { out[panelStart + (k / 4 * panel + row % panel) * 4 + k % 4] = source[(g * rows + row) * depth + k] }
                }
            }
        case let .int8TapRows(groups, rows, channels, taps, panel), let .int8TapColumns(groups, rows, channels, taps, panel):
            // Output channel `row` of a group is a panel's row or column alike: word p of it at
            // word p * panel + row % panel of its panel.
            let (tapBytes, paddedRows) = (roundUp(channels, 4), roundUp(rows, panel))
            let words = taps * tapBytes / 4
            for g in 0..<groups {
                for row in 0..<rows {
                    let panelStart = (g * paddedRows + row / panel * panel) * words * 4
                    let from = (g * rows + row) * channels * taps
                    for c in 0..<channels {
                        for t in 0..<taps {
                            let k = t * tapBytes + c
                            out[panelStart + (k / 4 * panel + row % panel) * 4 + k % 4] = source[from + c * taps + t]
                        }
                    }
                }
            }
        case let .int8Columns(depth, columns, panel):
            let words = roundUp(depth, 4) / 4
            for k in 0..<depth {
                for j in 0..<columns { out[(j / panel * words * panel + k / 4 * panel + j % panel) * 4 + k % 4] = source[k * columns + j] }
            }
        default:
            source.withUnsafeBytes { out.copyMemory(from: $0) }
        }
    }

    /// Writes the tensor's values in this layout to all of `out` (`floatCount` floats, padding
    /// included: the memory may be uninitialized, unless `zeroed` says it is all zero already).
    public func write(_ t: HostTensor, into out: UnsafeMutableBufferPointer<Float>, zeroed: Bool = false) {
        if hasPadding && !zeroed { out.update(repeating: 0) }
        switch self {
        case .plain:
            _ = out.update(fromContentsOf: t.scalars)
        case let .gemmPanels(groups, rows, depth, panel):
            t.scalars.withUnsafeBufferPointer { Self.writePanels($0, groups: groups, rows: rows, depth: depth, panel: panel, into: out) }
        case let .gemmColumnPanels(depth, columns, panel):
            t.scalars.withUnsafeBufferPointer { source in
                for k in 0..<depth {
                    for j in 0..<columns { out[(j / panel * depth + k) * panel + j % panel] = source[k * columns + j] }
                }
            }
        case let .winograd(tile, outChannels, inChannels, panel):
            t.scalars.withUnsafeBufferPointer {
                WinogradTransform.forTile(tile).transformFilters($0, outChannels: outChannels, inChannels: inChannels, panel: panel, into: out)
            }
        case .int8Rows, .int8TapRows, .int8TapColumns, .int8Columns:
            writeBytes(t, into: UnsafeMutableRawBufferPointer(out))
        }
    }

    /// Whether the layout has floats no weight fills: the last panel's rows or columns past the
    /// matrix, which must be zero.
    private var hasPadding: Bool {
        switch self {
        case .plain: return false
        case let .gemmPanels(_, rows, _, panel), let .winograd(_, rows, _, panel): return rows % panel != 0
        case let .gemmColumnPanels(_, columns, panel): return columns % panel != 0
        case .int8Rows, .int8TapRows, .int8TapColumns, .int8Columns: return true
        }
    }

    /// Where element (row, 0) of a matrix of `depth` columns lands in its panels of `panel` rows,
    /// each stored [depth][panel]: element (row, c) is `c * panel` floats further.
    static func panelOffset(row: Int, depth: Int, panel: Int) -> Int { row / panel * panel * depth + row % panel }

    private static func writePanels(_ source: UnsafeBufferPointer<Float>, groups: Int, rows: Int, depth: Int, panel: Int,
                                    into out: UnsafeMutableBufferPointer<Float>) {
        let paddedRows = roundUp(rows, panel)
        for g in 0..<groups {
            for row in 0..<rows {
                let from = (g * rows + row) * depth
                let to = g * paddedRows * depth + panelOffset(row: row, depth: depth, panel: panel)
                for p in 0..<depth { out[to + p * panel] = source[from + p] }
            }
        }
    }
}
