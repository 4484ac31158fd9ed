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
    private var probs: Tensor?
    private var probsAreLogits = false   // probs is the caller's logits tensor (overwriteLogits)
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
    /// With `overwriteLogits` the probabilities (and later the gradient) are written over the
    /// logits instead of a second `[N, V]` buffer: the caller must not need the logits afterwards.
    /// Ignored rows are skipped (their gradient is 0): a masked-LM head run over every position
    /// computes probabilities for its masked rows only.
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
        let P: Tensor
        if overwriteLogits {
            P = try logits.reshaped([n, vocab])
        } else {
            P = Tensor.ensure(probs?.storage === logits.storage ? nil : probs, [n, vocab])
        }
        probs = P
        probsAreLogits = overwriteLogits
        self.targets = targets
        gradientTaken = false
        counted = targets.reduce(0) { $0 + ($1 == ignoreIndex ? 0 : 1) }
        let chunks = max(1, min(Engine.threads, n * vocab / Kernels.minChunk))
        let per = (n + chunks - 1) / chunks
        var partial = [Double](repeating: 0, count: chunks)
        var hits = [Int](repeating: 0, count: chunks)
        let px = SharedPointer(logits.data), pp = SharedPointer(P.data)
        let eps = Double(labelSmoothing), ignore = ignoreIndex, overwrite = P.data == logits.data
        let tb = UncheckedBox(targets)
        partial.withUnsafeMutableBufferPointer { pb in hits.withUnsafeMutableBufferPointer { hb in
            let part = UncheckedBox(pb.baseAddress!), hit = UncheckedBox(hb.baseAddress!)
            let body: (Int) -> Void = { ch in
                var acc = 0.0, correct = 0
                for r in (ch * per)..<min(n, (ch + 1) * per) {
                    let tg = tb.value[r]
                    if tg == ignore { continue }   // its gradient is 0 (the backward writes it): no probabilities needed
                    let x = px.value + r * vocab, p = pp.value + r * vocab   // p may be x (overwriteLogits)
                    let mx = FastMath.max(x, vocab)
                    // What the loss reads from the logits, read before p is written.
                    let xTarget = x[Int(tg)]
                    let xSum = eps > 0 ? FastMath.sum(x, vocab) : 0
                    if FastMath.isFirstArgmax(Int(tg), x, vocab, maximum: mx) { correct += 1 }
                    // In place, one pointer for source and destination, so the loop vectorises.
                    if overwrite { FastMath.map(vocab, p, p) { FastMath.exp($0 - mx) } } else { FastMath.map(vocab, x, p) { FastMath.exp($0 - mx) } }
                    let sum = FastMath.sum(p, vocab)
                    FastMath.scale(p, vocab, 1 / sum)
                    let logZ = Double(mx) + Foundation.log(Double(sum))
                    var loss = (1 - eps) * (logZ - Double(xTarget))
                    if eps > 0 {
                        loss += eps * (logZ - Double(xSum) / Double(vocab))
                    }
                    acc += loss
                }
                part.value[ch] = acc
                hit.value[ch] = correct
            }
            if chunks == 1 { body(0) } else {
                Engine.concurrent(chunks, body)
            }
        } }
        correct = hits.reduce(0, +)
        let total = partial.reduce(0, +)
        return counted == 0 ? 0 : Float(total / Double(counted))
    }

    /// Gradient of (mean loss * `scale`) w.r.t. the logits of the last forward, `[N, V]`:
    /// `(p - q) * scale / counted` on counted rows, 0 on ignored rows.
    /// The gradient is written over the stored probabilities (no second `[N, V]` buffer, which
    /// matters for 30k-word vocabularies), so it can be taken once per forward.
    public func backward(scale: Float = 1) throws -> Tensor {
        let op = Profiler.beginOperation("cross-entropy backward")
        defer { Profiler.endOperation(op) }
        guard let P = probs, !gradientTaken else {
            throw EngineError.invalidArgument("cross-entropy backward needs a forward first (once per forward)")
        }
        gradientTaken = true
        // The caller's logits are not kept past their last use: the caller may free or regrow them.
        if probsAreLogits { probs = nil }
        let n = P.shape[0], vocab = P.shape[1]
        let d = P
        let f = counted == 0 ? 0 : scale / Float(counted)
        let eps = labelSmoothing, ignore = ignoreIndex
        let pp = SharedPointer(P.data), pd = SharedPointer(d.data), tb = UncheckedBox(targets)
        Engine.parallelFor(n, minChunk: max(1, Kernels.minChunk / vocab)) { r in
            for row in r {
                let p = pp.value + row * vocab, g = pd.value + row * vocab
                let tg = tb.value[row]
                if tg == ignore { g.update(repeating: 0, count: vocab); continue }
                let u = eps / Float(vocab)
                for j in 0..<vocab { g[j] = (p[j] - u) * f }
                g[Int(tg)] -= (1 - eps) * f
            }
        }
        return d
    }
}
