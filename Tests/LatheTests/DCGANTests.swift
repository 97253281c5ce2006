import Foundation
import Lathe
import LatheExamples
import Testing

@Suite("DCGAN training and PNG grids")
struct DCGANTests {
    /// examples/Models/DCGANMNIST.swift on the MNIST subset, a few batches: both losses finite,
    /// one grid a epoch, each a PNG of 8 x 8 digits.
    @Test("two epochs of a few batches: finite losses and a PNG grid each epoch")
    func trainsAndWritesGrids() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-dcgan-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var lines: [String] = []
        let report = try DCGANMNIST.run(data: mnistSubset, epochs: 2, batchSize: 16, samples: directory, limit: 64, threads: 2) { lines.append($0) }
        #expect(report.discriminatorLosses.count == 2 && report.generatorLosses.count == 2)
        #expect((report.discriminatorLosses + report.generatorLosses).allSatisfy { $0.isFinite && $0 > 0 }, "\(lines)")
        #expect(report.samples.map(\.lastPathComponent) == ["epoch-1.png", "epoch-2.png"])
        let png = try Data(contentsOf: report.samples[0])
        #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        // IHDR: 8 x (28 + 2) + 2 = 242 pixels square, 8-bit grayscale.
        #expect(Array(png[12..<16]) == Array("IHDR".utf8) && Array(png[16..<26]) == [0, 0, 0, 242, 0, 0, 0, 242, 8, 0])
    }

    @Test("a PNG's bytes: stored deflate blocks and the checksums zlib and PNG readers check")
    func pngBytes() throws {
        let png = try PNGImage.grayscale(width: 2, height: 2, pixels: [0, 255, 128, 7])
        // Signature, IHDR (25 bytes), IDAT: zlib header 78 01, one final stored block of 6 bytes
        // (two rows, each a filter byte and two pixels), Adler-32; then IEND.
        let idat = Array(png[33..<(33 + 8 + 2 + 5 + 6 + 4 + 4)])
        #expect(Array(idat[4..<8]) == Array("IDAT".utf8))
        #expect(Array(idat[8..<15]) == [0x78, 0x01, 0x01, 6, 0, 0xF9, 0xFF])
        #expect(Array(idat[15..<21]) == [0, 0, 255, 0, 128, 7])
        // Adler-32 of those 6 bytes: a = 1 + 390 = 391, b = 1 + 1 + 256 + 256 + 384 + 391 = 1289.
        #expect(Array(idat[21..<25]) == [0x05, 0x09, 0x01, 0x87])
        #expect(Array(png.suffix(12)) == [0, 0, 0, 0, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82])
        #expect(throws: LatheError.self) { try PNGImage.grayscale(width: 3, height: 2, pixels: [0]) }
    }
}
