import Foundation

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

/// `tanh`, element-wise (used by BERT's pooler). Keeps its output for the backward.
public final class Tanh {
    private var out: Tensor?
    private var dx: Tensor?
    public init() {}

    public func forward(_ x: Tensor) -> Tensor {
        let y = Tensor.ensure(out, x.shape)
        out = y
        let px = SendablePtr(x.data), py = SendablePtr(y.data)
        Engine.parallelFor(x.count, minChunk: Kernels.minChunk) { r in
            for i in r { py.p[i] = Foundation.tanh(px.p[i]) }
        }
        return y
    }

    /// `dx = dy * (1 - y^2)`.
    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let y = out, dy.count == y.count else { throw EngineError.shapeMismatch("Tanh backward") }
        let d = Tensor.ensure(dx, y.shape)
        dx = d
        let py = SendablePtr(y.data), pg = SendablePtr(dy.data), pd = SendablePtr(d.data)
        Engine.parallelFor(y.count, minChunk: Kernels.minChunk) { r in
            for i in r { pd.p[i] = pg.p[i] * (1 - py.p[i] * py.p[i]) }
        }
        return d
    }
}

/// Inverted dropout: in training, each element is zeroed with probability `p` and the rest
/// scaled by `1 / (1 - p)`; in evaluation (or `p == 0`) it is the identity.
/// Each call draws one 64-bit key from a ``SharedRNG``; element `i` is kept when a counter-based
/// hash of `(key, i)` is below `1 - p`, so the mask depends only on the seed, not on threads.
public final class Dropout {
    public let p: Float
    public let rng: SharedRNG
    private var mask: [Float] = []
    private var active = false
    private var out: Tensor?
    private var dx: Tensor?

    public init(p: Float, rng: SharedRNG) throws {
        guard p >= 0 && p < 1 else { throw EngineError.invalidArgument("dropout probability \(p) not in [0, 1)") }
        self.p = p
        self.rng = rng
    }

    /// Returns `x` itself when inactive, else a masked copy.
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        active = training && p > 0
        guard active else { return x }
        let y = Tensor.ensure(out, x.shape)
        out = y
        if mask.count < x.count { mask = [Float](repeating: 0, count: x.count) }
        let keep = 1 - p, s = 1 / (1 - p)
        let key = rng.rng.next()   // one draw per call; element i uses hash(key, i)
        let px = SendablePtr(x.data), py = SendablePtr(y.data)
        mask.withUnsafeMutableBufferPointer { m in
            let pm = SendablePtr(m.baseAddress!)
            Engine.parallelFor(x.count, minChunk: Kernels.minChunk) { r in
                for i in r {
                    let k: Float = FastMath.hashUniform(key, i) < keep ? s : 0
                    pm.p[i] = k
                    py.p[i] = px.p[i] * k
                }
            }
        }
        return y
    }

    /// `dx = dy * mask` (or `dy` itself when inactive).
    public func backward(_ dy: Tensor) -> Tensor {
        guard active else { return dy }
        let d = Tensor.ensure(dx, dy.shape)
        dx = d
        mask.withUnsafeBufferPointer { m in
            FastMath.map2(dy.count, dy.data, m.baseAddress!, d.data) { g, k in g * k }
        }
        return d
    }
}
