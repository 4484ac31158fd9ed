/// GraftCorpus: the SQLite corpus store (documents, splits, annotations, token caches, runs).
///
/// - Open: ``CorpusStore/init(path:)`` (creates and migrates; refuses non-Graft files).
/// - Import: ``CorpusStore/importFile(_:options:progress:)`` (one transaction per file).
/// - Stream (bounded memory): ``CorpusStore/documentTexts(_:pageSize:)`` (for tokenizer training),
///   ``CorpusStore/classificationExamples(task:_:pageSize:)``, ``CorpusStore/taggingExamples(_:pageSize:)``,
///   ``CorpusStore/qaExamples(_:pageSize:)``, and, after ``CorpusStore/buildTokenCache(fingerprint:batchSize:encode:progress:)``,
///   ``CorpusStore/packedBlocks(fingerprint:blockLength:separator:filter:shuffleSeed:dropRemainder:pageSize:)``.
/// - Splits: ``CorpusStore/defineSplit(name:train:dev:test:)`` and ``DocumentFilter``.
/// - Runs: ``CorpusStore/startRun(kind:name:config:)`` → ``RunRecorder``.
/// - Export and search: ``CorpusStore/export(format:filter:textField:labelField:task:write:)``,
///   ``CorpusStore/search(_:limit:snippetTokens:)``.
import Foundation
import GRDB
import GraftTokenizers

/// Errors thrown by the corpus store.
///
/// Input errors carry the file, the 1-based line number and, where it helps, the byte offset
/// of the problem in the file, so that a user can find it with an editor.
public enum CorpusError: Error, Equatable, Sendable, LocalizedError, CustomStringConvertible {
    /// The file exists but is not a Graft corpus database (another SQLite file, or not SQLite at all).
    case notAGraftDatabase(String)
    /// The database was written by a newer Graft with migrations this build does not know.
    case schemaTooNew(path: String)
    /// An SQLite error (message from SQLite/GRDB).
    case database(String)
    /// A file could not be opened or read.
    case unreadableFile(path: String, reason: String)
    /// Bytes that are not valid UTF-8, at `byteOffset` (0-based, from the start of the file).
    case invalidUTF8(file: String, line: Int, byteOffset: Int)
    /// A JSON Lines line (or JSON file) that does not parse, or is not an object.
    case malformedJSON(file: String, line: Int, reason: String)
    /// A JSON object without the requested field, or with a non-string value in it.
    case missingField(file: String, line: Int, field: String)
    /// A CSV/TSV row with fewer columns than the header needs.
    case missingColumn(file: String, line: Int, expected: Int, found: Int)
    /// A CSV/TSV header without the requested column.
    case missingHeaderColumn(file: String, column: String)
    /// A CSV line with a broken quoted field.
    case malformedCSV(file: String, line: Int, reason: String)
    /// A CoNLL token line with a different number of columns than the file's first token line.
    case conllColumnCount(file: String, line: Int, expected: Int, found: Int)
    /// A CoNLL tag that is not `O` or a tag of the import's scheme (`B-…`/`I-…`, and for BIOES
    /// `E-…`/`S-…`).
    case invalidTag(file: String, line: Int, tag: String, scheme: CoNLLTagScheme)
    /// A SQuAD answer whose text is not found at `answer_start` in the context (code points).
    case answerMismatch(file: String, line: Int, questionID: String, expected: String, found: String)
    /// A SQuAD file whose structure is not SQuAD v1.1.
    case malformedSQuAD(file: String, line: Int, reason: String)
    /// A record with a value the store cannot take as given (a label of the wrong JSON type,
    /// text with a NUL character, an empty text, label or token, a repeated header column).
    case invalidValue(file: String, line: Int, reason: String)
    /// A format name that is not one of the supported importers/exporters.
    case unknownFormat(String)
    /// Split ratios that are negative or do not sum to 1.
    case invalidSplitRatios(String)
    /// No split named like this was defined with ``CorpusStore/defineSplit(name:train:dev:test:)``.
    case unknownSplit(String)
    /// No token cache for this tokenizer fingerprint.
    case noTokenCache(fingerprint: String)
    /// A run id that does not exist.
    case unknownRun(Int64)
    /// A source id or name that does not exist.
    case unknownSource(String)
    /// A parameter value that makes no sense (e.g. a block length of 0).
    case invalidArgument(String)
    /// The tokenizer closure threw while building a token cache.
    case tokenizerFailed(documentID: Int64, reason: String)

    public var description: String {
        switch self {
        case .notAGraftDatabase(let detail):
            return "not a Graft corpus database: \(detail)"
        case .schemaTooNew(let path):
            return "\(path): this corpus was written by a newer version of Graft (unknown schema migrations)"
        case .database(let message):
            return "database error: \(message)"
        case .unreadableFile(let path, let reason):
            return "\(path): cannot read: \(reason)"
        case .invalidUTF8(let file, let line, let byteOffset):
            return "\(file):\(line): invalid UTF-8 at byte offset \(byteOffset)"
        case .malformedJSON(let file, let line, let reason):
            return "\(file):\(line): malformed JSON: \(reason)"
        case .missingField(let file, let line, let field):
            return "\(file):\(line): missing string field \"\(field)\""
        case .missingColumn(let file, let line, let expected, let found):
            return "\(file):\(line): expected \(expected) columns, found \(found)"
        case .missingHeaderColumn(let file, let column):
            return "\(file):1: header has no column \"\(column)\""
        case .malformedCSV(let file, let line, let reason):
            return "\(file):\(line): malformed CSV: \(reason)"
        case .conllColumnCount(let file, let line, let expected, let found):
            return "\(file):\(line): CoNLL line has \(found) columns, expected \(expected)"
        case .invalidTag(let file, let line, let tag, .iob):
            let bioes = (tag.hasPrefix("E-") || tag.hasPrefix("S-")) && tag.utf8.count > 2
            return "\(file):\(line): invalid IOB tag \"\(tag)\" (expected O, B-TYPE or I-TYPE"
                + (bioes ? "; E-/S- tags are BIOES: import the file with --tag-scheme bioes)" : ")")
        case .invalidTag(let file, let line, let tag, .bioes):
            return "\(file):\(line): invalid BIOES tag \"\(tag)\" (expected O, B-TYPE, I-TYPE, E-TYPE or S-TYPE)"
        case .answerMismatch(let file, let line, let questionID, let expected, let found):
            return "\(file):\(line): question \(questionID): answer \"\(expected)\" does not match context at answer_start (found \"\(found)\")"
        case .malformedSQuAD(let file, let line, let reason):
            return "\(file):\(line): not SQuAD v1.1: \(reason)"
        case .invalidValue(let file, let line, let reason):
            return "\(file):\(line): \(reason)"
        case .unknownFormat(let name):
            return "unknown format \"\(name)\" (expected text, lines, paragraphs, jsonl, tsv, csv, conll or squad)"
        case .invalidSplitRatios(let detail):
            return "invalid split ratios: \(detail)"
        case .unknownSplit(let name):
            return "no split named \"\(name)\" (define it with `graft corpus split`)"
        case .noTokenCache(let fingerprint):
            return "no token cache for tokenizer \(fingerprint) (run `graft corpus tokenize` first)"
        case .unknownRun(let id):
            return "no run with id \(id)"
        case .unknownSource(let source):
            return "no source \(source)"
        case .invalidArgument(let detail):
            return "invalid argument: \(detail)"
        case .tokenizerFailed(let documentID, let reason):
            return "tokenizer failed on document \(documentID): \(reason)"
        }
    }

    public var errorDescription: String? { description }

    /// Wraps any error as a ``CorpusError`` (GRDB errors become ``database(_:)``).
    static func wrap(_ error: any Error) -> CorpusError {
        if let e = error as? CorpusError { return e }
        if let e = error as? DatabaseError { return .database(e.description) }
        return .database(String(describing: error))
    }
}
