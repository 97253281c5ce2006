import Foundation

/// Named tensors in the safetensors format: a little-endian u64 header length, a JSON header
/// {name: {dtype, shape, data_offsets}}, then the raw data. PyTorch, JAX and Hugging Face read
/// it; Lathe writes trained weights in it and loads them back. Each tensor keeps its element
/// type (F32, F64, F16, BF16, I8 ... U64, BOOL).
public enum WeightFile {
    /// The safetensors name of each element type.
    static func name(of dtype: DType) -> String {
        switch dtype {
        case .float32: return "F32"
        case .float64: return "F64"
        case .float16: return "F16"
        case .bfloat16: return "BF16"
        case .int8: return "I8"
        case .uint8: return "U8"
        case .int16: return "I16"
        case .uint16: return "U16"
        case .int32: return "I32"
        case .uint32: return "U32"
        case .int64: return "I64"
        case .uint64: return "U64"
        case .bool: return "BOOL"
        // safetensors' names where it has them; the narrow types it lacks under names of their own.
        case .float8e4m3fn: return "F8_E4M3"
        case .float8e5m2: return "F8_E5M2"
        case .float8e8m0: return "F8_E8M0"
        case .float8e4m3fnuz: return "F8_E4M3FNUZ"
        case .float8e5m2fnuz: return "F8_E5M2FNUZ"
        case .float4e2m1: return "F4_UNPACKED"
        case .int4: return "I4_UNPACKED"
        case .uint4: return "U4_UNPACKED"
        case .int2: return "I2_UNPACKED"
        case .uint2: return "U2_UNPACKED"
        }
    }

    public static func write(_ tensors: [(name: String, value: HostTensor)], to url: URL) throws {
        var header: [String: Any] = ["__metadata__": ["format": "lathe"]]
        var offset = 0
        for (name, value) in tensors {
            let bytes = value.count * value.dtype.byteSize
            header[name] = ["dtype": Self.name(of: value.dtype), "shape": value.shape, "data_offsets": [offset, offset + bytes]]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))
        var file = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(json)
        for (_, value) in tensors { file.append(contentsOf: value.rawBytes) }
        try file.write(to: url)
    }

    public static func read(_ url: URL) throws -> [String: HostTensor] {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw LatheError.malformedFile("cannot read \(url.path)") }
        func bad(_ why: String) -> LatheError { .malformedFile("\(url.path) is not a readable safetensors file: \(why)") }
        guard data.count >= 8 else { throw bad("shorter than its header length") }
        let length = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard length <= UInt64(data.count - 8) else { throw bad("the header runs past the end") }
        let body = 8 + Int(length)
        guard let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<body)) as? [String: Any] else { throw bad("the header is not a JSON object") }
        var tensors: [String: HostTensor] = [:]
        for (name, entry) in header where name != "__metadata__" {
            guard let e = entry as? [String: Any], let typeName = e["dtype"] as? String,
                  let dtype = DType.allCases.first(where: { Self.name(of: $0) == typeName }), let shape = e["shape"] as? [Int],
                  let offsets = e["data_offsets"] as? [Int], offsets.count == 2, let count = elementCount(shape),
                  offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= data.count - body, offsets[1] - offsets[0] == dtype.byteSize * count else {
                throw bad("tensor '\(name)' has a bad dtype, shape or offsets")
            }
            tensors[name] = try HostTensor(shape: shape, dtype: dtype, bytes: [UInt8](data.subdata(in: (body + offsets[0])..<(body + offsets[1]))))
        }
        return tensors
    }
}

extension Graph {
    /// Replaces the constants named in `weights` (a layer's "conv1.weight", say) with their
    /// values. Every name must be a constant of this graph of the same shape and element type.
    public func loadWeights(_ weights: [String: HostTensor]) throws {
        var slots: [String: Int] = [:]
        for node in nodes { if case let .constant(slot) = node.op { slots[node.name] = slot } }
        for (name, value) in weights.sorted(by: { $0.key < $1.key }) {
            guard let slot = slots[name] else { throw LatheError.unknownInput(name: name, known: slots.keys.sorted()) }
            guard constants[slot].shape == value.shape else { throw LatheError.inputShapeMismatch(name: name, expected: constants[slot].shape, got: value.shape) }
            guard constants[slot].dtype == value.dtype else {
                throw LatheError.inputElementTypeMismatch(name: name, expected: constants[slot].dtype, got: value.dtype)
            }
            try setConstant(slot: slot, to: value)
        }
    }
}
