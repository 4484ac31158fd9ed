import GraftSupport
import Foundation
import Testing
@testable import GraftTokenizers

/// Exact agreement with HuggingFace tokenizers 0.23.3 on 300 lines per pipeline
/// (fixtures copied from the shared data; see Fixtures/README.md).
@Suite struct ReferenceEncodingTests {
    static func builtTokenizers() throws -> [String: Tokenizer] {
        [
            "bert-uncased": try Tokenizer.bert(vocabFile: TestPaths.vocab.appendingPathComponent("bert-base-uncased/vocab.txt").path),
            "bert-cased": try Tokenizer.bert(vocabFile: TestPaths.vocab.appendingPathComponent("bert-base-uncased/vocab.txt").path,
                                             lowercase: false, stripAccents: false),
            "gpt2": try Tokenizer.gpt2(encoderFile: TestPaths.vocab.appendingPathComponent("gpt2/encoder.json").path,
                                       mergesFile: TestPaths.vocab.appendingPathComponent("gpt2/vocab.bpe").path),
        ]
    }

    static func check(_ tokenizer: Tokenizer, _ name: String) throws -> [String] {
        var failures: [String] = []
        for line in try ReferenceLine.load(name) {
            let e = try tokenizer.encode(line.text)
            if e.ids != line.ids || e.tokens != line.tokens || e.offsets != line.offsets
                || e.specialTokensMask != line.specialTokensMask || e.typeIds != line.typeIds {
                failures.append("\(name) \(line.id) [\(line.category)] \(JSONValue.quoted(line.text).prefix(80))\n  want \(zip(line.tokens, line.offsets).map { "\($0)\($1)" }.prefix(40))\n  got  \(zip(e.tokens, e.offsets).map { "\($0)\($1)" }.prefix(40))")
            }
            if e.byteOffsets(in: line.text) != line.byteOffsets {
                failures.append("\(name) \(line.id): UTF-8 byte offsets differ")
            }
            let conversion = TextOffsets(line.text)
            for (r, b) in zip(line.offsets, line.byteOffsets) where conversion.scalarRange(b) != r {
                failures.append("\(name) \(line.id): byte range \(b) does not convert back to \(r)")
            }
            let decoded = tokenizer.decode(e.ids)
            if decoded != line.decoded || !decoded.unicodeScalars.elementsEqual(line.decoded.unicodeScalars) {
                failures.append("\(name) \(line.id) decode: want \(JSONValue.quoted(line.decoded).prefix(80)) got \(JSONValue.quoted(decoded).prefix(80))")
            }
        }
        return failures
    }

    @Test(arguments: ["bert-uncased", "bert-cased", "gpt2"])
    func pipelinesBuiltFromVocabularyFiles(name: String) throws {
        let tokenizer = try #require(try Self.builtTokenizers()[name])
        let failures = try Self.check(tokenizer, name)
        #expect(failures.isEmpty, "\(failures.count) mismatches:\n\(failures.prefix(8).joined(separator: "\n"))")
    }

    @Test(arguments: ["bert-uncased", "bert-cased", "gpt2"])
    func pipelinesLoadedFromHuggingFaceFiles(name: String) throws {
        let tokenizer = try Tokenizer.load(from: TestPaths.fixtures.appendingPathComponent("tokenizers/\(name)/tokenizer.json").path)
        let failures = try Self.check(tokenizer, name)
        #expect(failures.isEmpty, "\(failures.count) mismatches:\n\(failures.prefix(8).joined(separator: "\n"))")
    }
}
