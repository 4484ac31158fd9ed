import Foundation
import GraftSupport
import GRDB

/// Input formats understood by ``CorpusStore/importFile(_:options:progress:)``.
public enum ImportFormat: String, Sendable, CaseIterable, Codable {
    /// The whole file is one document.
    case text
    /// One document per non-blank line.
    case lines
    /// One document per blank-line-separated paragraph (lines joined by LF).
    case paragraphs
    /// JSON Lines: one object per line; text (and optionally label) in fields chosen by the user.
    case jsonl
    /// Tab-separated with a header row naming the columns; each row is split at its first
    /// (columns − 1) tabs, no quoting.
    case tsv
    /// Comma-separated (RFC 4180 quoting) with a header row.
    case csv
    /// CoNLL token/tag columns (space- or tab-separated), `-DOCSTART-` lines, a blank line after
    /// each sentence; the tag is the last column (IOB2 or IOB1; BIOES with
    /// ``ImportOptions/tagScheme`` `.bioes`).
    case conll
    /// SQuAD v1.1 JSON.
    case squad

    /// Guesses the format from a file extension: `.jsonl`/`.ndjson` → jsonl, `.tsv` → tsv,
    /// `.csv` → csv, `.conll` → conll, `.json` → squad, anything else → text.
    public static func infer(fromPath path: String) -> ImportFormat {
        let ext = (path as NSString).pathExtension.lowercased()
        switch ext {
        case "jsonl", "ndjson": return .jsonl
        case "tsv": return .tsv
        case "csv": return .csv
        case "conll", "conllu", "iob": return .conll
        case "json": return .squad
        default: return .text
        }
    }

    /// Formats whose records are annotated examples: duplicates are kept by default, because
    /// two equal sentences are two examples (and CoNLL export must reproduce both).
    var keepsDuplicatesByDefault: Bool {
        switch self {
        case .tsv, .csv, .conll, .squad: return true
        case .text, .lines, .paragraphs, .jsonl: return false
        }
    }
}

/// How the tag column of a CoNLL file encodes entities. The file's rows are stored as they are
/// (so `corpus export` gives the same bytes back); the entity spans are read under this scheme.
public enum CoNLLTagScheme: String, Sendable, CaseIterable, Codable {
    /// `O`, `B-TYPE`, `I-TYPE`: IOB2, or IOB1 (an `I-TYPE` that does not continue an entity of
    /// its type starts one).
    case iob
    /// `O`, `B-TYPE`, `I-TYPE`, `E-TYPE` (the last token of an entity) and `S-TYPE` (an entity of
    /// one token).
    case bioes

    /// Parses `iob` (also `iob1`, `iob2`, `bio`) and `bioes` (also `iobes`), case-insensitive.
    public init?(name: String) {
        switch name.lowercased() {
        case "iob", "iob1", "iob2", "bio": self = .iob
        case "bioes", "iobes": self = .bioes
        default: return nil
        }
    }

    /// The tag prefixes (the character before `-`) the scheme allows besides `O`.
    var prefixes: Set<Character> {
        switch self {
        case .iob: ["B", "I"]
        case .bioes: ["B", "I", "E", "S"]
        }
    }
}

/// How a file is imported.
public struct ImportOptions: Sendable {
    /// The format; nil infers it from the extension (``ImportFormat/infer(fromPath:)``).
    public var format: ImportFormat?
    /// JSONL field / CSV-TSV column holding the text (default `text`).
    public var textField: String?
    /// JSONL field / CSV-TSV column holding a label. JSONL: none unless set. CSV/TSV: `label`
    /// if the header has it.
    public var labelField: String?
    /// Task name under which annotations are stored; nil: `label` for labels, `ner` for
    /// entity spans and CoNLL rows. A tagging task other than NER (say `products`) is imported
    /// under its own name and read back with ``CorpusStore/taggingExamples(task:_:pageSize:)``.
    public var task: String?
    /// The task labels are stored under.
    public var labelTask: String { task ?? "label" }
    /// The task spans and CoNLL rows are stored under.
    public var taggingTask: String { task ?? "ner" }
    /// Put every document of the file in this split part regardless of its hash.
    public var split: SplitPart?
    /// Skip texts already in the store. nil: yes for text/lines/paragraphs/jsonl without a
    /// label field, no for labelled formats.
    public var deduplicate: Bool?
    /// Report and skip bad records instead of rolling back the whole import.
    public var skipBad: Bool
    /// Source name (default: the file's name).
    public var name: String?
    /// How a CoNLL file's tags encode entities (default IOB2/IOB1).
    public var tagScheme: CoNLLTagScheme

    public init(
        format: ImportFormat? = nil, textField: String? = nil, labelField: String? = nil, task: String? = nil,
        split: SplitPart? = nil, deduplicate: Bool? = nil, skipBad: Bool = false, name: String? = nil,
        tagScheme: CoNLLTagScheme = .iob
    ) {
        self.format = format
        self.textField = textField
        self.labelField = labelField
        self.task = task
        self.split = split
        self.deduplicate = deduplicate
        self.skipBad = skipBad
        self.name = name
        self.tagScheme = tagScheme
    }
}

/// Progress of a running import.
public struct ImportProgress: Sendable {
    public var bytesRead: Int
    public var totalBytes: Int
    public var records: Int
    public var documents: Int
}

/// What an import did.
public struct ImportReport: Sendable {
    public var sourceID: Int64
    public var path: String
    public var format: ImportFormat
    /// True when this file had been imported before with the same options: nothing was added.
    public var alreadyImported: Bool
    /// Records read (lines, rows, paragraphs, sentences, SQuAD paragraphs).
    public var records: Int
    public var documents: Int
    public var duplicates: Int
    /// Labels + spans + questions added.
    public var annotations: Int
    /// Bad records skipped (only with ``ImportOptions/skipBad``), with what was wrong.
    public var skipped: [CorpusError]
    public var bytes: Int
    public var seconds: Double
}

/// One record parsed from an input file, before it is stored.
struct ImportRecord {
    var text: String
    var line: Int
    var label: String?
    var metadata: [String: Any]?
    var spans: [(start: Int, end: Int, type: String)] = []
    var tokenRows: (separator: String, columns: Int, rows: String)?
    var questions: [(id: String, question: String, answers: [(text: String, start: Int)])] = []

    /// The first field holding a NUL character, named for a message; nil when none does.
    var fieldWithNUL: String? {
        func nul(_ s: String) -> Bool { s.utf8.contains(0) }
        if nul(text) { return "text" }
        if let label, nul(label) { return "label" }
        if spans.contains(where: { nul($0.type) }) { return "entity type" }
        if let rows = tokenRows, nul(rows.rows) { return "token rows" }
        for q in questions {
            if nul(q.id) || nul(q.question) || q.answers.contains(where: { nul($0.text) }) { return "question \(q.id)" }
        }
        if let metadata, metadata.values.contains(where: { ($0 as? String).map(nul) ?? false }) { return "metadata" }
        return nil
    }
}

/// Receives parsed records and bad-record reports; stores records in the open transaction.
final class ImportSink {
    let path: String
    let db: Database
    let sourceID: Int64
    let options: ImportOptions
    let deduplicate: Bool
    let progress: ((ImportProgress) -> Void)?
    let totalBytes: Int
    var records = 0
    var documents = 0
    var duplicates = 0
    var annotations = 0
    var skipped: [CorpusError] = []
    var bytesRead = 0

    init(path: String, db: Database, sourceID: Int64, options: ImportOptions, deduplicate: Bool, totalBytes: Int,
         progress: ((ImportProgress) -> Void)?) {
        self.path = path
        self.db = db
        self.sourceID = sourceID
        self.options = options
        self.deduplicate = deduplicate
        self.totalBytes = totalBytes
        self.progress = progress
    }

    /// A bad record: thrown unless skipping was asked for.
    func bad(_ error: CorpusError) throws {
        guard options.skipBad else { throw error }
        records += 1
        skipped.append(error)
    }

    func emit(_ record: ImportRecord) throws {
        // SQLite's text values end at a NUL: such a string would be stored cut short.
        if let field = record.fieldWithNUL {
            return try bad(.invalidValue(file: path, line: record.line,
                                         reason: "the \(field) holds a NUL character (U+0000), which the corpus store cannot keep"))
        }
        // A document of nothing but whitespace has nothing to learn or score from (the task
        // readers refuse one in a file too).
        if isBlank(record.text) {
            return try bad(.invalidValue(file: path, line: record.line, reason: "empty text (nothing but whitespace)"))
        }
        // Nor is an empty label a class: stored, it would train and score a class named "".
        if let label = record.label, isBlank(label) {
            return try bad(.invalidValue(file: path, line: record.line, reason: "empty label (nothing but whitespace)"))
        }
        records += 1
        var text = record.text
        let hash = text.withUTF8 { SHA256.hash(UnsafeBufferPointer(start: $0.baseAddress, count: $0.count)) }
        let hashData = Data(hash)
        if deduplicate {
            let exists = try db.cachedStatement(sql: "SELECT 1 FROM document WHERE splitKey = ? AND hash = ? LIMIT 1")
            if try Int.fetchOne(exists, arguments: [splitKey(ofHash: hash), hashData]) != nil {
                duplicates += 1
                report()
                return
            }
        }
        var metadataJSON: String?
        if let metadata = record.metadata, !metadata.isEmpty {
            // Keys in JSONSerialization's sorted order: the bytes it stored before (see JSONValue(jsonObject:)).
            metadataJSON = try JSONValue(jsonObject: metadata).serialized()
        }
        try db.cachedStatement(sql: """
            INSERT INTO document(sourceId, ordinal, text, hash, splitKey, bytes, fixedSplit, metadata)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [
                sourceID, documents, text, hashData, splitKey(ofHash: hash), text.utf8.count,
                options.split?.rawValue, metadataJSON,
            ])
        let documentID = db.lastInsertedRowID
        documents += 1
        if let label = record.label {
            try db.cachedStatement(sql: "INSERT INTO label(documentId, task, value) VALUES (?, ?, ?)")
                .execute(arguments: [documentID, options.labelTask, label])
            annotations += 1
        }
        if !record.spans.isEmpty {
            let statement = try db.cachedStatement(sql: "INSERT INTO span(documentId, task, start, end, type) VALUES (?, ?, ?, ?, ?)")
            for span in record.spans {
                try statement.execute(arguments: [documentID, options.taggingTask, span.start, span.end, span.type])
            }
            annotations += record.spans.count
        }
        if let rows = record.tokenRows {
            try db.cachedStatement(sql: "INSERT INTO token_row(documentId, separator, columns, rows, task) VALUES (?, ?, ?, ?, ?)")
                .execute(arguments: [documentID, rows.separator, rows.columns, rows.rows, options.taggingTask])
        }
        for (i, q) in record.questions.enumerated() {
            try db.cachedStatement(sql: "INSERT INTO question(documentId, ordinal, externalId, question) VALUES (?, ?, ?, ?)")
                .execute(arguments: [documentID, i, q.id, q.question])
            let questionID = db.lastInsertedRowID
            for (j, a) in q.answers.enumerated() {
                try db.cachedStatement(sql: "INSERT INTO answer(questionId, ordinal, text, start) VALUES (?, ?, ?, ?)")
                    .execute(arguments: [questionID, j, a.text, a.start])
            }
            annotations += 1
        }
        report()
    }

    func report(force: Bool = false) {
        guard let progress, force || records % 512 == 0 else { return }
        progress(ImportProgress(bytesRead: bytesRead, totalBytes: totalBytes, records: records, documents: documents))
    }
}

extension CorpusStore {
    /// The import options that, with the file's SHA-256, identify a source: exactly the bytes
    /// JSONSerialization (`.sortedKeys`) wrote for these keys (this order, `/` escaped), so a
    /// file imported before is still recognised. An import without a task has the task "label".
    /// A CoNLL tag scheme other than the default is a key of its own (`tagScheme`), absent
    /// otherwise, so identities written before the option existed keep their bytes.
    static func sourceIdentity(format: ImportFormat, options: ImportOptions, deduplicate: Bool) -> String {
        var key: [(String, JSONValue)] = [("dedupe", .bool(deduplicate)), ("format", .string(format.rawValue))]
        if let f = options.labelField { key.append(("labelField", .string(f))) }
        key.append(("split", .string(options.split?.rawValue ?? "")))
        if format == .conll, options.tagScheme != .iob { key.append(("tagScheme", .string(options.tagScheme.rawValue))) }
        key.append(("task", .string(options.task ?? "label")))
        if let f = options.textField { key.append(("textField", .string(f))) }
        return JSONValue.object(key).serialized(escapingSlashes: true)
    }

    /// Imports one file as a new source, in a single transaction: if anything fails (or the
    /// process dies) nothing of the file is stored, and running the import again completes it.
    ///
    /// Importing a file that was already imported with the same options adds nothing
    /// (``ImportReport/alreadyImported`` is true); a file is recognised by the SHA-256 of its bytes.
    ///
    /// - Parameter progress: called every few hundred records from the importing thread.
    /// - Throws: an input error (``CorpusError/malformedJSON(file:line:reason:)``,
    ///   ``CorpusError/invalidUTF8(file:line:byteOffset:)``, …) naming the file and line, unless
    ///   ``ImportOptions/skipBad`` is set, in which case bad records are listed in the report.
    public func importFile(
        _ path: String, options: ImportOptions = ImportOptions(), progress: ((ImportProgress) -> Void)? = nil
    ) throws -> ImportReport {
        let started = Date()
        let format = options.format ?? ImportFormat.infer(fromPath: path)
        guard let size = fileSize(path) else {
            throw CorpusError.unreadableFile(path: path, reason: "no such file")
        }
        // A file is read twice (its hash recognises it; then it is parsed): a pipe would give
        // its bytes to the hash alone and import nothing under that hash.
        guard isRegularFile(path) else {
            throw CorpusError.unreadableFile(path: path, reason: "not a regular file (a directory, pipe or device); save the input to a file first")
        }
        let fileHash = SHA256.hex(try hashFile(path))
        let labelled = format.keepsDuplicatesByDefault || options.labelField != nil
        let deduplicate = options.deduplicate ?? !labelled
        let optionsJSON = Self.sourceIdentity(format: format, options: options, deduplicate: deduplicate)
        let name = options.name ?? (path as NSString).lastPathComponent

        func existingSource(_ db: Database) throws -> ImportReport? {
            guard let row = try Row.fetchOne(db, sql: "SELECT id FROM source WHERE fileHash = ? AND format = ? AND options = ?",
                                             arguments: [fileHash, format.rawValue, optionsJSON]) else { return nil }
            return ImportReport(
                sourceID: row["id"], path: path, format: format, alreadyImported: true, records: 0, documents: 0,
                duplicates: 0, annotations: 0, skipped: [], bytes: size, seconds: Date().timeIntervalSince(started))
        }
        if let existing = try read(existingSource) { return existing }

        return try write { db in
            // Checked again under the write lock: another process may have imported it meanwhile.
            if let existing = try existingSource(db) { return existing }
            try db.execute(sql: """
                INSERT INTO source(name, path, format, options, fileHash, fileBytes, records, documents, duplicates, skipped, importedAt, seconds)
                VALUES (?, ?, ?, ?, ?, ?, 0, 0, 0, 0, ?, 0)
                """, arguments: [name, path, format.rawValue, optionsJSON, fileHash, size, started.timeIntervalSince1970])
            let sink = ImportSink(path: path, db: db, sourceID: db.lastInsertedRowID, options: options, deduplicate: deduplicate,
                                  totalBytes: size, progress: progress)
            let parser = Parser(path: path, sink: sink, options: options)
            switch format {
            case .text: try parser.text()
            case .lines: try parser.lines(paragraphs: false)
            case .paragraphs: try parser.lines(paragraphs: true)
            case .jsonl: try parser.jsonl()
            case .tsv: try parser.delimited(csv: false)
            case .csv: try parser.delimited(csv: true)
            case .conll: try parser.conll()
            case .squad: try parser.squad()
            }
            // Full-text index of the new documents, in bulk (same transaction).
            try db.execute(sql: "INSERT INTO document_fts(rowid, text) SELECT id, text FROM document WHERE sourceId = ? ORDER BY id",
                           arguments: [sink.sourceID])
            sink.bytesRead = size
            sink.report(force: true)
            let seconds = Date().timeIntervalSince(started)
            try db.execute(
                sql: "UPDATE source SET records = ?, documents = ?, duplicates = ?, skipped = ?, seconds = ? WHERE id = ?",
                arguments: [sink.records, sink.documents, sink.duplicates, sink.skipped.count, seconds, sink.sourceID])
            return ImportReport(
                sourceID: sink.sourceID, path: path, format: format, alreadyImported: false, records: sink.records,
                documents: sink.documents, duplicates: sink.duplicates, annotations: sink.annotations,
                skipped: sink.skipped, bytes: size, seconds: seconds)
        }
    }
}
