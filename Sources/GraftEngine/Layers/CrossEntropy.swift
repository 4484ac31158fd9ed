import Foundation
import GraftSupport

/// Softmax cross-entropy over logits `[N, V]` with integer targets `[N]`.
///
/// Targets equal to `ignoreIndex` (default -100, as in PyTorch) contribute nothing; the loss
/// is the mean over the remaining rows. With label smoothing `eps` the target distribution
/// is `(1 - eps) * onehot + eps / V` (PyTorch's definition).
public final class CrossEntropyLoss {
    public let ignoreIndex: Int32
    public let labelSmoothing: Float
    private var logits: Tensor?       // [N, V]: the caller's logits (overwriteLogits) or a copy, until the backward
    private var logitsAreCallers = false
    private var rowMax: [Float] = []    // per row: its largest logit
    private var rowScale: [Float] = []  // per row: 1 / sum_j exp(x_j - max)
    private var targets: [Int32] = []
    private var counted = 0
    private var correct = 0
    private var gradientTaken = false

    public init(ignoreIndex: Int32 = -100, labelSmoothing: Float = 0) throws {
        guard labelSmoothing >= 0 && labelSmoothing < 1 else {
            throw EngineError.invalidArgument("label smoothing \(labelSmoothing) not in [0, 1)")
        }
        self.ignoreIndex = ignoreIndex
        self.labelSmoothing = labelSmoothing
    }

    /// Number of rows that counted in the last forward.
    public var countedRows: Int { counted }

    /// Counted rows of the last forward whose first largest logit is the target (the argmax
    /// hits), found in the pass that computes the loss.
    public var correctRows: Int { correct }

    /// `logits` `[..., V]`, `targets` one per row. Returns the mean loss (0 if every row is ignored).
    ///
    /// The forward only reads the logits: per row it keeps the largest logit and the softmax
    /// normaliser, and ``backward(scale:)`` computes the probabilities again from the logits in the
    /// pass that writes the gradient (the same bits as probabilities stored here would give:
    /// `exp` and the sum are the same operations in the same order). That saves writing `[N, V]`
    /// probabilities and a pass over them. With `overwriteLogits` the gradient is written over the
    /// caller's logits, which must stay unchanged until then (and are not needed after); without
    /// it the logits are copied into a buffer of the loss's own.
    public func forward(_ logits: Tensor, targets: [Int32], overwriteLogits: Bool = false) throws -> Float {
        let op = Profiler.beginOperation("cross-entropy forward")
        defer { Profiler.endOperation(op) }
        guard let vocab = logits.shape.last, vocab > 0, logits.count == targets.count * vocab else {
            throw EngineError.shapeMismatch("cross-entropy logits \(logits.shape) for \(targets.count) targets")
        }
        for tg in targets where tg != ignoreIndex && (tg < 0 || Int(tg) >= vocab) {
            throw EngineError.invalidArgument("cross-entropy target \(tg) outside 0..<\(vocab)")
        }
        let n = targets.count
        let X: Tensor
        if overwriteLogits {
            X = try logits.reshaped([n, vocab])
        } else {
            X = Tensor.ensure(logitsAreCallers ? nil : self.logits, [n, vocab])
            X.data.update(from: logits.data, count: n * vocab)
        }
        self.logits = X
        logitsAreCallers = overwriteLogits
        self.targets = targets
        gradientTaken = false
        counted = targets.reduce(0) { $0 + ($1 == ignoreIndex ? 0 : 1) }
        if rowMax.count < n { rowMax = [Float](repeating: 0, count: n); rowScale = rowMax }
        let chunks = max(1, min(Engine.threads, n * vocab / Kernels.minChunk))
        let per = (n + chunks - 1) / chunks
        var partial = [Double](repeating: 0, count: chunks)
        var hits = [Int](repeating: 0, count: chunks)
        let px = SharedPointer(X.data)
        let eps = Double(labelSmoothing), ignore = ignoreIndex
        let tb = UncheckedBox(targets)
        partial.withUnsafeMutableBufferPointer { pb in hits.withUnsafeMutableBufferPointer { hb in
        rowMax.withUnsafeMutableBufferPointer { mb in rowScale.withUnsafeMutableBufferPointer { sb in
            let part = UncheckedBox(pb.baseAddress!), hit = UncheckedBox(hb.baseAddress!)
            let pm = UncheckedBox(mb.baseAddress!), ps = UncheckedBox(sb.baseAddress!)
            let body: (Int) -> Void = { ch in
                var acc = 0.0, correct = 0
                for r in (ch * per)..<min(n, (ch + 1) * per) {
                    let tg = tb.value[r]
                    if tg == ignore { continue }   // its gradient is 0: nothing to keep
                    let x = px.value + r * vocab
                    let mx = FastMath.max(x, vocab)
                    let sum = FastMath.sumExp(x, vocab, minus: mx)
                    pm.value[r] = mx
                    ps.value[r] = 1 / sum
                    if FastMath.isFirstArgmax(Int(tg), x, vocab, maximum: mx) { correct += 1 }
                    let logZ = Double(mx) + Foundation.log(Double(sum))
                    var loss = (1 - eps) * (logZ - Double(x[Int(tg)]))
                    if eps > 0 {
                        loss += eps * (logZ - Double(FastMath.sum(x, vocab)) / Double(vocab))
                    }
                    acc += loss
                }
                part.value[ch] = acc
                hit.value[ch] = correct
            }
            if chunks == 1 { body(0) } else {
                Engine.concurrent(chunks, body)
            }
        } } } }
        correct = hits.reduce(0, +)
        let total = partial.reduce(0, +)
        return counted == 0 ? 0 : Float(total / Double(counted))
    }

    /// Gradient of (mean loss * `scale`) w.r.t. the logits of the last forward, `[N, V]`:
    /// `(p - q) * scale / counted` on counted rows, 0 on ignored rows, with the probabilities `p`
    /// computed again from the logits in the same pass. It is written over the logits (the
    /// caller's with `overwriteLogits`, else the loss's copy): no second `[N, V]` buffer, which
    /// matters for 30k-word vocabularies, so it can be taken once per forward.
    public func backward(scale: Float = 1) throws -> Tensor {
        let op = Profiler.beginOperation("cross-entropy backward")
        defer { Profiler.endOperation(op) }
        guard let X = logits, !gradientTaken else {
            throw EngineError.invalidArgument("cross-entropy backward needs a forward first (once per forward)")
        }
        gradientTaken = true
        // The caller's logits are not kept past their last use: the caller may free or regrow them.
        if logitsAreCallers { logits = nil }
        let n = X.shape[0], vocab = X.shape[1]
        let d = X
        let f = counted == 0 ? 0 : scale / Float(counted)
        let eps = labelSmoothing, ignore = ignoreIndex
        let pd = SharedPointer(d.data), tb = UncheckedBox(targets)
        rowMax.withUnsafeBufferPointer { mb in rowScale.withUnsafeBufferPointer { sb in
            let pm = UncheckedBox(mb.baseAddress!), ps = UncheckedBox(sb.baseAddress!)
            Engine.parallelFor(n, minChunk: max(1, Kernels.minChunk / vocab)) { r in
                for row in r {
                    let g = pd.value + row * vocab
                    let tg = tb.value[row]
                    if tg == ignore { g.update(repeating: 0, count: vocab); continue }
                    let u = eps / Float(vocab), mx = pm.value[row], inv = ps.value[row]
                    // p = exp(x - max) * (1 / sum), rounded as the forward's normalised probabilities would be.
                    FastMath.map(vocab, g, g) { x in (FastMath.exp(x - mx) * inv - u) * f }
                    g[Int(tg)] -= (1 - eps) * f
                }
            }
        } }
        return d
    }
}
