import Foundation

/// Grayscale PNG files, written without a compression library: 8-bit pixels, each row filtered
/// "none", in stored (uncompressed) deflate blocks; what a training run's sample grids need.
public enum PNGImage {
    /// The PNG of `pixels` (row-major, `width` x `height`, 0 black to 255 white).
    public static func grayscale(width: Int, height: Int, pixels: [UInt8]) throws -> Data {
        guard width > 0, height > 0, width <= 1 << 24, height <= 1 << 24, pixels.count == width * height else {
            throw LatheError.invalidAttribute(op: "png", reason: "\(pixels.count) pixels do not make a \(width) x \(height) image", location: .unknown)
        }
        var raw: [UInt8] = []
        raw.reserveCapacity(height * (width + 1))
        for row in 0..<height {
            raw.append(0)
            raw += pixels[(row * width)..<((row + 1) * width)]
        }
        var png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        png += chunk("IHDR", bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [8, 0, 0, 0, 0])
        png += chunk("IDAT", zlibStored(raw))
        png += chunk("IEND", [])
        return png
    }

    /// A grid of images [count, 1, rows, columns] in [-1, 1] (a tanh generator's), `perRow` a
    /// row of the grid, 2 black pixels between them.
    public static func grid(_ images: HostTensor, perRow: Int) throws -> Data {
        guard images.shape.count == 4, images.shape[1] == 1, perRow > 0 else {
            throw LatheError.shapeMismatch(op: "png", shapes: [images.shape], reason: "a grid takes images [count, 1, rows, columns]", location: .unknown)
        }
        let (count, rows, columns) = (images.shape[0], images.shape[2], images.shape[3])
        let gridRows = (count + perRow - 1) / perRow, gap = 2
        let (width, height) = (perRow * (columns + gap) + gap, gridRows * (rows + gap) + gap)
        var pixels = [UInt8](repeating: 0, count: width * height)
        let values = images.scalars
        for k in 0..<count {
            let (top, left) = (gap + (k / perRow) * (rows + gap), gap + (k % perRow) * (columns + gap))
            for r in 0..<rows {
                for c in 0..<columns {
                    let v = values[(k * rows + r) * columns + c]
                    pixels[(top + r) * width + left + c] = UInt8(max(0, min(255, ((v + 1) * 127.5).rounded())))
                }
            }
        }
        return try grayscale(width: width, height: height, pixels: pixels)
    }

    private static func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 255), UInt8((v >> 8) & 255), UInt8(v & 255)] }

    private static func chunk(_ type: String, _ data: [UInt8]) -> Data {
        let body = Array(type.utf8) + data
        return Data(bigEndian(UInt32(data.count)) + body + bigEndian(crc32(body)))
    }

    /// zlib: a header, deflate blocks of at most 65535 stored bytes, the Adler-32 of the data.
    private static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var start = 0
        repeat {
            let length = min(65535, data.count - start)
            let last: UInt8 = start + length == data.count ? 1 : 0
            out += [last, UInt8(length & 255), UInt8(length >> 8), UInt8(~length & 255), UInt8((~length >> 8) & 255)]
            out += data[start..<(start + length)]
            start += length
        } while start < data.count
        var (a, b): (UInt32, UInt32) = (1, 0)
        for byte in data { (a, b) = ((a + UInt32(byte)) % 65521, (b + (a + UInt32(byte)) % 65521) % 65521) }
        return out + bigEndian(b << 16 | a)
    }

    private static let crcTable: [UInt32] = (0..<256).map { n in
        (0..<8).reduce(UInt32(n)) { c, _ in c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    }

    private static func crc32(_ bytes: [UInt8]) -> UInt32 {
        ~bytes.reduce(UInt32.max) { crcTable[Int(($0 ^ UInt32($1)) & 255)] ^ ($0 >> 8) }
    }
}
