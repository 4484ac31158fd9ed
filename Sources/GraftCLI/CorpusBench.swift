import ArgumentParser
import Foundation
import GraftSupport
import GraftCorpus

/// `graft bench corpus`: import throughput and packed-block streaming throughput.
///
/// Token ids come from a real tokenizer (`--tokenizer`, bert-base-uncased by default); the cache
/// build figure includes its encoding, the streaming figures read the cached blobs.
struct CorpusBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "corpus",
        abstract: "Benchmark corpus import (MB/s) and packed-block streaming (tokens/s).")

    @Flag(help: "Print the results as one JSON object.")
    var json = false

    @Option(name: .customLong("data-dir"), help: "Shared data folder (default: $GRAFT_DATA_DIR, else ../shared/data).")
    var dataDir: String?

    @Option(help: "Repetitions (medians are reported).")
    var repeats = 3

    @Option(help: "Tokenizer whose ids are cached and streamed (tokenizer.json or a directory).")
    var tokenizer: String = "vocab/bert-base-uncased"

    @Option(name: .customLong("block-length"), help: "Packed block length in tokens.")
    var blockLength = 512

    func validate() throws {
        guard (1...1000).contains(repeats) else { throw ValidationError("--repeats must lie in 1...1000") }
        guard blockLength >= 2 else { throw ValidationError("--block-length must be at least 2") }
    }

    struct Measure: Codable {
        var unit: String
        var runs: [Double]
        var median: Double
    }

    func run() throws {
        let tok = try loadTokenizer(tokenizer)
        let fingerprint = tokenizerFingerprint(tok)
        let separator = Int32(tok.id("[SEP]") ?? tok.id("<|endoftext|>") ?? 0)
        let dir = dataDir ?? ProcessInfo.processInfo.environment["GRAFT_DATA_DIR"] ?? "../shared/data"
        let inputs: [(key: String, file: String, format: ImportFormat)] = [
            ("import_lines_shakespeare", "corpora/shakespeare-gutenberg.txt", .lines),
            ("import_jsonl_wiki", "corpora/wiki-vital-en.jsonl", .jsonl),
            ("import_jsonl_news", "corpora/news-2017-en.jsonl", .jsonl),
        ]
        for input in inputs where !FileManager.default.fileExists(atPath: dir + "/" + input.file) {
            throw ValidationError("missing \(dir)/\(input.file) (set --data-dir or GRAFT_DATA_DIR)")
        }
        var results: [String: [Double]] = [:]
        var units: [String: String] = [:]
        var tokensTotal = 0
        for r in 0..<max(1, repeats) {
            let path = NSTemporaryDirectory() + "/graft-bench-corpus-\(getpid())-\(r).sqlite"
            // Best-effort cleanup of the benchmark's scratch database (the -wal/-shm files may not exist).
            defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
            let store = try CorpusStore(path: path)
            var jsonlBytes = 0, jsonlSeconds = 0.0
            for input in inputs {
                let cpuBefore = processCPUSeconds()
                let report = try store.importFile(dir + "/" + input.file, options: ImportOptions(format: input.format))
                let cpu = processCPUSeconds() - cpuBefore
                let mbps = Double(report.bytes) / 1e6 / report.seconds
                results[input.key, default: []].append(mbps)
                units[input.key] = "MB/s"
                // Throughput per CPU-second: less sensitive to other processes sharing the cores.
                results[input.key + "_per_cpu_s", default: []].append(Double(report.bytes) / 1e6 / cpu)
                units[input.key + "_per_cpu_s"] = "MB/CPU-s"
                if input.format == .jsonl { jsonlBytes += report.bytes; jsonlSeconds += report.seconds }
            }
            results["import_jsonl_all", default: []].append(Double(jsonlBytes) / 1e6 / jsonlSeconds)
            units["import_jsonl_all"] = "MB/s"

            // The other plain-text modes, each into a fresh store of its own.
            for (key, format) in [("import_paragraphs_shakespeare", ImportFormat.paragraphs), ("import_text_shakespeare", .text)] {
                let other = NSTemporaryDirectory() + "/graft-bench-corpus-\(getpid())-\(r)-\(format.rawValue).sqlite"
                // Best-effort cleanup of a scratch database (the -wal/-shm files may not exist).
                defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: other + suffix) } }
                let report = try CorpusStore(path: other).importFile(dir + "/" + inputs[0].file, options: ImportOptions(format: format))
                results[key, default: []].append(Double(report.bytes) / 1e6 / report.seconds)
                units[key] = "MB/s"
            }

            let cache = try store.buildTokenCache(fingerprint: fingerprint) { try tok.encode($0, addSpecialTokens: false).ids }
            results["token_cache_build", default: []].append(Double(cache.tokens) / cache.seconds)
            units["token_cache_build"] = "tokens/s"
            tokensTotal = cache.tokens

            for (key, seed) in [("packed_blocks_sequential", nil), ("packed_blocks_shuffled", UInt64(1))] as [(String, UInt64?)] {
                let start = Date()
                let blocks = try store.packedBlocks(
                    fingerprint: fingerprint, blockLength: blockLength, separator: separator, shuffleSeed: seed)
                var count = 0
                var checksum: Int64 = 0
                var iterator = blocks.makeIterator()
                while let block = try iterator.next() {
                    count += block.count
                    checksum &+= Int64(block[0])
                }
                let seconds = Date().timeIntervalSince(start)
                results[key, default: []].append(Double(count) / seconds)
                units[key] = "tokens/s"
                if !json { printError("run \(r + 1): \(key): \(count) tokens in \(String(format: "%.3f", seconds)) s (checksum \(checksum))") }
            }
            if !json {
                printError("run \(r + 1): " + results.keys.sorted().map { "\($0)=\(String(format: "%.1f", results[$0]!.last!))" }.joined(separator: " "))
            }
        }
        var measures: [String: Measure] = [:]
        for (key, runs) in results {
            measures[key] = Measure(unit: units[key]!, runs: runs, median: GraftSupport.median(runs))
        }
        if json {
            struct Output: Codable {
                var benchmark: String
                var tokenizer: String
                var blockLength: Int
                var cachedTokens: Int
                var repeats: Int
                var results: [String: Measure]
            }
            let output = Output(
                benchmark: "corpus", tokenizer: tokenizer,
                blockLength: blockLength, cachedTokens: tokensTotal, repeats: max(1, repeats), results: measures)
            print(try JSONValue(encoding: output, sortedKeys: true).serialized(pretty: true))
        } else {
            print("corpus benchmark, median of \(max(1, repeats)) (tokenizer \(tokenizer), \(tokensTotal) cached tokens, block length \(blockLength)):")
            for key in measures.keys.sorted() {
                let m = measures[key]!
                let value = m.unit.hasPrefix("MB") ? String(format: "%.2f", m.median) : ProgressReporter.grouped(Int(m.median))
                print("  \(key.padding(toLength: 40, withPad: " ", startingAt: 0)) \(value) \(m.unit)")
            }
        }
    }
}


/// User + system CPU seconds used by this process so far.
func processCPUSeconds() -> Double {
    var usage = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}
