import GraftEngine

/// The encoder a BERT head is built on, with the store and dropout generator it declared its
/// parameters in: a fresh one per head model (``BertModel/backbone(of:config:seed:pooler:)``), or
/// the one every head of a ``BertMultiTaskModel`` shares (each head then adds its own parameters
/// to the same store).
public struct BertBackbone {
    public let store: ParameterStore
    public let rng: SharedRNG
    public let bert: BertModel
    /// Whether the encoder has HuggingFace's pooler (`pooler.dense`).
    public var hasPooler: Bool { store.contains("pooler.dense.weight") }
}

extension BertModel {
    /// A fresh encoder for a model with a head, as every BERT model here is built: its store
    /// seeded by `seed`, dropout by `seed + 1`. `model` names the class in the error for a
    /// config that is not BERT's.
    static func backbone(of model: String, config: ModelConfig, seed: UInt64, pooler: Bool) throws -> BertBackbone {
        guard config.kind == .bert else { throw ModelError.invalidArgument("\(model) needs a bert config, got \(config.kind)") }
        let store = ParameterStore(seed: seed)
        let rng = SharedRNG(seed: seed &+ 1)
        return BertBackbone(store: store, rng: rng, bert: try BertModel(config: config, store: store, rng: rng, pooler: pooler))
    }

    /// The last hidden states `[B, T, C]` of a task head's input, checked against the config
    /// (`[B, 1, C]` with `firstTokenOnly`); `inference` as in ``forward(inputIds:tokenTypeIds:attentionMask:batch:seqLen:training:firstTokenOnly:outputRows:inference:)``.
    func forward(_ input: HeadInput, training: Bool, firstTokenOnly: Bool = false, inference: Bool = false) throws -> Tensor {
        try input.validate(config)
        return try forward(inputIds: input.inputIds, tokenTypeIds: input.tokenTypeIds, attentionMask: input.attentionMask,
                           batch: input.batch, seqLen: input.seqLen, training: training, firstTokenOnly: firstTokenOnly,
                           inference: inference)
    }

    /// `[B, T]` key mask (1 real, 0 padding) for pooling, or nil without padding.
    static func maskTensor(_ input: HeadInput) -> Tensor? {
        guard let m = input.attentionMask, m.contains(where: { $0 == 0 }) else { return nil }
        return Tensor(shape: [input.batch, input.seqLen], values: m.map { $0 != 0 ? 1 : 0 })
    }
}

/// HuggingFace `BertForSequenceClassification`: the `[CLS]` hidden state through the pooler
/// (`bert.pooler.dense`, tanh), dropout, then `classifier` (`[L, C]` weight, `[L]` bias) ->
/// logits `[B, L]`; loss: cross-entropy against one label per example (-100 ignored), optionally
/// weighted per example (`Σ w_i l_i / Σ w_i`).
///
/// With ``Pooling/mean`` the pooled vector is the masked mean of the last hidden states (the
/// sentence-transformers pooling, for models whose pooler was never trained) and the model has
/// no pooler parameters. The choice is kept in ``ModelConfig/pooling`` (`graft_pooling` in
/// `config.json`); a checkpoint's pooler is skipped when loading into a mean-pooled model, and
/// ``ModelDirectory/export(_:tokenizer:to:)`` refuses one (transformers' class always pools
/// through `[CLS]`).
public final class BertForSequenceClassification: ClassificationRowsModel {
    public enum Pooling: String, Sendable, Codable {
        /// `tanh(W h[CLS] + b)` (HuggingFace).
        case pooler
        /// Mean over real tokens (attention mask 1).
        case mean
    }

    public static let backbonePrefix = "bert."
    public let config: ModelConfig
    public let store: ParameterStore
    public let rng: SharedRNG
    public let bert: BertModel
    public let pooling: Pooling
    /// Dropout + `classifier`.
    public let head: ClassificationHead
    public var numLabels: Int { head.numLabels }
    private let meanPool = MeanPool()

    /// A freshly initialised model (store seeded by `seed`, dropout by `seed + 1`);
    /// `classifierDropout` defaults to the config's hidden dropout (HF `classifier_dropout`).
    public convenience init(config: ModelConfig, numLabels: Int, pooling: Pooling = .pooler, classifierDropout: Float? = nil,
                            seed: UInt64) throws {
        try self.init(config: config, numLabels: numLabels, pooling: pooling, classifierDropout: classifierDropout,
                      backbone: BertModel.backbone(of: "BertForSequenceClassification", config: config, seed: seed,
                                                   pooler: pooling == .pooler),
                      headName: "classifier")
    }

    /// A head on `backbone`, its `classifier` declared in the backbone's store as
    /// `<headName>.weight` `[L, C]` and `<headName>.bias` `[L]` (``BertMultiTaskModel`` builds
    /// several heads on one encoder this way). Pooling through the pooler needs a backbone with one.
    public init(config: ModelConfig, numLabels: Int, pooling: Pooling, classifierDropout: Float? = nil,
                backbone: BertBackbone, headName: String) throws {
        guard numLabels >= 2 else { throw ModelError.invalidArgument("sequence classification needs at least 2 labels, got \(numLabels)") }
        guard pooling == .mean || backbone.hasPooler else {
            throw ModelError.invalidArgument("\(headName): pooling through [CLS] needs an encoder with a pooler")
        }
        var config = config
        config.pooling = pooling == .mean ? .mean : nil   // saved as graft_pooling, so the directory reopens alike
        self.config = config
        self.pooling = pooling
        (store, rng, bert) = (backbone.store, backbone.rng, backbone.bert)
        head = try ClassificationHead(store, name: headName, inFeatures: config.hidden, numLabels: numLabels,
                                      dropout: classifierDropout ?? config.dropout, rng: rng)
    }

    /// With `[CLS]` pooling the last block runs at `[CLS]` alone (`firstTokenOnly`): the
    /// other positions of the last layer feed nothing the classifier reads.
    private func pooled(_ input: HeadInput, training: Bool, inference: Bool = false) throws -> Tensor {
        switch pooling {
        case .pooler: return try bert.pooled(bert.forward(input, training: training, firstTokenOnly: true, inference: inference))!
        case .mean:
            return try meanPool.forward(bert.forward(input, training: training, inference: inference), mask: BertModel.maskTensor(input))
        }
    }

    /// Inference: logits `[B, L]` (owned by the model; dropout off, nothing kept for backward).
    public func logits(_ input: HeadInput) throws -> Tensor {
        try head.logits(pooled(input, training: false, inference: true), training: false)
    }

    public var classifiesPositions: Bool { false }
    /// The pooled rows `[B, C]` (inference mode).
    public func headRows(_ input: HeadInput) throws -> Tensor { try pooled(input, training: false, inference: true) }

    /// Forward + loss against `labels` `[B]` (-100 ignored), per-example `weights` `[B]`
    /// optional; keeps activations for ``backward(scale:)``. Gradients are not zeroed here.
    public func loss(_ input: HeadInput, labels: [Int32], weights: [Float]? = nil, training: Bool) throws -> HeadLoss {
        try head.sequenceLoss(input, labels: labels, weights: weights, training: training) { try pooled(input, training: training) }
    }

    public func backward(scale: Float) throws {
        guard let dPooled = try head.backward(scale: scale) else { return }
        let dh: Tensor
        switch pooling {
        case .pooler: dh = try bert.pooledBackward(dPooled)
        case .mean: dh = try meanPool.backward(dPooled)
        }
        try bert.backward(dh)
    }
}

/// HuggingFace `BertForTokenClassification`: dropout and `classifier` (`[L, C]`, `[L]`) on
/// every position -> logits `[B, T, L]`; loss: the mean cross-entropy over labelled positions
/// (label -100 ignored: padding, special tokens, continuation subwords).
public final class BertForTokenClassification: ClassificationRowsModel {
    public static let backbonePrefix = "bert."
    public let config: ModelConfig
    public let store: ParameterStore
    public let rng: SharedRNG
    public let bert: BertModel
    public let head: ClassificationHead
    public var numLabels: Int { head.numLabels }
    private var shape: [Int] = []

    public convenience init(config: ModelConfig, numLabels: Int, classifierDropout: Float? = nil, seed: UInt64) throws {
        try self.init(config: config, numLabels: numLabels, classifierDropout: classifierDropout,
                      backbone: BertModel.backbone(of: "BertForTokenClassification", config: config, seed: seed, pooler: false),
                      headName: "classifier")
    }

    /// A head on `backbone` (shared with other heads in ``BertMultiTaskModel``), its classifier
    /// declared in the backbone's store as `<headName>.weight` `[L, C]` and `<headName>.bias` `[L]`.
    public init(config: ModelConfig, numLabels: Int, classifierDropout: Float? = nil, backbone: BertBackbone, headName: String) throws {
        self.config = config
        (store, rng, bert) = (backbone.store, backbone.rng, backbone.bert)
        head = try ClassificationHead(store, name: headName, inFeatures: config.hidden, numLabels: numLabels,
                                      dropout: classifierDropout ?? config.dropout, rng: rng)
    }

    private func rows(_ input: HeadInput, training: Bool, inference: Bool = false) throws -> Tensor {
        let h = try bert.forward(input, training: training, inference: inference)
        shape = h.shape
        return try h.reshaped([input.batch * input.seqLen, config.hidden])
    }

    /// Inference: logits `[B, T, L]` (owned by the model; nothing kept for backward).
    public func logits(_ input: HeadInput) throws -> Tensor {
        try head.positionLogits(input) { try rows(input, training: false, inference: true) }
    }

    public var classifiesPositions: Bool { true }
    /// The last hidden states as rows `[B * T, C]` (inference mode).
    public func headRows(_ input: HeadInput) throws -> Tensor { try rows(input, training: false, inference: true) }

    /// Forward + loss against `labels` `[B * T]` (-100 ignored); optional per-example `weights`
    /// `[B]` weigh all labelled positions of their row (instance weighting).
    public func loss(_ input: HeadInput, labels: [Int32], weights: [Float]? = nil, training: Bool) throws -> HeadLoss {
        try head.positionLoss(input, labels: labels, weights: weights, training: training) { try rows(input, training: training) }
    }

    public func backward(scale: Float) throws {
        guard let d = try head.backward(scale: scale) else { return }
        try bert.backward(try d.reshaped(shape))
    }
}

/// HuggingFace `BertForQuestionAnswering`: `qa_outputs` (`[2, C]`, `[2]`) on every position ->
/// logits `[B, T, 2]` (start logits `[..., 0]`, end logits `[..., 1]`; no dropout, padding not
/// masked, as HF). Loss: `(CE(start) + CE(end)) / 2`, each the mean over its counted examples,
/// positions clamped to `[0, T]` with `T` ignored (as HF: a negative position becomes 0, the
/// `[CLS]` "no answer"; one beyond the window is ignored).
public final class BertForQuestionAnswering: TaskHeadModel {
    public static let backbonePrefix = "bert."
    public let config: ModelConfig
    public let store: ParameterStore
    public let rng: SharedRNG
    public let bert: BertModel
    public let qaOutputs: Linear
    public var numLabels: Int { 2 }
    private let startLoss = LabelCrossEntropy(), endLoss = LabelCrossEntropy()
    private var startLogits: Tensor?
    private var endLogits: Tensor?
    private var dLogits: Tensor?
    private var shape: [Int] = []
    private var state = BackwardState.none

    public convenience init(config: ModelConfig, seed: UInt64) throws {
        try self.init(config: config, backbone: BertModel.backbone(of: "BertForQuestionAnswering", config: config, seed: seed, pooler: false),
                      headName: "qa_outputs")
    }

    /// A head on `backbone` (shared with other heads in ``BertMultiTaskModel``): `<headName>.weight`
    /// `[2, C]` and `<headName>.bias` `[2]` in the backbone's store.
    public init(config: ModelConfig, backbone: BertBackbone, headName: String) throws {
        self.config = config
        (store, rng, bert) = (backbone.store, backbone.rng, backbone.bert)
        qaOutputs = try Linear(store, name: headName, inFeatures: config.hidden, outFeatures: 2)
    }

    private func forward(_ input: HeadInput, training: Bool, inference: Bool = false) throws -> Tensor {
        state = .none
        let h = try bert.forward(input, training: training, inference: inference)
        shape = h.shape
        return try qaOutputs.forward(h).reshaped([input.batch, input.seqLen, 2])
    }

    /// Inference: logits `[B, T, 2]` (owned by the model; nothing kept for backward).
    public func logits(_ input: HeadInput) throws -> Tensor { try forward(input, training: false, inference: true) }

    /// Forward + loss against the answer's first and last token `startPositions` / `endPositions` `[B]`.
    public func loss(_ input: HeadInput, startPositions: [Int32], endPositions: [Int32], training: Bool) throws -> HeadLoss {
        guard startPositions.count == input.batch, endPositions.count == input.batch else {
            throw ModelError.invalidBatch("\(startPositions.count) start / \(endPositions.count) end positions for batch \(input.batch)")
        }
        let z = try forward(input, training: training)
        let b = input.batch, t = input.seqLen
        let s = Tensor.ensure(startLogits, [b, t]), e = Tensor.ensure(endLogits, [b, t])
        startLogits = s; endLogits = e
        for i in 0..<(b * t) { s.data[i] = z.data[2 * i]; e.data[i] = z.data[2 * i + 1] }
        // HF: positions.clamp(0, T), and T is the ignore index.
        func targets(_ p: [Int32]) -> [Int32] { p.map { let c = min(max($0, 0), Int32(t)); return c == Int32(t) ? -100 : c } }
        let ls = try startLoss.forward(s, targets: targets(startPositions))
        let le = try endLoss.forward(e, targets: targets(endPositions))
        var correct = 0, counted = 0
        let st = targets(startPositions), et = targets(endPositions)
        for i in 0..<b where st[i] != -100 && et[i] != -100 {
            counted += 1
            if startLoss.hits[i] && endLoss.hits[i] { correct += 1 }
        }
        let any = startLoss.countedRows + endLoss.countedRows > 0
        state = any ? .ready : .nothingCounted
        return HeadLoss(loss: (ls + le) / 2, correct: correct, counted: counted, logits: z)
    }

    public func backward(scale: Float) throws {
        guard try state.beginBackward() else { return }
        let ds = try startLoss.backward(scale: scale / 2), de = try endLoss.backward(scale: scale / 2)
        let n = ds.count
        let d = Tensor.ensure(dLogits, [n, 2]); dLogits = d
        for i in 0..<n { d.data[2 * i] = ds.data[i]; d.data[2 * i + 1] = de.data[i] }
        try bert.backward(try qaOutputs.backward(d).reshaped(shape))
    }
}

/// A BERT head model whose encoder also runs on its own: the last hidden states `[B, T, C]` of a
/// batch and their backward into the same store. Domain-adversarial training feeds them to a
/// domain classifier, and instance weighting embeds sentences with the encoder. Running the
/// encoder replaces the activations a head's `loss` kept, so it comes after that loss's `backward`.
public protocol EncoderHeadModel: TaskHeadModel {
    /// The encoder (its parameters are the store's backbone).
    var bert: BertModel { get }
}

extension EncoderHeadModel {
    /// The encoder's last hidden states `[B, T, C]` (owned by the encoder; `training` applies
    /// dropout and keeps activations for ``hiddenStatesBackward(_:)``).
    public func hiddenStates(_ input: HeadInput, training: Bool) throws -> Tensor { try bert.forward(input, training: training) }

    /// Adds the encoder's gradients for `dHidden` `[B, T, C]` (of the last training
    /// ``hiddenStates(_:training:)``) into the store.
    public func hiddenStatesBackward(_ dHidden: Tensor) throws { try bert.backward(dHidden) }

    public func skipBackward(frozenBottomStages stages: Int) { bert.frozenBottomStages = stages }
}

extension BertForSequenceClassification: EncoderHeadModel {}
extension BertForTokenClassification: EncoderHeadModel {}
extension BertForQuestionAnswering: EncoderHeadModel {}
