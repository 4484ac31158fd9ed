import GraftSupport

/// Token (or position / segment) embedding: a lookup into `<name>.weight` `[vocab, dim]`.
/// Backward scatter-adds rows of `dy` into the table's gradient in row order (so repeated ids
/// accumulate in a fixed order), the columns split over the threads.
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
        let op = Profiler.beginOperation("embedding lookup")
        defer { Profiler.endOperation(op) }
        guard shape.reduce(1, *) == ids.count else {
            throw EngineError.shapeMismatch("Embedding(\(weight.name)): \(ids.count) ids for shape \(shape)")
        }
        let w = store.value(weight)
        guard let y = Tensor.output(into: into, shape: shape + [dim], owned: &out) else {
            throw EngineError.shapeMismatch("Embedding(\(weight.name)): output \(into?.shape ?? []) for \(ids.count) ids")
        }
        for id in ids where !(id >= 0 && Int(id) < vocabSize) {
            throw EngineError.invalidArgument("Embedding(\(weight.name)): id \(id) outside 0..<\(vocabSize)")
        }
        let pw = SharedPointer(w), py = SharedPointer(y.data), dim = dim
        ids.withUnsafeBufferPointer { ib in
            guard let first = ib.baseAddress else { return }
            let pi = UncheckedBox(first)
            Engine.parallelFor(ib.count, minChunk: max(1, Kernels.minChunk / dim)) { r in
                for i in r { (py.value + i * dim).update(from: pw.value + Int(pi.value[i]) * dim, count: dim) }
            }
        }
        self.ids = ids
        return y
    }

    /// Accumulates `dy` `[..., dim]` into the rows of the table gradient picked by the last ids.
    public func backward(_ dy: Tensor) throws {
        let op = Profiler.beginOperation("embedding gradient")
        defer { Profiler.endOperation(op) }
        guard dy.count == ids.count * dim else {
            throw EngineError.shapeMismatch("Embedding(\(weight.name)) backward: dy \(dy.shape) for \(ids.count) ids")
        }
        // Each thread takes a band of 16-column groups and adds every row of `dy` into it, in row
        // order: no two threads touch the same element, and the bits are those of one thread.
        let pg = SharedPointer(store.grad(weight)), pd = SharedPointer(dy.data), dim = dim
        ids.withUnsafeBufferPointer { ib in
            guard let first = ib.baseAddress else { return }
            let pi = UncheckedBox(first), n = ib.count
            Engine.parallelFor((dim + 15) / 16, minChunk: max(1, Kernels.minChunk / max(1, 16 * n))) { r in
                let c0 = r.lowerBound * 16, width = min(dim, r.upperBound * 16) - c0
                for i in 0..<n {
                    let src = pd.value + i * dim + c0, dst = pg.value + Int(pi.value[i]) * dim + c0
                    for j in 0..<width { dst[j] += src[j] }
                }
            }
        }
    }
}
