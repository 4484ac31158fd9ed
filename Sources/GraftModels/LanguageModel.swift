import GraftSupport
import GraftEngine

/// One batch for a language-model objective. All arrays are row-major `[B * T]`.
public struct LMBatch: Sendable {
    /// Token ids `[B * T]`.
    public var inputIds: [Int32]
    /// Segment ids `[B * T]` (BERT); nil means all 0.
    public var tokenTypeIds: [Int32]?
    /// 1 for a real token, 0 for padding `[B * T]`; nil means no padding.
    public var attentionMask: [Int32]?
    /// Targets `[B * T]`; -100 is ignored. BERT: the original id at masked positions.
    /// GPT: the NEXT token (the caller shifts), -100 at the end and on padding.
    public var labels: [Int32]
    public var batch: Int
    public var seqLen: Int

    public init(inputIds: [Int32], tokenTypeIds: [Int32]? = nil, attentionMask: [Int32]? = nil, labels: [Int32],
                batch: Int, seqLen: Int) {
        self.inputIds = inputIds; self.tokenTypeIds = tokenTypeIds; self.attentionMask = attentionMask
        self.labels = labels; self.batch = batch; self.seqLen = seqLen
    }
}

/// The result of ``LanguageModel/loss(_:training:)``.
public struct LMLoss: Sendable {
    /// Mean cross-entropy over the counted positions (0 when none counted).
    public var loss: Float
    /// Counted positions whose argmax prediction equals the label.
    public var correct: Int
    /// Positions with a label other than -100.
    public var counted: Int

    public init(loss: Float, correct: Int, counted: Int) {
        self.loss = loss; self.correct = correct; self.counted = counted
    }
}

/// A model trained with a token-level language-model objective (masked or causal).
///
/// ```swift
/// model.store.zeroGrads()
/// let l = try model.loss(batch, training: true)   // forward, keeps activations
/// try model.backward(scale: 1)                     // accumulates into model.store.grads
/// try optimizer.step(model.store, lr: lr)
/// ```
public protocol LanguageModel: PretrainedModel {
    /// Forward + loss; keeps activations for backward. Gradients are NOT zeroed here.
    func loss(_ batch: LMBatch, training: Bool) throws -> LMLoss
    /// Backward of the last `loss` call; accumulates (+=) `scale` * d(loss) into store.grads.
    /// Once per `loss`; any other forward pass in between (logits, embeddings) makes it an error.
    func backward(scale: Float) throws
}

/// Checks a batch against a configuration (sizes, lengths, value ranges).
func validate(_ b: LMBatch, config: ModelConfig) throws {
    let n = b.batch * b.seqLen
    guard b.batch > 0, b.seqLen > 0 else { throw ModelError.invalidBatch("batch \(b.batch) x seqLen \(b.seqLen)") }
    guard b.seqLen <= config.maxPositions else {
        throw ModelError.invalidBatch("seqLen \(b.seqLen) exceeds the model's \(config.maxPositions) positions")
    }
    guard b.inputIds.count == n else { throw ModelError.invalidBatch("inputIds has \(b.inputIds.count) values, batch x seqLen = \(n)") }
    guard b.labels.count == n else { throw ModelError.invalidBatch("labels has \(b.labels.count) values, batch x seqLen = \(n)") }
    if let t = b.tokenTypeIds, t.count != n { throw ModelError.invalidBatch("tokenTypeIds has \(t.count) values, batch x seqLen = \(n)") }
    if let m = b.attentionMask, m.count != n { throw ModelError.invalidBatch("attentionMask has \(m.count) values, batch x seqLen = \(n)") }
    for id in b.inputIds where id < 0 || Int(id) >= config.vocabSize {
        throw ModelError.invalidBatch("input id \(id) outside 0..<\(config.vocabSize)")
    }
    if let types = b.tokenTypeIds {
        for t in types where t < 0 || Int(t) >= max(config.typeVocabSize, 1) {
            throw ModelError.invalidBatch("token type id \(t) outside 0..<\(max(config.typeVocabSize, 1))")
        }
    }
    for l in b.labels where l != -100 && (l < 0 || Int(l) >= config.vocabSize) {
        throw ModelError.invalidBatch("label \(l) outside 0..<\(config.vocabSize) (and not -100)")
    }
}

/// Where a model stands between `loss` and `backward`.
enum BackwardState {
    /// No loss computed since the last backward (or another forward overwrote the activations).
    case none
    /// The last loss counted no position: backward has nothing to do.
    case nothingCounted
    /// A loss with activations ready for backward.
    case ready

    /// Called at the start of `backward`: returns whether there is a gradient to compute and
    /// moves to `.none` (backward runs once per loss); throws when no loss preceded it.
    mutating func beginBackward() throws -> Bool {
        switch self {
        case .ready: self = .none; return true
        case .nothingCounted: self = .none; return false   // the loss does not depend on the parameters
        case .none: throw ModelError.invalidArgument("backward needs a preceding loss (once per loss, no other forward in between)")
        }
    }
}

/// The key padding mask `[B, T]` (1: attend, 0: padding) of an attention mask `[B * T]`,
/// written into `buffer` (made or regrown); nil when nothing is padded.
func keyPaddingMask(_ attentionMask: [Int32]?, batch: Int, seqLen: Int, buffer: inout Tensor?) -> Tensor? {
    guard let attentionMask, attentionMask.contains(where: { $0 == 0 }) else { return nil }
    let m = Tensor.ensure(buffer, [batch, seqLen])
    buffer = m
    for i in 0..<batch * seqLen { m.data[i] = attentionMask[i] != 0 ? 1 : 0 }
    return m
}

/// Row gathering and scattering for heads that run on a subset of positions.
enum Rows {
    /// Copies rows `rows` of `x` `[N, C]` into `into` `[rows.count, C]`.
    static func gather(_ x: Tensor, rows: [Int], width c: Int, into buffer: Tensor?) -> Tensor {
        let y = Tensor.ensure(buffer, [rows.count, c])
        for (i, r) in rows.enumerated() { (y.data + i * c).update(from: x.data + r * c, count: c) }
        return y
    }

    /// Zero `[shape]` tensor with `src` row i written at row `rows[i]`.
    static func scatter(_ src: Tensor, rows: [Int], width c: Int, shape: [Int], into buffer: Tensor?) -> Tensor {
        let y = Tensor.ensure(buffer, shape)
        y.zero()
        for (i, r) in rows.enumerated() { (y.data + r * c).update(from: src.data + i * c, count: c) }
        return y
    }
}

/// Cross-entropy of a head that runs on the labelled rows of hidden states, shared by the
/// language-model heads and usable by token-level task heads: picks the rows whose label is
/// not -100 (or every row), gathers them `[N, C]` out of `[B, T, C]`, runs the head to logits
/// `[N, K]`, counts argmax hits and computes the mean cross-entropy (overwriting the logits, so
/// no second `[N, K]` buffer); ``backward(scale:head:)`` scatters the head's input gradient back
/// to `[B, T, C]`.
public final class LabelledRowsLoss {
    private let ce: CrossEntropyLoss
    private var rows: [Int] = []
    private var targets: [Int32] = []
    private var gathered: Tensor?
    private var dHidden: Tensor?
    private var hiddenShape: [Int] = []
    private var allRows = false

    public init() throws { ce = try CrossEntropyLoss(ignoreIndex: -100) }

    /// `hidden` `[B, T, C]` (or `[N, C]`), `labels` one per row (-100: none), `head` maps rows
    /// `[n, C]` to logits `[n, classes]`. With `labelledRowsOnly` the head runs only on labelled
    /// rows; nil then when there is none (the loss does not depend on the parameters).
    public func forward(hidden: Tensor, labels: [Int32], classes: Int, labelledRowsOnly: Bool = true,
                        head: (Tensor) throws -> Tensor) throws -> LMLoss? {
        let c = hidden.shape.last ?? 0, n = hidden.count / max(c, 1)
        guard labels.count == n else { throw ModelError.invalidBatch("\(labels.count) labels for \(n) rows") }
        hiddenShape = hidden.shape
        rows.removeAll(keepingCapacity: true)
        targets.removeAll(keepingCapacity: true)
        let input: Tensor
        if labelledRowsOnly {
            for i in 0..<n where labels[i] != -100 { rows.append(i); targets.append(labels[i]) }
            if rows.isEmpty { return nil }
            allRows = rows.count == n
            if allRows { input = try hidden.reshaped([n, c]) } else {
                input = Rows.gather(hidden, rows: rows, width: c, into: gathered)
                gathered = input
            }
        } else {
            targets = labels
            allRows = true
            input = try hidden.reshaped([n, c])
        }
        let logits = try head(input)
        guard logits.shape.last == classes, logits.count == targets.count * classes else {
            throw ModelError.invalidBatch("the head gave logits \(logits.shape) for \(targets.count) rows of \(classes) classes")
        }
        let l = try ce.forward(logits, targets: targets, overwriteLogits: true)
        return LMLoss(loss: l, correct: ce.correctRows, counted: ce.countedRows)
    }

    /// Backward of the last ``forward(hidden:labels:classes:labelledRowsOnly:head:)``: `head`
    /// maps the logits' gradient `[n, classes]` to the rows' `[n, C]`; returns the hidden
    /// states' gradient in their shape (zero on unlabelled rows; owned by this object).
    public func backward(scale: Float, head: (Tensor) throws -> Tensor) throws -> Tensor {
        let dRows = try head(ce.backward(scale: scale))
        if allRows { return try dRows.reshaped(hiddenShape) }
        let dh = Rows.scatter(dRows, rows: rows, width: hiddenShape.last ?? 0, shape: hiddenShape, into: dHidden)
        dHidden = dh
        return dh
    }
}
