import GraftSupport
import Foundation
@testable import GraftTokenizers

/// Paths the tests use: fixtures copied into the repository, and the optional shared data.
enum TestPaths {
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = packageRoot.appendingPathComponent("Tests/GraftTokenizersTests/Fixtures")
    static let vocab = packageRoot.appendingPathComponent("vocab")

    /// The shared data directory (`GRAFT_DATA_DIR`, else `../shared/data`), if present.
    static let dataDir: URL? = {
        if let env = ProcessInfo.processInfo.environment["GRAFT_DATA_DIR"], !env.isEmpty {
            return FileManager.default.fileExists(atPath: env) ? URL(fileURLWithPath: env) : nil
        }
        let candidate = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data")
        return FileManager.default.fileExists(atPath: candidate.path) ? candidate : nil
    }()
}

/// One line of the HuggingFace reference encodings.
struct ReferenceLine {
    var id: String
    var category: String
    var text: String
    var ids: [Int32]
    var tokens: [String]
    var offsets: [Range<Int>]
    var byteOffsets: [Range<Int>]
    var specialTokensMask: [Int32]
    var typeIds: [Int32]
    var decoded: String

    static func load(_ name: String) throws -> [ReferenceLine] {
        let path = TestPaths.fixtures.appendingPathComponent("\(name).jsonl").path
        let data = try require(FileManager.default.contents(atPath: path))
        var lines: [ReferenceLine] = []
        for raw in data.split(separator: 10) where !raw.isEmpty {
            let j = try JSONValue.parse(Array(raw), path: path)
            lines.append(ReferenceLine(
                id: j["id"]!.string!, category: j["category"]!.string!, text: j["text"]!.string!,
                ids: j["ids"]!.array!.map { Int32($0.int!) },
                tokens: j["tokens"]!.array!.map { $0.string! },
                offsets: j["offsets"]!.array!.map { $0.array![0].int!..<$0.array![1].int! },
                byteOffsets: j["byte_offsets"]!.array!.map { $0.array![0].int!..<$0.array![1].int! },
                specialTokensMask: j["special_tokens_mask"]!.array!.map { Int32($0.int!) },
                typeIds: j["type_ids"]!.array!.map { Int32($0.int!) },
                decoded: j["decoded"]!.string!))
        }
        return lines
    }
}

import Testing
func require<T>(_ v: T?) throws -> T { try #require(v) }
