import GraftSupport
import Foundation
import Testing
@testable import GraftTokenizers

/// Properties that hold for every input, checked on the reference texts and on random strings.
@Suite struct PropertyTests {
    static let gpt2 = try! Tokenizer.gpt2(encoderFile: TestPaths.vocab.appendingPathComponent("gpt2/encoder.json").path,
                                          mergesFile: TestPaths.vocab.appendingPathComponent("gpt2/vocab.bpe").path)
    static let bert = try! Tokenizer.bert(vocabFile: TestPaths.vocab.appendingPathComponent("bert-base-uncased/vocab.txt").path)
    static let bertCased = try! Tokenizer.bert(vocabFile: TestPaths.vocab.appendingPathComponent("bert-base-uncased/vocab.txt").path,
                                               lowercase: false, stripAccents: false)

    /// A deterministic generator of random Unicode strings mixing ASCII, Latin, combining marks,
    /// CJK, emoji (with ZWJ and variation selectors), controls and odd whitespace.
    struct RandomText {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 11
        }
        mutating func string(maxLength: Int) -> String {
            let pools: [[ClosedRange<UInt32>]] = [
                [0x20...0x7E], [0x00...0x1F, 0x7F...0x9F], [0xC0...0x24F], [0x300...0x36F], [0x370...0x3FF, 0x400...0x4FF],
                [0x590...0x6FF, 0x900...0x97F], [0x3040...0x30FF, 0x4E00...0x9FFF, 0xAC00...0xD7A3],
                [0x1F300...0x1F64F, 0x200D...0x200D, 0xFE0F...0xFE0F], [0x2000...0x200F, 0x2028...0x202F, 0x3000...0x3000, 0xA0...0xA0, 0x85...0x85],
                [0xE000...0xE0FF, 0xFFF0...0xFFFD, 0x10000...0x10FFF, 0x20000...0x2A6DF],
            ]
            let n = Int(next() % UInt64(maxLength + 1))
            var scalars = String.UnicodeScalarView()
            for _ in 0..<n {
                let pool = pools[Int(next() % UInt64(pools.count))]
                let range = pool[Int(next() % UInt64(pool.count))]
                let v = range.lowerBound + UInt32(next() % UInt64(range.upperBound - range.lowerBound + 1))
                if let u = Unicode.Scalar(v) { scalars.append(u) }
            }
            return String(scalars)
        }
    }

    static func fixtureTexts() throws -> [String] {
        try ReferenceLine.load("gpt2").map(\.text)
    }

    @Test func byteLevelDecodeInvertsEncodeOnFixtureTexts() throws {
        for text in try Self.fixtureTexts() {
            let e = try Self.gpt2.encode(text)
            let back = Self.gpt2.decode(e.ids)
            #expect(Array(back.utf8) == Array(text.utf8), "round trip failed for \(JSONValue.quoted(text))")
        }
    }

    @Test func byteLevelDecodeInvertsEncodeOnRandomStrings() throws {
        var rng = RandomText(state: 0x5EED)
        for _ in 0..<2000 {
            let text = rng.string(maxLength: 40)
            let e = try Self.gpt2.encode(text)
            #expect(Array(Self.gpt2.decode(e.ids).utf8) == Array(text.utf8), "round trip failed for \(JSONValue.quoted(text))")
        }
    }

    /// For byte-level BPE, each token's bytes lie inside the UTF-8 of the characters its offsets select.
    @Test func byteLevelOffsetsSelectTheTokensCharacters() throws {
        var rng = RandomText(state: 42)
        var texts = try Self.fixtureTexts()
        for _ in 0..<500 { texts.append(rng.string(maxLength: 30)) }
        for text in texts {
            let scalars = Array(text.unicodeScalars)
            let e = try Self.gpt2.encode(text)
            var covered = 0
            for (token, r) in zip(e.tokens, e.offsets) {
                #expect(r.lowerBound >= 0 && r.upperBound <= scalars.count && !r.isEmpty)
                let slice = String(String.UnicodeScalarView(scalars[r]))
                let tokenBytes = ByteLevel.decode(token)
                let sliceBytes = Array(slice.utf8)
                let contained = sliceBytes.count >= tokenBytes.count
                    && (0...(sliceBytes.count - tokenBytes.count)).contains { Array(sliceBytes[$0..<($0 + tokenBytes.count)]) == tokenBytes }
                #expect(contained, "token \(token) not inside \(JSONValue.quoted(slice)) for \(JSONValue.quoted(text))")
                covered = max(covered, r.upperBound)
            }
            #expect(covered == scalars.count, "tokens do not reach the end of \(JSONValue.quoted(text))")
        }
    }

    /// For WordPiece, normalizing the characters a token's offsets select gives the token's text
    /// (without `##`), or the whole word for `[UNK]`.
    @Test(arguments: [false, true])
    func wordPieceOffsetsSelectTheTokensCharacters(cased: Bool) throws {
        let tok = cased ? Self.bertCased : Self.bert
        var rng = RandomText(state: 7)
        var texts = try ReferenceLine.load("bert-uncased").map(\.text)
        for _ in 0..<500 { texts.append(rng.string(maxLength: 30)) }
        for text in texts {
            let scalars = Array(text.unicodeScalars)
            let e = try tok.encode(text)
            // Tokens that share one span (a decomposed character split across tokens) are checked together.
            var i = 0
            while i < e.ids.count {
                if e.specialTokensMask[i] == 1 { i += 1; continue }
                let r = e.offsets[i]
                var j = i
                var pieces = ""
                var unknown = false
                while j < e.ids.count && e.offsets[j] == r && e.specialTokensMask[j] == 0 {
                    var piece = e.tokens[j]
                    if piece == "[UNK]" || piece == "[MASK]" { unknown = true }
                    if piece.unicodeScalars.starts(with: "##".unicodeScalars) { piece = String(String.UnicodeScalarView(piece.unicodeScalars.dropFirst(2))) }
                    pieces.unicodeScalars.append(contentsOf: piece.unicodeScalars)
                    j += 1
                }
                i = j
                #expect(r.upperBound <= scalars.count && !r.isEmpty)
                if unknown { continue }
                let original = String(String.UnicodeScalarView(scalars[r]))
                // CJK spacing surrounds an ideograph with spaces, which the pre-tokenizer removes.
                let normalized = String(String.UnicodeScalarView(tok.normalizer!.normalize(original).unicodeScalars.filter { $0 != " " }))
                #expect(Array(normalized.unicodeScalars) == Array(pieces.unicodeScalars),
                        "tokens \(JSONValue.quoted(pieces)) at \(r) select \(JSONValue.quoted(original)) in \(JSONValue.quoted(text))")
            }
        }
    }

    @Test func emptyAndWhitespaceInputsEncodeToSpecialsOnly() throws {
        for text in ["", " ", "\t\n  \r\n", "\u{3000}\u{2028}\u{A0}", "\u{200B}\u{0}"] {
            let e = try Self.bert.encode(text)
            #expect(e.tokens == ["[CLS]", "[SEP]"], "\(JSONValue.quoted(text))")
            #expect(e.offsets == [0..<0, 0..<0])
            #expect(e.specialTokensMask == [1, 1])
        }
        #expect(try Self.gpt2.encode("").ids.isEmpty)
    }

    @Test func canonicallyEquivalentVocabularyEntriesStayDistinct() throws {
        let vocab = Vocabulary(tokens: ["[UNK]", "caf\u{E9}", "cafe\u{301}", "x"])
        #expect(vocab.id("caf\u{E9}") == 1)
        #expect(vocab.id("cafe\u{301}") == 2)
        let tok = Tokenizer(normalizer: nil, preTokenizer: .whitespaceSplit, model: .wordPiece(try WordPiece(vocab: vocab)),
                            postProcessor: nil, decoder: .wordPiece(prefix: "##", cleanup: true))
        #expect(try tok.encode("caf\u{E9} cafe\u{301}").ids == [1, 2])
        #expect(try tok.encode("caf\u{E9} cafe\u{301}").offsets == [0..<4, 5..<10])
    }
}
