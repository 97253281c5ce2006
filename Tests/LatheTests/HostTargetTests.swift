@testable import LatheRuntime
import Testing

@Suite("The host target: vector width and peak probe")
struct HostTargetTests {
    @Test func chosenWidthIsTheNativeOneOrHalfOfIt() {
        let host = HostTarget.detect()
        #expect(host.nativeVectorWidth >= 4)
        #expect(host.vectorWidth == host.nativeVectorWidth || 2 * host.vectorWidth == host.nativeVectorWidth)
    }

    /// The probe at every width the host has, the widest included: its data buffer once held
    /// room for 12 floats and a 16-float store past them (lathe bench crashed on AVX-512).
    @Test func peakProbeRunsAtEveryWidth() throws {
        let native = HostTarget.nativeTarget()
        var width = native.nativeVectorWidth
        while width >= 4 {
            let rate = try MachinePeak.rate(of: native.with(vectorWidth: width), threads: 1, iterations: 200_000, repetitions: 1)
            #expect(rate > 1e8, "\(width) lanes: \(rate) FLOP/s")
            width /= 2
        }
    }
}
