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
        ("nfc", .nfc), ("nfd", .nfd), ("nfkc", .nfkc), ("nfkd", .nfkd), ("lowercase", .lowercase), ("strip_accents", .sequence([.nfd, .stripAccents])),
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

    /// Every normalized scalar points at the original scalars it came from: gathering the
    /// normalized scalars by their original range gives exactly the normalization of that range
    /// (as a multiset, since canonical reordering may interleave marks of neighbouring characters).
    @Test func alignmentsPointAtTheCharactersEachScalarCameFrom() throws {
        for row in try Self.rows() {
            let text = row["text"]!.string!
            let original = Array(text.unicodeScalars)
            for (key, normalizer) in Self.forms where key != "nfc" && key != "nfkc" {
                var s = NormalizedString(text)
                normalizer.normalize(&s)
                var groups: [Int: (end: Int, scalars: [UInt32])] = [:]
                for i in 0..<s.count {
                    let start = Int(s.starts[i]), end = Int(s.ends[i])
                    #expect(start < end && end <= original.count)
                    groups[start, default: (end, [])].scalars.append(s.scalars[i])
                }
                for (start, group) in groups {
                    let source = String(String.UnicodeScalarView(original[start..<group.end]))
                    let expected = normalizer.normalize(source).unicodeScalars.map(\.value)
                    #expect(expected.sorted() == group.scalars.sorted(), "\(key) of \(JSONValue.quoted(text)) at \(start)..<\(group.end)")
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
        }
    }
}
