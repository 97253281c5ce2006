import Lathe
import Testing

@Suite("Timings")
struct TimingsTests {
    @Test("the statistics of a set of times: sorted, median the upper middle, p90 by nearest rank")
    func statistics() {
        let t = Timings([0.5, 0.1, 0.4, 0.2, 0.3, 0.9, 0.8, 0.7, 0.6, 1.0])
        #expect(t.seconds.first == 0.1 && t.min == 0.1 && t.count == 10)
        #expect(t.median == 0.6 && t.p90 == 0.9)
    }

    @Test("interleaved runs each body once a round, in turn, and times each body's runs apart")
    func interleaved() throws {
        var calls: [Int] = []
        let timings = try Timings.interleaved(3, [{ calls.append(0) }, { calls.append(1) }, { calls.append(2) }])
        #expect(calls == [0, 1, 2, 0, 1, 2, 0, 1, 2])
        #expect(timings.map(\.count) == [3, 3, 3])
        struct Stop: Error {}
        #expect(throws: Stop.self) { _ = try Timings.interleaved(2, [{}, { throw Stop() }]) }
    }
}
