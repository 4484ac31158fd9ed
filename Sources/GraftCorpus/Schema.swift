import GRDB

/// The schema of a Graft corpus database, as forward-only GRDB migrations.
///
/// Never edit a registered migration: add a new one. A database that holds migrations this
/// build does not know is refused (``CorpusError/schemaTooNew(path:)``).
enum CorpusSchema {
    /// `PRAGMA application_id` of every Graft corpus: the ASCII bytes "GRFT".
    static let applicationID: Int32 = 0x4752_4654
    /// Value of `graft_meta.format`, the second marker next to the application id.
    static let formatMarker = "graft-corpus"

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: "PRAGMA application_id = \(applicationID)")
            try db.execute(sql: """
                CREATE TABLE graft_meta(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
                INSERT INTO graft_meta(key, value) VALUES ('format', '\(formatMarker)'), ('schema', '1');

                -- One row per imported file (a batch of documents).
                CREATE TABLE source(
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL,
                    path TEXT NOT NULL,
                    format TEXT NOT NULL,
                    options TEXT NOT NULL,          -- JSON: the import options that shape the content
                    fileHash TEXT NOT NULL,         -- SHA-256 (hex) of the file's bytes
                    fileBytes INTEGER NOT NULL,
                    records INTEGER NOT NULL,       -- records read (lines, rows, sentences, paragraphs)
                    documents INTEGER NOT NULL,     -- documents inserted
                    duplicates INTEGER NOT NULL,    -- records dropped as duplicates of stored texts
                    skipped INTEGER NOT NULL,       -- bad records skipped (--skip-bad)
                    importedAt REAL NOT NULL,       -- Unix time
                    seconds REAL NOT NULL,
                    UNIQUE(fileHash, format, options)
                );

                CREATE TABLE document(
                    id INTEGER PRIMARY KEY,
                    sourceId INTEGER NOT NULL REFERENCES source(id) ON DELETE CASCADE,
                    ordinal INTEGER NOT NULL,       -- position within the source
                    text TEXT NOT NULL,
                    hash BLOB NOT NULL,             -- SHA-256 of the UTF-8 text
                    splitKey INTEGER NOT NULL,      -- first 8 bytes of hash, big-endian, >> 1
                    bytes INTEGER NOT NULL,         -- UTF-8 length of text
                    fixedSplit TEXT,                -- train/dev/test when the input said so
                    metadata TEXT                   -- JSON object, or NULL
                );
                -- De-duplication looks texts up by splitKey (8 bytes of the hash) then compares
                -- the full hash: a smaller index than one on the 32-byte hash.
                CREATE INDEX document_splitKey ON document(splitKey);
                CREATE INDEX document_source ON document(sourceId, ordinal);

                -- Document labels (classification): one value per task.
                CREATE TABLE label(
                    id INTEGER PRIMARY KEY,
                    documentId INTEGER NOT NULL REFERENCES document(id) ON DELETE CASCADE,
                    task TEXT NOT NULL,
                    value TEXT NOT NULL
                );
                CREATE INDEX label_task ON label(task, documentId);
                CREATE INDEX label_document ON label(documentId);

                -- Character spans, offsets in Unicode scalars of document.text, [start, end).
                CREATE TABLE span(
                    id INTEGER PRIMARY KEY,
                    documentId INTEGER NOT NULL REFERENCES document(id) ON DELETE CASCADE,
                    task TEXT NOT NULL,
                    start INTEGER NOT NULL,
                    end INTEGER NOT NULL,
                    type TEXT NOT NULL
                );
                CREATE INDEX span_document ON span(documentId);

                -- Original token rows of CoNLL sentences (all columns), for exact export.
                CREATE TABLE token_row(
                    documentId INTEGER PRIMARY KEY REFERENCES document(id) ON DELETE CASCADE,
                    separator TEXT NOT NULL,
                    columns INTEGER NOT NULL,
                    rows TEXT NOT NULL              -- the sentence's lines joined by LF
                );

                -- Extractive QA: questions on a document (the context) and their answers.
                CREATE TABLE question(
                    id INTEGER PRIMARY KEY,
                    documentId INTEGER NOT NULL REFERENCES document(id) ON DELETE CASCADE,
                    ordinal INTEGER NOT NULL,
                    externalId TEXT NOT NULL,
                    question TEXT NOT NULL
                );
                CREATE INDEX question_document ON question(documentId, ordinal);
                CREATE TABLE answer(
                    id INTEGER PRIMARY KEY,
                    questionId INTEGER NOT NULL REFERENCES question(id) ON DELETE CASCADE,
                    ordinal INTEGER NOT NULL,
                    text TEXT NOT NULL,
                    start INTEGER NOT NULL          -- Unicode scalar offset into the context
                );
                CREATE INDEX answer_question ON answer(questionId, ordinal);

                -- Named split schemes: ratios over the hash-derived splitKey.
                CREATE TABLE split(
                    name TEXT PRIMARY KEY NOT NULL,
                    train REAL NOT NULL,
                    dev REAL NOT NULL,
                    test REAL NOT NULL,
                    createdAt REAL NOT NULL
                );

                -- Token caches: ids per document per tokenizer fingerprint, little-endian Int32.
                CREATE TABLE tokenizer(
                    fingerprint TEXT PRIMARY KEY NOT NULL,
                    createdAt REAL NOT NULL,
                    updatedAt REAL NOT NULL,
                    documents INTEGER NOT NULL,
                    tokens INTEGER NOT NULL
                );
                CREATE TABLE token_cache(
                    tokenizer TEXT NOT NULL REFERENCES tokenizer(fingerprint) ON DELETE CASCADE,
                    documentId INTEGER NOT NULL REFERENCES document(id) ON DELETE CASCADE,
                    count INTEGER NOT NULL,
                    ids BLOB NOT NULL,
                    PRIMARY KEY(tokenizer, documentId)
                ) WITHOUT ROWID;
                CREATE INDEX token_cache_document ON token_cache(documentId);

                -- Training and evaluation runs.
                CREATE TABLE run(
                    id INTEGER PRIMARY KEY,
                    kind TEXT NOT NULL,
                    name TEXT,
                    config TEXT NOT NULL,           -- JSON
                    status TEXT NOT NULL,           -- running, finished, failed
                    startedAt REAL NOT NULL,
                    finishedAt REAL,
                    seconds REAL,
                    summary TEXT                    -- JSON object of final metrics
                );
                CREATE TABLE run_metric(
                    runId INTEGER NOT NULL REFERENCES run(id) ON DELETE CASCADE,
                    step INTEGER NOT NULL,
                    name TEXT NOT NULL,
                    value REAL NOT NULL,
                    seconds REAL NOT NULL           -- since the run started
                );
                CREATE INDEX run_metric_run ON run_metric(runId, name, step);

                -- Full-text search over document texts (external content). Imports index their
                -- documents in bulk at the end of their transaction (≈ 4x faster than a per-row
                -- insert trigger); deletes and updates are kept in sync by triggers.
                CREATE VIRTUAL TABLE document_fts USING fts5(
                    text, content='document', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
                );
                CREATE TRIGGER document_fts_delete AFTER DELETE ON document BEGIN
                    INSERT INTO document_fts(document_fts, rowid, text) VALUES ('delete', old.id, old.text);
                END;
                CREATE TRIGGER document_fts_update AFTER UPDATE OF text ON document BEGIN
                    INSERT INTO document_fts(document_fts, rowid, text) VALUES ('delete', old.id, old.text);
                    INSERT INTO document_fts(rowid, text) VALUES (new.id, new.text);
                END;
                """)
        }
        // v2: CoNLL token rows carry their tagging task (spans already did), so a tagging task
        // other than NER (e.g. `products`) keeps its own name; rows imported before are `ner`.
        migrator.registerMigration("v2-token-row-task") { db in
            try db.execute(sql: """
                ALTER TABLE token_row ADD COLUMN task TEXT NOT NULL DEFAULT 'ner';
                CREATE INDEX token_row_task ON token_row(task, documentId);
                CREATE INDEX span_task ON span(task, documentId);
                """)
        }
        return migrator
    }
}
