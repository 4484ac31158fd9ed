import ArgumentParser
import Foundation
import GraftSupport
import GraftCorpus
import GraftEngine
import GraftTokenizers

struct TokenizerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Train, inspect and run tokenizers (WordPiece and byte-level BPE).",
        subcommands: [TokenizerTrain.self, TokenizerEncode.self, TokenizerInfo.self]
    )
}

struct TokenizerTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a WordPiece or byte-level BPE tokenizer on text files.",
        discussion: """
        Each line of a text file is a document (lines split on \\n only); a .jsonl file gives one document per line \
        from --text-field. A .csv, .tsv, .conll or .json file is refused: import it with graft corpus add and train \
        with --db, which reads its texts only. Writes DIR/tokenizer.json plus vocab.txt (WordPiece) or encoder.json + \
        vocab.bpe (BPE).
        """
    )

    @Option(help: "The tokenizer model.")
    var kind: TokenizerKind = .wordPiece

    @Option(name: .customLong("vocab-size"), help: "Vocabulary size, special tokens and alphabet included.")
    var vocabSize: Int = 8000

    @Option(name: .customLong("min-frequency"), help: "Merge only pairs seen at least this often.")
    var minFrequency: Int = 2

    @Option(name: .customLong("limit-alphabet"), help: "Keep at most this many initial characters (WordPiece default 1000).")
    var limitAlphabet: Int?

    @Option(name: .customLong("special-tokens"), parsing: .upToNextOption,
            help: "Special tokens (default: [PAD] [UNK] [CLS] [SEP] [MASK] for WordPiece, <|endoftext|> for BPE).")
    var specialTokens: [String] = []

    @Flag(help: "WordPiece: keep case and accents (default: lowercase and strip accents).")
    var cased = false

    @Option(name: .customLong("text-field"), help: "The text field of .jsonl input.")
    var textField: String = "text"

    @Option(help: "Threads for counting and merging.")
    var threads: Int = 2

    @Option(help: "Output directory.")
    var out: String

    @Option(help: "Also train on the documents of this corpus database (see graft corpus add).")
    var db: String?

    @Argument(help: "Training files (.txt: a document per line; .jsonl or .ndjson: a document per line from --text-field; not .csv, .tsv, .conll or .json: see --db).")
    var files: [String] = []

    func validate() throws {
        guard vocabSize > 0 else { throw ValidationError("--vocab-size must be positive") }
        guard minFrequency >= 0 else { throw ValidationError("--min-frequency must not be negative") }
        if let limitAlphabet, limitAlphabet < 1 { throw ValidationError("--limit-alphabet must be at least 1") }
        guard (1...Engine.maxThreads).contains(threads) else { throw ValidationError("--threads must lie in 1...\(Engine.maxThreads)") }
        guard !files.isEmpty || db != nil else { throw ValidationError("give training files, or --db with a corpus database") }
        for path in files { try Self.refuseStructuredFile(path) }
    }

    /// Refuses a file of a format the corpus store parses (CSV, TSV, CoNLL, SQuAD JSON): read a
    /// line at a time as text, it would train the tokenizer on its ids, quotes, header, label
    /// columns or JSON syntax. Such files are imported with `graft corpus add` and trained on
    /// with `--db`, which reads their texts only.
    static func refuseStructuredFile(_ path: String) throws {
        let format = ImportFormat.infer(fromPath: path)
        let name: String
        switch format {
        case .csv: name = "CSV"
        case .tsv: name = "TSV"
        case .conll: name = "CoNLL"
        case .squad: name = "JSON (SQuAD)"
        case .text, .lines, .paragraphs, .jsonl: return
        }
        throw ValidationError("""
            \(path): a \(name) file is not plain text (tokenizer train reads .txt a document per line and .jsonl's \
            --text-field): import it with `graft corpus add \(path) --db DB` and train with `--db DB`
            """)
    }

    func run() throws {
        let start = Date()
        let trainer = TokenizerTrainer(kind: kind, vocabSize: vocabSize, minFrequency: minFrequency, limitAlphabet: limitAlphabet,
                                       specialTokens: specialTokens.isEmpty ? nil : specialTokens, lowercase: !cased,
                                       threads: threads)
        var counter = trainer.makeCounter()
        for path in files {
            guard FileManager.default.fileExists(atPath: path) else { throw CLIError("\(path): no such file") }
            let field = textField
            var transform: (@Sendable (String) throws -> String?)? = nil
            if ImportFormat.infer(fromPath: path) == .jsonl {   // .jsonl, .ndjson (any case), as corpus add reads them
                transform = { line in
                    if line.isEmpty { return nil }
                    let value: JSONValue
                    do { value = try JSONValue.parse(line) } catch TokenizerError.malformed(_, _, let reason) { throw CLIError(reason) }
                    guard let text = value[field]?.string else {
                        throw CLIError("no string field \"\(field)\"")
                    }
                    return text
                }
            }
            do {
                try counter.add(linesOfFile: URL(fileURLWithPath: path), transform: transform)
            } catch let e as TokenizerError {
                throw CLIError("\(e)")
            }
            progressLine("counted \(path)")
        }
        if let db {
            let store = try CorpusStore(path: db)
            do { try store.documentTexts().forEach { counter.add($0) } } catch { throw CLIError("\(db): \(error)") }
            progressLine("counted the documents of \(db)")
        }
        let counts = counter.counts()
        progressLine("\(counts.distinctWords) distinct words, \(counts.totalWords) words; training \(kind.rawValue) to \(vocabSize) tokens")
        let tokenizer = try trainer.finish(counts)
        do { try createDirectories(atPath: out) } catch SupportError.io(_, _, let reason) {
            throw CLIError("\(out): cannot create the directory: \(reason)")
        }
        try tokenizer.save(to: (out as NSString).appendingPathComponent("tokenizer.json"))
        try tokenizer.saveVocabularyFiles(in: out)
        let seconds = Date().timeIntervalSince(start)
        print(String(format: "trained %@ tokenizer: %d tokens in %.1f s -> %@", kind.rawValue, tokenizer.vocabSize, seconds, out))
    }
}

struct TokenizerEncode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Encode text, one input per line (split on \\n only), from files or standard input.",
        discussion: """
        With --json, prints one object per input line: {"ids": [...], "tokens": [...], "offsets": [[start, end], ...]}, \
        offsets in Unicode scalars of that line (special tokens get [0, 0]).
        """
    )

    @Option(name: .long, help: "A tokenizer.json file, or a directory holding tokenizer.json, vocab.txt, or encoder.json + vocab.bpe.")
    var tokenizer: String

    @Flag(name: .long, help: "Show each token's offsets in the line (Unicode scalars).")
    var offsets = false

    @Flag(name: .long, help: "Print one JSON object per line.")
    var json = false

    @Flag(name: .customLong("no-special-tokens"), help: "Do not add [CLS]/[SEP] or other template tokens.")
    var noSpecialTokens = false

    @Argument(help: "Input files ('-' or none: standard input).")
    var files: [String] = []

    func run() throws {
        let tok = try loadTokenizer(tokenizer)
        let out = OutputBuffer()
        let inputs = files.isEmpty ? ["-"] : files
        for path in inputs {
            let reader = try LineReader.open(path)
            var batch: [String] = []
            func flush() throws {
                let encodings = try tok.encodeBatch(batch, addSpecialTokens: !noSpecialTokens)
                for e in encodings { out.write(format(e)) }
                batch.removeAll(keepingCapacity: true)
            }
            do {
                while let line = try reader.nextString() {
                    batch.append(line)
                    if batch.count == 512 { try flush() }
                }
                try flush()
            } catch let e as TokenizerError {
                try flush()  // the lines before the bad one are still encoded
                try out.flush()
                throw CLIError("\(e)")
            }
        }
        try out.flush()
    }

    func format(_ e: Encoding) -> String {
        if json {
            var s = "{\"ids\": ["
            s += e.ids.map { String($0) }.joined(separator: ", ")
            s += "], \"tokens\": ["
            s += e.tokens.map { JSONValue.quoted($0) }.joined(separator: ", ")
            s += "], \"offsets\": ["
            s += e.offsets.map { "[\($0.lowerBound), \($0.upperBound)]" }.joined(separator: ", ")
            s += "]}\n"
            return s
        }
        if offsets {
            return zip(e.tokens, e.offsets).map { "\($0)[\($1.lowerBound),\($1.upperBound))" }.joined(separator: " ") + "\n"
        }
        return e.tokens.joined(separator: " ") + "\n"
    }
}

struct TokenizerInfo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Describe a tokenizer: model, vocabulary size, pipeline and special tokens."
    )

    @Argument(help: "A tokenizer.json file, or a directory holding one (or vocab.txt, or encoder.json + vocab.bpe).")
    var path: String

    @Flag(name: .long, help: "Print the description as JSON.")
    var json = false

    func run() throws {
        let tok = try loadTokenizer(path)
        let model: String
        var merges = 0
        switch tok.model {
        case .wordPiece: model = "WordPiece"
        case .bpe(let b): model = tok.preTokenizer?.isByteLevel == true ? "BPE (byte-level)" : "BPE"; merges = b.merges.count
        }
        let specials = tok.addedTokens.sorted { $0.id < $1.id }.map { "\($0.content)=\($0.id)" }
        if json {
            let j = JSONValue.object([
                ("model", .string(model)), ("vocab_size", .number(Double(tok.vocabSize))), ("merges", .number(Double(merges))),
                ("normalizer", .string(tok.normalizer.map { "\($0)" } ?? "none")),
                ("pre_tokenizer", .string(tok.preTokenizer.map { "\($0)" } ?? "none")),
                ("post_processor", .string(tok.postProcessor.map { "\($0)" } ?? "none")),
                ("added_tokens", .array(tok.addedTokens.sorted { $0.id < $1.id }.map { .object([("content", .string($0.content)), ("id", .number(Double($0.id))), ("special", .bool($0.special))]) })),
            ])
            print(j.serialized(pretty: true))
            return
        }
        print("model:          \(model)")
        print("vocabulary:     \(tok.vocabSize) tokens" + (merges > 0 ? ", \(merges) merges" : ""))
        print("normalizer:     \(tok.normalizer.map { "\($0)" } ?? "none")")
        print("pre-tokenizer:  \(tok.preTokenizer.map { "\($0)" } ?? "none")")
        print("post-processor: \(tok.postProcessor.map { "\($0)" } ?? "none")")
        print("added tokens:   \(specials.isEmpty ? "none" : specials.joined(separator: " "))")
        if let t = tok.truncation { print("truncation:     \(t.maxLength) tokens, \(t.strategy.rawValue), stride \(t.stride)") }
        if let p = tok.padding { print("padding:        \(p.length) with \(p.padToken)") }
    }
}
