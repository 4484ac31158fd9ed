import GraftSupport
import GraftTokenizers

/// The two model families.
public enum ModelKind: String, Codable, Sendable, CaseIterable {
    /// BERT encoder with the masked-LM head.
    case bert
    /// GPT-2 style decoder with the causal-LM head.
    case gpt
}

/// Named sizes (the BERT-Tiny/Mini/Small shapes of Turc et al., for both kinds).
public enum ModelPreset: String, Codable, Sendable, CaseIterable {
    /// 2 layers × 128 (2 heads, FFN 512).
    case tiny
    /// 4 layers × 256 (4 heads, FFN 1024).
    case mini
    /// 4 layers × 512 (8 heads, FFN 2048).
    case small

    /// The configuration of this size: max positions 512, dropout 0.1; BERT pads with id 0.
    public func config(kind: ModelKind, vocabSize: Int) -> ModelConfig {
        let shape: (layers: Int, hidden: Int, heads: Int, ffn: Int)
        switch self {
        case .tiny: shape = (2, 128, 2, 512)
        case .mini: shape = (4, 256, 4, 1024)
        case .small: shape = (4, 512, 8, 2048)
        }
        return ModelConfig(kind: kind, vocabSize: vocabSize, hidden: shape.hidden, layers: shape.layers, heads: shape.heads,
                           ffn: shape.ffn, maxPositions: 512, padTokenId: kind == .bert ? 0 : nil)
    }
}

/// The shape and regularisation of a model. `Codable` (Graft's own JSON), and convertible to
/// and from HuggingFace `config.json` (``hfJSON()`` / ``init(hfJSON:path:)``).
public struct ModelConfig: Codable, Sendable, Equatable {
    public var kind: ModelKind
    /// Embedding rows (at least the tokenizer's vocabulary size).
    public var vocabSize: Int
    /// Model width `C`.
    public var hidden: Int
    /// Number of transformer blocks.
    public var layers: Int
    /// Attention heads (`hidden` must be a multiple).
    public var heads: Int
    /// Width of the feed-forward inner layer.
    public var ffn: Int
    /// Learned positions: the longest sequence (BERT default 512; GPT: the context length).
    public var maxPositions: Int
    /// Segment (token type) embeddings: BERT 2, GPT 0.
    public var typeVocabSize: Int
    /// Hidden/residual/embedding dropout and attention-probability dropout.
    public var dropout: Float, attentionDropout: Float
    /// LayerNorm epsilon: BERT 1e-12, GPT 1e-5.
    public var layerNormEps: Float
    /// The padding token (BERT `[PAD]` = 0); nil when the vocabulary has none.
    public var padTokenId: Int32?
    /// Class names of a classification head, in id order (`config.json`'s `id2label`,
    /// `label2id` and `num_labels`); nil for models without one.
    public var labels: [String]?
    /// How a BERT sequence classifier pools the sentence (nil: HuggingFace's `[CLS]` + pooler);
    /// written to `config.json` as the Graft-specific key `graft_pooling` (`"mean"`) for
    /// `BertForSequenceClassification` only, which transformers ignores.
    public var pooling: BertForSequenceClassification.Pooling?
    /// BERT attention heads removed per layer (HuggingFace `pruned_heads`: layer -> head indices
    /// of the unpruned layer); ``heads`` stays the unpruned count, as in transformers. nil: none.
    public var prunedHeads: [Int: [Int]]?
    /// The heads of a multi-task model (``BertMultiTaskModel``), in store order; written to
    /// `config.json` as the Graft-specific key `graft_heads` for that architecture only; nil otherwise.
    public var taskHeads: [BertMultiTaskModel.Head]?

    public init(kind: ModelKind, vocabSize: Int, hidden: Int, layers: Int, heads: Int, ffn: Int,
                maxPositions: Int = 512, typeVocabSize: Int? = nil, dropout: Float = 0.1, attentionDropout: Float = 0.1,
                layerNormEps: Float? = nil, padTokenId: Int32? = nil) {
        self.kind = kind
        self.vocabSize = vocabSize; self.hidden = hidden; self.layers = layers; self.heads = heads; self.ffn = ffn
        self.maxPositions = maxPositions
        self.typeVocabSize = typeVocabSize ?? (kind == .bert ? 2 : 0)
        self.dropout = dropout; self.attentionDropout = attentionDropout
        self.layerNormEps = layerNormEps ?? (kind == .bert ? 1e-12 : 1e-5)
        self.padTokenId = padTokenId
    }

    /// Names accepted by ``preset(_:kind:vocabSize:)``.
    public static let presetNames: [String] = ModelPreset.allCases.map(\.rawValue)

    /// The preset `name` (any case; see ``ModelPreset``), or nil for an unknown name.
    public static func preset(_ name: String, kind: ModelKind, vocabSize: Int) -> ModelConfig? {
        ModelPreset(rawValue: name.lowercased())?.config(kind: kind, vocabSize: vocabSize)
    }

    /// Checks that the sizes are usable; `file` names the source in the error.
    public func validate(file: String = "config") throws {
        func bad(_ p: String) -> ModelError { .badConfig(file: file, problem: p) }
        guard vocabSize > 0, hidden > 0, layers > 0, heads > 0, ffn > 0, maxPositions > 0 else {
            throw bad("sizes must be positive (vocab \(vocabSize), hidden \(hidden), layers \(layers), heads \(heads), ffn \(ffn), positions \(maxPositions))")
        }
        // Sane upper bounds, checked before anything is allocated: a config.json that asks for
        // more is damaged or hostile, and would otherwise trap or try to allocate terabytes.
        let bert = kind == .bert
        let bounds: [(key: String, value: Int, max: Int)] = [
            ("vocab_size", vocabSize, 1 << 24),
            (bert ? "hidden_size" : "n_embd", hidden, 1 << 16),
            (bert ? "num_hidden_layers" : "n_layer", layers, 1 << 10),
            (bert ? "num_attention_heads" : "n_head", heads, 1 << 12),
            (bert ? "intermediate_size" : "n_inner", ffn, 1 << 18),
            (bert ? "max_position_embeddings" : "n_positions", maxPositions, 1 << 20),
            ("type_vocab_size", typeVocabSize, 1 << 16),
        ]
        for b in bounds where b.value > b.max {
            throw bad("\(b.key) \(b.value) exceeds the largest supported value \(b.max)")
        }
        guard parameterCountEstimate <= ModelConfig.maxParameters else {
            throw bad("these sizes make about \(parameterCountEstimate) parameters, more than the \(ModelConfig.maxParameters) supported " +
                      "(vocab_size \(vocabSize), hidden \(hidden), layers \(layers), ffn \(ffn), positions \(maxPositions))")
        }
        guard hidden % heads == 0 else { throw bad("hidden size \(hidden) is not a multiple of \(heads) heads") }
        guard typeVocabSize >= 0 else { throw bad("type vocabulary size \(typeVocabSize) is negative") }
        guard dropout >= 0 && dropout < 1, attentionDropout >= 0 && attentionDropout < 1 else {
            throw bad("dropout \(dropout) / attention dropout \(attentionDropout) not in [0, 1)")
        }
        guard layerNormEps > 0 else { throw bad("layer norm epsilon \(layerNormEps) must be positive") }
        if let p = padTokenId, p < 0 || Int(p) >= vocabSize { throw bad("pad token id \(p) outside 0..<\(vocabSize)") }
        for (layer, pruned) in prunedHeads ?? [:] where !pruned.isEmpty {
            guard kind == .bert else { throw bad("pruned_heads: head pruning is supported for BERT only") }
            guard layer >= 0, layer < layers else { throw bad("pruned_heads: layer \(layer) outside 0..<\(layers)") }
            for h in pruned where h < 0 || h >= heads { throw bad("pruned_heads: head \(h) of layer \(layer) outside 0..<\(heads)") }
            guard Set(pruned).count == pruned.count else { throw bad("pruned_heads: layer \(layer) lists a head twice (\(pruned))") }
            guard pruned.count < heads else { throw bad("pruned_heads: all \(heads) heads of layer \(layer) are pruned (keep at least one)") }
        }
    }

    /// The heads layer `layer` keeps, in order (indices of the unpruned layer).
    public func keptHeads(layer: Int) -> [Int] {
        let pruned = Set(prunedHeads?[layer] ?? [])
        return (0..<heads).filter { !pruned.contains($0) }
    }

    /// The most parameters a model may have (2^32 floats: 16 GB of weights, as much again of
    /// gradients): a bound on what a config file can make Graft allocate.
    public static let maxParameters = 1 << 32

    /// About how many parameters these sizes make (embeddings, blocks, head); each size is
    /// bounded first, so this cannot overflow.
    public var parameterCountEstimate: Int {
        let embeddings = (vocabSize + maxPositions + typeVocabSize) * hidden
        let block = 4 * hidden * hidden + 2 * hidden * ffn + 9 * hidden + ffn
        return embeddings + layers * block + hidden * hidden + vocabSize
    }

    // MARK: HuggingFace config.json

    /// A Float as the JSON number its shortest decimal spells (1e-12, not 9.9999999600419720e-13).
    static func number(_ f: Float) -> JSONValue { .number(Double("\(f)") ?? Double(f)) }

    /// HuggingFace `config.json` content: `BertConfig` or `GPT2Config` keys, plus `graft_kind`;
    /// `architectures` names `architecture` (default: `BertForMaskedLM` / `GPT2LMHeadModel`).
    public func hfJSON(architecture: String? = nil) -> JSONValue {
        guard case .object(var members) = familyJSON(architecture: architecture) else {
            return familyJSON(architecture: architecture)
        }
        if let labels {
            members.append(("num_labels", .number(Double(labels.count))))
            members.append(("id2label", .object(labels.enumerated().map { (String($0.offset), .string($0.element)) })))
            members.append(("label2id", .object(labels.enumerated().map { ($0.element, .number(Double($0.offset))) })))
        }
        if let pruned = prunedHeads?.filter({ !$0.value.isEmpty }), !pruned.isEmpty {
            members.append(("pruned_heads", .object(pruned.keys.sorted().map { (String($0), .array(pruned[$0]!.sorted().map { .integer($0) })) })))
        }
        if pooling == .mean, architecture == "BertForSequenceClassification" {
            members.append(("graft_pooling", .string("mean")))
        }
        if let taskHeads, architecture == BertMultiTaskModel.architectureName {
            members.append(("graft_heads", .array(taskHeads.map(\.json))))
        }
        return .object(members)
    }

    private func familyJSON(architecture: String?) -> JSONValue {
        let architectures = JSONValue.array([.string(architecture ?? ModelRegistry.defaultArchitecture(for: kind))])
        switch kind {
        case .bert:
            return .object([
                ("architectures", architectures),
                ("model_type", .string("bert")),
                ("graft_kind", .string(kind.rawValue)),
                ("vocab_size", .number(Double(vocabSize))),
                ("hidden_size", .number(Double(hidden))),
                ("num_hidden_layers", .number(Double(layers))),
                ("num_attention_heads", .number(Double(heads))),
                ("intermediate_size", .number(Double(ffn))),
                ("hidden_act", .string("gelu")),
                ("hidden_dropout_prob", Self.number(dropout)),
                ("attention_probs_dropout_prob", Self.number(attentionDropout)),
                ("max_position_embeddings", .number(Double(maxPositions))),
                ("type_vocab_size", .number(Double(typeVocabSize))),
                ("initializer_range", .number(0.02)),
                ("layer_norm_eps", Self.number(layerNormEps)),
                ("pad_token_id", padTokenId.map { .number(Double($0)) } ?? .null),
                ("position_embedding_type", .string("absolute")),
                ("tie_word_embeddings", .bool(true)),
            ])
        case .gpt:
            return .object([
                ("architectures", architectures),
                ("model_type", .string("gpt2")),
                ("graft_kind", .string(kind.rawValue)),
                ("vocab_size", .number(Double(vocabSize))),
                ("n_embd", .number(Double(hidden))),
                ("n_layer", .number(Double(layers))),
                ("n_head", .number(Double(heads))),
                ("n_inner", .number(Double(ffn))),
                ("n_positions", .number(Double(maxPositions))),
                ("n_ctx", .number(Double(maxPositions))),
                ("activation_function", .string("gelu_new")),
                ("resid_pdrop", Self.number(dropout)),
                ("embd_pdrop", Self.number(dropout)),
                ("attn_pdrop", Self.number(attentionDropout)),
                ("layer_norm_epsilon", Self.number(layerNormEps)),
                ("initializer_range", .number(0.02)),
                ("pad_token_id", padTokenId.map { .number(Double($0)) } ?? .null),
                ("tie_word_embeddings", .bool(true)),
            ])
        }
    }

    /// Reads a HuggingFace (or Graft) `config.json` value. The kind comes from `graft_kind`,
    /// else `model_type` (`bert`, `gpt2`). Unsupported variants (another activation, relative
    /// position embeddings, untied GPT-2 heads) are errors naming `path`.
    public init(hfJSON json: JSONValue, path: String) throws {
        func bad(_ p: String) -> ModelError { .badConfig(file: path, problem: p) }
        guard json.object != nil else { throw bad("the top level is not a JSON object") }
        func int(_ key: String, default d: Int? = nil) throws -> Int {
            if let v = json[key], !v.isNull {
                guard let i = v.int else { throw bad("\"\(key)\" \(v.serialized()) is not an integer") }
                guard i >= 0, i <= 1 << 40 else { throw bad("\"\(key)\" \(i) is out of range") }
                return i
            }
            if let d { return d }
            throw bad("missing \"\(key)\"")
        }
        func float(_ key: String, default d: Float) throws -> Float {
            guard let v = json[key], !v.isNull else { return d }
            guard let x = v.double, x.isFinite else { throw bad("\"\(key)\" \(v.serialized()) is not a finite number") }
            return Float(x)
        }
        let kind: ModelKind
        if let g = json["graft_kind"]?.string {
            guard let k = ModelKind(rawValue: g) else { throw bad("unknown graft_kind \"\(g)\"") }
            kind = k
        } else if let t = json["model_type"]?.string {
            switch t {
            case "bert": kind = .bert
            case "gpt2": kind = .gpt
            default: throw bad("model_type \"\(t)\" is not supported (bert or gpt2)")
            }
        } else {
            throw bad("no \"model_type\" (bert or gpt2) or \"graft_kind\"")
        }
        let pad: Int32? = try json["pad_token_id"].flatMap { v in
            if v.isNull { return nil }
            guard let i = v.int, i >= 0, i <= Int(Int32.max) else { throw bad("\"pad_token_id\" \(v.serialized()) is not a token id") }
            return Int32(i)
        }
        switch kind {
        case .bert:
            if let act = json["hidden_act"]?.string, act != "gelu" {
                throw bad("hidden_act \"\(act)\" is not supported (Graft's BERT uses the erf GELU, \"gelu\")")
            }
            if let pe = json["position_embedding_type"]?.string, pe != "absolute" {
                throw bad("position_embedding_type \"\(pe)\" is not supported (absolute only)")
            }
            if json["tie_word_embeddings"]?.bool == false { throw bad("untied word embeddings are not supported") }
            self.init(kind: .bert, vocabSize: try int("vocab_size"), hidden: try int("hidden_size"),
                      layers: try int("num_hidden_layers"), heads: try int("num_attention_heads"),
                      ffn: try int("intermediate_size"), maxPositions: try int("max_position_embeddings", default: 512),
                      typeVocabSize: try int("type_vocab_size", default: 2),
                      dropout: try float("hidden_dropout_prob", default: 0.1),
                      attentionDropout: try float("attention_probs_dropout_prob", default: 0.1),
                      layerNormEps: try float("layer_norm_eps", default: 1e-12), padTokenId: pad)
        case .gpt:
            if let act = json["activation_function"]?.string, act != "gelu_new", act != "gelu_pytorch_tanh" {
                throw bad("activation_function \"\(act)\" is not supported (Graft's GPT uses the tanh GELU, \"gelu_new\")")
            }
            if json["tie_word_embeddings"]?.bool == false { throw bad("untied LM heads are not supported") }
            let hidden = try int("n_embd")
            self.init(kind: .gpt, vocabSize: try int("vocab_size", default: 50257), hidden: hidden,
                      layers: try int("n_layer"), heads: try int("n_head"), ffn: try int("n_inner", default: 4 * hidden),
                      maxPositions: try int("n_positions", default: 1024), typeVocabSize: 0,
                      dropout: try float("resid_pdrop", default: 0.1), attentionDropout: try float("attn_pdrop", default: 0.1),
                      layerNormEps: try float("layer_norm_epsilon", default: 1e-5), padTokenId: pad)
        }
        if let map = json["id2label"], !map.isNull {
            guard let members = map.object, members.count <= 1 << 20 else { throw bad("\"id2label\" is not an object of at most 2^20 labels") }
            var names = [String?](repeating: nil, count: members.count)
            for (key, value) in members {
                guard let i = Int(key), i >= 0, i < members.count, names[i] == nil, let name = value.string else {
                    throw bad("\"id2label\" must map each id 0..<\(members.count) once to a string (key \"\(key)\")")
                }
                names[i] = name
            }
            // id2label is the authority, as in transformers (which warns about a contradicting
            // num_labels and keeps id2label; label2id is not read for a model's classes, and
            // checkpoints whose label2id disagrees, e.g. from transformers 4.36's
            // run_classification.py, load there): label2id and num_labels are not consulted.
            labels = names.compactMap { $0 }
        }
        if let p = json["pruned_heads"], !p.isNull {
            guard let members = p.object else { throw bad("\"pruned_heads\" is not an object of layer -> head list") }
            var pruned: [Int: [Int]] = [:]
            for (key, value) in members {
                guard let layer = Int(key), let list = value.array, list.count <= 1 << 12 else {
                    throw bad("\"pruned_heads\": \"\(key)\" must map a layer number to a list of head numbers")
                }
                pruned[layer, default: []] += try list.map { v in
                    guard let h = v.int else { throw bad("\"pruned_heads\": layer \(key) has \(v.serialized()), not a head number") }
                    return h
                }
            }
            prunedHeads = pruned.isEmpty ? nil : pruned
        }
        if let p = json["graft_pooling"], !p.isNull {
            switch p.string {
            case "mean": pooling = .mean
            case "cls", "pooler": pooling = .pooler
            default: throw bad("\"graft_pooling\" \(p.serialized()) is not \"cls\" or \"mean\"")
            }
        }
        if let h = json["graft_heads"], !h.isNull {
            guard let items = h.array, !items.isEmpty else { throw bad("\"graft_heads\" is not a non-empty list of heads") }
            let taskHeads = try items.enumerated().map { try BertMultiTaskModel.Head(json: $0.element, index: $0.offset, file: path) }
            try BertMultiTaskModel.validate(taskHeads, file: path)
            self.taskHeads = taskHeads
        }
        try validate(file: path)
    }
}
