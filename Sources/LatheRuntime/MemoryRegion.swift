#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A compiled model's weights or arena: one block, aligned for any vector load, freed with the
/// region. A block of at least a huge page is mapped on its own, aligned to 2 MiB and advised
/// for transparent huge pages (Linux): ResNet-50's 100 MB of weights on 4 KiB pages miss the TLB
/// on every new page of a weight panel, and the physical pages a process happens to draw put
/// the L2-resident panels in different cache sets from one process to the next. Where the
/// kernel gives no huge pages the advice is ignored and the block is ordinary memory.
final class MemoryRegion: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    private let mapping: (start: UnsafeMutableRawPointer, length: Int)?
    /// Whether every byte is zero when the region is made: a fresh anonymous mapping is.
    var startsZeroed: Bool { mapping != nil }

    private static let hugePage = 2 << 20

    init(bytes: Int) {
        let length = max(bytes, 64)
        guard length >= Self.hugePage, let (start, mapped) = Self.mapHugeAligned(length) else {
            base = .allocate(byteCount: length, alignment: 64)
            mapping = nil
            return
        }
        base = start
        mapping = (start, mapped)
    }

    deinit {
        if let mapping { munmap(mapping.start, mapping.length) } else { base.deallocate() }
    }

    /// An anonymous mapping of `length` rounded up to huge pages, starting on a huge-page
    /// boundary: mapped a huge page longer, then the unaligned head and the tail unmapped.
    private static func mapHugeAligned(_ length: Int) -> (UnsafeMutableRawPointer, Int)? {
        let rounded = (length + hugePage - 1) / hugePage * hugePage
        let over = rounded + hugePage
        guard let raw = mmap(nil, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else { return nil }
        let address = Int(bitPattern: raw)
        let aligned = (address + hugePage - 1) / hugePage * hugePage
        if aligned > address { munmap(raw, aligned - address) }
        let tail = address + over - (aligned + rounded)
        if tail > 0 { munmap(UnsafeMutableRawPointer(bitPattern: aligned + rounded), tail) }
        let start = UnsafeMutableRawPointer(bitPattern: aligned)!
        #if os(Linux)
        _ = madvise(start, rounded, MADV_HUGEPAGE)
        #endif
        return (start, rounded)
    }
}
