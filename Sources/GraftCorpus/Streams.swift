import Foundation
import GRDB

/// A stream read from the store page by page (keyset pagination on document id): memory is
/// bounded by one page whatever the corpus size, each page is its own short read transaction,
/// so a writer can keep importing meanwhile. Iterating twice reads the store twice.
///
/// Iteration throws: a database error in the middle of the stream reaches the caller as a
/// ``CorpusError``, never as an early end.
public struct PagedStream<Element> {
    /// Fetches the page after `key` (exclusive): elements with their keys, in key order.
    let fetchPage: (_ after: Int64, _ limit: Int) throws -> [(key: Int64, element: Element)]
    let pageSize: Int

    init(pageSize: Int, fetchPage: @escaping (_ after: Int64, _ limit: Int) throws -> [(key: Int64, element: Element)]) {
        self.pageSize = Swift.max(1, pageSize)
        self.fetchPage = fetchPage
    }

    public struct Iterator {
        let stream: PagedStream
        var page: [(key: Int64, element: Element)] = []
        var index = 0
        var after = Int64.min
        var finished = false

        /// The next element, or nil at the real end of the stream.
        /// - Throws: ``CorpusError`` when a page cannot be read.
        public mutating func next() throws -> Element? {
            if index == page.count {
                if finished { return nil }
                do {
                    page = try stream.fetchPage(after, stream.pageSize)
                } catch {
                    finished = true
                    page = []
                    throw CorpusError.wrap(error)
                }
                index = 0
                if page.count < stream.pageSize { finished = true }
                guard let last = page.last else { return nil }
                after = last.key
            }
            defer { index += 1 }
            return page[index].element
        }
    }

    public func makeIterator() -> Iterator { Iterator(stream: self) }

    /// Calls `body` on every element in order; stops at the first error (the stream's or `body`'s).
    public func forEach(_ body: (Element) throws -> Void) throws {
        var iterator = makeIterator()
        while let e = try iterator.next() { try body(e) }
    }

    /// Every element, in order (the whole stream in memory: for small selections and tests).
    public func all() throws -> [Element] {
        var out: [Element] = []
        try forEach { out.append($0) }
        return out
    }

    /// The elements in arrays of `size` (the last one may be shorter); `next()` throws as the
    /// stream does.
    public func batches(of size: Int) -> Batches {
        Batches(iterator: makeIterator(), size: Swift.max(1, size))
    }

    public struct Batches {
        var iterator: Iterator
        let size: Int
        public mutating func next() throws -> [Element]? {
            var batch: [Element] = []
            batch.reserveCapacity(size)
            while batch.count < size, let e = try iterator.next() { batch.append(e) }
            return batch.isEmpty ? nil : batch
        }
    }
}

/// A stored document.
public struct Document: Sendable, Equatable {
    public var id: Int64
    public var sourceID: Int64
    public var text: String
    /// The metadata JSON object as text (nil when none).
    public var metadata: String?
}

/// A labelled example for sequence classification (e.g. sentiment).
public struct ClassificationExample: Sendable, Equatable {
    public var documentID: Int64
    public var text: String
    public var label: String
}

/// An entity span: `[start, end)` in Unicode scalars of the text, with its type.
public struct EntitySpan: Sendable, Equatable, Hashable, Codable {
    public var start: Int
    public var end: Int
    public var type: String
    public init(start: Int, end: Int, type: String) {
        self.start = start
        self.end = end
        self.type = type
    }
}

/// A labelled example for token classification (NER).
///
/// `text` is the tokens joined by single spaces; `spans` are the entities in scalar offsets of
/// `text`; `tokens`/`tags` are the original CoNLL columns (first and last) when the example
/// came from CoNLL, else empty.
public struct TaggingExample: Sendable, Equatable {
    public var documentID: Int64
    public var text: String
    public var spans: [EntitySpan]
    public var tokens: [String]
    public var tags: [String]
}

/// An answer: its text and scalar offset in the context.
public struct Answer: Sendable, Equatable, Codable {
    public var text: String
    public var start: Int
}

/// A labelled example for extractive question answering (one question on one context).
public struct QAExample: Sendable, Equatable {
    public var documentID: Int64
    public var questionID: String
    public var question: String
    public var context: String
    public var answers: [Answer]
    /// The SQuAD article title, when there was one.
    public var title: String?
}

extension CorpusStore {
    /// Number of documents selected by `filter` (e.g. for progress totals).
    public func documentCount(_ filter: DocumentFilter = .all) throws -> Int {
        try read { db in
            let c = try filter.condition(db)
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM document d WHERE \(c.sql)", arguments: c.arguments) ?? 0
        }
    }

    /// Streams documents (bounded memory), in import order.
    public func documents(_ filter: DocumentFilter = .all, pageSize: Int = 512) -> PagedStream<Document> {
        PagedStream(pageSize: pageSize) { after, limit in
            try self.read { db in
                let c = try filter.condition(db)
                return try Row.fetchAll(
                    db, sql: "SELECT id, sourceId, text, metadata FROM document d WHERE d.id > ? AND \(c.sql) ORDER BY d.id LIMIT ?",
                    arguments: [after] + c.arguments + [limit]
                ).map { row in
                    let id: Int64 = row["id"]
                    return (id, Document(id: id, sourceID: row["sourceId"], text: row["text"], metadata: row["metadata"]))
                }
            }
        }
    }

    /// Streams document texts only: what a tokenizer trainer reads.
    public func documentTexts(_ filter: DocumentFilter = .all, pageSize: Int = 512) -> PagedStream<String> {
        PagedStream(pageSize: pageSize) { after, limit in
            try self.read { db in
                let c = try filter.condition(db)
                return try Row.fetchAll(
                    db, sql: "SELECT id, text FROM document d WHERE d.id > ? AND \(c.sql) ORDER BY d.id LIMIT ?",
                    arguments: [after] + c.arguments + [limit]
                ).map { (($0["id"] as Int64), ($0["text"] as String)) }
            }
        }
    }

    /// Streams documents that carry a label for `task`, with that label.
    public func classificationExamples(task: String = "label", _ filter: DocumentFilter = .all, pageSize: Int = 512)
        -> PagedStream<ClassificationExample>
    {
        PagedStream(pageSize: pageSize) { after, limit in
            try self.read { db in
                let c = try filter.condition(db)
                return try Row.fetchAll(db, sql: """
                    SELECT d.id, d.text, l.value FROM document d JOIN label l ON l.documentId = d.id AND l.task = ?
                    WHERE d.id > ? AND \(c.sql) ORDER BY d.id LIMIT ?
                    """, arguments: [task, after] + c.arguments + [limit]
                ).map { row in
                    let id: Int64 = row["id"]
                    return (id, ClassificationExample(documentID: id, text: row["text"], label: row["value"]))
                }
            }
        }
    }

    /// Streams token-classification examples of `task` (default `ner`): documents with entity
    /// spans or CoNLL token rows of that task.
    public func taggingExamples(task: String = "ner", _ filter: DocumentFilter = .all, pageSize: Int = 256) -> PagedStream<TaggingExample> {
        PagedStream(pageSize: pageSize) { after, limit in
            try self.read { db in
                let c = try filter.condition(db)
                let rows = try Row.fetchAll(db, sql: """
                    SELECT d.id, d.text, t.separator, t.rows FROM document d LEFT JOIN token_row t ON t.documentId = d.id AND t.task = ?
                    WHERE d.id > ? AND \(c.sql)
                      AND (t.documentId IS NOT NULL OR EXISTS (SELECT 1 FROM span s WHERE s.documentId = d.id AND s.task = ?))
                    ORDER BY d.id LIMIT ?
                    """, arguments: [task, after] + c.arguments + [task, limit])
                guard let first = rows.first, let last = rows.last else { return [] }
                var spans: [Int64: [EntitySpan]] = [:]
                for s in try Row.fetchAll(db, sql: """
                    SELECT documentId, start, end, type FROM span WHERE task = ? AND documentId BETWEEN ? AND ? ORDER BY documentId, start, id
                    """, arguments: [task, first["id"] as Int64, last["id"] as Int64]) {
                    spans[s["documentId"], default: []].append(EntitySpan(start: s["start"], end: s["end"], type: s["type"]))
                }
                return rows.map { row in
                    let id: Int64 = row["id"]
                    var tokens: [String] = [], tags: [String] = []
                    if let separator: String = row["separator"], let text: String = row["rows"], let sep = separator.utf8.first {
                        for line in text.utf8.split(separator: 0x0A) {
                            let columns = line.split(separator: sep, omittingEmptySubsequences: false)
                            tokens.append(String(Substring(columns[0])))
                            tags.append(String(Substring(columns[columns.count - 1])))
                        }
                    }
                    return (id, TaggingExample(documentID: id, text: row["text"], spans: spans[id] ?? [], tokens: tokens, tags: tags))
                }
            }
        }
    }

    /// Streams QA examples: one per question, with its context and answers.
    public func qaExamples(_ filter: DocumentFilter = .all, pageSize: Int = 256) -> PagedStream<QAExample> {
        PagedStream(pageSize: pageSize) { after, limit in
            try self.read { db in
                let c = try filter.condition(db)
                let rows = try Row.fetchAll(db, sql: """
                    SELECT q.id AS qid, q.externalId, q.question, d.id, d.text, d.metadata
                    FROM question q JOIN document d ON d.id = q.documentId
                    WHERE q.id > ? AND \(c.sql) ORDER BY q.id LIMIT ?
                    """, arguments: [after] + c.arguments + [limit])
                guard let first = rows.first, let last = rows.last else { return [] }
                var answers: [Int64: [Answer]] = [:]
                for a in try Row.fetchAll(db, sql: """
                    SELECT questionId, text, start FROM answer WHERE questionId BETWEEN ? AND ? ORDER BY questionId, ordinal
                    """, arguments: [first["qid"] as Int64, last["qid"] as Int64]) {
                    answers[a["questionId"], default: []].append(Answer(text: a["text"], start: a["start"]))
                }
                return try rows.map { row in
                    let qid: Int64 = row["qid"]
                    let title = try (row["metadata"] as String?).map { try metadataObject($0, documentID: row["id"]) }?["title"] as? String
                    return (qid, QAExample(documentID: row["id"], questionID: row["externalId"], question: row["question"],
                                           context: row["text"], answers: answers[qid] ?? [], title: title))
                }
            }
        }
    }
}

/// Parses a document's stored metadata JSON object.
/// - Throws: ``CorpusError/database(_:)`` naming the document when it is not a JSON object
///   (the store only writes objects, so this means a damaged database).
func metadataObject(_ json: String, documentID: Int64) throws -> [String: Any] {
    let value: Any
    do { value = try JSONSerialization.jsonObject(with: Data(json.utf8)) } catch {
        throw CorpusError.database("document \(documentID): metadata is not valid JSON (\(error.localizedDescription)): \(json.prefix(80))")
    }
    guard let object = value as? [String: Any] else {
        throw CorpusError.database("document \(documentID): metadata is not a JSON object: \(json.prefix(80))")
    }
    return object
}
