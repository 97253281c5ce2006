import Foundation
import Lathe
import LatheIR

/// An ONNX model, or its part up to a named value, as a layer of a DSL model: a pretrained
/// base under a new head, frozen (`trainable = false`) or fine-tuned.
///
///     let base = try ONNXLayer(contentsOf: URL(fileURLWithPath: "cnn.onnx"), upTo: "flatten1")
///     base.trainable = false
///     let model = Sequential { base; Dense(64, activation: .relu); Dropout(0.3); Dense(5, activation: .softmax) }
///
/// Each call imports the model for the shape of its input (the model's one graph input; the
/// other inputs must be initializers) and adds its nodes to the input's graph, named under the
/// layer's name ("onnx1.conv1"). Its float weights (constants of two or more elements but a
/// BatchNorm's running statistics) are the layer's parameters: constants while it is frozen or
/// built for inference, trainable variables otherwise, their learned values kept by the layer
/// for the graphs it builds next.
public final class ONNXLayer: Layer {
    public var trainable = true
    /// The value the layer computes: `upTo`, or the model's output.
    public let output: String
    /// The model's input the layer's input feeds.
    public let input: String
    private let model: Onnx_ModelProto
    private let fileName: String
    /// Learned weights by the name of their constant in the imported graph.
    private var learned: [String: HostTensor] = [:]
    let location: SourceLocation

    /// Reads the model now; `upTo` names a node (its first output) or a value of the model,
    /// else the model's only output is the layer's.
    public convenience init(contentsOf url: URL, upTo: String? = nil, fileID: String = #fileID, line: Int = #line) throws {
        try self.init(ONNXImporter.read(url), fileName: url.lastPathComponent, upTo: upTo, fileID: fileID, line: line)
    }

    public init(_ data: Data, fileName: String = "model.onnx", upTo: String? = nil, fileID: String = #fileID, line: Int = #line) throws {
        location = SourceLocation(fileID: fileID, line: line)
        self.fileName = fileName
        let parsed = try ONNXImporter.parse(data, fileName: fileName)
        let initializers = Set(parsed.graph.initializer.map(\.name))
        let inputs = parsed.graph.input.map(\.name).filter { !initializers.contains($0) }
        guard inputs.count == 1 else {
            throw LatheError.invalidGraph(node: fileName, reason: "an ONNXLayer takes a model of one input, not \(inputs.count) (\(inputs.joined(separator: ", ")))")
        }
        input = inputs[0]
        if let upTo {
            if let node = parsed.graph.node.first(where: { $0.name == upTo }), let first = node.output.first {
                output = first
            } else if parsed.graph.node.contains(where: { $0.output.contains(upTo) }) {
                output = upTo
            } else {
                throw LatheError.invalidGraph(node: fileName, reason: "no node or value named '\(upTo)' to stop at")
            }
        } else {
            guard parsed.graph.output.count == 1 else {
                throw LatheError.invalidGraph(node: fileName, reason: "the model has \(parsed.graph.output.count) outputs: name the one the layer computes with upTo")
            }
            output = parsed.graph.output[0].name
        }
        model = Self.pruned(parsed, to: output)
    }

    /// The model computing `output` alone: its nodes that value needs, and it as the output.
    static func pruned(_ model: Onnx_ModelProto, to output: String) -> Onnx_ModelProto {
        var needed: Set<String> = [output]
        var kept: [Onnx_NodeProto] = []
        for node in model.graph.node.reversed() where node.output.contains(where: needed.contains) {
            kept.append(node)
            needed.formUnion(ONNXImporter.names(readBy: node))
        }
        var result = model
        result.graph.node = kept.reversed()
        var value = Onnx_ValueInfoProto()
        value.name = output
        result.graph.output = [value]
        let initializers = Set(model.graph.initializer.map(\.name))
        result.graph.initializer = model.graph.initializer.filter { needed.contains($0.name) }
        // Older files list their initializers among the inputs too: those dropped go from both.
        result.graph.input = model.graph.input.filter { !initializers.contains($0.name) || needed.contains($0.name) }
        return result
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let imported = try ONNXImporter.load(model, fileName: fileName, dimensions: [:], inputShapes: [input: x.shape], inputValues: [:])
        guard imported.stageEnd == nil, let result = imported.outputs.first?.value else {
            throw LatheError.invalidGraph(node: fileName, reason: "the layer's part of the model must import whole for its input's shape")
        }
        let part = imported.graph, g = x.graph
        let prefix = g.freshName("onnx")
        // Constants a BatchNorm reads as its running statistics stay constants.
        var statistics: Set<ValueID> = []
        for node in part.nodes { if case .batchNorm = node.op { statistics.formUnion(node.operands.dropFirst(3)) } }
        var mapped: [ValueID: ValueID] = [:]
        for node in part.nodes {
            switch node.op {
            case .input:
                guard node.type == x.type else {
                    throw LatheError.shapeMismatch(op: "onnx_layer", shapes: [x.shape, node.type.shape],
                                                   reason: "the model's input '\(input)' is \(node.type), the layer's input \(x.type)", location: location)
                }
                mapped[node.id] = x.id
            case let .constant(slot):
                let value = part.constants[slot]
                if value.dtype == .float32, value.count >= 2, !statistics.contains(node.id) {
                    let key = node.name
                    mapped[node.id] = g.parameter(learned[key] ?? value, name: "\(prefix).\(node.name)", trainable: trainable, location,
                                                  current: { [weak self] in self?.learned[key] ?? value }) { [weak self] in self?.learned[key] = $0 }.id
                } else {
                    mapped[node.id] = g.addConstant(value, name: "\(prefix).\(node.name)", location: node.location)
                }
            default:
                let operands = try node.operands.map { operand -> ValueID in
                    guard let value = mapped[operand] else { throw LatheError.foreignValue("operand \(operand) of \(node.name)") }
                    return value
                }
                mapped[node.id] = try g.addNode(node.op, operands, name: "\(prefix).\(node.name)", location: node.location)
            }
        }
        guard let value = mapped[result] else { throw LatheError.foreignValue("the output \(output)") }
        return Tensor(graph: g, id: value)
    }
}
