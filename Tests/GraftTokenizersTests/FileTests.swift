import GraftSupport
import Foundation
import Testing
@testable import GraftTokenizers

@Suite struct FileTests {
    static func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("graft-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    static let samples = ["Hello, World! naïve café", "東京 🤗 don't", "", "  spaced\ttext\n", "[MASK] literal"]

    @Test(arguments: ["bert-uncased", "bert-cased", "gpt2"])
    func tokenizerJSONRoundTrip(name: String) throws {
        let original = try Tokenizer.load(from: TestPaths.fixtures.appendingPathComponent("tokenizers/\(name)").path)
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tokenizer.json").path
        try original.save(to: path)
        let reloaded = try Tokenizer.load(from: dir.path)
        #expect(reloaded.toJSON() == original.toJSON())
        for text in Self.samples {
            #expect(try reloaded.encode(text) == original.encode(text))
        }
        // The saved file also equals what HuggingFace wrote, value for value.
        let hf = try JSONValue.parse(Array(try Data(contentsOf: TestPaths.fixtures.appendingPathComponent("tokenizers/\(name)/tokenizer.json"))))
        let ours = original.toJSON()
        for key in ["normalizer", "pre_tokenizer", "post_processor", "added_tokens"] {
            #expect(ours[key] == hf[key], "\(key) differs")
        }
        #expect(ours["model"]?["vocab"] == hf["model"]?["vocab"])
    }

    @Test func vocabularyFilesRoundTrip() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in ["bert-uncased", "gpt2"] {
            let original = try Tokenizer.load(from: TestPaths.fixtures.appendingPathComponent("tokenizers/\(name)").path)
            let sub = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
            try original.saveVocabularyFiles(in: sub.path)
            let reloaded = try Tokenizer.load(from: sub.path)
            for text in Self.samples { #expect(try reloaded.encode(text).ids == original.encode(text).ids) }
        }
        // The written vocab.txt is byte-identical to bert-base-uncased's.
        let written = try Data(contentsOf: dir.appendingPathComponent("bert-uncased/vocab.txt"))
        let shipped = try Data(contentsOf: TestPaths.vocab.appendingPathComponent("bert-base-uncased/vocab.txt"))
        #expect(written == shipped)
    }

    @Test func invalidUTF8IsReportedWithFileAndByteOffset() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("bad.txt").path
        FileManager.default.createFile(atPath: path, contents: Data([0x6F, 0x6B, 0x0A, 0x61, 0xC3, 0x28, 0x0A]))
        let reader = try LineReader.open(path)
        #expect(try reader.nextString() == "ok")
        #expect(throws: TokenizerError.invalidUTF8(path: path, byteOffset: 4)) { try reader.nextString() }

        let vocabPath = dir.appendingPathComponent("vocab.txt").path
        FileManager.default.createFile(atPath: vocabPath, contents: Data([0x5B, 0x55, 0x4E, 0x4B, 0x5D, 0x0A, 0xFF, 0x0A]))
        #expect(throws: TokenizerError.invalidUTF8(path: vocabPath, byteOffset: 6)) { try Tokenizer.load(from: vocabPath) }
    }

    @Test func malformedFilesNameFileAndLine() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tokenizer.json").path
        FileManager.default.createFile(atPath: path, contents: Data("{\n  \"model\": {\n    \"type\": \"WordPiece\",\n    \"vocab\": {\"a\": 0,,}\n  }\n}\n".utf8))
        do {
            _ = try Tokenizer.load(from: path)
            Issue.record("malformed JSON was accepted")
        } catch let TokenizerError.malformed(p, line, reason) {
            #expect(p == path)
            #expect(line == 4)
            #expect(reason.contains("JSON"))
        }
        FileManager.default.createFile(atPath: path, contents: Data("{\"model\": {\"type\": \"Unigram\", \"vocab\": {}}}".utf8))
        #expect(throws: TokenizerError.self) { try Tokenizer.load(from: path) }

        let merges = dir.appendingPathComponent("vocab.bpe").path
        let encoder = dir.appendingPathComponent("encoder.json").path
        FileManager.default.createFile(atPath: encoder, contents: Data("{\"a\": 0, \"b\": 1, \"ab\": 2}".utf8))
        FileManager.default.createFile(atPath: merges, contents: Data("#version: 0.2\na b\nab\n".utf8))
        #expect(throws: TokenizerError.malformed(path: merges, line: 3, reason: "a merge line must be two tokens separated by one space")) {
            try Tokenizer.gpt2(encoderFile: encoder, mergesFile: merges)
        }
        #expect(throws: TokenizerError.self) { try Tokenizer.load(from: dir.appendingPathComponent("missing").path) }
        // A merge naming a token the encoder lacks, an empty encoder: the files named.
        FileManager.default.createFile(atPath: merges, contents: Data("#version: 0.2\na b\nb zz\n".utf8))
        #expect { try Tokenizer.gpt2(encoderFile: encoder, mergesFile: merges) } throws: {
            "\($0)".contains(merges) && "\($0)".contains("\"zz\"") && "\($0)".contains(encoder)
        }
        FileManager.default.createFile(atPath: encoder, contents: Data("{}".utf8))
        #expect { try Tokenizer.gpt2(encoderFile: encoder, mergesFile: merges) } throws: { "\($0)".contains("the vocabulary is empty") }
        // tokenizer.json: no vocab (blamed, not the added tokens' ids); a bad per-word limit; an
        // unk_token missing from the vocab; padding longer than 65,536.
        func loadError(_ json: String) -> String {
            _ = FileManager.default.createFile(atPath: path, contents: Data(json.utf8))
            do { _ = try Tokenizer.load(from: path); return "accepted" } catch { return "\(error)" }
        }
        #expect(loadError(#"{"added_tokens": [{"id": 3, "content": "[UNK]"}], "model": {"type": "WordPiece"}}"#).contains("lacks a \"vocab\""))
        #expect(loadError(#"{"model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "a": 1}, "max_input_chars_per_word": -5}}"#)
                    .contains("max_input_chars_per_word -5"))
        #expect(loadError(#"{"model": {"type": "WordPiece", "vocab": {"a": 0}, "unk_token": "<nope>"}}"#).contains("\"<nope>\""))
        #expect(loadError(#"{"model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "[PAD]": 1}}, "padding": {"strategy": {"Fixed": 16000000}}}"#)
                    .contains("padding.strategy.Fixed 16000000 is not a length in 0...65536"))
        // An unk_token that is not a string, two tokens on one id, an empty added token, a
        // template naming a token nowhere defined: each named, none taken as a default.
        #expect(loadError(#"{"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}, "unk_token": 0}}"#).contains("model.unk_token is 0, not a string"))
        #expect(loadError(#"{"model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "a": 1, "b": 1}}}"#).contains("id 1 to both"))
        #expect(loadError(#"{"added_tokens": [{"id": 1, "content": ""}], "model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "a": 1}}}"#).contains("empty \"content\""))
        let template = #"{"model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "a": 1}}, "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "pair": [], "special_tokens": {}}}"#
        #expect(loadError(template).contains(path) && loadError(template).contains("\"[CLS]\", which is neither"))
        // A vocab.txt without [CLS]/[SEP] is named.
        let vocab = dir.appendingPathComponent("plain-vocab.txt").path
        FileManager.default.createFile(atPath: vocab, contents: Data("[UNK]\n[PAD]\na\n".utf8))
        #expect { try Tokenizer.bert(vocabFile: vocab) } throws: { "\($0)".contains(vocab) && "\($0)".contains("[CLS]/[SEP]") }
    }

    /// A 10 MB single line encodes in bounded time and memory, with every offset inside the line.
    @Test func tenMegabyteSingleLine() throws {
        let tok = try Tokenizer.load(from: TestPaths.fixtures.appendingPathComponent("tokenizers/gpt2").path)
        let bert = try Tokenizer.load(from: TestPaths.fixtures.appendingPathComponent("tokenizers/bert-uncased").path)
        let unit = "Graft tokenizes long lines, naïvely 東京 🤗 1234567890; "
        let text = String(repeating: unit, count: 10_000_000 / unit.utf8.count + 1)
        let scalarCount = text.unicodeScalars.count
        for t in [tok, bert] {
            let e = try t.encode(text)
            #expect(e.count > 1_000_000)
            #expect(e.offsets.allSatisfy { $0.upperBound <= scalarCount })
        }
        // One word of 10 MB (no spaces): WordPiece gives [UNK]; BPE still terminates.
        let word = String(repeating: "a", count: 10_000_000)
        #expect(try bert.encode(word).tokens == ["[CLS]", "[UNK]", "[SEP]"])
        let bpeWord = String(repeating: "ab", count: 50_000)
        #expect(tok.decode(try tok.encode(bpeWord).ids) == bpeWord)
    }
}
