import Foundation
import GraftEngine

/// What a student is distilled towards in one batch: the teacher's logits for the same rows, the
/// temperature and the weight of the soft term (Hinton et al., 2015).
public struct SoftTargets: Sendable {
    /// The teacher's logits `[N, L]`, row-major, for the rows the student's head sees.
    public var teacherLogits: [Float]
    /// The temperature `T` (> 0) both distributions are softened with.
    public var temperature: Float
    /// The weight `α` in `[0, 1]` of the soft term; `1 - α` weighs the gold cross-entropy.
    public var alpha: Float
    /// Rows that take part in the soft term `[N]` (token classification: the labelled first
    /// subwords); nil: every row.
    public var rows: [Bool]?

    public init(teacherLogits: [Float], temperature: Float, alpha: Float, rows: [Bool]? = nil) {
        self.teacherLogits = teacherLogits; self.temperature = temperature; self.alpha = alpha; self.rows = rows
    }
}

/// Knowledge distillation's loss on logits `z` `[N, L]` against teacher logits `t` `[N, L]` and
/// gold targets `y` `[N]` (`ignoreIndex` rows have none):
///
/// `loss = α · T² · mean_{r ∈ S} KL(softmax(t_r / T) ‖ softmax(z_r / T)) + (1 − α) · mean_{r ∈ G} CE(z_r, y_r)`
///
/// over the soft rows `S` (``SoftTargets/rows``, default all) and the gold rows `G` (a term whose
/// rows are empty is 0). `T²` keeps the soft gradients' scale independent of `T`:
/// `∂/∂z_r = α · T · (softmax(z_r/T) − softmax(t_r/T)) / |S| + (1 − α) · (softmax(z_r) − onehot(y_r)) / |G|`.
/// Computed in Double per row; keeps only the gradient `[N, L]`.
public final class DistillationLoss {
    public let ignoreIndex: Int32
    private var gradient: Tensor?
    private var gradientTaken = true
    /// Rows with a gold target in the last forward, and how many of them the argmax got right.
    public private(set) var countedRows = 0
    public private(set) var correctRows = 0
    /// The two terms of the last forward (before weighting): the mean `T² · KL` and the mean gold cross-entropy.
    public private(set) var softLoss = 0.0, goldLoss = 0.0

    public init(ignoreIndex: Int32 = -100) { self.ignoreIndex = ignoreIndex }

    /// The loss of `logits` `[N, L]`; the gradient is kept for ``backward(scale:)``.
    public func forward(_ logits: Tensor, targets: [Int32], soft: SoftTargets) throws -> Float {
        guard let l = logits.shape.last, l > 0, logits.count == targets.count * l else {
            throw ModelError.invalidArgument("distillation logits \(logits.shape) for \(targets.count) targets")
        }
        let n = targets.count
        guard soft.teacherLogits.count == n * l else {
            throw ModelError.invalidBatch("\(soft.teacherLogits.count) teacher logits for \(n) rows of \(l) classes")
        }
        guard soft.temperature > 0, soft.temperature.isFinite else { throw ModelError.invalidArgument("temperature \(soft.temperature) must be > 0") }
        guard soft.alpha >= 0, soft.alpha <= 1 else { throw ModelError.invalidArgument("alpha \(soft.alpha) must lie in [0, 1]") }
        if let rows = soft.rows, rows.count != n { throw ModelError.invalidBatch("\(rows.count) soft-row flags for \(n) rows") }
        for t in targets where t != ignoreIndex && (t < 0 || Int(t) >= l) {
            throw ModelError.invalidBatch("label \(t) outside 0..<\(l) (and not \(ignoreIndex))")
        }
        let temperature = Double(soft.temperature), alpha = Double(soft.alpha)
        let softCount = soft.rows?.filter { $0 }.count ?? n
        let goldCount = targets.filter { $0 != ignoreIndex }.count
        let g = Tensor.ensure(gradient, [n, l]); gradient = g
        gradientTaken = false
        countedRows = goldCount; correctRows = 0
        var softSum = 0.0, goldSum = 0.0
        /// softmax(x / temperature) and its log, in Double.
        func logSoftmax(_ x: UnsafePointer<Float>, _ temperature: Double) -> [Double] {
            var m = -Double.infinity
            for j in 0..<l { m = max(m, Double(x[j]) / temperature) }
            var s = 0.0
            for j in 0..<l { s += Foundation.exp(Double(x[j]) / temperature - m) }
            let lse = m + Foundation.log(s)
            return (0..<l).map { Double(x[$0]) / temperature - lse }
        }
        soft.teacherLogits.withUnsafeBufferPointer { teacher in
            for r in 0..<n {
                let z = UnsafePointer(logits.data + r * l), out = g.data + r * l
                var d = [Double](repeating: 0, count: l)
                if softCount > 0 && soft.rows?[r] ?? true {
                    let logQ = logSoftmax(z, temperature), logP = logSoftmax(teacher.baseAddress! + r * l, temperature)
                    var kl = 0.0
                    for j in 0..<l {
                        let p = Foundation.exp(logP[j])
                        kl += p * (logP[j] - logQ[j])
                        d[j] += alpha * temperature * (Foundation.exp(logQ[j]) - p) / Double(softCount)
                    }
                    softSum += temperature * temperature * kl
                }
                let y = targets[r]
                if y != ignoreIndex {
                    let logQ = logSoftmax(z, 1)
                    goldSum -= logQ[Int(y)]
                    for j in 0..<l { d[j] += (1 - alpha) * (Foundation.exp(logQ[j]) - (j == Int(y) ? 1 : 0)) / Double(goldCount) }
                    if logQ.indices.max(by: { logQ[$0] < logQ[$1] || (logQ[$0] == logQ[$1] && $0 > $1) }) == Int(y) { correctRows += 1 }
                }
                for j in 0..<l { out[j] = Float(d[j]) }
            }
        }
        softLoss = softCount > 0 ? softSum / Double(softCount) : 0
        goldLoss = goldCount > 0 ? goldSum / Double(goldCount) : 0
        return Float(alpha * softLoss + (1 - alpha) * goldLoss)
    }

    /// `scale * d(loss)/d(logits)` `[N, L]` of the last forward (once per forward; owned by the loss).
    public func backward(scale: Float) throws -> Tensor {
        guard let g = gradient, !gradientTaken else {
            throw ModelError.invalidArgument("distillation backward needs a forward first (once per forward)")
        }
        gradientTaken = true
        if scale != 1 { for i in 0..<g.count { g.data[i] *= scale } }
        return g
    }
}
