import GraftSupport
/// `tanh`, element-wise (used by BERT's pooler). Keeps its output for the backward.
public final class Tanh {
    private var out: Tensor?
    private var dx: Tensor?
    public init() {}

    public func forward(_ x: Tensor) -> Tensor {
        let y = Tensor.ensure(out, x.shape)
        out = y
        let px = SharedPointer(x.data), py = SharedPointer(y.data)
        Engine.parallelFor(x.count, minChunk: Kernels.minChunk) { r in
            for i in r { py.value[i] = FastMath.tanh(px.value[i]) }
        }
        return y
    }

    /// `dx = dy * (1 - y^2)`.
    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let y = out, dy.count == y.count else { throw EngineError.shapeMismatch("Tanh backward") }
        let d = Tensor.ensure(dx, y.shape)
        dx = d
        let py = SharedPointer(y.data), pg = SharedPointer(dy.data), pd = SharedPointer(d.data)
        Engine.parallelFor(y.count, minChunk: Kernels.minChunk) { r in
            for i in r { pd.value[i] = pg.value[i] * (1 - py.value[i] * py.value[i]) }
        }
        return d
    }
}
