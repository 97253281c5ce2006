import Foundation

/// Named float32 tensors in the safetensors format: a little-endian u64 header length, a JSON
/// header {name: {dtype, shape, data_offsets}}, then the raw data. PyTorch, JAX and Hugging
/// Face read it; Lathe writes trained weights in it and loads them back.
public enum WeightFile {
    public static func write(_ tensors: [(name: String, value: HostTensor)], to url: URL) throws {
        var header: [String: Any] = ["__metadata__": ["format": "lathe"]]
        var offset = 0
        for (name, value) in tensors {
            header[name] = ["dtype": "F32", "shape": value.shape, "data_offsets": [offset, offset + 4 * value.count]]
            offset += 4 * value.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))
        var file = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(json)
        for (_, value) in tensors { value.scalars.withUnsafeBytes { file.append(contentsOf: $0) } }
        try file.write(to: url)
    }

    public static func read(_ url: URL) throws -> [String: HostTensor] {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw LatheError.malformedFile("cannot read \(url.path)") }
        func bad(_ why: String) -> LatheError { .malformedFile("\(url.path) is not a safetensors file of f32 tensors: \(why)") }
        guard data.count >= 8 else { throw bad("shorter than its header length") }
        let length = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard length <= UInt64(data.count - 8) else { throw bad("the header runs past the end") }
        let body = 8 + Int(length)
        guard let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<body)) as? [String: Any] else { throw bad("the header is not a JSON object") }
        var tensors: [String: HostTensor] = [:]
        for (name, entry) in header where name != "__metadata__" {
            guard let e = entry as? [String: Any], e["dtype"] as? String == "F32", let shape = e["shape"] as? [Int],
                  let offsets = e["data_offsets"] as? [Int], offsets.count == 2, let count = elementCount(shape),
                  offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= data.count - body, offsets[1] - offsets[0] == 4 * count else {
                throw bad("tensor '\(name)' has a bad dtype, shape or offsets")
            }
            let bytes = data.subdata(in: (body + offsets[0])..<(body + offsets[1]))
            let scalars = bytes.withUnsafeBytes { raw in (0..<(bytes.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) } }
            tensors[name] = try HostTensor(shape: shape, scalars: scalars)
        }
        return tensors
    }
}

extension Graph {
    /// Replaces the constants named in `weights` (a layer's "conv1.weight", say) with their
    /// values. Every name must be a constant of this graph of the same shape.
    public func loadWeights(_ weights: [String: HostTensor]) throws {
        var slots: [String: Int] = [:]
        for node in nodes { if case let .constant(slot) = node.op { slots[node.name] = slot } }
        for (name, value) in weights.sorted(by: { $0.key < $1.key }) {
            guard let slot = slots[name] else { throw LatheError.unknownInput(name: name, known: slots.keys.sorted()) }
            guard constants[slot].shape == value.shape else { throw LatheError.inputShapeMismatch(name: name, expected: constants[slot].shape, got: value.shape) }
            try setConstant(slot: slot, to: value)
        }
    }
}
