import GraftSupport
import Foundation
import Testing
@testable import GraftTokenizers

/// Pairs, truncation with overflowing windows and stride, and padding, against HuggingFace
/// tokenizers 0.23.3 (`scripts/make_pipeline_fixtures.py` made the fixture).
@Suite struct PipelineTests {
    struct Case {
        var name: String
        var tokenizer: String
        var inputs: [(String, String?)]
        var truncation: Truncation?
        var padding: Padding?
        var expected: [JSONValue]
    }

    static func cases() throws -> [Case] {
        let path = TestPaths.fixtures.appendingPathComponent("pipeline-cases.jsonl").path
        let data = try require(FileManager.default.contents(atPath: path))
        return try data.split(separator: 10).map { raw in
            let j = try JSONValue.parse(Array(raw))
            let inputs: [(String, String?)] = j["inputs"]!.array!.map { v in
                if let s = v.string { return (s, nil) }
                return (v.array![0].string!, v.array![1].string!)
            }
            var truncation: Truncation? = nil
            if let t = j["truncation"], !t.isNull {
                let strategy: Truncation.Strategy = ["only_second": .onlySecond, "only_first": .onlyFirst][t["strategy"]?.string ?? ""] ?? .longestFirst
                truncation = Truncation(maxLength: t["max_length"]!.int!, strategy: strategy, stride: t["stride"]?.int ?? 0)
            }
            var padding: Padding? = nil
            if let p = j["padding"], !p.isNull {
                padding = Padding(length: p["length"]?.int.map { .fixed($0) } ?? .longest, multipleOf: p["pad_to_multiple_of"]?.int,
                                  padId: Int32(p["pad_id"]!.int!), padTypeId: 0, padToken: p["pad_token"]!.string!,
                                  left: p["direction"]?.string == "left")
            }
            return Case(name: j["name"]!.string!, tokenizer: j["tokenizer"]!.string!, inputs: inputs,
                        truncation: truncation, padding: padding, expected: j["encodings"]!.array!)
        }
    }

    static func mismatch(_ e: Encoding, _ want: JSONValue, path: String) -> String? {
        func ints(_ k: String) -> [Int?] { want[k]!.array!.map { $0.int } }
        let checks: [(String, [Int?], [Int?])] = [
            ("ids", e.ids.map { Int($0) }, ints("ids")),
            ("type_ids", e.typeIds.map { Int($0) }, ints("type_ids")),
            ("attention_mask", e.attentionMask.map { Int($0) }, ints("attention_mask")),
            ("special_tokens_mask", e.specialTokensMask.map { Int($0) }, ints("special_tokens_mask")),
            ("word_ids", e.wordIds.map { $0.map(Int.init) }, ints("word_ids")),
            ("sequence_ids", e.sequenceIds.map { $0.map(Int.init) }, ints("sequence_ids")),
            ("offsets", e.offsets.flatMap { [$0.lowerBound, $0.upperBound] }, want["offsets"]!.array!.flatMap { $0.array!.map { $0.int } }),
        ]
        for (name, got, expected) in checks where got != expected {
            return "\(path).\(name): got \(got.map { $0.map(String.init) ?? "nil" }) want \(expected.map { $0.map(String.init) ?? "nil" })"
        }
        let tokens = want["tokens"]!.array!.map { $0.string! }
        if e.tokens != tokens { return "\(path).tokens: got \(e.tokens) want \(tokens)" }
        let overflow = want["overflowing"]!.array!
        if e.overflowing.count != overflow.count { return "\(path): \(e.overflowing.count) overflowing windows, want \(overflow.count)" }
        for (k, (o, w)) in zip(e.overflowing, overflow).enumerated() {
            if let m = mismatch(o, w, path: "\(path).overflowing[\(k)]") { return m }
        }
        return nil
    }

    @Test func matchesHuggingFace() throws {
        let base: [String: Tokenizer] = [
            "bert-uncased": try Tokenizer.load(from: TestPaths.fixtures.appendingPathComponent("tokenizers/bert-uncased").path),
            "gpt2": try Tokenizer.load(from: TestPaths.fixtures.appendingPathComponent("tokenizers/gpt2").path),
        ]
        let all = try Self.cases()
        #expect(all.count == 10)
        for c in all {
            var tok = try #require(base[c.tokenizer])
            tok.truncation = c.truncation
            tok.padding = c.padding
            let got = try tok.encodeBatch(pairs: c.inputs)
            #expect(got.count == c.expected.count)
            for (i, (e, want)) in zip(got, c.expected).enumerated() {
                let m = Self.mismatch(e, want, path: "\(c.name)[\(i)]")
                #expect(m == nil, "\(m ?? "")")
            }
        }
    }

    /// Batches use per-worker word caches that persist between batches: three batches of
    /// repeated and new words, on 1 and 3 threads, equal encoding each text alone.
    @Test(arguments: ["bert-uncased", "gpt2"])
    func batchesEqualSingleEncodes(name: String) throws {
        let tok = try Tokenizer.load(from: TestPaths.fixtures.appendingPathComponent("tokenizers/\(name)").path)
        let words = ["naïve", "tokenization", "Zürich", "the", "unbelievably", "café", "résumé", "42", "GPT-2's", "東京"]
        for round in 0..<3 {
            let texts = (0..<40).map { i in (0..<(3 + i % 5)).map { words[($0 * 7 + i + round) % words.count] }.joined(separator: " ") }
            let single = try texts.map { try tok.encode($0) }
            for threads in [1, 3] {
                let batch = try tok.encodeBatch(texts, threads: threads)
                #expect(batch.map(\.ids) == single.map(\.ids))
                #expect(batch.map(\.offsets) == single.map(\.offsets))
            }
        }
    }

    @Test func truncationRejectsImpossibleSettings() throws {
        var tok = try Tokenizer.load(from: TestPaths.fixtures.appendingPathComponent("tokenizers/bert-uncased").path)
        tok.truncation = Truncation(maxLength: 8, strategy: .longestFirst, stride: 6)
        #expect(throws: TokenizerError.self) { try tok.encode("one two three four five six seven eight nine ten eleven") }
        tok.truncation = Truncation(maxLength: 1)
        #expect(throws: TokenizerError.self) { try tok.encode("one two") }
        tok.truncation = Truncation(maxLength: 10, strategy: .onlySecond)
        #expect(throws: TokenizerError.self) { try tok.encode("one two three four five six seven eight nine ten eleven", pair: "x") }
        // A batch throws its earliest failure, whichever worker meets which first: pair 61 (9 tokens
        // of first sequence) before pair 150 (12), among 200 pairs on 1, 2 and 3 threads.
        let pairs: [(String, String?)] = (0..<200).map { i in
            (i == 61 ? "a b c d e f g h i" : i == 150 ? "a b c d e f g h i j k l" : "a b", "x y")
        }
        for threads in [1, 2, 3] {
            do {
                _ = try tok.encodeBatch(pairs: pairs, threads: threads)
                Issue.record("a batch with impossible pairs must throw")
            } catch {
                #expect("\(error)".contains("(9 tokens)"), "\(threads) threads: \(error)")
            }
        }
        tok.truncation = nil
        let fine = try tok.encodeBatch(pairs: pairs, threads: 3)
        #expect(fine.map(\.ids) == (try pairs.map { try tok.encode($0.0, pair: $0.1).ids }))
    }

    /// The `Whitespace` pre-tokenizer's `\w` is the Rust regex crate's: the zero-width joiner
    /// and Other_Alphabetic symbols (circled letters) are word characters. Words as HuggingFace
    /// tokenizers 0.23 splits them (`Whitespace().pre_tokenize_str`), in Unicode scalars.
    @Test func whitespaceWordCharactersFollowRustRegex() {
        func words(_ text: String) -> [Range<Int>] {
            let scalars = text.unicodeScalars.map(\.value)
            var out: [Range<Int>] = []
            scalars.withUnsafeBufferPointer { PreTokenizer.whitespace.split($0, into: &out) }
            return out
        }
        #expect(words("a\u{200D}b") == [0..<3])                  // ZWJ joins: one word
        #expect(words("a\u{200C}b c") == [0..<3, 4..<5])         // ZWNJ likewise
        #expect(words("a\u{24B6}b") == [0..<3])                  // Ⓐ (So, Other_Alphabetic)
        #expect(words("a\u{1F170}b") == [0..<3])                 // 🅰
        #expect(words("\u{1F468}\u{200D}\u{1F469}") == [0..<1, 1..<2, 2..<3])   // emoji, ZWJ, emoji
        #expect(words("x\u{2460}y!?") == [0..<1, 1..<2, 2..<3, 3..<5])          // ① is No: not \w
    }
}
