import GraftSupport
import GraftEngine

/// A GPT-2 style decoder with the causal-LM head, HuggingFace `GPT2LMHeadModel` tensor names:
/// `wte.weight`, `wpe.weight`, `h.N.*` (see ``GPT2Block``), `ln_f.*`; the LM head is
/// `h W_te^T` (tied, no bias).
///
/// `h0 = Dropout(wte[ids] + wpe[t])`, `layers` pre-LN blocks with causal attention and tanh
/// GELU, then `ln_f`. Loss: cross-entropy of the logits at every position against
/// ``LMBatch/labels`` (the next token; -100 ignored); the head runs only on labelled rows.
/// Initialisation as GPT-2: normal(0.02), residual projections normal(0.02 / sqrt(2 * layers)).
public final class GPTForCausalLM: LanguageModel {
    public let config: ModelConfig
    public let store: ParameterStore
    public let rng: SharedRNG
    public let wte: Embedding
    public let wpe: Embedding
    public let blocks: [GPT2Block]
    /// The float range of each block's parameters in ``store`` (reported finished in backward).
    let blockRanges: [Range<Int>]
    public let lnF: LayerNorm
    public let lmHead: Linear
    /// Scratch shared by the blocks (backward buffers, GELU outputs) and the embeddings.
    public let workspace = Workspace()
    /// Blocks the forward and backward pass over (default none): the original model computes
    /// what ``ModelSurgery/keepingLayers(_:of:seed:)`` without them computes, bit for bit.
    public var skippedLayers: Set<Int> = []
    /// How many bottom stages — the embeddings, then layers 0, 1, … — backward leaves out
    /// (default 0: none). 1 skips the embeddings, `1 + k` the embeddings and layers `0..<k`: what
    /// fine-tuning with frozen lower layers needs (their gradients stay as they were, zero after
    /// `zeroGrads`), at the cost of the trained layers alone. The others' gradients are the same bits.
    public var frozenBottomStages = 0
    private let embeddingDropout: Dropout
    private let head: LabelledRowsLoss
    private var positionIds: [Int32] = []
    private var sum: Tensor?
    private var mask: Tensor?
    private var state = BackwardState.none
    private var lastSeqLen = 0
    public var architecture: String { "GPT2LMHeadModel" }

    public init(config: ModelConfig, seed: UInt64) throws {
        guard config.kind == .gpt else { throw ModelError.invalidArgument("GPTForCausalLM needs a gpt config, got \(config.kind)") }
        try config.validate()
        self.config = config
        store = ParameterStore(seed: seed)
        rng = SharedRNG(seed: seed &+ 1)
        let c = config.hidden
        wte = try Embedding(store, name: "wte", vocabSize: config.vocabSize, dim: c)
        wpe = try Embedding(store, name: "wpe", vocabSize: config.maxPositions, dim: c)
        embeddingDropout = try Dropout(p: config.dropout, rng: rng)
        let store = store, rng = rng, ws = workspace
        var ranges: [Range<Int>] = []
        blocks = try (0..<config.layers).map {
            let start = store.count
            defer { ranges.append(start..<store.count) }
            return try GPT2Block(store, prefix: "h.\($0)", hidden: c, heads: config.heads, ffn: config.ffn,
                                 layerNormEps: config.layerNormEps, residualDropout: config.dropout,
                                 attentionDropout: config.attentionDropout, rng: rng, workspace: ws)
        }
        blockRanges = ranges
        lnF = try LayerNorm(store, name: "ln_f", dim: c, eps: config.layerNormEps)
        lmHead = try Linear(store, tiedWeight: wte.weight, biasName: nil)
        head = try LabelledRowsLoss()
        let residualScale = 1 / Float(2 * config.layers).squareRoot()
        for b in blocks {
            for w in [b.cProj.weight, b.proj.weight] { Kernels.scale(store.value(w), residualScale, w.count) }
        }
    }

    /// Token ids `[B * T]` -> final hidden states before `ln_f`, `[B, T, C]`. `inference` (not
    /// with `training`): nothing kept for a backward, the blocks through ``GPT2Block/infer(_:mask:)``
    /// in one set of workspace buffers (the result is workspace memory, valid until the next
    /// forward or backward).
    func hidden(_ ids: [Int32], attentionMask: [Int32]?, batch: Int, seqLen: Int, training: Bool,
                inference: Bool = false) throws -> Tensor {
        guard !(inference && training) else { throw ModelError.invalidArgument("GPTModel: an inference forward cannot be a training one") }
        state = .none
        let n = batch * seqLen, c = config.hidden
        guard batch > 0, seqLen > 0, ids.count == n else {
            throw ModelError.invalidBatch("\(ids.count) input ids for batch \(batch) x seqLen \(seqLen)")
        }
        guard seqLen <= config.maxPositions else {
            throw ModelError.invalidBatch("seqLen \(seqLen) exceeds the model's \(config.maxPositions) positions")
        }
        if positionIds.count != n || lastSeqLen != seqLen { positionIds = (0..<n).map { Int32($0 % seqLen) } }
        lastSeqLen = seqLen
        let embeddingsMark = Profiler.mark("embeddings forward")
        // h0 = dropout(wte + wpe), summed and dropped in s; the lookups need no memory of their own.
        let s = Tensor.ensure(sum, [batch, seqLen, c]); sum = s
        _ = try wte.forward(ids, shape: [batch, seqLen], into: s)
        let p = try wpe.forward(positionIds, shape: [batch, seqLen], into: workspace.tensor("embeddings.lookup", [batch, seqLen, c]))
        Kernels.add(s.data, p.data, s.data, n * c)
        var h = embeddingDropout.forwardInPlace(s, training: training)
        if let attentionMask, attentionMask.count != n {
            throw ModelError.invalidBatch("\(attentionMask.count) attention mask values for \(n) tokens")
        }
        let maskTensor = keyPaddingMask(attentionMask, batch: batch, seqLen: seqLen, buffer: &mask)
        Profiler.end(embeddingsMark)
        for (i, b) in blocks.enumerated() where !skippedLayers.contains(i) {
            h = try Profiler.region("layer \(i) forward") {
                inference ? try b.infer(h, mask: maskTensor) : try b.forward(h, mask: maskTensor, training: training)
            }
        }
        return h
    }

    /// Backward of ``hidden(_:attentionMask:batch:seqLen:training:)``: `d0` `[B, T, C]` is the
    /// gradient of the hidden states before `ln_f`; accumulates every decoder parameter gradient.
    func backwardHidden(_ d0: Tensor) throws {
        var d = d0
        for (i, b) in blocks.enumerated().reversed() {
            if !skippedLayers.contains(i) && i + 1 >= frozenBottomStages {
                d = try Profiler.region("layer \(i) backward") { try b.backward(d) }
            }
            store.finishedGradients(blockRanges[i])   // data-parallel: this block's sum may start
        }
        guard frozenBottomStages == 0 else { return }   // frozen embeddings
        let embeddingsMark = Profiler.mark("embeddings backward")
        defer { Profiler.end(embeddingsMark) }
        // The embedding dropout's gradient takes the blocks' other ping-pong buffer.
        let de = embeddingDropout.backward(d, into: workspace.alternate(Workspace.blockGradient, d.shape, avoiding: d))
        try wte.backward(de)
        try wpe.backward(de)
    }

    public func loss(_ batch: LMBatch, training: Bool) throws -> LMLoss {
        try validate(batch, config: config)
        if let t = batch.tokenTypeIds, t.contains(where: { $0 != 0 }) {
            throw ModelError.invalidBatch("token type ids given to a GPT model")
        }
        state = .none
        let h = try hidden(batch.inputIds, attentionMask: batch.attentionMask, batch: batch.batch, seqLen: batch.seqLen,
                           training: training)
        guard let l = try Profiler.region("LM head + loss forward", {
            try head.forward(hidden: h, labels: batch.labels, classes: config.vocabSize,
                             head: { [self] rows in try lmHead.forward(lnF.forward(rows)) })
        }) else {
            state = .nothingCounted
            return LMLoss(loss: 0, correct: 0, counted: 0)
        }
        state = .ready
        return l
    }

    public func backward(scale: Float) throws {
        guard try state.beginBackward() else { return }
        let dh = try Profiler.region("LM head backward") {
            try head.backward(scale: scale) { [self] d in try lnF.backward(lmHead.backward(d)) }
        }
        try backwardHidden(dh)
    }

    /// Logits `[B, T, V]` for every position (evaluation; owned by the model).
    public func logits(inputIds: [Int32], attentionMask: [Int32]? = nil, batch: Int, seqLen: Int) throws -> Tensor {
        let h = try hidden(inputIds, attentionMask: attentionMask, batch: batch, seqLen: seqLen, training: false, inference: true)
        return try lmHead.forward(lnF.forward(h)).reshaped([batch, seqLen, config.vocabSize])
    }

    /// Logits `[V]` for the token after `context` (the last ``ModelConfig/maxPositions`` ids are used).
    public func nextTokenLogits(_ context: [Int32]) throws -> [Float] {
        guard !context.isEmpty else { throw ModelError.invalidArgument("empty context") }
        let ctx = Array(context.suffix(config.maxPositions))
        let h = try hidden(ctx, attentionMask: nil, batch: 1, seqLen: ctx.count, training: false, inference: true)
        let lastRow = Rows.gather(h, rows: [ctx.count - 1], width: config.hidden, into: nil)
        return try lmHead.forward(lnF.forward(lastRow)).array
    }

    /// Generates up to `maxNewTokens` ids after `prompt`, stopping early at any id in `stop`.
    /// `onToken` sees each new id as it is produced. Returns the new ids (without the prompt).
    public func generate(prompt: [Int32], maxNewTokens: Int, sampler: inout Sampler, stop: Set<Int32> = [],
                         onToken: (Int32) throws -> Void = { _ in }) throws -> [Int32] {
        guard maxNewTokens >= 0 else { throw ModelError.invalidArgument("maxNewTokens \(maxNewTokens) < 0") }
        var context = prompt
        var out: [Int32] = []
        for _ in 0..<maxNewTokens {
            let next = try sampler.sample(try nextTokenLogits(context))
            out.append(next)
            try onToken(next)
            if stop.contains(next) { break }
            context.append(next)
        }
        return out
    }
}
