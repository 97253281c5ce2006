import Foundation
import LatheIR
import SwiftProtobuf

/// A model read from an ONNX file: the graph and its named outputs.
public struct ImportedModel {
    public let graph: Graph
    public let outputs: [(name: String, value: ValueID)]
    /// The default-domain opset the model was written for.
    public let opset: Int
    public let producer: String
    /// The inputs the graph was built for the values of (each sets a shape, axes, pads...):
    /// constants of this graph, not among its inputs. Empty for most models.
    public let valueInputs: [String]
    /// Set when the import stopped at a node whose output sizes depend on run-time values (an
    /// import for ONNXModel's staged runs): `outputs` are then the values the rest reads.
    var stageEnd: StageEnd? = nil
}

/// Reads ONNX models (protobuf, opsets 7 to 28) into the graph IR. Initializers become
/// constants, and computations over constants (shape subgraphs, weight transposes) are done at
/// import. Every op type that cannot be imported is listed in one error.
public enum ONNXImporter {
    /// Semantics follow opset 21. Opsets 22 to 28 (onnx 1.23) changed the ops Lathe reads only
    /// by admitting more element types (checked against onnx.defs: same attributes, defaults
    /// and operands; Range's stash_type concerns types Lathe does not compute in), so their
    /// models are read the same way.
    public static let supportedOpsets = 7...28

    /// The graph is built for concrete input shapes. `dimensions` gives sizes to symbolic
    /// dimensions by name ("batch": 8); `inputShapes` gives inputs' whole shapes (a feed's),
    /// which also size the symbolic names they hold and any unnamed dimensions. A dimension
    /// neither gives is LatheError.dimensionNeeded (ONNXModel sizes them from each run's feeds).
    ///
    /// `inputValues` holds values for inputs the graph may need at import: where an operand
    /// that must be known then (a Reshape's shape, a Pad's pads, a reduction's axes) is
    /// computed from graph inputs, those inputs' values are taken from it and become constants,
    /// and the graph is built for them (ImportedModel.valueInputs lists them). Values of other
    /// inputs are not used (but their shapes are). Without the values needed the import throws
    /// LatheError.inputValuesNeeded.
    public static func load(contentsOf url: URL, dimensions: [String: Int] = [:], inputShapes: [String: [Int]] = [:],
                            inputValues: [String: HostTensor] = [:]) throws -> ImportedModel {
        try load(read(url), fileName: url.lastPathComponent, dimensions: dimensions, inputShapes: inputShapes, inputValues: inputValues)
    }

    public static func load(_ data: Data, fileName: String = "model.onnx", dimensions: [String: Int] = [:], inputShapes: [String: [Int]] = [:],
                            inputValues: [String: HostTensor] = [:]) throws -> ImportedModel {
        try load(parse(data, fileName: fileName), fileName: fileName, dimensions: dimensions, inputShapes: inputShapes, inputValues: inputValues)
    }

    /// Imports a parsed model, taking the values of `inputValues` for the inputs the graph
    /// depends on: each import that stops for want of some input's values starts again with them.
    static func load(_ model: Onnx_ModelProto, fileName: String, dimensions: [String: Int], inputShapes: [String: [Int]],
                     inputValues: [String: HostTensor], stageInputs: [String: TensorType] = [:], stages: Bool = false) throws -> ImportedModel {
        let inputs = try declaredInputs(model, fileName: fileName)
        for input in inputs {
            if let value = inputValues[input.name], value.dtype != input.dtype {
                throw LatheError.inputElementTypeMismatch(name: input.name, expected: input.dtype, got: value.dtype)
            }
        }
        let shapes = try InputShapes(inputs, dimensions: dimensions, given: inputShapes.merging(inputValues.mapValues(\.shape)) { $1 })
        var taken: [String: HostTensor] = [:]
        while true {
            do {
                return try importGraph(model, inputs: inputs, shapes: shapes, fileName: fileName, constantInputs: taken,
                                       stageInputs: stageInputs, stages: stages)
            } catch let LatheError.inputValuesNeeded(inputs, operand) {
                let missing = inputs.filter { taken[$0] == nil }
                guard !missing.isEmpty, missing.allSatisfy({ inputValues[$0] != nil }) else {
                    throw LatheError.inputValuesNeeded(inputs: inputs.filter { inputValues[$0] == nil }, operand: operand)
                }
                for name in missing { taken[name] = inputValues[name] }
            }
        }
    }

    /// The graph inputs that are not initializers, as the file declares them.
    static func declaredInputs(_ model: Onnx_ModelProto, fileName: String) throws -> [DeclaredInput] {
        let initialized = Set(model.graph.initializer.map(\.name))
        return try model.graph.input.filter { !initialized.contains($0.name) }.map { try DeclaredInput($0, fileName: fileName) }
    }

    static func read(_ url: URL) throws -> Data {
        do { return try Data(contentsOf: url) } catch {
            throw LatheError.malformedModel("cannot read \(url.path): \(error.localizedDescription)")
        }
    }

    /// The model's protobuf, checked to hold a graph with outputs of an opset Lathe reads, and
    /// no op type it does not import (all such listed at once).
    static func parse(_ data: Data, fileName: String) throws -> Onnx_ModelProto {
        let model: Onnx_ModelProto
        do { model = try Onnx_ModelProto(serializedBytes: data) } catch {
            throw LatheError.malformedModel("\(fileName) is not an ONNX model (\(error))")
        }
        guard model.hasGraph, !model.graph.output.isEmpty else {
            throw LatheError.malformedModel("\(fileName) holds no graph with outputs; is it an ONNX model?")
        }
        let opset = opset(of: model)
        guard supportedOpsets.contains(opset) else {
            throw LatheError.unsupported("\(fileName) uses opset \(opset); Lathe reads opsets \(supportedOpsets.lowerBound) to \(supportedOpsets.upperBound)")
        }
        try checkSupported(model.graph)
        return model
    }

    static func opset(of model: Onnx_ModelProto) -> Int {
        model.opsetImport.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }.map { Int($0.version) } ?? 1
    }

    /// One import: the inputs in `constantInputs` are constants of those values.
    private static func importGraph(_ model: Onnx_ModelProto, inputs: [DeclaredInput], shapes: InputShapes, fileName: String,
                                    constantInputs: [String: HostTensor], stageInputs: [String: TensorType], stages: Bool) throws -> ImportedModel {
        let opset = opset(of: model)
        let context = ImportContext(opset: opset, fileName: fileName, stageInputs: stageInputs, stages: stages)
        for tensor in model.graph.initializer {
            var constant = try ConstantTensor(tensor, name: tensor.name)
            constant.origin = tensor.name
            context.define(tensor.name, .constant(constant))
        }
        var valueInputs: [String] = []
        for input in inputs {
            if let value = constantInputs[input.name] {
                var constant = ConstantTensor(value)
                constant.origin = input.name
                context.define(input.name, .constant(constant))
                valueInputs.append(input.name)
            } else {
                let id = try context.graph.addInput(name: input.name, shape: try shapes.shape(of: input), dtype: input.dtype,
                                                    location: SourceLocation(fileID: fileName, line: 0))
                context.define(input.name, .node(id))
            }
        }
        do {
            try context.importNodes(model.graph.node, outputs: model.graph.output.map(\.name))
        } catch let end as StageEnd {
            return ImportedModel(graph: context.graph, outputs: end.boundary, opset: opset, producer: model.producerName,
                                 valueInputs: valueInputs, stageEnd: end)
        }
        let outputs = try model.graph.output.map { output -> (name: String, value: ValueID) in
            (output.name, context.materialize(try context.value(output.name)))
        }
        return ImportedModel(graph: context.graph, outputs: outputs, opset: opset, producer: model.producerName, valueInputs: valueInputs)
    }

    /// The ONNX op types (default domain) the importer reads.
    public static var supportedOpTypes: Set<String> { Set(OpHandlers.table.keys) }

    /// Reads a serialized TensorProto (as in ONNX's test data) as a tensor of its own type.
    public static func readTensor(_ data: Data, name: String = "tensor") throws -> HostTensor {
        let proto: Onnx_TensorProto
        do { proto = try Onnx_TensorProto(serializedBytes: data) } catch {
            throw LatheError.malformedFile("\(name) is not a TensorProto (\(error))")
        }
        return try ConstantTensor(proto, name: name).hostTensor
    }

    /// What a model uses, read without importing it (for test suites and reports): its op types,
    /// and whether every graph input and output is a float32 tensor.
    public static func summary(_ data: Data) throws -> (opTypes: [String], float32Interface: Bool) {
        let model: Onnx_ModelProto
        do { model = try Onnx_ModelProto(serializedBytes: data) } catch { throw LatheError.malformedModel("not an ONNX model (\(error))") }
        let ops = allNodes(model.graph).map { $0.domain.isEmpty || $0.domain == "ai.onnx" ? $0.opType : "\($0.domain).\($0.opType)" }
        let initialized = Set(model.graph.initializer.map(\.name))
        let io = model.graph.input.filter { !initialized.contains($0.name) } + model.graph.output
        let allFloat = io.allSatisfy { info in
            if case let .tensorType(t)? = info.type.value { return t.elemType == Int32(DType.float32.onnxCode) }
            return false
        }
        return (ops, allFloat)
    }

    /// The names a node reads: its operands, and what the nodes of its subgraphs read and return.
    static func names(readBy node: Onnx_NodeProto) -> Set<String> {
        var names = Set(node.input.filter { !$0.isEmpty })
        for g in node.attribute.flatMap({ a in (a.hasG ? [a.g] : []) + a.graphs }) {
            names.formUnion(g.output.map(\.name))
            for inner in g.node { names.formUnion(Self.names(readBy: inner)) }
        }
        return names
    }

    /// The graph's nodes, each followed by those of its subgraphs.
    static func allNodes(_ graph: Onnx_GraphProto) -> [Onnx_NodeProto] {
        graph.node.flatMap { node in [node] + node.attribute.flatMap { a in (a.hasG ? [a.g] : []) + a.graphs }.flatMap(allNodes) }
    }

    /// Lists every node whose op type (or domain) Lathe does not import, grouped by op type,
    /// the nodes of subgraphs (If's branches, Loop's and Scan's bodies) too.
    static func checkSupported(_ graph: Onnx_GraphProto) throws {
        var missing: [String: UnsupportedOp] = [:]
        var order: [String] = []
        for node in allNodes(graph) {
            let known = (node.domain.isEmpty || node.domain == "ai.onnx") && OpHandlers.table[node.opType] != nil
            guard !known else { continue }
            let key = node.domain.isEmpty ? node.opType : "\(node.domain).\(node.opType)"
            if missing[key] == nil {
                order.append(key)
                missing[key] = UnsupportedOp(opType: key, count: 0, nodes: [])
            }
            missing[key]!.count += 1
            missing[key]!.nodes.append(node.displayName)
        }
        if !order.isEmpty { throw LatheError.unsupportedOps(order.map { missing[$0]! }) }
    }
}
