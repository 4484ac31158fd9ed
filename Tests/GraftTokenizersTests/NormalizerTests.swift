import GraftSupport
import Foundation
import Testing
@testable import GraftTokenizers

/// The normalization forms, lowercase and strip-accents against Python's unicodedata and
/// HuggingFace's normalizers (`scripts/make_normalizer_fixtures.py`), and their alignments.
@Suite struct NormalizerTests {
    static func rows() throws -> [JSONValue] {
        let data = try require(FileManager.default.contents(atPath: TestPaths.fixtures.appendingPathComponent("normalizers.jsonl").path))
        return try data.split(separator: 10).map { try JSONValue.parse(Array($0)) }
    }

    static let forms: [(String, Normalizer)] = [
        ("nfc", .nfc), ("nfd", .nfd), ("nfkc", .nfkc), ("nfkd", .nfkd), ("lowercase", .lowercase), ("strip_accents", .sequence([.nfd, .stripAccents])), ("lowercase_nfd", .sequence([.lowercase, .nfd])),
    ]

    @Test func outputsMatchTheReferences() throws {
        var failures: [String] = []
        for row in try Self.rows() {
            let text = row["text"]!.string!
            for (key, normalizer) in Self.forms {
                let want = row[key]!.string!
                let got = normalizer.normalize(text)
                if !Array(got.unicodeScalars).elementsEqual(Array(want.unicodeScalars)) {
                    failures.append("\(key)(\(JSONValue.quoted(text))): got \(JSONValue.quoted(got)) want \(JSONValue.quoted(want))")
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.count) mismatches: \(failures.prefix(6))")
    }

    /// Every normalized scalar points at the original scalars HuggingFace's points at, for the
    /// forms that do not compose (canonical reordering leaves the ranges in place, so the k-th
    /// mark of a reordered run keeps the k-th position's range). Composed scalars unite their
    /// parts' ranges (where HF keeps the first part's): checked by what the ranges cover.
    @Test func alignmentsMatchTheReferences() throws {
        var failures: [String] = []
        for row in try Self.rows() {
            let text = row["text"]!.string!
            let original = Array(text.unicodeScalars)
            for (key, normalizer) in Self.forms where key != "nfc" && key != "nfkc" {
                var s = NormalizedString(text)
                normalizer.normalize(&s)
                let want = try require(row[key + "_align"]?.array).map { pair in
                    (Int32(pair.array![0].int!), Int32(pair.array![1].int!))
                }
                let got = (0..<s.count).map { (s.starts[$0], s.ends[$0]) }
                if !got.elementsEqual(want, by: ==) {
                    failures.append("\(key)(\(JSONValue.quoted(text))): got \(got) want \(want)")
                }
            }
            // Composition: ranges of merged scalars are united, and still cover the whole text in order.
            for normalizer in [Normalizer.nfc, .nfkc] {
                var s = NormalizedString(text)
                normalizer.normalize(&s)
                #expect(zip(s.starts, s.ends).allSatisfy { $0 < $1 && Int($1) <= original.count })
                let decomposition: Normalizer = normalizer == .nfkc ? .nfkd : .nfd
                #expect(decomposition.normalize(s.normalized) == decomposition.normalize(text))
            }
            // A span over the whole normalized text maps back to the whole original (reordered
            // marks once pointed the last scalar at an earlier original one: "\u{345}\u{301}"
            // under NFKC came back as the empty 1..<1).
            for normalizer in [Normalizer.nfc, .nfd, .nfkc, .nfkd] where !original.isEmpty {
                var s = NormalizedString(text)
                normalizer.normalize(&s)
                #expect(s.originalRange(0, s.count) == 0..<original.count, "\(normalizer) of \(JSONValue.quoted(text))")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) mismatches: \(failures.prefix(6))")
    }
}
