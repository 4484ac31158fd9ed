import GraftSupport
/// Inverted dropout: in training, each element is zeroed with probability `p` and the rest
/// scaled by `1 / (1 - p)`; in evaluation (or `p == 0`) it is the identity.
/// Each call draws one 64-bit key from a ``SharedRNG``; element `i` is kept when a counter-based
/// hash of `(key, i)` is below `1 - p`, so the mask depends only on the seed, not on threads.
/// The mask is kept as one byte per element for the backward.
public final class Dropout {
    public let p: Float
    public let rng: SharedRNG
    private var mask: [UInt8] = []
    private var active = false
    private var out: Tensor?
    private var dx: Tensor?

    public init(p: Float, rng: SharedRNG) throws {
        guard p >= 0 && p < 1 else { throw EngineError.invalidArgument("dropout probability \(p) not in [0, 1)") }
        self.p = p
        self.rng = rng
    }

    /// Returns `x` itself when inactive, else a masked copy (owned by the layer).
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        active = training && p > 0
        guard active else { return x }
        let y = Tensor.ensure(out, x.shape)
        out = y
        apply(x, y)
        return y
    }

    /// Applies dropout to `x` in place (nothing when inactive) and returns `x`: for callers that
    /// do not need the undropped values afterwards (the backward needs only the mask).
    @discardableResult
    public func forwardInPlace(_ x: Tensor, training: Bool) -> Tensor {
        active = training && p > 0
        if active { apply(x, x) }
        return x
    }

    /// `x = residual + dropout(x)` in place, in one pass (the residual sum of a transformer
    /// block): the same values as ``forwardInPlace(_:training:)`` followed by adding `residual`.
    /// Returns `x`.
    @discardableResult
    public func forwardInPlace(_ x: Tensor, adding residual: Tensor, training: Bool) -> Tensor {
        let op = Profiler.beginOperation("dropout + residual forward")
        defer { Profiler.endOperation(op) }
        precondition(residual.count == x.count && residual.storage !== x.storage,
                     "Dropout residual \(residual.shape) for \(x.shape), in other memory")
        active = training && p > 0
        guard active else {
            Kernels.add(residual.data, x.data, x.data, x.count)
            return x
        }
        apply(x, x, adding: residual)
        return x
    }

    /// `y = dropout(x)`, or with `residual` (then `y` is `x`) `x = residual + dropout(x)`.
    private func apply(_ x: Tensor, _ y: Tensor, adding residual: Tensor? = nil) {
        if mask.count < x.count { mask = [UInt8](repeating: 0, count: x.count) }
        let keep = 1 - p, s = 1 / (1 - p)
        let key = rng.rng.next()   // one draw per call; element i uses hash(key, i)
        let px = SharedPointer(x.data), py = SharedPointer(y.data), inPlace = x.data == y.data
        let pr = residual.map { SharedPointer($0.data) }
        mask.withUnsafeMutableBufferPointer { m in
            let pm = UncheckedBox(m.baseAddress!)
            Engine.parallelFor(x.count, minChunk: Kernels.minChunk) { r in
                FastMath.keepFlags(key, start: r.lowerBound, count: r.count, keep: keep, into: pm.value + r.lowerBound)
                if let pr {
                    let ys = py.value, rs = pr.value, ms = pm.value
                    for i in r {
                        let k: Float = ms[i] != 0 ? s : 0
                        ys[i] = rs[i] + ys[i] * k
                    }
                    return
                }
                @inline(__always) func run(_ src: UnsafeMutablePointer<Float>) {
                    for i in r {
                        let k: Float = pm.value[i] != 0 ? s : 0
                        py.value[i] = src[i] * k
                    }
                }
                // In place, one pointer for source and destination (see GELU.backward).
                if inPlace { run(py.value) } else { run(px.value) }
            }
        }
    }

    /// `dx = dy * mask` (or `dy` itself when inactive). `dx` goes into `into` when given (same
    /// element count; it may be `dy` itself), else into a buffer the layer owns.
    public func backward(_ dy: Tensor, into: Tensor? = nil) -> Tensor {
        let op = Profiler.beginOperation("dropout backward")
        defer { Profiler.endOperation(op) }
        guard active else { return dy }
        guard let d = Tensor.output(into: into, shape: dy.shape, owned: &dx) else {
            preconditionFailure("Dropout backward: output \(into?.shape ?? []) for dy \(dy.shape)")
        }
        let s = 1 / (1 - p)
        let pg = SharedPointer(dy.data), pd = SharedPointer(d.data), inPlace = dy.data == d.data
        mask.withUnsafeBufferPointer { m in
            let pm = UncheckedBox(m.baseAddress!)
            Engine.parallelFor(dy.count, minChunk: Kernels.minChunk) { r in
                @inline(__always) func run(_ src: UnsafeMutablePointer<Float>) {
                    for i in r {
                        let k: Float = pm.value[i] != 0 ? s : 0
                        pd.value[i] = src[i] * k
                    }
                }
                if inPlace { run(pd.value) } else { run(pg.value) }   // see apply
            }
        }
        return d
    }
}
