import Foundation
import GraftEngine

/// The token inputs of a task-head batch, all row-major `[B * T]`; rows shorter than `T` are
/// padded (attention mask 0) on the right.
public struct HeadInput: Sendable {
    /// Token ids `[B * T]`.
    public var inputIds: [Int32]
    /// Segment ids `[B * T]` (BERT); nil means all 0.
    public var tokenTypeIds: [Int32]?
    /// 1 for a real token, 0 for padding `[B * T]`; nil means no padding.
    public var attentionMask: [Int32]?
    public var batch: Int
    public var seqLen: Int

    public init(inputIds: [Int32], tokenTypeIds: [Int32]? = nil, attentionMask: [Int32]? = nil, batch: Int, seqLen: Int) {
        self.inputIds = inputIds; self.tokenTypeIds = tokenTypeIds; self.attentionMask = attentionMask
        self.batch = batch; self.seqLen = seqLen
    }

    /// Checks sizes and id ranges against `config`.
    func validate(_ config: ModelConfig) throws {
        let n = batch * seqLen
        guard batch > 0, seqLen > 0 else { throw ModelError.invalidBatch("batch \(batch) x seqLen \(seqLen)") }
        guard seqLen <= config.maxPositions else {
            throw ModelError.invalidBatch("seqLen \(seqLen) exceeds the model's \(config.maxPositions) positions")
        }
        guard inputIds.count == n else { throw ModelError.invalidBatch("inputIds has \(inputIds.count) values, batch x seqLen = \(n)") }
        if let t = tokenTypeIds, t.count != n { throw ModelError.invalidBatch("tokenTypeIds has \(t.count) values, batch x seqLen = \(n)") }
        if let m = attentionMask, m.count != n { throw ModelError.invalidBatch("attentionMask has \(m.count) values, batch x seqLen = \(n)") }
        for id in inputIds where id < 0 || Int(id) >= config.vocabSize {
            throw ModelError.invalidBatch("input id \(id) outside 0..<\(config.vocabSize)")
        }
        if let types = tokenTypeIds {
            for t in types where t < 0 || Int(t) >= max(config.typeVocabSize, 1) {
                throw ModelError.invalidBatch("token type id \(t) outside 0..<\(max(config.typeVocabSize, 1))")
            }
        }
    }
}

/// The result of a task head's `loss`.
public struct HeadLoss {
    /// The loss (a mean over counted rows, see each head); 0 when nothing counted.
    public var loss: Float
    /// Counted rows whose argmax prediction equals the label (QA: examples whose start and end
    /// are both right).
    public var correct: Int
    /// Rows that counted (labels other than the ignore index; QA: examples with both positions).
    public var counted: Int
    /// The logits of this batch (owned by the model, valid until its next forward): shapes as
    /// each head's `logits` documents.
    public var logits: Tensor
}

/// Softmax cross-entropy for small label sets: logits `[N, L]`, targets `[N]` (`ignoreIndex`
/// rows count for nothing), optional non-negative per-row weights `w`:
/// `loss = Σ_i w_i (logsumexp(x_i) - x_i[t_i]) / Σ_i w_i` over counted rows (`w_i = 1`: the
/// mean, PyTorch's `CrossEntropyLoss`). Keeps its probabilities `[N, L]`, never the logits.
public final class LabelCrossEntropy {
    public let ignoreIndex: Int32
    private var probs: Tensor?
    private var targets: [Int32] = []
    private var rowScale: [Float] = []   // w_i / Σ w over counted rows, 0 on ignored rows
    private var gradientTaken = true
    /// Rows that counted in the last forward.
    public private(set) var countedRows = 0
    /// Counted rows of the last forward whose first maximum is the target.
    public private(set) var correctRows = 0

    public init(ignoreIndex: Int32 = -100) { self.ignoreIndex = ignoreIndex }

    /// Per-row argmax hits of the last forward (false on ignored rows).
    public private(set) var hits: [Bool] = []

    /// The loss of `logits` `[N, L]` (any shape with `N * L` values and last axis `L`).
    public func forward(_ logits: Tensor, targets: [Int32], weights: [Float]? = nil) throws -> Float {
        guard let l = logits.shape.last, l > 0, logits.count == targets.count * l else {
            throw ModelError.invalidArgument("cross-entropy logits \(logits.shape) for \(targets.count) targets")
        }
        let n = targets.count
        for t in targets where t != ignoreIndex && (t < 0 || Int(t) >= l) {
            throw ModelError.invalidBatch("label \(t) outside 0..<\(l) (and not \(ignoreIndex))")
        }
        if let weights {
            guard weights.count == n else { throw ModelError.invalidBatch("\(weights.count) weights for \(n) rows") }
            for w in weights where !(w >= 0 && w.isFinite) { throw ModelError.invalidBatch("weight \(w) is not a finite number >= 0") }
        }
        let p = Tensor.ensure(probs, [n, l]); probs = p
        self.targets = targets
        gradientTaken = false
        if rowScale.count != n { rowScale = [Float](repeating: 0, count: n) }
        if hits.count != n { hits = [Bool](repeating: false, count: n) }
        var total = 0.0, weightSum = 0.0
        countedRows = 0; correctRows = 0
        for r in 0..<n {
            let x = logits.data + r * l, q = p.data + r * l
            var mx = x[0], arg = 0
            for j in 1..<l where x[j] > mx { mx = x[j]; arg = j }
            var sum: Float = 0
            for j in 0..<l { q[j] = Foundation.exp(x[j] - mx); sum += q[j] }
            let inv = 1 / sum
            for j in 0..<l { q[j] *= inv }
            let tg = targets[r]
            guard tg != ignoreIndex else { rowScale[r] = 0; hits[r] = false; continue }
            let w = Double(weights?[r] ?? 1)
            let rowLoss = Double(mx) + Foundation.log(Double(sum)) - Double(x[Int(tg)])
            total += w * rowLoss
            weightSum += w
            rowScale[r] = Float(w)
            countedRows += 1
            hits[r] = arg == Int(tg)
            if hits[r] { correctRows += 1 }
        }
        let inv = weightSum > 0 ? Float(1 / weightSum) : 0
        for r in 0..<n { rowScale[r] *= inv }
        return weightSum > 0 ? Float(total / weightSum) : 0
    }

    /// `scale * d(loss)/d(logits)` `[N, L]`: `(p - onehot(t)) * scale * w_i / Σ w` (0 on
    /// ignored rows), written over the stored probabilities (once per forward).
    public func backward(scale: Float) throws -> Tensor {
        guard let p = probs, !gradientTaken else {
            throw ModelError.invalidArgument("cross-entropy backward needs a forward first (once per forward)")
        }
        gradientTaken = true
        let n = p.shape[0], l = p.shape[1]
        for r in 0..<n {
            let g = p.data + r * l
            let f = rowScale[r] * scale
            if f == 0 { g.update(repeating: 0, count: l); continue }
            for j in 0..<l { g[j] *= f }
            g[Int(targets[r])] -= f
        }
        return p
    }
}

/// The shared "rows -> dropout -> linear -> cross-entropy (+ accuracy)" head: `[N, C]` rows in,
/// `[N, L]` logits out, and its backward to the rows. Used by every sequence-, token- and
/// span-classification head (the `Linear` carries the HuggingFace name: `classifier`, `score`).
public final class ClassificationHead {
    public let linear: Linear
    public let dropout: Dropout
    public let crossEntropy: LabelCrossEntropy
    public var numLabels: Int { linear.outFeatures }
    /// Knowledge distillation: when set, ``loss(_:targets:weights:training:)`` is
    /// ``DistillationLoss`` against these teacher logits (and the gold targets) instead of the
    /// plain cross-entropy. The distilling objective sets it before each loss and clears it after.
    public var softTargets: SoftTargets?
    public let distillation: DistillationLoss
    private var distilled = false
    private var state = BackwardState.none

    /// Declares `<name>.weight` `[L, C]` (and `<name>.bias` `[L]` with `bias`) in `store`.
    public init(_ store: ParameterStore, name: String, inFeatures: Int, numLabels: Int, bias: Bool = true,
                dropout p: Float, rng: SharedRNG, ignoreIndex: Int32 = -100) throws {
        guard numLabels >= 1 else { throw ModelError.invalidArgument("\(name): \(numLabels) labels") }
        linear = try Linear(store, name: name, inFeatures: inFeatures, outFeatures: numLabels, bias: bias)
        dropout = try Dropout(p: p, rng: rng)
        crossEntropy = LabelCrossEntropy(ignoreIndex: ignoreIndex)
        distillation = DistillationLoss(ignoreIndex: ignoreIndex)
    }

    /// Rows with a gold target in the last loss, and how many of them the argmax got right.
    public var countedRows: Int { distilled ? distillation.countedRows : crossEntropy.countedRows }
    public var correctRows: Int { distilled ? distillation.correctRows : crossEntropy.correctRows }

    /// Rows `[N, C]` -> logits `[N, L]` (owned by the layer). With `training` false nothing is
    /// kept for a backward pass (no dropout mask, no probabilities).
    public func logits(_ rows: Tensor, training: Bool) throws -> Tensor {
        state = .none
        return try linear.forward(dropout.forward(rows, training: training))
    }

    /// Logits and their cross-entropy against `targets` `[N]` (ignore index rows skipped,
    /// optional per-row `weights`); keeps what ``backward(scale:)`` needs.
    public func loss(_ rows: Tensor, targets: [Int32], weights: [Float]? = nil, training: Bool) throws -> (logits: Tensor, loss: Float) {
        let z = try logits(rows, training: training)
        if let soft = softTargets {
            guard weights == nil else { throw ModelError.invalidArgument("per-row weights do not apply to distillation") }
            let l = try distillation.forward(z, targets: targets, soft: soft)
            distilled = true
            let softRows = soft.rows.map { $0.contains(true) } ?? !targets.isEmpty
            state = distillation.countedRows == 0 && !(softRows && soft.alpha > 0) ? .nothingCounted : .ready
            return (z, l)
        }
        distilled = false
        let l = try crossEntropy.forward(z, targets: targets, weights: weights)
        state = crossEntropy.countedRows == 0 ? .nothingCounted : .ready
        return (z, l)
    }

    /// Backward of the last ``loss(_:targets:weights:training:)``: `scale * d(loss)/d(rows)`
    /// `[N, C]` (owned by the layers), nil when no row counted; accumulates the head's gradients.
    public func backward(scale: Float) throws -> Tensor? {
        guard try state.beginBackward() else { return nil }
        let dz = try distilled ? distillation.backward(scale: scale) : crossEntropy.backward(scale: scale)
        return dropout.backward(try linear.backward(dz))
    }
}

/// A named, contiguous slice of a model's ``ParameterStore``: the embeddings, one encoder or
/// decoder layer, the pooler, the final norm, or the task head. An optimizer can skip a group
/// (freezing) or give it its own learning rate (a parameter group).
public struct ParameterSection: Sendable, Equatable {
    /// `embeddings`, `layer.N`, `pooler`, `final_norm` or `head`.
    public let name: String
    public let parameters: [Parameter]
    /// Float offsets covered in ``ParameterStore/values`` / ``ParameterStore/grads`` (the
    /// alignment gaps between parameters included).
    public var range: Range<Int> {
        guard let first = parameters.first, let last = parameters.last else { return 0..<0 }
        return first.offset..<(last.offset + last.count)
    }

    /// Consecutive parameters of `store` grouped by `groupName` (declaration order is layout order).
    static func partition(_ store: ParameterStore, _ groupName: (String) -> String) -> [ParameterSection] {
        var groups: [ParameterSection] = []
        var current: (name: String, params: [Parameter])?
        for p in store.parameters {
            let g = groupName(p.name)
            if current?.name == g { current!.params.append(p); continue }
            if let c = current { groups.append(ParameterSection(name: c.name, parameters: c.params)) }
            current = (g, [p])
        }
        if let c = current { groups.append(ParameterSection(name: c.name, parameters: c.params)) }
        return groups
    }
}

/// A backbone (BERT encoder or GPT decoder) with a task head, all in one flat ``ParameterStore``
/// with HuggingFace names (the backbone's without its `bert.` / `transformer.` prefix, see
/// ``hfName(_:)``).
///
/// ```swift
/// model.store.zeroGrads()
/// let l = try model.loss(input, labels: labels, training: true)   // forward, keeps activations
/// try model.backward(scale: 1)                                    // accumulates into model.store.grads
/// try optimizer.step(model.store, lr: lr)
/// ```
public protocol TaskHeadModel: AnyObject {
    var config: ModelConfig { get }
    var store: ParameterStore { get }
    /// The dropout generator (checkpoint it with the optimizer state for exact resumption).
    var rng: SharedRNG { get }
    var numLabels: Int { get }
    /// The HuggingFace prefix of the backbone's tensors: `bert.` or `transformer.`.
    static var backbonePrefix: String { get }
    /// Inference: the logits of `input` (dropout off, nothing kept for a backward pass; owned by
    /// the model, valid until its next forward). Shapes: `[B, L]` (sequence), `[B, T, L]`
    /// (token), `[B, T, 2]` (question answering: start, end).
    func logits(_ input: HeadInput) throws -> Tensor
    /// Backward of the last `loss` call: accumulates (+=) `scale * d(loss)` into `store.grads`.
    /// Once per `loss`; any other forward in between makes it an error.
    func backward(scale: Float) throws
    /// Leaves the backbone's `stages` bottom stages (the embeddings, then layers 0, 1, …) out
    /// of backward (``BertModel/frozenBottomStages``): they are frozen.
    func skipBackward(frozenBottomStages stages: Int)
}

/// A head model whose head is a ``ClassificationHead`` over rows its backbone computes: one per
/// example (sequence classification: the pooled `[B, C]`) or one per position (token
/// classification: `[B * T, C]`). With the backbone frozen those rows do not change, so they can
/// be computed once and the head trained on them alone (cached features).
public protocol ClassificationRowsModel: TaskHeadModel {
    /// Dropout, linear and cross-entropy over the rows.
    var head: ClassificationHead { get }
    /// Whether the head classifies every position (`[B * T, C]`) rather than one row per example (`[B, C]`).
    var classifiesPositions: Bool { get }
    /// The rows the head classifies, computed in inference mode (no dropout, nothing kept for a
    /// backward pass): `[B, C]` or `[B * T, C]`, owned by the model until its next forward.
    func headRows(_ input: HeadInput) throws -> Tensor
}

extension TaskHeadModel {
    /// The parameter groups in layout order: `embeddings`, `layer.0` ..< `layer.{layers-1}`,
    /// then `pooler` / `final_norm` where present, then `head`.
    public var parameterSections: [ParameterSection] { ParameterSection.partition(store, groupName) }

    /// The group of a parameter name (see ``parameterSections``).
    public func groupName(_ name: String) -> String {
        for prefix in ["encoder.layer.", "h."] where name.hasPrefix(prefix) {
            return "layer." + name.dropFirst(prefix.count).prefix { $0 != "." }
        }
        if name.hasPrefix("embeddings.") || name.hasPrefix("wte.") || name.hasPrefix("wpe.") { return "embeddings" }
        if name.hasPrefix("pooler.") { return "pooler" }
        if name.hasPrefix("ln_f.") { return "final_norm" }
        return "head"
    }

    /// The groups an optimizer should leave untouched. `encoder`: every backbone group
    /// (embeddings, layers, pooler, final norm), so only the head trains (feature extraction);
    /// else the embeddings and layers `0..<lowerLayers` (none when `lowerLayers` is 0).
    public func frozenSections(encoder: Bool, lowerLayers: Int = 0) -> [ParameterSection] {
        parameterSections.filter { g in
            if g.name == "head" { return false }
            if encoder { return true }
            if g.name == "embeddings" { return lowerLayers > 0 }
            if g.name.hasPrefix("layer."), let i = Int(g.name.dropFirst(6)) { return i < lowerLayers }
            return false
        }
    }

    /// The HuggingFace tensor name of a store parameter (the backbone prefix added back).
    public func hfName(_ parameterName: String) -> String {
        groupName(parameterName) == "head" ? parameterName : Self.backbonePrefix + parameterName
    }
}

// The heads are model-directory models under their HuggingFace class names (see
// `ModelRegistry.taskHeads`).
extension TaskHeadModel where Self: PretrainedModel {
    /// Loads a HuggingFace task checkpoint (`model.safetensors` of transformers'
    /// `BertFor…`/`GPT2For…` class) by name, with the ``ModelRegistry`` mapping of this
    /// architecture (as ``ModelDirectory`` loads it: base prefix stripped, buffers and other
    /// heads skipped, `Conv1D` weights transposed; a BERT pooler the model was built without is
    /// skipped too), except that the head must be in the file: any missing tensor is an error
    /// naming the file, as is any unknown one. Returns the file's skipped tensor names.
    @discardableResult
    public func load(_ file: SafeTensors) throws -> [String] {
        let entry = try ModelRegistry.architecture(named: architecture, file: file.path)
        var mapping = entry.weights
        if entry.family == .bert && !store.contains("pooler.dense.weight") { mapping.ignoring.append(.prefix("pooler.")) }
        let (missing, skipped) = try ModelDirectory.loadWeights(file, into: store, mapping: mapping, architecture: entry.name,
                                                                path: file.path)
        if !missing.isEmpty { throw ModelError.badWeights(file: file.path, problem: "missing tensors \(missing.prefix(8))") }
        return skipped
    }
}

/// A head model whose outputs are one ``ClassificationHead``'s logits (sequence and token
/// classification, BERT and GPT-2): what knowledge distillation trains through
/// ``ClassificationHead/softTargets``.
public protocol ClassificationHeadModel: TaskHeadModel {
    var head: ClassificationHead { get }
}

extension BertForSequenceClassification: ClassificationHeadModel {}
extension BertForTokenClassification: ClassificationHeadModel {}
extension GPT2ForSequenceClassification: ClassificationHeadModel {}
extension GPT2ForTokenClassification: ClassificationHeadModel {}

extension BertForSequenceClassification: PretrainedModel { public var architecture: String { "BertForSequenceClassification" } }
extension BertForTokenClassification: PretrainedModel { public var architecture: String { "BertForTokenClassification" } }
extension BertForQuestionAnswering: PretrainedModel { public var architecture: String { "BertForQuestionAnswering" } }
extension GPT2ForSequenceClassification: PretrainedModel { public var architecture: String { "GPT2ForSequenceClassification" } }
extension GPT2ForTokenClassification: PretrainedModel { public var architecture: String { "GPT2ForTokenClassification" } }

extension ClassificationHead {
    /// Sequence classification: forward + loss of the pooled rows `[B, C]` that `rows` computes
    /// against `labels` `[B]` (-100 ignored), optional per-example `weights` `[B]`; the label
    /// count is checked before `rows` runs the encoder.
    func sequenceLoss(_ input: HeadInput, labels: [Int32], weights: [Float]?, training: Bool,
                      rows: () throws -> Tensor) throws -> HeadLoss {
        guard labels.count == input.batch else { throw ModelError.invalidBatch("\(labels.count) labels for batch \(input.batch)") }
        let (z, l) = try loss(rows(), targets: labels, weights: weights, training: training)
        return HeadLoss(loss: l, correct: correctRows, counted: countedRows, logits: z)
    }

    /// Token classification (a label for every position): the logits `[B, T, L]` of the encoder
    /// rows `[B * T, C]` that `rows` computes (inference: nothing kept for a backward pass).
    func positionLogits(_ input: HeadInput, rows: () throws -> Tensor) throws -> Tensor {
        try logits(rows(), training: false).reshaped([input.batch, input.seqLen, numLabels])
    }

    /// Token classification: forward + loss against `labels` `[B * T]` (-100 ignored), checked
    /// before `rows` runs the encoder. Optional per-example `weights` `[B]` weigh every position
    /// of their row: `loss = Σ_p w_row(p) l_p / Σ_p w_row(p)` over the labelled positions.
    func positionLoss(_ input: HeadInput, labels: [Int32], weights: [Float]? = nil, training: Bool,
                      rows: () throws -> Tensor) throws -> HeadLoss {
        guard labels.count == input.batch * input.seqLen else {
            throw ModelError.invalidBatch("\(labels.count) labels for batch \(input.batch) x seqLen \(input.seqLen)")
        }
        if let weights, weights.count != input.batch {
            throw ModelError.invalidBatch("\(weights.count) weights for batch \(input.batch)")
        }
        let positionWeights = weights.map { w in w.flatMap { [Float](repeating: $0, count: input.seqLen) } }
        let (z, l) = try loss(rows(), targets: labels, weights: positionWeights, training: training)
        return HeadLoss(loss: l, correct: correctRows, counted: countedRows,
                        logits: try z.reshaped([input.batch, input.seqLen, numLabels]))
    }
}
