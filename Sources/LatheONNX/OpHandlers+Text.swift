import LatheIR

/// TfIdfVectorizer over integer token ids (pool_int64s; a string pool is refused): for each
/// n-gram of the pool, the number of its occurrences in each row, with its items `d` apart for
/// each distance d from 1 to max_skip_count + 1 (unigrams once), as ONNX's reference counts
/// them; then TF (the counts), IDF (the weight where the count is positive) or TFIDF (count
/// times weight), at the gram's ngram_indexes position. Written with slices, equal, and, and
/// sums: the pool is known at import, the tokens at run time.
extension OpHandlers {
    static let text: [String: Handler] = ["TfIdfVectorizer": { c in [try tfIdf(c)] }]

    private static func tfIdf(_ c: ImportContext) throws -> ImportedValue {
        let x = try c.required(0)
        let shape = c.shape(x)
        guard [.int32, .int64].contains(c.dtype(x)), (1...2).contains(shape.count) else {
            throw c.unsupported("counts n-grams of int32 or int64 tokens [L] or [B, L], not \(c.dtype(x)) \(shape)")
        }
        guard let pool = c.node.ints("pool_int64s"), !pool.isEmpty else { throw c.unsupported("needs pool_int64s (string pools are not supported)") }
        guard let counts = c.node.ints("ngram_counts"), let indexes = c.node.ints("ngram_indexes") else { throw c.fail("needs ngram_counts and ngram_indexes") }
        let (minGram, maxGram, maxSkip) = (c.node.int("min_gram_length", 1), c.node.int("max_gram_length", 1), c.node.int("max_skip_count", 0))
        let mode = c.node.string("mode", "TF")
        guard ["TF", "IDF", "TFIDF"].contains(mode) else { throw c.fail("has mode '\(mode)'") }
        // The pool's grams, each with its size and output position.
        var grams: [(items: [Int], output: Int)] = []
        for (k, start) in counts.enumerated() {
            let size = k + 1, end = k + 1 < counts.count ? counts[k + 1] : pool.count
            guard start <= end, end <= pool.count, (end - start) % size == 0 else { throw c.fail("has ngram_counts \(counts) that do not divide a pool of \(pool.count)") }
            for g in stride(from: start, to: end, by: size) { grams.append((Array(pool[g..<(g + size)]), -1)) }
        }
        guard grams.count == indexes.count, let size = indexes.max().map({ $0 + 1 }) else { throw c.fail("has \(indexes.count) ngram_indexes for \(grams.count) grams") }
        for k in grams.indices { grams[k].output = indexes[k] }
        let rows = shape.count == 2 ? try reshape(x, to: shape, c) : try reshape(x, to: [1, shape[0]], c)
        let (batch, length) = (c.shape(rows)[0], c.shape(rows)[1])
        let type = c.dtype(x)
        func column(_ from: Int, _ count: Int, _ name: String) throws -> ImportedValue { try sliced(rows, axis: 1, from: from, to: from + count, c, name: name) }
        var totals: [Int: ImportedValue] = [:]
        for (k, gram) in grams.enumerated() where (minGram...maxGram).contains(gram.items.count) {
            let n = gram.items.count
            for distance in 1...(n == 1 ? 1 : maxSkip + 1) {
                let starts = length - distance * (n - 1)
                guard starts > 0 else { continue }
                var matched: ImportedValue? = nil
                for (j, item) in gram.items.enumerated() {
                    let equal = try c.apply(.binary(.equal), [try column(j * distance, starts, "g\(k)_d\(distance)_\(j)"), c.scalar(Float(item), type)], name: "g\(k)_d\(distance)_eq\(j)")
                    matched = try matched.map { try c.apply(.binary(.and), [$0, equal], name: "g\(k)_d\(distance)_and\(j)") } ?? equal
                }
                let count = try c.apply(.reduce(.sum, axes: [1], keepDims: true), [try cast(matched!, to: .float32, c)], name: "g\(k)_d\(distance)_count")
                totals[gram.output] = try totals[gram.output].map { try c.apply(.binary(.add), [$0, count], name: "at\(gram.output)") } ?? count
            }
        }
        let weights = c.node.floats("weights") ?? []
        let zero = ImportedValue.constant(ConstantTensor(shape: [batch, 1], floats: Array(repeating: 0, count: batch)))
        let columns = try (0..<size).map { i -> ImportedValue in
            guard let count = totals[i] else { return zero }
            let weight = c.scalar(i < weights.count ? weights[i] : 1)
            switch mode {
            case "TF": return count
            case "IDF": return try c.apply(.select, [try c.apply(.binary(.greater), [count, c.scalar(0)], name: "present\(i)"), weight, c.scalar(0)], name: "idf\(i)")
            default: return try c.apply(.binary(.mul), [count, weight], name: "tfidf\(i)")
            }
        }
        let joined = columns.count == 1 ? columns[0] : try c.apply(.concat(axis: 1), columns, name: "frequencies")
        return shape.count == 2 ? joined : try reshape(joined, to: [size], c)
    }
}
