import LatheIR

/// Einsum, written with the IR's transpose, reshape, slice, reduce, mul and matmul:
///
/// 1. The equation is read into one list of labels an operand (an ellipsis becomes as many
///    labels as the axes it covers, right-aligned, shared by every operand that has one), and
///    the output's labels (given after "->", else every label used once, in order, after the
///    ellipsis' ones).
/// 2. Each operand takes its diagonals (a label repeated within it: "ii") and sums out the
///    labels that no other operand and not the output has.
/// 3. The operands are combined left to right, two at a time. A label of both that is still
///    needed (by the output or an operand to come) is a batch axis; one needed by neither is
///    contracted; the rest are each operand's own. The pair is transposed to [batch, own, K] and
///    [batch, K, own], reshaped to three groups and multiplied as a batched matmul (or, with
///    nothing contracted, multiplied elementwise with broadcasting).
/// 4. The last result is summed over any label the output lacks and transposed to its order.
///
/// Sizes of 1 under an ellipsis broadcast, as NumPy's einsum broadcasts them.
extension OpHandlers {
    static let einsum: [String: Handler] = ["Einsum": { c in [try einsum(c)] }]

    /// An operand while combining: its value and the label of each axis.
    private struct Labeled {
        var value: ImportedValue
        var labels: [Character]
    }

    private static func einsum(_ c: ImportContext) throws -> ImportedValue {
        let equation = c.node.string("equation", "").filter { !$0.isWhitespace }
        let operands = try (0..<c.node.input.count).map { try c.required($0) }
        guard !operands.isEmpty else { throw c.fail("has no operands") }
        let (inputs, output) = try einsumLabels(equation, ranks: operands.map { c.shape($0).count }, c)
        var labeled = zip(operands, inputs).map { Labeled(value: $0, labels: $1) }
        var sizes: [Character: Int] = [:]
        for term in labeled {
            for (label, size) in zip(term.labels, c.shape(term.value)) {
                let known = sizes[label] ?? 1
                guard known == size || known == 1 || size == 1 else {
                    throw c.fail("gives label '\(label)' sizes \(known) and \(size) in '\(equation)'")
                }
                sizes[label] = max(known, size)
            }
        }
        func needed(after index: Int) -> Set<Character> {
            Set(output).union(labeled[(index + 1)...].flatMap(\.labels))
        }
        for i in labeled.indices {
            labeled[i] = try diagonals(labeled[i], c, name: "diagonal\(i)")
            let keep = needed(after: i).union(labeled[..<i].flatMap(\.labels))
            labeled[i] = try sumOut(labeled[i], keeping: keep, c, name: "sum\(i)")
        }
        var result = labeled[0]
        for i in 1..<labeled.count {
            result = try contract(result, labeled[i], needed: needed(after: i), sizes: sizes, c, name: "product\(i)")
        }
        result = try sumOut(result, keeping: Set(output), c, name: "sum")
        let order = output.map { label in result.labels.firstIndex(of: label)! }
        if order == Array(result.labels.indices) { return result.value }
        return try c.apply(.transpose(perm: order), [result.value], name: "output_order")
    }

    /// Each operand's labels and the output's, with ellipses spelled out.
    private static func einsumLabels(_ equation: String, ranks: [Int], _ c: ImportContext) throws -> ([[Character]], [Character]) {
        let sides = equation.components(separatedBy: "->")
        guard sides.count <= 2 else { throw c.fail("has equation '\(equation)' with more than one '->'") }
        let terms = sides[0].components(separatedBy: ",")
        guard terms.count == ranks.count else { throw c.fail("has \(terms.count) terms in '\(equation)' for \(ranks.count) operands") }
        // The ellipsis' labels: characters no equation uses.
        let ellipsisRank = try zip(terms, ranks).map { term, rank -> Int in
            guard term.contains("...") else { return 0 }
            let explicit = term.replacingOccurrences(of: "...", with: "").count
            guard rank >= explicit else { throw c.fail("has term '\(term)' for an operand of rank \(rank)") }
            return rank - explicit
        }.max() ?? 0
        let ellipsis = (0..<ellipsisRank).map { Character(UnicodeScalar(0x2460 + $0)!) }
        func spelled(_ term: String, rank: Int?) throws -> [Character] {
            guard term.filter({ $0 == "." }).count % 3 == 0 else { throw c.fail("has a malformed ellipsis in '\(equation)'") }
            let parts = term.components(separatedBy: "...")
            guard parts.count <= 2 else { throw c.fail("has two ellipses in one term of '\(equation)'") }
            for ch in parts.joined() where !ch.isLetter || !ch.isASCII {
                throw c.fail("has '\(ch)' in '\(equation)'; labels are letters")
            }
            guard parts.count == 2 else {
                if let rank, term.count != rank { throw c.fail("has term '\(term)' for an operand of rank \(rank)") }
                return Array(term)
            }
            let covered = rank.map { $0 - parts[0].count - parts[1].count } ?? ellipsisRank
            return Array(parts[0]) + ellipsis.suffix(covered) + Array(parts[1])
        }
        let inputs = try zip(terms, ranks).map { try spelled($0, rank: $1) }
        if sides.count == 2 {
            let output = try spelled(sides[1], rank: nil)
            let used = Set(inputs.joined())
            for label in output where !used.contains(label) { throw c.fail("has output label '\(label)' that no operand has in '\(equation)'") }
            guard Set(output).count == output.count else { throw c.fail("repeats an output label in '\(equation)'") }
            return (inputs, output)
        }
        let all = inputs.joined()
        let once = Set(all.filter { label in all.filter { $0 == label }.count == 1 && !ellipsis.contains(label) })
        return (inputs, ellipsis + once.sorted())
    }

    /// A label repeated within an operand keeps only the diagonal: both axes moved last,
    /// flattened, and every (n + 1)-th element taken.
    private static func diagonals(_ term: Labeled, _ c: ImportContext, name: String) throws -> Labeled {
        var term = term
        while let (first, second) = repeatedLabel(term.labels) {
            let shape = c.shape(term.value)
            guard shape[first] == shape[second] else { throw c.fail("takes the diagonal of axes of sizes \(shape[first]) and \(shape[second])") }
            let n = shape[first]
            let rest = term.labels.indices.filter { $0 != first && $0 != second }
            let moved = try c.apply(.transpose(perm: rest + [first, second]), [term.value], name: "\(name)_moved")
            let flat = try reshape(moved, to: rest.map { shape[$0] } + [n * n], c)
            let count = rest.count
            let diagonal = try c.apply(.slice(starts: Array(repeating: 0, count: count) + [0], ends: rest.map { shape[$0] } + [n * n],
                                              steps: Array(repeating: 1, count: count) + [n + 1]), [flat], name: name)
            term = Labeled(value: diagonal, labels: rest.map { term.labels[$0] } + [term.labels[first]])
        }
        return term
    }

    private static func repeatedLabel(_ labels: [Character]) -> (Int, Int)? {
        for i in labels.indices {
            if let j = labels[(i + 1)...].firstIndex(of: labels[i]) { return (i, j) }
        }
        return nil
    }

    /// Sums out the axes whose labels are not kept.
    private static func sumOut(_ term: Labeled, keeping keep: Set<Character>, _ c: ImportContext, name: String) throws -> Labeled {
        let axes = term.labels.indices.filter { !keep.contains(term.labels[$0]) }
        guard !axes.isEmpty else { return term }
        let summed = try c.apply(.reduce(.sum, axes: axes, keepDims: false), [term.value], name: name)
        return Labeled(value: summed, labels: term.labels.enumerated().filter { !axes.contains($0.offset) }.map(\.element))
    }

    /// Two operands combined: labels of both still needed stay as batch axes, labels of both
    /// needed by neither are contracted.
    private static func contract(_ a: Labeled, _ b: Labeled, needed: Set<Character>, sizes: [Character: Int],
                                 _ c: ImportContext, name: String) throws -> Labeled {
        let shared = a.labels.filter(b.labels.contains)
        let batch = shared.filter(needed.contains), contracted = shared.filter { !needed.contains($0) }
        let ownA = a.labels.filter { !shared.contains($0) }, ownB = b.labels.filter { !shared.contains($0) }
        func arranged(_ t: Labeled, _ order: [Character], _ what: String) throws -> ImportedValue {
            let perm = order.map { t.labels.firstIndex(of: $0)! }
            return perm == Array(t.labels.indices) ? t.value : try c.apply(.transpose(perm: perm), [t.value], name: "\(name)_\(what)")
        }
        func size(_ t: Labeled, _ label: Character) -> Int { c.shape(t.value)[t.labels.firstIndex(of: label)!] }
        let batchA = batch.map { size(a, $0) }, batchB = batch.map { size(b, $0) }
        let labels = batch + ownA + ownB
        if contracted.isEmpty {
            // [batch, ownA, 1...] * [batch, 1..., ownB]
            let x = try reshape(try arranged(a, batch + ownA, "a"), to: batchA + ownA.map { size(a, $0) } + ownB.map { _ in 1 }, c)
            let y = try reshape(try arranged(b, batch + ownB, "b"), to: batchB + ownA.map { _ in 1 } + ownB.map { size(b, $0) }, c)
            return Labeled(value: try c.apply(.binary(.mul), [x, y], name: name), labels: labels)
        }
        let (m, k, n) = (ownA.map { size(a, $0) }, contracted.map { sizes[$0] ?? 1 }, ownB.map { size(b, $0) })
        for label in contracted where size(a, label) != size(b, label) {
            throw c.unsupported("contracts label '\(label)' of sizes \(size(a, label)) and \(size(b, label)) (a broadcast contraction)")
        }
        let x = try reshape(try arranged(a, batch + ownA + contracted, "a"), to: batchA + [m.reduce(1, *), k.reduce(1, *)], c)
        let y = try reshape(try arranged(b, batch + contracted + ownB, "b"), to: batchB + [k.reduce(1, *), n.reduce(1, *)], c)
        let product = try c.apply(.matmul, [x, y], name: name)
        let batchOut = zip(batchA, batchB).map { max($0, $1) }
        return Labeled(value: try reshape(product, to: batchOut + m + n, c), labels: labels)
    }
}
