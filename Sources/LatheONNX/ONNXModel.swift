import Foundation
import LatheIR
import LatheRuntime

/// An ONNX model ready to run: read and checked once, compiled for the sizes and values it
/// needs.
///
/// Lathe compiles every shape statically. A model whose inputs have fixed sizes (or sizes
/// `dimensions` gives) and whose shapes do not depend on input values compiles once, when made.
/// Otherwise it is compiled on the first run, for that run's feeds, and again for each new
/// combination of
/// - the shapes of its *open inputs*, those with a symbolic or unnamed dimension that
///   `dimensions` does not size (`openInputs`), and
/// - the values of its *value inputs*, those that an operand needed to compile is computed
///   from: a Pad's pads, a Reshape's shape, a reduction's axes, a Range's limit (`valueInputs`).
/// The `specializationLimit` most recently used compiled models are kept; the machine-code
/// cache makes compiling a combination seen before cheap.
///
/// A model with a node whose output size depends on values computed as it runs (NonZero,
/// NonMaxSuppression, Unique on computed operands) runs in *stages*: the graph up to that node,
/// compiled for the sizes it has; the node, computed on the host from that stage's results;
/// then the rest, compiled for the sizes those results have (and so on, node by node). Each
/// stage is kept like a compiled model, for the shapes of the values it is fed.
///
/// ```swift
/// let model = try ONNXModel(contentsOf: URL(fileURLWithPath: "encoder.onnx"))
/// // input_ids is [batch, sequence]: each new size compiles once
/// let short = try model.run(["input_ids": try HostTensor(shape: [1, 8], values: ids8)])
/// let long = try model.run(["input_ids": try HostTensor(shape: [1, 128], values: ids128)])
/// ```
///
/// `run` may be called from many threads at once.
public final class ONNXModel: @unchecked Sendable {
    public let fileName: String
    /// The graph's inputs as the file declares them (initializers excluded), in order.
    public let inputNames: [String]
    public let outputNames: [String]
    public let options: CompileOptions
    public let dimensions: [String: Int]
    /// How many compiled models (one per set of value inputs' values) are kept.
    public let specializationLimit: Int

    private let proto: Onnx_ModelProto
    /// The inputs whose shapes choose the compiled model.
    public let openInputs: [String]
    /// The inputs found so far whose values choose the compiled model. An import that is given
    /// some of them may find more further on, so this grows as runs compile new values.
    private var knownValueInputs: [String]
    /// Compiled models, each with the open inputs' shapes and the value inputs' values it was
    /// built for, most recently used last.
    private var compiled: [Specialization] = []
    private let lock = NSLock()
    /// Held while compiling, so concurrent first runs of new values compile each set once.
    private let compileLock = NSLock()
    /// The most stages a run has taken (1 for a model that is one graph): the compiled models
    /// kept are `specializationLimit` runs' worth.
    private var stagesPerRun = 1

    public convenience init(contentsOf url: URL, dimensions: [String: Int] = [:], options: CompileOptions = CompileOptions(), specializationLimit: Int = 8) throws {
        try self.init(ONNXImporter.read(url), fileName: url.lastPathComponent, dimensions: dimensions, options: options, specializationLimit: specializationLimit)
    }

    /// Reads the model, and compiles it unless its shapes depend on input sizes or values.
    public init(_ data: Data, fileName: String = "model.onnx", dimensions: [String: Int] = [:], options: CompileOptions = CompileOptions(),
                specializationLimit: Int = 8) throws {
        proto = try ONNXImporter.parse(data, fileName: fileName)
        self.fileName = fileName
        self.dimensions = dimensions
        self.options = options
        self.specializationLimit = max(specializationLimit, 1)
        let declared = try ONNXImporter.declaredInputs(proto, fileName: fileName)
        inputNames = declared.map(\.name)
        outputNames = proto.graph.output.map(\.name)
        openInputs = declared.filter { $0.isOpen(given: dimensions) }.map(\.name)
        knownValueInputs = []
        guard openInputs.isEmpty else { return }
        do {
            let imported = try ONNXImporter.load(proto, fileName: fileName, dimensions: dimensions, inputShapes: [:], inputValues: [:], stages: true)
            compiled = [Specialization(shapes: [], values: [], computed: [:], end: imported.stageEnd,
                                       model: try Compiler.compile(imported.graph, outputs: imported.outputs, options: options))]
        } catch let LatheError.inputValuesNeeded(inputs, _) {
            knownValueInputs = inputs
        }
    }

    /// The inputs whose values the model is compiled for, as far as found: empty for most.
    public var valueInputs: [String] { lock.withLock { knownValueInputs } }

    /// How many compiled models are held now.
    public var compiledCount: Int { lock.withLock { compiled.count } }

    /// Runs on named host tensors, one for every input the file declares, value inputs
    /// included, and returns the named outputs.
    public func run(_ feeds: [String: HostTensor]) throws -> [String: HostTensor] {
        try checkNames(feeds)
        // Values earlier stages computed, by ONNX name, fed to the stages after them.
        var computed: [String: HostTensor] = [:]
        for stage in 1... {
            let entry = try specialization(for: feeds, computed: computed)
            let available = feeds.merging(computed) { $1 }
            let inputs = Set(entry.model.inputs.map(\.name))
            let results = try entry.model.run(available.filter { inputs.contains($0.key) })
            guard let end = entry.end else {
                lock.withLock { stagesPerRun = max(stagesPerRun, stage) }
                return results
            }
            for (name, _) in end.boundary { computed[name] = results[name] }
            let operands = end.operands.map { name in name.isEmpty ? nil : results[name] ?? end.constants[name] ?? available[name] }
            let outputs = try DynamicShapeOps.evaluate(end.node, operands, location: end.location)
            for (name, value) in zip(end.node.output, outputs) where !name.isEmpty { computed[name] = value }
        }
        fatalError("unreachable: stages are counted without end")
    }

    /// The compiled model that runs these feeds, compiled now if their value inputs' values are
    /// new, and the value inputs it was compiled for (not among its inputs). A model that runs in
    /// stages has none: LatheError.valueDependentShape.
    public func compiledModel(for feeds: [String: HostTensor]) throws -> (model: CompiledModel, valueInputs: [String]) {
        try checkNames(feeds)
        let entry = try specialization(for: feeds, computed: [:])
        if let end = entry.end { throw LatheError.valueDependentShape(node: "\(end.location): \(end.node.opType) node '\(end.node.displayName)'") }
        return (entry.model, entry.values.map(\.name))
    }

    private func checkNames(_ feeds: [String: HostTensor]) throws {
        for name in feeds.keys.sorted() where !inputNames.contains(name) { throw LatheError.unknownInput(name: name, known: inputNames) }
        for name in inputNames where feeds[name] == nil { throw LatheError.missingInput(name: name) }
    }

    /// The compiled stage (or whole model) for these feeds and the values earlier stages
    /// computed, compiled now if new.
    private func specialization(for feeds: [String: HostTensor], computed: [String: HostTensor]) throws -> Specialization {
        if let hit = try cached(feeds, computed) { return hit }
        return try compileLock.withLock {
            if let hit = try cached(feeds, computed) { return hit }
            let imported = try ONNXImporter.load(proto, fileName: fileName, dimensions: dimensions, inputShapes: feeds.mapValues(\.shape),
                                                 inputValues: feeds, stageInputs: computed.mapValues { TensorType($0.dtype, $0.shape) }, stages: true)
            let model = try Compiler.compile(imported.graph, outputs: imported.outputs, options: options)
            let entry = Specialization(shapes: openInputs.map { InputShape(name: $0, shape: feeds[$0]!.shape) },
                                       values: imported.valueInputs.map { InputValue(name: $0, value: feeds[$0]!) },
                                       computed: computed.mapValues { TensorType($0.dtype, $0.shape) }, end: imported.stageEnd, model: model)
            lock.withLock {
                for name in imported.valueInputs where !knownValueInputs.contains(name) { knownValueInputs.append(name) }
                compiled.append(entry)
                if compiled.count > specializationLimit * stagesPerRun { compiled.removeFirst() }
            }
            return entry
        }
    }

    /// The compiled model (or stage) for these feeds' shapes and values and the values earlier
    /// stages computed, marked most recently used; nil if none.
    private func cached(_ feeds: [String: HostTensor], _ computed: [String: HostTensor]) throws -> Specialization? {
        try lock.withLock {
            for name in openInputs + knownValueInputs where feeds[name] == nil { throw LatheError.missingInput(name: name) }
            guard let i = compiled.firstIndex(where: { $0.matches(feeds, computed) }) else { return nil }
            let entry = compiled.remove(at: i)
            compiled.append(entry)
            return entry
        }
    }
}

/// An open input's shape that a model was compiled for.
private struct InputShape {
    let name: String
    let shape: [Int]
}

/// A value input's value that a model was compiled for.
private struct InputValue {
    let name: String
    let value: HostTensor
}

/// A model (or a stage of one) compiled for the shapes of the open inputs, the values of some
/// inputs, and the types of the values earlier stages computed.
private struct Specialization {
    let shapes: [InputShape]
    let values: [InputValue]
    let computed: [String: TensorType]
    /// Where this stage ends: nil for a whole model, or a model's last stage.
    let end: StageEnd?
    let model: CompiledModel

    /// Whether the feeds have the shapes and hold the values (type, shape and bytes) this model
    /// was compiled for, and earlier stages computed values of the types it was compiled for.
    func matches(_ feeds: [String: HostTensor], _ computed: [String: HostTensor]) -> Bool {
        computed.count == self.computed.count && computed.allSatisfy { self.computed[$0.key] == TensorType($0.value.dtype, $0.value.shape) }
            && shapes.allSatisfy { feeds[$0.name]?.shape == $0.shape } && values.allSatisfy { v in
            guard let feed = feeds[v.name] else { return false }
            return feed.dtype == v.value.dtype && feed.shape == v.value.shape && feed.rawBytes == v.value.rawBytes
        }
    }
}
