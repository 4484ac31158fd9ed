import GraftEngine

extension GPTForCausalLM {
    /// A fresh decoder (store seeded by `seed`, dropout by `seed + 1`) and a classification head
    /// named `name` on its hidden size, in the decoder's store: what both GPT-2 heads are built from.
    static func withClassificationHead(config: ModelConfig, name: String, numLabels: Int, bias: Bool = true,
                                       dropout: Float, seed: UInt64) throws -> (GPTForCausalLM, ClassificationHead) {
        let transformer = try GPTForCausalLM(config: config, seed: seed)
        let head = try ClassificationHead(transformer.store, name: name, inFeatures: config.hidden, numLabels: numLabels,
                                          bias: bias, dropout: dropout, rng: transformer.rng)
        return (transformer, head)
    }

    /// The final hidden states `[B, T, C]` (before `ln_f`) of a task head's input, checked
    /// against the config; token type ids other than 0 are an error (GPT-2 has none).
    func hidden(_ input: HeadInput, training: Bool, inference: Bool = false) throws -> Tensor {
        try input.validate(config)
        if let t = input.tokenTypeIds, t.contains(where: { $0 != 0 }) { throw ModelError.invalidBatch("token type ids given to a GPT model") }
        return try hidden(input.inputIds, attentionMask: input.attentionMask, batch: input.batch, seqLen: input.seqLen,
                          training: training, inference: inference)
    }
}

/// A GPT-2 task head model: a ``GPTForCausalLM`` decoder, whose store and dropout generator
/// are the model's (its LM head is tied to `wte`, so it adds no parameter), and a
/// ``ClassificationHead`` on its final hidden states.
public protocol GPT2HeadModel: TaskHeadModel {
    var transformer: GPTForCausalLM { get }
    var head: ClassificationHead { get }
}

extension GPT2HeadModel {
    public static var backbonePrefix: String { "transformer." }
    public var store: ParameterStore { transformer.store }
    public var rng: SharedRNG { transformer.rng }
    public var numLabels: Int { head.numLabels }
    public func skipBackward(frozenBottomStages stages: Int) { transformer.frozenBottomStages = stages }
}

/// HuggingFace `GPT2ForSequenceClassification`: the decoder (`transformer.*`, final `ln_f`),
/// then `score` (`[L, C]`, no bias) read at the last real token of each row -> logits `[B, L]`
/// (HF applies `score` at every position and picks that row; the result is the same). The last
/// real token is the last position whose attention mask is 1; without a mask, the last one whose
/// id is not ``ModelConfig/padTokenId`` (as HF), else position `T - 1`. Loss: cross-entropy
/// against one label per example (-100 ignored), optionally weighted per example.
///
/// The backbone is a ``GPTForCausalLM`` whose LM head is tied to `wte`, so it adds no parameter.
public final class GPT2ForSequenceClassification: GPT2HeadModel, ClassificationRowsModel {
    public let config: ModelConfig
    public let transformer: GPTForCausalLM
    /// `score` (no dropout, as HF).
    public let head: ClassificationHead
    private var lastRows: [Int] = []
    private var gathered: Tensor?
    private var dHidden: Tensor?
    private var shape: [Int] = []

    public init(config: ModelConfig, numLabels: Int, seed: UInt64) throws {
        guard numLabels >= 2 else { throw ModelError.invalidArgument("sequence classification needs at least 2 labels, got \(numLabels)") }
        self.config = config
        (transformer, head) = try GPTForCausalLM.withClassificationHead(config: config, name: "score", numLabels: numLabels,
                                                                        bias: false, dropout: 0, seed: seed)
    }

    /// The flat row index of each example's last real token.
    func lastTokenRows(_ input: HeadInput) -> [Int] {
        (0..<input.batch).map { b in
            let base = b * input.seqLen
            var last = input.seqLen - 1
            if let m = input.attentionMask {
                while last > 0 && m[base + last] == 0 { last -= 1 }
            } else if let pad = config.padTokenId {
                while last > 0 && input.inputIds[base + last] == pad { last -= 1 }
            }
            return base + last
        }
    }

    private func pooled(_ input: HeadInput, training: Bool, inference: Bool = false) throws -> Tensor {
        let h = try transformer.hidden(input, training: training, inference: inference)
        shape = h.shape
        lastRows = lastTokenRows(input)
        let rows = Rows.gather(h, rows: lastRows, width: config.hidden, into: gathered); gathered = rows
        return try transformer.lnF.forward(rows)
    }

    /// Inference: logits `[B, L]` (owned by the model; nothing kept for backward).
    public func logits(_ input: HeadInput) throws -> Tensor {
        try head.logits(pooled(input, training: false, inference: true), training: false)
    }

    public var classifiesPositions: Bool { false }
    /// The normalised last-real-token rows `[B, C]` (inference mode).
    public func headRows(_ input: HeadInput) throws -> Tensor { try pooled(input, training: false, inference: true) }

    /// Forward + loss against `labels` `[B]` (-100 ignored), per-example `weights` optional.
    public func loss(_ input: HeadInput, labels: [Int32], weights: [Float]? = nil, training: Bool) throws -> HeadLoss {
        try head.sequenceLoss(input, labels: labels, weights: weights, training: training) { try pooled(input, training: training) }
    }

    public func backward(scale: Float) throws {
        guard let dRows = try head.backward(scale: scale) else { return }
        let d = try transformer.lnF.backward(dRows)
        let dh = Rows.scatter(d, rows: lastRows, width: config.hidden, shape: shape, into: dHidden); dHidden = dh
        try transformer.backwardHidden(dh)
    }
}

/// HuggingFace `GPT2ForTokenClassification`: the decoder with `ln_f`, dropout
/// (`classifier_dropout`, HF's default 0.1 for GPT-2) and `classifier` (`[L, C]`, `[L]`) on
/// every position -> logits `[B, T, L]`; loss: mean cross-entropy over labelled positions.
public final class GPT2ForTokenClassification: GPT2HeadModel, ClassificationRowsModel {
    public let config: ModelConfig
    public let transformer: GPTForCausalLM
    public let head: ClassificationHead
    private var shape: [Int] = []

    public init(config: ModelConfig, numLabels: Int, classifierDropout: Float = 0.1, seed: UInt64) throws {
        self.config = config
        (transformer, head) = try GPTForCausalLM.withClassificationHead(config: config, name: "classifier", numLabels: numLabels,
                                                                        dropout: classifierDropout, seed: seed)
    }

    private func rows(_ input: HeadInput, training: Bool, inference: Bool = false) throws -> Tensor {
        let h = try transformer.hidden(input, training: training, inference: inference)
        shape = h.shape
        return try transformer.lnF.forward(h.reshaped([input.batch * input.seqLen, config.hidden]))
    }

    /// Inference: logits `[B, T, L]` (owned by the model; nothing kept for backward).
    public func logits(_ input: HeadInput) throws -> Tensor {
        try head.positionLogits(input) { try rows(input, training: false, inference: true) }
    }

    public var classifiesPositions: Bool { true }
    /// The normalised hidden states as rows `[B * T, C]` (inference mode).
    public func headRows(_ input: HeadInput) throws -> Tensor { try rows(input, training: false, inference: true) }

    /// Forward + loss against `labels` `[B * T]` (-100 ignored).
    public func loss(_ input: HeadInput, labels: [Int32], weights: [Float]? = nil, training: Bool) throws -> HeadLoss {
        try head.positionLoss(input, labels: labels, weights: weights, training: training) { try rows(input, training: training) }
    }

    public func backward(scale: Float) throws {
        guard let d = try head.backward(scale: scale) else { return }
        try transformer.backwardHidden(try transformer.lnF.backward(d).reshaped(shape))
    }
}
