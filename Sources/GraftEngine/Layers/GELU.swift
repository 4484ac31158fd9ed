import GraftSupport
/// GELU activation, element-wise on any shape.
///
/// - ``Form/erf``: `0.5 x (1 + erf(x / sqrt 2))`, the exact form BERT uses.
/// - ``Form/tanh``: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`, GPT-2's approximation.
///
/// The backward needs only the input. A caller short of memory can put the output in a
/// shared scratch tensor (`forward(x, into:)`) and have the backward rebuild it, bit for bit,
/// in the same pass (``backward(_:into:recomputingOutputInto:)``) for whatever consumed it.
public final class GELU {
    public enum Form: Sendable { case erf, tanh }
    public let form: Form
    private var input: Tensor?
    private var out: Tensor?
    private var dx: Tensor?

    public init(_ form: Form = .erf) { self.form = form }

    /// `x` -> `gelu(x)`, in `into` when given (same element count, not `x`'s memory), else in a
    /// tensor the layer owns.
    public func forward(_ x: Tensor, into: Tensor? = nil) -> Tensor {
        let op = Profiler.beginOperation("GELU forward")
        defer { Profiler.endOperation(op) }
        guard let y = Tensor.output(into: into, shape: x.shape, owned: &out, notSharingWith: [x]) else {
            preconditionFailure("GELU forward: output \(into?.shape ?? []) for \(x.shape)")
        }
        input = x
        apply(x, y)
        return y
    }

    /// Inference: `x = gelu(x)` in place, the same values as ``forward(_:into:)``, nothing kept
    /// for a backward. Returns `x`.
    @discardableResult
    public func inferInPlace(_ x: Tensor) -> Tensor {
        let op = Profiler.beginOperation("GELU forward")
        defer { Profiler.endOperation(op) }
        apply(x, x)
        return x
    }

    private func apply(_ x: Tensor, _ y: Tensor) {
        let px = SharedPointer(x.data), py = SharedPointer(y.data)
        let form = form
        Engine.parallelFor(x.count, minChunk: Kernels.minChunk) { r in
            let n = r.count, src = px.value + r.lowerBound, dst = py.value + r.lowerBound
            switch form {
            case .erf:
                FastMath.map(n, src, dst) { v in 0.5 * v * (1 + FastMath.erf(v * 0.70710678118654752)) }
            case .tanh:
                FastMath.map(n, src, dst) { v in 0.5 * v * (1 + FastMath.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))) }
            }
        }
    }

    /// Where a backward writes `dx`: `into` when given (same element count, not the input's
    /// storage), else a tensor the layer owns.
    private func gradientBuffer(_ into: Tensor?, input x: Tensor) throws -> Tensor {
        guard let d = Tensor.output(into: into, shape: x.shape, owned: &dx, notSharingWith: [x]) else {
            throw EngineError.shapeMismatch("GELU backward: output \(into?.shape ?? []) for \(x.shape)")
        }
        return d
    }

    /// `dy` -> `dx` (same shape), in `into` when given (same element count; may be `dy` itself),
    /// else in a tensor the layer owns.
    public func backward(_ dy: Tensor, into: Tensor? = nil) throws -> Tensor {
        let op = Profiler.beginOperation("GELU backward")
        defer { Profiler.endOperation(op) }
        guard let x = input, dy.count == x.count else { throw EngineError.shapeMismatch("GELU backward") }
        let d = try gradientBuffer(into, input: x)
        let px = SharedPointer(x.data), pg = SharedPointer(dy.data), pd = SharedPointer(d.data)
        let form = form, inPlace = d.data == dy.data
        Engine.parallelFor(x.count, minChunk: Kernels.minChunk) { r in
            let n = r.count, xs = px.value + r.lowerBound, ds = pd.value + r.lowerBound
            @inline(__always) func run(_ gs: UnsafeMutablePointer<Float>) {
                switch form {
                case .erf:
                    FastMath.map2(n, xs, gs, ds) { v, g in
                        let cdf = 0.5 * (1 + FastMath.erf(v * 0.70710678118654752))
                        let pdf = FastMath.exp(-0.5 * v * v) * 0.3989422804014327
                        return g * (cdf + v * pdf)
                    }
                case .tanh:
                    FastMath.map2(n, xs, gs, ds) { v, g in
                        let t = FastMath.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))
                        let du = 0.7978845608028654 * (1 + 3 * 0.044715 * v * v)
                        return g * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du)
                    }
                }
            }
            // In place, the loop gets the one pointer for both `dy` and `dx`, so it vectorises
            // (two pointers that overlap fail the vectoriser's run-time check and run scalar).
            if inPlace { run(ds) } else { run(pg.value + r.lowerBound) }
        }
        return d
    }

    /// ``backward(_:into:)`` that also writes the output of the last forward again (bit for bit)
    /// into `output` in the same pass, for a forward whose output went to memory reused since.
    /// `output` must not share memory with the input, `dy` or `dx`.
    public func backward(_ dy: Tensor, into: Tensor? = nil, recomputingOutputInto output: Tensor) throws -> Tensor {
        let op = Profiler.beginOperation("GELU backward (output rebuilt)")
        defer { Profiler.endOperation(op) }
        guard let x = input, dy.count == x.count, output.count == x.count, output.storage !== x.storage,
              output.storage !== dy.storage, into.map({ $0.storage !== output.storage }) ?? true else {
            throw EngineError.shapeMismatch("GELU backward: dy \(dy.shape), output \(output.shape)")
        }
        let d = try gradientBuffer(into, input: x)
        let px = SharedPointer(x.data), pg = SharedPointer(dy.data), pd = SharedPointer(d.data), py = SharedPointer(output.data)
        let form = form, inPlace = d.data == dy.data
        Engine.parallelFor(x.count, minChunk: Kernels.minChunk) { r in
            let n = r.count, xs = px.value + r.lowerBound, ds = pd.value + r.lowerBound, ys = py.value + r.lowerBound
            // The same expressions as forward and backward, sharing the erf / tanh.
            @inline(__always) func run(_ gs: UnsafeMutablePointer<Float>) {
                switch form {
                case .erf:
                    for i in 0..<n {
                        let v = xs[i]
                        let e = FastMath.erf(v * 0.70710678118654752)
                        ys[i] = 0.5 * v * (1 + e)
                        let cdf = 0.5 * (1 + e)
                        let pdf = FastMath.exp(-0.5 * v * v) * 0.3989422804014327
                        ds[i] = gs[i] * (cdf + v * pdf)
                    }
                case .tanh:
                    for i in 0..<n {
                        let v = xs[i]
                        let t = FastMath.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))
                        ys[i] = 0.5 * v * (1 + t)
                        let du = 0.7978845608028654 * (1 + 3 * 0.044715 * v * v)
                        ds[i] = gs[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du)
                    }
                }
            }
            if inPlace { run(ds) } else { run(pg.value + r.lowerBound) }   // see backward(_:into:)
        }
        return d
    }
}
