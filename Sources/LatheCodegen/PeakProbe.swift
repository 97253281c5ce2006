import CLLVM

/// The machine's peak FP32 rate as Lathe's own code reaches it: `void lathe_peak(float* data,
/// float* iterations)` runs 12 independent chains acc = acc * a + b of full vectors (12 covers
/// FMA latency times throughput on current x86 cores and fits AVX2's 16 registers, as in
/// ../shared/tools/peak.c). a and b come from memory, so nothing folds away; a is just below 1,
/// so the values converge and never overflow. Each iteration is 12 FMAs of `vectorWidth` lanes.
public enum PeakProbe {
    public static let functionName = "lathe_peak"
    public static let chains = 12

    /// Floats the probe's data buffer needs: a, b, the chains' start values, and room for the
    /// vector sum stored at index 2 (16 lanes with AVX-512 reach past the chains).
    public static func dataCount(vectorWidth: Int) -> Int { 2 + max(chains, vectorWidth) }

    public static func emit(into module: LLVMModuleRef, context: LLVMContextRef, vectorWidth: Int) {
        let b = IRBuilder(context: context, module: module, vectorWidth: vectorWidth)
        let function = b.beginFunction(functionName, pointerCount: 2, exported: true)
        let data = LLVMGetParam(function, 0)!
        let count = LLVMBuildFPToSI(b.builder, b.load(LLVMGetParam(function, 1)!, b.int(0)), b.i64, "")!
        let a = b.splat(b.load(data, b.int(0)), lanes: vectorWidth), c = b.splat(b.load(data, b.int(1)), lanes: vectorWidth)
        let type = b.floatType(lanes: vectorWidth)
        let accumulators = (0..<chains).map { i in b.variable(b.splat(b.load(data, b.int(2 + i)), lanes: vectorWidth)) }
        b.loop(from: b.int(0), to: count) { _ in
            for slot in accumulators { b.write(b.fma(b.read(slot, type: type), a, c), slot) }
        }
        var sum = b.read(accumulators[0], type: type)
        for slot in accumulators.dropFirst() { sum = b.add(sum, b.read(slot, type: type)) }
        b.store(sum, data, b.int(2))
        b.endFunction()
    }
}
