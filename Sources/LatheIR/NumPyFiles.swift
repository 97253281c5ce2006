import Foundation

/// NumPy's .npy format: a magic string, a version, a Python-dict header
/// ({'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }) and the raw elements.
extension HostTensor {
    /// Reads an .npy file of float, integer or boolean elements, converting them to float32.
    public init(npy data: Data) throws {
        func fail(_ reason: String) -> LatheError { .malformedFile("not a readable .npy: \(reason)") }
        let bytes = [UInt8](data)
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1...5]) == Array("NUMPY".utf8) else { throw fail("no NUMPY magic") }
        let major = bytes[6]
        let headerLengthSize = major == 1 ? 2 : 4
        guard [1, 2, 3].contains(major), bytes.count >= 8 + headerLengthSize else { throw fail("version \(major)") }
        var headerLength = 0
        for i in 0..<headerLengthSize { headerLength |= Int(bytes[8 + i]) << (8 * i) }
        let start = 8 + headerLengthSize
        guard bytes.count >= start + headerLength else { throw fail("the header is cut short") }
        let header = String(decoding: bytes[start..<(start + headerLength)], as: UTF8.self)

        func field(_ key: String) -> Substring? {
            guard let keyRange = header.range(of: "'\(key)':") else { return nil }
            return header[keyRange.upperBound...].drop { $0 == " " }
        }
        guard let descrField = field("descr"), descrField.first == "'", let descrEnd = descrField.dropFirst().firstIndex(of: "'") else {
            throw fail("no descr in the header")
        }
        let descr = String(descrField[descrField.index(after: descrField.startIndex)..<descrEnd])
        let fortran = field("fortran_order")?.hasPrefix("True") ?? false
        guard let shapeField = field("shape"), shapeField.first == "(", let close = shapeField.firstIndex(of: ")") else { throw fail("no shape in the header") }
        let dims = shapeField[shapeField.index(after: shapeField.startIndex)..<close].split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let shape = try dims.map { d -> Int in
            guard let v = Int(d), v >= 0, v <= maximumElementCount else { throw fail("shape entry '\(d)'") }
            return v
        }
        guard let count = elementCount(shape) else { throw fail("shape \(shape) is too large") }
        let body = bytes[(start + headerLength)...]

        func read<T>(_ type: T.Type, _ convert: (T) -> Float) throws -> [Float] {
            let size = MemoryLayout<T>.size
            guard body.count / size >= count else { throw fail("\(count) elements of \(descr) need \(count * size) bytes, found \(body.count)") }
            return body.withUnsafeBytes { raw in (0..<count).map { convert(raw.loadUnaligned(fromByteOffset: $0 * size, as: T.self)) } }
        }
        guard descr.first != ">" else { throw fail("big-endian data (\(descr))") }
        let values: [Float]
        switch descr.dropFirst() {
        case "f4": values = try read(Float.self) { $0 }
        case "f8": values = try read(Double.self) { Float($0) }
        case "f2": values = try read(UInt16.self) { Float(Float16(bitPattern: $0)) }
        case "i8": values = try read(Int64.self) { Float($0) }
        case "i4": values = try read(Int32.self) { Float($0) }
        case "i2": values = try read(Int16.self) { Float($0) }
        case "i1": values = try read(Int8.self) { Float($0) }
        case "u1", "b1": values = try read(UInt8.self) { Float($0) }
        default: throw fail("element type \(descr)")
        }
        if fortran && shape.count > 1 {
            // Column-major: the data is the C-order tensor of the reversed shape, transposed.
            let reversed = Array(shape.reversed())
            let strides = contiguousStrides(reversed)
            var ordered: [Float] = []
            ordered.reserveCapacity(count)
            forEachOffset(shape: shape, strides: [Array(strides.reversed())]) { ordered.append(values[$0[0]]) }
            try self.init(shape: shape, scalars: ordered)
        } else {
            try self.init(shape: shape, scalars: values)
        }
    }

    public init(npyFile url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw LatheError.malformedFile("cannot read \(url.path): \(error.localizedDescription)") }
        try self.init(npy: data)
    }

    /// The tensor as an .npy file (version 1.0, little-endian float32, C order).
    public var npyData: Data {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        data.append(contentsOf: Array(header.utf8))
        scalars.withUnsafeBytes { data.append(contentsOf: $0) }
        return data
    }
}
