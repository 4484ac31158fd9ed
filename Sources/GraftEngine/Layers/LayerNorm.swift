import Dispatch
import GraftSupport

/// Layer normalisation over the last axis: `y = (x - mean) / sqrt(var + eps) * weight + bias`.
///
/// Parameters: `<name>.weight` `[C]` (ones), `<name>.bias` `[C]` (zeros); no weight decay by
/// the default rule. BERT uses `eps = 1e-12`, GPT-2 `1e-5`. Rows are split over cores;
/// the parameter gradients are summed per chunk and then in chunk order.
public final class LayerNorm {
    public let store: ParameterStore
    public let weight: Parameter
    public let bias: Parameter
    public let dim: Int
    public let eps: Float
    private var input: Tensor?
    private var out: Tensor?
    private var dx: Tensor?
    private var mean: [Float] = []
    private var rstd: [Float] = []
    private var partial: [Float] = []

    public init(_ store: ParameterStore, name: String, dim: Int, eps: Float = 1e-12) throws {
        self.store = store
        self.dim = dim
        self.eps = eps
        weight = try store.declare("\(name).weight", shape: [dim], initializer: .ones)
        bias = try store.declare("\(name).bias", shape: [dim], initializer: .zeros)
    }

    /// `x` `[..., C]` -> `[..., C]`.
    public func forward(_ x: Tensor) throws -> Tensor {
        let op = Profiler.beginOperation("LayerNorm forward")
        defer { Profiler.endOperation(op) }
        guard x.shape.last == dim else { throw EngineError.shapeMismatch("LayerNorm(\(weight.name)) expects [..., \(dim)], got \(x.shape)") }
        let rows = x.count / dim
        let y = Tensor.ensure(out, x.shape)
        out = y
        input = x
        if mean.count < rows { mean = [Float](repeating: 0, count: rows); rstd = mean }
        mean.withUnsafeMutableBufferPointer { mb in
            rstd.withUnsafeMutableBufferPointer { rb in
                normalize(x, into: y, mean: mb.baseAddress!, rstd: rb.baseAddress!)
            }
        }
        return y
    }

    /// Inference: `x` `[..., C]` -> `[..., C]` in `into` (same element count; may be `x` itself),
    /// the same values as ``forward(_:)`` with nothing kept for a backward.
    public func infer(_ x: Tensor, into y: Tensor) throws -> Tensor {
        let op = Profiler.beginOperation("LayerNorm forward")
        defer { Profiler.endOperation(op) }
        guard x.shape.last == dim, y.count == x.count else {
            throw EngineError.shapeMismatch("LayerNorm(\(weight.name)) expects [..., \(dim)] into as many values, got \(x.shape) into \(y.shape)")
        }
        normalize(x, into: y, mean: nil, rstd: nil)
        return y
    }

    /// `y = (x - mean) * rstd * weight + bias` per row (each row read whole before it is
    /// written, so `y` may be `x`), recording each row's mean and `rstd` where given.
    private func normalize(_ x: Tensor, into y: Tensor, mean: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?) {
        let c = dim, eps = eps, rows = x.count / dim
        let px = SharedPointer(x.data), py = SharedPointer(y.data)
        let pw = SharedPointer(store.value(weight)), pb = SharedPointer(store.value(bias))
        let pm = mean.map { SharedPointer($0) }, pr = rstd.map { SharedPointer($0) }
        Engine.parallelFor(rows, minChunk: max(1, Kernels.minChunk / c)) { range in
            for r in range {
                let xr = px.value + r * c, yr = py.value + r * c
                let m = FastMath.sum(xr, c) / Float(c)
                let rs = 1 / (FastMath.sumSquaredDeviations(xr, c, m) / Float(c) + eps).squareRoot()
                for i in 0..<c { yr[i] = (xr[i] - m) * rs * pw.value[i] + pb.value[i] }
                pm?.value[r] = m
                pr?.value[r] = rs
            }
        }
    }

    /// `dy` -> `dx`; accumulates `dweight += sum dy * xhat`, `dbias += sum dy`.
    /// `dx` goes into `into` when given (same element count; must not share memory with `dy`
    /// or the input), else into a buffer the layer owns.
    public func backward(_ dy: Tensor, into: Tensor? = nil) throws -> Tensor {
        let op = Profiler.beginOperation("LayerNorm backward")
        defer { Profiler.endOperation(op) }
        guard let x = input, dy.count == x.count else { throw EngineError.shapeMismatch("LayerNorm(\(weight.name)) backward") }
        let rows = x.count / dim, c = dim
        guard let d = Tensor.output(into: into, shape: x.shape, owned: &dx, notSharingWith: [dy, x]) else {
            throw EngineError.shapeMismatch("LayerNorm(\(weight.name)) backward: output \(into?.shape ?? []) for input \(x.shape)")
        }
        let chunks = max(1, min(Engine.threads, rows / max(1, Kernels.minChunk / c)))
        let per = (rows + chunks - 1) / chunks
        if partial.count < chunks * 2 * c { partial = [Float](repeating: 0, count: chunks * 2 * c) }
        let px = SharedPointer(x.data), pdy = SharedPointer(dy.data), pdx = SharedPointer(d.data)
        let pw = SharedPointer(store.value(weight))
        mean.withUnsafeMutableBufferPointer { mb in
            rstd.withUnsafeMutableBufferPointer { rb in
                partial.withUnsafeMutableBufferPointer { pb in
                    let pm = SharedPointer(mb.baseAddress!), pr = SharedPointer(rb.baseAddress!), pp = SharedPointer(pb.baseAddress!)
                    pp.value.update(repeating: 0, count: chunks * 2 * c)
                    let body: (Int) -> Void = { ch in
                        let dwp = pp.value + ch * 2 * c, dbp = dwp + c
                        for r in (ch * per)..<min(rows, (ch + 1) * per) {
                            let xr = px.value + r * c, gr = pdy.value + r * c, dr = pdx.value + r * c
                            let m = pm.value[r], rs = pr.value[r]
                            for i in 0..<c {
                                let xh = (xr[i] - m) * rs
                                dwp[i] += gr[i] * xh
                                dbp[i] += gr[i]
                            }
                            let (sumD, sumDX) = FastMath.layerNormBackwardSums(gr, pw.value, xr, c, m, rs)
                            let mD = sumD / Float(c), mDX = sumDX / Float(c)
                            for i in 0..<c {
                                let xh = (xr[i] - m) * rs
                                dr[i] = rs * (gr[i] * pw.value[i] - mD - xh * mDX)
                            }
                        }
                    }
                    if chunks == 1 { body(0) } else {
                        Engine.concurrent(chunks, body)
                    }
                    let gw = store.grad(weight), gb = store.grad(bias)
                    for ch in 0..<chunks {
                        Kernels.axpy(1, pp.value + ch * 2 * c, gw, c)
                        Kernels.axpy(1, pp.value + ch * 2 * c + c, gb, c)
                    }
                }
            }
        }
        return d
    }
}
