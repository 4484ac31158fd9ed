import Foundation
import GRDB

/// Holds the first error met by a streaming sequence (``Sequence`` iteration cannot throw).
///
/// Streams stop at the first database error; check ``error`` after the loop.
public final class StreamStatus: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: CorpusError?
    public init() {}
    /// The error that ended the stream early, or nil when it ran to its end.
    public var error: CorpusError? {
        lock.lock(); defer { lock.unlock() }
        return stored
    }
    func record(_ error: any Error) {
        lock.lock(); defer { lock.unlock() }
        if stored == nil { stored = CorpusError.wrap(error) }
    }
}

/// A sequence read from the store page by page (keyset pagination on document id): memory is
/// bounded by one page whatever the corpus size, each page is its own short read transaction,
/// so a writer can keep importing meanwhile. Iterating twice reads the store twice.
public struct PagedSequence<Element>: Sequence {
    /// Fetches the page after `key` (exclusive): elements with their keys, in key order.
    let fetchPage: (_ after: Int64, _ limit: Int) throws -> [(key: Int64, element: Element)]
    let pageSize: Int
    /// Where an error that ended iteration early is recorded.
    public let status: StreamStatus

    init(pageSize: Int, status: StreamStatus = StreamStatus(),
         fetchPage: @escaping (_ after: Int64, _ limit: Int) throws -> [(key: Int64, element: Element)]) {
        self.pageSize = Swift.max(1, pageSize)
        self.status = status
        self.fetchPage = fetchPage
    }

    public struct Iterator: IteratorProtocol {
        let sequence: PagedSequence
        var page: [(key: Int64, element: Element)] = []
        var index = 0
        var after = Int64.min
        var finished = false

        public mutating func next() -> Element? {
            if index == page.count {
                if finished { return nil }
                do {
                    page = try sequence.fetchPage(after, sequence.pageSize)
                } catch {
                    sequence.status.record(error)
                    page = []
                }
                index = 0
                if page.count < sequence.pageSize { finished = true }
                guard let last = page.last else { return nil }
                after = last.key
            }
            defer { index += 1 }
            return page[index].element
        }
    }

    public func makeIterator() -> Iterator { Iterator(sequence: self) }

    /// The elements in arrays of `size` (the last one may be shorter).
    public func batches(of size: Int) -> UnfoldSequence<[Element], Iterator> {
        let n = Swift.max(1, size)
        return sequence(state: makeIterator()) { iterator in
            var batch: [Element] = []
            batch.reserveCapacity(n)
            while batch.count < n, let e = iterator.next() { batch.append(e) }
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
public struct EntitySpan: Sendable, Equatable, Codable {
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
    public func documents(_ filter: DocumentFilter = .all, pageSize: Int = 512) -> PagedSequence<Document> {
        PagedSequence(pageSize: pageSize) { after, limit in
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
    public func documentTexts(_ filter: DocumentFilter = .all, pageSize: Int = 512) -> PagedSequence<String> {
        PagedSequence(pageSize: pageSize) { after, limit in
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
        -> PagedSequence<ClassificationExample>
    {
        PagedSequence(pageSize: pageSize) { after, limit in
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

    /// Streams NER examples: documents with entity spans or CoNLL token rows.
    public func taggingExamples(_ filter: DocumentFilter = .all, pageSize: Int = 256) -> PagedSequence<TaggingExample> {
        PagedSequence(pageSize: pageSize) { after, limit in
            try self.read { db in
                let c = try filter.condition(db)
                let rows = try Row.fetchAll(db, sql: """
                    SELECT d.id, d.text, t.separator, t.rows FROM document d LEFT JOIN token_row t ON t.documentId = d.id
                    WHERE d.id > ? AND \(c.sql)
                      AND (t.documentId IS NOT NULL OR EXISTS (SELECT 1 FROM span s WHERE s.documentId = d.id))
                    ORDER BY d.id LIMIT ?
                    """, arguments: [after] + c.arguments + [limit])
                guard let first = rows.first, let last = rows.last else { return [] }
                var spans: [Int64: [EntitySpan]] = [:]
                for s in try Row.fetchAll(db, sql: """
                    SELECT documentId, start, end, type FROM span WHERE documentId BETWEEN ? AND ? ORDER BY documentId, start, id
                    """, arguments: [first["id"] as Int64, last["id"] as Int64]) {
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
    public func qaExamples(_ filter: DocumentFilter = .all, pageSize: Int = 256) -> PagedSequence<QAExample> {
        PagedSequence(pageSize: pageSize) { after, limit in
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
                return rows.map { row in
                    let qid: Int64 = row["qid"]
                    let title = (row["metadata"] as String?).flatMap(metadataObject)?["title"] as? String
                    return (qid, QAExample(documentID: row["id"], questionID: row["externalId"], question: row["question"],
                                           context: row["text"], answers: answers[qid] ?? [], title: title))
                }
            }
        }
    }
}

/// Parses a metadata JSON object.
func metadataObject(_ json: String) -> [String: Any]? {
    (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any]
}
