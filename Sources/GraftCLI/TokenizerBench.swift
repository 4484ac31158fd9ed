import ArgumentParser
import Foundation
import GraftEngine
import GraftSupport
import GraftTokenizers

/// Reads the `text` field of every line of a JSON Lines file (or every line of a text file).
func readCorpusTexts(_ path: String, field: String = "text") throws -> [String] {
    let reader = try LineReader.open(path)
    var texts: [String] = []
    let isJSONL = path.hasSuffix(".jsonl")
    while let line = try reader.nextString() {
        if line.isEmpty { continue }
        if isJSONL {
            let value = try JSONValue.parse(line, path: "\(path):\(reader.linesRead)")
            guard let text = value[field]?.string else {
                throw CLIError("\(path):\(reader.linesRead): no string field \"\(field)\"")
            }
            texts.append(text)
        } else {
            texts.append(line)
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

    @Option(name: .customLong("train-corpus"), parsing: .upToNextOption,
            help: "Files to time training on (texts loaded first, as HF's train_from_iterator gets them).")
    var trainCorpus: [String] = []

    @Option(name: .customLong("vocab-sizes"), parsing: .upToNextOption, help: "Vocabulary sizes to train.")
    var vocabSizes: [Int] = [8000, 30000]

    @Flag(name: .customLong("skip-encode"), help: "Only time training.")
    var skipEncode = false

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard (1...1000).contains(repeats) else { throw ValidationError("--repeats must lie in 1...1000") }
        guard (1...Engine.maxThreads).contains(threads) else { throw ValidationError("--threads must lie in 1...\(Engine.maxThreads)") }
        guard vocabSizes.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--vocab-sizes must be positive") }
    }

    func run() throws {
        let texts = try readCorpusTexts(corpus)
        guard !texts.isEmpty else { throw CLIError("\(corpus): no texts to tokenize") }
        let megabytes = Double(texts.reduce(0) { $0 + $1.utf8.count }) / 1e6
        let tokenizers: [(String, Tokenizer)] = [
            ("wordpiece", try Tokenizer.bert(vocabFile: "\(vocab)/bert-base-uncased/vocab.txt")),
            ("bpe", try Tokenizer.gpt2(encoderFile: "\(vocab)/gpt2/encoder.json", mergesFile: "\(vocab)/gpt2/vocab.bpe")),
        ]
        var results: [(String, JSONValue)] = [("corpus_mb", .number(megabytes)), ("documents", .number(Double(texts.count)))]
        for (name, tok) in tokenizers where !skipEncode {
            // One at a time (`encode` per document), then batched on 1 thread and on `threads`,
            // interleaved: the batched pair gives the scaling of batch encoding with threads.
            var single: [Double] = [], batchedOne: [Double] = [], batched: [Double] = []
            var tokens = 0
            for _ in 0..<repeats {
                single.append(try measureSeconds {
                    tokens = 0
                    for t in texts { tokens += try tok.encode(t, addSpecialTokens: false).count }
                })
                batchedOne.append(try measureSeconds { _ = try tok.encodeBatch(texts, addSpecialTokens: false, threads: 1) })
                batched.append(try measureSeconds { _ = try tok.encodeBatch(texts, addSpecialTokens: false, threads: threads) })
            }
            let s = megabytes / median(single), b1 = megabytes / median(batchedOne), b = megabytes / median(batched)
            results.append(("\(name)_tokens", .number(Double(tokens))))
            results.append(("\(name)_mb_per_s_1thread", .number((s * 100).rounded() / 100)))
            results.append(("\(name)_mb_per_s_batch_1thread", .number((b1 * 100).rounded() / 100)))
            results.append(("\(name)_mb_per_s_\(threads)threads", .number((b * 100).rounded() / 100)))
            results.append(("\(name)_batch_scaling", .number((b / b1 * 1000).rounded() / 1000)))
            if !json {
                print(String(format: "%-10@ %8.2f MB/s 1 thread   batched: %8.2f MB/s 1 thread, %8.2f MB/s %d threads (%.2fx)   (%d tokens, %.2f MB)",
                             name as NSString, s, b1, b, threads, b / b1, tokens, megabytes))
            }
        }
        if !trainCorpus.isEmpty {
            var docs: [String] = []
            for path in trainCorpus { docs += try readCorpusTexts(path) }
            let trainMB = Double(docs.reduce(0) { $0 + $1.utf8.count }) / 1e6
            results.append(("train_corpus_mb", .number((trainMB * 100).rounded() / 100)))
            for kind in TokenizerKind.allCases {
                for size in vocabSizes {
                    for t in Set([1, threads]).sorted() {
                        var times: [Double] = []
                        for _ in 0..<repeats {
                            times.append(try measureSeconds {
                                _ = try TokenizerTrainer(kind: kind, vocabSize: size, threads: t).train(documents: docs)
                            })
                        }
                        let seconds = median(times)
                        results.append(("train_\(kind.rawValue)_\(size)_\(t)thread_s", .number((seconds * 1000).rounded() / 1000)))
                        if !json {
                            print(String(format: "train %-9@ %6d tokens %d thread(s): %7.2f s  (%.1f MB)", kind.rawValue as NSString, size, t, seconds, trainMB))
                        }
                    }
                }
            }
        }
        if json { print(JSONValue.object(results).serialized()) }
    }
}
