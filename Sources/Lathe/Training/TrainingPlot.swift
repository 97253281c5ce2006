import Foundation

/// A training run drawn as SVG: the loss of every batch (and its moving average) with each
/// epoch's test loss on the left, the train and test accuracy of each epoch on the right.
public enum TrainingPlot {
    public static func svg(title: String, history: [EpochSummary], batchLosses: [Float]) -> String {
        let (panelW, panelH, margin) = (420.0, 260.0, 50.0)
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(2 * panelW + 3 * margin))" height="\(Int(panelH + 2.2 * margin))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(margin)" y="22" font-size="15">\(escape(title))</text>

        """
        let batchesPerEpoch = history.isEmpty ? 1.0 : Double(batchLosses.count) / Double(history.count)
        let epochs = Double(max(history.count, 1))
        // Loss: batches on an epoch axis.
        let window = max(1, batchLosses.count / 50)
        let smoothed = batchLosses.indices.map { i in
            let lo = max(0, i - window + 1)
            return batchLosses[lo...i].reduce(0, +) / Float(i - lo + 1)
        }
        let lossTop = Double((batchLosses.max() ?? 1) * 1.05)
        out += panel(x: margin, y: 1.4 * margin, w: panelW, h: panelH, xMax: epochs, yMax: lossTop, xLabel: "epoch", yLabel: "loss")
        func point(_ px: Double, _ py: Double, _ yMax: Double, left: Double) -> String {
            String(format: "%.1f,%.1f", left + px / epochs * panelW, 1.4 * margin + panelH - min(py / yMax, 1) * panelH)
        }
        out += polyline(batchLosses.enumerated().map { point(Double($0.offset + 1) / batchesPerEpoch, Double($0.element), lossTop, left: margin) }, "#bbbbbb", 1)
        out += polyline(smoothed.enumerated().map { point(Double($0.offset + 1) / batchesPerEpoch, Double($0.element), lossTop, left: margin) }, "#1f77b4", 2)
        let testLoss = history.compactMap { h in h.testLoss.map { point(Double(h.epoch), Double($0), lossTop, left: margin) } }
        out += polyline(testLoss, "#d62728", 2) + dots(testLoss, "#d62728")
        out += legend(x: margin + 10, y: 1.4 * margin + 16, [("train (batches)", "#1f77b4"), ("test", "#d62728")])
        // Accuracy per epoch.
        let accuracies = history.flatMap { [$0.trainAccuracy, $0.testAccuracy].compactMap { $0 } }
        if !accuracies.isEmpty {
            let left = 2 * margin + panelW
            let low = Double(accuracies.min()!), floor = max(0, (low * 100 - 1).rounded(.down) / 100)
            out += panel(x: left, y: 1.4 * margin, w: panelW, h: panelH, xMax: epochs, yMax: 1, yMin: floor, xLabel: "epoch", yLabel: "accuracy")
            func accuracyPoint(_ epoch: Int, _ a: Float) -> String {
                String(format: "%.1f,%.1f", left + Double(epoch) / epochs * panelW, 1.4 * margin + panelH - (Double(a) - floor) / (1 - floor) * panelH)
            }
            let train = history.compactMap { h in h.trainAccuracy.map { accuracyPoint(h.epoch, $0) } }
            let test = history.compactMap { h in h.testAccuracy.map { accuracyPoint(h.epoch, $0) } }
            out += polyline(train, "#1f77b4", 2) + dots(train, "#1f77b4") + polyline(test, "#d62728", 2) + dots(test, "#d62728")
            if let last = history.last?.testAccuracy {
                out += "<text x=\"\(left + panelW - 150)\" y=\"\(1.4 * margin + panelH - 10)\">test \(String(format: "%.2f%%", last * 100)) after epoch \(history.count)</text>\n"
            }
            out += legend(x: left + 10, y: 1.4 * margin + panelH - 40, [("train", "#1f77b4"), ("test", "#d62728")])
        }
        return out + "</svg>\n"
    }

    private static func panel(x: Double, y: Double, w: Double, h: Double, xMax: Double, yMax: Double, yMin: Double = 0, xLabel: String, yLabel: String) -> String {
        var s = "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(w)\" height=\"\(h)\" fill=\"none\" stroke=\"#444\"/>\n"
        for i in 0...4 {
            let v = yMin + (yMax - yMin) * Double(i) / 4, py = y + h - Double(i) / 4 * h
            s += "<line x1=\"\(x)\" y1=\"\(py)\" x2=\"\(x + w)\" y2=\"\(py)\" stroke=\"#eee\"/>"
            s += "<text x=\"\(x - 6)\" y=\"\(py + 4)\" text-anchor=\"end\">\(String(format: yMax <= 1 ? "%.3f" : "%.2f", v))</text>\n"
        }
        for e in 0...Int(xMax) {
            let px = x + Double(e) / xMax * w
            s += "<text x=\"\(px)\" y=\"\(y + h + 16)\" text-anchor=\"middle\">\(e)</text>"
        }
        s += "<text x=\"\(x + w / 2)\" y=\"\(y + h + 34)\" text-anchor=\"middle\">\(xLabel)</text>"
        s += "<text x=\"\(x)\" y=\"\(y - 8)\">\(yLabel)</text>\n"
        return s
    }

    private static func polyline(_ points: [String], _ color: String, _ width: Int) -> String {
        points.count < 2 ? "" : "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"\(width)\" points=\"\(points.joined(separator: " "))\"/>\n"
    }

    private static func dots(_ points: [String], _ color: String) -> String {
        points.map { p in
            let xy = p.split(separator: ",")
            return "<circle cx=\"\(xy[0])\" cy=\"\(xy[1])\" r=\"3\" fill=\"\(color)\"/>"
        }.joined() + "\n"
    }

    private static func legend(x: Double, y: Double, _ items: [(String, String)]) -> String {
        items.enumerated().map { i, item in
            "<rect x=\"\(x)\" y=\"\(y + Double(i) * 16 - 9)\" width=\"12\" height=\"3\" fill=\"\(item.1)\"/><text x=\"\(x + 18)\" y=\"\(y + Double(i) * 16)\">\(item.0)</text>"
        }.joined() + "\n"
    }

    private static func escape(_ s: String) -> String { s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;") }
}
