import CLLVM

private let nativeTargetInitialized: Void = {
    LLVMInitializeNativeTarget()
    LLVMInitializeNativeAsmPrinter()
    LLVMInitializeNativeAsmParser()
}()

/// The machine Lathe compiles for: the host CPU as LLVM sees it at run time.
public struct HostTarget: Sendable, CustomStringConvertible {
    public let triple: String
    public let cpuName: String
    /// LLVM's feature string, e.g. "+avx2,+fma,-avx512f,...".
    public let features: String
    /// Floats per vector the generated code uses: the widest the features allow (16 with AVX-512,
    /// 8 with AVX, 4 with SSE or NEON), unless the CPU runs the widest vectors at no more FLOP/s
    /// than half-width ones (VectorWidthChoice), or LATHE_VECTOR_WIDTH says otherwise.
    public let vectorWidth: Int
    /// The widest vector the features allow.
    public let nativeVectorWidth: Int

    /// The host, with its vector width chosen once per process.
    public static func detect() -> HostTarget { detected }

    private static let detected: HostTarget = {
        let native = nativeTarget()
        return HostTarget(triple: native.triple, cpuName: native.cpuName, features: native.features,
                          vectorWidth: VectorWidthChoice.width(for: native), nativeVectorWidth: native.nativeVectorWidth)
    }()

    /// The host at its widest vectors, before any choice.
    static func nativeTarget() -> HostTarget {
        _ = nativeTargetInitialized
        let triple = takeMessage(LLVMGetDefaultTargetTriple())
        let cpu = takeMessage(LLVMGetHostCPUName())
        let features = takeMessage(LLVMGetHostCPUFeatures())
        let width = vectorWidth(features: features, triple: triple)
        return HostTarget(triple: triple, cpuName: cpu, features: features, vectorWidth: width, nativeVectorWidth: width)
    }

    /// The same machine generating vectors of `lanes` floats.
    func with(vectorWidth lanes: Int) -> HostTarget {
        HostTarget(triple: triple, cpuName: cpuName, features: features, vectorWidth: lanes, nativeVectorWidth: nativeVectorWidth)
    }

    public static func vectorWidth(features: String, triple: String) -> Int {
        let enabled = enabledFeatures(features)
        if enabled.contains("avx512f") { return 16 }
        if enabled.contains("avx") { return 8 }
        return 4   // SSE2 (every x86-64) or NEON (every AArch64)
    }

    /// Whether the host multiplies 4 byte pairs a 32-bit lane in one instruction (vpdpbusd) at
    /// its vector width: AVX-512 VNNI (with AVX-512VL below 16 lanes), or AVX-VNNI at 4 or 8.
    public var hasInt8DotProduct: Bool {
        let enabled = Self.enabledFeatures(features)
        if vectorWidth == 16 { return enabled.contains("avx512vnni") }
        return enabled.contains("avxvnni") || (enabled.contains("avx512vnni") && enabled.contains("avx512vl"))
    }

    /// Whether the host loads and stores bytes under a mask (AVX-512BW).
    public var hasByteMasks: Bool { Self.enabledFeatures(features).contains("avx512bw") }

    /// The features LLVM's feature string enables ("+avx2,-avx512f" enables avx2).
    static func enabledFeatures(_ features: String) -> Set<String> {
        Set(features.split(separator: ",").filter { $0.hasPrefix("+") }.map { String($0.dropFirst()) })
    }

    /// The enabled features among those that decide code generation, for display.
    public var keyFeatures: [String] {
        let enabled = Self.enabledFeatures(features)
        return ["sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512vnni", "avxvnni", "neon"].filter(enabled.contains)
    }

    public var description: String {
        let narrowed = vectorWidth < nativeVectorWidth ? " (\(nativeVectorWidth) measured no faster)" : ""
        return "\(cpuName) (\(triple); \(keyFeatures.joined(separator: ", ")); \(vectorWidth) floats per vector\(narrowed))"
    }

    /// A new TargetMachine for the host at the highest optimization level. The caller owns it.
    func makeTargetMachine() throws -> LLVMTargetMachineRef {
        var target: LLVMTargetRef?
        var error: UnsafeMutablePointer<CChar>?
        guard LLVMGetTargetFromTriple(triple, &target, &error) == 0, let target else {
            throw LatheError.backend(error.map(takeMessage) ?? "no target for \(triple)")
        }
        guard let machine = LLVMCreateTargetMachine(target, triple, cpuName, features, LLVMCodeGenLevelAggressive,
                                                    LLVMRelocDefault, LLVMCodeModelJITDefault) else {
            throw LatheError.backend("cannot create a target machine for \(cpuName)")
        }
        return machine
    }
}

import LatheIR

/// Copies an LLVM-owned C string and frees it.
func takeMessage(_ message: UnsafeMutablePointer<CChar>?) -> String {
    guard let message else { return "" }
    defer { LLVMDisposeMessage(message) }
    return String(cString: message)
}

/// Turns an LLVMErrorRef into a LatheError, consuming it.
func check(_ error: LLVMErrorRef?, _ what: String) throws {
    guard let error else { return }
    let message = LLVMGetErrorMessage(error)
    defer { LLVMDisposeErrorMessage(message) }
    throw LatheError.backend("\(what): \(message.map { String(cString: $0) } ?? "unknown error")")
}
