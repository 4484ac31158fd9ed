import Foundation
import GraftSupport
import Testing

/// `JSONValue.serialized` is Graft's one JSON writer. Where Foundation's writers wrote bytes
/// that are stored or compared (document metadata, source identities, checkpoint settings),
/// it must write the same bytes: these tests compare against JSONSerialization and JSONEncoder.
@Suite struct JSONWriterTests {
    /// Every control character, DEL, quote, backslash, slash, non-ASCII (two, three and four
    /// bytes), U+2028 and a combining accent.
    static let awkward: String = {
        var s = String(String.UnicodeScalarView((0..<0x20).map { Unicode.Scalar(UInt8($0)) }))
        s += "\u{7F} \"quoted\" back\\slash a/b </script> é € 😀 \u{2028} e\u{301} 中文"
        return s
    }()

    static func foundation(_ object: Any, _ options: JSONSerialization.WritingOptions) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: options.union(.fragmentsAllowed)), as: UTF8.self)
    }

    /// Metadata as the importers build it, with keys whose JSONSerialization order is not byte order.
    static var metadata: [String: Any] { [
        "title": awkward, "a10": 1, "a9": 2, "B": 3, "a": true, "_x": NSNull(), "Z": -0.5, "1": 1, "10": 10, "2": 2,
        "task": "x", "Task": "y", "textField": "", "é": "accent", "e": ["nested": ["k": "v/w", "K": 1, "k2": [false]]],
        "doubles": [0.1, 1e-7, 2.5e-5, 1e15, 1e16, 1e21, 1e300, Double.leastNonzeroMagnitude, Double.greatestFiniteMagnitude, -0.0, 123456789.125, 3.0, 100, 0.30000000000000004],
        "ints": [0, -1, Int64.max, Int64.min, UInt64.max, Int8(3)] as [Any], "float": [Float(0.1), Float(1e8), Float(1e-12)],
    ] }

    @Test func foundationObjectsGetJSONSerializationsBytes() throws {
        let value = try JSONValue(jsonObject: Self.metadata)
        #expect(value.serialized() == (try Self.foundation(Self.metadata, [.sortedKeys, .withoutEscapingSlashes])))
        #expect(value.serialized(escapingSlashes: true) == (try Self.foundation(Self.metadata, [.sortedKeys])))
        #expect(JSONValue.string(Self.awkward).serialized() == (try Self.foundation(Self.awkward, [.withoutEscapingSlashes])))
    }

    /// Values as JSONSerialization reads them from a JSON Lines import (NSNumber integers,
    /// doubles, booleans and decimals beyond 64 bits), written back byte for byte.
    @Test func parsedJSONLinesKeepTheirBytes() throws {
        let lines = [
            #"{"id": 9007199254740993, "big": 123456789012345678901234567890, "x": 1.10, "e": 1E2, "t": true, "f": false, "n": null}"#,
            #"{"s": "a\u00e9\/\b\f\u0001\u007f", "neg": -9223372036854775808, "u": 18446744073709551615, "arr": [1, 2.5, "x", [], {}], "0": 0, "-0": -0, "d": -0.0}"#,
            #"{"Name": "B", "name": "b", "name10": 1, "name9": 2, "ä": "ä", "z": 1e-320, "w": 4.35, "frac": 12345678901234567890123.5}"#,
        ]
        for line in lines {
            let parsed = try JSONSerialization.jsonObject(with: Data(line.utf8))
            #expect(try JSONValue(jsonObject: parsed).serialized() == (try Self.foundation(parsed, [.sortedKeys, .withoutEscapingSlashes])))
        }
    }

    struct Inner: Codable { var name = "in/side"; var values: [Double] = [0.5, 1e-7] }
    enum Kind: String, Codable { case masked, causal }
    struct Sample: Codable {
        var seqLen = 128
        var maskProbability: Float = 0.15
        var wholeWordMask = false
        var learningRate: Float = 5e-5
        var weightDecay: Float = 0.01
        var tiny: Float = 1e-12
        var seed: UInt64 = .max
        var offset: Int64 = .min
        var ratio = 0.1
        var text = JSONWriterTests.awkward
        var missing: String? = nil
        var present: Int? = 7
        var counts: [String: Int] = ["b": 1, "B": 2, "a10": 3, "a9": 4, "é": 5, "_": 6]
        var inner = Inner()
        var kinds: [Kind] = [.masked, .causal]
        var nothing: [Int] = []
        var url = URL(string: "https://example.com/a?b=c")!
        var data = Data([0, 1, 2, 255])
    }

    @Test func encodableValuesGetJSONEncodersBytes() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        #expect(try JSONValue(encoding: Sample(), sortedKeys: true).serialized() == String(decoding: try encoder.encode(Sample()), as: UTF8.self))
        // Without sorting: the declaration order.
        #expect(try JSONValue(encoding: Inner()).serialized() == #"{"name":"in/side","values":[0.5,1e-07]}"#)
        #expect(throws: EncodingError.self) { try JSONValue(encoding: [Double.nan]) }
        #expect(throws: EncodingError.self) { try JSONValue(encoding: Float.infinity) }
    }

    @Test func numbersAreShortestAndRoundTripExactly() throws {
        let cases: [(Double, String)] = [
            (0, "0"), (-0.0, "-0"), (1, "1"), (0.1, "0.1"), (1e-7, "1e-07"), (9e15, "9000000000000000"), (1e16, "1e+16"),
            (Double.leastNonzeroMagnitude, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"), (.nan, "null"), (-.infinity, "null"),
        ]
        for (d, text) in cases { #expect(JSONValue.number(d).serialized() == text) }
        #expect(JSONValue.integer(UInt64.max).serialized() == "18446744073709551615")
        #expect(JSONValue.float(0.1).serialized() == "0.1" && JSONValue.float(.nan) == .null)
        #expect(JSONValue.integer(42).int == 42 && JSONValue.float(0.5).double == 0.5 && JSONValue.integer(3) == .number(3))
        var generator = SplitMix64(seed: 8)
        var mismatches = 0
        for i in 0..<20_000 {
            // Random bit patterns (all exponents), then values near integers and small decimals.
            let bits = generator.next()
            let d = i % 2 == 0 ? Double(bitPattern: bits) : Double(Int64(bitPattern: bits) >> (bits % 60)) / 1000
            guard d.isFinite else { continue }
            let back = try JSONValue.parse(JSONValue.array([.number(d)]).serialized()).array?.first?.double
            if back?.bitPattern != d.bitPattern { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    @Test func prettyOutputIndentsByTwo() throws {
        let v = JSONValue.object([("a", .array([.integer(1), .object([])])), ("b", .string("x"))])
        #expect(v.serialized(pretty: true) == "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": \"x\"\n}")
    }
}
