/// Fully connected layer `y = x W^T + b`, with `W` stored `[out, in]` row-major as in
/// PyTorch/HuggingFace (so checkpoints load without transposing).
///
/// Parameters: `<name>.weight` `[out, in]`, `<name>.bias` `[out]`.
/// Forward: `x` `[..., in]` -> `[..., out]`. All three products (forward, `dX`, `dW`) go through
/// ``BLAS/matmul`` (`dW` as `dW^T`, added transposed, when there are fewer outputs than inputs);
/// `db` is a BLAS gemv.
public final class Linear {
    public let store: ParameterStore
    public let weight: Parameter
    public let bias: Parameter?
    public let inFeatures: Int
    public let outFeatures: Int
    private var input: Tensor?
    private var out: Tensor?
    private var dx: Tensor?
    private var transposedGradient: Tensor?   // dW^T [in, out] (backwardParameters), kept between calls

    public init(_ store: ParameterStore, name: String, inFeatures: Int, outFeatures: Int, bias: Bool = true,
                initializer: Initializer = .normal(std: 0.02)) throws {
        self.store = store
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = try store.declare("\(name).weight", shape: [outFeatures, inFeatures], initializer: initializer)
        self.bias = bias ? try store.declare("\(name).bias", shape: [outFeatures], initializer: .zeros) : nil
    }

    /// A layer over parameters already declared: `weight` `[out, in]` and `bias` `[out]` (or nil)
    /// of `store`. Either may also be a view that no other layer declared: a block whose query,
    /// key and value parameters lie one after another in the flat buffers reads them as one
    /// `[3A, C]` weight and `[3A]` bias (``TransformerBlock``).
    public init(_ store: ParameterStore, weight: Parameter, bias: Parameter?) throws {
        guard weight.shape.count == 2, bias.map({ $0.shape == [weight.shape[0]] }) ?? true else {
            throw EngineError.shapeMismatch("Linear over \(weight.name) \(weight.shape) and \(bias.map { "\($0.name) \($0.shape)" } ?? "no bias")")
        }
        self.store = store
        outFeatures = weight.shape[0]
        inFeatures = weight.shape[1]
        self.weight = weight
        self.bias = bias
    }

    /// A layer whose weight is an existing parameter (weight tying, e.g. a language-model
    /// decoder sharing `embeddings.word_embeddings.weight` `[vocab, dim]`): `y = x E^T + b`.
    /// Gradients from both users accumulate into the same slice of the flat gradient buffer.
    public init(_ store: ParameterStore, tiedWeight: Parameter, biasName: String?) throws {
        guard tiedWeight.shape.count == 2 else { throw EngineError.shapeMismatch("tied weight \(tiedWeight.name) is \(tiedWeight.shape)") }
        self.store = store
        outFeatures = tiedWeight.shape[0]
        inFeatures = tiedWeight.shape[1]
        weight = tiedWeight
        bias = try biasName.map { try store.declare($0, shape: [tiedWeight.shape[0]], initializer: .zeros) }
    }

    /// `x` `[..., in]` -> `[..., out]` (the returned tensor belongs to the layer).
    public func forward(_ x: Tensor) throws -> Tensor {
        let op = Profiler.beginOperation("Linear forward (GEMM, bias)")
        defer { Profiler.endOperation(op) }
        guard x.rank >= 1, x.shape.last == inFeatures else {
            throw EngineError.shapeMismatch("Linear(\(weight.name)) expects [..., \(inFeatures)], got \(x.shape)")
        }
        let rows = x.count / inFeatures
        if let o = out, o.storage.capacity < rows * outFeatures { out = nil }   // free before growing, not after
        let y = Tensor.ensure(out, Array(x.shape.dropLast()) + [outFeatures])
        out = y
        input = x
        product(x, rows: rows, into: y)
        return y
    }

    /// Inference: `x` `[..., in]` -> `[..., out]` in `into` (as many rows of `out` values, not
    /// sharing memory with `x`), the same values as ``forward(_:)`` with nothing kept for a
    /// backward (the layer's own output buffer and recorded input are left alone).
    public func infer(_ x: Tensor, into y: Tensor) throws -> Tensor {
        let op = Profiler.beginOperation("Linear forward (GEMM, bias)")
        defer { Profiler.endOperation(op) }
        let rows = x.rank >= 1 && x.shape.last == inFeatures ? x.count / inFeatures : -1
        guard rows >= 0, y.count == rows * outFeatures, y.storage !== x.storage else {
            throw EngineError.shapeMismatch("Linear(\(weight.name)) infers [..., \(inFeatures)] into [..., \(outFeatures)] in other memory, got \(x.shape) into \(y.shape)")
        }
        product(x, rows: rows, into: y)
        return y
    }

    /// `y[rows, out] = b + x[rows, in] * W[out, in]^T` (each band of rows copies the bias, then
    /// adds the product).
    private func product(_ x: Tensor, rows: Int, into y: Tensor) {
        BLAS.matmul(.none, .transposed, m: rows, n: outFeatures, k: inFeatures, a: x.data, b: store.value(weight), c: y.data,
                    bias: bias.map { UnsafePointer(store.value($0)) })
    }

    /// `dy` `[..., out]` -> `dx` `[..., in]`; accumulates `dW += dy^T x`, `db += sum dy`.
    /// `dx` goes into `into` when given (same element count as the input; must not share memory
    /// with `dy` or the input), else into a buffer the layer owns.
    public func backward(_ dy: Tensor, into: Tensor? = nil) throws -> Tensor {
        let d = try backwardInput(dy, into: into)
        try backwardParameters(dy)
        return d
    }

    /// ``backward(_:into:)`` that adds `dy W` to what `into` holds (`into += dy W`, in the same
    /// product: no separate pass over a sum of gradients). `into` as for ``backward(_:into:)``.
    public func backward(_ dy: Tensor, accumulatingInto into: Tensor) throws -> Tensor {
        let d = try backwardInput(dy, into: into, beta: 1)
        try backwardParameters(dy)
        return d
    }

    /// The first half of ``backward(_:into:)``: only `dx = dy W` (the input is not read).
    public func backwardInput(_ dy: Tensor, into: Tensor? = nil) throws -> Tensor {
        try backwardInput(dy, into: into, beta: 0)
    }

    /// `dx = dy W + beta dx`.
    private func backwardInput(_ dy: Tensor, into: Tensor?, beta: Float) throws -> Tensor {
        let op = Profiler.beginOperation("Linear backward: input gradient (GEMM)")
        defer { Profiler.endOperation(op) }
        guard let x = input else { throw EngineError.invalidArgument("Linear.backward before forward") }
        guard dy.count == x.count / inFeatures * outFeatures else {
            throw EngineError.shapeMismatch("Linear(\(weight.name)) backward: dy \(dy.shape) for input \(x.shape)")
        }
        let rows = x.count / inFeatures
        guard let d = Tensor.output(into: into, shape: x.shape, owned: &dx, notSharingWith: [dy, x]) else {
            throw EngineError.shapeMismatch("Linear(\(weight.name)) backward: output \(into?.shape ?? []) for input \(x.shape)")
        }
        // dx[rows, in] = dy[rows, out] * W[out, in]
        BLAS.matmul(.none, .none, m: rows, n: inFeatures, k: outFeatures, a: dy.data, b: store.value(weight), c: d.data, beta: beta)
        return d
    }

    /// The multiply-adds from which a weight gradient with fewer outputs than inputs is taken as
    /// `dW^T = x^T dy` and added transposed (``backwardParameters(_:)``): OpenBLAS runs the
    /// product with few rows and a long `K` slower (two threads, BERT-Mini's `dW` of the
    /// feed-forward output: a 512-row band of `1024x256x4096` took 6-16% less time than a
    /// 128-row band of `256x1024x4096`, the same work, timed in pairs;
    /// `benchmarks/weight_gradient_transposed.py`), and the transposed add is one pass over `dW`.
    static let transposedGradientWork = 4_194_304.0

    /// The second half of ``backward(_:into:)``: `dW += dy^T x`, `db += sum dy`, reading the
    /// input of the last forward now (so a caller may rebuild that input in between). With fewer
    /// outputs than inputs (and at least ``transposedGradientWork`` multiply-adds) `dW^T = x^T dy`
    /// is taken into a buffer of the weight's size that the layer keeps, and added transposed.
    public func backwardParameters(_ dy: Tensor) throws {
        let op = Profiler.beginOperation("Linear backward: weight (GEMM) and bias gradients")
        defer { Profiler.endOperation(op) }
        guard let x = input else { throw EngineError.invalidArgument("Linear.backward before forward") }
        guard dy.count == x.count / inFeatures * outFeatures else {
            throw EngineError.shapeMismatch("Linear(\(weight.name)) backward: dy \(dy.shape) for input \(x.shape)")
        }
        let rows = x.count / inFeatures
        if outFeatures < inFeatures && Double(outFeatures) * Double(inFeatures) * Double(rows) >= Self.transposedGradientWork {
            // dW^T[in, out] = x^T[in, rows] * dy[rows, out] into a buffer the layer keeps (allocated
            // afresh each call it cost ~1,000 page faults per BERT-Mini update), then dW += its
            // transpose: the product's bands over the threads are `in` rows wide, not `out`.
            let t = Tensor.ensure(transposedGradient, [inFeatures, outFeatures])
            transposedGradient = t
            BLAS.matmul(.transposed, .none, m: inFeatures, n: outFeatures, k: rows, a: x.data, b: dy.data, c: t.data)
            Kernels.addTransposed(t.data, rows: inFeatures, cols: outFeatures, into: store.grad(weight))
        } else {
            // dW[out, in] += dy^T[out, rows] * x[rows, in]
            BLAS.matmul(.transposed, .none, m: outFeatures, n: inFeatures, k: rows, a: dy.data, b: x.data, c: store.grad(weight), beta: 1)
        }
        if let bias { Kernels.addColumnSums(dy.data, rows: rows, cols: outFeatures, into: store.grad(bias)) }
    }
}
