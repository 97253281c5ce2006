import Foundation
import Lathe
import Testing

/// The README's example, verbatim between the markers, so the front door never goes stale.
@Test func readmeExampleCompilesAndRuns() throws {
    let batch = HostTensor.random(shape: [64, 1, 28, 28], seed: 0, in: 0...1)
    // README-BEGIN
    let g = Graph(seed: 42)
    let x = try g.input("image", shape: [64, 1, 28, 28])
    let model = Sequential {
        Conv2D(32, kernel: 3, activation: .relu); MaxPool2D(2)
        Conv2D(64, kernel: 3, activation: .relu); MaxPool2D(2)
        Flatten(); Dense(128, activation: .relu); Dense(10, activation: .softmax)
    }
    let probs = try model(x)
    let compiled = try g.compile(outputs: ["probs": probs])
    let out = try compiled.run(["image": batch])
    print(out["probs"]!.shape)   // [64, 10]
    // README-END
    #expect(out["probs"]!.shape == [64, 10])
}

/// The README's transformer from token ids, verbatim between the markers.
@Test func readmeTransformerRunsOnTokenIds() throws {
    // README-BEGIN
    let g = Graph(seed: 7)
    let ids = try g.input("input_ids", dtype: .int64, shape: [1, 8])
    let mask = try g.input("attention_mask", dtype: .int64, shape: [1, 8])
    let x = try Embedding(vocabulary: 1000, dimension: 64)(ids)
    let y = try LayerNorm()(try x + MultiHeadAttention(heads: 4, keyDim: 16)(x, paddingMask: mask))
    let encoder = try g.compile(outputs: ["y": y])
    let out = try encoder.run([
        "input_ids": try HostTensor(shape: [1, 8], values: [101, 592, 88, 102, 0, 0, 0, 0] as [Int64]),
        "attention_mask": try HostTensor(shape: [1, 8], values: [1, 1, 1, 1, 0, 0, 0, 0] as [Int64]),
    ])
    print(out["y"]!.shape)   // [1, 8, 64]
    // README-END
    #expect(out["y"]!.shape == [1, 8, 64])
    let feeds = ["input_ids": try HostTensor(shape: [1, 8], values: [101, 592, 88, 102, 0, 0, 0, 0] as [Int64]),
                 "attention_mask": try HostTensor(shape: [1, 8], values: [1, 1, 1, 1, 0, 0, 0, 0] as [Int64])]
    let reference = try g.interpret(outputs: [("y", y)], feeds: feeds)["y"]!
    #expect(relativeError(out["y"]!, reference) <= 1e-5)
    // Padding is masked out: what the padded positions hold does not change the tokens' outputs.
    var other = feeds
    other["input_ids"] = try HostTensor(shape: [1, 8], values: [101, 592, 88, 102, 7, 8, 9, 10] as [Int64])
    let changed = try encoder.run(other)["y"]!
    #expect(Array(changed.scalars[..<256]) == Array(out["y"]!.scalars[..<256]))
    let outside = try HostTensor(shape: [1, 8], values: [101, 5000, 88, 102, 0, 0, 0, 0] as [Int64])
    #expect(throws: LatheError.self) { try encoder.run(["input_ids": outside, "attention_mask": feeds["attention_mask"]!]) }
}

/// Every marked region of this file is in the README, as it is here.
@Test func theReadmeShowsTheTestedCode() throws {
    let here = URL(fileURLWithPath: #filePath)
    let source = try String(contentsOf: here, encoding: .utf8)
    let readme = try String(contentsOf: here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("README.md"), encoding: .utf8)
    let regions = source.components(separatedBy: "// README-BEGIN\n").dropFirst().map { $0.components(separatedBy: "    // README-END")[0] }
    #expect(regions.count == 2)
    for region in regions {
        let code = region.split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasPrefix("    ") ? String($0.dropFirst(4)) : String($0) }
            .joined(separator: "\n")
        #expect(readme.contains(code), "README.md lacks:\n\(code)")
    }
}
