/// Recurrent layers over [batch, time, features] input (Keras' layout), unrolled over the
/// static number of time steps into matrix products and elementwise ops. The input projection
/// of every step is one matrix product; each step then adds h W_recurrent.

/// Parameters shared by the recurrent layers: input kernel [features, gates x units], recurrent
/// kernel [units, gates x units], bias [gates x units].
struct RecurrentWeights {
    var kernel: HostTensor?
    var recurrent: HostTensor?
    var bias: HostTensor?

    mutating func prepare(features: Int, units: Int, gates: Int, biasInit: (Int) -> Float, graph: Graph, layer: String, _ location: SourceLocation) throws {
        let width = gates * units
        if let kernel { try checkWeight(kernel, [features, width], "kernel", layer, location) } else {
            kernel = Initializer.weights(shape: [features, width], fanIn: features, fanOut: width, he: false, using: &graph.random)
        }
        if let recurrent { try checkWeight(recurrent, [units, width], "recurrent kernel", layer, location) } else {
            recurrent = Initializer.weights(shape: [units, width], fanIn: units, fanOut: width, he: false, using: &graph.random)
        }
        if let bias { try checkWeight(bias, [width], "bias", layer, location) } else {
            bias = try HostTensor(shape: [width], scalars: (0..<width).map(biasInit))
        }
    }
}

extension Tensor {
    /// Columns k*units ..< (k+1)*units of a [batch, gates x units] tensor: one gate.
    func gate(_ k: Int, units: Int, _ name: String, _ location: SourceLocation) throws -> Tensor {
        try apply(.slice(starts: [0, k * units], ends: [shape[0], (k + 1) * units], steps: [1, 1]), [], name: name, location)
    }

    func checkSequence(_ layer: String, _ location: SourceLocation) throws {
        guard rank == 3 else {
            throw LatheError.shapeMismatch(op: layer, shapes: [shape], reason: "\(layer) takes [batch, time, features]", location: location)
        }
    }
}

/// What every recurrent layer has: its width, its activations, whether it returns every step or
/// the last, its weights, and where it was made. Output: the last h [batch, units], or every h
/// [batch, time, units] with `returnSequences`. `callAsFunction(_:initialState:)` also takes the
/// state to start from (zeros by default) and gives the final one (Keras' initial_state and
/// return_state): [h] for GRU and SimpleRNN, [h, c] for LSTM, each [batch, units].
///
///     let lstm = LSTM(50, activation: .relu)
///     let (sequence, state) = try lstm(x, initialState: [h0, c0])
public class RecurrentLayer: Layer {
    public var trainable = true
    public let units: Int
    public let returnSequences: Bool
    /// The candidate's and the output's activation (tanh by default; SimpleRNN's only one).
    public let activation: Activation
    /// The gates' activation (sigmoid by default; unused by SimpleRNN).
    public let recurrentActivation: Activation
    var weights: RecurrentWeights
    let location: SourceLocation

    public init(_ units: Int, activation: Activation = .tanh, recurrentActivation: Activation = .sigmoid, returnSequences: Bool = false,
                kernel: HostTensor? = nil, recurrentKernel: HostTensor? = nil, bias: HostTensor? = nil, fileID: String = #fileID, line: Int = #line) {
        self.units = units
        self.activation = activation
        self.recurrentActivation = recurrentActivation
        self.returnSequences = returnSequences
        weights = RecurrentWeights(kernel: kernel, recurrent: recurrentKernel, bias: bias)
        location = SourceLocation(fileID: fileID, line: line)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try callAsFunction(x, initialState: nil).output
    }

    /// The output and the final state, from `initialState` (nil: zeros).
    public func callAsFunction(_ x: Tensor, initialState: [Tensor]?) throws -> (output: Tensor, state: [Tensor]) {
        throw LatheError.unsupported("RecurrentLayer is abstract; use LSTM, GRU or SimpleRNN")
    }

    /// The number of state tensors: 1, or 2 for LSTM.
    var stateCount: Int { 1 }

    /// A layer of the same kind and settings with weights of its own (Bidirectional's backward one).
    func sibling() -> RecurrentLayer {
        RecurrentLayer(units, activation: activation, recurrentActivation: recurrentActivation, returnSequences: returnSequences,
                       fileID: location.fileID, line: location.line)
    }

    /// The recurrent kernel [units, gates x units] as a parameter of `graph`.
    func recurrentKernel(in graph: Graph, name: String) -> Tensor {
        graph.parameter(weights.recurrent!, name: "\(name).recurrent", trainable: trainable, location, current: { [weak self] in self?.weights.recurrent }) { [weak self] in self?.weights.recurrent = $0 }
    }

    /// `initialState` checked against the layer: `stateCount` tensors of [batch, units] on x's graph.
    func checkedState(_ initialState: [Tensor]?, for x: Tensor, _ op: String) throws -> [Tensor]? {
        guard let initialState else { return nil }
        guard initialState.count == stateCount else {
            throw LatheError.invalidAttribute(op: op, reason: "the initial state is \(stateCount) tensor(s), got \(initialState.count)", location: location)
        }
        for s in initialState {
            guard s.graph === x.graph else { throw LatheError.foreignValue("an initial state of \(op) at \(location)") }
            guard s.shape == [x.shape[0], units] else {
                throw LatheError.shapeMismatch(op: op, shapes: [x.shape, s.shape], reason: "each initial state must be [batch, units] = [\(x.shape[0]), \(units)]",
                                               location: location)
            }
        }
        return initialState
    }

    /// `a` applied to x, named after the step and role ("lstm1.t3.g").
    func activated(_ a: Activation, _ x: Tensor, _ name: String) throws -> Tensor {
        try a.apply(x, location, layer: name)
    }

    /// The loop every recurrent layer runs: project all steps at once, then call `step` with each
    /// step's projection [batch, gates x units], collecting the hidden states.
    func unroll(_ x: Tensor, name: String, step: (_ projected: Tensor, _ t: Int) throws -> Tensor) throws -> Tensor {
        let g = x.graph
        let (batch, steps, features) = (x.shape[0], x.shape[1], x.shape[2])
        let width = weights.kernel!.shape[1]
        let kernel = g.parameter(weights.kernel!, name: "\(name).kernel", trainable: trainable, location, current: { [weak self] in self?.weights.kernel }) { [weak self] in self?.weights.kernel = $0 }
        let bias = g.parameter(weights.bias!, name: "\(name).bias", trainable: trainable, location, penalized: false, current: { [weak self] in self?.weights.bias }) { [weak self] in self?.weights.bias = $0 }
        let rows = try x.apply(.reshape(shape: [batch * steps, features]), [], name: "\(name).rows", location)
        let projected = try rows.apply(.dense, [kernel, bias], name: "\(name).projected", location)
            .apply(.reshape(shape: [batch, steps, width]), [], name: "\(name).steps", location)
        var outputs: [Tensor] = []
        for t in 0..<steps {
            let slice = try projected.apply(.slice(starts: [0, t, 0], ends: [batch, t + 1, width], steps: [1, 1, 1]), [], name: "\(name).x\(t)", location)
                .apply(.reshape(shape: [batch, width]), [], name: "\(name).xw\(t)", location)
            outputs.append(try step(slice, t))
        }
        guard returnSequences else { return outputs[outputs.count - 1] }
        let stacked = try outputs.map { try $0.apply(.reshape(shape: [batch, 1, units]), [], location) }
        return stacked.count == 1 ? stacked[0] : try stacked[0].apply(.concat(axis: 1), Array(stacked.dropFirst()), name: name, location)
    }
}

/// Long short-term memory (Keras gate order: input, forget, cell, output), with σ the recurrent
/// activation and φ the activation:
///   c_t = σ(f) * c_{t-1} + σ(i) * φ(g),   h_t = σ(o) * φ(c_t).
public final class LSTM: RecurrentLayer {
    override var stateCount: Int { 2 }

    override func sibling() -> RecurrentLayer {
        LSTM(units, activation: activation, recurrentActivation: recurrentActivation, returnSequences: returnSequences, fileID: location.fileID, line: location.line)
    }

    public override func callAsFunction(_ x: Tensor, initialState: [Tensor]?) throws -> (output: Tensor, state: [Tensor]) {
        try x.checkSequence("lstm", location)
        guard units > 0 else { throw LatheError.invalidAttribute(op: "lstm", reason: "units must be positive", location: location) }
        let start = try checkedState(initialState, for: x, "lstm")
        let g = x.graph, u = units
        // Keras' unit_forget_bias: the forget gate starts open.
        try weights.prepare(features: x.shape[2], units: u, gates: 4, biasInit: { $0 / u == 1 ? 1 : 0 }, graph: g, layer: "lstm", location)
        let name = g.freshName("lstm")
        let recurrent = recurrentKernel(in: g, name: name)
        var h: Tensor? = start?[0], c: Tensor? = start?[1]
        let output = try unroll(x, name: name) { xw, t in
            let tag = "\(name).t\(t)"
            let z = try h.map { try xw.apply(.binary(.add), [try $0.apply(.matmul, [recurrent], name: "\(tag).hr", location)], name: "\(tag).z", location) } ?? xw
            let i = try activated(recurrentActivation, try z.gate(0, units: u, "\(tag).i_in", location), "\(tag).i")
            let f = try activated(recurrentActivation, try z.gate(1, units: u, "\(tag).f_in", location), "\(tag).f")
            let cell = try activated(activation, try z.gate(2, units: u, "\(tag).g_in", location), "\(tag).g")
            let o = try activated(recurrentActivation, try z.gate(3, units: u, "\(tag).o_in", location), "\(tag).o")
            let added = try i.apply(.binary(.mul), [cell], name: "\(tag).added", location)
            c = try c.map { try $0.apply(.binary(.mul), [f], name: "\(tag).kept", location).apply(.binary(.add), [added], name: "\(tag).c", location) } ?? added
            h = try o.apply(.binary(.mul), [try activated(activation, c!, "\(tag).c_out")], name: "\(tag).h", location)
            return h!
        }
        return (output, [h!, c!])
    }
}

/// Gated recurrent unit (Keras' default reset_after form, gates update z, reset r, candidate),
/// with σ the recurrent activation and φ the activation:
///   hh = φ(x W_h + r * (h R_h + b_rh)),   h_t = z * h_{t-1} + (1 - z) * hh.
public final class GRU: RecurrentLayer {
    /// The recurrent bias of reset_after GRUs, [3 x units].
    var recurrentBias: HostTensor?

    public init(_ units: Int, activation: Activation = .tanh, recurrentActivation: Activation = .sigmoid, returnSequences: Bool = false,
                kernel: HostTensor? = nil, recurrentKernel: HostTensor? = nil, bias: HostTensor? = nil, recurrentBias: HostTensor? = nil,
                fileID: String = #fileID, line: Int = #line) {
        self.recurrentBias = recurrentBias
        super.init(units, activation: activation, recurrentActivation: recurrentActivation, returnSequences: returnSequences, kernel: kernel,
                   recurrentKernel: recurrentKernel, bias: bias, fileID: fileID, line: line)
    }

    override func sibling() -> RecurrentLayer {
        GRU(units, activation: activation, recurrentActivation: recurrentActivation, returnSequences: returnSequences, fileID: location.fileID, line: location.line)
    }

    public override func callAsFunction(_ x: Tensor, initialState: [Tensor]?) throws -> (output: Tensor, state: [Tensor]) {
        try x.checkSequence("gru", location)
        guard units > 0 else { throw LatheError.invalidAttribute(op: "gru", reason: "units must be positive", location: location) }
        let start = try checkedState(initialState, for: x, "gru")
        let g = x.graph, u = units
        try weights.prepare(features: x.shape[2], units: u, gates: 3, biasInit: { _ in 0 }, graph: g, layer: "gru", location)
        if let recurrentBias { try checkWeight(recurrentBias, [3 * u], "recurrent bias", "gru", location) } else { recurrentBias = HostTensor(shape: [3 * u]) }
        let name = g.freshName("gru")
        let recurrent = recurrentKernel(in: g, name: name)
        let rBias = g.parameter(recurrentBias!, name: "\(name).recurrent_bias", trainable: trainable, location, penalized: false,
                                 current: { [weak self] in self?.recurrentBias }) { [weak self] in self?.recurrentBias = $0 }
        let batch = x.shape[0]
        var h = start?[0] ?? g.constant(HostTensor(shape: [batch, u]), name: "\(name).h0", fileID: location.fileID, line: location.line)
        let output = try unroll(x, name: name) { xw, t in
            let tag = "\(name).t\(t)"
            let hr = try h.apply(.dense, [recurrent, rBias], name: "\(tag).hr", location)
            let z = try activated(recurrentActivation, try xw.gate(0, units: u, "\(tag).xz", location)
                .apply(.binary(.add), [try hr.gate(0, units: u, "\(tag).hz", location)], name: "\(tag).z_in", location), "\(tag).z")
            let r = try activated(recurrentActivation, try xw.gate(1, units: u, "\(tag).xr", location)
                .apply(.binary(.add), [try hr.gate(1, units: u, "\(tag).hr_r", location)], name: "\(tag).r_in", location), "\(tag).r")
            let reset = try r.apply(.binary(.mul), [try hr.gate(2, units: u, "\(tag).hh_rec", location)], name: "\(tag).reset", location)
            let candidate = try activated(activation, try xw.gate(2, units: u, "\(tag).xh", location)
                .apply(.binary(.add), [reset], name: "\(tag).hh_in", location), "\(tag).hh")
            // z * h + (1 - z) * hh = hh + z * (h - hh)
            let change = try h.apply(.binary(.sub), [candidate], name: "\(tag).change", location).apply(.binary(.mul), [z], name: "\(tag).kept", location)
            h = try candidate.apply(.binary(.add), [change], name: "\(tag).h", location)
            return h
        }
        return (output, [h])
    }
}

/// The plain recurrent layer: h_t = φ(x_t W + h_{t-1} R + b), φ the activation (tanh).
public final class SimpleRNN: RecurrentLayer {
    override func sibling() -> RecurrentLayer {
        SimpleRNN(units, activation: activation, returnSequences: returnSequences, fileID: location.fileID, line: location.line)
    }

    public override func callAsFunction(_ x: Tensor, initialState: [Tensor]?) throws -> (output: Tensor, state: [Tensor]) {
        try x.checkSequence("simple_rnn", location)
        guard units > 0 else { throw LatheError.invalidAttribute(op: "simple_rnn", reason: "units must be positive", location: location) }
        let start = try checkedState(initialState, for: x, "simple_rnn")
        let g = x.graph
        try weights.prepare(features: x.shape[2], units: units, gates: 1, biasInit: { _ in 0 }, graph: g, layer: "simple_rnn", location)
        let name = g.freshName("rnn")
        let recurrent = recurrentKernel(in: g, name: name)
        var h: Tensor? = start?[0]
        let output = try unroll(x, name: name) { xw, t in
            let tag = "\(name).t\(t)"
            let z = try h.map { try xw.apply(.binary(.add), [try $0.apply(.matmul, [recurrent], name: "\(tag).hr", location)], name: "\(tag).z", location) } ?? xw
            h = try activated(activation, z, "\(tag).h")
            return h!
        }
        return (output, [h!])
    }
}
