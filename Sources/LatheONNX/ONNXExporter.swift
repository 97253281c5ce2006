import Foundation
import LatheIR
import SwiftProtobuf

/// Writes a graph as an ONNX model (opset 20), for ONNX Runtime and the other tools that read
/// ONNX: a model built with the DSL and trained, say (`lathe export`).
///
/// The graph is written as it is built, before Lathe's passes (a fused kernel has no ONNX op):
/// each node becomes the ONNX node of the same meaning, named as the node, its result the value
/// of that name; constants become initializers, inputs and outputs keep their names and
/// shapes (static: the sizes the graph was built for). Ops that ONNX states in several nodes are
/// written so (a dense layer is one Gemm; an op with operands ONNX takes as inputs, a Reshape's
/// shape, a reduction's axes, a Slice's bounds, gets them as initializers). Every node whose op
/// has no ONNX form is listed in one LatheError.unsupportedOps.
///
/// With `symbolicBatch`, the first dimension of every input and output is the symbolic "batch",
/// and a Reshape that keeps its operand's first dimension keeps it for any size (ONNX's 0), so
/// that the model runs at any batch if its other ops do not fix one (a CNN's Conv, pooling,
/// Flatten and Gemm do not).
public enum ONNXExporter {
    public static let opset = 20

    /// The serialized model of `graph` computing `outputs`.
    public static func export(_ graph: Graph, outputs: [(name: String, value: ValueID)], symbolicBatch: Bool = false, producer: String = "Lathe") throws -> Data {
        var writer = Writer(graph: graph, symbolicBatch: symbolicBatch)
        // The nodes the outputs read, at any remove: a graph built for training holds more.
        var needed = Set(outputs.map(\.value))
        for node in graph.nodes.reversed() where needed.contains(node.id) { needed.formUnion(node.operands) }
        for node in graph.nodes where needed.contains(node.id) { try writer.write(node) }
        var unsupported: [String: [String]] = [:]
        for (op, name) in writer.unsupported { unsupported[op, default: []].append(name) }
        guard unsupported.isEmpty else {
            throw LatheError.unsupportedOps(unsupported.sorted { $0.key < $1.key }.map {
                UnsupportedOp(opType: $0.key, count: $0.value.count, nodes: $0.value, reason: "no ONNX form in the exporter")
            })
        }
        for (name, value) in outputs {
            if name != graph[value].name { writer.node("Identity", [graph[value].name], name: name) }
            writer.model.graph.output.append(valueInfo(name, graph[value].type, symbolicBatch: symbolicBatch))
        }
        writer.model.graph.name = "lathe"
        writer.model.irVersion = 9
        writer.model.producerName = producer
        var opsetImport = Onnx_OperatorSetIdProto()
        opsetImport.version = Int64(opset)
        writer.model.opsetImport = [opsetImport]
        return try writer.model.serializedData()
    }

    static func valueInfo(_ name: String, _ type: TensorType, symbolicBatch: Bool) -> Onnx_ValueInfoProto {
        var tensor = Onnx_TypeProto.Tensor()
        tensor.elemType = Int32(type.dtype.onnxCode)
        var shape = Onnx_TensorShapeProto()
        shape.dim = type.shape.enumerated().map { axis, size in
            var dimension = Onnx_TensorShapeProto.Dimension()
            if symbolicBatch && axis == 0 { dimension.dimParam = "batch" } else { dimension.dimValue = Int64(size) }
            return dimension
        }
        tensor.shape = shape
        var info = Onnx_ValueInfoProto()
        info.name = name
        info.type.tensorType = tensor
        return info
    }

    static func tensor(_ value: HostTensor, name: String) -> Onnx_TensorProto {
        var proto = Onnx_TensorProto()
        proto.name = name
        proto.dims = value.shape.map(Int64.init)
        proto.dataType = Int32(value.dtype.onnxCode)
        proto.rawData = Data(value.rawBytes)
        return proto
    }
}

/// The model being written, and the nodes that could not be.
private struct Writer {
    let graph: Graph
    let symbolicBatch: Bool
    var model = Onnx_ModelProto()
    var unsupported: [(op: String, node: String)] = []

    init(graph: Graph, symbolicBatch: Bool) { (self.graph, self.symbolicBatch) = (graph, symbolicBatch) }

    mutating func node(_ opType: String, _ inputs: [String], name: String, _ attributes: [Onnx_AttributeProto] = []) {
        var proto = Onnx_NodeProto()
        proto.opType = opType
        proto.name = name
        proto.input = inputs
        proto.output = [name]
        proto.attribute = attributes
        model.graph.node.append(proto)
    }

    /// An initializer of int64 values (a shape, axes, bounds), named after the node it serves.
    mutating func integers(_ values: [Int], for node: String, _ role: String) throws -> String {
        let name = "\(node).\(role)"
        model.graph.initializer.append(ONNXExporter.tensor(try HostTensor(shape: [values.count], values: values.map(Int64.init)), name: name))
        return name
    }

    /// A scalar f32 initializer (Clip's bounds).
    mutating func scalar(_ value: Float, for node: String, _ role: String) -> String {
        let name = "\(node).\(role)"
        model.graph.initializer.append(ONNXExporter.tensor(HostTensor(shape: [], repeating: value), name: name))
        return name
    }

    mutating func write(_ n: Node) throws {
        let inputs = n.operands.map { graph[$0].name }
        let name = n.name
        func attributes(_ pairs: [(String, AttributeValue)]) -> [Onnx_AttributeProto] { pairs.map { attribute($0.0, $0.1) } }
        switch n.op {
        case let .input(inputName):
            model.graph.input.append(ONNXExporter.valueInfo(inputName, n.type, symbolicBatch: symbolicBatch))
            if inputName != name { node("Identity", [inputName], name: name) }
        case let .constant(slot), let .variable(slot):
            model.graph.initializer.append(ONNXExporter.tensor(graph.constants[slot], name: name))
        case let .unary(fn):
            guard let mapped = Self.unary(fn) else { return unsupported.append(("unary \(fn)", name)) }
            let (opType, extra) = mapped
            if case let .clip(low, high) = fn {
                return node("Clip", inputs + [scalar(low, for: name, "min"), scalar(high, for: name, "max")], name: name)
            }
            node(opType, inputs, name: name, attributes(extra))
        case let .binary(fn):
            guard let opType = Self.binary[fn] else { return unsupported.append(("binary \(fn)", name)) }
            node(opType, inputs, name: name)
        case .select: node("Where", inputs, name: name)
        case .matmul: node("MatMul", inputs, name: name)
        case .dense: node("Gemm", inputs, name: name)
        case let .conv2d(a):
            guard !a.exactSums, a.padValue == 0 else { return unsupported.append(("conv2d with integer sums", name)) }
            let kernel = Array(graph[n.operands[1]].type.shape.suffix(2))
            node("Conv", inputs, name: name, attributes([("kernel_shape", .ints(kernel)), ("strides", .ints(a.strides)), ("pads", .ints(a.pads)),
                                                         ("dilations", .ints(a.dilations)), ("group", .int(a.groups))]))
        case let .convTranspose2d(a):
            let kernel = Array(graph[n.operands[1]].type.shape.suffix(2))
            node("ConvTranspose", inputs, name: name, attributes([("kernel_shape", .ints(kernel)), ("strides", .ints(a.strides)), ("pads", .ints(a.pads)),
                                                                  ("output_padding", .ints(a.outputPadding)), ("dilations", .ints(a.dilations)),
                                                                  ("group", .int(a.groups))]))
        case let .batchNorm(epsilon): node("BatchNormalization", inputs, name: name, attributes([("epsilon", .float(epsilon))]))
        case let .pool2d(a):
            var pairs: [(String, AttributeValue)] = [("kernel_shape", .ints(a.kernel)), ("strides", .ints(a.strides)), ("pads", .ints(a.pads)),
                                                     ("dilations", .ints(a.dilations))]
            if a.kind == .average { pairs.append(("count_include_pad", .int(a.countIncludePad ? 1 : 0))) }
            node(a.kind == .max ? "MaxPool" : "AveragePool", inputs, name: name, attributes(pairs))
        case .globalAveragePool: node("GlobalAveragePool", inputs, name: name)
        case var .reshape(shape):
            if symbolicBatch, let first = shape.first, first == graph[n.operands[0]].type.shape.first { shape[0] = 0 }
            node("Reshape", inputs + [try integers(shape, for: name, "shape")], name: name)
        case let .flatten(axis): node("Flatten", inputs, name: name, attributes([("axis", .int(axis))]))
        case let .transpose(perm): node("Transpose", inputs, name: name, attributes([("perm", .ints(perm))]))
        case let .concat(axis): node("Concat", inputs, name: name, attributes([("axis", .int(axis))]))
        case let .slice(starts, ends, steps):
            let axes = Array(0..<starts.count)
            node("Slice", inputs + [try integers(starts, for: name, "starts"), try integers(ends, for: name, "ends"), try integers(axes, for: name, "axes"),
                                    try integers(steps, for: name, "steps")], name: name)
        case let .softmax(axis): node("Softmax", inputs, name: name, attributes([("axis", .int(axis))]))
        case let .logSoftmax(axis): node("LogSoftmax", inputs, name: name, attributes([("axis", .int(axis))]))
        case let .layerNorm(axis, epsilon):
            node("LayerNormalization", inputs, name: name, attributes([("axis", .int(axis)), ("epsilon", .float(epsilon))]))
        case let .reduce(kind, axes, keepDims):
            let opType = ["sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax", "prod": "ReduceProd", "min": "ReduceMin"][kind.rawValue]!
            node(opType, inputs + [try integers(axes, for: name, "axes")], name: name, attributes([("keepdims", .int(keepDims ? 1 : 0))]))
        case .dropout: node("Identity", [inputs[0]], name: name)
        case let .gather(axis): node("Gather", inputs, name: name, attributes([("axis", .int(axis))]))
        case let .cast(to, rule) where rule == .standard: node("Cast", inputs, name: name, attributes([("to", .int(to.onnxCode))]))
        default: unsupported.append((n.op.name, name))
        }
    }

    /// ONNX's op type and attributes of a unary function, or nil (Clip is written apart).
    static func unary(_ fn: UnaryFn) -> (String, [(String, AttributeValue)])? {
        switch fn {
        case .neg: return ("Neg", [])
        case .abs: return ("Abs", [])
        case .exp: return ("Exp", [])
        case .log: return ("Log", [])
        case .sqrt: return ("Sqrt", [])
        case .reciprocal: return ("Reciprocal", [])
        case .erf: return ("Erf", [])
        case .floor: return ("Floor", [])
        case .ceil: return ("Ceil", [])
        case .round: return ("Round", [])
        case .sign: return ("Sign", [])
        case .not: return ("Not", [])
        case .isNaN: return ("IsNaN", [])
        case .sin: return ("Sin", [])
        case .cos: return ("Cos", [])
        case .relu: return ("Relu", [])
        case .sigmoid: return ("Sigmoid", [])
        case .tanh: return ("Tanh", [])
        case .gelu: return ("Gelu", [])
        case .geluTanh: return ("Gelu", [("approximate", .string("tanh"))])
        case .softplus: return ("Softplus", [])
        case .softsign: return ("Softsign", [])
        case .hardSwish: return ("HardSwish", [])
        case let .leakyRelu(alpha): return ("LeakyRelu", [("alpha", .float(alpha))])
        case .clip: return ("Clip", [])
        case let .elu(alpha): return ("Elu", [("alpha", .float(alpha))])
        case let .selu(alpha, gamma): return ("Selu", [("alpha", .float(alpha)), ("gamma", .float(gamma))])
        case let .hardSigmoid(alpha, beta): return ("HardSigmoid", [("alpha", .float(alpha)), ("beta", .float(beta))])
        default: return nil
        }
    }

    static let binary: [BinaryFn: String] = [
        .add: "Add", .sub: "Sub", .mul: "Mul", .div: "Div", .max: "Max", .min: "Min", .pow: "Pow",
        .equal: "Equal", .less: "Less", .lessOrEqual: "LessOrEqual", .greater: "Greater", .greaterOrEqual: "GreaterOrEqual",
        .and: "And", .or: "Or", .xor: "Xor",
    ]
}

/// An attribute's value.
private enum AttributeValue {
    case int(Int), ints([Int]), float(Float), string(String)
}

private func attribute(_ name: String, _ value: AttributeValue) -> Onnx_AttributeProto {
    var proto = Onnx_AttributeProto()
    proto.name = name
    switch value {
    case let .int(i): proto.type = .int; proto.i = Int64(i)
    case let .ints(v): proto.type = .ints; proto.ints = v.map(Int64.init)
    case let .float(f): proto.type = .float; proto.f = f
    case let .string(s): proto.type = .string; proto.s = Data(s.utf8)
    }
    return proto
}
