import Foundation
import GraftSupport
import GRDB

/// Output formats of ``CorpusStore/export(format:filter:textField:labelField:task:write:)``.
public enum ExportFormat: String, Sendable, CaseIterable {
    /// One JSON object per document: its metadata fields, the text, the label of the chosen
    /// task (if any), `spans` (if any) and `qas` (if any). Keys sorted.
    case jsonl
    /// The original CoNLL rows of documents imported from CoNLL, `-DOCSTART-` lines where they
    /// were, each sentence followed by a blank line: a CoNLL file in gives the same bytes out.
    case conll
    /// SQuAD v1.1 JSON of documents that have questions (articles rebuilt from `title`).
    case squad
}

/// What an export wrote.
public struct ExportReport: Sendable {
    public var documents: Int
    /// Documents left out because the format cannot represent them (e.g. no CoNLL rows).
    public var skipped: Int
}

extension CorpusStore {
    /// Writes documents in `format` through `write` (called with successive chunks of text),
    /// streaming with bounded memory.
    public func export(
        format: ExportFormat, filter: DocumentFilter = .all, textField: String = "text", labelField: String = "label",
        task: String = "label", taggingTask: String = "ner", write: (String) throws -> Void
    ) throws -> ExportReport {
        switch format {
        case .jsonl: return try exportJSONL(filter: filter, textField: textField, labelField: labelField, task: task,
                                            taggingTask: taggingTask, write: write)
        case .conll: return try exportCoNLL(filter: filter, taggingTask: taggingTask, write: write)
        case .squad: return try exportSQuAD(filter: filter, write: write)
        }
    }

    private func json(_ object: Any) throws -> String {
        do {
            return try JSONValue(jsonObject: object).serialized()
        } catch {
            throw CorpusError.invalidArgument("cannot encode JSON: \(error)")
        }
    }

    private func exportJSONL(filter: DocumentFilter, textField: String, labelField: String, task: String,
                             taggingTask: String, write: (String) throws -> Void) throws -> ExportReport {
        var count = 0
        let pages = PagedStream<[String: Any]>(pageSize: 512) { after, limit in
            try self.read { db in
                let c = try filter.condition(db)
                let rows = try Row.fetchAll(db, sql: """
                    SELECT d.id, d.text, d.metadata, (SELECT value FROM label l WHERE l.documentId = d.id AND l.task = ? ORDER BY l.id LIMIT 1) AS label
                    FROM document d WHERE d.id > ? AND \(c.sql) ORDER BY d.id LIMIT ?
                    """, arguments: [task, after] + c.arguments + [limit])
                guard let first = rows.first, let last = rows.last else { return [] }
                let range: StatementArguments = [first["id"] as Int64, last["id"] as Int64]
                var spans: [Int64: [[String: Any]]] = [:]
                for s in try Row.fetchAll(db, sql: "SELECT documentId, start, end, type FROM span WHERE task = ? AND documentId BETWEEN ? AND ? ORDER BY documentId, start, id", arguments: [taggingTask] + range) {
                    spans[s["documentId"], default: []].append(["start": s["start"] as Int, "end": s["end"] as Int, "type": s["type"] as String])
                }
                let qas = try Self.questions(db, documentsBetween: first["id"], and: last["id"])
                return try rows.map { row in
                    let id: Int64 = row["id"]
                    var object = try (row["metadata"] as String?).map { try metadataObject($0, documentID: id) } ?? [:]
                    object[textField] = row["text"] as String
                    if let label: String = row["label"] { object[labelField] = label }
                    if let s = spans[id] { object["spans"] = s }
                    if let q = qas[id] { object["qas"] = q }
                    return (id, object)
                }
            }
        }
        var objects = pages.makeIterator()
        while let object = try objects.next() {
            try write(try json(object) + "\n")
            count += 1
        }
        return ExportReport(documents: count, skipped: 0)
    }

    /// SQuAD-style question objects of documents in an id range.
    static func questions(_ db: Database, documentsBetween lo: Int64, and hi: Int64) throws -> [Int64: [[String: Any]]] {
        var answers: [Int64: [[String: Any]]] = [:]
        for a in try Row.fetchAll(db, sql: """
            SELECT a.questionId, a.text, a.start FROM answer a JOIN question q ON q.id = a.questionId
            WHERE q.documentId BETWEEN ? AND ? ORDER BY a.questionId, a.ordinal
            """, arguments: [lo, hi]) {
            answers[a["questionId"], default: []].append(["text": a["text"] as String, "answer_start": a["start"] as Int])
        }
        var result: [Int64: [[String: Any]]] = [:]
        for q in try Row.fetchAll(db, sql: """
            SELECT id, documentId, externalId, question FROM question WHERE documentId BETWEEN ? AND ? ORDER BY documentId, ordinal
            """, arguments: [lo, hi]) {
            let qid: Int64 = q["id"]
            result[q["documentId"], default: []].append([
                "id": q["externalId"] as String, "question": q["question"] as String, "answers": answers[qid] ?? [],
            ])
        }
        return result
    }

    private func exportCoNLL(filter: DocumentFilter, taggingTask: String, write: (String) throws -> Void) throws -> ExportReport {
        let total = try read { db -> Int in
            let c = try filter.condition(db)
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM document d WHERE \(c.sql)", arguments: c.arguments) ?? 0
        }
        let pages = PagedStream<(rows: String, metadata: String?, id: Int64)>(pageSize: 1024) { after, limit in
            try self.read { db in
                let c = try filter.condition(db)
                return try Row.fetchAll(db, sql: """
                    SELECT d.id, d.metadata, t.rows FROM document d JOIN token_row t ON t.documentId = d.id AND t.task = ?
                    WHERE d.id > ? AND \(c.sql) ORDER BY d.id LIMIT ?
                    """, arguments: [taggingTask, after] + c.arguments + [limit]
                ).map { (($0["id"] as Int64), (($0["rows"] as String), ($0["metadata"] as String?), ($0["id"] as Int64))) }
            }
        }
        var count = 0
        var chunk = ""
        var documents = pages.makeIterator()
        while let (rows, metadata, id) = try documents.next() {
            let object = try metadata.map { try metadataObject($0, documentID: id) }
            for line in object?["docstart"] as? [String] ?? [] { chunk += line + "\n\n" }
            chunk += rows + "\n\n"
            for line in object?["docstart_after"] as? [String] ?? [] { chunk += line + "\n\n" }
            count += 1
            if chunk.utf8.count > 1 << 16 { try write(chunk); chunk = "" }
        }
        if !chunk.isEmpty { try write(chunk) }
        return ExportReport(documents: count, skipped: total - count)
    }

    private func exportSQuAD(filter: DocumentFilter, write: (String) throws -> Void) throws -> ExportReport {
        let pages = PagedStream<(title: String?, paragraph: [String: Any])>(pageSize: 256) { after, limit in
            try self.read { db in
                let c = try filter.condition(db)
                let rows = try Row.fetchAll(db, sql: """
                    SELECT d.id, d.text, d.metadata FROM document d
                    WHERE d.id > ? AND \(c.sql) AND EXISTS (SELECT 1 FROM question q WHERE q.documentId = d.id)
                    ORDER BY d.id LIMIT ?
                    """, arguments: [after] + c.arguments + [limit])
                guard let first = rows.first, let last = rows.last else { return [] }
                let qas = try Self.questions(db, documentsBetween: first["id"], and: last["id"])
                return try rows.map { row in
                    let id: Int64 = row["id"]
                    let title = try (row["metadata"] as String?).map { try metadataObject($0, documentID: id) }?["title"] as? String
                    return (id, (title, ["context": row["text"] as String, "qas": qas[id] ?? []]))
                }
            }
        }
        var count = 0
        var articles = 0
        var current: (title: String?, paragraphs: [[String: Any]])?
        try write("{\"data\": [")
        func flush() throws {
            guard let article = current else { return }
            var object: [String: Any] = ["paragraphs": article.paragraphs]
            if let title = article.title { object["title"] = title }
            try write((articles > 0 ? ",\n" : "\n") + (try json(object)))
            articles += 1
            current = nil
        }
        var paragraphs = pages.makeIterator()
        while let (title, paragraph) = try paragraphs.next() {
            if let c = current, c.title != title || title == nil { try flush() }
            if current == nil { current = (title, []) }
            current!.paragraphs.append(paragraph)
            count += 1
        }
        try flush()
        try write("\n], \"version\": \"1.1\"}\n")
        return ExportReport(documents: count, skipped: 0)
    }
}
