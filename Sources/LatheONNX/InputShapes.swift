import LatheIR

/// One dimension of a graph input as the file declares it.
enum DeclaredDimension: Equatable {
    /// A size the file fixes.
    case fixed(Int)
    /// A symbolic size (dim_param): inputs that share the name share the size.
    case named(String)
    /// Unnamed, or negative (some exporters write -1): any size, independent of the others.
    case open

    init(_ proto: Onnx_TensorShapeProto.Dimension) {
        switch proto.value {
        case let .dimValue(v)? where v >= 0: self = .fixed(Int(v))
        case let .dimParam(name)? where !name.isEmpty: self = .named(name)
        default: self = .open
        }
    }
}

/// A graph input's element type and declared dimensions.
struct DeclaredInput {
    let name: String
    let dtype: DType
    let dimensions: [DeclaredDimension]

    init(_ input: Onnx_ValueInfoProto, fileName: String) throws {
        guard case let .tensorType(tensor)? = input.type.value else {
            throw LatheError.unsupported("input '\(input.name)' of \(fileName) is not a tensor")
        }
        guard let dtype = DType(onnxCode: Int(tensor.elemType)) else {
            throw LatheError.unsupported("input '\(input.name)' of \(fileName) has ONNX element type \(tensor.elemType) (strings and complex numbers are not computed on)")
        }
        (name, self.dtype, dimensions) = (input.name, dtype, tensor.shape.dim.map(DeclaredDimension.init))
    }

    /// Whether some size is left to the caller: a symbolic dimension not among `sizes`, or an
    /// unnamed one.
    func isOpen(given sizes: [String: Int]) -> Bool {
        dimensions.contains { dimension in
            switch dimension {
            case .fixed: return false
            case let .named(name): return sizes[name] == nil
            case .open: return true
            }
        }
    }
}

/// The concrete shape of each graph input: the file's fixed sizes; for a symbolic dimension the
/// size `dimensions` gives its name, else the one the shape given for an input with that
/// dimension has (a feed's); for an unnamed one, the given shape's. Inputs that share a
/// symbolic name must agree on its size. A size nothing gives is LatheError.dimensionNeeded,
/// never a default.
struct InputShapes {
    private var sizes: [String: Int]
    private let given: [String: [Int]]

    /// Checks every given shape against its input's declaration (rank, fixed sizes, the sizes of
    /// symbolic names) and learns the symbolic names' sizes from them.
    init(_ inputs: [DeclaredInput], dimensions: [String: Int], given: [String: [Int]]) throws {
        sizes = dimensions
        self.given = given
        for input in inputs {
            guard let shape = given[input.name] else { continue }
            guard shape.count == input.dimensions.count else {
                throw LatheError.inputShapeMismatch(name: input.name, expected: expected(input), got: shape)
            }
            for (size, dimension) in zip(shape, input.dimensions) {
                guard fits(size, dimension) else { throw LatheError.inputShapeMismatch(name: input.name, expected: expected(input), got: shape) }
                if case let .named(name) = dimension { sizes[name] = size }
            }
        }
    }

    /// The input's concrete shape.
    func shape(of input: DeclaredInput) throws -> [Int] {
        if let shape = given[input.name] { return shape }
        return try input.dimensions.enumerated().map { axis, dimension in
            switch dimension {
            case let .fixed(size): return size
            case let .named(name):
                guard let size = sizes[name] else { throw LatheError.dimensionNeeded(input: input.name, axis: axis, name: name) }
                return size
            case .open: throw LatheError.dimensionNeeded(input: input.name, axis: axis, name: nil)
            }
        }
    }

    /// A given size fits a fixed dimension of that size, a symbolic one of no size yet or of
    /// that size, and any unnamed one.
    private func fits(_ size: Int, _ dimension: DeclaredDimension) -> Bool {
        switch dimension {
        case let .fixed(fixed): return size == fixed
        case let .named(name): return sizes[name].map { $0 == size } ?? true
        case .open: return true
        }
    }

    /// The declaration as a shape for an error: sizes known, -1 for those that are not.
    private func expected(_ input: DeclaredInput) -> [Int] {
        input.dimensions.map { dimension in
            switch dimension {
            case let .fixed(size): return size
            case let .named(name): return sizes[name] ?? -1
            case .open: return -1
            }
        }
    }
}
