import ArgumentParser
import Foundation
import GraftTokenizers

/// Reads the `text` field of every line of a JSON Lines file (or every line of a text file).
func readCorpusTexts(_ path: String, field: String = "text") throws -> [String] {
    let reader = try LineReader(path: path)
    var texts: [String] = []
    let isJSONL = path.hasSuffix(".jsonl")
    while let bytes = try reader.nextBytes() {
        if bytes.isEmpty { continue }
        if isJSONL {
            let value = try JSONValue.parse(Array(bytes), path: "\(path):\(reader.lineNumber)")
            guard let text = value[field]?.string else {
                throw CLIError("\(path):\(reader.lineNumber): no string field \"\(field)\"")
            }
            texts.append(text)
        } else {
            texts.append(String(decoding: bytes, as: UTF8.self))
        }
    }
    return texts
}

/// Wall-clock seconds of `body`.
func measureSeconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

struct TokenizerBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizers",
        abstract: "Encode throughput (MB/s, 1 thread and batched) of WordPiece and byte-level BPE on a corpus."
    )

    @Option(help: "Corpus: JSON Lines with a text field, or plain text (one document per line).")
    var corpus: String = "../shared/data/corpora/wiki-vital-en.jsonl"

    @Option(help: "Directory of the repository's vocabularies.")
    var vocab: String = "vocab"

    @Option(help: "Repetitions; the median is reported.")
    var repeats: Int = 3

    @Option(help: "Threads for the batched run.")
    var threads: Int = 2

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        let texts = try readCorpusTexts(corpus)
        let megabytes = Double(texts.reduce(0) { $0 + $1.utf8.count }) / 1e6
        let tokenizers: [(String, Tokenizer)] = [
            ("wordpiece", try Tokenizer.bert(vocabFile: "\(vocab)/bert-base-uncased/vocab.txt")),
            ("bpe", try Tokenizer.gpt2(encoderFile: "\(vocab)/gpt2/encoder.json", mergesFile: "\(vocab)/gpt2/vocab.bpe")),
        ]
        var results: [(String, JSONValue)] = [("corpus_mb", .number(megabytes)), ("documents", .number(Double(texts.count)))]
        for (name, tok) in tokenizers {
            var single: [Double] = [], batched: [Double] = []
            var tokens = 0
            for _ in 0..<repeats {
                single.append(try measureSeconds {
                    tokens = 0
                    for t in texts { tokens += try tok.encode(t, addSpecialTokens: false).count }
                })
                batched.append(try measureSeconds { _ = try tok.encodeBatch(texts, addSpecialTokens: false, threads: threads) })
            }
            let s = megabytes / single.sorted()[repeats / 2], b = megabytes / batched.sorted()[repeats / 2]
            results.append(("\(name)_tokens", .number(Double(tokens))))
            results.append(("\(name)_mb_per_s_1thread", .number((s * 100).rounded() / 100)))
            results.append(("\(name)_mb_per_s_\(threads)threads", .number((b * 100).rounded() / 100)))
            if !json {
                print(String(format: "%-10@ %8.2f MB/s 1 thread   %8.2f MB/s %d threads   (%d tokens, %.2f MB)", name as NSString, s, b, threads, tokens, megabytes))
            }
        }
        if json { print(JSONValue.object(results).serialized()) }
    }
}
