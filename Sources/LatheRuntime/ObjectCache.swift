import CLLVM
import Foundation
import LatheIR

/// Machine code kept between runs of the program: the object file of each part of a compiled
/// model (ModuleParts), under the user's cache directory (kernels/, beside the measured peak),
/// keyed by a hash of the part's unoptimized LLVM IR (which holds its kernels' ops, shapes and
/// thread split), the CPU, its features and the LLVM version. A second compile of the same model
/// on the same machine skips optimization and code generation and loads the objects. A corrupt or
/// unreadable entry is a miss.
enum ObjectCache {
    /// Bumped when the code generator changes what the same IR means.
    static let formatVersion = 2

    static func key(module: LLVMModuleRef, target: HostTarget) -> String {
        var hash = StableHash()
        hash.add("\(formatVersion) \(LLVM_VERSION_STRING) \(target.triple) \(target.cpuName) \(target.features)\n")
        // The module's bitcode: the same IR as its text, written several times faster.
        let bitcode = LLVMWriteBitcodeToMemoryBuffer(module)!
        defer { LLVMDisposeMemoryBuffer(bitcode) }
        hash.add(UnsafeRawBufferPointer(start: LLVMGetBufferStart(bitcode), count: LLVMGetBufferSize(bitcode)))
        return hash.hex
    }

    static func file(_ key: String, directory: URL?) -> URL {
        (directory ?? MachinePeak.cacheDirectory().appendingPathComponent("kernels")).appendingPathComponent("\(key).o")
    }

    static func load(_ key: String, directory: URL?) -> Data? {
        guard let data = try? Data(contentsOf: file(key, directory: directory)), data.count > 16 else { return nil }
        return data
    }

    /// Writes atomically (a temporary file renamed), so a concurrent reader never sees half a file.
    static func store(_ data: Data, key: String, directory: URL?) {
        let target = file(key, directory: directory)
        try? FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? data.write(to: target, options: .atomic)
    }

    static func remove(_ key: String, directory: URL?) { try? FileManager.default.removeItem(at: file(key, directory: directory)) }

    /// The object code of an optimized module, from LLVM's code generator.
    static func emitObject(_ module: LLVMModuleRef, machine: LLVMTargetMachineRef) throws -> Data {
        var buffer: LLVMMemoryBufferRef?
        var message: UnsafeMutablePointer<CChar>?
        if LLVMTargetMachineEmitToMemoryBuffer(machine, module, LLVMObjectFile, &message, &buffer) != 0 || buffer == nil {
            throw LatheError.backend("code generation failed: \(takeMessage(message))")
        }
        defer { LLVMDisposeMemoryBuffer(buffer) }
        return Data(bytes: LLVMGetBufferStart(buffer), count: LLVMGetBufferSize(buffer))
    }
}

/// Two 64-bit FNV-1a hashes with different offsets: stable across processes and machines
/// (Swift's Hasher is seeded per process), 128 bits to make collisions negligible.
struct StableHash {
    private var a: UInt64 = 0xcbf2_9ce4_8422_2325
    private var b: UInt64 = 0x8422_2325_cbf2_9ce4

    mutating func add(_ text: String) { add(text.utf8) }

    mutating func add(_ bytes: some Sequence<UInt8>) {
        for byte in bytes {
            a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            b = (b ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 &+ 1
        }
    }

    var hex: String { String(format: "%016llx%016llx", a, b) }
}
