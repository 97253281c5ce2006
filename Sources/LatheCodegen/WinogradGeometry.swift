import LatheIR

/// Winograd's minimal filtering, F(m x m, 3 x 3) (Lavin and Gray, "Fast Algorithms for
/// Convolutional Neural Networks", 2015): an m x m tile of a 3 x 3, stride-1 convolution's output
/// is Y = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A, where d_c is the (m+2) x (m+2) input patch of
/// channel c and g_c its 3 x 3 filter. The sum over input channels of the α x α products
/// (α = m + 2) is α² independent GEMMs of [OC x IC] by [IC x tiles], so a tile costs α² multiply-
/// adds per channel pair instead of 9 m²: 36 for 144 with m = 4 (F(4x4, 3x3)), a quarter of the
/// arithmetic. The filter transform runs at compile time; the input and output transforms are
/// additions by small constants.
public struct WinogradTransform: Sendable {
    /// Output tile side m.
    public let tile: Int
    /// Input tile side α = m + 2.
    public var alpha: Int { tile + 2 }
    let inputT: [[Double]]    // Bᵀ, α x α
    let filter: [[Double]]    // G, α x 3
    let outputT: [[Double]]   // Aᵀ, m x α

    /// F(4x4, 3x3) with the interpolation points 0, ±1, ±2, ∞ (scaled, as in Lavin's paper).
    /// Its rounding error is larger than a direct sum's, yet VGG19's 16 layers of it still give
    /// ONNX Runtime's output to 3e-5 (tools/check-onnx-models.py).
    public static let f4x4 = WinogradTransform(
        tile: 4,
        inputT: [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        filter: [[1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                 [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1]],
        outputT: [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]])

    /// F(2x2, 3x3): 16 products a tile for 36, for images too small for 4 x 4 tiles.
    public static let f2x2 = WinogradTransform(
        tile: 2,
        inputT: [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        filter: [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
        outputT: [[1, 1, 1, 0], [0, 1, -1, -1]])

    static func forTile(_ tile: Int) -> WinogradTransform { tile == f2x2.tile ? f2x2 : f4x4 }

    /// U = G g Gᵀ for each output and input channel, from weights [OC, IC, 3, 3], written straight
    /// into the packed GEMM's A panels of each of the α² matrices [OC, IC] (matrix ξ·α+ν holds
    /// element (ξ, ν) of each U; WeightLayout.gemmPanels with `panel` rows): no α²-times-larger
    /// array in between (ResNet-50's 120 MB), and a filter's values written where the GEMM reads
    /// them. Rows past OC are left as they are (the caller zeroes them).
    func transformFilters(_ w: UnsafeBufferPointer<Float>, outChannels: Int, inChannels: Int, panel: Int,
                          into out: UnsafeMutableBufferPointer<Float>) {
        let a = alpha
        let matrixFloats = roundUp(outChannels, panel) * inChannels
        // G in doubles: G g Gᵀ is rounded to a float once, at the end.
        let g = filter.flatMap { $0 }   // α x 3, row-major
        var left = [Double](repeating: 0, count: a * 3)   // one filter's G g (α x 3)
        g.withUnsafeBufferPointer { g in
            left.withUnsafeMutableBufferPointer { left in
                for o in 0..<outChannels {
                    let rowStart = WeightLayout.panelOffset(row: o, depth: inChannels, panel: panel)
                    for c in 0..<inChannels {
                        let base = (o * inChannels + c) * 9
                        for i in 0..<a {
                            let (g0, g1, g2) = (g[i * 3], g[i * 3 + 1], g[i * 3 + 2])
                            for j in 0..<3 {
                                left[i * 3 + j] = g0 * Double(w[base + j]) + g1 * Double(w[base + 3 + j]) + g2 * Double(w[base + 6 + j])
                            }
                        }
                        var at = rowStart + c * panel
                        for i in 0..<a {
                            let (l0, l1, l2) = (left[i * 3], left[i * 3 + 1], left[i * 3 + 2])
                            for j in 0..<a {
                                out[at] = Float(l0 * g[j * 3] + l1 * g[j * 3 + 1] + l2 * g[j * 3 + 2])
                                at += matrixFloats
                            }
                        }
                    }
                }
            }
        }
    }
}

/// How a convolution runs as Winograd: output tiles of m x m, grouped a strip of tile rows of one
/// image, or a few whole small images, at a time (a unit of work). Per thread, scratch holds:
/// the strip of input rows of one channel, zero-padded (so the transform reads without bounds
/// checks), the transformed input V (α² matrices [IC x columns]), the products M (α² matrices
/// [OC x columns]) and the GEMM's packing buffer for V.
struct WinogradGeometry {
    let conv: ConvGeometry
    let transform: WinogradTransform
    /// Slack after every row of V and M, and the widest vector any target uses: a vector of tiles
    /// that runs past the last tile of a row spills into the next row or into this slack.
    static let slack = 16

    /// The geometry of `conv` (3 x 3, stride 1) computed with `transform`; which convolutions
    /// take Winograd, and which transform, is KernelPlan's choice (ConvolutionPlan.swift).
    init(_ conv: ConvGeometry, transform: WinogradTransform) {
        self.transform = transform
        self.conv = conv
        let (tilesY, tilesX) = ((conv.outH + transform.tile - 1) / transform.tile, (conv.outW + transform.tile - 1) / transform.tile)
        stripRows = min(tilesY, (96 + tilesX - 1) / tilesX)
        // Small images: a unit is several whole images, in as even groups as make about 96 columns.
        let tiles = tilesX * tilesY
        let groups = stripRows == tilesY ? max(1, (conv.batch * tiles + 95) / 96) : conv.batch
        imagesPerUnit = (conv.batch + groups - 1) / groups
    }

    var tile: Int { transform.tile }
    var alpha: Int { transform.alpha }
    var tilesY: Int { (conv.outH + tile - 1) / tile }
    var tilesX: Int { (conv.outW + tile - 1) / tile }
    /// Tile rows a strip: about 96 tiles, the GEMMs' columns.
    let stripRows: Int
    /// Images a unit: one, unless a strip is a whole image.
    let imagesPerUnit: Int
    var stripsPerImage: Int { (tilesY + stripRows - 1) / stripRows }
    var units: Int { (conv.batch + imagesPerUnit - 1) / imagesPerUnit * stripsPerImage }
    /// Columns of a whole unit's GEMMs, and the row stride of V and M.
    var columns: Int { imagesPerUnit * stripRows * tilesX }
    var rowStride: Int { columns + Self.slack }
    /// The padded input rows of a strip and their length: room for a vector of tiles (of the
    /// widest target) read from the last whole-vector position.
    var inputRows: Int { stripRows * tile + 2 }
    var inputRowLength: Int { roundUp(tilesX, Self.slack) * tile + alpha + tile * Self.slack }

    var stripFloats: Int { inputRows * inputRowLength }
    var transformedFloats: Int { alpha * alpha * conv.channels * rowStride }
    var productFloats: Int { alpha * alpha * conv.outChannels * rowStride }
    var packingFloats: Int { GemmBlocking.packingFloats(m: conv.outChannels, n: columns, k: conv.channels, packsA: false) }
    var scratchFloats: Int { stripFloats + transformedFloats + productFloats + packingFloats }

    /// Multiply-adds of the α² GEMMs, per image.
    var gemmFlops: Int { 2 * alpha * alpha * conv.outChannels * conv.channels * tilesX * tilesY }
}
