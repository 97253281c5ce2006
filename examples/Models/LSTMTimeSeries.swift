import Lathe

extension Examples {
    /// The seeds' time-series model: 30 past values in, LSTM(50), the next value out.
    public static let lstmTimeSeries = ExampleModel(name: "lstm-timeseries", summary: "LSTM 50 over 30 steps, Dense 1; batch 16", defaultBatch: 16) { g, batch in
        let window = try g.input("window", shape: [batch, 30, 1])
        let model = lstmTimeSeriesLayers()
        return [("next", try model(window))]
    }

    /// The time-series model's layers (fresh weights each call).
    public static func lstmTimeSeriesLayers() -> Sequential {
        Sequential {
            LSTM(50)
            Dense(1)
        }
    }
}
