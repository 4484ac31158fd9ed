import Foundation
import GraftSupport

/// The importers: each reads one file and hands ``ImportRecord``s (or bad-record errors) to an
/// ``ImportSink``. Text is handled as UTF-8 bytes and Unicode scalars, never as Characters, so
/// offsets and comparisons are exact.
struct Parser {
    let path: String
    let sink: ImportSink
    let options: ImportOptions

    private static let bom: [UInt8] = [0xEF, 0xBB, 0xBF]

    /// Drops a UTF-8 byte-order mark at the start of the file.
    private func stripBOM(_ line: inout Line) {
        if line.number == 1, line.bytes.starts(with: Self.bom) {
            line.bytes = line.bytes.dropFirst(3)
            line.offset += 3
        }
    }

    /// Opens the input through the one line reader (lines end at `\n` only).
    private func openLines() throws -> LineReader {
        do { return try LineReader(path: path) } catch let error as SupportError {
            throw CorpusError.unreadableFile(path: path, reason: "\(error)")
        }
    }

    /// The next line; a read error stops the import (it is never taken for the end of the file).
    /// Formats whose records end in CRLF (TSV, CoNLL) drop a `\r` before the `\n`; plain
    /// text and JSON Lines keep it (JSON treats it as white space). CSV keeps it here and drops
    /// it in `csvFields` at a record end only (inside quotes it is data).
    private func nextLine(_ reader: LineReader, dropCR: Bool) throws -> Line? {
        let line: Line?
        do { line = try reader.next() } catch let error as SupportError {
            throw CorpusError.unreadableFile(path: path, reason: "\(error)")
        }
        guard var line else { return nil }
        if dropCR, line.bytes.last == 0x0D { line.bytes = line.bytes.dropLast() }
        return line
    }

    private func decode(_ line: Line) throws -> String {
        try decodeUTF8(line.bytes, file: path, baseOffset: line.offset, lineAt: { _ in line.number })
    }

    private func decode(_ bytes: ArraySlice<UInt8>, of line: Line) throws -> String {
        try decodeUTF8(bytes, file: path, baseOffset: line.offset + (bytes.startIndex - line.bytes.startIndex),
                       lineAt: { _ in line.number })
    }

    private static func isBlank<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        bytes.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0B || $0 == 0x0C }
    }

    // MARK: text, lines, paragraphs

    func text() throws {
        var bytes = try readWholeFile(path)
        var base = 0
        if bytes.starts(with: Self.bom) { bytes.removeFirst(3); base = 3 }
        let all = bytes
        let text = try decodeUTF8(all[...], file: path, baseOffset: base, lineAt: LineIndex(all).line(at:))
        sink.bytesRead = bytes.count
        if GraftSupport.isBlank(text) { return }
        try sink.emit(ImportRecord(text: text, line: 1))
    }

    func lines(paragraphs: Bool) throws {
        let reader = try openLines()
        var paragraph: [String] = []
        var paragraphLine = 0
        var paragraphBad = false
        func flush() throws {
            defer { paragraph.removeAll(keepingCapacity: true); paragraphBad = false }
            guard !paragraph.isEmpty, !paragraphBad else { return }
            try sink.emit(ImportRecord(text: paragraph.joined(separator: "\n"), line: paragraphLine))
        }
        while var line = try nextLine(reader, dropCR: false) {
            stripBOM(&line)
            sink.bytesRead = reader.bytesRead
            let text: String
            do {
                text = try decode(line)
            } catch let error as CorpusError {
                try sink.bad(error)
                if paragraphs { paragraphBad = true }
                continue
            }
            if GraftSupport.isBlank(text) {
                if paragraphs { try flush() }
                continue
            }
            if paragraphs {
                if paragraph.isEmpty { paragraphLine = line.number }
                paragraph.append(text)
            } else {
                try sink.emit(ImportRecord(text: text, line: line.number))
            }
        }
        if paragraphs { try flush() }
    }

    // MARK: JSON Lines

    func jsonl() throws {
        let textField = options.textField ?? "text"
        let labelField = options.labelField
        let reader = try openLines()
        while var line = try nextLine(reader, dropCR: false) {
            stripBOM(&line)
            sink.bytesRead = reader.bytesRead
            if Self.isBlank(line.bytes) { continue }
            do {
                _ = try decode(line)
                let object: Any
                do {
                    object = try JSONSerialization.jsonObject(with: Data(line.bytes), options: [])
                } catch {
                    throw CorpusError.malformedJSON(file: path, line: line.number, reason: Self.jsonReason(error))
                }
                guard var dict = object as? [String: Any] else {
                    throw CorpusError.malformedJSON(file: path, line: line.number, reason: "the line is not a JSON object")
                }
                guard let text = dict.removeValue(forKey: textField) as? String else {
                    throw CorpusError.missingField(file: path, line: line.number, field: textField)
                }
                var label: String?
                if let labelField {
                    guard let value = dict.removeValue(forKey: labelField) else {
                        throw CorpusError.missingField(file: path, line: line.number, field: labelField)
                    }
                    guard let s = Self.scalarString(value) else {
                        throw CorpusError.invalidValue(file: path, line: line.number,
                                                       reason: "\"\(labelField)\" must be a string or an integer, not \(Self.jsonKind(value))")
                    }
                    label = s
                }
                try sink.emit(ImportRecord(text: text, line: line.number, label: label, metadata: dict))
            } catch let error as CorpusError {
                try sink.bad(error)
            }
        }
    }

    /// A JSON string or integer as text (labels may be integers, e.g. 0/1; not booleans or fractions).
    static func scalarString(_ value: Any) -> String? {
        if let s = value as? String { return s }
        return jsonInteger(value).map(String.init)
    }

    /// What kind of JSON value `value` is, for messages ("a boolean", "an object", ...).
    static func jsonKind(_ value: Any) -> String {
        switch value {
        case is String: return "a string"
        case is [Any]: return "an array"
        case is [String: Any]: return "an object"
        case is NSNull: return "null"
        case let n as NSNumber: return String(cString: n.objCType) == "c" ? "a boolean" : "the number \(n)"
        default: return "\(type(of: value))"
        }
    }

    /// A JSON integer (`3`, `-1`), not a boolean or a number with a fraction or exponent.
    static func jsonInteger(_ value: Any) -> Int? {
        guard let n = value as? NSNumber else { return nil }
        switch String(cString: n.objCType) {
        case "c", "B", "f", "d": return nil   // booleans come back as char NSNumbers; fractions as doubles
        default: return value as? Int
        }
    }

    /// A short reason from a Foundation JSON error.
    static func jsonReason(_ error: any Error) -> String {
        let ns = error as NSError
        if let debug = ns.userInfo[NSDebugDescriptionErrorKey] as? String { return debug }
        return ns.localizedDescription
    }

    // MARK: CSV / TSV

    func delimited(csv: Bool) throws {
        let reader = try openLines()
        // Reads one record (a CSV record may span lines inside quotes) as byte fields.
        func nextRecord() throws -> (fields: [ArraySlice<UInt8>], line: Line)? {
            // A CSV line keeps its `\r`: one before the `\n` inside a quoted field is data (RFC
            // 4180); `csvFields` drops the one that ends the record.
            while var line = try nextLine(reader, dropCR: !csv) {
                stripBOM(&line)
                sink.bytesRead = reader.bytesRead
                if line.bytes.isEmpty || (csv && line.bytes.elementsEqual([0x0D])) { continue }
                if !csv {
                    return (line.bytes.split(separator: 0x09, omittingEmptySubsequences: false), line)
                }
                return (try csvFields(first: line, reader: reader), line)
            }
            return nil
        }
        guard let header = try nextRecord() else { return }
        let names = try header.fields.map { try decode($0, of: header.line) }
        let textName = options.textField ?? "text"
        guard let textIndex = names.firstIndex(of: textName) else {
            throw CorpusError.missingHeaderColumn(file: path, column: textName)
        }
        var labelIndex: Int?
        if let labelName = options.labelField {
            guard let i = names.firstIndex(of: labelName) else {
                throw CorpusError.missingHeaderColumn(file: path, column: labelName)
            }
            labelIndex = i
        } else {
            labelIndex = names.firstIndex(of: "label")
        }
        let columns = names.count
        while true {
            let record: (fields: [ArraySlice<UInt8>], line: Line)?
            do {
                record = try nextRecord()
            } catch let error as CorpusError {
                try sink.bad(error)
                continue
            }
            guard let (rawFields, line) = record else { break }
            do {
                var fields = rawFields
                if !csv && fields.count > columns {
                    // No quoting in TSV: the last column takes the rest of the line, tabs included.
                    let firstExtra = fields[columns - 1].startIndex
                    fields = Array(fields[0..<(columns - 1)]) + [line.bytes[firstExtra...]]
                }
                guard fields.count >= columns else {
                    throw CorpusError.missingColumn(file: path, line: line.number, expected: columns, found: fields.count)
                }
                if csv && fields.count > columns {
                    throw CorpusError.missingColumn(file: path, line: line.number, expected: columns, found: fields.count)
                }
                let text = try decode(fields[textIndex], of: line)
                let label = try labelIndex.map { try decode(fields[$0], of: line) }
                var metadata: [String: Any] = [:]
                for (i, name) in names.enumerated() where i != textIndex && i != labelIndex {
                    metadata[name] = try decode(fields[i], of: line)
                }
                try sink.emit(ImportRecord(text: text, line: line.number, label: label, metadata: metadata))
            } catch let error as CorpusError {
                try sink.bad(error)
            }
        }
    }

    /// Splits one CSV record (RFC 4180: `"` quotes, `""` inside quotes, quoted fields may hold
    /// commas and line breaks) into unquoted byte fields, reading more lines when a quote is open.
    /// Lines come with their `\r`: a line break inside quotes is kept as written (`\r\n` or
    /// `\n`), and a `\r` that ends the record outside quotes is dropped.
    private func csvFields(first: Line, reader: LineReader) throws -> [ArraySlice<UInt8>] {
        var fields: [ArraySlice<UInt8>] = []
        var field: [UInt8] = []
        var inQuotes = false
        var afterQuote = false
        var line = first
        var bytes = Array(first.bytes)
        var i = 0
        while true {
            if i == bytes.count {
                if inQuotes {
                    guard let next = try nextLine(reader, dropCR: false) else {
                        throw CorpusError.malformedCSV(file: path, line: first.number, reason: "unterminated quoted field")
                    }
                    sink.bytesRead = reader.bytesRead
                    line = next
                    field.append(0x0A)
                    bytes = Array(next.bytes)
                    i = 0
                    continue
                }
                fields.append(field[...])
                return fields
            }
            let b = bytes[i]
            if b == 0x0D && !inQuotes && i == bytes.count - 1 {
                // The CR of a CRLF record end: not part of the last field.
                i += 1
                continue
            }
            if inQuotes {
                if b == 0x22 {
                    if i + 1 < bytes.count && bytes[i + 1] == 0x22 { field.append(0x22); i += 2; continue }
                    inQuotes = false
                    afterQuote = true
                } else {
                    field.append(b)
                }
            } else if b == 0x2C {
                fields.append(field[...])
                field = []
                afterQuote = false
            } else if afterQuote {
                throw CorpusError.malformedCSV(file: path, line: line.number, reason: "text after a closing quote")
            } else if b == 0x22 && field.isEmpty {
                inQuotes = true
            } else {
                field.append(b)
            }
            i += 1
        }
    }

    // MARK: CoNLL

    func conll() throws {
        let reader = try openLines()
        var expectedColumns: Int?
        var separator: UInt8 = 0x20
        var rows: [String] = []
        var tokens: [String] = []
        var tags: [(tag: String, line: Int)] = []
        var firstLine = 0
        var bad = false
        var docstarts: [String] = []
        var pending: ImportRecord?

        func finishSentence() throws {
            defer { rows.removeAll(); tokens.removeAll(); tags.removeAll(); bad = false }
            guard !rows.isEmpty, !bad else { return }
            // Rebuild the text: tokens joined by single spaces; offsets in Unicode scalars.
            var text = ""
            var starts: [Int] = [], ends: [Int] = []
            var position = 0
            for (i, token) in tokens.enumerated() {
                if i > 0 { text.unicodeScalars.append(" "); position += 1 }
                starts.append(position)
                text.append(token)
                position += token.unicodeScalars.count
                ends.append(position)
            }
            // Entities read leniently, as conlleval does: an I-TYPE (or E-TYPE) that does not
            // continue an entity of its type starts one (IOB1 style); E-TYPE and S-TYPE end one.
            var spans: [(start: Int, end: Int, type: String)] = []
            var open: (type: String, first: Int)?
            func close(_ end: Int) {
                if let o = open { spans.append((starts[o.first], ends[end - 1], o.type)) }
                open = nil
            }
            for (i, (tag, _)) in tags.enumerated() {
                guard tag != "O", let prefix = tag.first else { close(i); continue }
                let type = String(tag.dropFirst(2))
                if (prefix == "I" || prefix == "E"), open?.type == type {
                    // continues the open entity
                } else {
                    close(i)
                    open = (type, i)
                }
                if prefix == "E" || prefix == "S" { close(i + 1) }
            }
            close(tags.count)
            var metadata: [String: Any]?
            if !docstarts.isEmpty { metadata = ["docstart": docstarts]; docstarts = [] }
            // Held back one sentence, so that `-DOCSTART-` lines after the file's last sentence
            // can go with it (as `docstart_after`) and come back out of `corpus export`.
            if let previous = pending { try sink.emit(previous) }
            pending = ImportRecord(
                text: text, line: firstLine, metadata: metadata, spans: spans,
                tokenRows: (String(UnicodeScalar(separator)), expectedColumns ?? 0, rows.joined(separator: "\n")))
        }

        while var line = try nextLine(reader, dropCR: true) {
            stripBOM(&line)
            sink.bytesRead = reader.bytesRead
            if Self.isBlank(line.bytes) {
                try finishSentence()
                continue
            }
            if line.bytes.starts(with: Array("-DOCSTART-".utf8)) {
                try finishSentence()
                do { docstarts.append(try decode(line)) } catch let error as CorpusError { try sink.bad(error) }
                continue
            }
            if bad { continue }
            do {
                let text = try decode(line)
                // The first good token line sets the separator and the column count (a rejected
                // line, skipped with --skip-bad, sets neither).
                let lineSeparator: UInt8 = expectedColumns == nil ? (line.bytes.contains(0x09) ? 0x09 : 0x20) : separator
                let columns = text.utf8.split(separator: lineSeparator, omittingEmptySubsequences: false)
                guard columns.count == (expectedColumns ?? columns.count), columns.count >= 2 else {
                    throw CorpusError.conllColumnCount(file: path, line: line.number, expected: max(expectedColumns ?? 2, 2), found: columns.count)
                }
                guard !columns[0].isEmpty else {
                    throw CorpusError.invalidValue(file: path, line: line.number, reason: "CoNLL line with an empty token (the line starts with its separator)")
                }
                if expectedColumns == nil { expectedColumns = columns.count; separator = lineSeparator }
                let token = String(Substring(columns[0]))
                let tag = String(Substring(columns[columns.count - 1]))
                let scheme = options.tagScheme
                guard tag == "O" || (tag.utf8.count > 2 && tag.dropFirst().first == "-" && scheme.prefixes.contains(tag.first!)) else {
                    throw CorpusError.invalidTag(file: path, line: line.number, tag: tag, scheme: scheme)
                }
                if rows.isEmpty { firstLine = line.number }
                rows.append(text)
                tokens.append(token)
                tags.append((tag, line.number))
            } catch let error as CorpusError {
                try sink.bad(error)
                bad = true  // skip the rest of this sentence
            }
        }
        try finishSentence()
        if var last = pending {
            if !docstarts.isEmpty { last.metadata = (last.metadata ?? [:]).merging(["docstart_after": docstarts]) { $1 } }
            try sink.emit(last)
        }
    }

    // MARK: SQuAD v1.1

    func squad() throws {
        var bytes = try readWholeFile(path)
        var base = 0
        if bytes.starts(with: Self.bom) { bytes.removeFirst(3); base = 3 }
        let all = bytes
        let lines = LineIndex(all)
        _ = try decodeUTF8(all[...], file: path, baseOffset: base, lineAt: lines.line(at:))
        sink.bytesRead = bytes.count
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: Data(bytes), options: [])
        } catch {
            let reason = Self.jsonReason(error)
            throw CorpusError.malformedJSON(file: path, line: Self.lineFromJSONError(reason) ?? 1, reason: reason)
        }
        // Line of an occurrence of a JSON string (for errors about one question): searched from
        // the last one found onwards, then from the start (questions come in file order, so a
        // file with a bad answer in every question is scanned about once, not once per question).
        var cursor = 0
        func lineOf(_ string: String) -> Int {
            let needle = Array(Array(JSONValue.quoted(string).utf8).dropFirst().dropLast())
            guard !needle.isEmpty, needle.count <= all.count else { return 1 }
            func find(from: Int, before limit: Int) -> Int? {
                var i = from
                let first = needle[0]
                while i < limit && i + needle.count <= all.count {
                    if all[i] == first && all[i..<(i + needle.count)].elementsEqual(needle) { return i }
                    i += 1
                }
                return nil
            }
            guard let at = find(from: cursor, before: all.count) ?? find(from: 0, before: cursor) else { return 1 }
            cursor = at
            return lines.line(at: at)
        }
        guard let top = root as? [String: Any], let data = top["data"] as? [Any] else {
            throw CorpusError.malformedSQuAD(file: path, line: 1, reason: "no \"data\" array")
        }
        var questionIDs = Set<String>()
        for (articleIndex, articleAny) in data.enumerated() {
            guard let article = articleAny as? [String: Any], let paragraphs = article["paragraphs"] as? [Any] else {
                throw CorpusError.malformedSQuAD(file: path, line: 1, reason: "data[\(articleIndex)] has no \"paragraphs\" array")
            }
            let title = article["title"] as? String
            for (paragraphIndex, paragraphAny) in paragraphs.enumerated() {
                guard let paragraph = paragraphAny as? [String: Any], let context = paragraph["context"] as? String else {
                    throw CorpusError.malformedSQuAD(
                        file: path, line: title.map(lineOf) ?? 1,
                        reason: "data[\(articleIndex)].paragraphs[\(paragraphIndex)] has no \"context\" string")
                }
                let contextScalars = Array(context.unicodeScalars)
                var questions: [(id: String, question: String, answers: [(text: String, start: Int)])] = []
                if let qas = paragraph["qas"], !(qas is [Any]) {
                    try sink.bad(.malformedSQuAD(file: path, line: lineOf(String(context.prefix(40))),
                                                 reason: "data[\(articleIndex)].paragraphs[\(paragraphIndex)].qas is not an array"))
                    continue
                }
                for qaAny in (paragraph["qas"] as? [Any]) ?? [] {
                    do {
                        guard let qa = qaAny as? [String: Any], let id = (qa["id"]).flatMap(Self.scalarString),
                              let question = qa["question"] as? String
                        else {
                            throw CorpusError.malformedSQuAD(file: path, line: lineOf(String(context.prefix(40))),
                                                             reason: "a question without \"id\" or \"question\"")
                        }
                        // Ids name questions in predictions and scores (the file reader refuses a repeat too).
                        guard questionIDs.insert(id).inserted else {
                            throw CorpusError.malformedSQuAD(file: path, line: lineOf(id), reason: "question \(id): duplicate id")
                        }
                        var answers: [(text: String, start: Int)] = []
                        if let a = qa["answers"], !(a is [Any]) {
                            throw CorpusError.malformedSQuAD(file: path, line: lineOf(id), reason: "question \(id): \"answers\" is not an array")
                        }
                        for answerAny in (qa["answers"] as? [Any]) ?? [] {
                            guard let answer = answerAny as? [String: Any], let text = answer["text"] as? String,
                                  answer["answer_start"] != nil
                            else {
                                throw CorpusError.malformedSQuAD(file: path, line: lineOf(id),
                                                                 reason: "question \(id): an answer without \"text\" or \"answer_start\"")
                            }
                            guard let start = answer["answer_start"].flatMap(Self.jsonInteger) else {
                                throw CorpusError.malformedSQuAD(file: path, line: lineOf(id),
                                                                 reason: "question \(id): answer_start is not an integer")
                            }
                            let answerScalars = Array(text.unicodeScalars)
                            // Bounded before any arithmetic: a start near Int.max must not overflow.
                            guard start >= 0 && start <= contextScalars.count - answerScalars.count else {
                                throw CorpusError.malformedSQuAD(
                                    file: path, line: lineOf(id),
                                    reason: "question \(id): answer \"\(text)\" at answer_start \(start) lies outside the context (\(contextScalars.count) characters)")
                            }
                            let end = start + answerScalars.count
                            if !contextScalars[start..<end].elementsEqual(answerScalars) {
                                var found = String.UnicodeScalarView()
                                found.append(contentsOf: contextScalars[start..<end])
                                throw CorpusError.answerMismatch(
                                    file: path, line: lineOf(id), questionID: id, expected: text, found: String(found))
                            }
                            answers.append((text, start))
                        }
                        questions.append((id, question, answers))
                    } catch let error as CorpusError {
                        try sink.bad(error)
                    }
                }
                var metadata: [String: Any] = [:]
                if let title { metadata["title"] = title }
                try sink.emit(ImportRecord(text: context, line: 1, metadata: metadata, questions: questions))
            }
        }
    }

    /// Extracts "line N" from a Foundation JSON error message, when it has one.
    static func lineFromJSONError(_ message: String) -> Int? {
        guard let range = message.range(of: "line ") else { return nil }
        let digits = message[range.upperBound...].prefix(while: { $0.isASCII && $0.isNumber })
        return Int(digits)
    }
}
