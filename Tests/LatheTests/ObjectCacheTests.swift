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
        #expect(first.compileStages.contains { $0.stage == "LLVM optimization and machine code" })
        let second = try graph.compile(outputs: outputs, options: options)
        #expect(second.compileStages.contains { $0.stage == "cache hit" })
        #expect(!second.compileStages.contains { $0.stage == "LLVM optimization and machine code" })
        #expect(try first.run(feeds)["probs"]! == second.run(feeds)["probs"]!)

        // Another thread count is other code: a miss.
        let threaded = try graph.compile(outputs: outputs, options: CompileOptions(threads: 2, cacheDirectory: directory))
        #expect(!threaded.compileStages.contains { $0.stage == "cache hit" })

        // A damaged entry is dropped and the model compiled afresh.
        for file in try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil) {
            try Data(repeating: 7, count: 4096).write(to: file)
        }
        let third = try graph.compile(outputs: outputs, options: options)
        #expect(third.compileStages.contains { $0.stage == "LLVM optimization and machine code" })
        #expect(try third.run(feeds)["probs"]! == first.run(feeds)["probs"]!)

        let uncached = try graph.compile(outputs: outputs, options: CompileOptions(cache: false, cacheDirectory: directory))
        #expect(uncached.compileStages.contains { $0.stage == "LLVM optimization and machine code" })
    }

    /// Kernels spread over three modules, compiled at once and linked, compute what one module's
    /// do; each module is cached on its own.
    @Test func kernelsSplitAmongCompileThreadsGiveTheSameNumbers() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-cache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let (graph, outputs) = try Examples.mnistCNN.graph(batch: 2)
        let feeds = ["image": HostTensor.random(shape: [2, 1, 28, 28], seed: 3, in: 0...1)]
        let one = try graph.compile(outputs: outputs, options: CompileOptions(threads: 2, cache: false, compileThreads: 1))
        let three = try graph.compile(outputs: outputs, options: CompileOptions(threads: 2, cacheDirectory: directory, compileThreads: 3))
        #expect(try one.run(feeds)["probs"]! == three.run(feeds)["probs"]!)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).count == 3)
        let again = try graph.compile(outputs: outputs, options: CompileOptions(threads: 2, cacheDirectory: directory, compileThreads: 3))
        #expect(again.compileStages.contains { $0.stage == "cache hit" })
        #expect(try again.run(feeds)["probs"]! == one.run(feeds)["probs"]!)
    }
}
