import Foundation
import GraftCorpus

/// A tagging scheme: how a sequence of per-token tags encodes typed spans.
///
/// - `iob2`: `B-X` begins an entity of type X, `I-X` continues it, `O` is outside.
/// - `bioes`: as IOB2, plus `E-X` ends a multi-token entity and `S-X` is a single-token entity.
public enum TagScheme: String, Sendable, Equatable, Codable, CaseIterable {
    case iob2
    case bioes

    /// The prefixes of the tags of one entity type, in label-set order.
    public var prefixes: [String] {
        switch self {
        case .iob2: ["B", "I"]
        case .bioes: ["B", "I", "E", "S"]
        }
    }

    /// Parses `iob2`/`bio`/`iob` and `bioes`/`iobes` (case-insensitive).
    public init?(name: String) {
        switch name.lowercased() {
        case "iob2", "bio", "iob": self = .iob2
        case "bioes", "iobes": self = .bioes
        default: return nil
        }
    }
}

/// A tag split as seqeval splits it: the prefix is the first character (`B`, `I`, `O`, `E`, `S`),
/// the type is the rest with `-` trimmed at both ends (`_` when nothing is left; `O` has type `_`).
public struct ParsedTag: Sendable, Equatable, Hashable {
    public var prefix: Character
    public var type: String

    public init(_ tag: String) {
        prefix = tag.first ?? "?"
        var rest = Substring(tag.dropFirst())
        while rest.first == "-" { rest = rest.dropFirst() }
        while rest.last == "-" { rest = rest.dropLast() }
        type = rest.isEmpty ? "_" : String(rest)
    }

    public init(prefix: Character, type: String) {
        self.prefix = prefix
        self.type = type
    }

    public var isOutside: Bool { prefix == "O" }
}

/// A typed span of tokens `[start, end)` (token indices).
public struct TokenSpan: Sendable, Equatable, Hashable, Codable {
    public var start: Int
    public var end: Int
    public var type: String

    public init(start: Int, end: Int, type: String) {
        self.start = start
        self.end = end
        self.type = type
    }
}

/// A typed span of text: `[start, end)` in Unicode scalars of the original text — the corpus
/// store's entity span, so spans read from files and from the store are one type.
public typealias CharacterSpan = EntitySpan

extension TagScheme {
    /// The tag of piece `k` of `n` when one tagged word is read as `n` words: the entity the word's
    /// `tag` opens, continues or closes runs through all its pieces (`B-X` -> `B-X I-X …`;
    /// BIOES `S-X` -> `B-X I-X … E-X`, `E-X` -> `I-X … E-X`); `O` and `I-X` stay as they are.
    public func pieceTag(_ tag: String, piece k: Int, of n: Int) -> String {
        let t = ParsedTag(tag)
        guard n > 1, !t.isOutside else { return tag }
        let last = k == n - 1
        switch (self, t.prefix) {
        case (_, "B"): return k == 0 ? tag : "I-\(t.type)"
        case (.bioes, "S"): return k == 0 ? "B-\(t.type)" : last ? "E-\(t.type)" : "I-\(t.type)"
        case (.bioes, "E"): return last ? tag : "I-\(t.type)"
        default: return tag
        }
    }

    /// The prefixes seqeval allows for this scheme.
    var allowedPrefixes: Set<Character> {
        switch self {
        case .iob2: ["I", "O", "B"]
        case .bioes: ["I", "O", "B", "E", "S"]
        }
    }

    /// Checks that every tag has a prefix of the scheme (seqeval raises on anything else).
    func checkPrefixes(_ tags: [ParsedTag], raw: [String]) throws {
        for (i, t) in tags.enumerated() where !allowedPrefixes.contains(t.prefix) {
            throw TaskError.invalidArgument("tag \(i) \"\(raw[i])\" has no \(rawValue.uppercased()) prefix (allowed: \(allowedPrefixes.sorted().map(String.init).joined(separator: ", ")))")
        }
    }

    private func isStart(_ prev: ParsedTag, _ cur: ParsedTag) -> Bool {
        switch self {
        case .iob2: cur.prefix == "B"
        case .bioes: cur.prefix == "B" || cur.prefix == "S"
        }
    }

    private func isInside(_ prev: ParsedTag, _ cur: ParsedTag) -> Bool {
        guard prev.type == cur.type else { return false }
        switch self {
        case .iob2: return (prev.prefix == "B" || prev.prefix == "I") && cur.prefix == "I"
        case .bioes: return (prev.prefix == "B" || prev.prefix == "I") && (cur.prefix == "I" || cur.prefix == "E")
        }
    }

    private func isEnd(_ prev: ParsedTag, _ cur: ParsedTag) -> Bool {
        switch self {
        case .iob2:
            switch (prev.prefix, cur.prefix) {
            case ("I", "O"), ("I", "B"), ("B", "O"), ("B", "B"): return true
            case ("I", "I"), ("B", "I"): return prev.type != cur.type
            default: return false
            }
        case .bioes:
            return prev.prefix == "S" || prev.prefix == "E"
        }
    }

    /// The entities of a tag sequence exactly as seqeval extracts them in strict mode
    /// (`seqeval.scheme.Tokens(tags, IOB2 / IOBES).entities`): a chunk counts only when it starts,
    /// continues and ends as the scheme requires; anything else (an `I-X` after `O`, a type change
    /// inside a chunk, a BIOES chunk without its `E-`) is not an entity.
    ///
    /// Throws when a tag's prefix is not one of the scheme's.
    public func strictSpans(_ tags: [String]) throws -> [TokenSpan] {
        let parsed = tags.map(ParsedTag.init)
        try checkPrefixes(parsed, raw: tags)
        return strictSpans(parsed: parsed)
    }

    func strictSpans(parsed: [ParsedTag]) -> [TokenSpan] {
        let outside = ParsedTag(prefix: "O", type: "_")
        let ext = parsed + [outside]
        var spans: [TokenSpan] = []
        var i = 0
        var prev = outside
        while i < ext.count {
            let token = ext[i]
            if isStart(prev, token) {
                var end = ext.count - 2
                var p = token
                var j = i + 1
                while j < ext.count {
                    if isInside(p, ext[j]) { p = ext[j]; j += 1 } else { end = j; break }
                }
                if isEnd(ext[end - 1], ext[end]) {
                    spans.append(TokenSpan(start: i, end: end, type: token.type))
                }
                i = end
            } else {
                i += 1
            }
            prev = ext[i - 1]
        }
        return spans
    }

    /// The entities of a tag sequence read leniently, as conlleval does: an `I-X` (or `E-X`) that
    /// does not continue an open `X` entity starts a new one; a type change closes the open one.
    public func lenientSpans(_ tags: [String]) -> [TokenSpan] {
        var spans: [TokenSpan] = []
        var open: (start: Int, type: String)?
        func close(_ end: Int) {
            if let o = open { spans.append(TokenSpan(start: o.start, end: end, type: o.type)) }
            open = nil
        }
        for (i, raw) in tags.enumerated() {
            let t = ParsedTag(raw)
            switch t.prefix {
            case "B":
                close(i); open = (i, t.type)
            case "I":
                if open?.type != t.type { close(i); open = (i, t.type) }
            case "E" where self == .bioes:
                if open?.type != t.type { close(i); open = (i, t.type) }
                close(i + 1)
            case "S" where self == .bioes:
                close(i); open = (i, t.type); close(i + 1)
            default:
                close(i)
            }
        }
        close(tags.count)
        return spans
    }

    /// The tags of `spans` over `count` tokens (spans must not overlap).
    public func tags(for spans: [TokenSpan], count: Int) throws -> [String] {
        var tags = [String](repeating: "O", count: count)
        for s in spans.sorted(by: { $0.start < $1.start }) {
            guard s.start >= 0, s.end <= count, s.start < s.end else {
                throw TaskError.invalidArgument("span [\(s.start), \(s.end)) of type \(s.type) is outside 0..<\(count) or empty")
            }
            guard tags[s.start..<s.end].allSatisfy({ $0 == "O" }) else {
                throw TaskError.invalidArgument("span [\(s.start), \(s.end)) of type \(s.type) overlaps another span")
            }
            switch self {
            case .iob2:
                tags[s.start] = "B-\(s.type)"
                for k in (s.start + 1)..<s.end { tags[k] = "I-\(s.type)" }
            case .bioes:
                if s.end - s.start == 1 {
                    tags[s.start] = "S-\(s.type)"
                } else {
                    tags[s.start] = "B-\(s.type)"
                    for k in (s.start + 1)..<(s.end - 1) { tags[k] = "I-\(s.type)" }
                    tags[s.end - 1] = "E-\(s.type)"
                }
            }
        }
        return tags
    }

    /// The same entities with valid tags: ``lenientSpans(_:)`` re-encoded.
    public func repaired(_ tags: [String]) throws -> [String] {
        try self.tags(for: lenientSpans(tags), count: tags.count)
    }

    /// Whether a sequence may start with `tag`.
    public func allowsStart(_ tag: ParsedTag) -> Bool {
        switch self {
        case .iob2: tag.prefix == "O" || tag.prefix == "B"
        case .bioes: tag.prefix == "O" || tag.prefix == "B" || tag.prefix == "S"
        }
    }

    /// Whether a sequence may end with `tag`.
    public func allowsEnd(_ tag: ParsedTag) -> Bool {
        switch self {
        case .iob2: tag.prefix == "O" || tag.prefix == "B" || tag.prefix == "I"
        case .bioes: tag.prefix == "O" || tag.prefix == "E" || tag.prefix == "S"
        }
    }

    /// Whether `cur` may follow `prev`: `I-X` (and BIOES `E-X`) only after `B-X`/`I-X`; in BIOES,
    /// after `B-X`/`I-X` only `I-X`/`E-X`.
    public func allowsTransition(from prev: ParsedTag, to cur: ParsedTag) -> Bool {
        switch self {
        case .iob2:
            if cur.prefix == "I" { return (prev.prefix == "B" || prev.prefix == "I") && prev.type == cur.type }
            return cur.prefix == "O" || cur.prefix == "B"
        case .bioes:
            let open = prev.prefix == "B" || prev.prefix == "I"
            if open { return (cur.prefix == "I" || cur.prefix == "E") && prev.type == cur.type }
            return cur.prefix == "O" || cur.prefix == "B" || cur.prefix == "S"
        }
    }

    /// The first position where `tags` breaks the scheme (a bad prefix, a transition it forbids,
    /// or, for BIOES, an unfinished entity at the end: reported at `tags.count - 1`), with the
    /// reason; nil when the sequence is valid.
    public func firstViolation(_ tags: [String]) -> (index: Int, reason: String)? {
        let parsed = tags.map(ParsedTag.init)
        for (i, t) in parsed.enumerated() where !allowedPrefixes.contains(t.prefix) {
            return (i, "tag \"\(tags[i])\" is not a \(rawValue.uppercased()) tag")
        }
        guard let first = parsed.first else { return nil }
        if !allowsStart(first) { return (0, "\"\(tags[0])\" cannot start a sentence") }
        for i in 1..<max(parsed.count, 1) where !allowsTransition(from: parsed[i - 1], to: parsed[i]) {
            return (i, "\"\(tags[i])\" cannot follow \"\(tags[i - 1])\"")
        }
        if !allowsEnd(parsed[parsed.count - 1]) {
            return (parsed.count - 1, "\"\(tags[parsed.count - 1])\" cannot end a sentence")
        }
        return nil
    }
}

/// Conversions between token spans and character spans through token offsets.
public enum SpanConversion {
    /// Character spans of token spans: from the start of the first token to the end of the last.
    ///
    /// - Parameter tokenOffsets: `[T]` scalar ranges of the tokens in the original text.
    public static func characterSpans(_ spans: [TokenSpan], tokenOffsets: [Range<Int>]) -> [CharacterSpan] {
        spans.map { CharacterSpan(start: tokenOffsets[$0.start].lowerBound, end: tokenOffsets[$0.end - 1].upperBound, type: $0.type) }
    }

    /// Token spans of character spans. A character span must start at the start of a token and
    /// end at the end of a token; a span that cuts a token, or covers none, is an error naming it.
    public static func tokenSpans(_ spans: [CharacterSpan], tokenOffsets: [Range<Int>]) throws -> [TokenSpan] {
        var byStart: [Int: Int] = [:], byEnd: [Int: Int] = [:]
        for (i, r) in tokenOffsets.enumerated() where !r.isEmpty {
            if byStart[r.lowerBound] == nil { byStart[r.lowerBound] = i }
            byEnd[r.upperBound] = i
        }
        return try spans.map { s in
            guard let first = byStart[s.start], let last = byEnd[s.end], first <= last else {
                throw TaskError.invalidArgument("entity span [\(s.start), \(s.end)) of type \(s.type) crosses a token boundary")
            }
            return TokenSpan(start: first, end: last + 1, type: s.type)
        }
    }
}
