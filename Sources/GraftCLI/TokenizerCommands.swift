import ArgumentParser
import Foundation
import GraftTokenizers

struct TokenizerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Train, inspect and run tokenizers (WordPiece and byte-level BPE).",
        subcommands: [TokenizerEncode.self, TokenizerInfo.self]
    )
}

/// Loads a tokenizer or exits with a readable message.
func loadTokenizer(_ path: String) throws -> Tokenizer {
    do {
        return try Tokenizer.load(from: path)
    } catch let e as TokenizerError {
        throw ValidationError("cannot load tokenizer: \(e)")
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
            let reader = try LineReader(path: path)
            var batch: [String] = []
            func flush() throws {
                let encodings = try tok.encodeBatch(batch, addSpecialTokens: !noSpecialTokens)
                for e in encodings { out.write(format(e)) }
                batch.removeAll(keepingCapacity: true)
            }
            do {
                while let bytes = try reader.nextBytes() {
                    batch.append(String(decoding: bytes, as: UTF8.self))
                    if batch.count == 512 { try flush() }
                }
                try flush()
            } catch let e as TokenizerError {
                try flush()  // the lines before the bad one are still encoded
                out.flush()
                throw CLIError("\(e)")
            }
        }
        out.flush()
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

/// An error the CLI reports as one line and a non-zero exit.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Buffered standard output (print() per line is slow for large outputs).
final class OutputBuffer {
    private var bytes: [UInt8] = []
    func write(_ s: String) {
        bytes.append(contentsOf: s.utf8)
        if bytes.count > 1 << 16 { flush() }
    }
    func flush() {
        guard !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(1, raw.baseAddress! + offset, raw.count - offset)
                if n <= 0 { break }
                offset += n
            }
        }
        bytes.removeAll(keepingCapacity: true)
    }
}
