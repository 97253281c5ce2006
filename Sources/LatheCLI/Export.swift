import ArgumentParser
import Foundation
import Lathe
import LatheONNX

/// `lathe export`: a built-in model (with trained weights) as an ONNX file.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a built-in model, with its weights (--weights: as `lathe train --save` writes them), as an ONNX file (opset 20).")

    @OptionGroup var options: ModelOptions

    @Option(name: .shortAndLong, help: "The .onnx file to write.")
    var output: String

    @Flag(help: "Make the first dimension of the inputs and outputs the symbolic 'batch' (a CNN then runs at any batch size).")
    var symbolicBatch = false

    func run() throws {
        let built = try options.build()
        let data = try ONNXExporter.export(built.graph, outputs: built.outputs, symbolicBatch: symbolicBatch)
        try data.write(to: URL(fileURLWithPath: output))
        print("\(output): \(built.graph.nodes.count) nodes, outputs \(built.outputs.map(\.name).joined(separator: ", ")), \(data.count / 1024) KiB")
    }
}
