/// GELU activation, element-wise on any shape.
///
/// - ``Form/erf``: `0.5 x (1 + erf(x / sqrt 2))`, the exact form BERT uses.
/// - ``Form/tanh``: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`, GPT-2's approximation.
public final class GELU {
    public enum Form: Sendable { case erf, tanh }
    public let form: Form
    private var input: Tensor?
    private var out: Tensor?
    private var dx: Tensor?

    public init(_ form: Form = .erf) { self.form = form }

    public func forward(_ x: Tensor) -> Tensor {
        let y = Tensor.ensure(out, x.shape)
        out = y
        input = x
        let px = SendablePtr(x.data), py = SendablePtr(y.data)
        let form = form
        Engine.parallelFor(x.count, minChunk: Kernels.minChunk) { r in
            let n = r.count, src = px.p + r.lowerBound, dst = py.p + r.lowerBound
            switch form {
            case .erf:
                FastMath.map(n, src, dst) { v in 0.5 * v * (1 + FastMath.erf(v * 0.70710678118654752)) }
            case .tanh:
                FastMath.map(n, src, dst) { v in 0.5 * v * (1 + FastMath.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))) }
            }
        }
        return y
    }

    /// `dy` -> `dx` (same shape).
    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let x = input, dy.count == x.count else { throw EngineError.shapeMismatch("GELU backward") }
        let d = Tensor.ensure(dx, x.shape)
        dx = d
        let px = SendablePtr(x.data), pg = SendablePtr(dy.data), pd = SendablePtr(d.data)
        let form = form
        Engine.parallelFor(x.count, minChunk: Kernels.minChunk) { r in
            let n = r.count, xs = px.p + r.lowerBound, gs = pg.p + r.lowerBound, ds = pd.p + r.lowerBound
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
        return d
    }
}
