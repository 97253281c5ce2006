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
            let imported = try ONNXImporter.load(proto, fileName: fileName, dimensions: dimensions, inputShapes: [:], inputValues: [:])
            compiled = [Specialization(shapes: [], values: [], model: try Compiler.compile(imported.graph, outputs: imported.outputs, options: options))]
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
        let (model, valueInputs) = try compiledModel(for: feeds)
        return try model.run(feeds.filter { !valueInputs.contains($0.key) })
    }

    /// The compiled model that runs these feeds, compiled now if their value inputs' values are
    /// new, and the value inputs it was compiled for (not among its inputs).
    public func compiledModel(for feeds: [String: HostTensor]) throws -> (model: CompiledModel, valueInputs: [String]) {
        for name in feeds.keys.sorted() where !inputNames.contains(name) { throw LatheError.unknownInput(name: name, known: inputNames) }
        for name in inputNames where feeds[name] == nil { throw LatheError.missingInput(name: name) }
        if let hit = try cached(feeds) { return hit }
        return try compileLock.withLock {
            if let hit = try cached(feeds) { return hit }
            let imported = try ONNXImporter.load(proto, fileName: fileName, dimensions: dimensions,
                                                 inputShapes: feeds.mapValues(\.shape), inputValues: feeds)
            let model = try Compiler.compile(imported.graph, outputs: imported.outputs, options: options)
            let shapes = openInputs.map { InputShape(name: $0, shape: feeds[$0]!.shape) }
            let values = imported.valueInputs.map { InputValue(name: $0, value: feeds[$0]!) }
            lock.withLock {
                for name in imported.valueInputs where !knownValueInputs.contains(name) { knownValueInputs.append(name) }
                compiled.append(Specialization(shapes: shapes, values: values, model: model))
                if compiled.count > specializationLimit { compiled.removeFirst() }
            }
            return (model, imported.valueInputs)
        }
    }

    /// The compiled model for these feeds' shapes and values, marked most recently used; nil if
    /// none.
    private func cached(_ feeds: [String: HostTensor]) throws -> (model: CompiledModel, valueInputs: [String])? {
        try lock.withLock {
            for name in openInputs + knownValueInputs where feeds[name] == nil { throw LatheError.missingInput(name: name) }
            guard let i = compiled.firstIndex(where: { $0.matches(feeds) }) else { return nil }
            let entry = compiled.remove(at: i)
            compiled.append(entry)
            return (entry.model, entry.values.map(\.name))
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

/// A model compiled for the shapes of the open inputs and the values of some inputs.
private struct Specialization {
    let shapes: [InputShape]
    let values: [InputValue]
    let model: CompiledModel

    /// Whether the feeds have the shapes and hold the values (type, shape and bytes) this model
    /// was compiled for.
    func matches(_ feeds: [String: HostTensor]) -> Bool {
        shapes.allSatisfy { feeds[$0.name]?.shape == $0.shape } && values.allSatisfy { v in
            guard let feed = feeds[v.name] else { return false }
            return feed.dtype == v.value.dtype && feed.shape == v.value.shape && feed.rawBytes == v.value.rawBytes
        }
    }
}
