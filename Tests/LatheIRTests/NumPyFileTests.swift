import Foundation
import LatheIR
import Testing

@Suite(".npy files")
struct NumPyFileTests {
    @Test func roundTrip() throws {
        for shape in [[], [1], [7], [2, 3], [2, 0, 4], [3, 1, 5, 2]] {
            let t = HostTensor.random(shape: shape, seed: 4)
            let data = t.npyData
            #expect(data.count % 64 == t.count * 4 % 64)   // the header pads to a multiple of 64
            #expect(try HostTensor(npy: data) == t)
        }
    }

    /// Bytes as NumPy 2 writes np.arange(6, dtype='<i8').reshape(2, 3) and its Fortran-order twin.
    func numpyFile(descr: String, fortran: Bool, shape: String, body: [UInt8]) -> Data {
        var header = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shape), }"
        header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
        let n = header.utf8.count
        return Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(n & 0xFF), UInt8(n >> 8)] + Array(header.utf8) + body)
    }

    @Test func readsIntegersDoublesAndFortranOrder() throws {
        let int64 = (0..<6).flatMap { withUnsafeBytes(of: Int64($0).littleEndian, Array.init) }
        let t = try HostTensor(npy: numpyFile(descr: "<i8", fortran: false, shape: "(2, 3)", body: int64))
        #expect(t.shape == [2, 3] && t.scalars == [0, 1, 2, 3, 4, 5])
        // Fortran order stores columns first: 0 3 1 4 2 5 is the same [[0, 1, 2], [3, 4, 5]].
        let columns = [0, 3, 1, 4, 2, 5].flatMap { withUnsafeBytes(of: Double($0), Array.init) }
        let f = try HostTensor(npy: numpyFile(descr: "<f8", fortran: true, shape: "(2, 3)", body: columns))
        #expect(f.shape == [2, 3] && f.scalars == [0, 1, 2, 3, 4, 5])
        let scalar = try HostTensor(npy: numpyFile(descr: "<f4", fortran: false, shape: "()", body: withUnsafeBytes(of: Float(2.5), Array.init)))
        #expect(scalar.shape == [] && scalar.scalars == [2.5])
    }

    @Test func badFilesThrow() throws {
        let good = HostTensor.random(shape: [4, 4], seed: 1).npyData
        #expect(throws: LatheError.self) { try HostTensor(npy: Data()) }
        #expect(throws: LatheError.self) { try HostTensor(npy: good.prefix(good.count - 1)) }
        #expect(throws: LatheError.self) { try HostTensor(npy: good.prefix(20)) }
        #expect(throws: LatheError.self) { try HostTensor(npy: Data("not numpy at all".utf8)) }
        #expect(throws: LatheError.self) { try HostTensor(npy: numpyFile(descr: ">f4", fortran: false, shape: "(1,)", body: [0, 0, 0, 0])) }
        #expect(throws: LatheError.self) { try HostTensor(npy: numpyFile(descr: "<U3", fortran: false, shape: "(1,)", body: [0, 0, 0, 0])) }
        #expect(throws: LatheError.self) { try HostTensor(npy: numpyFile(descr: "<f4", fortran: false, shape: "(-1,)", body: [])) }
    }
}
