import Lathe

extension Examples {
    /// A DCGAN generator for 28x28 images: noise [100] -> 128x7x7 -> 64x14x14 -> 1x28x28 (tanh).
    public static let dcganGenerator = ExampleModel(name: "dcgan-generator",
                                                    summary: "Dense 6272, Reshape 128x7x7, ConvTranspose 64 + BatchNorm + ReLU, ConvTranspose 1 tanh; noise 100; batch 16",
                                                    defaultBatch: 16) { g, batch in
        let noise = try g.input("noise", shape: [batch, 100])
        return [("image", try dcganGeneratorLayers()(noise))]
    }

    /// The generator's layers (fresh weights each call).
    public static func dcganGeneratorLayers() -> Sequential {
        Sequential {
            Dense(128 * 7 * 7, activation: .relu)
            Reshape([128, 7, 7])
            ConvTranspose2D(64, kernel: 4, stride: 2, padding: .same)
            BatchNorm()
            ActivationLayer(.relu)
            ConvTranspose2D(1, kernel: 4, stride: 2, padding: .same, activation: .tanh)
        }
    }

    /// The matching discriminator: two stride-2 convolutions with LeakyReLU, then the
    /// probability that the image is real.
    public static let dcganDiscriminator = ExampleModel(name: "dcgan-discriminator",
                                                        summary: "Conv 64 and 128 (4x4, stride 2, LeakyReLU 0.2), Flatten, Dense 1 sigmoid; 1x28x28; batch 16",
                                                        defaultBatch: 16) { g, batch in
        let image = try g.input("image", shape: [batch, 1, 28, 28])
        return [("real", try dcganDiscriminatorLayers()(image))]
    }

    /// The discriminator's layers (fresh weights each call).
    public static func dcganDiscriminatorLayers() -> Sequential {
        Sequential {
            Conv2D(64, kernel: 4, stride: 2, padding: .same, activation: .leakyRelu(alpha: 0.2))
            Conv2D(128, kernel: 4, stride: 2, padding: .same, activation: .leakyRelu(alpha: 0.2))
            Flatten()
            Dense(1, activation: .sigmoid)
        }
    }
}
