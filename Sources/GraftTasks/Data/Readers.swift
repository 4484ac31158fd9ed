import Foundation
import GraftSupport

/// What to do with a tag sequence that breaks its scheme (e.g. `I-PER` after `O`).
public enum InvalidTagPolicy: String, Sendable, Equatable, Codable {
    /// Stop with an error naming the file and line.
    case error
    /// Read it as conlleval does (``TagScheme/lenientSpans(_:)``) and store the repaired tags.
    case repair
}

/// A line's text: its bytes without a UTF-8 byte-order mark on line 1 and without a `\r`
/// before the `\n` (CRLF files).
func lineContent(_ bytes: ArraySlice<UInt8>, number: Int) -> ArraySlice<UInt8> {
    var bytes = bytes
    if number == 1, bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
    if bytes.last == 0x0D { bytes = bytes.dropLast() }
    return bytes
}

/// The lines of a UTF-8 file (GraftSupport's `LineReader`: split on `\n`; a trailing `\r`
/// removed, as CRLF files need; a leading BOM dropped), numbered from 1. A final empty line (the
/// file's last newline) is not returned. Invalid UTF-8 is an error naming the file and line.
func readLines(_ path: String) throws -> [Substring] {
    guard FileManager.default.fileExists(atPath: path) else { throw TaskError.unreadable(file: path, reason: "no such file") }
    var lines: [Substring] = []
    do {
        let reader = try LineReader(path: path)
        while let line = try reader.next() {
            let bytes = lineContent(line.bytes, number: line.number)
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw TaskError.malformed(TaskLocation(file: path, line: line.number), reason: "not valid UTF-8")
            }
            lines.append(Substring(text))
        }
    } catch let error as SupportError {
        throw TaskError.unreadable(file: path, reason: "\(error)")
    }
    return lines
}

/// The first whitespace character of `text` that is not a space or a TAB, named for an error
/// about a missing column separator (`a no-break space (U+00A0)`); nil when there is none.
func unexpectedWhitespace(in text: Substring) -> String? {
    guard let s = text.unicodeScalars.first(where: { $0.properties.isWhitespace && $0 != " " && $0 != "\t" }) else { return nil }
    let name = switch s.value {
    case 0xA0: "a no-break space"
    case 0x202F: "a narrow no-break space"
    case 0x2007: "a figure space"
    case 0x3000: "an ideographic space"
    default: "a whitespace character"
    }
    return name + " (U+" + String(s.value, radix: 16, uppercase: true).leftPadded(to: 4) + ")"
}

private extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

/// Reads `label<TAB>text` files (an optional first line `label<TAB>text` is a header).
///
/// Each line is split at its first TAB (texts may contain more). Empty lines are skipped; a
/// line without a TAB, an empty label or an empty text is an error naming the file and line; a
/// label outside `labels` (when given) is an ``TaskError/unknownLabel(_:label:known:)``. A first
/// line that names columns other than exactly `label<TAB>text` (`label<TAB>text<TAB>source`,
/// `text<TAB>label`) is an error saying so, not a row with the label `label`.
public enum TSVReader {
    public static func read(_ path: String, labels: LabelSet? = nil) throws -> [TextExample] {
        var examples: [TextExample] = []
        for (i, line) in try readLines(path).enumerated() {
            let at = TaskLocation(file: path, line: i + 1)
            if line.isEmpty { continue }
            guard let tab = line.firstIndex(of: "\t") else {
                let note = unexpectedWhitespace(in: line).map { " (the line has \($0) where a TAB was expected?)" } ?? ""
                throw TaskError.malformed(at, reason: "expected \"label<TAB>text\", found no TAB\(note)")
            }
            let label = String(line[..<tab]), text = String(line[line.index(after: tab)...])
            if i == 0 && label == "label" && text == "text" { continue }
            if i == 0, labels?.id(of: label) == nil {
                let columns = line.split(separator: "\t", omittingEmptySubsequences: false)
                let names = Set(columns.map { $0.trimmingCharacters(in: .whitespaces).lowercased() })
                if names.contains("label") || names.contains("text") {
                    throw TaskError.malformed(at, reason: "line 1 looks like a header (\(columns.map { JSONValue.quoted(String($0)) }.joined(separator: ", "))): "
                        + "the file must be label<TAB>text lines, and only a first line of exactly \"label<TAB>text\" is skipped as a header "
                        + "(each line is split at its first TAB, so a further column would be read as part of the text); "
                        + "remove the other columns, or the header")
                }
            }
            guard !label.isEmpty else { throw TaskError.malformed(at, reason: "empty label") }
            guard !isBlank(text) else {
                throw TaskError.malformed(at, reason: "empty document (no text after the TAB, or only whitespace)")
            }
            if let labels, labels.id(of: label) == nil {
                throw TaskError.unknownLabel(at, label: label, known: labels.labels)
            }
            examples.append(TextExample(id: "\(path):\(i + 1)", text: text, label: label))
        }
        return examples
    }
}

/// Reads CoNLL column files: one token per line, columns separated by spaces or tabs, the token
/// in the first column and its tag in the last (CoNLL-2003's `word POS chunk NER`, WNUT's
/// `word<TAB>tag`); blank lines end sentences; `-DOCSTART-` lines are document separators.
///
/// Each sentence becomes a ``TaggedSentence`` whose text is the tokens joined by single spaces,
/// with entities as character-offset spans of that text. Errors name the file and line: a line
/// with one column, a tag outside `labels` (when given), a tag sequence that breaks `scheme`
/// (with ``InvalidTagPolicy/error``).
public enum CoNLLReader {
    public static func read(_ path: String, labels: LabelSet? = nil, scheme: TagScheme = .iob2,
                            invalidTags: InvalidTagPolicy = .error) throws -> [TaggedSentence] {
        var sentences: [TaggedSentence] = []
        var words: [String] = [], tags: [String] = [], lines: [Int] = []
        var layout: (columns: Int, line: Int)?
        func flush() throws {
            defer { words = []; tags = []; lines = [] }
            guard !words.isEmpty else { return }
            var sentenceTags = tags
            if let v = scheme.firstViolation(tags) {
                switch invalidTags {
                case .error:
                    throw TaskError.invalidTagSequence(TaskLocation(file: path, line: lines[v.index]), reason: v.reason)
                case .repair:
                    sentenceTags = try scheme.repaired(tags)
                }
            }
            sentences.append(try TaggedSentence(id: "\(path):\(lines[0])", words: words, tags: sentenceTags, scheme: scheme))
        }
        for (i, line) in try readLines(path).enumerated() {
            let columns = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if columns.isEmpty { try flush(); continue }
            if columns[0] == "-DOCSTART-" { try flush(); continue }
            let at = TaskLocation(file: path, line: i + 1)
            guard columns.count >= 2 else {
                let note = unexpectedWhitespace(in: columns[0]).map { " (it holds \($0), which does not separate columns)" } ?? ""
                throw TaskError.malformed(at, reason: "expected a token and a tag separated by spaces or a TAB, found one column \"\(columns[0])\"\(note)")
            }
            // Every row has the columns of the first (a row short of one would read its chunk
            // tag as the entity tag), as `graft corpus add` requires.
            if let first = layout, first.columns != columns.count {
                throw TaskError.malformed(at, reason: "\(columns.count) columns, where line \(first.line) has \(first.columns)")
            }
            if layout == nil { layout = (columns.count, i + 1) }
            let tag = String(columns[columns.count - 1])
            if let labels, labels.id(of: tag) == nil {
                throw TaskError.unknownLabel(at, label: tag, known: labels.labels)
            }
            if !scheme.allowedPrefixes.contains(ParsedTag(tag).prefix) || (tag != "O" && ParsedTag(tag).prefix == "O") {
                throw TaskError.malformed(at, reason: "tag \"\(tag)\" is not a \(scheme.rawValue.uppercased()) tag")
            }
            words.append(String(columns[0]))
            tags.append(tag)
            lines.append(i + 1)
        }
        try flush()
        return sentences
    }

    /// The entity types of a CoNLL file's tags, in order of first appearance (to build a label
    /// set when a spec lists none).
    public static func entityTypes(of sentences: [TaggedSentence]) -> [String] {
        var seen = Set<String>(), types: [String] = []
        for s in sentences {
            for t in s.tags ?? [] where t != "O" {
                let type = ParsedTag(t).type
                if seen.insert(type).inserted { types.append(type) }
            }
        }
        return types
    }
}

/// Reads SQuAD v1.1 JSON (`{"data": [{"title", "paragraphs": [{"context", "qas": [{"id",
/// "question", "answers": [{"text", "answer_start"}]}]}]}]}`).
///
/// `answer_start` is a Unicode-scalar index into `context` (as in SQuAD); every answer must
/// match the context there, else the error names the file and the question id.
public enum SquadReader {
    struct File: Decodable {
        struct Article: Decodable { var title: String?; var paragraphs: [Paragraph] }
        struct Paragraph: Decodable { var context: String; var qas: [Question] }
        struct Question: Decodable { var id: String; var question: String; var answers: [Answer]? }
        struct Answer: Decodable {
            var text: String
            /// nil when the file's `answer_start` is not an integer; `badStart` then shows it.
            var answer_start: Int?
            /// A non-integer `answer_start` as written, with its JSON type (`"36" (a string)`),
            /// reported by ``SquadReader/read(_:)`` with the file and the question id.
            var badStart: String?
            enum CodingKeys: String, CodingKey { case text, answer_start }
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                text = try c.decode(String.self, forKey: .text)
                if let i = try? c.decode(Int.self, forKey: .answer_start) { answer_start = i; return }
                guard c.contains(.answer_start) else {
                    throw DecodingError.keyNotFound(CodingKeys.answer_start, .init(codingPath: c.codingPath, debugDescription: ""))
                }
                // The decoder's own message names neither the question nor what was expected
                // ("Expected to decode Double but found a string instead").
                if try c.decodeNil(forKey: .answer_start) {
                    badStart = "null"
                } else if let d = try? c.decode(Double.self, forKey: .answer_start) {
                    badStart = "\(d) (" + (d == d.rounded() ? "outside the integers Graft reads" : "a fraction") + ")"
                } else if let s = try? c.decode(String.self, forKey: .answer_start) {
                    badStart = JSONValue.quoted(s) + " (a string)"
                } else if let b = try? c.decode(Bool.self, forKey: .answer_start) {
                    badStart = "\(b) (a boolean)"
                } else {
                    badStart = "an array or object"
                }
            }
        }
        var data: [Article]
    }

    public static func read(_ path: String) throws -> [QuestionExample] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TaskError.unreadable(file: path, reason: FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file")
        }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw TaskError.malformed(TaskLocation(file: path, item: jsonPath(context.codingPath)),
                                      reason: "missing key \"\(key.stringValue)\"")
        } catch let DecodingError.typeMismatch(_, context) {
            throw TaskError.malformed(TaskLocation(file: path, item: jsonPath(context.codingPath)), reason: context.debugDescription)
        } catch let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
            throw TaskError.malformed(TaskLocation(file: path, item: jsonPath(context.codingPath)), reason: context.debugDescription)
        } catch {
            // Not JSON at all: our own parser names the line (Foundation's error does not).
            do { _ = try JSONValue.parse(Array(data), path: path) } catch SupportError.malformedJSON(_, let line, let reason) {
                throw TaskError.malformed(TaskLocation(file: path, line: line), reason: "not SQuAD v1.1 JSON: \(reason)")
            }
            throw TaskError.malformed(TaskLocation(file: path), reason: "not SQuAD v1.1 JSON: \(error)")
        }
        var examples: [QuestionExample] = []
        var ids = Set<String>()
        for article in file.data {
            for paragraph in article.paragraphs {
                let context = Array(paragraph.context.unicodeScalars)
                for q in paragraph.qas {
                    let at = TaskLocation(file: path, item: "question \(q.id)")
                    guard ids.insert(q.id).inserted else { throw TaskError.malformed(at, reason: "duplicate question id") }
                    var answers: [AnswerSpan] = []
                    for (k, a) in (q.answers ?? []).enumerated() {
                        guard let start = a.answer_start else {
                            throw TaskError.malformed(at, reason: "answers[\(k)].answer_start is \(a.badStart ?? "not an integer"): it must be an integer, the answer's character offset in the context (Unicode scalars from 0)")
                        }
                        // Bounded before any arithmetic: a start near Int.max must not overflow.
                        let length = a.text.unicodeScalars.count
                        guard start >= 0, length > 0, start <= context.count - length else {
                            throw TaskError.offsetMismatch(at, reason: "answer \"\(a.text)\" at \(start) lies outside the context (\(context.count) characters) or is empty")
                        }
                        let answer = AnswerSpan(text: a.text, start: start)
                        guard context[answer.start..<answer.end].elementsEqual(a.text.unicodeScalars) else {
                            throw TaskError.offsetMismatch(at, reason: "answer \"\(a.text)\" does not match the context at \(start) (found \"\(scalarSlice(paragraph.context, answer.start..<answer.end))\")")
                        }
                        answers.append(answer)
                    }
                    examples.append(QuestionExample(id: q.id, question: q.question, context: paragraph.context,
                                                    answers: answers, title: article.title))
                }
            }
        }
        return examples
    }

    static func jsonPath(_ path: [any CodingKey]) -> String {
        path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
    }
}
