/// Loss functions: each takes a batch of predictions and targets and gives a one-element
/// tensor, the mean (or sum) over the batch of each example's loss.
public enum LossReduction: Sendable {
    case mean, sum
}

/// A loss a Trainer minimizes.
public enum Loss: Sendable {
    /// Mean of (prediction - target)² over each example's elements.
    case meanSquaredError
    /// Mean binary cross-entropy over each example's elements; targets in [0, 1]. With
    /// `fromLogits`, predictions are logits and the loss is computed without exp overflow.
    case binaryCrossEntropy(fromLogits: Bool)
    /// -sum(labels * log softmax(logits)) over the last axis; labels one-hot (or any
    /// distribution). A model ending in softmax hands its logits to the loss instead.
    case softmaxCrossEntropy
    /// Softmax cross-entropy against class indices: targets [batch, ...] one index a row (3 for
    /// the fourth class; a Trainer takes a Dataset of integer labels, int64 as PyTorch gives
    /// them, and the loss a tensor of an integer type or f32), predictions [batch, ...,
    /// classes] (Keras' sparse_categorical_crossentropy).
    case sparseSoftmaxCrossEntropy

    public func callAsFunction(_ prediction: Tensor, _ target: Tensor, reduction: LossReduction = .mean) throws -> Tensor {
        switch self {
        case .meanSquaredError: return try prediction.meanSquaredError(target, reduction: reduction)
        case let .binaryCrossEntropy(fromLogits): return try prediction.binaryCrossEntropy(target, fromLogits: fromLogits, reduction: reduction)
        case .softmaxCrossEntropy: return try prediction.softmaxCrossEntropy(labels: target, reduction: reduction)
        case .sparseSoftmaxCrossEntropy: return try prediction.sparseSoftmaxCrossEntropy(classes: target, reduction: reduction)
        }
    }
}

extension Tensor {
    public func meanSquaredError(_ target: Tensor, reduction: LossReduction = .mean, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        let location = SourceLocation(fileID: fileID, line: line)
        try checkTarget(target, "mean_squared_error", location)
        let squared = try apply(.fusedElementwise((.arg(0) - .arg(1)) * (.arg(0) - .arg(1))), [target], name: graph.freshName("mse"), location)
        return try squared.perExampleMean(location).reduceBatch(reduction, location)
    }

    public func binaryCrossEntropy(_ target: Tensor, fromLogits: Bool = false, reduction: LossReduction = .mean,
                                   fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        let location = SourceLocation(fileID: fileID, line: line)
        try checkTarget(target, "binary_cross_entropy", location)
        let (p, t) = (ScalarExpr.arg(0), ScalarExpr.arg(1))
        let formula: ScalarExpr
        if fromLogits {
            // max(x, 0) - x t + log(1 + exp(-|x|)): no exp of a large number.
            formula = .max(p, .const(0)) - p * t + .unary(.log, .const(1) + .exp(-.unary(.abs, p)))
        } else {
            // Probabilities clipped away from 0 and 1, as Keras does.
            let clipped = ScalarExpr.min(.max(p, .const(1e-7)), .const(1 - 1e-7))
            formula = -(t * .unary(.log, clipped) + (.const(1) - t) * .unary(.log, .const(1) - clipped))
        }
        let losses = try apply(.fusedElementwise(formula), [target], name: graph.freshName("bce"), location)
        return try losses.perExampleMean(location).reduceBatch(reduction, location)
    }

    /// Softmax cross-entropy from logits, through log-softmax (one stable kernel). When this
    /// tensor is a softmax over the last axis, its input is used as the logits.
    public func softmaxCrossEntropy(labels: Tensor, reduction: LossReduction = .mean, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        let location = SourceLocation(fileID: fileID, line: line)
        try checkTarget(labels, "softmax_cross_entropy", location)
        guard rank >= 2 else { throw LatheError.shapeMismatch(op: "softmax_cross_entropy", shapes: [shape], reason: "takes [batch, ..., classes]", location: location) }
        var logits = self
        if case let .softmax(axis) = graph[id].op, axis == rank - 1 { logits = Tensor(graph: graph, id: graph[id].operands[0]) }
        let name = graph.freshName("cross_entropy")
        let logProbabilities = try logits.apply(.logSoftmax(axis: rank - 1), [], name: "\(name).log_softmax", location)
        let perClass = try logProbabilities.apply(.fusedElementwise(-(.arg(0) * .arg(1))), [labels], name: "\(name).terms", location)
        let perExample = try perClass.apply(.reduce(.sum, axes: Array(1..<rank), keepDims: false), [], name: name, location)
        return try perExample.reduceBatch(reduction, location)
    }

    /// Softmax cross-entropy against class indices `classes` (this tensor's shape without its
    /// last axis; an integer type, or whole numbers as f32): each index made a one-hot row,
    /// compared with the classes 0..<C. An index outside them gives a row of zeros, so a loss
    /// of 0 for it.
    public func sparseSoftmaxCrossEntropy(classes: Tensor, reduction: LossReduction = .mean, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        let location = SourceLocation(fileID: fileID, line: line)
        guard classes.graph === graph else { throw LatheError.foreignValue("the target of sparse_softmax_cross_entropy at \(location)") }
        guard rank >= 2, classes.shape == Array(shape.dropLast()) else {
            throw LatheError.shapeMismatch(op: "sparse_softmax_cross_entropy", shapes: [shape, classes.shape],
                                           reason: "takes predictions [batch, ..., classes] and class indices [batch, ...]", location: location)
        }
        let count = shape[rank - 1], name = graph.freshName("sparse_labels")
        var iota = HostTensor(shape: [count])
        for c in 0..<count { iota.scalars[c] = Float(c) }
        let indices = graph.constant(iota, name: "\(name).classes", fileID: fileID, line: line)
        // Integer labels (int64, as PyTorch and Keras take them) compare as floats: exact below 2^24.
        let labels = classes.type.dtype == .float32 ? classes : try classes.apply(.cast(to: .float32), [], name: "\(name).as_float", location)
        let oneHot = try labels.reshaped(classes.shape + [1], fileID: fileID, line: line)
            .apply(.fusedElementwise(.select(.binary(.equal, .arg(0), .arg(1)), .const(1), .const(0))), [indices], name: name, location)
        return try softmaxCrossEntropy(labels: oneHot, reduction: reduction, fileID: fileID, line: line)
    }

    /// L1 and L2 penalties, λ1 sum |w| + λ2 sum w², over `weights`, added to this loss.
    public func addingWeightPenalty(_ weights: [Tensor], l1: Float = 0, l2: Float = 0, fileID: String = #fileID, line: Int = #line) throws -> Tensor {
        let location = SourceLocation(fileID: fileID, line: line)
        var total = self
        for w in weights where l1 != 0 || l2 != 0 {
            let terms = try w.apply(.fusedElementwise(.const(l1) * .unary(.abs, .arg(0)) + .const(l2) * .arg(0) * .arg(0)), [], name: "\(w.name).penalty", location)
            let penalty = try terms.apply(.reduce(.sum, axes: Array(0..<w.rank), keepDims: false), [], name: "\(w.name).penalty_sum", location)
            total = try total.apply(.binary(.add), [penalty.reshaped(total.shape, fileID: fileID, line: line)], location)
        }
        return total
    }

    private func checkTarget(_ target: Tensor, _ op: String, _ location: SourceLocation) throws {
        guard target.graph === graph else { throw LatheError.foreignValue("the target of \(op) at \(location)") }
        guard target.shape == shape else {
            throw LatheError.shapeMismatch(op: op, shapes: [shape, target.shape], reason: "the prediction and the target must have one shape", location: location)
        }
    }

    /// [batch, ...] to [batch]: the mean over each example's elements.
    private func perExampleMean(_ location: SourceLocation) throws -> Tensor {
        rank <= 1 ? self : try apply(.reduce(.mean, axes: Array(1..<rank), keepDims: false), [], location)
    }

    /// [batch] to one element.
    private func reduceBatch(_ reduction: LossReduction, _ location: SourceLocation) throws -> Tensor {
        try apply(.reduce(reduction == .mean ? .mean : .sum, axes: Array(0..<rank), keepDims: false), [], name: graph.freshName("loss"), location)
    }
}
