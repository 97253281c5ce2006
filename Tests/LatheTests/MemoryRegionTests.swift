@testable import LatheRuntime
import Testing

@Suite("Weights and arena regions")
struct MemoryRegionTests {
    /// Sizes below, at and just past a huge page, and an odd one: a block of at least 2 MiB is
    /// mapped on a huge-page boundary, a smaller one aligned for any vector load, and every
    /// byte asked for is there to write and read back (the tail unmapped after the aligned
    /// block must not cut into it).
    @Test(arguments: [1, 4_097, 2 << 20, (2 << 20) + 4, 5 * (1 << 20) + 3])
    func alignedAndWholeBlock(bytes: Int) {
        let region = MemoryRegion(bytes: bytes)
        let address = Int(bitPattern: region.base)
        #expect(address % (bytes >= 2 << 20 ? 2 << 20 : 64) == 0)
        let view = region.base.bindMemory(to: UInt8.self, capacity: bytes)
        for i in stride(from: 0, to: bytes, by: 4_093) { view[i] = UInt8(truncatingIfNeeded: i) }
        view[bytes - 1] = 0xA5
        for i in stride(from: 0, to: bytes - 1, by: 4_093) { #expect(view[i] == UInt8(truncatingIfNeeded: i)) }
        #expect(view[bytes - 1] == 0xA5)
    }
}
