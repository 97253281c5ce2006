/// Keras' Bidirectional: a recurrent layer run over the sequence forward and a second one (by
/// default the same kind and settings, with weights of its own) run over it backward, their
/// outputs merged, by default side by side. With `returnSequences`, the backward layer's
/// sequence is turned back to the input's order before the merge, so step t holds both
/// directions' state at t.
///
///     let encoded = try Bidirectional(LSTM(32, returnSequences: true))(x)   // [batch, time, 64]
public final class Bidirectional: Layer {
    /// How the two directions' outputs are combined.
    public enum Merge: Sendable, Hashable {
        case concat, sum, multiply, average
    }

    public let forward: RecurrentLayer
    public let backward: RecurrentLayer
    public let merge: Merge
    /// Sets both directions'.
    public var trainable = true {
        didSet { (forward.trainable, backward.trainable) = (trainable, trainable) }
    }
    let location: SourceLocation

    public init(_ layer: RecurrentLayer, backward: RecurrentLayer? = nil, merge: Merge = .concat, fileID: String = #fileID, line: Int = #line) {
        forward = layer
        self.backward = backward ?? layer.sibling()
        self.merge = merge
        location = SourceLocation(fileID: fileID, line: line)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try x.checkSequence("bidirectional", location)
        guard forward.returnSequences == backward.returnSequences, merge == .concat || forward.units == backward.units else {
            throw LatheError.invalidAttribute(op: "bidirectional", reason: "the two directions must agree on returnSequences, and on units unless concatenated",
                                              location: location)
        }
        let name = x.graph.freshName("bidirectional")
        let ahead = try x.graph.building(frozen: !trainable) { try forward(x) }
        var behind = try x.graph.building(frozen: !trainable) { try backward(try x.reversedInTime("\(name).reversed", location)) }
        if backward.returnSequences { behind = try behind.reversedInTime("\(name).backward", location) }
        switch merge {
        case .concat: return try ahead.apply(.concat(axis: ahead.rank - 1), [behind], name: name, location)
        case .sum: return try ahead.apply(.binary(.add), [behind], name: name, location)
        case .multiply: return try ahead.apply(.binary(.mul), [behind], name: name, location)
        case .average: return try ahead.apply(.fusedElementwise((.arg(0) + .arg(1)) * .const(0.5)), [behind], name: name, location)
        }
    }
}

extension Tensor {
    /// A [batch, time, features] tensor with its steps in reverse order.
    func reversedInTime(_ name: String, _ location: SourceLocation) throws -> Tensor {
        let (batch, steps, features) = (shape[0], shape[1], shape[2])
        guard steps > 1 else { return self }
        let parts = try (0..<steps).reversed().map { t in
            try apply(.slice(starts: [0, t, 0], ends: [batch, t + 1, features], steps: [1, 1, 1]), [], name: "\(name).t\(t)", location)
        }
        return try parts[0].apply(.concat(axis: 1), Array(parts.dropFirst()), name: name, location)
    }
}
