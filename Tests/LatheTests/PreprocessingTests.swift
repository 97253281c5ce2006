import Foundation
import Lathe
import Testing

/// The augment op and its layers: compiled kernels against the interpreter, the draws'
/// statistics, gradients, and the layers in training and inference graphs.
@Suite("Data augmentation")
struct AugmentationTests {
    /// Odd image sizes; crops, shifts past the edge (reflect and wrap more than a period away),
    /// flips, and every fill.
    static let transforms: [(shape: [Int], augment: ImageAugment)] = [
        ([3, 2, 7, 9], ImageAugment(height: 7, width: 9, flipsRows: true, flipsColumns: true, seed: 1)),
        ([5, 1, 6, 5], ImageAugment(height: 6, width: 5, rowOffsets: -2...2, columnOffsets: -3...3, fill: .constant(0), seed: 2)),
        ([4, 3, 5, 8], ImageAugment(height: 5, width: 8, rowOffsets: -4...4, columnOffsets: -1...1, flipsColumns: true, fill: .constant(-1.5), seed: 3)),
        ([2, 2, 9, 4], ImageAugment(height: 9, width: 4, rowOffsets: -12...12, columnOffsets: -9...9, fill: .reflect, seed: 4)),
        ([3, 1, 5, 7], ImageAugment(height: 5, width: 7, rowOffsets: -11...3, columnOffsets: -16...16, flipsRows: true, fill: .wrap, seed: 5)),
        ([6, 2, 4, 6], ImageAugment(height: 4, width: 6, rowOffsets: -3...3, columnOffsets: -5...5, fill: .nearest, seed: 6)),
        ([7, 3, 11, 10], ImageAugment(height: 8, width: 7, rowOffsets: 0...3, columnOffsets: 0...3, flipsColumns: true, seed: 7)),
        ([2, 13, 17], ImageAugment(height: 13, width: 15, rowOffsets: -1...1, columnOffsets: 0...2, flipsRows: true, fill: .reflect, seed: 8)),
    ]

    private func run(_ shape: [Int], _ a: ImageAugment, dtype: DType, step: Float, threads: Int) throws -> (got: HostTensor, expected: HostTensor) {
        let g = Graph()
        let x = try g.input("x", dtype: dtype, shape: shape), counter = try g.input("step", shape: [1])
        let y = try x.apply(.augment(a), [counter], .unknown)
        let feeds = ["x": HostTensor.random(shape: shape, dtype: dtype, seed: UInt64(step) + 11), "step": HostTensor(shape: [1], repeating: step)]
        let got = try g.compile(outputs: ["y": y], options: CompileOptions(threads: threads)).run(feeds)["y"]!
        return (got, try g.interpret(outputs: [("y", y)], feeds: feeds)["y"]!)
    }

    @Test("compiled augment equals the interpreter bit for bit", arguments: transforms.indices)
    func compiledEqualsInterpreted(_ k: Int) throws {
        let (shape, a) = Self.transforms[k]
        let types: [DType] = a.constantFill == 0 ? [.float32, .uint8, .int64, .float16, .bool] : [.float32]
        for dtype in types {
            for step: Float in [0, 1, 1234] {
                let (got, expected) = try run(shape, a, dtype: dtype, step: step, threads: k % 2 + 1)
                #expect(got.shape == Array(shape.dropLast(2)) + [a.height, a.width])
                #expect(got.dtype == dtype && got.rawBytes == expected.rawBytes, "\(dtype) at step \(step)")
            }
        }
    }

    @Test("compiled augment_grad equals the interpreter", arguments: transforms.indices)
    func compiledGradientEqualsInterpreted(_ k: Int) throws {
        let (shape, a) = Self.transforms[k]
        let g = Graph()
        let dy = try g.input("dy", shape: Array(shape.dropLast(2)) + [a.height, a.width]), counter = try g.input("step", shape: [1])
        let dx = try dy.apply(.augmentGrad(a, inputSize: Array(shape.suffix(2))), [counter], .unknown)
        let feeds = ["dy": HostTensor.random(shape: dy.shape, seed: 3), "step": HostTensor(shape: [1], repeating: 9)]
        let got = try g.compile(outputs: ["dx": dx]).run(feeds)["dx"]!
        let expected = try g.interpret(outputs: [("dx", dx)], feeds: feeds)["dx"]!
        #expect(got.shape == shape)
        #expect(relativeError(got, expected) < 1e-6)
    }

    @Test("autodiff of augment agrees with finite differences", arguments: transforms.indices)
    func gradient(_ k: Int) throws {
        let (shape, a) = Self.transforms[k]
        let c = OpCase("augment \(k)", [Operand(shape: shape)]) { x in
            try x[0].apply(.augment(a), [x[0].graph.constant(HostTensor(shape: [1], repeating: 5))], .unknown)
        }
        #expect(try gradientCheck(c) < 1e-2)
    }

    @Test("flips come half the time and offsets cover their range evenly, differently each step")
    func draws() {
        let a = ImageAugment(height: 8, width: 8, rowOffsets: -3...3, columnOffsets: 0...4, flipsRows: true, flipsColumns: true, seed: 42)
        let images = 4000
        let transforms = (0..<images).map { a.transform(step: 17, image: $0) }
        let flips = transforms.filter(\.flipColumns).count, rowFlips = transforms.filter(\.flipRows).count
        #expect(abs(flips - images / 2) < 150 && abs(rowFlips - images / 2) < 150, "\(flips), \(rowFlips) flips of \(images)")
        #expect(transforms.filter { $0.flipRows == $0.flipColumns }.count > images / 2 - 150, "the two flips are drawn independently")
        for (range, offsets) in [(a.rowOffsets, transforms.map(\.rowOffset)), (a.columnOffsets, transforms.map(\.columnOffset))] {
            let expected = Double(images) / Double(range.count)
            for value in range {
                let n = Double(offsets.filter { $0 == value }.count)
                #expect(abs(n - expected) < 5 * expected.squareRoot(), "offset \(value): \(n) of \(images)")
            }
            #expect(offsets.allSatisfy(range.contains))
        }
        let next = (0..<images).map { a.transform(step: 18, image: $0) }
        #expect(zip(transforms, next).filter { $0 == $1 }.count < images / 10)
        #expect((0..<images).map { a.transform(step: 17, image: $0) } == transforms)
    }

    @Test("each fill resolves a coordinate past the edge as Keras' fill modes do")
    func fills() {
        func row(_ fill: ImageAugment.Fill) -> [Int?] {
            (-5..<9).map { ImageAugment(height: 4, width: 4, fill: fill, seed: 0).resolve($0, size: 4) }
        }
        #expect(row(.constant(0)) == [nil, nil, nil, nil, nil, 0, 1, 2, 3, nil, nil, nil, nil, nil])
        #expect(row(.nearest) == [0, 0, 0, 0, 0, 0, 1, 2, 3, 3, 3, 3, 3, 3])
        #expect(row(.reflect) == [3, 3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0, 0])
        #expect(row(.wrap) == [3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0])
    }

    @Test("a horizontal flip reverses each row of a flipped image and keeps the other images")
    func flipMovesPixels() throws {
        let a = ImageAugment(height: 2, width: 3, flipsColumns: true, seed: 3)
        let x = try HostTensor(shape: [16, 1, 2, 3], scalars: (0..<96).map(Float.init))
        let g = Graph()
        let input = try g.input("x", shape: x.shape), counter = try g.input("step", shape: [1])
        let y = try g.compile(outputs: ["y": input.apply(.augment(a), [counter], .unknown)]).run(["x": x, "step": HostTensor(shape: [1], repeating: 2)])["y"]!
        var flipped = 0
        for n in 0..<16 {
            let image = Array(x.scalars[(n * 6)..<(n * 6 + 6)]), out = Array(y.scalars[(n * 6)..<(n * 6 + 6)])
            let mirror = Array(image[0..<3].reversed() + image[3..<6].reversed())
            #expect(out == image || out == mirror)
            if a.transform(step: 2, image: n).flipColumns { flipped += 1; #expect(out == mirror) } else { #expect(out == image) }
        }
        #expect((1...15).contains(flipped))
    }

    @Test("augment rejects what does not fit, naming the op")
    func errors() throws {
        let g = Graph()
        let x = try g.input("x", shape: [2, 5]), counter = try g.input("step", shape: [1]), pair = try g.input("pair", shape: [2])
        let images = try g.input("images", dtype: .uint8, shape: [2, 1, 4, 4])
        #expect { try x.apply(.augment(ImageAugment(height: 5, width: 5, seed: 0)), [counter], .unknown) } throws: { "\($0)".contains("[N, ..., H, W]") }
        #expect { try images.apply(.augment(ImageAugment(height: 4, width: 4, seed: 0)), [pair], .unknown) } throws: { "\($0)".contains("one element") }
        #expect { try images.apply(.augment(ImageAugment(height: 0, width: 4, seed: 0)), [counter], .unknown) } throws: { "\($0)".contains("not positive") }
        #expect { try images.apply(.augment(ImageAugment(height: 4, width: 4, fill: .constant(7), seed: 0)), [counter], .unknown) } throws: {
            "\($0)".contains("needs f32")
        }
        #expect { _ = try RandomCrop(height: 5, width: 2)(images) } throws: { "\($0)".contains("random_crop") && "\($0)".contains("5x2 crop of images 4x4") }
        #expect { _ = try RandomTranslation(rows: 5, columns: 1)(images) } throws: { "\($0)".contains("do not fit images 4x4") }
        #expect { _ = try RandomFlip()(x) } throws: { "\($0)".contains("random_flip") }
    }
}

/// The layers in models: identity (or a center crop) for inference, random in training steps.
@Suite("Augmentation layers")
struct AugmentationLayerTests {
    static func model(crop: Bool) -> Sequential {
        Sequential {
            RandomFlip(.horizontal)
            RandomTranslation(height: 0.25, width: 0.25, fill: .constant(0))
            if crop { RandomCrop(height: 6, width: 6) }
            Conv2D(3, kernel: 3, activation: .relu)
            Flatten()
            Dense(4, activation: .softmax)
        }
    }

    @Test("for inference the layers add no kernel, and RandomCrop takes the center")
    func inference() throws {
        let g = Graph()
        let x = try g.input("x", shape: [2, 1, 8, 8])
        let flipped = try RandomTranslation(rows: 2, columns: 2)(RandomFlip()(x))
        #expect(flipped.id == x.id)
        let cropped = try RandomCrop(height: 4, width: 5)(x)
        let image = try HostTensor(shape: [2, 1, 8, 8], scalars: (0..<128).map(Float.init))
        let y = try g.compile(outputs: ["y": cropped]).run(["x": image])["y"]!
        #expect(y.shape == [2, 1, 4, 5])
        #expect(Array(y.scalars.prefix(5)) == [17, 18, 19, 20, 21] && y.scalars[20] == 81)
    }

    @Test("three compiled training steps with augmentation equal the interpreter's, at one and two threads")
    func trainingStep() throws {
        for (crop, threads) in [(false, 1), (true, 2)] {
            let step = try TrainingStep(model: Self.model(crop: crop), inputShape: [5, 1, 8, 8], targetShape: [5, 4], loss: .softmaxCrossEntropy,
                                        optimizer: .sgd(learningRate: 0.1), seed: 4, threads: threads)
            #expect(step.graph.nodes.filter { if case .augment = $0.op { return true } else { return false } }.count == (crop ? 3 : 2))
            for k in 1...3 {
                let x = HostTensor.random(shape: [5, 1, 8, 8], seed: UInt64(k), in: 0...1)
                var t = HostTensor(shape: [5, 4])
                for n in 0..<5 { t.scalars[n * 4 + (n + k) % 4] = 1 }
                var feeds = ["input": x, "target": t, Graph.trainingStepInput: HostTensor(shape: [1], repeating: Float(k - 1))]
                for (name, value) in step.optimizer.scalars(step: k, learningRate: step.learningRate) { feeds[name] = HostTensor(shape: [1], repeating: value) }
                let expected = try Interpreter.run(step.graph, outputs: [step.loss], feeds: feeds)[0].scalars[0]
                let got = try step.run(input: x, target: t).loss
                #expect(abs(got - expected) <= 1e-5 * max(1, abs(expected)), "step \(k): \(got) against \(expected)")
            }
        }
    }
}

@Suite("Normalization")
struct NormalizationTests {
    @Test("adapt learns each feature's mean and population variance, and the layer standardizes by them")
    func adaptAndStandardize() throws {
        // 3 examples of 2 channels of 2x2: channel 0 holds 0...11 spread, channel 1 a constant.
        var values: [Float] = []
        for n in 0..<3 { values += (0..<4).map { Float(n * 4 + $0) } + [5, 5, 5, 5] }
        let data = try HostTensor(shape: [3, 2, 2, 2], scalars: values)
        let perChannel = Normalization(axis: 1)
        try perChannel.adapt(data)
        #expect(perChannel.mean == [5.5, 5])
        #expect(abs(try #require(perChannel.variance)[0] - 143.0 / 12) < 1e-5 && perChannel.variance?[1] == 0)
        let g = Graph()
        let x = try g.input("x", shape: [3, 2, 2, 2])
        let y = try g.compile(outputs: ["y": perChannel(x)]).run(["x": data])["y"]!
        let sd = (143.0 / 12 as Float).squareRoot()
        #expect(abs(y.scalars[0] - (0 - 5.5) / sd) < 1e-5 && abs(y.scalars[11] - (7 - 5.5) / sd) < 1e-5, "index 11 is example 1, channel 0, value 7")
        #expect(y.scalars[4...7].allSatisfy { $0 == 0 }, "a constant feature is centered, not divided by 0")
        let whole = Normalization(axis: nil)
        try whole.adapt(try data.converted(to: .uint8))
        #expect(whole.mean?.count == 1 && abs(whole.mean![0] - 5.25) < 1e-6)
    }

    @Test("an unadapted layer, a bad axis or statistics of the wrong size are errors naming the layer")
    func errors() throws {
        let g = Graph()
        let x = try g.input("x", shape: [4, 3])
        #expect { _ = try Normalization()(x) } throws: { "\($0)".contains("normalization1 has no statistics: call adapt(data)") }
        #expect { try Normalization(axis: 0).adapt(HostTensor(shape: [4, 3])) } throws: { "\($0)".contains("axis 0 is not a feature axis of inputs of rank 2") }
        #expect { _ = try Normalization(mean: [0, 0], variance: [1, 1])(x) } throws: { "\($0)".contains("2 means and 2 variances for 3 features of [4, 3]") }
        #expect { try Normalization().adapt(HostTensor(shape: [4])) } throws: { "\($0)".contains("adapts to a batch of inputs") }
    }
}
