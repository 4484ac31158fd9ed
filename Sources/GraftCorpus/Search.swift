import Foundation
import GRDB

/// A full-text search match.
public struct SearchHit: Sendable, Equatable {
    public var documentID: Int64
    public var source: String
    /// An excerpt around the match, matched terms in `[` `]`.
    public var snippet: String
}

extension CorpusStore {
    /// Searches document texts with SQLite FTS5 (best matches first).
    ///
    /// `query` uses FTS5 syntax (`word`, `"a phrase"`, `a AND b`, `pre*`); when it is not valid
    /// FTS5 syntax, each whitespace-separated word is searched as a quoted term instead.
    public func search(_ query: String, limit: Int = 10, snippetTokens: Int = 16) throws -> [SearchHit] {
        func run(_ q: String) throws -> [SearchHit] {
            try pool.read { db in
                try Row.fetchAll(db, sql: """
                    SELECT d.id, s.name, snippet(document_fts, 0, '[', ']', '…', ?) AS snippet
                    FROM document_fts JOIN document d ON d.id = document_fts.rowid JOIN source s ON s.id = d.sourceId
                    WHERE document_fts MATCH ? ORDER BY rank LIMIT ?
                    """, arguments: [max(1, min(64, snippetTokens)), q, limit]
                ).map { SearchHit(documentID: $0["id"], source: $0["name"], snippet: $0["snippet"]) }
            }
        }
        do {
            return try run(query)
        } catch let error as DatabaseError where error.resultCode == .SQLITE_ERROR {
            // An FTS5 query syntax error (e.g. an unbalanced quote): search the words literally.
            let quoted = query.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
                .map { "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
                .joined(separator: " ")
            guard !quoted.isEmpty else { return [] }
            do { return try run(quoted) } catch { throw CorpusError.wrap(error) }
        } catch {
            throw CorpusError.wrap(error)
        }
    }
}
