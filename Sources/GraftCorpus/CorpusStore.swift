import Foundation
import GRDB

/// A Graft corpus: one SQLite database (WAL mode) holding sources, documents, annotations,
/// split schemes, token caches and training runs.
///
/// A store can be shared between threads. Several processes may open the same file: one
/// writer at a time (an import is one write transaction) while readers keep streaming from
/// their own snapshot.
public final class CorpusStore: Sendable {
    /// Path of the database file.
    public let path: String
    let pool: DatabasePool

    /// Opens the corpus at `path`, creating it (and migrating it to the current schema) when
    /// the file does not exist or is empty.
    ///
    /// - Throws: ``CorpusError/notAGraftDatabase(_:)`` when the file is another SQLite database
    ///   or not SQLite at all (the file is left untouched); ``CorpusError/schemaTooNew(path:)``
    ///   when a newer Graft wrote it.
    public init(path: String) throws {
        self.path = path
        if let size = fileSize(path), size > 0 {
            try Self.checkGraftDatabase(path)
        }
        var config = Configuration()
        config.busyMode = .timeout(30)
        config.foreignKeysEnabled = true
        config.prepareDatabase { db in
            // An import is one long transaction: a large page cache keeps it from spilling
            // uncommitted pages to the WAL and reading them back (≈ 30% of import time).
            try db.execute(sql: "PRAGMA cache_size = -65536")  // KiB, i.e. up to 64 MiB
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
        }
        do {
            pool = try DatabasePool(path: path, configuration: config)
            let migrator = CorpusSchema.migrator
            if try pool.read({ try migrator.hasBeenSuperseded($0) }) {
                throw CorpusError.schemaTooNew(path: path)
            }
            try migrator.migrate(pool)
        } catch let e as DatabaseError {
            throw CorpusError.database("\(path): \(e.description)")   // e.g. SQLite 14, a directory that does not exist
        } catch {
            throw CorpusError.wrap(error)
        }
    }

    /// Refuses files that are not Graft corpora without modifying them (read-only connection).
    private static func checkGraftDatabase(_ path: String) throws {
        var config = Configuration()
        config.readonly = true
        // Another process (a second MPI rank, an import) may hold the write lock for a moment:
        // wait for it as the store itself does, instead of calling the file "not SQLite".
        config.busyMode = .timeout(30)
        let result: (appID: Int32, tables: Int, marker: String?)
        do {
            let queue = try DatabaseQueue(path: path, configuration: config)
            result = try queue.read { db in
                let appID = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
                let tables = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") ?? 0
                var marker: String?
                if try db.tableExists("graft_meta") {
                    marker = try String.fetchOne(db, sql: "SELECT value FROM graft_meta WHERE key = 'format'")
                }
                return (appID, tables, marker)
            }
            try queue.close()
        } catch let error as DatabaseError where error.resultCode != .SQLITE_BUSY && error.resultCode != .SQLITE_LOCKED {
            throw CorpusError.notAGraftDatabase("\(path) is not an SQLite database (\(error.message ?? "\(error.resultCode)"))")
        } catch {
            throw CorpusError.wrap(error)
        }
        if result.appID == 0 && result.tables == 0 { return }  // an empty SQLite file: initialise it
        guard result.appID == CorpusSchema.applicationID, result.marker == CorpusSchema.formatMarker else {
            throw CorpusError.notAGraftDatabase(
                "\(path) is an SQLite database of another application (application_id \(result.appID), \(result.tables) schema objects); Graft will not modify it")
        }
    }

    /// Runs `PRAGMA integrity_check` and returns its rows ("ok" when all is well).
    public func integrityCheck() throws -> [String] {
        do { return try pool.read { try String.fetchAll($0, sql: "PRAGMA integrity_check") } }
        catch { throw CorpusError.wrap(error) }
    }

    /// Checks that the FTS5 full-text index matches the document texts (throws if not).
    public func checkSearchIndex() throws {
        try write { try $0.execute(sql: "INSERT INTO document_fts(document_fts) VALUES ('integrity-check')") }
    }

    /// The SQLite journal mode in use ("wal").
    public func journalMode() throws -> String {
        do { return try pool.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") ?? "" } }
        catch { throw CorpusError.wrap(error) }
    }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try pool.read(body) } catch { throw CorpusError.wrap(error) }
    }

    func write<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try pool.write(body) } catch { throw CorpusError.wrap(error) }
    }
}

// MARK: - Sources and statistics

/// A batch of documents imported from one file.
public struct SourceInfo: Sendable, Codable, Equatable {
    public var id: Int64
    public var name: String
    public var path: String
    public var format: String
    public var fileHash: String
    public var fileBytes: Int
    public var records: Int
    public var documents: Int
    public var duplicates: Int
    public var skipped: Int
    public var importedAt: Double
    public var seconds: Double
}

/// Token counts of one tokenizer's cache.
public struct TokenizerStats: Sendable, Codable, Equatable {
    public var fingerprint: String
    public var documents: Int
    public var tokens: Int
}

/// Counts over the whole corpus (`graft corpus stats`).
public struct CorpusStats: Sendable, Codable, Equatable {
    public var documents: Int
    public var sources: Int
    /// Labels + spans + questions.
    public var annotations: Int
    public var labels: Int
    public var spans: Int
    public var questions: Int
    public var answers: Int
    /// UTF-8 bytes of all document texts.
    public var textBytes: Int
    /// Tokens in the most recently updated token cache (nil when nothing was tokenized).
    public var tokens: Int?
    public var tokenizers: [TokenizerStats]
    public var runs: Int
    /// Label tasks and their value counts, e.g. `["label": ["neg": 10, "pos": 12]]`.
    public var labelCounts: [String: [String: Int]]
}

extension CorpusStore {
    /// All sources in import order.
    public func sources() throws -> [SourceInfo] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM source ORDER BY id").map(SourceInfo.init(row:))
        }
    }

    /// Finds a source by id (digits) or by name.
    public func source(named idOrName: String) throws -> SourceInfo {
        let found = try read { db -> Row? in
            if let id = Int64(idOrName) {
                return try Row.fetchOne(db, sql: "SELECT * FROM source WHERE id = ?", arguments: [id])
            }
            return try Row.fetchOne(db, sql: "SELECT * FROM source WHERE name = ? ORDER BY id DESC LIMIT 1", arguments: [idOrName])
        }
        guard let row = found else { throw CorpusError.unknownSource(idOrName) }
        return SourceInfo(row: row)
    }

    /// Counts of documents, sources, annotations, tokens and runs.
    public func stats() throws -> CorpusStats {
        try read { db in
            let documents = try Int.fetchOne(db, sql: "SELECT count(*) FROM document") ?? 0
            let sources = try Int.fetchOne(db, sql: "SELECT count(*) FROM source") ?? 0
            let labels = try Int.fetchOne(db, sql: "SELECT count(*) FROM label") ?? 0
            let spans = try Int.fetchOne(db, sql: "SELECT count(*) FROM span") ?? 0
            let questions = try Int.fetchOne(db, sql: "SELECT count(*) FROM question") ?? 0
            let answers = try Int.fetchOne(db, sql: "SELECT count(*) FROM answer") ?? 0
            let bytes = try Int.fetchOne(db, sql: "SELECT coalesce(sum(bytes), 0) FROM document") ?? 0
            let runs = try Int.fetchOne(db, sql: "SELECT count(*) FROM run") ?? 0
            let tokenizers = try Row.fetchAll(db, sql: "SELECT fingerprint, documents, tokens FROM tokenizer ORDER BY updatedAt DESC, fingerprint")
                .map { TokenizerStats(fingerprint: $0["fingerprint"], documents: $0["documents"], tokens: $0["tokens"]) }
            var labelCounts: [String: [String: Int]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT task, value, count(*) AS n FROM label GROUP BY task, value") {
                labelCounts[row["task"], default: [:]][row["value"]] = row["n"]
            }
            return CorpusStats(
                documents: documents, sources: sources, annotations: labels + spans + questions,
                labels: labels, spans: spans, questions: questions, answers: answers, textBytes: bytes,
                tokens: tokenizers.first?.tokens, tokenizers: tokenizers, runs: runs, labelCounts: labelCounts)
        }
    }

    /// Deletes a source with its documents, annotations and cached tokens.
    public func removeSource(id: Int64) throws {
        try write { db in
            try db.execute(sql: "DELETE FROM source WHERE id = ?", arguments: [id])
            try db.execute(sql: """
                UPDATE tokenizer SET
                  documents = (SELECT count(*) FROM token_cache WHERE tokenizer = fingerprint),
                  tokens = (SELECT coalesce(sum(count), 0) FROM token_cache WHERE tokenizer = fingerprint)
                """)
        }
    }
}

extension SourceInfo {
    init(row: Row) {
        self.init(
            id: row["id"], name: row["name"], path: row["path"], format: row["format"], fileHash: row["fileHash"],
            fileBytes: row["fileBytes"], records: row["records"], documents: row["documents"],
            duplicates: row["duplicates"], skipped: row["skipped"], importedAt: row["importedAt"], seconds: row["seconds"])
    }
}
