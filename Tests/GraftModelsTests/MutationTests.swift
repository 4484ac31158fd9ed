import Foundation
import GraftEngine
import GraftSupport
import GraftTokenizers
import Testing
@testable import GraftModels

/// Hostile numbers in the files a user hands Graft: every id, size and count is replaced (seeded,
/// a few hundred mutations) by values that trap integer conversions or ask for huge
/// allocations. Each file must give a clean thrown error or load into something usable, never
/// trap (a trap ends the test process, failing the run).
@Suite struct MutationTests {
    static let hostile: [Double] = [2_147_483_648, 1e9, 1e12, 4_294_967_296, 9e15, -1, -2_147_483_649, 0.5, 1e300, 0]

    /// Paths to every number in a JSON value (object keys and array indices).
    static func numberPaths(_ v: JSONValue, _ prefix: [String] = []) -> [[String]] {
        switch v {
        case .number: return [prefix]
        case .array(let items): return items.enumerated().flatMap { numberPaths($0.element, prefix + ["\($0.offset)"]) }
        case .object(let members): return members.flatMap { numberPaths($0.1, prefix + [$0.0]) }
        default: return []
        }
    }

    static func replacing(_ v: JSONValue, at path: ArraySlice<String>, with x: Double) -> JSONValue {
        guard let head = path.first else { return .number(x) }
        switch v {
        case .array(var items):
            let i = Int(head)!
            items[i] = replacing(items[i], at: path.dropFirst(), with: x)
            return .array(items)
        case .object(var members):
            let i = members.firstIndex { $0.0 == head }!
            members[i].1 = replacing(members[i].1, at: path.dropFirst(), with: x)
            return .object(members)
        default: return v
        }
    }

    /// `count` seeded mutations of `json`: one or two numbers replaced by hostile values.
    static func mutations(of json: JSONValue, count: Int, seed: UInt64) -> [JSONValue] {
        let paths = numberPaths(json)
        var rng = RNG(seed: seed)
        return (0..<count).map { _ in
            var v = json
            for _ in 0...rng.int(below: 2) {
                v = replacing(v, at: paths[rng.int(below: paths.count)][...], with: hostile[rng.int(below: hostile.count)])
            }
            return v
        }
    }

    @Test func tokenizerJSONWithHostileIds() throws {
        var rejected = 0
        for tok in [try smallWordPieceTokenizer(), try smallBPETokenizer()] {
            for (i, mutated) in Self.mutations(of: tok.toJSON(), count: 150, seed: 11).enumerated() {
                do {
                    let loaded = try Tokenizer.fromJSON(JSONValue.parse(mutated.serialized()), path: "mutant-\(i).json")
                    _ = try loaded.encode("the cat sat on the mat", addSpecialTokens: true)
                } catch let error as TokenizerError {
                    rejected += 1
                    if case .malformed(let path, _, let reason) = error {
                        #expect(path == "mutant-\(i).json")
                        #expect(!reason.isEmpty)
                    }
                }
            }
        }
        #expect(rejected > 100)
        // The cases the issue names, exactly.
        for big in [2_147_483_648.0, 1e9] {
            let json = try smallWordPieceTokenizer().toJSON()
            let path = Self.numberPaths(json).first { $0.first == "model" && $0.dropFirst().first == "vocab" }!
            let mutated = Self.replacing(json, at: path[...], with: big)
            #expect(throws: TokenizerError.self) { try Tokenizer.fromJSON(mutated, path: "t.json") }
        }
    }

    @Test func configJSONWithHostileSizes() throws {
        var rejected = 0
        for kind in [ModelKind.bert, .gpt] {
            for (i, mutated) in Self.mutations(of: tinyConfig(kind).hfJSON(), count: 150, seed: 5).enumerated() {
                do {
                    let config = try ModelConfig(hfJSON: mutated, path: "config-\(i).json")
                    #expect(config.parameterCountEstimate <= ModelConfig.maxParameters)
                } catch let error as ModelError {
                    rejected += 1
                    #expect("\(error)".contains("config-\(i).json"))
                }
            }
        }
        #expect(rejected > 100)
        var json = tinyConfig(.bert).hfJSON()
        json = Self.replacing(json, at: ["hidden_size"][...], with: 1e9)
        #expect(throws: ModelError.self) { try ModelConfig(hfJSON: json, path: "config.json") }
        for (key, value) in [("vocab_size", 1e12), ("num_hidden_layers", 1e6), ("intermediate_size", 1e9)] {
            let j = Self.replacing(tinyConfig(.bert).hfJSON(), at: [key][...], with: value)
            do {
                _ = try ModelConfig(hfJSON: j, path: "config.json")
                Issue.record("\(key) \(value) was accepted")
            } catch let error as ModelError {
                #expect("\(error)".contains(key) || "\(error)".contains("parameters"))
            }
        }
    }

    @Test func safetensorsHeadersWithHostileShapesAndOffsets() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }  // cleanup of a test directory
        let url = dir.appendingPathComponent("w.safetensors")
        let a = [Float](repeating: 1, count: 12), b = [Float](repeating: 2, count: 5)
        try a.withUnsafeBufferPointer { pa in
            try b.withUnsafeBufferPointer { pb in
                try SafeTensors.write([.init(name: "a", shape: [3, 4], data: pa.baseAddress!),
                                       .init(name: "b", shape: [5], data: pb.baseAddress!)], to: url)
            }
        }
        let bytes = [UInt8](try Data(contentsOf: url))
        var n = 0
        for i in 0..<8 { n |= Int(bytes[i]) << (8 * i) }
        let header = try JSONValue.parse(Array(bytes[8..<(8 + n)]))
        let payload = bytes[(8 + n)...]
        var rejected = 0
        for mutated in Self.mutations(of: header, count: 200, seed: 3) {
            var h = Array(mutated.serialized().utf8)
            while h.count % 8 != 0 { h.append(0x20) }
            var file = (0..<8).map { UInt8((h.count >> (8 * $0)) & 0xFF) }
            file += h
            file += payload
            do {
                let st = try SafeTensors(data: Data(file), path: "mutant.safetensors")
                for name in ["a", "b"] { _ = try st.floats(name) }
            } catch let error as EngineError {
                rejected += 1
                #expect("\(error)".contains("mutant.safetensors"))
            }
        }
        #expect(rejected > 150)
        // A header length past the file, and one of 2^63.
        for length in [UInt64(bytes.count), UInt64(1) << 63] {
            var file = bytes
            for i in 0..<8 { file[i] = UInt8((length >> (8 * UInt64(i))) & 0xFF) }
            #expect(throws: EngineError.self) { try SafeTensors(data: Data(file), path: "len.safetensors") }
        }
    }
}
