/// Token (or position / segment) embedding: a lookup into `<name>.weight` `[vocab, dim]`.
/// Backward scatter-adds rows of `dy` into the table's gradient (sequentially, so repeated
/// ids accumulate in a fixed order).
public final class Embedding {
    public let store: ParameterStore
    public let weight: Parameter
    public let vocabSize: Int
    public let dim: Int
    private var ids: [Int32] = []
    private var out: Tensor?

    public init(_ store: ParameterStore, name: String, vocabSize: Int, dim: Int,
                initializer: Initializer = .normal(std: 0.02)) throws {
        self.store = store
        self.vocabSize = vocabSize
        self.dim = dim
        weight = try store.declare("\(name).weight", shape: [vocabSize, dim], initializer: initializer)
    }

    /// `ids` (row-major, `shape.product` of them) -> `[shape..., dim]`, in `into` when given
    /// (`ids.count * dim` elements), else in a tensor the layer owns. The backward needs only the ids.
    public func forward(_ ids: [Int32], shape: [Int], into: Tensor? = nil) throws -> Tensor {
        guard shape.reduce(1, *) == ids.count else {
            throw EngineError.shapeMismatch("Embedding(\(weight.name)): \(ids.count) ids for shape \(shape)")
        }
        let w = store.value(weight)
        guard let y = Tensor.output(into: into, shape: shape + [dim], owned: &out) else {
            throw EngineError.shapeMismatch("Embedding(\(weight.name)): output \(into?.shape ?? []) for \(ids.count) ids")
        }
        for (i, id) in ids.enumerated() {
            guard id >= 0 && Int(id) < vocabSize else {
                throw EngineError.invalidArgument("Embedding(\(weight.name)): id \(id) outside 0..<\(vocabSize)")
            }
            (y.data + i * dim).update(from: w + Int(id) * dim, count: dim)
        }
        self.ids = ids
        return y
    }

    /// Accumulates `dy` `[..., dim]` into the rows of the table gradient picked by the last ids.
    public func backward(_ dy: Tensor) throws {
        guard dy.count == ids.count * dim else {
            throw EngineError.shapeMismatch("Embedding(\(weight.name)) backward: dy \(dy.shape) for \(ids.count) ids")
        }
        let g = store.grad(weight)
        for (i, id) in ids.enumerated() {
            Kernels.axpy(1, dy.data + i * dim, g + Int(id) * dim, dim)
        }
    }
}
