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
