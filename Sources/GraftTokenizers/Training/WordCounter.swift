import Foundation

/// Errors raised while gathering training data.
public enum TrainingError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The file holds bytes that are not well-formed UTF-8; `byteOffset` is the offset of the
    /// first offending byte from the start of the file.
    case invalidUTF8(file: String, byteOffset: Int)
    /// The file could not be opened or read.
    case unreadableFile(file: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidUTF8(file, byteOffset):
            return "\(file): invalid UTF-8 at byte offset \(byteOffset)"
        case let .unreadableFile(file, reason):
            return "\(file): cannot read: \(reason)"
        }
    }
}

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
    /// - Throws: ``TrainingError/invalidUTF8(file:byteOffset:)`` naming the file and the offset
    ///   of the first ill-formed byte; ``TrainingError/unreadableFile(file:reason:)``; and
    ///   the first error (in file order) that `transform` throws. The lines before an
    ///   invalid one are counted; when `transform` throws, the lines of that batch may be
    ///   counted in part.
    public mutating func add(
        linesOfFile url: URL,
        transform: (@Sendable (String) throws -> String?)? = nil
    ) throws {
        try flush()
        pendingTransform = transform
        defer {
            // Whatever an error left pending is dropped, never counted without its transform.
            pending.removeAll()
            pendingBytes = 0
            pendingTransform = nil
        }
        let path = url.path
        let handle: FileHandle
        do {
            handle = try FileHandle(forReadingFrom: url)
        } catch {
            throw TrainingError.unreadableFile(file: path, reason: "\(error)")
        }
        defer { try? handle.close() }
        var carry: [UInt8] = []
        var carryOffset = 0  // file offset of carry[0]
        while true {
            let chunk: Data?
            do {
                chunk = try handle.read(upToCount: 1 << 20)
            } catch {
                throw TrainingError.unreadableFile(file: path, reason: "\(error)")
            }
            guard let chunk, !chunk.isEmpty else { break }
            carry.append(contentsOf: chunk)
            var consumed = 0
            try carry.withUnsafeBufferPointer { buf in
                var start = 0
                var i = 0
                while i < buf.count {
                    if buf[i] == 0x0A {
                        try emitLine(UnsafeBufferPointer(rebasing: buf[start..<i]), fileOffset: carryOffset + start, path: path)
                        start = i + 1
                    }
                    i += 1
                }
                consumed = start
            }
            carry.removeFirst(consumed)
            carryOffset += consumed
        }
        if !carry.isEmpty {
            try carry.withUnsafeBufferPointer { buf in
                try emitLine(buf, fileOffset: carryOffset, path: path)
            }
        }
        try flush()
    }

    private mutating func emitLine(_ bytes: UnsafeBufferPointer<UInt8>, fileOffset: Int, path: String) throws {
        if let bad = firstInvalidUTF8Offset(bytes) {
            try flush()  // the lines before it are counted
            throw TrainingError.invalidUTF8(file: path, byteOffset: fileOffset + bad)
        }
        pendingBytes += bytes.count
        pending.append(String(decoding: bytes, as: UTF8.self))
        if pendingBytes >= batchBytes { try flush() }
    }

    /// Counts the pending batch now: each of `parts` threads transforms (if a transform is set),
    /// splits and counts a contiguous slice of the batch into its own table.
    private mutating func flush() throws {
        guard !pending.isEmpty else { return }
        let docs = pending
        pending.removeAll(keepingCapacity: true)
        pendingBytes = 0
        let parts = min(threads, docs.count)
        let split = self.split
        let transform = pendingTransform
        let errors = ErrorSlots(count: parts)
        tables.withUnsafeMutableBufferPointer { tablesBuf in
            let shared = SharedPointer(tablesBuf.baseAddress!)
            docs.withUnsafeBufferPointer { docsBuf in
                let documents = SharedPointer(UnsafeMutablePointer(mutating: docsBuf.baseAddress!))
                trainerParallelFor(parts) { part in
                    let lo = docs.count * part / parts
                    let hi = docs.count * (part + 1) / parts
                    // Work on a thread-local table (moved out and back), so the two threads never
                    // write to neighbouring memory.
                    var table = (shared.pointer + part).move()
                    defer { (shared.pointer + part).initialize(to: table) }
                    for d in lo..<hi {
                        var document = documents.pointer[d]
                        if let transform {
                            do {
                                guard let transformed = try transform(document) else { continue }
                                document = transformed
                            } catch {
                                errors.set(part, error)
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

/// One error slot per counting thread, each written only by its own thread.
private final class ErrorSlots: @unchecked Sendable {
    private let slots: UnsafeMutablePointer<Error?>
    private let count: Int
    init(count: Int) {
        self.count = count
        slots = .allocate(capacity: count)
        slots.initialize(repeating: nil, count: count)
    }
    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }
    func set(_ part: Int, _ error: Error) { slots[part] = error }
    /// The error of the lowest-numbered part (the earliest in the batch).
    var first: Error? {
        for i in 0..<count { if let e = slots[i] { return e } }
        return nil
    }
}
