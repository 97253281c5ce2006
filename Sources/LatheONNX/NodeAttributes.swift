import Foundation
import LatheIR

/// Typed access to a node's attributes, with ONNX's defaults supplied by the caller.
extension Onnx_NodeProto {
    func attribute(_ name: String) -> Onnx_AttributeProto? { attribute.first { $0.name == name } }

    func int(_ name: String, _ fallback: Int) -> Int { attribute(name).map { Int($0.i) } ?? fallback }
    func float(_ name: String, _ fallback: Float) -> Float { attribute(name).map { $0.f } ?? fallback }
    func ints(_ name: String) -> [Int]? { attribute(name).map { $0.ints.map { Int($0) } } }
    func floats(_ name: String) -> [Float]? { attribute(name).map { $0.floats } }
    func string(_ name: String, _ fallback: String) -> String {
        attribute(name).map { String(decoding: $0.s, as: UTF8.self) } ?? fallback
    }

    /// The node's name, or its first output's when it has none.
    var displayName: String { name.isEmpty ? (output.first ?? opType) : name }
}
