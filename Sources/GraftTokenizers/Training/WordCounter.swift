import GraftSupport
import Foundation

/// Counts of distinct words, keyed by their exact UTF-8 bytes.
///
/// Two strings that Swift considers equal under canonical equivalence (precomposed "é" and
/// "e" + U+0301) are different words here, exactly as in HuggingFace tokenizers, whose trainers
/// key words by their bytes. Iteration order is insertion order.
public struct WordCounts: Sendable {
    var table: ByteCountTable

    /// An empty set of counts.
    public init() {
        table = ByteCountTable()
    }

    init(table: ByteCountTable) {
        self.table = table
    }

    /// Counts built from `(word, count)` pairs; repeated words (by bytes) are summed.
    public init<S: Sequence>(_ wordCounts: S) where S.Element == (String, Int) {
        self.init()
        for (word, count) in wordCounts { add(word, count: count) }
    }

    /// The number of distinct words.
    public var distinctWords: Int { table.count }

    /// The sum of all counts (the number of word occurrences seen).
    public var totalWords: Int { Int(table.counts.reduce(0, +)) }

    /// Adds `count` occurrences of `word`. Empty words are ignored (they hold no symbol).
    public mutating func add(_ word: String, count: Int = 1) {
        var word = word
        word.withUTF8 { bytes in
            if !bytes.isEmpty { table.add(bytes, amount: Int64(count)) }
        }
    }

    /// Adds all counts of `other` to these.
    public mutating func merge(_ other: WordCounts) {
        table.merge(other.table)
    }

    /// How often `word` (compared by its exact UTF-8 bytes) was counted; 0 if never.
    public func count(of word: String) -> Int {
        var word = word
        return word.withUTF8 { bytes in
            table.find(bytes).map { Int(table.counts[$0]) } ?? 0
        }
    }

    /// Calls `body` with every distinct word and its count, in insertion order.
    public func forEach(_ body: (_ word: String, _ count: Int) throws -> Void) rethrows {
        try table.storage.withUnsafeBufferPointer { s in
            for entry in 0..<table.count {
                let word = String(decoding: UnsafeBufferPointer(rebasing: s[table.range(of: entry)]), as: UTF8.self)
                try body(word, Int(table.counts[entry]))
            }
        }
    }
}

/// Streams documents through a word-splitting function and counts the words, over several
/// threads, holding only the counts (and one batch of documents) in memory.
///
/// The splitting function is the tokenizer's normalizer plus pre-tokenizer: it turns one
/// document into its words (for byte-level BPE, words already mapped into GPT-2's printable
/// byte alphabet). Documents are gathered into batches of about `batchBytes` UTF-8 bytes; each
/// batch is split into `threads` contiguous parts counted concurrently into per-thread tables,
/// which are merged when ``counts()`` is called. Words are keyed by their exact UTF-8 bytes.
///
/// ```swift
/// var counter = WordCounter(threads: 2) { text in text.split(separator: " ").map(String.init) }
/// counter.add(documents: ["a rose is a rose", "is a rose"])
/// try counter.add(linesOfFile: URL(fileURLWithPath: "corpus.txt"))
/// let counts = counter.counts()
/// ```
public struct WordCounter {
    /// Turns a document into the words to count.
    public typealias Splitter = @Sendable (String) -> [String]

    /// The number of threads counting a batch.
    public let threads: Int
    /// Approximate UTF-8 size of a batch of documents handed to the threads at once.
    public let batchBytes: Int
    private let split: Splitter
    private var tables: [ByteCountTable]
    private var pending: [String] = []
    /// Line numbers of the pending documents when they come from a file (for error messages).
    private var pendingLines: [Int] = []
    private var pendingPath: String?
    private var pendingBytes = 0
    private var pendingTransform: (@Sendable (String) throws -> String?)?

    /// Creates a counter.
    /// - Parameters:
    ///   - threads: threads that split and count a batch (at least 1; default 2).
    ///   - batchBytes: documents are processed in batches of about this many UTF-8 bytes.
    ///   - split: the word-splitting function (normalizer + pre-tokenizer).
    public init(threads: Int = 2, batchBytes: Int = 1 << 20, split: @escaping Splitter) {
        self.threads = max(1, threads)
        self.batchBytes = max(1, batchBytes)
        self.split = split
        self.tables = (0..<max(1, threads)).map { _ in ByteCountTable(minimumCapacity: 1 << 14) }
    }

    /// Adds one document (counted when its batch is full or at ``counts()``).
    public mutating func add(_ document: String) {
        pendingBytes += document.utf8.count
        pending.append(document)
        // Only add(linesOfFile:transform:) sets a transform, and it clears it before returning,
        // so this flush has no transform to fail: the `try?` discards no error.
        if pendingBytes >= batchBytes { try? flush() }
    }

    /// Adds every document of `documents`, reading the sequence once, batch by batch.
    public mutating func add<S: Sequence>(documents: S) where S.Element == String {
        for document in documents { add(document) }
    }

    /// Adds the lines of a UTF-8 text file, read in chunks (the file is never loaded whole).
    ///
    /// Lines are split on `\n` only (U+2028, U+0085, `\r` and the like stay part of the text).
    /// Each line is passed through `transform` first when one is given (for example to take
    /// one field of a JSON Lines file); a nil result skips the line. `transform` runs on the
    /// counting threads, so it may be called concurrently.
    /// - Throws: ``TokenizerError/invalidUTF8(path:byteOffset:)`` naming the file and the offset
    ///   of the first ill-formed byte; ``TokenizerError/io(path:reason:)``; and
    ///   the first error (in file order) that `transform` throws. The lines before an
    ///   invalid one are counted; when `transform` throws, the lines of that batch may be
    ///   counted in part.
    public mutating func add(
        linesOfFile url: URL,
        transform: (@Sendable (String) throws -> String?)? = nil
    ) throws {
        try flush()
        pendingTransform = transform
        pendingPath = url.path
        defer {
            // Whatever an error left pending is dropped, never counted without its transform.
            pending.removeAll()
            pendingLines.removeAll()
            pendingBytes = 0
            pendingTransform = nil
            pendingPath = nil
        }
        let reader = try LineReader.open(url.path)
        while true {
            let line: Line?
            do {
                line = try TokenizerError.wrapping { try reader.next() }
                if let line, let bad = UTF8Validation.firstInvalidByte(line.bytes) {
                    throw TokenizerError.invalidUTF8(path: url.path, byteOffset: line.offset + bad)
                }
            } catch {
                try flush()  // the lines before the bad one are counted
                throw error
            }
            guard let line else { break }
            pendingBytes += line.bytes.count
            pending.append(String(decoding: line.bytes, as: UTF8.self))
            pendingLines.append(line.number)
            if pendingBytes >= batchBytes { try flush() }
        }
        try flush()
    }

    /// Counts the pending batch now: each of `parts` threads transforms (if a transform is set),
    /// splits and counts a contiguous slice of the batch into its own table.
    private mutating func flush() throws {
        guard !pending.isEmpty else { return }
        let docs = pending
        let lines = pendingLines
        let path = pendingPath
        pending.removeAll(keepingCapacity: true)
        pendingLines.removeAll(keepingCapacity: true)
        pendingBytes = 0
        let parts = min(threads, docs.count)
        let split = self.split
        let transform = pendingTransform
        let errors = ErrorSlots(count: parts)
        tables.withUnsafeMutableBufferPointer { tablesBuf in
            let shared = SharedPointer(tablesBuf.baseAddress!)
            docs.withUnsafeBufferPointer { docsBuf in
                let documents = SharedPointer(UnsafeMutablePointer(mutating: docsBuf.baseAddress!))
                parallelFor(parts) { part in
                    let lo = docs.count * part / parts
                    let hi = docs.count * (part + 1) / parts
                    // Work on a thread-local table (moved out and back), so the two threads never
                    // write to neighbouring memory.
                    var table = (shared.value + part).move()
                    defer { (shared.value + part).initialize(to: table) }
                    for d in lo..<hi {
                        var document = documents.value[d]
                        if let transform {
                            do {
                                guard let transformed = try transform(document) else { continue }
                                document = transformed
                            } catch {
                                // Name the file and line of the document the transform refused.
                                if let path, d < lines.count {
                                    errors.set(part, TokenizerError.malformed(path: path, line: lines[d], reason: "\(error)"))
                                } else {
                                    errors.set(part, error)
                                }
                                return
                            }
                        }
                        for var word in split(document) {
                            word.withUTF8 { bytes in
                                if !bytes.isEmpty { table.add(bytes, amount: 1) }
                            }
                        }
                    }
                }
            }
        }
        if let error = errors.first { throw error }
    }

    /// The counts of everything added so far (pending documents are counted first). The
    /// counter can keep accumulating afterwards.
    public mutating func counts() -> WordCounts {
        try? flush()  // pending documents never carry a transform here, so this cannot throw
        var merged = tables[0]
        for t in 1..<tables.count { merged.merge(tables[t]) }
        return WordCounts(table: merged)
    }
}
