import Foundation
import GraftSupport

/// Cloze-style extractive questions generated from plain passages: more training data for a QA
/// head from unlabelled text (the shared QA set has 600 questions).
///
/// A question is one sentence of the passage with one span replaced by a question phrase and its
/// final punctuation turned into "?"; the span is the answer (the "identity mapping" of Lewis et
/// al. 2019, *Unsupervised Question Answering by Cloze Translation*). The spans, by ``Kind``:
/// - ``Kind/year``: a year after a preposition (`in 1879` → `in what year`);
/// - ``Kind/number``: a number before a lower-case word (`2,098,000 residents` → `how many residents`);
/// - ``Kind/name``: a run of capitalised words (joined by `of`) that is not the sentence's first
///   word and ends a noun phrase (punctuation or a function word follows), a preceding `the`
///   dropped with it (`surpassed by Damascus` → `surpassed by what`).
///
/// Only spans whose text occurs once in the passage are used, so the answer's position is never
/// ambiguous, and at most ``perPassage`` questions come from one passage, each from a different
/// sentence, chosen with the caller's generator. Offsets are Unicode scalars, as SQuAD's
/// `answer_start`.
public struct ClozeQuestionGenerator: Sendable {
    /// What a question asks for.
    public enum Kind: String, Sendable, CaseIterable {
        case year, number, name
    }

    /// Questions taken from one passage at most.
    public var perPassage: Int
    /// Sentences with fewer words are skipped (too little to match a question against).
    public var minSentenceWords: Int
    /// Sentences with more words are skipped (run-ons and lists).
    public var maxSentenceWords: Int

    public init(perPassage: Int = 2, minSentenceWords: Int = 6, maxSentenceWords: Int = 50) {
        self.perPassage = perPassage
        self.minSentenceWords = minSentenceWords
        self.maxSentenceWords = maxSentenceWords
    }

    /// One generated question and the kind of its answer.
    public struct Question: Sendable, Equatable {
        public var example: QuestionExample
        public var kind: Kind
    }

    /// A word of the passage: scalar offsets `start..<end`.
    struct Word {
        var start: Int, end: Int
    }

    /// A replaceable span of a sentence: `replaced` becomes `phrase`, `answer` is the answer.
    struct Candidate {
        var replaced: Range<Int>, phrase: String, answer: Range<Int>, kind: Kind
    }

    static let prepositions: Set<String> = ["in", "since", "by", "from", "until", "around", "after", "before", "during", "of"]
    static let functionWords: Set<String> = [
        "in", "of", "and", "or", "is", "was", "are", "were", "on", "at", "to", "for", "with", "by", "from", "as", "which",
        "that", "who", "whose", "where", "when", "the", "a", "an", "has", "had", "have", "but", "while", "after", "before",
        "during", "until", "into", "between", "than", "its", "his", "her", "their", "it", "he", "she", "they",
    ]

    /// Up to ``perPassage`` questions on `context`, with ids `id-0`, `id-1`, …
    public func questions(context: String, title: String? = nil, id: String, rng: inout SplitMix64) -> [Question] {
        let s = Array(context.unicodeScalars)
        var byCandidates: [[Candidate]] = []
        var sentenceRanges: [Range<Int>] = []
        for sentence in Self.sentences(s) {
            let words = Self.words(s, in: sentence)
            guard words.count >= minSentenceWords, words.count <= maxSentenceWords else { continue }
            let found = candidates(s, words: words).filter { Self.occurrences(of: s[$0.answer], in: s) == 1 }
            if !found.isEmpty { byCandidates.append(found); sentenceRanges.append(sentence) }
        }
        var order = Array(byCandidates.indices)
        order.shuffle(using: &rng)
        var out: [Question] = []
        for i in order.prefix(perPassage) {
            let c = byCandidates[i][Int(rng.next() % UInt64(byCandidates[i].count))]
            let sentence = sentenceRanges[i]
            var text = String(String.UnicodeScalarView(s[sentence.lowerBound..<c.replaced.lowerBound])) + c.phrase
                + String(String.UnicodeScalarView(s[c.replaced.upperBound..<sentence.upperBound]))
            while let last = text.unicodeScalars.last, ".!?;:, \t".unicodeScalars.contains(last) { text.unicodeScalars.removeLast() }
            text += "?"
            let answer = String(String.UnicodeScalarView(s[c.answer]))
            out.append(Question(example: QuestionExample(id: "\(id)-\(out.count)", question: text, context: context,
                                                         answers: [AnswerSpan(text: answer, start: c.answer.lowerBound)], title: title),
                                kind: c.kind))
        }
        return out
    }

    /// Every span of one sentence's words that could be asked for.
    func candidates(_ s: [Unicode.Scalar], words: [Word]) -> [Candidate] {
        func text(_ w: Word) -> String { String(String.UnicodeScalarView(s[w.start..<w.end])) }
        func lower(_ w: Word) -> String { text(w).lowercased() }
        func isCapitalised(_ w: Word) -> Bool { s[w.start].properties.isUppercase }
        func isLowerAlphabetic(_ w: Word) -> Bool { s[w.start..<w.end].allSatisfy { $0.properties.isLowercase } }
        /// Whether only spaces stand between words `a` and `b`.
        func spaced(_ a: Word, _ b: Word) -> Bool { s[a.end..<b.start].allSatisfy { $0 == " " } }
        var out: [Candidate] = []
        var k = 0
        while k < words.count {
            let w = words[k], t = text(w)
            if let year = Int(t), t.count == 4, (1000...2099).contains(year), k > 0, Self.prepositions.contains(lower(words[k - 1])) {
                out.append(Candidate(replaced: words[k - 1].start..<w.end, phrase: text(words[k - 1]) + " what year",
                                     answer: w.start..<w.end, kind: .year))
            } else if Self.isNumber(t), k + 1 < words.count, isLowerAlphabetic(words[k + 1]), !Self.functionWords.contains(lower(words[k + 1])),
                      spaced(w, words[k + 1]) {
                let start = k > 0 && ["the", "a", "an"].contains(lower(words[k - 1])) ? words[k - 1].start : w.start
                out.append(Candidate(replaced: start..<words[k + 1].end, phrase: "how many " + text(words[k + 1]),
                                     answer: w.start..<w.end, kind: .number))
            } else if k > 0, isCapitalised(w) {
                // A run of capitalised words, joined by "of"; spaces only between them.
                var last = k
                while last + 1 < words.count, spaced(words[last], words[last + 1]) {
                    if isCapitalised(words[last + 1]) { last += 1; continue }
                    if lower(words[last + 1]) == "of", last + 2 < words.count, isCapitalised(words[last + 2]),
                       spaced(words[last + 1], words[last + 2]) { last += 2; continue }
                    break
                }
                let before = lower(words[k - 1])
                let endsPhrase = last + 1 == words.count || Self.functionWords.contains(lower(words[last + 1]))
                    || !spaced(words[last], words[last + 1])
                if last - k < 5, endsPhrase, before != "a", before != "an" {
                    let start = before == "the" ? words[k - 1].start : w.start
                    out.append(Candidate(replaced: start..<words[last].end, phrase: "what", answer: w.start..<words[last].end, kind: .name))
                }
                k = last + 1
                continue
            }
            k += 1
        }
        return out
    }

    /// `123`, `2,098,000`, `3.5` (not a year-like bare 4-digit number before a noun is fine too).
    static func isNumber(_ t: String) -> Bool {
        guard let first = t.unicodeScalars.first, first.properties.numericType != nil, first.isASCII else { return false }
        var sawDigit = false, lastWasSeparator = false
        for c in t.unicodeScalars {
            if ("0"..."9").contains(c) { sawDigit = true; lastWasSeparator = false } else if c == "," || c == "." {
                if lastWasSeparator { return false }
                lastWasSeparator = true
            } else { return false }
        }
        return sawDigit && !lastWasSeparator
    }

    /// Sentence ranges (scalar offsets, final punctuation included): a sentence ends at `.`, `!`
    /// or `?` followed by whitespace and an upper-case letter, a digit or the end (not after a
    /// one- or two-letter capitalised word such as `St.` or `U.S.`), and at every line break.
    static func sentences(_ s: [Unicode.Scalar]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var start = 0
        func close(_ end: Int) {
            var a = start
            while a < end, s[a].properties.isWhitespace { a += 1 }
            if a < end { out.append(a..<end) }
            start = end
        }
        var i = 0
        while i < s.count {
            let c = s[i]
            if c == "\n" || c == "\r" { close(i); start = i + 1; i += 1; continue }
            if c == "." || c == "!" || c == "?" {
                var j = i + 1
                while j < s.count, s[j] == " " { j += 1 }
                let atEnd = j == s.count
                let next = atEnd ? nil : s[j]
                let followed = atEnd || (j > i + 1 && (next!.properties.isUppercase || ("0"..."9").contains(next!)))
                var abbreviation = false
                if c == "." {
                    var w = i
                    while w > start, !s[w - 1].properties.isWhitespace { w -= 1 }
                    let word = s[w..<i]
                    abbreviation = !word.isEmpty && word.count <= 2 && word.first!.properties.isUppercase || word.contains(".")
                }
                if followed && !abbreviation { close(i + 1) }
            }
            i += 1
        }
        close(s.count)
        return out
    }

    /// Words of `range`: runs of letters, digits, apostrophes and hyphens, and `,` / `.` between digits.
    static func words(_ s: [Unicode.Scalar], in range: Range<Int>) -> [Word] {
        func isDigit(_ c: Unicode.Scalar) -> Bool { ("0"..."9").contains(c) }
        func isWordScalar(_ c: Unicode.Scalar) -> Bool { c.properties.isAlphabetic || c.properties.numericType != nil || c == "'" || c == "’" || c == "-" }
        var out: [Word] = []
        var i = range.lowerBound
        while i < range.upperBound {
            guard isWordScalar(s[i]), s[i] != "-", s[i] != "'", s[i] != "’" else { i += 1; continue }
            var j = i + 1
            while j < range.upperBound {
                if isWordScalar(s[j]) { j += 1; continue }
                if (s[j] == "," || s[j] == "."), isDigit(s[j - 1]), j + 1 < range.upperBound, isDigit(s[j + 1]) { j += 1; continue }
                break
            }
            var end = j
            while end > i + 1, s[end - 1] == "-" || s[end - 1] == "'" || s[end - 1] == "’" { end -= 1 }
            out.append(Word(start: i, end: end))
            i = j
        }
        return out
    }

    /// How often `needle` occurs in `haystack` (overlaps counted; 2 is enough to stop).
    static func occurrences(of needle: ArraySlice<Unicode.Scalar>, in haystack: [Unicode.Scalar]) -> Int {
        guard !needle.isEmpty, needle.count <= haystack.count else { return 0 }
        var count = 0
        let first = needle.first!
        for i in 0...(haystack.count - needle.count) where haystack[i] == first {
            if haystack[i..<(i + needle.count)].elementsEqual(needle) {
                count += 1
                if count > 1 { return count }
            }
        }
        return count
    }
}

/// Passages for ``ClozeQuestionGenerator``: a JSON Lines file of objects with `text` (and
/// optionally `title`), as the corpora ship, or a plain text file with one passage per line.
public enum PassageReader {
    public struct Passage: Sendable, Equatable {
        public var title: String?
        public var text: String
        /// Where it came from: `file:line`.
        public var origin: String
    }

    /// The non-empty passages of `path`; a JSON line that does not parse or has no string `text`
    /// is an error naming the file and line. (``PassageIndex`` reads them one at a time.)
    public static func read(_ path: String) throws -> [Passage] {
        let index = try PassageIndex(files: [path])
        return try (0..<index.count).map { try index.passage($0) }
    }

    /// One line as a passage: nil for a blank line (or a JSON line whose `text` is blank). A BOM
    /// on line 1 and a `\r` before the `\n` are not part of the text.
    static func parse(_ raw: ArraySlice<UInt8>, line number: Int, path: String, jsonl: Bool) throws -> Passage? {
        let bytes = lineContent(raw, number: number)
        let at = TaskLocation(file: path, line: number)
        guard let line = String(validating: bytes, as: UTF8.self) else { throw TaskError.malformed(at, reason: "not valid UTF-8") }
        if line.allSatisfy(\.isWhitespace) { return nil }
        guard jsonl else { return Passage(title: nil, text: line, origin: "\(path):\(number)") }
        let value: JSONValue
        do { value = try JSONValue.parse(line, path: "\(path):\(number)") } catch {
            throw TaskError.malformed(at, reason: "not a JSON object: \(error)")
        }
        guard let text = value["text"]?.string else { throw TaskError.malformed(at, reason: "no string \"text\" field") }
        if text.allSatisfy(\.isWhitespace) { return nil }
        return Passage(title: value["title"]?.string, text: text, origin: "\(path):\(number)")
    }
}

/// The passages of one or more files (``PassageReader``'s formats), numbered in file order:
/// one streaming pass checks every line (a bad line is an error naming its file and line, as in
/// ``PassageReader/read(_:)``) and keeps where each passage lies; ``passage(_:)`` reads one back
/// by its byte offset. Memory grows by a few words a passage, not with the corpus text, so
/// `graft cloze-qa` can visit a large corpus in random order.
public final class PassageIndex {
    private struct Entry {
        var file: Int
        var line: Int
        var offset: Int
        var length: Int
    }

    public let files: [String]
    private var entries: [Entry] = []
    private var jsonl: [Bool] = []
    private var handles: [FileHandle?]

    /// The number of non-blank passages over all files.
    public var count: Int { entries.count }

    /// Indexes `files` in order. A file is JSON Lines when its name ends in `.jsonl` or its
    /// first non-empty line starts with `{`; otherwise each line is a passage.
    public init(files: [String]) throws {
        self.files = files
        handles = Array(repeating: nil, count: files.count)
        for (f, path) in files.enumerated() {
            guard FileManager.default.fileExists(atPath: path) else { throw TaskError.unreadable(file: path, reason: "no such file") }
            var isJSONL: Bool? = path.hasSuffix(".jsonl") ? true : nil
            do {
                let reader = try LineReader(path: path)
                while let line = try reader.next() {
                    if isJSONL == nil {   // decided by the first non-empty line
                        let bytes = lineContent(line.bytes, number: line.number)
                        if bytes.isEmpty { continue }
                        isJSONL = bytes.first == UInt8(ascii: "{")
                    }
                    guard try PassageReader.parse(line.bytes, line: line.number, path: path, jsonl: isJSONL ?? false) != nil else { continue }
                    entries.append(Entry(file: f, line: line.number, offset: line.offset, length: line.bytes.count))
                }
            } catch let error as SupportError {
                throw TaskError.unreadable(file: path, reason: "\(error)")
            }
            jsonl.append(isJSONL ?? false)
        }
    }

    /// Passage `i` (0-based over all files, in file and line order).
    /// - Throws: ``TaskError/unreadable(file:reason:)`` when the file cannot be read back as
    ///   indexed (changed since), or the line's own error.
    public func passage(_ i: Int) throws -> PassageReader.Passage {
        precondition(entries.indices.contains(i), "passage \(i) of \(entries.count)")
        let e = entries[i], path = files[e.file]
        let bytes: [UInt8]
        do {
            let handle: FileHandle
            if let h = handles[e.file] { handle = h } else {
                guard let h = FileHandle(forReadingAtPath: path) else { throw TaskError.unreadable(file: path, reason: "cannot open it again") }
                handles[e.file] = h
                handle = h
            }
            try handle.seek(toOffset: UInt64(e.offset))
            bytes = [UInt8](try handle.read(upToCount: e.length) ?? Data())
        } catch let error as TaskError { throw error } catch {
            throw TaskError.unreadable(file: path, reason: "reading line \(e.line) again: \(error)")
        }
        guard bytes.count == e.length, let p = try PassageReader.parse(bytes[...], line: e.line, path: path, jsonl: jsonl[e.file]) else {
            throw TaskError.unreadable(file: path, reason: "line \(e.line) changed while it was being read")
        }
        return p
    }
}

/// Writes questions as SQuAD v1.1 JSON (one `data` entry per context, in first-seen order), the
/// format ``SquadReader`` reads; `answer_start` in Unicode scalars.
public enum SquadWriter {
    public static func json(_ questions: [QuestionExample]) -> String {
        var groups: [[QuestionExample]] = []
        var groupOf: [[UInt8]: Int] = [:]   // exact bytes, not canonical equivalence
        for q in questions {
            let key = Array(q.context.utf8)
            if let g = groupOf[key] { groups[g].append(q) } else { groupOf[key] = groups.count; groups.append([q]) }
        }
        let data: [JSONValue] = groups.map { qs in
            let qas: [JSONValue] = qs.map { q in
                .object([("id", .string(q.id)), ("question", .string(q.question)),
                         ("answers", .array(q.answers.map { .object([("text", .string($0.text)), ("answer_start", .integer($0.start))]) }))])
            }
            return .object([("title", .string(qs[0].title ?? "")),
                            ("paragraphs", .array([.object([("context", .string(qs[0].context)), ("qas", .array(qas))])]))])
        }
        return JSONValue.object([("version", .string("1.1")), ("data", .array(data))]).serialized() + "\n"
    }
}
