import Foundation
import Lathe
import LatheONNX

/// Runs ONNX's operator conformance suite (one directory per case: model.onnx and
/// test_data_set_0/input_K.pb, output_K.pb) through the importer and the JIT.
public enum NodeTestSuite {
    public enum Outcome: Equatable, Sendable {
        case passed
        case failed(String)
        case unsupported(String)
    }

    public struct CaseResult: Sendable {
        public let name: String
        public let outcome: Outcome
        /// Whether Lathe claims the case: every op is one the importer reads, whatever its
        /// element types.
        public let claimed: Bool
        /// Every input and output of the case is f32 (what Lathe claimed before typed tensors).
        public let float32Interface: Bool
        public let opTypes: [String]
    }

    /// ONNX's own tolerances for float32 outputs.
    public static let relativeTolerance: Float = 1e-3
    public static let absoluteTolerance: Float = 1e-5

    public static func run(directory: URL, matching filter: String? = nil, workers: Int = 2) -> [CaseResult] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { filter == nil || $0.contains(filter!) }.sorted()
        var results = [CaseResult?](repeating: nil, count: names.count)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: max(workers, 1)) { worker in
            for i in stride(from: worker, to: names.count, by: max(workers, 1)) {
                let result = runCase(directory.appendingPathComponent(names[i]), name: names[i])
                lock.lock()
                results[i] = result
                lock.unlock()
            }
        }
        return results.compactMap { $0 }
    }

    public static func runCase(_ folder: URL, name: String) -> CaseResult {
        let supported = ONNXImporter.supportedOpTypes
        guard let data = try? Data(contentsOf: folder.appendingPathComponent("model.onnx")) else {
            return CaseResult(name: name, outcome: .failed("no model.onnx"), claimed: false, float32Interface: false, opTypes: [])
        }
        let summary = try? ONNXImporter.summary(data)
        let ops = summary?.opTypes ?? []
        let claimed = !ops.isEmpty && ops.allSatisfy(supported.contains)
        func result(_ outcome: Outcome) -> CaseResult {
            CaseResult(name: name, outcome: outcome, claimed: claimed, float32Interface: summary?.float32Interface == true, opTypes: ops)
        }
        do {
            // Compiled for the values of inputs that set shapes (a Pad's pads, a Reshape's shape).
            let model = try ONNXModel(data, fileName: "\(name).onnx")
            let dataSet = folder.appendingPathComponent("test_data_set_0")
            func tensors(_ prefix: String) throws -> [HostTensor] {
                var list: [HostTensor] = []
                while let bytes = try? Data(contentsOf: dataSet.appendingPathComponent("\(prefix)_\(list.count).pb")) {
                    list.append(try ONNXImporter.readTensor(bytes, name: "\(prefix)_\(list.count)"))
                }
                return list
            }
            let inputs = try tensors("input"), expected = try tensors("output")
            guard model.inputNames.count == inputs.count, model.outputNames.count == expected.count else {
                return result(.unsupported("the model takes \(model.inputNames.count) of \(inputs.count) inputs (optional inputs left out)"))
            }
            let outputs = try model.run(Dictionary(uniqueKeysWithValues: zip(model.inputNames, inputs)))
            for (outputName, want) in zip(model.outputNames, expected) {
                let got = outputs[outputName]!
                guard got.count == want.count else { return result(.failed("output \(outputName) has shape \(got.shape), expected \(want.shape)")) }
                // (An empty tensor's type is moot: ONNX's data writes some as float.)
                guard got.dtype == want.dtype || want.count == 0 else {
                    return result(.failed("output \(outputName) holds \(got.dtype.rawValue), expected \(want.dtype.rawValue)"))
                }
                // Integers, bools and the narrow types exactly; floats within ONNX's tolerances.
                if !want.dtype.isFloatingPoint || !want.dtype.isComputed, got.rawBytes != want.rawBytes {
                    let bad = got.scalars.indices.first { got.scalars[$0] != want.scalars[$0] } ?? 0
                    return result(.failed("output \(outputName)[\(bad)] is \(got.scalars[bad]), expected \(want.scalars[bad])"))
                }
                if let bad = got.scalars.indices.first(where: { !close(got.scalars[$0], want.scalars[$0], want.dtype) }) {
                    return result(.failed("output \(outputName)[\(bad)] is \(got.scalars[bad]), expected \(want.scalars[bad])"))
                }
            }
            return result(.passed)
        } catch let LatheError.unsupportedOps(list) {
            return result(.unsupported(list.map(\.opType).joined(separator: ", ")))
        } catch let LatheError.unsupported(reason) {
            return result(.unsupported(reason))
        } catch {
            return result(.failed("\(error)"))
        }
    }

    /// Within ONNX's tolerances, which are for f32 and finer; a half type's result within four
    /// units in its last place (f16 2^-9, bf16 2^-6 relative): where a chain of ops (an
    /// attention's products and softmax) rounds to the type moves its last bits.
    static func close(_ a: Float, _ b: Float, _ type: DType = .float32) -> Bool {
        if a.isNaN || b.isNaN { return a.isNaN && b.isNaN }
        if a.isInfinite || b.isInfinite { return a == b }
        let relative: Float = switch type {
        case .float16: 0x1p-9
        case .bfloat16: 0x1p-6
        default: relativeTolerance
        }
        return abs(a - b) <= absoluteTolerance + relative * abs(b)
    }

    /// A Markdown report: the counts, then every case that did not pass, with its reason.
    public static func report(_ results: [CaseResult]) -> String {
        let passed = results.filter { $0.outcome == .passed }
        let claimed = results.filter(\.claimed)
        let claimedPassed = claimed.filter { $0.outcome == .passed }
        let unsupported = results.filter { if case .unsupported = $0.outcome { return true } else { return false } }
        let failed = results.filter { if case .failed = $0.outcome { return true } else { return false } }
        let rate = claimed.isEmpty ? 0 : 100 * Double(claimedPassed.count) / Double(claimed.count)
        let floatClaimed = claimed.filter(\.float32Interface)
        let floatPassed = floatClaimed.filter { $0.outcome == .passed }
        let floatRate = floatClaimed.isEmpty ? 0 : 100 * Double(floatPassed.count) / Double(floatClaimed.count)
        var lines = [
            "# ONNX operator conformance",
            "",
            "ONNX's own node tests, each case run through the importer and the JIT and compared with ONNX's tolerances",
            "(rtol 1e-3, atol 1e-5; f16 and bf16 results within four units in their last place, rtol 2^-9 and 2^-6),",
            "integer, bool and narrow-type (8- and 4-bit float, 4- and 2-bit integer) results exactly. Regenerate with:",
            "",
            "    swift build -c release && .build/release/lathe conformance ../shared/onnx-node-tests/node --report docs/conformance.md",
            "",
            "A case is *claimed* when every op in it is one the importer reads, whatever its element types. The tests",
            "(LatheONNXTests) require that no claimed case fail (a wrong result, or an import error that is not a refusal),",
            "and that at least 95% of the claimed cases pass, and of those whose inputs and outputs are all float32. A case",
            "whose pads, axes, shape or other compile-time operand is a graph input runs as ONNXModel runs it: compiled for",
            "the values its test feeds.",
            "",
            "| cases | passed | failed | unsupported | claimed: every op supported | of those, passed | claimed with float32 inputs and outputs | of those, passed |",
            "|---|---|---|---|---|---|---|---|",
            "| \(results.count) | \(passed.count) | \(failed.count) | \(unsupported.count) | \(claimed.count) | \(claimedPassed.count) (\(String(format: "%.1f", rate))%) "
                + "| \(floatClaimed.count) | \(floatPassed.count) (\(String(format: "%.1f", floatRate))%) |",
            "",
        ]
        lines += ["## Cases of supported ops that do not pass", "", "| case | outcome | reason |", "|---|---|---|"]
        for r in claimed where r.outcome != .passed {
            switch r.outcome {
            case let .failed(reason): lines.append("| \(r.name) | failed | \(cell(reason)) |")
            case let .unsupported(reason): lines.append("| \(r.name) | unsupported | \(cell(reason)) |")
            case .passed: break
            }
        }
        var missing: [String: Int] = [:]
        for r in results where !r.claimed {
            for op in Set(r.opTypes) where !ONNXImporter.supportedOpTypes.contains(op) { missing[op, default: 0] += 1 }
        }
        lines += ["", "## Op types Lathe does not import, by the number of cases that use them", "", "| op | cases |", "|---|---|"]
        for (op, count) in missing.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }) { lines.append("| \(op) | \(count) |") }
        lines += ["", "## Cases of ops Lathe does not import", "", "| case | ops not imported |", "|---|---|"]
        for r in results where !r.claimed {
            let absent = Array(Set(r.opTypes.filter { !ONNXImporter.supportedOpTypes.contains($0) })).sorted()
            lines.append("| \(r.name) | \(absent.isEmpty ? "(no nodes)" : cell(absent.joined(separator: ", "))) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func cell(_ text: String) -> String {
        String(text.replacingOccurrences(of: "|", with: "/").replacingOccurrences(of: "\n", with: " ").prefix(200))
    }
}
