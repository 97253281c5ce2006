import Foundation
import Lathe
import LatheExamples
import Testing

@Suite("The object cache: a second compile of a model loads its machine code")
struct ObjectCacheTests {
    @Test func secondCompileHitsAndGivesTheSameNumbers() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-cache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let (graph, outputs) = try Examples.mnistCNN.graph(batch: 2)
        let options = CompileOptions(cacheDirectory: directory)
        let feeds = ["image": HostTensor.random(shape: [2, 1, 28, 28], seed: 3, in: 0...1)]

        let first = try graph.compile(outputs: outputs, options: options)
        #expect(first.compileStages.contains { $0.stage == "LLVM optimization" })
        let second = try graph.compile(outputs: outputs, options: options)
        #expect(second.compileStages.contains { $0.stage == "cache hit" })
        #expect(!second.compileStages.contains { $0.stage == "LLVM optimization" })
        #expect(try first.run(feeds)["probs"]! == second.run(feeds)["probs"]!)

        // Another thread count is other code: a miss.
        let threaded = try graph.compile(outputs: outputs, options: CompileOptions(threads: 2, cacheDirectory: directory))
        #expect(!threaded.compileStages.contains { $0.stage == "cache hit" })

        // A damaged entry is dropped and the model compiled afresh.
        for file in try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil) {
            try Data(repeating: 7, count: 4096).write(to: file)
        }
        let third = try graph.compile(outputs: outputs, options: options)
        #expect(third.compileStages.contains { $0.stage == "LLVM optimization" })
        #expect(try third.run(feeds)["probs"]! == first.run(feeds)["probs"]!)

        let uncached = try graph.compile(outputs: outputs, options: CompileOptions(cache: false, cacheDirectory: directory))
        #expect(uncached.compileStages.contains { $0.stage == "LLVM optimization" })
    }
}
