import Foundation

/// A JSON value that keeps object keys in file order and strings exactly as written
/// (no canonical-equivalence merging of keys, unlike `[String: Any]`).
///
/// This is Graft's one JSON writer: every JSON text Graft writes (files, stored metadata and
/// source identities, run records, `--json` output) is a `JSONValue` passed through
/// ``serialized(pretty:escapingSlashes:)``. Build one directly, from an `Encodable` value
/// (``init(encoding:sortedKeys:)``) or from Foundation JSON objects (``init(jsonObject:)``).
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// A number as a `Double` (what the parser produces).
    case number(Double)
    /// A number written exactly as this JSON number text: 64-bit integers beyond 2^53 (ids,
    /// seeds), a `Float` in its own shortest digits, decimals longer than a `Double`. The
    /// writers make these (``integer(_:)``, ``float(_:)``); the text must be a valid JSON number.
    case exactNumber(String)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    /// An integer, written exactly (no rounding through `Double`).
    public static func integer(_ value: some BinaryInteger) -> JSONValue { .exactNumber(String(value)) }

    /// A `Float` in its own shortest round-trip digits (as `JSONEncoder` writes it: `0.1`, not
    /// `0.10000000149011612`); not finite: `null`.
    public static func float(_ value: Float) -> JSONValue {
        guard value.isFinite else { return .null }
        return .exactNumber(trimmingPointZero(value.description))
    }

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.exactNumber(let a), .exactNumber(let b)): return a == b || (Double(a).map { $0 == Double(b) } ?? false)
        case (.number(let a), .exactNumber(let b)), (.exactNumber(let b), .number(let a)): return Double(b) == a
        case (.string(let a), .string(let b)): return a.utf8.elementsEqual(b.utf8)
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.0.utf8.elementsEqual($1.0.utf8) && $0.1 == $1.1 }
        default: return false
        }
    }

    /// The member named `key` of an object (first match, exact bytes).
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0.utf8.elementsEqual(key.utf8) }?.1
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var double: Double? {
        switch self {
        case .number(let d): return d
        case .exactNumber(let text): return Double(text)
        default: return nil
        }
    }
    public var int: Int? {
        if case .exactNumber(let text) = self, let i = Int(text) { return i }
        if let d = double, d == d.rounded(), abs(d) < 9e15 { return Int(d) }
        return nil
    }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var array: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    public var object: [(String, JSONValue)]? { if case .object(let o) = self { return o }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }

    // MARK: Parsing

    /// Parses JSON text.
    /// - Throws: ``SupportError/malformedJSON(path:line:reason:)`` naming the line of the problem.
    public static func parse(_ bytes: [UInt8], path: String = "<json>") throws -> JSONValue {
        var parser = JSONParser(bytes: bytes, path: path)
        return try parser.parseDocument()
    }

    public static func parse(_ text: String, path: String = "<json>") throws -> JSONValue {
        try parse(Array(text.utf8), path: path)
    }

    // MARK: Writing

    /// The JSON text of this value: compact, or `pretty` (two-space indentation, `"key": value`).
    ///
    /// - Strings: UTF-8 as they are, except `"` and `\` escaped, `\b \f \n \r \t` as short
    ///   escapes and the other control characters below U+0020 as `\u00XX` (what JSONSerialization,
    ///   Python's `json` with `ensure_ascii=False` and serde_json write). `/` is written as it is
    ///   unless `escapingSlashes` (JSONSerialization's default, `\/`: kept for the corpus store's
    ///   source identities, whose bytes are compared).
    /// - Numbers: a `Double` in its shortest round-trip digits (Swift's `description`, which
    ///   `Double(_:)` reads back to the same bits), without a trailing `.0`: `1`, `0.1`, `-0`,
    ///   `1e-07`, `1e+16`, `1.7976931348623157e+308`; the same text JSONSerialization and
    ///   JSONEncoder write. JSON has no NaN or infinity: those are written as `null` (as
    ///   JavaScript's `JSON.stringify` does). ``exactNumber(_:)`` is written verbatim.
    /// - Objects keep their member order (``init(encoding:sortedKeys:)`` and
    ///   ``init(jsonObject:)`` decide it when the source has none).
    public func serialized(pretty: Bool = false, escapingSlashes: Bool = false) -> String {
        var out = [UInt8]()
        write(into: &out, pretty: pretty, escapingSlashes: escapingSlashes, indent: 0)
        return String(decoding: out, as: UTF8.self)
    }

    func write(into out: inout [UInt8], pretty: Bool, escapingSlashes: Bool, indent: Int) {
        switch self {
        case .null: out += Array("null".utf8)
        case .bool(let b): out += Array((b ? "true" : "false").utf8)
        case .number(let d): out += Array(JSONValue.numberText(d).utf8)
        case .exactNumber(let text): out += Array(text.utf8)
        case .string(let s): JSONValue.writeString(s, into: &out, escapingSlashes: escapingSlashes)
        case .array(let items):
            if items.isEmpty { out += Array("[]".utf8); return }
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                if pretty { newline(&out, indent + 1) }
                item.write(into: &out, pretty: pretty, escapingSlashes: escapingSlashes, indent: indent + 1)
            }
            if pretty { newline(&out, indent) }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            if members.isEmpty { out += Array("{}".utf8); return }
            out.append(UInt8(ascii: "{"))
            for (i, (k, v)) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                if pretty { newline(&out, indent + 1) }
                JSONValue.writeString(k, into: &out, escapingSlashes: escapingSlashes)
                out.append(UInt8(ascii: ":"))
                if pretty { out.append(UInt8(ascii: " ")) }
                v.write(into: &out, pretty: pretty, escapingSlashes: escapingSlashes, indent: indent + 1)
            }
            if pretty { newline(&out, indent) }
            out.append(UInt8(ascii: "}"))
        }
    }

    private func newline(_ out: inout [UInt8], _ indent: Int) {
        out.append(10)
        for _ in 0..<(indent * 2) { out.append(32) }
    }

    /// The JSON text of a `Double`: shortest round-trip digits, no trailing `.0`; `null` when not finite.
    public static func numberText(_ d: Double) -> String {
        d.isFinite ? trimmingPointZero(d.description) : "null"
    }

    static func trimmingPointZero(_ s: String) -> String { s.hasSuffix(".0") ? String(s.dropLast(2)) : s }

    /// Writes a JSON string literal (escapes as ``serialized(pretty:escapingSlashes:)`` describes).
    public static func writeString(_ s: String, into out: inout [UInt8], escapingSlashes: Bool = false) {
        out.append(UInt8(ascii: "\""))
        let hex = Array("0123456789abcdef".utf8)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += [92, 34]
            case 92: out += [92, 92]
            case UInt8(ascii: "/") where escapingSlashes: out += [92, 47]
            case 8: out += [92, UInt8(ascii: "b")]
            case 12: out += [92, UInt8(ascii: "f")]
            case 10: out += [92, UInt8(ascii: "n")]
            case 13: out += [92, UInt8(ascii: "r")]
            case 9: out += [92, UInt8(ascii: "t")]
            case 0..<0x20:
                out += [92, UInt8(ascii: "u"), 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]]
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// A JSON string literal as a Swift string.
    public static func quoted(_ s: String) -> String {
        var out = [UInt8]()
        writeString(s, into: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

struct JSONParser {
    let bytes: [UInt8]
    let path: String
    var i = 0

    init(bytes: [UInt8], path: String) { self.bytes = bytes; self.path = path }

    func fail(_ reason: String) -> SupportError {
        let line = bytes[..<min(i, bytes.count)].reduce(1) { $0 + ($1 == 10 ? 1 : 0) }
        return SupportError.malformedJSON(path: path, line: line, reason: "invalid JSON: \(reason)")
    }

    mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 32 || bytes[i] == 9 || bytes[i] == 10 || bytes[i] == 13 { i += 1 }
    }

    mutating func parseDocument() throws -> JSONValue {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }
        let v = try parseValue(depth: 0)
        skipSpace()
        if i != bytes.count { throw fail("unexpected data after the JSON value") }
        return v
    }

    mutating func parseValue(depth: Int) throws -> JSONValue {
        guard depth < 512 else { throw fail("nesting too deep") }
        skipSpace()
        guard i < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            i += 1
            var members: [(String, JSONValue)] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let key = try parseString()
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                members.append((key, try parseValue(depth: depth + 1)))
                skipSpace()
                guard i < bytes.count else { throw fail("unexpected end of input in an object") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            var items: [JSONValue] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                items.append(try parseValue(depth: depth + 1))
                skipSpace()
                guard i < bytes.count else { throw fail("unexpected end of input in an array") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"):
            try literal("true"); return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false"); return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null"); return .null
        default:
            return .number(try parseNumber())
        }
    }

    mutating func literal(_ word: String) throws {
        let w = Array(word.utf8)
        guard i + w.count <= bytes.count, Array(bytes[i..<(i + w.count)]) == w else { throw fail("unexpected token") }
        i += w.count
    }

    mutating func parseNumber() throws -> Double {
        let start = i
        while i < bytes.count, let c = Optional(bytes[i]),
              (c >= 48 && c <= 57) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            i += 1
        }
        guard i > start, let d = Double(String(decoding: bytes[start..<i], as: UTF8.self)) else { throw fail("invalid number") }
        return d
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            v <<= 4
            switch c {
            case 48...57: v |= UInt32(c - 48)
            case 65...70: v |= UInt32(c - 55)
            case 97...102: v |= UInt32(c - 87)
            default: throw fail("invalid \\u escape")
            }
            i += 1
        }
        return v
    }

    mutating func parseString() throws -> String {
        i += 1  // opening quote
        let start = i
        // Fast path: no escapes.
        while i < bytes.count, bytes[i] != UInt8(ascii: "\""), bytes[i] != 92 { i += 1 }
        guard i < bytes.count else { throw fail("unterminated string") }
        if bytes[i] == UInt8(ascii: "\"") {
            let s = try validated(bytes[start..<i])
            i += 1
            return s
        }
        var out = Array(bytes[start..<i])
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                return try validated(out[...])
            }
            if c == 92 {
                i += 1
                guard i < bytes.count else { break }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(34)
                case 92: out.append(92)
                case UInt8(ascii: "/"): out.append(47)
                case UInt8(ascii: "b"): out.append(8)
                case UInt8(ascii: "f"): out.append(12)
                case UInt8(ascii: "n"): out.append(10)
                case UInt8(ascii: "r"): out.append(13)
                case UInt8(ascii: "t"): out.append(9)
                case UInt8(ascii: "u"):
                    var cp = try hex4()
                    if cp >= 0xD800 && cp < 0xDC00 {
                        guard i + 6 <= bytes.count, bytes[i] == 92, bytes[i + 1] == UInt8(ascii: "u") else { throw fail("unpaired surrogate") }
                        i += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw fail("unpaired surrogate") }
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00)
                    } else if cp >= 0xDC00 && cp < 0xE000 {
                        throw fail("unpaired surrogate")
                    }
                    UTF8Validation.append(cp, to: &out)
                default: throw fail("invalid escape")
                }
            } else {
                out.append(c)
                i += 1
            }
        }
        throw fail("unterminated string")
    }

    func validated(_ slice: ArraySlice<UInt8>) throws -> String {
        let bad = UTF8Validation.firstInvalidByte(slice)
        if bad != nil { throw fail("invalid UTF-8 in a string") }
        return String(decoding: slice, as: UTF8.self)
    }
}
