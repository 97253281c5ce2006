import Foundation
import Testing

private let subset = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Data/mnist-subset").path

@Suite("lathe train")
struct TrainCommandTests {
    @Test("an epoch of the MNIST MLP on the subset as JSON, weights saved, then run with them")
    func trainSaveRun() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-cli-\(UUID().uuidString).safetensors").path
        let plot = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-cli-\(UUID().uuidString).svg").path
        defer { try? FileManager.default.removeItem(atPath: file); try? FileManager.default.removeItem(atPath: plot) }
        let result = try lathe("train", "mnist-mlp", "--data", subset, "--epochs", "2", "--batch", "100", "--json", "--save", file, "--plot", plot)
        #expect(result.status == 0, "\(result.err)")
        let epochs = result.out.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(epochs.map { $0["epoch"] as? Int } == [1, 2])
        #expect(Set(epochs[0].keys) == ["epoch", "trainLoss", "trainAccuracy", "testLoss", "testAccuracy", "seconds", "examplesPerSecond"])
        #expect((epochs.last?["testAccuracy"] as? Double ?? 0) > 0.8)
        #expect(try String(contentsOfFile: plot, encoding: .utf8).hasPrefix("<svg"))
        let trained = try lathe("run", "mnist-mlp", "--weights", file)
        let fresh = try lathe("run", "mnist-mlp")
        #expect(trained.status == 0 && fresh.status == 0)
        #expect(trained.out != fresh.out)
    }

    @Test("transfer-mnist on the subset: the base learns 0-4, its ONNX export frozen under a new head learns 5-9")
    func transferMNIST() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try lathe("train", "transfer-mnist", "--data", subset, "--output", directory.path, "--json")
        #expect(result.status == 0, "\(result.err)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any])
        #expect(Set(report.keys) == ["baseAccuracy", "transferAccuracy", "exported", "frozenStepMs", "baseForwardMs", "headStepMs", "baseUnchanged", "headChanged"])
        #expect(report["baseUnchanged"] as? Bool == true && report["headChanged"] as? Bool == true)
        #expect((report["transferAccuracy"] as? Double ?? 0) > 0.8)
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("mnist-digits-0-4.onnx").path))
        let noData = try lathe("train", "transfer-mnist")
        #expect(noData.status != 0 && noData.err.contains("transfer-mnist needs the data directory (--data DIR)"))
    }

    @Test("dcgan-mnist on a few subset batches: losses as JSON, a sample grid written")
    func dcganMNIST() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try lathe("train", "dcgan-mnist", "--data", subset, "--epochs", "1", "--limit", "64", "--batch", "16", "--samples", directory.path, "--json")
        #expect(result.status == 0, "\(result.err)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any])
        #expect(Set(report.keys) == ["discriminatorLosses", "generatorLosses", "samples"])
        #expect((report["generatorLosses"] as? [Double])?.count == 1)
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("epoch-1.png").path))
    }

    @Test("lathe export writes a model the importer reads back; without -o it says what is missing")
    func export() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-cli-\(UUID().uuidString).onnx").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try lathe("export", "mnist-mlp", "-o", file, "--symbolic-batch")
        #expect(result.status == 0, "\(result.err)")
        #expect(result.out.hasPrefix("\(file): ") && result.out.contains("outputs probs"))
        let run = try lathe("run", file, "--dim", "batch=3")
        #expect(run.status == 0 && run.out.contains("probs: f32[3, 10]"), "\(run.out) \(run.err)")
        let missing = try lathe("export", "mnist-mlp")
        #expect(missing.status != 0 && missing.err.contains("--output"))
    }

    @Test("--shift and --flip put augmentation kernels in the step and still learn; a flat model or a bad mode is refused")
    func augmentation() throws {
        let result = try lathe("train", "mnist-cnn", "--data", subset, "--epochs", "1", "--batch", "50", "--shift", "2", "--flip", "vertical", "--json")
        #expect(result.status == 0, "\(result.err)")
        let epoch = try #require(try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any])
        #expect((epoch["testAccuracy"] as? Double ?? 0) > 0.5)
        let profile = try lathe("train", "mnist-cnn", "--data", subset, "--shift", "2", "--flip", "both", "--profile")
        #expect(profile.status == 0 && profile.out.components(separatedBy: "augment  (1 thread)").count == 3, "\(profile.out)")
        let badMode = try lathe("train", "mnist-cnn", "--data", subset, "--flip", "sideways")
        #expect(badMode.status != 0 && badMode.err.contains("--flip is horizontal, vertical or both, not 'sideways'"))
        let flat = try lathe("train", "mnist-mlp", "--data", subset, "--shift", "1")
        #expect(flat.status != 0 && flat.err.contains("random_translation") && flat.err.contains("takes images [N, ..., H, W], got ["), "\(flat.err)")
    }

    @Test("bad uses: an unknown model, MNIST without --data, weights that are not there")
    func errors() throws {
        let unknown = try lathe("train", "resnet9000")
        #expect(unknown.status != 0 && unknown.err.contains("unknown model 'resnet9000'; trainable models: mnist-cnn, mnist-mlp"))
        let noData = try lathe("train", "mnist-cnn")
        #expect(noData.status != 0 && noData.err.contains("needs the data directory (--data DIR)"))
        let noFile = try lathe("run", "mnist-cnn", "--weights", "/nonexistent.safetensors")
        #expect(noFile.status != 0 && noFile.err.contains("cannot read /nonexistent.safetensors"))
    }
}
