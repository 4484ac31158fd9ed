import ArgumentParser
import Foundation
import GraftSupport
import GraftModels
import GraftTasks
import GraftTokenizers

/// Opens a model directory or exits with a readable message.
func openModel(_ dir: String, as architecture: String? = nil) throws -> ModelDirectory.Loaded {
    do { return try ModelDirectory.open(dir, as: architecture) } catch let e as ModelError { throw CLIError("\(e)") }
}

/// Writes a model directory to `out` through `write`, which fills a fresh temporary directory
/// beside it: only when that succeeded are the files an earlier model left in `out` removed
/// (Graft's and transformers' model files and task specs, unless `out` is `source` itself) and
/// the new files moved in. So a refused export leaves `out` as it was, and no earlier model's
/// file stays beside the new one (a GPT export's vocab.json beside a BERT's vocab.txt, an old
/// graft-task.toml beside a model of another task). Other files in `out` are kept.
func writeModelDirectory(_ out: String, source: String, _ write: (String) throws -> Void) throws {
    let fm = FileManager.default
    let url = URL(fileURLWithPath: out).standardized
    let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())").path
    // The parent first: the temporary directory is made in it (a parent that is a regular file
    // is then reported for `out`, not for the temporary directory's name).
    func createDirectory(_ path: String) throws {
        do { try createDirectories(atPath: path) } catch SupportError.io(_, _, let reason) {
            throw CLIError("\(out): cannot create the directory: \(reason)")
        }
    }
    try createDirectory(url.deletingLastPathComponent().path)
    try? fm.removeItem(atPath: tmp)
    defer { try? fm.removeItem(atPath: tmp) }
    try write(tmp)
    func fail(_ what: String, _ error: any Error) -> CLIError { CLIError("\(out): cannot \(what): \((error as NSError).localizedDescription)") }
    try createDirectory(out)
    if url != URL(fileURLWithPath: source).standardized, let names = try? fm.contentsOfDirectory(atPath: out) {
        let modelFiles: Set<String> = [ModelDirectory.configFile, ModelDirectory.weightsFile, ModelDirectory.tokenizerFile, "vocab.txt",
                                       "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
                                       SentenceEmbedder.configFile]
        for name in names where modelFiles.contains(name) || name.hasPrefix("graft-task") {
            do { try fm.removeItem(atPath: url.appendingPathComponent(name).path) } catch { throw fail("replace the earlier model's \(name)", error) }
        }
    }
    for name in try fm.contentsOfDirectory(atPath: tmp) {
        guard rename(URL(fileURLWithPath: tmp).appendingPathComponent(name).path, url.appendingPathComponent(name).path) == 0 else {
            throw CLIError("\(out)/\(name): cannot move into place: \(String(cString: strerror(errno)))")
        }
    }
    try AtomicFile.syncDirectory(url.path)
}

/// Copies task spec files from the model directory `model` into `out` (each `from` name there
/// written as `to`, atomically), skipping those it lacks; nothing when `out` is `model` itself.
func copyTaskSpecs(_ names: [(from: String, to: String)], from model: String, to out: String) throws {
    guard URL(fileURLWithPath: model).standardized != URL(fileURLWithPath: out).standardized else { return }
    for (from, to) in names {
        guard let data = FileManager.default.contents(atPath: URL(fileURLWithPath: model).appendingPathComponent(from).path) else { continue }
        try AtomicFile.write([UInt8](data), to: URL(fileURLWithPath: out).appendingPathComponent(to).path)
    }
}

func describe(_ c: ModelConfig, parameters: Int) -> String {
    let millions = String(format: "%.1fM", Double(parameters) / 1e6)
    return "\(c.kind.rawValue): \(c.layers) layers, hidden \(c.hidden), \(c.heads) heads, FFN \(c.ffn), vocabulary \(c.vocabSize), \(c.maxPositions) positions, \(millions) parameters"
}

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a HuggingFace BERT or GPT-2 directory as a Graft model directory.",
        discussion: """
        SRC holds config.json, model.safetensors and a tokenizer (tokenizer.json or vocab.txt; GPT-2: tokenizer.json or \
        vocab.json + merges.txt). Tensor names with a bert./transformer. prefix are accepted. The model keeps the \
        architecture config.json names (a BertModel encoder such as all-MiniLM-L6-v2 stays an encoder, with its pooler); \
        --as loads it into another architecture of the family, e.g. --as BertForMaskedLM gives an encoder a freshly \
        initialised masked-LM head (reported). DIR then works as --model DIR everywhere. A transformers task head \
        saved with save_pretrained (BertFor{Sequence,Token}Classification, BertForQuestionAnswering, \
        GPT2For{Sequence,Token}Classification) imports as it is; graft evaluate/classify/tag/ask then use it, its task \
        taken from the architecture and id2label (or --task SPEC).
        """
    )

    @Argument(help: "The HuggingFace model directory.")
    var source: String

    @Option(help: "Output directory (config.json, model.safetensors, tokenizer.json).")
    var out: String

    @Option(name: .customLong("as"), help: ArgumentHelp("Load into this architecture instead of the one config.json names.",
                                                        valueName: "architecture"))
    var architecture: String?

    func validate() throws {
        if let architecture, ModelRegistry.architecture(named: architecture) == nil {
            throw ValidationError("unknown architecture \(architecture) (known: \(ModelRegistry.names.joined(separator: ", ")))")
        }
    }

    func run() throws {
        let loaded = try openModel(source, as: architecture)
        // Saved, fresh weights would pass for trained ones: a model whose own checkpoint lacks some
        // is imported only when --as asks for that class (e.g. a fresh masked-LM head).
        if architecture == nil && !loaded.initialized.isEmpty {
            throw CLIError("\(source): the checkpoint lacks \(loaded.initialized.count) parameters of its \(loaded.architecture.name) (\(loaded.initializedSummary)); import the encoder alone with --as BertModel (or name the class to build with fresh weights with --as)")
        }
        do {
            // sentence-transformers' max_seq_length travels with the model (graft embed truncates
            // all-MiniLM-L6-v2 at its 256, not at the 128 its tokenizer.json holds).
            // (Read, and so checked, first: nil when `source` has none, or is not a directory.)
            let sentenceConfig = try SentenceEmbedder.maxSequenceLength(in: source) != nil ? source + "/" + SentenceEmbedder.configFile : nil
            try writeModelDirectory(out, source: source) {
                try ModelDirectory.save(loaded.model, tokenizer: loaded.tokenizer, to: $0)
                if let sentenceConfig, let data = FileManager.default.contents(atPath: sentenceConfig) {
                    try ModelDirectory.writeBytes([UInt8](data), to: $0 + "/" + SentenceEmbedder.configFile)
                }
            }
        } catch let e as ModelError {
            throw CLIError("\(e)")
        }
        print("imported \(loaded.architecture.name) \(describe(loaded.model.config, parameters: loaded.model.store.parameters.reduce(0) { $0 + $1.count })) -> \(out)")
        if !loaded.initialized.isEmpty {
            printError("freshly initialised (not in the checkpoint; train them before predicting): \(loaded.initialized.joined(separator: ", "))")
        }
        if !loaded.ignored.isEmpty { print("ignored tensors: \(loaded.ignored.joined(separator: ", "))") }
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a Graft model as a HuggingFace directory (transformers loads it).",
        discussion: """
        BERT: config.json (BertConfig keys, architectures: the model's, e.g. BertForMaskedLM), model.safetensors \
        (a head model's encoder bert.-prefixed, its head, e.g. cls.predictions, as is), vocab.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json. \
        GPT: GPT2Config keys, GPT2LMHeadModel names (Conv1D layout), vocab.json + merges.txt.
        """
    )

    @Option(help: "The Graft model directory.")
    var model: String

    @Option(help: "Output directory.")
    var out: String

    @Option(help: "A multi-task model's head to export as its single-task class (BertForSequenceClassification, …), with its task spec as graft-task.toml.")
    var head: String?

    func run() throws {
        let loaded = try openModel(model)
        var exported = loaded.model
        if let head {
            guard let multi = loaded.model as? BertMultiTaskModel else {
                throw CLIError("\(model) holds a \(loaded.architecture.name), not a multi-task model: --head applies to those")
            }
            do { exported = try multi.extractHead(named: head) } catch let e as ModelError { throw CLIError("\(model): \(e)") }
        }
        do {
            try writeModelDirectory(out, source: model) { try ModelDirectory.export(exported, tokenizer: loaded.tokenizer, to: $0) }
        } catch let e as ModelError {
            throw CLIError("\(e)")
        }
        // The task spec goes along (transformers ignores it; Graft's commands window and decode by
        // it): a single-task model's own, or the exported head's, where a single-task directory keeps it.
        let specs = head.map { zip(multiTaskSpecFileNames(head: $0), taskSpecFileNames).map { (from: $0, to: $1) } }
            ?? taskSpecFileNames.map { (from: $0, to: $0) }
        try copyTaskSpecs(specs, from: model, to: out)
        print("exported \(describe(exported.config, parameters: exported.store.parameters.reduce(0) { $0 + $1.count })) -> \(out)")
    }
}

struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Sentence embeddings: mean-pooled, L2-normalised last hidden states of a BERT model.",
        discussion: """
        Reads one sentence per line (split on \\n only) from the files, or standard input. Prints one embedding per \
        line: values separated by spaces, or with --json one JSON array of floats. With --pairs, lines are taken two \
        at a time (1 and 2, 3 and 4, ...) and the cosine similarity of each pair is printed instead. A line longer \
        than the model takes (sentence-transformers' max_seq_length from sentence_bert_config.json, which graft \
        import keeps: 256 for all-MiniLM-L6-v2; else its tokenizer's truncation length, else its positions) is \
        embedded from its first tokens, as sentence-transformers does; standard error says how many were.
        """
    )

    @Option(help: "A Graft or HuggingFace BERT model directory.")
    var model: String

    @Flag(help: "Print each embedding as one JSON array of floats.")
    var json = false

    @Flag(help: "Print the cosine similarity of each pair of consecutive lines (1-2, 3-4, ...).")
    var pairs = false

    @Option(name: .customLong("batch-size"), help: "Sentences per forward pass.")
    var batchSize: Int = 32

    @Flag(help: "No progress line on standard error.")
    var quiet = false

    @Argument(help: "Input files ('-' or none: standard input).")
    var files: [String] = []

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
    }

    func run() throws {
        let embedder: SentenceEmbedder
        do { embedder = try SentenceEmbedder(directory: model, batchSize: batchSize) } catch let e as ModelError {
            throw CLIError("\(e)")
        }
        let out = OutputBuffer()
        let progress = ProgressReporter("embed", unit: .items("sentences"), enabled: !quiet)
        var done = 0
        var pending: [String] = []
        var carry: [Float]?   // first member of a pair split across batches
        var truncated = 0     // lines longer than the model takes, embedded from their first tokens
        func flush() throws {
            guard !pending.isEmpty else { return }
            let vectors: [[Float]]
            do {
                let encodings = try embedder.encode(pending)
                truncated += encodings.reduce(0) { $0 + ($1.overflowing.isEmpty ? 0 : 1) }
                vectors = try embedder.embed(ids: encodings.map(\.ids), typeIds: encodings.map(\.typeIds))
            } catch {
                throw CLIError("\(error)")
            }
            for v in vectors {
                if pairs {
                    if let a = carry {
                        out.write(String(format: "%.6f\n", SentenceEmbedder.cosine(a, v)))
                        carry = nil
                    } else {
                        carry = v
                    }
                } else {
                    out.write(try format(v))
                }
            }
            done += pending.count
            pending.removeAll(keepingCapacity: true)
            progress.update(done)
        }
        for path in files.isEmpty ? ["-"] : files {
            let reader: LineReader
            do { reader = try LineReader.open(path) } catch { throw CLIError("\(error)") }
            do {
                while let line = try reader.nextString() {
                    pending.append(line)
                    if pending.count == 8 * batchSize { try flush() }   // sorted by length inside embed()
                }
            } catch let e as TokenizerError {
                try flush()
                try out.flush()
                throw CLIError("\(e)")
            }
        }
        try flush()
        try out.flush()
        progress.finish()
        if truncated > 0 {
            let limit = embedder.tokenizer.truncation?.maxLength ?? 0
            printError("note: \(truncated) of \(done) lines are longer than the model's \(limit) tokens: each was embedded from its first \(limit) tokens (as sentence-transformers does)")
        }
        if carry != nil { throw CLIError("--pairs needs an even number of lines; the last line (\(done)) has no partner") }
    }

    func format(_ v: [Float]) throws -> String {
        guard v.allSatisfy({ $0.isFinite }) else { throw CLIError("the model produced a non-finite embedding") }
        if json { return JSONValue.array(v.map(JSONValue.float)).serialized() + "\n" }
        return v.map { "\($0)" }.joined(separator: " ") + "\n"
    }
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text with a GPT model (greedy with --temperature 0, else sampling).",
        discussion: """
        Prints the prompt and its continuation as it is produced. Sampling draws from softmax(logits / temperature), \
        restricted to the --top-k most likely tokens and then to the smallest set reaching probability --top-p. \
        Generation stops after --max-tokens tokens or at <|endoftext|>. Seeded: the same --seed gives the same text.
        """
    )

    @Option(help: "A Graft (or HuggingFace GPT-2) model directory.")
    var model: String

    @Option(help: "Text to continue (default: start from <|endoftext|>).")
    var prompt: String = ""

    @Option(name: .customLong("max-tokens"), help: "Tokens to generate.")
    var maxTokens: Int = 100

    @Option(help: "Sampling temperature; 0 means greedy.")
    var temperature: Float = 1.0

    @Option(name: .customLong("top-k"), help: "Sample only among the K most likely tokens.")
    var topK: Int?

    @Option(name: .customLong("top-p"), help: "Nucleus sampling: the smallest set of tokens with probability >= P.")
    var topP: Float?

    @Option(help: "Random seed.")
    var seed: UInt64 = 0

    func validate() throws {
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must be >= 0") }
        guard temperature >= 0 && temperature.isFinite else { throw ValidationError("--temperature must be a finite number >= 0") }
        if let topK, topK < 1 { throw ValidationError("--top-k must be >= 1") }
        if let topP, !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1]") }
    }

    func run() throws {
        let loaded = try openModel(model)
        guard let gpt = loaded.model as? GPTForCausalLM else {
            throw CLIError("\(model) is a \(loaded.model.config.kind.rawValue) model; generate needs a GPT model")
        }
        let tok = loaded.tokenizer
        let endOfText = tok.id("<|endoftext|>").map { Int32($0) }
        var ids: [Int32]
        do { ids = try tok.encode(prompt, addSpecialTokens: false).ids } catch { throw CLIError("\(error)") }
        if ids.isEmpty {
            guard let eot = endOfText else { throw CLIError("give a non-empty --prompt (the tokenizer has no <|endoftext|> to start from)") }
            ids = [eot]
        }
        let positions = gpt.config.maxPositions
        if ids.count >= positions {
            printError("note: the prompt's \(ids.count) tokens fill the model's \(positions) positions: each new token is predicted from the last \(positions) tokens only")
        }
        var sampler: Sampler
        do { sampler = try Sampler(temperature: temperature, topK: topK, topP: topP, seed: seed) } catch { throw CLIError("\(error)") }
        let out = FileHandle.standardOutput
        out.write(Data(prompt.utf8))
        var generated: [Int32] = []
        var printed = ""
        func emit(final: Bool) {
            let text = tok.decode(generated)
            // Hold back a trailing partial character until its remaining bytes arrive.
            guard final || !text.hasSuffix("\u{FFFD}"), text.hasPrefix(printed) else {
                if final { out.write(Data(String(text.dropFirst(printed.count)).utf8)) }
                return
            }
            out.write(Data(String(text.dropFirst(printed.count)).utf8))
            printed = text
        }
        do {
            _ = try gpt.generate(prompt: ids, maxNewTokens: maxTokens, sampler: &sampler, stop: endOfText.map { [$0] } ?? []) { id in
                generated.append(id)
                emit(final: false)
            }
        } catch let e as ModelError { throw CLIError("\(e)") }
        emit(final: true)
        out.write(Data("\n".utf8))
    }
}
