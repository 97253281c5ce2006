import Foundation

/// Examples and their targets, batch axis first: inputs [N, ...], targets [N, ...].
public struct Dataset: Sendable {
    public let inputs: HostTensor
    public let targets: HostTensor

    public init(inputs: HostTensor, targets: HostTensor) throws {
        guard let n = inputs.shape.first, targets.shape.first == n else {
            throw LatheError.shapeMismatch(op: "dataset", shapes: [inputs.shape, targets.shape], reason: "inputs and targets need one batch axis of one length",
                                           location: .unknown)
        }
        self.inputs = inputs
        self.targets = targets
    }

    public var count: Int { inputs.shape[0] }
    public var exampleShape: [Int] { Array(inputs.shape.dropFirst()) }
    public var targetShape: [Int] { Array(targets.shape.dropFirst()) }

    /// The first `n` examples.
    public func prefix(_ n: Int) throws -> Dataset {
        let n = max(0, min(n, count))
        let (x, t) = (inputs.count / max(count, 1), targets.count / max(count, 1))
        return try Dataset(inputs: HostTensor(shape: [n] + exampleShape, scalars: Array(inputs.scalars.prefix(n * x))),
                           targets: HostTensor(shape: [n] + targetShape, scalars: Array(targets.scalars.prefix(n * t))))
    }
}

/// The MNIST digits in their IDX files (as distributed: gzip-compressed, or plain).
public enum MNIST {
    public enum Split: String, Sendable {
        case train, test
        var prefix: String { self == .train ? "train" : "t10k" }
    }

    /// Images [N, 1, 28, 28] scaled to [0, 1] and one-hot labels [N, 10] from
    /// `directory`/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; the first `limit` only if given.
    public static func load(_ split: Split, from directory: URL, limit: Int? = nil) throws -> Dataset {
        let images = try IDXFile.read(directory.appendingPathComponent("\(split.prefix)-images-idx3-ubyte"))
        let labels = try IDXFile.read(directory.appendingPathComponent("\(split.prefix)-labels-idx1-ubyte"))
        guard images.dimensions.count == 3, labels.dimensions.count == 1, images.dimensions[0] == labels.dimensions[0] else {
            throw LatheError.malformedFile("MNIST \(split.rawValue) in \(directory.path): images \(images.dimensions) and labels \(labels.dimensions) do not match")
        }
        let n = max(0, min(limit ?? images.dimensions[0], images.dimensions[0]))
        let (rows, columns) = (images.dimensions[1], images.dimensions[2])
        var x = HostTensor(shape: [n, 1, rows, columns])
        for i in 0..<(n * rows * columns) { x.scalars[i] = Float(images.bytes[i]) / 255 }
        var t = HostTensor(shape: [n, 10])
        for i in 0..<n {
            let label = Int(labels.bytes[i])
            guard label < 10 else { throw LatheError.malformedFile("MNIST \(split.rawValue) label \(i) is \(label), not a digit") }
            t.scalars[i * 10 + label] = 1
        }
        return try Dataset(inputs: x, targets: t)
    }
}

/// IDX, the MNIST file format: a big-endian magic (0, 0, type 0x08 = unsigned bytes, rank),
/// one big-endian u32 per dimension, then the bytes.
public enum IDXFile {
    /// Reads `url`, or `url`.gz (decompressed by the system's gzip) when only that exists.
    public static func read(_ url: URL) throws -> (dimensions: [Int], bytes: [UInt8]) {
        let data = try contents(url)
        guard data.count >= 4, data[0] == 0, data[1] == 0, data[2] == 0x08 else {
            throw LatheError.malformedFile("\(url.path) is not an IDX file of unsigned bytes")
        }
        let rank = Int(data[3])
        guard rank > 0, data.count >= 4 + 4 * rank else { throw LatheError.malformedFile("\(url.path): truncated IDX header") }
        let dimensions = (0..<rank).map { d in (0..<4).reduce(0) { $0 << 8 | Int(data[4 + 4 * d + $1]) } }
        guard let count = elementCount(dimensions) else { throw LatheError.malformedFile("\(url.path): the IDX dimensions \(dimensions) are too large") }
        let start = 4 + 4 * rank
        guard data.count - start >= count else { throw LatheError.malformedFile("\(url.path): \(data.count - start) bytes of data, the header promises \(count)") }
        return (dimensions, [UInt8](data[start..<(start + count)]))
    }

    private static func contents(_ url: URL) throws -> Data {
        let fm = FileManager.default
        if fm.fileExists(atPath: url.path) { return try Data(contentsOf: url) }
        let gz = url.appendingPathExtension("gz")
        guard fm.fileExists(atPath: gz.path) else { throw LatheError.malformedFile("neither \(url.path) nor \(gz.path) exists") }
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        gzip.arguments = ["gzip", "-dc", gz.path]
        let pipe = Pipe()
        gzip.standardOutput = pipe
        gzip.standardError = FileHandle.nullDevice
        try gzip.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        gzip.waitUntilExit()
        guard gzip.terminationStatus == 0 else { throw LatheError.malformedFile("\(gz.path): gzip could not decompress it") }
        return data
    }
}
