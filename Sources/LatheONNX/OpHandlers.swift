import LatheIR

/// How each ONNX op type becomes IR: one entry per op type, grouped by kind in the
/// OpHandlers+*.swift files. A handler reads the current node from the context and returns
/// the node's outputs in order.
enum OpHandlers {
    typealias Handler = (ImportContext) throws -> [ImportedValue]

    static let table: [String: Handler] = elementwise
        .merging(neuralNetwork) { a, _ in a }
        .merging(shapes) { a, _ in a }
        .merging(recurrent) { a, _ in a }
        .merging(composed) { a, _ in a }
        .merging(losses) { a, _ in a }
        .merging(indexing) { a, _ in a }
        .merging(attention) { a, _ in a }
        .merging(resize) { a, _ in a }
        .merging(layout) { a, _ in a }
        .merging(quantize) { a, _ in a }
        .merging(einsum) { a, _ in a }
        .merging(controlFlow) { a, _ in a }
        .merging(dynamicShapes) { a, _ in a }
        .merging(sampling) { a, _ in a }
        .merging(rearrange) { a, _ in a }
        .merging(spectral) { a, _ in a }
        .merging(stateSpace) { a, _ in a }
        .merging(text) { a, _ in a }
}
