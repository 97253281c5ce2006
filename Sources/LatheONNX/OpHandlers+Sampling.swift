import LatheIR

/// Bilinear sampling: GridSample and RoiAlign.
///
/// GridSample (opsets 16 to 22): each output position reads X at the point its grid entry
/// names, in [-1, 1] across each spatial axis, as ONNX's reference does:
///
/// 1. The point in pixels: ((g + 1) size - 1) / 2, or (g + 1) / 2 (size - 1) with
///    align_corners; rounded to even for `nearest`.
/// 2. A point outside the border ([-1/2, size - 1/2], or [0, size - 1] with align_corners)
///    is clamped into [0, size - 1] (padding_mode border) or reflected off the border until
///    inside (reflection); zeros leaves it.
/// 3. The taps around it (1 for nearest, 2 for linear, 4 for cubic a spatial axis, Keys'
///    kernel with a = -0.75), each tap outside the image 0 (zeros), clamped (border) or
///    reflected (reflection), weighted and summed.
///
/// Written with the IR's elementwise ops on the grid's coordinates and one gather_nd a
/// combination of taps (X moved channels-last, the taps' positions the indices, batch_dims 1).
///
/// DeformConv (2-D): each kernel tap of each output position reads X at its usual place plus
/// its learned offset (per offset group), bilinearly with zeros outside the image, times its
/// mask; the taps' values, as columns [N, OH OW, C KH KW], times each group's weights.
///
/// RoiAlign (opsets 10 to 22): each region's bins sampled on a grid of sampling_ratio x
/// sampling_ratio points, each point bilinear between its four pixels as ONNX's reference
/// (and ONNX Runtime) computes them (a point more than a pixel outside the image reads 0, one
/// past the last row or column reads it), averaged, or the largest weighted corner taken
/// (mode max). The points come from the regions at run time; their number per bin must be
/// known at import (sampling_ratio > 0, or regions known then).
extension OpHandlers {
    static let sampling: [String: Handler] = ["GridSample": { c in [try gridSample(c)] }, "RoiAlign": { c in [try roiAlign(c)] },
                                              "DeformConv": { c in [try deformConv(c)] }]

    private static func gridSample(_ c: ImportContext) throws -> ImportedValue {
        let x = try c.required(0), grid = try c.required(1)
        let xs = c.shape(x), gs = c.shape(grid)
        let rank = xs.count - 2
        guard rank >= 1, gs.count == rank + 2, gs[0] == xs[0], gs.last == rank else {
            throw c.fail("needs X [N, C, spatial...] and a grid [N, out..., \(max(rank, 0))], not \(xs) and \(gs)")
        }
        guard c.dtype(x).isFloatingPoint, c.dtype(grid).isFloatingPoint else { throw c.fail("takes float X and grid, not \(c.dtype(x)) and \(c.dtype(grid))") }
        let mode: Int
        switch c.node.string("mode", c.opset >= 20 ? "linear" : "bilinear") {
        case "nearest": mode = 1
        case "linear", "bilinear": mode = 2
        case "cubic", "bicubic": mode = 4
        case let other: throw c.fail("has mode '\(other)'")
        }
        let padding = c.node.string("padding_mode", "zeros")
        guard ["zeros", "border", "reflection"].contains(padding) else { throw c.fail("has padding_mode '\(padding)'") }
        let aligned = c.node.int("align_corners", 0) != 0
        let type = c.dtype(x)
        let sizes = Array(xs[2...])
        let outShape = Array(gs.dropLast())

        func f(_ v: Float) -> ImportedValue { c.scalar(v) }
        func op(_ fn: BinaryFn, _ a: ImportedValue, _ b: ImportedValue, _ name: String) throws -> ImportedValue { try c.apply(.binary(fn), [a, b], name: name) }
        func un(_ fn: UnaryFn, _ a: ImportedValue, _ name: String) throws -> ImportedValue { try c.apply(.unary(fn), [a], name: name) }
        func select(_ cond: ImportedValue, _ a: ImportedValue, _ b: ImportedValue, _ name: String) throws -> ImportedValue {
            try c.apply(.select, [cond, a, b], name: name)
        }
        /// Reflects v off [lo, hi] until inside: ONNX's reference's _gs_reflect.
        func reflect(_ v: ImportedValue, lo: Float, hi: Float, _ name: String) throws -> ImportedValue {
            let range = hi - lo
            guard range > 0 else { return try un(.clip(min: lo, max: hi), v, "\(name)_flat") }
            func side(_ distance: ImportedValue, near: Float, far: Float, sign: Float, _ tag: String) throws -> ImportedValue {
                let n = try un(.floor, try op(.div, distance, f(range), "\(name)_\(tag)_n0"), "\(name)_\(tag)_n")
                let r = try op(.sub, distance, try op(.mul, n, f(range), "\(name)_\(tag)_nr"), "\(name)_\(tag)_r")
                let odd = try op(.greater, try op(.sub, n, try op(.mul, try un(.floor, try op(.mul, n, f(0.5), "\(name)_\(tag)_h0"), "\(name)_\(tag)_h"), f(2), "\(name)_\(tag)_2h"), "\(name)_\(tag)_parity"), f(0.5), "\(name)_\(tag)_odd")
                let even = try op(.add, f(near), try op(.mul, r, f(sign), "\(name)_\(tag)_sr"), "\(name)_\(tag)_even")
                let other = try op(.sub, f(far), try op(.mul, r, f(sign), "\(name)_\(tag)_sr2"), "\(name)_\(tag)_other")
                return try select(odd, other, even, "\(name)_\(tag)")
            }
            let below = try side(try op(.sub, f(lo), v, "\(name)_below_d"), near: lo, far: hi, sign: 1, "below")
            let above = try side(try op(.sub, v, f(hi), "\(name)_above_d"), near: hi, far: lo, sign: -1, "above")
            let inside = try select(try op(.less, v, f(lo), "\(name)_is_below"), below, v, "\(name)_low")
            return try select(try op(.greater, v, f(hi), "\(name)_is_above"), above, inside, "\(name)_reflected")
        }

        // 1 and 2: each spatial axis' point, in f32 (the grid's last axis is x, y, z: reversed).
        let grid32 = try cast(grid, to: .float32, c)
        var points: [ImportedValue] = []
        for axis in 0..<rank {
            let component = gs.count - 1
            var starts = Array(repeating: 0, count: gs.count), ends = gs
            (starts[component], ends[component]) = (rank - 1 - axis, rank - axis)
            let g = try reshape(try c.apply(.slice(starts: starts, ends: ends, steps: Array(repeating: 1, count: gs.count)), [grid32], name: "g\(axis)"), to: outShape, c)
            let size = Float(sizes[axis])
            let shifted = try op(.add, g, f(1), "g\(axis)_plus1")
            var p = aligned ? try op(.mul, shifted, f((size - 1) / 2), "p\(axis)")
                : try op(.mul, try op(.sub, try op(.mul, shifted, f(size), "p\(axis)_scaled"), f(1), "p\(axis)_less1"), f(0.5), "p\(axis)")
            if mode == 1 { p = try un(.round, p, "p\(axis)_nearest") }
            let (lo, hi) = aligned ? (Float(0), size - 1) : (Float(-0.5), size - 0.5)
            if padding != "zeros" {
                let outside = try op(.or, try op(.less, p, f(lo), "p\(axis)_below"), try op(.greater, p, f(hi), "p\(axis)_above"), "p\(axis)_outside")
                let moved = padding == "border" ? try un(.clip(min: 0, max: size - 1), p, "p\(axis)_clamped") : try reflect(p, lo: lo, hi: hi, "p\(axis)")
                p = try select(outside, moved, p, "p\(axis)_inside")
            }
            points.append(p)
        }

        // 3: each axis' taps, as (index as f32, weight, in the image or not).
        typealias Tap = (index: ImportedValue, weight: ImportedValue, valid: ImportedValue?)
        var axisTaps: [[Tap]] = []
        for (axis, p) in points.enumerated() {
            let size = Float(sizes[axis])
            let (lo, hi) = aligned ? (Float(0), size - 1) : (Float(-0.5), size - 0.5)
            // Nearest reads the point truncated (it is already rounded, unless reflected).
            let base = mode == 1 ? try cast(try cast(p, to: .int64, c), to: .float32, c) : try un(.floor, p, "p\(axis)_floor")
            let t = try op(.sub, p, base, "p\(axis)_frac")
            var weights: [ImportedValue]
            switch mode {
            case 1: weights = [f(1)]
            case 2: weights = [try op(.sub, f(1), t, "w\(axis)_0"), t]
            default:
                // Keys' cubic kernel, a = -0.75, at distances 1 + t, t, 1 - t, 2 - t.
                let a: Float = -0.75
                func far(_ d: ImportedValue, _ k: Int) throws -> ImportedValue {
                    // ((a d - 5a) d + 8a) d - 4a
                    let one = try op(.add, try op(.mul, d, f(a), "w\(axis)_\(k)_ad"), f(-5 * a), "w\(axis)_\(k)_1")
                    let two = try op(.add, try op(.mul, one, d, "w\(axis)_\(k)_2d"), f(8 * a), "w\(axis)_\(k)_2")
                    return try op(.add, try op(.mul, two, d, "w\(axis)_\(k)_3d"), f(-4 * a), "w\(axis)_\(k)")
                }
                func near(_ d: ImportedValue, _ k: Int) throws -> ImportedValue {
                    // ((a + 2) d - (a + 3)) d d + 1
                    let one = try op(.add, try op(.mul, d, f(a + 2), "w\(axis)_\(k)_ad"), f(-(a + 3)), "w\(axis)_\(k)_1")
                    return try op(.add, try op(.mul, try op(.mul, one, d, "w\(axis)_\(k)_2"), d, "w\(axis)_\(k)_3"), f(1), "w\(axis)_\(k)")
                }
                let oneMinus = try op(.sub, f(1), t, "p\(axis)_1mt")
                weights = [try far(try op(.add, t, f(1), "p\(axis)_1pt"), 0), try near(t, 1), try near(oneMinus, 2),
                           try far(try op(.sub, f(2), t, "p\(axis)_2mt"), 3)]
            }
            let first = mode == 4 ? -1 : 0
            axisTaps.append(try weights.enumerated().map { k, weight in
                var index = k + first == 0 ? base : try op(.add, base, f(Float(k + first)), "i\(axis)_\(k)")
                var valid: ImportedValue? = nil
                switch padding {
                case "zeros":
                    valid = try op(.and, try op(.greaterOrEqual, index, f(0), "i\(axis)_\(k)_ge0"), try op(.less, index, f(size), "i\(axis)_\(k)_lt"), "i\(axis)_\(k)_valid")
                    index = try un(.clip(min: 0, max: size - 1), index, "i\(axis)_\(k)_safe")
                case "border":
                    index = try un(.clip(min: 0, max: size - 1), index, "i\(axis)_\(k)_clamped")
                default:
                    // Reflected, then truncated toward zero, then kept in range (reflecting off
                    // [-1/2, size - 1/2] can land on -1/2).
                    let reflected = try reflect(index, lo: lo, hi: hi, "i\(axis)_\(k)")
                    index = try un(.clip(min: 0, max: size - 1), try cast(try cast(reflected, to: .int64, c), to: .float32, c), "i\(axis)_\(k)_reflected")
                }
                return (index, weight, valid)
            })
        }

        // Every combination of taps: a gather of X (channels last) at their indices.
        var moved = Array(0..<xs.count)
        moved.append(moved.remove(at: 1))
        let channelsLast = try c.apply(.transpose(perm: moved), [x], name: "channels_last")
        var sum: ImportedValue? = nil
        var combination = Array(repeating: 0, count: rank)
        let taps = axisTaps.map(\.count)
        for k in 0..<taps.reduce(1, *) {
            var rest = k
            for axis in (0..<rank).reversed() { combination[axis] = rest % taps[axis]; rest /= taps[axis] }
            let chosen = (0..<rank).map { axisTaps[$0][combination[$0]] }
            let indexShape = outShape + [1]
            let indices = try c.apply(.concat(axis: outShape.count), try chosen.map { try reshape(try cast($0.index, to: .int64, c), to: indexShape, c) }, name: "indices\(k)")
            var value = try c.apply(.gatherND(batchDims: 1), [channelsLast, indices], name: "taps\(k)")
            if type != .float32 { value = try cast(value, to: .float32, c) }
            var weight = chosen[0].weight
            for tap in chosen.dropFirst() { weight = try op(.mul, weight, tap.weight, "weight\(k)") }
            for case let valid? in chosen.map(\.valid) {
                weight = try select(valid, weight, f(0), "weight\(k)_valid")
            }
            let weighted = try op(.mul, value, try reshape(weight, to: indexShape, c), "weighted\(k)")
            sum = try sum.map { try op(.add, $0, weighted, "sum\(k)") } ?? weighted
        }
        var back = Array(0..<xs.count)
        back.insert(back.removeLast(), at: 1)
        let result = try c.apply(.transpose(perm: back), [sum!], name: type == .float32 ? nil : "f32")
        return try cast(result, to: type, c)
    }

    private static func roiAlign(_ c: ImportContext) throws -> ImportedValue {
        let x = try c.required(0), rois = try c.required(1), batchIndices = try c.required(2)
        let xs = c.shape(x)
        guard xs.count == 4, c.shape(rois).count == 2, c.shape(rois)[1] == 4, c.shape(batchIndices) == [c.shape(rois)[0]] else {
            throw c.fail("needs X [N, C, H, W], rois [R, 4] and batch_indices [R], not \(xs), \(c.shape(rois)), \(c.shape(batchIndices))")
        }
        let (regions, channels, height, width) = (c.shape(rois)[0], xs[1], xs[2], xs[3])
        let (pooledH, pooledW) = (c.node.int("output_height", 1), c.node.int("output_width", 1))
        let ratio = c.node.int("sampling_ratio", 0), scale = c.node.float("spatial_scale", 1)
        let halfPixel = c.opset >= 16 && c.node.string("coordinate_transformation_mode", "half_pixel") == "half_pixel"
        let maximum = c.node.string("mode", "avg") == "max"
        guard pooledH > 0, pooledW > 0 else { throw c.fail("has an output of \(pooledH) x \(pooledW)") }
        guard ratio > 0 else { throw c.unsupported("samples each bin adaptively (sampling_ratio 0), so its number of points depends on the regions' values; give sampling_ratio > 0") }
        func f(_ v: Float) -> ImportedValue { c.scalar(v) }
        func op(_ fn: BinaryFn, _ a: ImportedValue, _ b: ImportedValue, _ name: String) throws -> ImportedValue { try c.apply(.binary(fn), [a, b], name: name) }
        let boxes = try cast(rois, to: .float32, c)
        func corner(_ k: Int) throws -> ImportedValue {
            let coordinate = try reshape(try c.apply(.slice(starts: [0, k], ends: [regions, k + 1], steps: [1, 1]), [boxes], name: "roi\(k)"), to: [regions], c)
            return try op(.sub, try op(.mul, coordinate, f(scale), "roi\(k)_scaled"), f(halfPixel ? 0.5 : 0), "roi\(k)_start")
        }
        /// One axis: the samples' coordinates [R, pooled * ratio] and the shape that places them.
        func axis(start: Int, end: Int, pooled: Int, size: Int, _ name: String) throws -> (low: ImportedValue, high: ImportedValue, weightLow: ImportedValue, weightHigh: ImportedValue, valid: ImportedValue) {
            let (s, e) = (try corner(start), try corner(end))
            var extent = try op(.sub, e, s, "\(name)_extent")
            if !halfPixel { extent = try op(.max, extent, f(1), "\(name)_extent_min1") }
            let bin = try op(.div, extent, f(Float(pooled)), "\(name)_bin")
            // Sample (p, i) sits at start + bin (p + (i + 1/2) / ratio).
            let steps = ImportedValue.constant(ConstantTensor(shape: [1, pooled * ratio], floats: (0..<pooled * ratio).map { Float($0 / ratio) + (Float($0 % ratio) + 0.5) / Float(ratio) }))
            let at = try op(.add, try reshape(s, to: [regions, 1], c), try op(.mul, try reshape(bin, to: [regions, 1], c), steps, "\(name)_offsets"), "\(name)_at")
            let valid = try op(.and, try op(.greaterOrEqual, at, f(-1), "\(name)_from"), try op(.lessOrEqual, at, f(Float(size)), "\(name)_to"), "\(name)_valid")
            let clamped = try op(.max, at, f(0), "\(name)_clamped")
            let floor = try c.apply(.unary(.floor), [clamped], name: "\(name)_floor")
            let last = try op(.greaterOrEqual, floor, f(Float(size - 1)), "\(name)_last")
            let low = try c.apply(.select, [last, f(Float(size - 1)), floor], name: "\(name)_low")
            let high = try c.apply(.select, [last, f(Float(size - 1)), try op(.add, floor, f(1), "\(name)_next")], name: "\(name)_high")
            let fraction = try op(.sub, try c.apply(.select, [last, f(Float(size - 1)), clamped], name: "\(name)_kept"), low, "\(name)_fraction")
            return (low, high, try op(.sub, f(1), fraction, "\(name)_weight_low"), fraction, valid)
        }
        let y = try axis(start: 1, end: 3, pooled: pooledH, size: height, "y"), xAxis = try axis(start: 0, end: 2, pooled: pooledW, size: width, "x")
        // The sample grid [R, PH*ratio, PW*ratio]: rows from y, columns from x.
        let (rowShape, columnShape) = ([regions, pooledH * ratio, 1], [regions, 1, pooledW * ratio])
        let valid = try op(.and, try reshape(y.valid, to: rowShape, c), try reshape(xAxis.valid, to: columnShape, c), "valid")
        let batch = try reshape(try cast(batchIndices, to: .int64, c), to: [regions, 1, 1, 1], c)
        let channelsLast = try c.apply(.transpose(perm: [0, 2, 3, 1]), [x], name: "channels_last")
        let gridShape = [regions, pooledH * ratio, pooledW * ratio]
        var terms: [ImportedValue] = []
        for (k, (row, rowWeight)) in [(y.low, y.weightLow), (y.high, y.weightHigh)].enumerated() {
            for (j, (column, columnWeight)) in [(xAxis.low, xAxis.weightLow), (xAxis.high, xAxis.weightHigh)].enumerated() {
                let r = try reshape(try cast(row, to: .int64, c), to: rowShape + [1], c), q = try reshape(try cast(column, to: .int64, c), to: columnShape + [1], c)
                let parts = try [batch, r, q].map { try broadcast($0, to: gridShape + [1], c, name: "corner\(k)\(j)_index") }
                let indices = try c.apply(.concat(axis: 3), parts, name: "corner\(k)\(j)_indices")
                let values = try cast(try c.apply(.gatherND(batchDims: 0), [channelsLast, indices], name: "corner\(k)\(j)"), to: .float32, c)
                let weight = try op(.mul, try reshape(rowWeight, to: rowShape, c), try reshape(columnWeight, to: columnShape, c), "corner\(k)\(j)_weight")
                let kept = try c.apply(.select, [valid, weight, f(0)], name: "corner\(k)\(j)_kept")
                terms.append(try op(.mul, values, try reshape(kept, to: gridShape + [1], c), "corner\(k)\(j)_weighted"))
            }
        }
        let combined = try terms.dropFirst().reduce(terms[0]) { try op(maximum ? .max : .add, $0, $1, "samples") }
        // Each bin's ratio x ratio samples: [R, PH, ratio, PW, ratio, C], pooled over the ratios.
        let binned = try reshape(combined, to: [regions, pooledH, ratio, pooledW, ratio, channels], c)
        let pooled = try c.apply(.reduce(maximum ? .max : .mean, axes: [2, 4], keepDims: false), [binned], name: "bins")
        return try cast(try c.apply(.transpose(perm: [0, 3, 1, 2]), [pooled], name: "rois_first"), to: c.dtype(x), c)
    }

    private static func deformConv(_ c: ImportContext) throws -> ImportedValue {
        let x = try cast(try c.required(0), to: .float32, c), w = try cast(try c.required(1), to: .float32, c), offset = try cast(try c.required(2), to: .float32, c)
        let (xs, ws, os) = (c.shape(x), c.shape(w), c.shape(offset))
        guard xs.count == 4, ws.count == 4, os.count == 4 else { throw c.unsupported("computes 2-D deformable convolutions, not input rank \(xs.count)") }
        let (n, channels, height, width, outChannels) = (xs[0], xs[1], xs[2], xs[3], ws[0])
        let (kh, kw) = (ws[2], ws[3]), taps = ws[2] * ws[3]
        let groups = c.node.int("group", 1), offsetGroups = c.node.int("offset_group", 1)
        let strides = c.node.ints("strides") ?? [1, 1], dilations = c.node.ints("dilations") ?? [1, 1], pads = c.node.ints("pads") ?? [0, 0, 0, 0]
        let (oh, ow) = (os[2], os[3])
        guard groups > 0, offsetGroups > 0, channels == ws[1] * groups, outChannels % groups == 0, channels % offsetGroups == 0,
              os[0] == n, os[1] == offsetGroups * 2 * taps, strides.count == 2, dilations.count == 2, pads.count == 4 else {
            throw c.fail("has X \(xs), W \(ws), offset \(os) for group \(groups) and offset_group \(offsetGroups)")
        }
        let mask = try c.input(4).map { try reshape(try cast($0, to: .float32, c), to: [n, offsetGroups, taps, oh, ow], c) }
        let offsets = try reshape(offset, to: [n, offsetGroups, taps, 2, oh, ow], c)
        func f(_ v: Float) -> ImportedValue { c.scalar(v) }
        func op(_ fn: BinaryFn, _ a: ImportedValue, _ b: ImportedValue, _ name: String) throws -> ImportedValue { try c.apply(.binary(fn), [a, b], name: name) }
        func pick(_ v: ImportedValue, _ starts: [Int], _ ends: [Int], to shape: [Int], _ name: String) throws -> ImportedValue {
            try reshape(try c.apply(.slice(starts: starts, ends: ends, steps: Array(repeating: 1, count: starts.count)), [v], name: name), to: shape, c)
        }
        let perGroup = channels / offsetGroups
        // Each tap's sampled values [N, OH, OW, C], offset group by offset group.
        var tapValues: [ImportedValue] = []
        for t in 0..<taps {
            let (ki, kj) = (t / kw, t % kw)
            var parts: [ImportedValue] = []
            for g in 0..<offsetGroups {
                let plane = try c.apply(.transpose(perm: [0, 2, 3, 1]), [try pick(x, [0, g * perGroup, 0, 0], [n, (g + 1) * perGroup, height, width],
                                                                                     to: [n, perGroup, height, width], "x\(g)")], name: "x\(g)_last")
                let baseY = ImportedValue.constant(ConstantTensor(shape: [1, oh, 1], floats: (0..<oh).map { Float($0 * strides[0] - pads[0] + ki * dilations[0]) }))
                let baseX = ImportedValue.constant(ConstantTensor(shape: [1, 1, ow], floats: (0..<ow).map { Float($0 * strides[1] - pads[1] + kj * dilations[1]) }))
                let y = try op(.add, baseY, try pick(offsets, [0, g, t, 0, 0, 0], [n, g + 1, t + 1, 1, oh, ow], to: [n, oh, ow], "dy\(g)_\(t)"), "y\(g)_\(t)")
                let xx = try op(.add, baseX, try pick(offsets, [0, g, t, 1, 0, 0], [n, g + 1, t + 1, 2, oh, ow], to: [n, oh, ow], "dx\(g)_\(t)"), "x\(g)_\(t)")
                let (y0, x0) = (try c.apply(.unary(.floor), [y], name: "y0_\(g)_\(t)"), try c.apply(.unary(.floor), [xx], name: "x0_\(g)_\(t)"))
                let (ly, lx) = (try op(.sub, y, y0, "ly\(g)_\(t)"), try op(.sub, xx, x0, "lx\(g)_\(t)"))
                var sum: ImportedValue? = nil
                for (dy, wy) in [(0, try op(.sub, f(1), ly, "hy\(g)_\(t)")), (1, ly)] {
                    for (dx, wx) in [(0, try op(.sub, f(1), lx, "hx\(g)_\(t)")), (1, lx)] {
                        let (yi, xi) = (try op(.add, y0, f(Float(dy)), "yi"), try op(.add, x0, f(Float(dx)), "xi"))
                        let inside = try op(.and, try op(.and, try op(.greaterOrEqual, yi, f(0), "y_in0"), try op(.less, yi, f(Float(height)), "y_in1"), "y_in"),
                                            try op(.and, try op(.greaterOrEqual, xi, f(0), "x_in0"), try op(.less, xi, f(Float(width)), "x_in1"), "x_in"), "inside")
                        let index = try c.apply(.concat(axis: 3), try [(yi, height), (xi, width)].map { v, size in
                            try reshape(try cast(try c.apply(.unary(.clip(min: 0, max: Float(size - 1))), [v], name: "safe"), to: .int64, c), to: [n, oh, ow, 1], c)
                        }, name: "corner")
                        let value = try c.apply(.gatherND(batchDims: 1), [plane, index], name: "corner_value")
                        let weight = try c.apply(.select, [inside, try op(.mul, wy, wx, "corner_weight"), f(0)], name: "corner_kept")
                        let term = try op(.mul, value, try reshape(weight, to: [n, oh, ow, 1], c), "corner_term")
                        sum = try sum.map { try op(.add, $0, term, "sampled") } ?? term
                    }
                }
                if let mask {
                    sum = try op(.mul, sum!, try pick(mask, [0, g, t, 0, 0], [n, g + 1, t + 1, oh, ow], to: [n, oh, ow, 1], "mask\(g)_\(t)"), "masked")
                }
                parts.append(sum!)
            }
            tapValues.append(try reshape(parts.count == 1 ? parts[0] : try c.apply(.concat(axis: 3), parts, name: "tap\(t)"), to: [n, oh * ow, channels, 1], c))
        }
        // Columns [N, OH OW, C, KH KW] (channel-major, as the weights are), a matmul a group.
        let columns = try reshape(taps == 1 ? tapValues[0] : try c.apply(.concat(axis: 3), tapValues, name: "columns"), to: [n, oh * ow, channels * taps], c)
        let (inPerGroup, outPerGroup) = (channels / groups, outChannels / groups)
        var outputs: [ImportedValue] = []
        for q in 0..<groups {
            let cols = groups == 1 ? columns : try pick(columns, [0, 0, q * inPerGroup * taps], [n, oh * ow, (q + 1) * inPerGroup * taps], to: [n, oh * ow, inPerGroup * taps], "cols\(q)")
            let weights = try pick(w, [q * outPerGroup, 0, 0, 0], [(q + 1) * outPerGroup, ws[1], kh, kw], to: [outPerGroup, inPerGroup * taps], "w\(q)")
            outputs.append(try c.apply(.matmul, [cols, try c.apply(.transpose(perm: [1, 0]), [weights], name: "w\(q)_t")], name: "out\(q)"))
        }
        var y = outputs.count == 1 ? outputs[0] : try c.apply(.concat(axis: 2), outputs, name: "outputs")
        if let bias = try c.input(3) { y = try op(.add, y, try reshape(try cast(bias, to: .float32, c), to: [outChannels], c), "biased") }
        let result = try reshape(try c.apply(.transpose(perm: [0, 2, 1]), [y], name: "channels_first"), to: [n, outChannels, oh, ow], c)
        return try cast(result, to: c.dtype(try c.required(0)), c)
    }
}
