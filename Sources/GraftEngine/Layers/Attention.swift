import GraftSupport
/// Scaled dot-product multi-head attention (no parameters of its own; the Q/K/V and output
/// projections are ``Linear`` layers around it).
///
/// Inputs are `Q` `[B, Tq, C]`, `K`, `V` `[B, Tk, C]` with `C = heads * D` (or one fused
/// `[B, T, 3C]` tensor), an optional key padding mask `[B, Tk]` (1 = real token, 0 = padding)
/// and a causal flag (which needs `Tq = Tk`). Queries may be fewer than keys: a sequence
/// classifier's last block asks only for the `[CLS]` row (`Tq = 1`).
/// Per batch item and head: `S = Q K^T / sqrt(D)` `[Tq, Tk]`; masked keys get probability 0
/// (a row with no visible key gives all zeros); `P = softmax(S)`; optional dropout on `P`;
/// output `P V` written back with heads merged, `[B, Tq, C]`.
///
/// The `B * heads` (batch item, head) pairs are spread over ``Engine/threads`` cores, each pair
/// run start to end on one thread (scores GEMM, softmax, `P V` GEMM with single-threaded BLAS;
/// likewise the backward) while its `[Tq, Tk]` matrix is in cache. The probabilities
/// `[B, heads, Tq, Tk]` are kept for the backward; with dropout, its mask is kept as one byte per
/// probability and the dropped probabilities are rebuilt per head in a small per-thread buffer
/// when a product needs them. The backward's gradient of one head's probabilities lives in a
/// per-thread `[Tq, Tk]` buffer.
public final class MultiHeadAttention {
    public let heads: Int
    public let causal: Bool
    public let dropout: Float
    public let rng: SharedRNG?
    private var b = 0, tq = 0, tk = 0, c = 0, stride = 0
    private var q: UnsafeMutablePointer<Float>?
    private var k: UnsafeMutablePointer<Float>?
    private var v: UnsafeMutablePointer<Float>?
    private var inputs: [Tensor] = []
    private var probs: Tensor?        // P (after softmax, before dropout)
    private var dropMask: [UInt8] = []  // 1 = kept (scaled by 1 / (1 - dropout)), 0 = dropped
    private var dropActive = false
    private var maskCopy: [Float] = []
    private var hasMask = false
    private var out: Tensor?
    private var dq: Tensor?, dk: Tensor?, dv: Tensor?, dqkv: Tensor?

    /// `dropout` is the attention-probability dropout (BERT: 0.1); it needs an `rng`.
    public init(heads: Int, causal: Bool = false, dropout: Float = 0, rng: SharedRNG? = nil) throws {
        guard heads > 0 else { throw EngineError.invalidArgument("heads must be > 0") }
        guard dropout >= 0 && dropout < 1 else { throw EngineError.invalidArgument("attention dropout \(dropout)") }
        guard dropout == 0 || rng != nil else { throw EngineError.invalidArgument("attention dropout needs an rng") }
        self.heads = heads
        self.causal = causal
        self.dropout = dropout
        self.rng = rng
    }

    /// Separate `Q` `[B, Tq, C]`, `K`, `V` `[B, Tk, C]` -> context `[B, Tq, C]`.
    public func forward(q: Tensor, k: Tensor, v: Tensor, mask: Tensor? = nil, training: Bool = false) throws -> Tensor {
        guard q.rank == 3, k.rank == 3, k.shape == v.shape, q.shape[0] == k.shape[0], q.shape[2] == k.shape[2],
              q.shape[2] % heads == 0, !causal || q.shape[1] == k.shape[1] else {
            throw EngineError.shapeMismatch("attention q \(q.shape) k \(k.shape) v \(v.shape), \(heads) heads\(causal ? ", causal" : "")")
        }
        inputs = [q, k, v]
        return try run(b: q.shape[0], tq: q.shape[1], tk: k.shape[1], c: q.shape[2], stride: q.shape[2],
                       q: q.data, k: k.data, v: v.data, mask: mask, training: training)
    }

    /// Fused `QKV` `[B, T, 3C]` (Q, K, V concatenated on the last axis) -> `[B, T, C]`.
    public func forward(qkv: Tensor, mask: Tensor? = nil, training: Bool = false) throws -> Tensor {
        guard qkv.rank == 3, qkv.shape[2] % (3 * heads) == 0 else {
            throw EngineError.shapeMismatch("attention qkv \(qkv.shape), \(heads) heads")
        }
        inputs = [qkv]
        let c = qkv.shape[2] / 3
        return try run(b: qkv.shape[0], tq: qkv.shape[1], tk: qkv.shape[1], c: c, stride: 3 * c,
                       q: qkv.data, k: qkv.data + c, v: qkv.data + 2 * c, mask: mask, training: training)
    }

    /// Inference on a fused `QKV` `[B, T, 3C]` -> context `[B, T, C]` in `into` (not sharing
    /// memory with `qkv`): the values of ``forward(qkv:mask:training:)`` without dropout, with
    /// nothing kept for a backward (each head's probabilities in a per-thread `[T, T]` buffer
    /// rather than a `[B, heads, T, T]` tensor).
    public func infer(qkv: Tensor, mask: Tensor? = nil, into: Tensor) throws -> Tensor {
        guard qkv.rank == 3, qkv.shape[2] % (3 * heads) == 0, into.count == qkv.count / 3, into.storage !== qkv.storage else {
            throw EngineError.shapeMismatch("attention qkv \(qkv.shape), \(heads) heads, into \(into.shape)")
        }
        let c = qkv.shape[2] / 3
        return try run(b: qkv.shape[0], tq: qkv.shape[1], tk: qkv.shape[1], c: c, stride: 3 * c,
                       q: qkv.data, k: qkv.data + c, v: qkv.data + 2 * c, mask: mask, training: false, into: into)
    }

    /// Inference on separate `Q` `[B, Tq, C]`, `K`, `V` `[B, Tk, C]` -> context `[B, Tq, C]` in
    /// `into` (not sharing memory with them), as ``infer(qkv:mask:into:)``.
    public func infer(q: Tensor, k: Tensor, v: Tensor, mask: Tensor? = nil, into: Tensor) throws -> Tensor {
        guard q.rank == 3, k.rank == 3, k.shape == v.shape, q.shape[0] == k.shape[0], q.shape[2] == k.shape[2],
              q.shape[2] % heads == 0, !causal || q.shape[1] == k.shape[1], into.count == q.count,
              ![q, k, v].contains(where: { $0.storage === into.storage }) else {
            throw EngineError.shapeMismatch("attention q \(q.shape) k \(k.shape) v \(v.shape), \(heads) heads\(causal ? ", causal" : ""), into \(into.shape)")
        }
        return try run(b: q.shape[0], tq: q.shape[1], tk: k.shape[1], c: q.shape[2], stride: q.shape[2],
                       q: q.data, k: k.data, v: v.data, mask: mask, training: false, into: into)
    }

    /// The forward; with `into` (inference) the context goes there and nothing is recorded for
    /// the backward.
    private func run(b: Int, tq: Int, tk: Int, c: Int, stride: Int, q: UnsafeMutablePointer<Float>, k: UnsafeMutablePointer<Float>,
                     v: UnsafeMutablePointer<Float>, mask: Tensor?, training: Bool, into: Tensor? = nil) throws -> Tensor {
        let op = Profiler.beginOperation("attention forward (scores, softmax, P V)")
        defer { Profiler.endOperation(op) }
        if let mask, mask.count != b * tk {
            throw EngineError.shapeMismatch("attention mask \(mask.shape) for [B, Tk] = [\(b), \(tk)]")
        }
        let recording = into == nil
        if recording {
            self.b = b; self.tq = tq; self.tk = tk; self.c = c; self.stride = stride
            self.q = q; self.k = k; self.v = v
        }
        hasMask = mask != nil
        let h = heads, d = c / h, bh = b * h, tt = tq * tk
        let scale = 1 / Float(d).squareRoot()
        let P: Tensor? = recording ? Tensor.ensure(probs, [b, h, tq, tk]) : nil
        if recording { probs = P }
        let y: Tensor
        if let into { y = into } else { y = Tensor.ensure(out, [b, tq, c]); out = y }
        let pq = SharedPointer(q), pk = SharedPointer(k), pv = SharedPointer(v), pP = P.map { SharedPointer($0.data) }
        let py = SharedPointer(y.data)
        let causal = causal
        if maskCopy.count < b * tk || !hasMask { maskCopy = [Float](repeating: 1, count: b * tk) }
        if let mask { for i in 0..<(b * tk) { maskCopy[i] = mask.data[i] != 0 ? 1 : 0 } }
        let active = training && dropout > 0
        if recording { dropActive = active }
        var key: UInt64 = 0
        if active, let rng {
            if dropMask.count < bh * tt { dropMask = [UInt8](repeating: 0, count: bh * tt) }
            key = rng.rng.next()   // one draw per call; element i of P uses hash(key, i)
        }
        let keep = 1 - dropout, dropScale = 1 / (1 - dropout)
        let clock = Profiler.ItemClock(items: bh, kinds: [
            ("attention S = Q K^T, \(bh) x " + BLAS.shapeName(.none, .transposed, m: tq, n: tk, k: d), 2.0 * Double(bh * tt * d)),
            ("attention Y = P V, \(bh) x " + BLAS.shapeName(.none, .none, m: tq, n: d, k: tk), 2.0 * Double(bh * tt * d)),
        ])
        // Each (batch, head) on one thread, start to end, while its [Tq, Tk] scores are in cache:
        // S = scale Q K^T (into P); masked softmax per row (masked keys get exactly 0), with the
        // dropout keep flags; out = P' V (P' = P, or P times the dropout mask, built row by row in
        // a per-thread buffer), heads merged into [B, Tq, C].
        maskCopy.withUnsafeBufferPointer { km in
            dropMask.withUnsafeMutableBufferPointer { dmb in
                let pkm = SharedPointer(UnsafeMutablePointer(mutating: km.baseAddress!))
                let pdm = dmb.baseAddress.map(UncheckedBox.init)
                Engine.parallelFor(bh) { r in
                    let dropped: UnsafeMutablePointer<Float>? = active ? .allocate(capacity: tt) : nil
                    let scratch: UnsafeMutablePointer<Float>? = pP == nil ? .allocate(capacity: tt) : nil
                    defer { dropped?.deallocate(); scratch?.deallocate() }
                    for i in r {
                        let bi = i / h, hi = i % h
                        let scores = pP.map { $0.value + i * tt } ?? scratch!
                        clock.time(i, 0) {
                            BLAS.gemm(.none, .transposed, m: tq, n: tk, k: d, alpha: scale, a: pq.value + bi * tq * stride + hi * d,
                                      lda: stride, b: pk.value + bi * tk * stride + hi * d, ldb: stride, c: scores, ldc: tk)
                        }
                        let kmRow = pkm.value + bi * tk
                        for row in 0..<tq {
                            let s = scores + row * tk
                            let limit = causal ? row + 1 : tk
                            let mx = FastMath.maskedMax(s, kmRow, limit)
                            if mx == -Float.infinity {
                                s.update(repeating: 0, count: tk)
                            } else {
                                FastMath.map2(limit, s, kmRow, s) { v, k in FastMath.exp(v - mx) * k }
                                if limit < tk { (s + limit).update(repeating: 0, count: tk - limit) }
                                FastMath.scale(s, tk, 1 / FastMath.sum(s, tk))
                            }
                            if active, let pdm, let dropped {
                                let base = i * tt + row * tk
                                FastMath.keepFlags(key, start: base, count: tk, keep: keep, into: pdm.value + base)
                                Self.drop(s, flags: pdm.value + base, scale: dropScale, into: dropped + row * tk, count: tk)
                            }
                        }
                        clock.time(i, 1) {
                            BLAS.gemm(.none, .none, m: tq, n: d, k: tk, a: dropped ?? scores, lda: tk,
                                      b: pv.value + bi * tk * stride + hi * d, ldb: stride,
                                      c: py.value + bi * tq * c + hi * d, ldc: c)
                        }
                    }
                }
            }
        }
        clock.record(threads: min(Engine.threads, bh))
        return y
    }

    /// `out[j] = p[j] * scale` where `flags[j]` is 1, else 0, for `j < count`: probabilities
    /// after dropout.
    @inline(__always)
    private static func drop(_ p: UnsafePointer<Float>, flags: UnsafePointer<UInt8>, scale: Float,
                             into out: UnsafeMutablePointer<Float>, count: Int) {
        for j in 0..<count {
            let kk: Float = flags[j] != 0 ? scale : 0
            out[j] = p[j] * kk
        }
    }

    /// Backward for the separate-input forward: `dy` `[B, Tq, C]` -> `(dQ [B, Tq, C], dK, dV [B, Tk, C])`,
    /// in `into` when given (three distinct tensors of those element counts, none sharing memory
    /// with `dy`), else in tensors the layer owns.
    public func backward(_ dy: Tensor, into: (dq: Tensor, dk: Tensor, dv: Tensor)? = nil) throws
        -> (dq: Tensor, dk: Tensor, dv: Tensor) {
        guard inputs.count == 3 else { throw EngineError.invalidArgument("attention backward: last forward was not q/k/v") }
        let qShape = [b, tq, c], kShape = [b, tk, c]
        guard let gq = Tensor.output(into: into?.dq, shape: qShape, owned: &dq, notSharingWith: [dy]),
              let gk = Tensor.output(into: into?.dk, shape: kShape, owned: &dk, notSharingWith: [dy, gq]),
              let gv = Tensor.output(into: into?.dv, shape: kShape, owned: &dv, notSharingWith: [dy, gq, gk]) else {
            throw EngineError.shapeMismatch("attention backward: outputs \([into?.dq, into?.dk, into?.dv].map { $0?.shape ?? [] }) for \(qShape), \(kShape), \(kShape), distinct from dy and each other")
        }
        try runBackward(dy, dq: gq.data, dk: gk.data, dv: gv.data)
        return (gq, gk, gv)
    }

    /// Backward for the fused forward: `dy` `[B, T, C]` -> `dQKV` `[B, T, 3C]`, in `into` when
    /// given (`B*T*3C` elements, not sharing memory with `dy`), else in a tensor the layer owns.
    public func backwardFused(_ dy: Tensor, into: Tensor? = nil) throws -> Tensor {
        guard inputs.count == 1 else { throw EngineError.invalidArgument("attention backwardFused: last forward was not fused") }
        guard let g = Tensor.output(into: into, shape: [b, tq, 3 * c], owned: &dqkv, notSharingWith: [dy]) else {
            throw EngineError.shapeMismatch("attention backwardFused: output \(into?.shape ?? []) for [\(b), \(tq), \(3 * c)]")
        }
        try runBackward(dy, dq: g.data, dk: g.data + c, dv: g.data + 2 * c)
        return g
    }

    private func runBackward(_ dy: Tensor, dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
                             dv: UnsafeMutablePointer<Float>) throws {
        let op = Profiler.beginOperation("attention backward")
        defer { Profiler.endOperation(op) }
        guard dy.count == b * tq * c, let q, let k, let v, let P = probs else {
            throw EngineError.shapeMismatch("attention backward: dy \(dy.shape)")
        }
        let h = heads, d = c / h, bh = b * h, tq = tq, tk = tk, tt = tq * tk, c = c, stride = stride
        let scale = 1 / Float(d).squareRoot()
        let pq = SharedPointer(q), pk = SharedPointer(k), pv = SharedPointer(v), pP = SharedPointer(P.data)
        let pdy = SharedPointer(dy.data), pdq = SharedPointer(dq), pdk = SharedPointer(dk), pdv = SharedPointer(dv)
        let active = dropActive, dropScale = 1 / (1 - dropout)
        let clock = Profiler.ItemClock(items: bh, kinds: [
            ("attention dP = dY V^T, dV = P^T dY, \(bh) x \(tq)x\(tk)x\(d) and \(tk)x\(d)x\(tq)", 4.0 * Double(bh * tt * d)),
            ("attention dQ = dS K, dK = dS^T Q, \(bh) x \(tq)x\(d)x\(tk) and \(tk)x\(d)x\(tq)", 4.0 * Double(bh * tt * d)),
        ])
        // Each (batch, head) on one thread, start to end, its [Tq, Tk] gradient in a per-thread
        // buffer that stays in cache: dP' = dY V^T and dV = P'^T dY; through dropout and softmax,
        // dS = P * (dP - rowsum(dP * P)); dQ = scale dS K and dK = scale dS^T Q.
        dropMask.withUnsafeBufferPointer { dmb in
            let pdm = dmb.baseAddress.map(UncheckedBox.init)
            Engine.parallelFor(bh) { r in
                let grad = UnsafeMutablePointer<Float>.allocate(capacity: tt)
                let dropped: UnsafeMutablePointer<Float>? = active ? .allocate(capacity: tt) : nil
                defer { grad.deallocate(); dropped?.deallocate() }
                for i in r {
                    let bi = i / h, hi = i % h
                    let yoff = bi * tq * c + hi * d, qoff = bi * tq * stride + hi * d, koff = bi * tk * stride + hi * d
                    let probs = pP.value + i * tt
                    if active, let pdm, let dropped {
                        Self.drop(probs, flags: pdm.value + i * tt, scale: dropScale, into: dropped, count: tt)
                    }
                    clock.time(i, 0) {
                        BLAS.gemm(.none, .transposed, m: tq, n: tk, k: d, a: pdy.value + yoff, lda: c,
                                  b: pv.value + koff, ldb: stride, c: grad, ldc: tk)
                        BLAS.gemm(.transposed, .none, m: tk, n: d, k: tq, a: dropped ?? probs, lda: tk,
                                  b: pdy.value + yoff, ldb: c, c: pdv.value + koff, ldc: stride)
                    }
                    for row in 0..<tq {
                        let g = grad + row * tk, p = probs + row * tk
                        if active, let pdm {
                            let m = pdm.value + i * tt + row * tk
                            for j in 0..<tk {
                                let kk: Float = m[j] != 0 ? dropScale : 0
                                g[j] = g[j] * kk
                            }
                        }
                        let dot = FastMath.dot(g, p, tk)
                        FastMath.map2(tk, g, p, g) { gv, pv in pv * (gv - dot) }
                    }
                    clock.time(i, 1) {
                        BLAS.gemm(.none, .none, m: tq, n: d, k: tk, alpha: scale, a: grad, lda: tk,
                                  b: pk.value + koff, ldb: stride, c: pdq.value + qoff, ldc: stride)
                        BLAS.gemm(.transposed, .none, m: tk, n: d, k: tq, alpha: scale, a: grad, lda: tk,
                                  b: pq.value + qoff, ldb: stride, c: pdk.value + koff, ldc: stride)
                    }
                }
            }
        }
        clock.record(threads: min(Engine.threads, bh))
    }

    /// The attention probabilities of the last forward, `[B, heads, Tq, Tk]` (before dropout).
    public var probabilities: Tensor? { probs }
}
