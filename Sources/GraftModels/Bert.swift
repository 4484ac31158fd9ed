import GraftSupport
import GraftEngine

/// The BERT encoder with HuggingFace `BertModel` tensor names:
/// `embeddings.{word,position,token_type}_embeddings.weight`, `embeddings.LayerNorm.*`,
/// `encoder.layer.N.*` (see ``TransformerBlock``) and, optionally, `pooler.dense.*`.
///
/// `h0 = Dropout(LayerNorm(word[ids] + position[t] + type[segment]))`, then `layers` post-LN
/// blocks with erf GELU; padded keys (attention mask 0) get attention probability 0.
/// Output: the last hidden states `[B, T, C]`.
public final class BertModel: PretrainedModel {
    public let config: ModelConfig
    public let store: ParameterStore
    /// Dropout generator (shared by every dropout layer of the model).
    public let rng: SharedRNG
    public let wordEmbeddings: Embedding
    public let positionEmbeddings: Embedding
    /// nil when ``ModelConfig/typeVocabSize`` is 0.
    public let tokenTypeEmbeddings: Embedding?
    public let embeddingNorm: LayerNorm
    public let layers: [TransformerBlock]
    /// The float range of each layer's parameters in ``store`` (reported finished in backward).
    let layerRanges: [Range<Int>]
    /// `pooler.dense` (`tanh(W h[CLS] + b)`), present when built with `pooler: true`.
    public let pooler: Linear?
    /// Scratch shared by the blocks (backward buffers, GELU outputs) and the embeddings.
    public let workspace = Workspace()
    /// Layers the forward and backward pass over (default none): the original model computes
    /// what ``ModelSurgery/keepingLayers(_:of:seed:)`` without them computes, bit for bit.
    public var skippedLayers: Set<Int> = []
    /// The last layer the forward runs (the highest not in ``skippedLayers``); nil when none does.
    public var lastComputedLayer: Int? { layers.indices.last { !skippedLayers.contains($0) } }
    /// How many bottom stages — the embeddings, then layers 0, 1, … — backward leaves out
    /// (default 0: none). 1 skips the embeddings, `1 + k` the embeddings and layers `0..<k`: what
    /// fine-tuning with frozen lower layers needs (their gradients stay as they were, zero after
    /// `zeroGrads`), at the cost of the trained layers alone. The others' gradients are the same bits.
    public var frozenBottomStages = 0
    private let embeddingDropout: Dropout
    private let poolerActivation = Tanh()
    private var positionIds: [Int32] = []
    private var zeroTypes: [Int32] = []
    private var sum: Tensor?
    private var mask: Tensor?
    private var clsRows: Tensor?
    private var pooledGradient: Tensor?
    private var pooledSeqLen = 0
    private var last: (batch: Int, seqLen: Int, rowsPerItem: Int?)?
    public var architecture: String { "BertModel" }

    /// Declares the encoder's parameters in `store` (BERT initialisation: normal(0.02) weights,
    /// zero biases, the padding row of the word embeddings zero).
    public init(config: ModelConfig, store: ParameterStore, rng: SharedRNG, pooler: Bool = false) throws {
        try config.validate()
        self.config = config
        self.store = store
        self.rng = rng
        let c = config.hidden
        wordEmbeddings = try Embedding(store, name: "embeddings.word_embeddings", vocabSize: config.vocabSize, dim: c)
        if let pad = config.padTokenId {
            store.value(wordEmbeddings.weight).advanced(by: Int(pad) * c).update(repeating: 0, count: c)
        }
        positionEmbeddings = try Embedding(store, name: "embeddings.position_embeddings", vocabSize: config.maxPositions, dim: c)
        tokenTypeEmbeddings = config.typeVocabSize > 0
            ? try Embedding(store, name: "embeddings.token_type_embeddings", vocabSize: config.typeVocabSize, dim: c) : nil
        embeddingNorm = try LayerNorm(store, name: "embeddings.LayerNorm", dim: c, eps: config.layerNormEps)
        embeddingDropout = try Dropout(p: config.dropout, rng: rng)
        let block = TransformerBlock.Config(hidden: c, heads: config.heads, ffn: config.ffn, layerNormEps: config.layerNormEps,
                                            gelu: .erf, hiddenDropout: config.dropout, attentionDropout: config.attentionDropout)
        let store = store, rng = rng, ws = workspace
        var ranges: [Range<Int>] = []
        layers = try (0..<config.layers).map {
            let start = store.count
            defer { ranges.append(start..<store.count) }
            var layerBlock = block
            if let pruned = config.prunedHeads?[$0], !pruned.isEmpty { layerBlock.attentionHeads = config.heads - pruned.count }
            return try TransformerBlock(store, prefix: "encoder.layer.\($0)", config: layerBlock, rng: rng, workspace: ws)
        }
        layerRanges = ranges
        self.pooler = pooler ? try Linear(store, name: "pooler.dense", inFeatures: c, outFeatures: c) : nil
    }

    /// A stand-alone encoder with its own store and dropout generator seeded by `seed`.
    public convenience init(config: ModelConfig, seed: UInt64, pooler: Bool = false) throws {
        try self.init(config: config, store: ParameterStore(seed: seed), rng: SharedRNG(seed: seed &+ 1), pooler: pooler)
    }

    /// Token ids (and optional segment ids and attention mask, all `[B * T]` row-major) ->
    /// last hidden states `[B, T, C]` (owned by the model, valid until the next forward).
    ///
    /// `outputRows`: the last block computes the selected positions alone
    /// (``TransformerBlock/forwardRows(_:selecting:mask:training:)``) and the result is
    /// `[B, R, C]`, `R` the selection's rows per item — what a head that reads a few positions
    /// needs; ``backward(_:)`` then takes `[B, R, C]`. `firstTokenOnly` selects position 0 (the
    /// `[CLS]` states, `[B, 1, C]`: all a `[CLS]`-pooling classifier reads). Needs at least one
    /// layer not skipped.
    ///
    /// `inference` (needs `training` false): nothing is kept for a backward — the blocks run
    /// through ``TransformerBlock/infer(_:mask:)``, all of them in one set of workspace buffers,
    /// so memory does not grow with the number of layers; the same values. The result is then
    /// workspace memory, valid until the model's next forward or backward; ``backward(_:)``
    /// refuses to follow it.
    public func forward(inputIds: [Int32], tokenTypeIds: [Int32]? = nil, attentionMask: [Int32]? = nil,
                        batch: Int, seqLen: Int, training: Bool, firstTokenOnly: Bool = false,
                        outputRows: RowSelection? = nil, inference: Bool = false) throws -> Tensor {
        let n = batch * seqLen, c = config.hidden
        guard batch > 0, seqLen > 0, inputIds.count == n else {
            throw ModelError.invalidBatch("\(inputIds.count) input ids for batch \(batch) x seqLen \(seqLen)")
        }
        guard !(inference && training) else { throw ModelError.invalidArgument("BertModel: an inference forward cannot be a training one") }
        guard seqLen <= config.maxPositions else {
            throw ModelError.invalidBatch("seqLen \(seqLen) exceeds the model's \(config.maxPositions) positions")
        }
        if let t = tokenTypeIds, t.count != n { throw ModelError.invalidBatch("\(t.count) token type ids for \(n) tokens") }
        if let m = attentionMask, m.count != n { throw ModelError.invalidBatch("\(m.count) attention mask values for \(n) tokens") }
        if positionIds.count != n {
            positionIds = (0..<n).map { Int32($0 % seqLen) }
        } else if last?.seqLen != seqLen {
            for i in 0..<n { positionIds[i] = Int32(i % seqLen) }
        }
        let selection = outputRows ?? (firstTokenOnly ? .firstToken(batch: batch) : nil)
        let lastRun = lastComputedLayer
        if selection != nil && lastRun == nil {
            throw ModelError.invalidArgument("BertModel: selected output rows need a layer to compute them (every layer is skipped)")
        }
        last = inference ? nil : (batch, seqLen, selection?.perItem)
        let embeddingsMark = Profiler.mark("embeddings forward")
        // s = word + position (+ type), summed in s; the lookups need no memory of their own.
        let s = Tensor.ensure(sum, [batch, seqLen, c]); sum = s
        let lookup = workspace.tensor("embeddings.lookup", [batch, seqLen, c])
        _ = try wordEmbeddings.forward(inputIds, shape: [batch, seqLen], into: s)
        let p = try positionEmbeddings.forward(positionIds, shape: [batch, seqLen], into: lookup)
        Kernels.add(s.data, p.data, s.data, n * c)
        if let typeEmb = tokenTypeEmbeddings {
            let types: [Int32]
            if let tokenTypeIds { types = tokenTypeIds } else {
                if zeroTypes.count != n { zeroTypes = [Int32](repeating: 0, count: n) }
                types = zeroTypes
            }
            let t = try typeEmb.forward(types, shape: [batch, seqLen], into: lookup)
            Kernels.add(s.data, t.data, s.data, n * c)
        } else if let tokenTypeIds, tokenTypeIds.contains(where: { $0 != 0 }) {
            throw ModelError.invalidBatch("token type ids given to a model without segment embeddings")
        }
        var h = inference ? try embeddingNorm.infer(s, into: s)
                          : embeddingDropout.forwardInPlace(try embeddingNorm.forward(s), training: training)
        let maskTensor = keyPaddingMask(attentionMask, batch: batch, seqLen: seqLen, buffer: &mask)
        Profiler.end(embeddingsMark)
        for (i, layer) in layers.enumerated() where !skippedLayers.contains(i) {
            h = try Profiler.region("layer \(i) forward") {
                if inference {
                    if let selection, i == lastRun { return try layer.inferRows(h, selecting: selection, mask: maskTensor) }
                    return try layer.infer(h, mask: maskTensor)
                }
                if let selection, i == lastRun {
                    return try layer.forwardRows(h, selecting: selection, mask: maskTensor, training: training)
                }
                return try layer.forward(h, mask: maskTensor, training: training)
            }
        }
        return h
    }

    /// Backward of the last ``forward(inputIds:tokenTypeIds:attentionMask:batch:seqLen:training:)``:
    /// `dHidden` `[B, T, C]` (`[B, R, C]` after a forward with selected output rows); accumulates
    /// every encoder parameter gradient.
    public func backward(_ dHidden: Tensor) throws {
        guard let last, dHidden.count == last.batch * (last.rowsPerItem ?? last.seqLen) * config.hidden else {
            throw ModelError.invalidArgument("BertModel.backward: gradient \(dHidden.shape) does not match the last forward")
        }
        var d = dHidden
        for (i, layer) in layers.enumerated().reversed() {
            if !skippedLayers.contains(i) && i + 1 >= frozenBottomStages {
                d = try Profiler.region("layer \(i) backward") { try layer.backward(d) }
            }
            store.finishedGradients(layerRanges[i])   // data-parallel: this block's sum may start
        }
        guard frozenBottomStages == 0 else { return }   // frozen embeddings
        let embeddingsMark = Profiler.mark("embeddings backward")
        defer { Profiler.end(embeddingsMark) }
        // The embedding dropout's gradient takes the blocks' other ping-pong buffer, the
        // LayerNorm's the (forward-only) lookup buffer.
        let shape = d.shape
        let dd = embeddingDropout.backward(d, into: workspace.alternate(Workspace.blockGradient, shape, avoiding: d))
        let de = try embeddingNorm.backward(dd, into: workspace.tensor("embeddings.lookup", shape))
        try wordEmbeddings.backward(de)
        try positionEmbeddings.backward(de)
        try tokenTypeEmbeddings?.backward(de)
    }

    /// The pooler output `tanh(W h[:, 0] + b)` `[B, C]` for hidden states `[B, T, C]`
    /// (nil without a pooler); its backward is ``pooledBackward(_:)``.
    public func pooled(_ hidden: Tensor) throws -> Tensor? {
        guard let pooler else { return nil }
        guard hidden.rank == 3, hidden.shape[2] == config.hidden else {
            throw ModelError.invalidArgument("pooled expects [B, T, \(config.hidden)], got \(hidden.shape)")
        }
        let b = hidden.shape[0], t = hidden.shape[1], c = config.hidden
        let cls = Tensor.ensure(clsRows, [b, c]); clsRows = cls
        for i in 0..<b { (cls.data + i * c).update(from: hidden.data + i * t * c, count: c) }
        pooledSeqLen = t
        return poolerActivation.forward(try pooler.forward(cls))
    }

    /// Backward of the last ``pooled(_:)``: `dPooled` `[B, C]` -> the gradient of the hidden
    /// states `[B, T, C]` (zero except at the `[CLS]` rows; owned by the model, valid until the
    /// next call); accumulates the pooler's parameter gradients.
    public func pooledBackward(_ dPooled: Tensor) throws -> Tensor {
        guard let pooler else { throw ModelError.invalidArgument("pooledBackward: the encoder has no pooler") }
        let c = config.hidden, t = pooledSeqLen
        guard t > 0, dPooled.count % c == 0 else {
            throw ModelError.invalidArgument("pooledBackward: gradient \(dPooled.shape) does not match the last pooled call")
        }
        let dCls = try pooler.backward(try poolerActivation.backward(dPooled))
        let b = dPooled.count / c
        let d = Tensor.ensure(pooledGradient, [b, t, c]); pooledGradient = d
        d.zero()
        for i in 0..<b { (d.data + i * t * c).update(from: dCls.data + i * c, count: c) }
        return d
    }
}

/// BERT with the masked-LM head of HuggingFace `BertForMaskedLM`:
/// `cls.predictions.transform.dense` (C -> C), erf GELU, `cls.predictions.transform.LayerNorm`,
/// then the decoder `h E^T + cls.predictions.bias` with `E` the word embeddings (tied).
public final class BertForMaskedLM: LanguageModel {
    public let config: ModelConfig
    public let store: ParameterStore
    public let rng: SharedRNG
    public let bert: BertModel
    public let transform: Linear
    public let transformNorm: LayerNorm
    public let decoder: Linear
    /// Run the head (dense + GELU + LayerNorm + tied decoder) only on rows whose label is not
    /// -100 (default true), and the encoder's last layer past its key and value projections only
    /// at those positions (``BertModel/forward(inputIds:tokenTypeIds:attentionMask:batch:seqLen:training:firstTokenOnly:outputRows:)``
    /// with ``maskedRows(labels:batch:seqLen:)``). Same loss and gradients up to rounding (dropout
    /// draws differ); the full head costs `B*T*C*V` multiply-adds, the full last layer computes
    /// every position where only the ~15% masked ones are read.
    public var maskedPositionsOnly = true
    private let gelu = GELU(.erf)
    private let head: LabelledRowsLoss
    private var state = BackwardState.none
    public var architecture: String { "BertForMaskedLM" }

    /// A freshly initialised model (store seeded by `seed`, dropout by `seed + 1`). As in
    /// HuggingFace's `BertForMaskedLM` there is no pooler, so the parameter layout depends on
    /// the configuration alone (a checkpoint's `pooler.*` tensors are ignored on load).
    public init(config: ModelConfig, seed: UInt64) throws {
        self.config = config
        let backbone = try BertModel.backbone(of: "BertForMaskedLM", config: config, seed: seed, pooler: false)
        (store, rng, bert) = (backbone.store, backbone.rng, backbone.bert)
        transform = try Linear(store, name: "cls.predictions.transform.dense", inFeatures: config.hidden, outFeatures: config.hidden)
        transformNorm = try LayerNorm(store, name: "cls.predictions.transform.LayerNorm", dim: config.hidden, eps: config.layerNormEps)
        decoder = try Linear(store, tiedWeight: bert.wordEmbeddings.weight, biasName: "cls.predictions.bias")
        head = try LabelledRowsLoss()
    }

    /// Names of the masked-LM head's own parameters (the decoder weight is the word embeddings).
    public static let headParameterNames = [
        "cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
        "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
        "cls.predictions.bias",
    ]

    /// Vocabulary logits `[N, V]` of hidden rows `[N, C]` (forward only; owned by the model).
    public func headLogits(_ hidden: Tensor) throws -> Tensor {
        state = .none
        return try decoder.forward(transformNorm.forward(gelu.forward(transform.forward(hidden))))
    }

    public func loss(_ batch: LMBatch, training: Bool) throws -> LMLoss {
        try validate(batch, config: config)
        state = .none
        let selected = maskedPositionsOnly && bert.lastComputedLayer != nil
            ? Self.maskedRows(labels: batch.labels, batch: batch.batch, seqLen: batch.seqLen) : nil
        let h = try bert.forward(inputIds: batch.inputIds, tokenTypeIds: batch.tokenTypeIds, attentionMask: batch.attentionMask,
                                 batch: batch.batch, seqLen: batch.seqLen, training: training, outputRows: selected?.rows)
        guard let l = try Profiler.region("MLM head + loss forward", {
            try head.forward(hidden: h, labels: selected?.labels ?? batch.labels, classes: config.vocabSize,
                             labelledRowsOnly: maskedPositionsOnly, head: headLogits)
        }) else {
            state = .nothingCounted
            return LMLoss(loss: 0, correct: 0, counted: 0)
        }
        state = .ready   // after headLogits, which resets it
        return l
    }

    /// The labelled (masked) positions of each item of a `[B, T]` label batch as a selection of
    /// `R` rows per item, `R` the most any item has, and their labels `[B * R]` (-100 where an
    /// item with fewer pads its list by repeating its last position, or position 0); nil when no
    /// position is labelled or every position is (nothing to leave out).
    static func maskedRows(labels: [Int32], batch: Int, seqLen: Int) -> (rows: RowSelection, labels: [Int32])? {
        var counts = [Int](repeating: 0, count: batch)
        for i in 0..<batch { for t in 0..<seqLen where labels[i * seqLen + t] != -100 { counts[i] += 1 } }
        let r = counts.max() ?? 0
        guard r > 0, r < seqLen else { return nil }
        var rows = [Int32](repeating: 0, count: batch * r), selectedLabels = [Int32](repeating: -100, count: batch * r)
        for i in 0..<batch {
            var j = 0
            for t in 0..<seqLen where labels[i * seqLen + t] != -100 {
                rows[i * r + j] = Int32(t); selectedLabels[i * r + j] = labels[i * seqLen + t]; j += 1
            }
            let pad = j > 0 ? rows[i * r + j - 1] : 0
            while j < r { rows[i * r + j] = pad; j += 1 }
        }
        return (RowSelection(rows: rows, perItem: r), selectedLabels)
    }

    public func backward(scale: Float) throws {
        guard try state.beginBackward() else { return }
        let dh = try Profiler.region("MLM head backward") {
            try head.backward(scale: scale) { [self] d in
                try transform.backward(gelu.backward(transformNorm.backward(decoder.backward(d))))
            }
        }
        try bert.backward(dh)
    }
}
