/// Mean over the sequence axis under a mask: `x` `[B, T, C]`, `mask` `[B, T]` (1 keep, 0 skip)
/// -> `[B, C]` = `sum_t mask * x / max(sum_t mask, 1)`. (The sentence-transformers pooling.)
public final class MeanPool {
    private var b = 0, t = 0, c = 0
    private var mask: [Float] = []
    private var out: Tensor?
    private var dx: Tensor?
    public init() {}

    public func forward(_ x: Tensor, mask: Tensor?) throws -> Tensor {
        guard x.rank == 3 else { throw EngineError.shapeMismatch("MeanPool expects [B, T, C], got \(x.shape)") }
        b = x.shape[0]; t = x.shape[1]; c = x.shape[2]
        if let mask {
            guard mask.count == b * t else { throw EngineError.shapeMismatch("MeanPool mask \(mask.shape) for \(x.shape)") }
            self.mask = mask.array
        } else {
            self.mask = [Float](repeating: 1, count: b * t)
        }
        let y = Tensor.ensure(out, [b, c]); out = y
        y.zero()
        for bi in 0..<b {
            var cnt: Float = 0
            for ti in 0..<t { cnt += self.mask[bi * t + ti] }
            let inv = 1 / max(cnt, 1)
            for ti in 0..<t where self.mask[bi * t + ti] != 0 {
                Kernels.axpy(self.mask[bi * t + ti] * inv, x.data + (bi * t + ti) * c, y.data + bi * c, c)
            }
        }
        return y
    }

    /// `dy` `[B, C]` -> `dx` `[B, T, C]`.
    public func backward(_ dy: Tensor) throws -> Tensor {
        guard dy.count == b * c else { throw EngineError.shapeMismatch("MeanPool backward dy \(dy.shape)") }
        let d = Tensor.ensure(dx, [b, t, c]); dx = d
        d.zero()
        for bi in 0..<b {
            var cnt: Float = 0
            for ti in 0..<t { cnt += mask[bi * t + ti] }
            let inv = 1 / max(cnt, 1)
            for ti in 0..<t where mask[bi * t + ti] != 0 {
                Kernels.axpy(mask[bi * t + ti] * inv, dy.data + bi * c, d.data + (bi * t + ti) * c, c)
            }
        }
        return d
    }
}
