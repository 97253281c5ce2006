import Foundation

/// Which vector width the generated code uses on a CPU whose widest vectors may not pay.
///
/// Some AVX-512 cores split each 512-bit operation into two 256-bit halves: they
/// reach the same FLOP/s with 8-float vectors as with 16, and the wider vector then only costs,
/// in lanes wasted on small planes (a 13-wide pooling row, a 26-wide convolution row) and in
/// scalar remainders. So the choice is measured, not assumed from a list of CPU names: the peak
/// probe runs at the native width and at half of it, and the half width is kept unless the
/// native one is at least 1.4 times faster (full-rate AVX-512 is about 2x; a split one about
/// 1x, so the threshold sits well away from both). The answer is cached under the user's cache
/// directory per CPU and features, like the peak, so it is measured once per machine and every
/// later compile makes the same code (which cores split, and what the probe costs: benchmarks/RESULTS.md, "Measurements behind choices in the code"). With 8-float vectors an AVX-512 core still
/// gets AVX-512's 32 registers and its instructions.
///
/// LATHE_VECTOR_WIDTH=4|8|16 overrides the choice (at most the native width): to test the
/// other width's kernels on one machine, or to compare them.
enum VectorWidthChoice {
    static let advantageNeeded = 1.4

    static func width(for native: HostTarget) -> Int {
        if let forced = ProcessInfo.processInfo.environment["LATHE_VECTOR_WIDTH"].flatMap(Int.init),
           [4, 8, 16].contains(forced), forced <= native.nativeVectorWidth {
            return forced
        }
        guard native.nativeVectorWidth >= 16 else { return native.nativeVectorWidth }
        let key = "\(native.cpuName)-\(native.keyFeatures.joined(separator: "+"))"
        let file = MachinePeak.cacheDirectory().appendingPathComponent("vector-width-\(key).txt")
        if let text = try? String(contentsOf: file, encoding: .utf8),
           let cached = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), [8, 16].contains(cached) {
            return cached
        }
        let half = native.nativeVectorWidth / 2
        guard let wide = try? measure(native), let narrow = try? measure(native.with(vectorWidth: half)) else {
            return native.nativeVectorWidth
        }
        let chosen = wide >= advantageNeeded * narrow ? native.nativeVectorWidth : half
        try? FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? "\(chosen)\n".write(to: file, atomically: true, encoding: .utf8)
        return chosen
    }

    /// One thread's probe rate: short runs, best of five, enough to tell 1x from 2x.
    private static func measure(_ target: HostTarget) throws -> Double {
        try MachinePeak.rate(of: target, threads: 1, iterations: 4_000_000, repetitions: 5)
    }
}
