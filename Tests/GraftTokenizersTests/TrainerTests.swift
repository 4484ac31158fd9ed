import GraftSupport
import Foundation
import Testing
@testable import GraftTokenizers

private func counts(_ pairs: [(String, Int)]) -> WordCounts { WordCounts(pairs) }

/// HuggingFace's own `test_train` corpus (bpe/trainer.rs).
private let rosesCorpus: [(String, Int)] = [
    ("roses", 1), ("are", 2), ("red", 1), ("voilets", 1), ("blue", 1), ("BERT", 1), ("is", 2),
    ("big", 1), ("and", 1), ("so", 1), ("GPT-2", 1),
]

/// The Hugging Face course's WordPiece/BPE example corpus.
private let hugCorpus: [(String, Int)] = [("hug", 10), ("pug", 5), ("pun", 12), ("bun", 4), ("hugs", 5)]

private func mergeStrings(_ r: TrainingResult) -> [String] { r.merges.map { "\($0.0) \($0.1)" } }

@Suite("BPE and WordPiece trainers")
struct TrainerTests {
    @Test("BPE merges by count, ties by smallest pair of ids (HF test_train)")
    func rosesBPE() {
        let result = BPETrainer(BPETrainerOptions(minFrequency: 2)).train(counts(rosesCorpus))
        // r+e occurs 3 times; then `a re` (ids 8, 22) and `i s` (13, 18) tie at 2: (8, 22) first.
        let alphabet = ["-", "2", "B", "E", "G", "P", "R", "T", "a", "b", "d", "e", "g", "i", "l", "n",
                        "o", "r", "s", "t", "u", "v"]
        #expect(result.vocab == alphabet + ["re", "are", "is"])
        #expect(mergeStrings(result) == ["r e", "a re", "i s"])
    }

    @Test("Special tokens come first, in order, without duplicates")
    func specialsFirst() {
        let options = BPETrainerOptions(minFrequency: 2, specialTokens: ["<s>", "</s>", "<s>", "a"])
        let result = BPETrainer(options).train(counts(rosesCorpus))
        #expect(Array(result.vocab.prefix(3)) == ["<s>", "</s>", "a"])
        #expect(result.specialTokens == ["<s>", "</s>", "a"])
        // "a" is a special token, so the alphabet does not add it again.
        #expect(result.vocab.filter { $0 == "a" }.count == 1)
        #expect(result.vocab.suffix(3) == ["re", "are", "is"])
    }

    @Test("Minimum frequency stops the merges")
    func minFrequency() {
        let three = BPETrainer(BPETrainerOptions(minFrequency: 3)).train(counts(rosesCorpus))
        #expect(mergeStrings(three) == ["r e"])
        let four = BPETrainer(BPETrainerOptions(minFrequency: 4)).train(counts(rosesCorpus))
        #expect(four.merges.isEmpty)
        #expect(four.vocab.count == 22)
        // With no minimum, pairs seen once are merged too, until none is left.
        let zero = BPETrainer(BPETrainerOptions(vocabSize: 26, minFrequency: 0)).train(counts(rosesCorpus))
        #expect(zero.vocab.count == 26)
        #expect(Array(mergeStrings(zero).prefix(3)) == ["r e", "a re", "i s"])
    }

    @Test("Vocabulary size counts specials and alphabet")
    func vocabSizeStop() {
        let options = BPETrainerOptions(vocabSize: 24, minFrequency: 0, specialTokens: ["[UNK]"])
        let result = BPETrainer(options).train(counts(rosesCorpus))
        #expect(result.vocab.count == 24)
        #expect(result.vocab.first == "[UNK]")
        #expect(mergeStrings(result) == ["r e"])
    }

    @Test("Limit alphabet keeps the most frequent characters and drops the others from words")
    func limitAlphabet() {
        // a: 3*5 + 2 = 17, b: 2 + 2*3 = 8, c: 1, d: 3
        let words: [(String, Int)] = [("aaa", 5), ("ab", 2), ("c", 1), ("bdb", 3), ("acd", 1)]
        let result = BPETrainer(BPETrainerOptions(minFrequency: 1, limitAlphabet: 2)).train(counts(words))
        #expect(Array(result.vocab.prefix(2)) == ["a", "b"])
        #expect(!result.vocab.contains { $0.contains("c") || $0.contains("d") })
        // Dropping c and d turns "bdb" into "bb" (3) and "acd" into "a": merges a a (10), then
        // b b (3) vs a b (2) vs aa a (5): aa a first.
        #expect(mergeStrings(result) == ["a a", "aa a", "b b", "a b"])
        // The initial alphabet is always kept, even unseen, within the limit.
        let withInitial = BPETrainer(BPETrainerOptions(
            minFrequency: 1, limitAlphabet: 2, initialAlphabet: ["z"])).train(counts(words))
        #expect(Array(withInitial.vocab.prefix(2)) == ["a", "z"])
    }

    @Test("WordPiece: ## on continuing characters, merged token = a + b without the prefix")
    func hugWordPiece() {
        let result = WordPieceTrainer(.wordPiece(vocabSize: 1000)).train(counts(hugCorpus))
        #expect(Array(result.vocab.prefix(5)) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
        #expect(Array(result.vocab[5..<12]) == ["b", "g", "h", "n", "p", "s", "u"])
        #expect(Set(result.vocab[12..<16]) == ["##u", "##g", "##n", "##s"])
        #expect(Array(result.vocab[16...]) == ["##ug", "##un", "hug", "pun", "pug", "hugs", "bun"])
        #expect(result.merges.isEmpty)
        #expect(result.continuingSubwordPrefix == "##")

        let bpe = BPETrainer(BPETrainerOptions(vocabSize: 1000, continuingSubwordPrefix: "##")).train(counts(hugCorpus))
        #expect(mergeStrings(bpe) == ["##u ##g", "##u ##n", "h ##ug", "p ##un", "p ##ug", "hug ##s", "b ##un"])
    }

    @Test("End-of-word suffix marks the last character")
    func endOfWordSuffix() {
        let options = BPETrainerOptions(minFrequency: 1, endOfWordSuffix: "</w>")
        let result = BPETrainer(options).train(counts([("ab", 3), ("b", 1)]))
        #expect(result.vocab == ["a", "b", "b</w>", "ab</w>"])
        #expect(mergeStrings(result) == ["a b</w>"])
    }

    @Test("Max token length follows HF (bpe_test_max_token_length_direct_assert)")
    func maxTokenLength() {
        let words = ["sin", "Sin", "Lon", "Ano", "짧은한", "긴한글", "短字符", "长字符", "短い文", "長い文", "so", "GP"]
        let options = BPETrainerOptions(minFrequency: 0, maxTokenLength: 2)
        let result = BPETrainer(options).train(counts(words.map { ($0, 2) }))
        let expected = ["A", "G", "L", "P", "S", "i", "n", "o", "s", "い", "字", "文", "短", "符", "長", "长",
                        "글", "긴", "은", "짧", "한", "in", "い文", "字符", "An", "GP", "Lo", "so", "긴한", "은한"]
        #expect(result.vocab == expected)
    }

    @Test("Canonically equivalent words are counted and trained separately")
    func canonicalEquivalence() {
        let precomposed = "\u{E9}t\u{E9}", decomposed = "e\u{301}te\u{301}"
        #expect(precomposed == decomposed)  // Swift's String equality: canonical equivalence
        var c = WordCounts()
        c.add(precomposed, count: 3)
        c.add(decomposed, count: 2)
        #expect(c.distinctWords == 2)
        #expect(c.count(of: precomposed) == 3)
        #expect(c.count(of: decomposed) == 2)
        #expect(c.totalWords == 5)

        var counter = WordCounter(threads: 2) { $0.split(separator: " ").map(String.init) }
        counter.add(documents: ["\(precomposed) \(decomposed)", precomposed])
        let counted = counter.counts()
        #expect(counted.distinctWords == 2)
        #expect(counted.count(of: precomposed) == 2)
        #expect(counted.count(of: decomposed) == 1)

        let result = BPETrainer(BPETrainerOptions(minFrequency: 1)).train(c)
        let scalars = Set(result.vocab.prefix(4).map { $0.unicodeScalars.map(\.value) })
        #expect(scalars == [[0x65], [0x74], [0xE9], [0x301]])
    }

    @Test("Word counter: threads and batch size do not change the counts")
    func counterThreads() {
        let docs = (0..<3000).map { i in "w\(i % 97) x\(i % 13) é\(i % 7) \(i % 5 == 0 ? "e\u{301}" : "é")" }
        let split: WordCounter.Splitter = { $0.split(separator: " ").map(String.init) }
        var one = WordCounter(threads: 1, split: split)
        one.add(documents: docs)
        var two = WordCounter(threads: 2, batchBytes: 1000, split: split)
        two.add(documents: docs)
        let a = one.counts(), b = two.counts()
        #expect(a.distinctWords == 97 + 13 + 7 + 2)
        #expect(a.distinctWords == b.distinctWords)
        #expect(a.totalWords == 4 * 3000 && b.totalWords == 4 * 3000)
        var same = true
        a.forEach { word, n in if b.count(of: word) != n { same = false } }
        #expect(same)
        #expect(a.count(of: "e\u{301}") == 600)
        #expect(a.count(of: "\u{E9}") == 2400)
    }

    @Test("Word counter streams a file's lines and reports invalid UTF-8 with its offset")
    func counterFile() throws {
        let dir = FileManager.default.temporaryDirectory
        let good = dir.appendingPathComponent("graft-trainer-good-\(UUID().uuidString).txt")
        let bad = dir.appendingPathComponent("graft-trainer-bad-\(UUID().uuidString).txt")
        defer {
            try? FileManager.default.removeItem(at: good)
            try? FileManager.default.removeItem(at: bad)
        }
        try Data("a b\r\nb\u{2028}c\n\nc".utf8).write(to: good)
        var counter = WordCounter { $0.split(separator: " ").map(String.init) }
        try counter.add(linesOfFile: good)
        let c = counter.counts()
        #expect(c.count(of: "a") == 1)
        #expect(c.count(of: "b\r") == 1)  // split on \n only
        #expect(c.count(of: "b\u{2028}c") == 1)
        #expect(c.count(of: "c") == 1)

        var bytes = Array("ok line\nsecond ".utf8)
        let offset = bytes.count
        bytes += [0xC3, 0x28] + Array(" tail\n".utf8)
        try Data(bytes).write(to: bad)
        var failing = WordCounter { [$0] }
        #expect(throws: TokenizerError.invalidUTF8(path: bad.path, byteOffset: offset)) {
            try failing.add(linesOfFile: bad)
        }
        #expect(failing.counts().count(of: "ok line") == 1)  // lines before the bad one count

        // A per-line transform (run on the counting threads) picks a JSON field or skips.
        let jsonl = dir.appendingPathComponent("graft-trainer-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: jsonl) }
        try Data("{\"text\": \"x y\"}\n{\"other\": 1}\n{\"text\": \"y\"}\n".utf8).write(to: jsonl)
        var json = WordCounter(threads: 2, batchBytes: 8) { $0.split(separator: " ").map(String.init) }
        try json.add(linesOfFile: jsonl, transform: jsonText)
        let jc = json.counts()
        #expect(jc.count(of: "x") == 1 && jc.count(of: "y") == 2 && jc.distinctWords == 2)

        struct Boom: Error, Equatable {}
        var throwing = WordCounter { [$0] }
        // The error names the file and the line of the refused document.
        #expect(throws: TokenizerError.malformed(path: jsonl.path, line: 2, reason: "Boom()")) {
            try throwing.add(linesOfFile: jsonl, transform: { line in
                if line.contains("other") { throw Boom() }
                return line
            })
        }
    }

    @Test("Training does not depend on the thread count or on counting order")
    func threadIndependence() {
        var words: [(String, Int)] = []
        var state: UInt64 = 12345
        let letters = Array("abcdefghijklmnopqrstuvwxyzéü")
        for _ in 0..<6000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let length = Int(state >> 60) % 9 + 1
            var w = ""
            for k in 0..<length { w.append(letters[Int((state >> UInt64(4 * k)) & 0xFF) % letters.count]) }
            words.append((w, Int(state >> 40) % 50 + 1))
        }
        let forward = WordCounts(words), backward = WordCounts(words.reversed())
        var o1 = BPETrainerOptions.wordPiece(vocabSize: 600)
        o1.threads = 1
        var o2 = o1
        o2.threads = 2
        let r1 = BPETrainer(o1).train(forward)
        let r2 = BPETrainer(o2).train(backward)
        #expect(r1.vocab.count == 600)
        #expect(r1.vocab == r2.vocab)
        #expect(mergeStrings(r1) == mergeStrings(r2))
    }

    @Test("Byte-level options carry the 256 byte symbols")
    func byteLevelAlphabet() {
        let alphabet = BPETrainerOptions.byteLevelAlphabet
        #expect(alphabet.count == 256)
        #expect(alphabet.contains("Ġ") && alphabet.contains("!") && !alphabet.contains(" "))
        #expect(TrainerByteAlphabet.encode(Array(" é".utf8)) == "Ġ\u{C3}\u{A9}")
        let result = BPETrainer(.byteLevel(vocabSize: 258)).train(counts([("Ġthe", 3), ("the", 2)]))
        #expect(result.vocab.count == 258)
        #expect(Array(result.vocab.prefix(256)) == TrainerByteAlphabet.scalars.map { String($0) }.sorted {
            $0.unicodeScalars.first!.value < $1.unicodeScalars.first!.value })
        #expect(mergeStrings(result) == ["h e", "t he"])  // h < t by code point, so (h, e) wins the tie
    }

    @Test("No words: the vocabulary is the specials and the initial alphabet")
    func emptyCounts() {
        let wp = WordPieceTrainer(.wordPiece(vocabSize: 100)).train(WordCounts())
        #expect(wp.vocab == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
        let bl = BPETrainer(.byteLevel(vocabSize: 1000, specialTokens: ["<|endoftext|>"])).train(WordCounts())
        #expect(bl.vocab.count == 257 && bl.vocab.first == "<|endoftext|>" && bl.merges.isEmpty)
        var counter = WordCounter { _ in [] }
        counter.add(documents: ["", "   "])
        #expect(counter.counts().distinctWords == 0)
    }

    @Test("A long single-line document with a very long word")
    func longDocument() {
        let long = String(repeating: "ab", count: 200_000)
        var counter = WordCounter { $0.split(separator: " ").map(String.init) }
        counter.add(String(repeating: "xy ", count: 100_000) + long)
        let c = counter.counts()
        #expect(c.count(of: "xy") == 100_000 && c.count(of: long) == 1)
        let result = BPETrainer(BPETrainerOptions(vocabSize: 12, minFrequency: 2)).train(c)
        // a b (200,000), then ab ab (199,999 adjacent pairs), then x y (100,000) ahead of
        // abab abab (99,999 after the non-overlapping merge of ab ab).
        #expect(Array(mergeStrings(result).prefix(4)) == ["a b", "ab ab", "x y", "abab abab"])
    }

    @Test("Progress reports each merge")
    func progress() {
        final class Box: @unchecked Sendable { var calls: [(Int, Int)] = [] }
        let box = Box()
        var options = BPETrainerOptions(minFrequency: 2)
        options.progress = { done, total in box.calls.append((done, total)) }
        _ = BPETrainer(options).train(counts(rosesCorpus))
        #expect(box.calls.map(\.0) == [23, 24, 25])
        #expect(box.calls.allSatisfy { $0.1 == 30000 })
    }
}

// MARK: - Full-corpus checks against the HuggingFace-trained references

/// The `text` field of one JSON line (nil for an empty line).
func jsonText(_ line: String) throws -> String? {
    if line.isEmpty { return nil }
    return try JSONValue.parse(line)["text"]?.string
}
