import Lathe
import Testing

/// The README's example, verbatim between the markers, so the front door never goes stale.
@Test func readmeExampleCompilesAndRuns() throws {
    let batch = HostTensor.random(shape: [64, 1, 28, 28], seed: 0, in: 0...1)
    // README-BEGIN
    let g = Graph(seed: 42)
    let x = try g.input("image", shape: [64, 1, 28, 28])
    let model = Sequential {
        Conv2D(32, kernel: 3, activation: .relu); MaxPool2D(2)
        Conv2D(64, kernel: 3, activation: .relu); MaxPool2D(2)
        Flatten(); Dense(128, activation: .relu); Dense(10, activation: .softmax)
    }
    let probs = try model(x)
    let compiled = try g.compile(outputs: ["probs": probs])
    let out = try compiled.run(["image": batch])
    print(out["probs"]!.shape)   // [64, 10]
    // README-END
    #expect(out["probs"]!.shape == [64, 10])
}
