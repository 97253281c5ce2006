import Foundation
import Lathe
import LatheExamples
import Testing

private let subset = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Data/mnist-subset")

@Suite("Transfer learning")
struct TransferLearningTests {
    /// examples/Models/TransferMNIST.swift on the committed MNIST subset (2,000 training
    /// images, about 1,000 of each half): the base learns 0-4, its ONNX export frozen under a
    /// new head learns 5-9, and the base computes the same features bit for bit afterwards.
    @Test("a CNN learns 0-4; its export, frozen, carries a new head to 5-9")
    func transferOnTheSubset() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-transfer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var lines: [String] = []
        let report = try TransferMNIST.run(data: subset, directory: directory, epochs: 2, batchSize: 32, threads: 2) { lines.append($0) }
        #expect(report.baseUnchanged, "the frozen base's features changed")
        #expect(report.headChanged, "the head did not learn")
        #expect(report.baseAccuracy > 0.9 && report.transferAccuracy > 0.85, "\(lines)")
        #expect(FileManager.default.fileExists(atPath: report.exported.path))
        #expect(lines.count == 4, "\(lines)")
    }
}
