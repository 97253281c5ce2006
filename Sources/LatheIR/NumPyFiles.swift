import Foundation

/// NumPy's .npy format: a magic string, a version, a Python-dict header
/// ({'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }) and the raw elements.
extension HostTensor {
    /// Reads an .npy file of float, integer or boolean elements, in its own element type (an
    /// int64 file gives an int64 tensor: nothing is converted).
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

        guard descr.first != ">" else { throw fail("big-endian data (\(descr))") }
        guard let dtype = DType(numpyDescr: descr) else { throw fail("element type \(descr)") }
        let size = dtype.byteSize
        guard body.count / size >= count else { throw fail("\(count) elements of \(descr) need \(count * size) bytes, found \(body.count)") }
        var elements = Array(body.prefix(count * size))
        if fortran && shape.count > 1 {
            // Column-major: the data is the C-order tensor of the reversed shape, transposed.
            let strides = contiguousStrides(Array(shape.reversed()))
            var ordered: [UInt8] = []
            ordered.reserveCapacity(elements.count)
            forEachOffset(shape: shape, strides: [Array(strides.reversed())]) { ordered.append(contentsOf: elements[($0[0] * size)..<($0[0] * size + size)]) }
            elements = ordered
        }
        try self.init(shape: shape, dtype: dtype, bytes: elements)
    }

    public init(npyFile url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw LatheError.malformedFile("cannot read \(url.path): \(error.localizedDescription)") }
        try self.init(npy: data)
    }

    /// The tensor as an .npy file (version 1.0, little-endian, C order) of its own element type;
    /// bfloat16, which NumPy lacks, is written as float32.
    public var npyData: Data {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        let descr = dtype.numpyDescr ?? "<f4"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(dims)), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        data.append(contentsOf: Array(header.utf8))
        if dtype.numpyDescr == nil { scalars.withUnsafeBytes { data.append(contentsOf: $0) } } else { data.append(contentsOf: rawBytes) }
        return data
    }
}
