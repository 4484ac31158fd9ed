import Foundation

/// A document for text classification (sentiment, topics): its text and, for training and
/// evaluation data, its gold label.
public struct TextExample: Sendable, Equatable {
    /// A stable id: `file:line`, or the corpus document id.
    public var id: String
    public var text: String
    public var label: String?

    public init(id: String, text: String, label: String?) {
        self.id = id
        self.text = text
        self.label = label
    }
}

/// A sentence (or document) for token classification, with its words and entities.
///
/// `text` is what offsets point into; for CoNLL data it is the words joined by single spaces.
/// `wordOffsets[i]` is word `i`'s `[start, end)` in Unicode scalars of `text`, and `entities` are
/// character-offset spans of `text` (`text` sliced at an entity's offsets is the entity's text).
public struct TaggedSentence: Sendable, Equatable {
    public var id: String
    public var text: String
    public var words: [String]
    /// `[W]` scalar ranges of the words in `text`.
    public var wordOffsets: [Range<Int>]
    /// `[W]` word tags in the task's scheme (valid sequences), nil for unlabelled text.
    public var tags: [String]?
    /// Gold entities (empty for unlabelled text).
    public var entities: [CharacterSpan]

    public init(id: String, text: String, words: [String], wordOffsets: [Range<Int>], tags: [String]?, entities: [CharacterSpan]) {
        self.id = id
        self.text = text
        self.words = words
        self.wordOffsets = wordOffsets
        self.tags = tags
        self.entities = entities
    }

    /// A sentence from words: text = words joined by single spaces; entities from the tags
    /// (which must be a valid sequence of `scheme`).
    public init(id: String, words: [String], tags: [String]?, scheme: TagScheme) throws {
        var text = "", offsets: [Range<Int>] = [], position = 0
        for (i, w) in words.enumerated() {
            if i > 0 { text += " "; position += 1 }
            let n = w.unicodeScalars.count
            text += w
            offsets.append(position..<(position + n))
            position += n
        }
        var entities: [CharacterSpan] = []
        if let tags {
            guard tags.count == words.count else {
                throw TaskError.invalidArgument("sentence \(id): \(words.count) words but \(tags.count) tags")
            }
            entities = SpanConversion.characterSpans(try scheme.strictSpans(tags), tokenOffsets: offsets)
        }
        self.init(id: id, text: text, words: words, wordOffsets: offsets, tags: tags, entities: entities)
    }

    /// A sentence from raw text and character-offset entities: words are the whitespace-separated
    /// pieces of `text` (Unicode White_Space), tags are derived from the entities, which must
    /// start and end on word boundaries.
    public init(id: String, text: String, entities: [CharacterSpan], scheme: TagScheme) throws {
        let offsets = TaggedSentence.whitespaceWords(text)
        let scalars = Array(text.unicodeScalars)
        let words = offsets.map { r in
            var v = String.UnicodeScalarView()
            v.append(contentsOf: scalars[r])
            return String(v)
        }
        let spans: [TokenSpan]
        do {
            spans = try SpanConversion.tokenSpans(entities, tokenOffsets: offsets)
        } catch let TaskError.invalidArgument(message) {
            throw TaskError.invalidArgument("document \(id): \(message)")
        }
        let tags = try scheme.tags(for: spans, count: words.count)
        self.init(id: id, text: text, words: words, wordOffsets: offsets,
                  tags: tags, entities: entities.sorted { ($0.start, $0.end) < ($1.start, $1.end) })
    }

    /// The scalar ranges of the whitespace-separated words of `text`.
    public static func whitespaceWords(_ text: String) -> [Range<Int>] {
        var ranges: [Range<Int>] = [], start: Int?
        var i = 0
        for c in text.unicodeScalars {
            if c.properties.isWhitespace {
                if let s = start { ranges.append(s..<i); start = nil }
            } else if start == nil {
                start = i
            }
            i += 1
        }
        if let s = start { ranges.append(s..<i) }
        return ranges
    }
}

/// A gold answer: its text and `[start, end)` in Unicode scalars of the context.
public struct AnswerSpan: Sendable, Equatable, Hashable, Codable {
    public var text: String
    public var start: Int
    public var end: Int

    public init(text: String, start: Int) {
        self.text = text
        self.start = start
        let (end, overflow) = start.addingReportingOverflow(text.unicodeScalars.count)
        self.end = overflow ? Int.max : end   // a start read from a file may be anything: callers check the span
    }
}

/// A question on a context, for extractive QA.
public struct QuestionExample: Sendable, Equatable {
    public var id: String
    public var question: String
    public var context: String
    /// Gold answers (empty for unlabelled questions); each matches `context` at its offsets.
    public var answers: [AnswerSpan]
    public var title: String?

    public init(id: String, question: String, context: String, answers: [AnswerSpan], title: String? = nil) {
        self.id = id
        self.question = question
        self.context = context
        self.answers = answers
        self.title = title
    }
}

/// The text of each of `ranges` (clamped like ``scalarSlice(_:_:)``), the scalars read once:
/// linear in the text and the slices, where a ``scalarSlice(_:_:)`` per range walks the text
/// from its start each time (a long document's words made that quadratic).
public func scalarSlices(_ text: String, _ ranges: [Range<Int>]) -> [String] {
    guard !ranges.isEmpty else { return [] }
    let scalars = Array(text.unicodeScalars)
    let n = scalars.count
    return ranges.map { range in
        let lo = min(max(range.lowerBound, 0), n), hi = min(max(range.upperBound, lo), n)
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[lo..<hi])
        return String(view)
    }
}

/// Slices `text` at a `[start, end)` range of Unicode scalars (clamped to the text).
public func scalarSlice(_ text: String, _ range: Range<Int>) -> String {
    let scalars = text.unicodeScalars
    let n = scalars.count
    let lo = min(max(range.lowerBound, 0), n), hi = min(max(range.upperBound, lo), n)
    let a = scalars.index(scalars.startIndex, offsetBy: lo)
    let b = scalars.index(a, offsetBy: hi - lo)
    return String(scalars[a..<b])
}
