import GraftSupport
import Foundation
import GraftEngine
import GraftTokenizers

/// A model directory: `config.json` (HuggingFace `BertConfig` / `GPT2Config` keys,
/// `architectures` and `graft_kind`), `model.safetensors` (HuggingFace tensor names, F32,
/// `format: pt`) and `tokenizer.json`.
///
/// The model class comes from `config.json`'s `architectures` through the ``ModelRegistry``
/// (default when absent: `BertForMaskedLM` / `GPT2LMHeadModel`); each registered architecture
/// says how its parameters map to checkpoint names (a `bert.`/`transformer.` prefix, ignorable
/// buffers and tied copies, optional fresh heads, aliases, transposition). Loading also accepts
/// HuggingFace directories: tokenizer from `tokenizer.json`, `vocab.txt`, `vocab.json` +
/// `merges.txt` or `encoder.json` + `vocab.bpe`. A checkpoint tensor that is neither a parameter
/// nor ignorable for the architecture is an error naming it, as is an unknown architecture.
/// ``open(_:as:seed:)`` can load a checkpoint into another architecture of the same family
/// (a `BertModel` encoder into `BertForMaskedLM` gets a fresh head, reported in
/// ``Loaded/initialized``; its pooler is reported in ``Loaded/ignored``).
public enum ModelDirectory {
    public static let configFile = "config.json"
    public static let weightsFile = "model.safetensors"
    public static let tokenizerFile = "tokenizer.json"

    /// A loaded model with what the load did besides copying tensors.
    public struct Loaded {
        public let model: any PretrainedModel
        public let tokenizer: Tokenizer
        /// Parameters that the checkpoint lacked and that keep their fresh initialisation.
        public let initialized: [String]
        /// ``initialized`` for a message: the first six names, then "…".
        public var initializedSummary: String {
            initialized.prefix(6).joined(separator: ", ") + (initialized.count > 6 ? ", …" : "")
        }
        /// Checkpoint tensors that were not used (buffers, tied copies, the NSP head).
        public let ignored: [String]
        /// The registry entry the model was built from.
        public let architecture: ModelArchitecture
    }

    // MARK: Saving

    /// Parameters whose names start with this prefix belong to training alone (the domain
    /// classifier of domain-adversarial fine-tuning): they live in the model's store, so the
    /// optimizer and checkpoints' training state carry them, but no model directory holds them
    /// (the model a directory describes has no such part; reopening it would refuse them).
    public static let trainingOnlyPrefix = "graft_training."

    /// Writes `config.json`, `model.safetensors` and `tokenizer.json` into `dir` (created if
    /// needed). Each file is written to a temporary name and renamed into place.
    /// `tokenizerFile`, when given, is written as `tokenizer.json` byte for byte instead of
    /// `tokenizer`'s own serialization: the exact file a model came with (continued pretraining
    /// with `graft pretrain --from` keeps the start model's `tokenizer.json` unchanged).
    public static func save(_ model: any PretrainedModel, tokenizer: Tokenizer, tokenizerFile: [UInt8]? = nil, to dir: String) throws {
        try writeModelFiles(model, tokenizer: tokenizer, tokenizerFile: tokenizerFile, to: dir, exported: false)
    }

    /// `config.json` (with the model's architecture), `model.safetensors` (`exported`: under
    /// HuggingFace's names for the architecture) and `tokenizer.json` (`tokenizerFile`'s bytes when given).
    private static func writeModelFiles(_ model: any PretrainedModel, tokenizer: Tokenizer, tokenizerFile bytes: [UInt8]? = nil,
                                        to dir: String, exported: Bool) throws {
        let architecture = try ModelRegistry.architecture(named: model.architecture, file: path(dir, configFile))
        try checkTokenizer(tokenizer, fits: model.config, file: dir)
        try createDirectory(dir)
        var config = model.config.hfJSON(architecture: architecture.name)
        if model.config.kind == .gpt, case .object(var fields) = config {
            // GPT2Config defaults both to 50256 (GPT-2's own <|endoftext|>), outside a smaller
            // vocabulary: transformers warned and its generate ran past the real end token.
            let ends = gptEndTokens(tokenizer)
            for (key, token) in [("bos_token_id", ends.bos), ("eos_token_id", ends.eos)] {
                fields.append((key, token.flatMap(tokenizer.id).map { .number(Double($0)) } ?? .null))
            }
            config = .object(fields)
        }
        try writeJSON(config, to: path(dir, configFile))
        try writeWeights(model, to: path(dir, weightsFile), mapping: architecture.weights, exported: exported)
        if let bytes { return try writeBytes(bytes, to: path(dir, tokenizerFile)) }
        do { try tokenizer.save(to: path(dir, tokenizerFile)) } catch {
            throw ModelError.io(file: path(dir, tokenizerFile), problem: "\(error)")
        }
    }

    /// Writes a HuggingFace-layout directory that `transformers` loads with the model's
    /// architecture class: `config.json` with `architectures`, `model.safetensors` (a head
    /// model's base parameters under its prefix, e.g. `bert.`, the head's unprefixed, as
    /// `cls.predictions.*`; GPT-2: `Conv1D` layout), `tokenizer.json`, `vocab.txt` (WordPiece) or
    /// `vocab.json` + `merges.txt` (BPE), `tokenizer_config.json` and `special_tokens_map.json`.
    /// A mean-pooled `BertForSequenceClassification` is refused: transformers' class always
    /// classifies `[CLS]` through the pooler, so it would compute other logits. So is a model with
    /// pruned attention heads (``ModelConfig/prunedHeads``): transformers 5 dropped `pruned_heads`
    /// support (checked with 5.24), so it would not load the narrower projections.
    public static func export(_ model: any PretrainedModel, tokenizer: Tokenizer, to dir: String) throws {
        if let m = model as? BertMultiTaskModel {
            throw ModelError.invalidArgument("\(dir): this is a multi-task model (\(BertMultiTaskModel.architectureName), heads \(m.heads.map(\.head.name).joined(separator: ", "))); transformers has no class with several heads on one encoder, so it is not exported as one (export one head as its single-task class: BertMultiTaskModel.extractHead, graft export --head NAME)")
        }
        if let m = model as? BertForSequenceClassification, m.pooling == .mean {
            throw ModelError.invalidArgument("\(dir): this BertForSequenceClassification pools by the mean of the last hidden states (graft_pooling \"mean\"); transformers' BertForSequenceClassification always classifies [CLS] through the pooler and would compute other logits, so it is not exported (fine-tune with pooling = \"cls\" to export, or keep using it with graft)")
        }
        if let pruned = model.config.prunedHeads, pruned.values.contains(where: { !$0.isEmpty }) {
            let list = pruned.keys.sorted().map { "\($0): \(pruned[$0]!.sorted())" }.joined(separator: ", ")
            throw ModelError.invalidArgument("\(dir): this model has pruned attention heads (pruned_heads {\(list)}); transformers 5 no longer prunes heads when it loads a model (its BERT layers always have num_attention_heads heads), so it could not load these weights: not exported (keep using it with graft, or export the model before graft surgery --drop-heads)")
        }
        try writeModelFiles(model, tokenizer: tokenizer, to: dir, exported: true)
        do {
            switch tokenizer.model {
            case .wordPiece:
                try tokenizer.saveVocabularyFiles(in: dir)
            case .bpe(let bpe):
                let vocab = JSONValue.object(bpe.vocab.tokens.enumerated().map { ($0.element, .number(Double($0.offset))) })
                try writeBytes(Array(vocab.serialized().utf8), to: path(dir, "vocab.json"))
                var merges = Array("#version: 0.2\n".utf8)
                for (a, b) in bpe.merges { merges += Array(a.utf8); merges.append(32); merges += Array(b.utf8); merges.append(10) }
                try writeBytes(merges, to: path(dir, "merges.txt"))
            }
        } catch let e as ModelError { throw e } catch {
            throw ModelError.io(file: dir, problem: "writing the tokenizer: \(error)")
        }
        // The tokenizer class follows the tokenizer, not the model: a GPT pretrained on a
        // WordPiece vocabulary declared GPT2Tokenizer, and AutoTokenizer then split "the king"
        // into letters. A WordPiece vocabulary is a BertTokenizer, a byte-level BPE one a
        // GPT2Tokenizer, anything else the generic fast tokenizer reading tokenizer.json.
        var special: [(String, JSONValue)] = []
        var tokConfig: [(String, JSONValue)] = []
        for (key, tok) in [("unk_token", "[UNK]"), ("sep_token", "[SEP]"), ("pad_token", "[PAD]"), ("cls_token", "[CLS]"),
                           ("mask_token", "[MASK]")] where tokenizer.id(tok) != nil {
            special.append((key, .string(tok)))
        }
        if model.config.kind == .gpt {
            // The tokens of config.json's bos_token_id / eos_token_id.
            let ends = gptEndTokens(tokenizer)
            if let bos = ends.bos { special.append(("bos_token", .string(bos))) }
            if let eos = ends.eos { special.append(("eos_token", .string(eos))) }
            if tokenizer.id("<|endoftext|>") != nil, !special.contains(where: { $0.0 == "unk_token" }) {
                special.append(("unk_token", .string("<|endoftext|>")))   // GPT-2's own
            }
        }
        switch tokenizer.model {
        case .wordPiece:
            let lower: Bool
            if case .some(.bert(let n)) = tokenizer.normalizer { lower = n.lowercase } else { lower = false }
            tokConfig = [("tokenizer_class", .string("BertTokenizer")), ("do_lower_case", .bool(lower))]
        case .bpe where tokenizer.preTokenizer?.isByteLevel ?? false:
            tokConfig = [("tokenizer_class", .string("GPT2Tokenizer"))]
        case .bpe:
            tokConfig = [("tokenizer_class", .string("PreTrainedTokenizerFast"))]
        }
        tokConfig.append(("model_max_length", .number(Double(model.config.maxPositions))))
        tokConfig += special
        try writeJSON(.object(tokConfig), to: path(dir, "tokenizer_config.json"))
        try writeJSON(.object(special), to: path(dir, "special_tokens_map.json"))
    }

    /// A GPT's begin and end tokens, as an export declares them: `<|endoftext|>` for both
    /// (GPT-2's), else `[CLS]` and `[SEP]` (a WordPiece vocabulary), each nil when absent.
    static func gptEndTokens(_ tokenizer: Tokenizer) -> (bos: String?, eos: String?) {
        if tokenizer.id("<|endoftext|>") != nil { return ("<|endoftext|>", "<|endoftext|>") }
        return (tokenizer.id("[CLS]") != nil ? "[CLS]" : nil, tokenizer.id("[SEP]") != nil ? "[SEP]" : nil)
    }

    // MARK: Loading

    /// Loads a Graft or HuggingFace language-model directory (masked or causal LM).
    public static func load(_ dir: String) throws -> (LanguageModel, Tokenizer) {
        let l = try open(dir)
        guard let lm = l.model as? LanguageModel else {
            throw ModelError.invalidArgument("\(dir) holds a \(l.architecture.name), not a language model (open it with ModelDirectory.open)")
        }
        return (lm, l.tokenizer)
    }

    /// Reads `config.json` of a model directory.
    public static func config(_ dir: String) throws -> ModelConfig {
        try readConfig(dir).config
    }

    /// The parsed `config.json` and the configuration it describes.
    static func readConfig(_ dir: String) throws -> (json: JSONValue, config: ModelConfig, file: String) {
        let file = path(dir, configFile)
        guard FileManager.default.fileExists(atPath: file) else { throw ModelError.missingFile(file) }
        let json: JSONValue
        do { json = try JSONValue.parse(Tokenizer.readFile(file), path: file) } catch {
            throw ModelError.badConfig(file: file, problem: "\(error)")
        }
        return (json, try ModelConfig(hfJSON: json, path: file), file)
    }

    /// The architecture `config.json` names (the first of `architectures`), else the default of its family.
    public static func architecture(_ dir: String) throws -> String {
        let (json, config, file) = try readConfig(dir)
        return try architectureName(json, config: config, file: file)
    }

    static func architectureName(_ json: JSONValue, config: ModelConfig, file: String) throws -> String {
        guard let list = json["architectures"], !list.isNull else { return ModelRegistry.defaultArchitecture(for: config.kind) }
        guard let names = list.array, let first = names.first?.string, names.allSatisfy({ $0.string != nil }) else {
            throw ModelError.badConfig(file: file, problem: "\"architectures\" is not a non-empty list of class names")
        }
        return first
    }

    /// Loads a model directory as the architecture its `config.json` names, or as `architecture`
    /// (any registered architecture of the same family: a `BertModel` checkpoint opened as
    /// `BertForMaskedLM` gets a fresh masked-LM head). Reports initialised and ignored tensors.
    /// `labels`, when given, replaces the configuration's classes: a base model opened as a
    /// classification head for fine-tuning gets a fresh head of that many outputs. `pooling`,
    /// when given, replaces the configuration's sequence-classification pooling.
    /// `randomWeights` builds the same model (same configuration, tokenizer and tensors) but
    /// keeps every parameter at its seeded random initialisation instead of loading the
    /// checkpoint: the from-scratch baseline that shows what pretraining contributes.
    /// `heads`, when given, replaces the configuration's multi-task heads (``BertMultiTaskModel``:
    /// a base model opened as `GraftBertMultiTask` gets those heads, fresh).
    public static func open(_ dir: String, as architecture: String? = nil, labels: [String]? = nil,
                            pooling: BertForSequenceClassification.Pooling? = nil, heads: [BertMultiTaskModel.Head]? = nil,
                            seed: UInt64 = 0, randomWeights: Bool = false) throws -> Loaded {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) else { throw ModelError.missingFile(dir) }
        guard isDir.boolValue else {
            throw ModelError.badConfig(file: dir, problem: "a file, not a model directory (one holding config.json and the weights)")
        }
        var (json, config, configPath) = try readConfig(dir)
        if let labels { config.labels = labels }
        if let pooling { config.pooling = pooling }
        if let heads { config.taskHeads = heads }
        let entry = try ModelRegistry.architecture(named: architecture ?? architectureName(json, config: config, file: configPath),
                                                   file: configPath)
        guard entry.family == config.kind else {
            if architecture != nil {   // the caller needs this class: say what the directory holds
                throw ModelError.badConfig(file: configPath, problem: "\(dir) holds a \(config.kind.rawValue) model; this needs a \(entry.family.rawValue) one (\(entry.name))")
            }
            throw ModelError.badConfig(file: configPath, problem: "architecture \(entry.name) is a \(entry.family.rawValue) model, the configuration describes \(config.kind.rawValue)")
        }
        let weightsPath = path(dir, weightsFile)
        guard FileManager.default.fileExists(atPath: weightsPath) else {
            if FileManager.default.fileExists(atPath: path(dir, "pytorch_model.bin")) {
                throw ModelError.badWeights(file: path(dir, "pytorch_model.bin"),
                                            problem: "PyTorch pickles are not read; convert to model.safetensors (safetensors.torch.save_file)")
            }
            throw ModelError.missingFile(weightsPath)
        }
        let file: SafeTensors
        do { file = try SafeTensors(contentsOf: URL(fileURLWithPath: weightsPath)) } catch {
            throw ModelError.badWeights(file: weightsPath, problem: "\(error)")
        }
        // The sizes config.json asks for against what the weights hold, before anything is
        // allocated: a damaged config (max_position_embeddings 1048576 beside a 512-position
        // model) would otherwise reserve gigabytes only to fail on the first shape. A head or
        // pruned heads account for the slack.
        // (In Double: a tensor of an unknown dtype is not checked against the file's length, so
        // its shape can claim near Int.max elements.)
        let held = file.names.reduce(0.0) { sum, name in sum + ((try? file.info(name).shape.reduce(1.0) { $0 * Double($1) }) ?? 0) }
        guard Double(config.parameterCountEstimate) <= 2 * held + Double(1 << 24) else {
            throw ModelError.badConfig(file: configPath, problem: "its sizes make about \(config.parameterCountEstimate) parameters, but \(weightsPath) holds \(held < 1e18 ? String(Int(held)) : String(held)) (vocab_size \(config.vocabSize), hidden \(config.hidden), layers \(config.layers), ffn \(config.ffn), positions \(config.maxPositions)): the configuration does not describe these weights")
        }
        let tokenizer = try loadTokenizer(dir, kind: config.kind)
        try checkTokenizer(tokenizer, fits: config, file: dir)
        let names = Set(file.names.map(entry.weights.stripped))
        if randomWeights {
            let model = try entry.build(.init(config: config, seed: seed, checkpointNames: names))
            return Loaded(model: model, tokenizer: tokenizer, initialized: model.store.parameters.map(\.name), ignored: [],
                          architecture: entry)
        }
        // Random initial values are drawn only for what the checkpoint does not hold (the values
        // drawing them all would give), and for what it named but the load did not fill.
        let loadedNames = names.union(names.compactMap { entry.weights.aliases[$0] })
        let model = try ParameterStore.withInitialValues(comingFrom: loadedNames) {
            try entry.build(.init(config: config, seed: seed, checkpointNames: names))
        }
        let (initialized, ignored) = try loadWeights(file, into: model.store, mapping: entry.weights, architecture: entry.name,
                                                     path: weightsPath)
        model.store.drawDeferredValues(of: Set(initialized))
        return Loaded(model: model, tokenizer: tokenizer, initialized: initialized, ignored: ignored, architecture: entry)
    }

    /// Loads only the BERT encoder of a directory (no masked-LM or task head; the pooler when
    /// the checkpoint has one), e.g. for embeddings.
    public static func openEncoder(_ dir: String) throws -> (BertModel, Tokenizer) {
        let l = try open(dir, as: "BertModel")
        guard let encoder = l.model as? BertModel else {
            throw ModelError.invalidArgument("the BertModel architecture did not build a BertModel")
        }
        return (encoder, l.tokenizer)
    }

    /// Copies the checkpoint's tensors into `store` by name following `mapping`: strips the
    /// prefix, resolves aliases, transposes, skips ignorable tensors. An unknown tensor, a
    /// missing parameter that is not optional, or a shape mismatch is an error naming the file
    /// and the tensors.
    static func loadWeights(_ file: SafeTensors, into store: ParameterStore, mapping m: WeightMapping, architecture: String,
                            path: String) throws -> (initialized: [String], ignored: [String]) {
        let fileNames = Set(file.names.map(m.stripped))
        let result: (missing: [String], unexpected: [String])
        do {
            result = try store.load(from: file, stripPrefix: m.prefix.isEmpty ? nil : m.prefix, rename: { n in
                if let target = m.aliases[n] { return store.contains(target) && !fileNames.contains(target) ? target : nil }
                return m.skips(n, in: store) ? nil : n
            }, transposed: m.transposed)
        } catch { throw ModelError.badWeights(file: path, problem: "\(error)") }
        let unknown = result.unexpected.filter { n in
            let s = m.stripped(n)
            return !m.skips(s, in: store) && m.aliases[s] == nil
        }
        if !unknown.isEmpty {
            throw ModelError.badWeights(file: path, problem: "\(unknown.count) unexpected tensor(s) for \(architecture): \(unknown.prefix(8).joined(separator: ", "))\(unknown.count > 8 ? ", …" : "")")
        }
        let missing = result.missing.filter { !m.optional.matches($0) }
        if !missing.isEmpty {
            throw ModelError.badWeights(file: path, problem: "\(missing.count) tensor(s) of \(architecture) missing: \(missing.prefix(8).joined(separator: ", "))\(missing.count > 8 ? ", …" : "")")
        }
        return (result.missing, result.unexpected)
    }

    static func loadTokenizer(_ dir: String, kind: ModelKind) throws -> Tokenizer {
        let fm = FileManager.default
        do {
            if fm.fileExists(atPath: path(dir, tokenizerFile)) { return try Tokenizer.fromJSONFile(path(dir, tokenizerFile)) }
            if fm.fileExists(atPath: path(dir, "vocab.json")) && fm.fileExists(atPath: path(dir, "merges.txt")) {
                return try Tokenizer.gpt2(encoderFile: path(dir, "vocab.json"), mergesFile: path(dir, "merges.txt"))
            }
            if fm.fileExists(atPath: path(dir, "vocab.txt")) || fm.fileExists(atPath: path(dir, "encoder.json")) {
                return try Tokenizer.load(from: dir)
            }
        } catch {
            throw ModelError.badTokenizer(file: dir, problem: "\(error)")
        }
        throw ModelError.missingFile(path(dir, kind == .bert ? "tokenizer.json (or vocab.txt)" : "tokenizer.json (or vocab.json + merges.txt)"))
    }

    static func checkTokenizer(_ t: Tokenizer, fits config: ModelConfig, file: String) throws {
        guard t.vocabSize <= config.vocabSize else {
            throw ModelError.badTokenizer(file: file, problem: "the tokenizer has \(t.vocabSize) tokens, the model's vocabulary \(config.vocabSize)")
        }
    }

    // MARK: Files

    static func path(_ dir: String, _ name: String) -> String { (dir as NSString).appendingPathComponent(name) }

    static func createDirectory(_ dir: String) throws {
        do { try createDirectories(atPath: dir) } catch SupportError.io(_, _, let reason) {
            throw ModelError.io(file: dir, problem: "cannot create the directory: \(reason)")
        }
    }

    static func writeJSON(_ json: JSONValue, to file: String) throws {
        try writeBytes(Array((json.serialized(pretty: true) + "\n").utf8), to: file)
    }

    /// Writes `bytes` with ``AtomicFile`` (temporary file, fsync, rename, directory fsync).
    public static func writeBytes(_ bytes: [UInt8], to file: String) throws {
        do { try AtomicFile.write(bytes, to: file) } catch let error as SupportError {
            throw ModelError.io(file: file, problem: "\(error)")
        }
    }

    /// The model's parameters under HuggingFace names (`format: pt`), transposed where the
    /// mapping says (GPT-2 `Conv1D` weights are written `[in, out]`); `exported` puts the base
    /// model's parameters under the mapping's export prefix.
    static func writeWeights(_ model: any PretrainedModel, to file: String, mapping: WeightMapping, exported: Bool) throws {
        let store = model.store
        var copies: [UnsafeMutablePointer<Float>] = []
        defer { for c in copies { c.deallocate() } }
        var entries: [SafeTensors.Entry] = []
        for p in store.parameters where !p.name.hasPrefix(trainingOnlyPrefix) {
            let name = exported ? mapping.exportedName(p.name) : p.name
            if mapping.transposed(p.name) && p.shape.count == 2 {
                let rows = p.shape[0], cols = p.shape[1], src = store.value(p)
                let t = UnsafeMutablePointer<Float>.allocate(capacity: p.count)
                copies.append(t)
                for r in 0..<rows { for c in 0..<cols { t[c * rows + r] = src[r * cols + c] } }
                entries.append(SafeTensors.Entry(name: name, shape: [cols, rows], data: UnsafePointer(t)))
            } else {
                entries.append(SafeTensors.Entry(name: name, shape: p.shape, data: UnsafePointer(store.value(p))))
            }
        }
        do {
            try SafeTensors.write(entries, metadata: ["format": "pt", "graft.kind": model.config.kind.rawValue],
                                  to: URL(fileURLWithPath: file))
        } catch { throw ModelError.io(file: file, problem: "\(error)") }
    }
}

extension Tokenizer {
    /// Reads a whole file as bytes.
    static func readFile(_ path: String) throws -> [UInt8] {
        guard let d = FileManager.default.contents(atPath: path) else { throw ModelError.io(file: path, problem: "cannot read file") }
        return [UInt8](d)
    }
}
