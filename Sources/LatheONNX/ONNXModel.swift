import Foundation
import LatheIR
import LatheRuntime

/// An ONNX model ready to run: read and checked once, compiled for the values it needs.
///
/// Most models compile once, when made. Some compute a shape from an input's values: a Pad
/// whose pads, a Reshape whose shape, a reduction whose axes or a Range whose limit come from
/// a graph input. Lathe compiles every shape statically, so such a model is compiled for the
/// values of those inputs (`valueInputs`), on the first run that feeds them, and again for each
/// new set of values; the `specializationLimit` most recently used compiled models are kept,
/// and the machine-code cache makes compiling a set seen before cheap.
///
/// ```swift
/// let model = try ONNXModel(contentsOf: URL(fileURLWithPath: "pad.onnx"))
/// // model.valueInputs == ["pads"]: the output's shape depends on them
/// let y = try model.run(["x": x, "pads": HostTensor([1, 1, 0, 0] as [Int64], shape: [4])])["y"]!
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
    /// The inputs found so far whose values set shapes. An import that is given some of them
    /// may find more further on, so this grows as runs compile new values.
    private var knownValueInputs: [String]
    /// Compiled models, each with the value inputs it was built for and their values, most
    /// recently used last.
    private var compiled: [Specialization] = []
    private let lock = NSLock()
    /// Held while compiling, so concurrent first runs of new values compile each set once.
    private let compileLock = NSLock()

    public convenience init(contentsOf url: URL, dimensions: [String: Int] = [:], options: CompileOptions = CompileOptions(), specializationLimit: Int = 8) throws {
        try self.init(ONNXImporter.read(url), fileName: url.lastPathComponent, dimensions: dimensions, options: options, specializationLimit: specializationLimit)
    }

    /// Reads the model, and compiles it unless its shapes depend on input values.
    public init(_ data: Data, fileName: String = "model.onnx", dimensions: [String: Int] = [:], options: CompileOptions = CompileOptions(),
                specializationLimit: Int = 8) throws {
        proto = try ONNXImporter.parse(data, fileName: fileName)
        self.fileName = fileName
        self.dimensions = dimensions
        self.options = options
        self.specializationLimit = max(specializationLimit, 1)
        let initialized = Set(proto.graph.initializer.map(\.name))
        inputNames = proto.graph.input.map(\.name).filter { !initialized.contains($0) }
        outputNames = proto.graph.output.map(\.name)
        do {
            let imported = try ONNXImporter.load(proto, fileName: fileName, dimensions: dimensions, inputValues: [:])
            knownValueInputs = []
            compiled = [Specialization(values: [], model: try Compiler.compile(imported.graph, outputs: imported.outputs, options: options))]
        } catch let LatheError.inputValuesNeeded(inputs, _) {
            knownValueInputs = inputs
        }
    }

    /// The inputs whose values the model is compiled for (each sets a shape), as far as found:
    /// empty for a model compiled once.
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
        if let hit = try cached(feeds) { return hit }
        return try compileLock.withLock {
            if let hit = try cached(feeds) { return hit }
            let imported = try ONNXImporter.load(proto, fileName: fileName, dimensions: dimensions, inputValues: feeds)
            let model = try Compiler.compile(imported.graph, outputs: imported.outputs, options: options)
            let values = imported.valueInputs.map { InputValue(name: $0, value: feeds[$0]!) }
            lock.withLock {
                for name in imported.valueInputs where !knownValueInputs.contains(name) { knownValueInputs.append(name) }
                compiled.append(Specialization(values: values, model: model))
                if compiled.count > specializationLimit { compiled.removeFirst() }
            }
            return (model, imported.valueInputs)
        }
    }

    /// The compiled model for these feeds' values, marked most recently used; nil if none.
    private func cached(_ feeds: [String: HostTensor]) throws -> (model: CompiledModel, valueInputs: [String])? {
        try lock.withLock {
            for name in knownValueInputs where feeds[name] == nil { throw LatheError.missingInput(name: name) }
            guard let i = compiled.firstIndex(where: { $0.matches(feeds) }) else { return nil }
            let entry = compiled.remove(at: i)
            compiled.append(entry)
            return (entry.model, entry.values.map(\.name))
        }
    }
}

/// A value input's value that a model was compiled for.
private struct InputValue {
    let name: String
    let value: HostTensor
}

/// A model compiled for the values of some inputs.
private struct Specialization {
    let values: [InputValue]
    let model: CompiledModel

    /// Whether the feeds hold the values this model was compiled for (type, shape and bytes).
    func matches(_ feeds: [String: HostTensor]) -> Bool {
        values.allSatisfy { v in
            guard let feed = feeds[v.name] else { return false }
            return feed.dtype == v.value.dtype && feed.shape == v.value.shape && feed.rawBytes == v.value.rawBytes
        }
    }
}
