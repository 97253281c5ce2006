import Lathe

extension Examples {
    /// A convolutional autoencoder for 28x28 images: two conv + pool stages down to 8x7x7,
    /// two stride-2 transposed convolutions back up, a sigmoid to pixel values.
    public static let convAutoencoder = ExampleModel(name: "conv-autoencoder",
                                                     summary: "Conv 16, pool, Conv 8, pool; ConvTranspose 8 and 16 (stride 2), Conv 1 sigmoid; 1x28x28; batch 8",
                                                     defaultBatch: 8) { g, batch in
        let image = try g.input("image", shape: [batch, 1, 28, 28])
        let model = convAutoencoderLayers()
        return [("reconstruction", try model(image))]
    }

    /// The autoencoder's layers (fresh weights each call).
    public static func convAutoencoderLayers() -> Sequential {
        Sequential {
            Conv2D(16, kernel: 3, padding: .same, activation: .relu); MaxPool2D(2)
            Conv2D(8, kernel: 3, padding: .same, activation: .relu); MaxPool2D(2)
            ConvTranspose2D(8, kernel: 3, stride: 2, padding: .same, activation: .relu)
            ConvTranspose2D(16, kernel: 3, stride: 2, padding: .same, activation: .relu)
            Conv2D(1, kernel: 3, padding: .same, activation: .sigmoid)
        }
    }
}
