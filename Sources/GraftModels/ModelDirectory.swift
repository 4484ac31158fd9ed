import GraftSupport
import Foundation
import GraftEngine
import GraftTokenizers

/// A model directory: `config.json` (HuggingFace `BertConfig` / `GPT2Config` keys plus
/// `graft_kind`), `model.safetensors` (HuggingFace tensor names, F32, `format: pt`) and
/// `tokenizer.json`.
///
/// Loading also accepts HuggingFace directories: BERT (`BertModel` or `BertForMaskedLM`
/// checkpoints, names with or without the `bert.` prefix, tokenizer from `tokenizer.json` or
/// `vocab.txt`) and GPT-2 (names with or without `transformer.`, `Conv1D` weights transposed,
/// tokenizer from `tokenizer.json`, `vocab.json` + `merges.txt` or `encoder.json` + `vocab.bpe`).
/// A BERT checkpoint without the masked-LM head gets a freshly initialised head, reported in
/// ``Loaded/initialized``; its pooler (not part of `BertForMaskedLM`) is reported in
/// ``Loaded/ignored`` and is loaded only by ``openEncoder(_:)``.
public enum ModelDirectory {
    public static let configFile = "config.json"
    public static let weightsFile = "model.safetensors"
    public static let tokenizerFile = "tokenizer.json"

    /// A loaded model with what the load did besides copying tensors.
    public struct Loaded {
        public let model: LanguageModel
        public let tokenizer: Tokenizer
        /// Parameters that the checkpoint lacked and that keep their fresh initialisation.
        public let initialized: [String]
        /// Checkpoint tensors that were not used (buffers, tied copies, the NSP head).
        public let ignored: [String]
    }

    // MARK: Saving

    /// Writes `config.json`, `model.safetensors` and `tokenizer.json` into `dir` (created if
    /// needed). Each file is written to a temporary name and renamed into place.
    public static func save(_ model: LanguageModel, tokenizer: Tokenizer, to dir: String) throws {
        try checkTokenizer(tokenizer, fits: model.config, file: dir)
        try createDirectory(dir)
        try writeJSON(model.config.hfJSON(), to: path(dir, configFile))
        try writeWeights(model, to: path(dir, weightsFile), prefixed: false)
        do { try tokenizer.save(to: path(dir, tokenizerFile)) } catch {
            throw ModelError.io(file: path(dir, tokenizerFile), problem: "\(error)")
        }
    }

    /// Writes a HuggingFace-layout directory that `transformers` loads with `BertModel` /
    /// `BertForMaskedLM` (or `GPT2LMHeadModel`): `config.json` with `architectures`,
    /// `model.safetensors` (BERT: `bert.`-prefixed encoder and `cls.predictions.*`; GPT-2:
    /// `Conv1D` layout), `tokenizer.json`, `vocab.txt` (WordPiece) or `vocab.json` +
    /// `merges.txt` (BPE), `tokenizer_config.json` and `special_tokens_map.json`.
    public static func export(_ model: LanguageModel, tokenizer: Tokenizer, to dir: String) throws {
        try checkTokenizer(tokenizer, fits: model.config, file: dir)
        try createDirectory(dir)
        try writeJSON(model.config.hfJSON(), to: path(dir, configFile))
        try writeWeights(model, to: path(dir, weightsFile), prefixed: model.config.kind == .bert)
        do {
            try tokenizer.save(to: path(dir, tokenizerFile))
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
        var special: [(String, JSONValue)] = []
        var tokConfig: [(String, JSONValue)] = []
        switch model.config.kind {
        case .bert:
            for (key, tok) in [("unk_token", "[UNK]"), ("sep_token", "[SEP]"), ("pad_token", "[PAD]"), ("cls_token", "[CLS]"),
                               ("mask_token", "[MASK]")] where tokenizer.id(tok) != nil {
                special.append((key, .string(tok)))
            }
            let lower: Bool
            if case .some(.bert(let n)) = tokenizer.normalizer { lower = n.lowercase } else { lower = false }
            tokConfig = [("tokenizer_class", .string("BertTokenizer")), ("do_lower_case", .bool(lower))]
        case .gpt:
            if tokenizer.id("<|endoftext|>") != nil {
                for key in ["bos_token", "eos_token", "unk_token"] { special.append((key, .string("<|endoftext|>"))) }
            }
            tokConfig = [("tokenizer_class", .string("GPT2Tokenizer"))]
        }
        tokConfig.append(("model_max_length", .number(Double(model.config.maxPositions))))
        tokConfig += special
        try writeJSON(.object(tokConfig), to: path(dir, "tokenizer_config.json"))
        try writeJSON(.object(special), to: path(dir, "special_tokens_map.json"))
    }

    // MARK: Loading

    /// Loads a Graft or HuggingFace model directory.
    public static func load(_ dir: String) throws -> (LanguageModel, Tokenizer) {
        let l = try open(dir)
        return (l.model, l.tokenizer)
    }

    /// Reads `config.json` of a model directory.
    public static func config(_ dir: String) throws -> ModelConfig {
        let file = path(dir, configFile)
        guard FileManager.default.fileExists(atPath: file) else { throw ModelError.missingFile(file) }
        let json: JSONValue
        do { json = try JSONValue.parse(Tokenizer.readFile(file), path: file) } catch {
            throw ModelError.badConfig(file: file, problem: "\(error)")
        }
        return try ModelConfig(hfJSON: json, path: file)
    }

    /// Loads a model directory, reporting initialised and ignored tensors.
    public static func open(_ dir: String, seed: UInt64 = 0) throws -> Loaded {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw ModelError.missingFile(dir)
        }
        let config = try config(dir)
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
        let tokenizer = try loadTokenizer(dir, kind: config.kind)
        try checkTokenizer(tokenizer, fits: config, file: dir)
        switch config.kind {
        case .bert:
            let model = try BertForMaskedLM(config: config, seed: seed)
            let (initialized, ignored) = try loadBert(file, into: model.store, path: weightsPath)
            return Loaded(model: model, tokenizer: tokenizer, initialized: initialized, ignored: ignored)
        case .gpt:
            let model = try GPTForCausalLM(config: config, seed: seed)
            let ignored = try loadGPT(file, into: model.store, path: weightsPath)
            return Loaded(model: model, tokenizer: tokenizer, initialized: [], ignored: ignored)
        }
    }

    /// Loads only the BERT encoder of a directory (no masked-LM head), e.g. for embeddings.
    public static func openEncoder(_ dir: String) throws -> (BertModel, Tokenizer) {
        let config = try config(dir)
        guard config.kind == .bert else {
            throw ModelError.badConfig(file: path(dir, configFile), problem: "a BERT encoder is needed, this is a \(config.kind) model")
        }
        let weightsPath = path(dir, weightsFile)
        guard FileManager.default.fileExists(atPath: weightsPath) else { throw ModelError.missingFile(weightsPath) }
        let file: SafeTensors
        do { file = try SafeTensors(contentsOf: URL(fileURLWithPath: weightsPath)) } catch {
            throw ModelError.badWeights(file: weightsPath, problem: "\(error)")
        }
        let tokenizer = try loadTokenizer(dir, kind: .bert)
        try checkTokenizer(tokenizer, fits: config, file: dir)
        let names = Set(file.names.map { $0.hasPrefix("bert.") ? String($0.dropFirst(5)) : $0 })
        let encoder = try BertModel(config: config, seed: 0, pooler: names.contains("pooler.dense.weight"))
        _ = try loadBert(file, into: encoder.store, path: weightsPath)
        return (encoder, tokenizer)
    }

    /// BERT tensors: strips `bert.`, skips known buffers and tied copies, allows a missing
    /// MLM head (returned as initialised); anything else missing or unknown is an error.
    static func loadBert(_ file: SafeTensors, into store: ParameterStore, path: String) throws -> (initialized: [String], ignored: [String]) {
        let ignorable: (String) -> Bool = { n in
            n == "embeddings.position_ids" || n == "cls.predictions.decoder.weight" || n.hasPrefix("cls.seq_relationship.")
                || (n == "cls.predictions.decoder.bias" && file.names.contains { $0.hasSuffix("cls.predictions.bias") })
                || (n.hasPrefix("pooler.") && !store.contains(n)) || (n.hasPrefix("cls.") && !store.contains("cls.predictions.bias"))
        }
        let result: (missing: [String], unexpected: [String])
        do {
            result = try store.load(from: file, stripPrefix: "bert.", rename: { n in
                if n == "cls.predictions.decoder.bias" && store.contains("cls.predictions.bias")
                    && !file.names.contains(where: { $0.hasSuffix("cls.predictions.bias") }) { return "cls.predictions.bias" }
                return ignorable(n) ? nil : n
            })
        } catch { throw ModelError.badWeights(file: path, problem: "\(error)") }
        let unknown = result.unexpected.filter { n in !ignorable(n.hasPrefix("bert.") ? String(n.dropFirst(5)) : n) }
        if !unknown.isEmpty { throw ModelError.badWeights(file: path, problem: "unexpected tensors \(unknown.prefix(8))") }
        let head = Set(BertForMaskedLM.headParameterNames)
        let missingEncoder = result.missing.filter { !head.contains($0) }
        if !missingEncoder.isEmpty { throw ModelError.badWeights(file: path, problem: "missing tensors \(missingEncoder.prefix(8))") }
        return (result.missing, result.unexpected)
    }

    /// GPT-2 tensors: strips `transformer.`, transposes `Conv1D` weights, skips the attention
    /// mask buffers and the tied `lm_head.weight`.
    static func loadGPT(_ file: SafeTensors, into store: ParameterStore, path: String) throws -> [String] {
        let ignorable: (String) -> Bool = { n in
            n == "lm_head.weight" || n.hasSuffix(".attn.bias") || n.hasSuffix(".attn.masked_bias")
        }
        let result: (missing: [String], unexpected: [String])
        do {
            result = try store.load(from: file, stripPrefix: "transformer.", rename: { ignorable($0) ? nil : $0 },
                                    transposed: GPT2Block.isConv1DWeight)
        } catch { throw ModelError.badWeights(file: path, problem: "\(error)") }
        let unknown = result.unexpected.filter { n in !ignorable(n.hasPrefix("transformer.") ? String(n.dropFirst(12)) : n) }
        if !unknown.isEmpty { throw ModelError.badWeights(file: path, problem: "unexpected tensors \(unknown.prefix(8))") }
        if !result.missing.isEmpty { throw ModelError.badWeights(file: path, problem: "missing tensors \(result.missing.prefix(8))") }
        return result.unexpected
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
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw ModelError.io(file: dir, problem: "cannot create directory: \(error.localizedDescription)")
        }
    }

    static func writeJSON(_ json: JSONValue, to file: String) throws {
        try writeBytes(Array((json.serialized(pretty: true) + "\n").utf8), to: file)
    }

    /// Writes `bytes` with ``AtomicFile`` (temporary file, fsync, rename, directory fsync).
    static func writeBytes(_ bytes: [UInt8], to file: String) throws {
        do { try AtomicFile.write(bytes, to: file) } catch let error as SupportError {
            throw ModelError.io(file: file, problem: "\(error)")
        }
    }

    /// The model's parameters under HuggingFace names (`format: pt`). GPT `Conv1D` weights are
    /// written `[in, out]`; BERT encoder names get `bert.` when `prefixed`.
    static func writeWeights(_ model: LanguageModel, to file: String, prefixed: Bool) throws {
        let store = model.store
        var copies: [UnsafeMutablePointer<Float>] = []
        defer { for c in copies { c.deallocate() } }
        var entries: [SafeTensors.Entry] = []
        for p in store.parameters {
            let name = prefixed && !p.name.hasPrefix("cls.") ? "bert." + p.name : p.name
            if model.config.kind == .gpt && GPT2Block.isConv1DWeight(p.name) && p.shape.count == 2 {
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
