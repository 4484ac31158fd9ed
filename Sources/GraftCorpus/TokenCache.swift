import GraftSupport
import Foundation
import GRDB

/// What building a token cache did.
public struct TokenCacheReport: Sendable {
    public var fingerprint: String
    /// Documents tokenized in this call (documents already cached are not redone).
    public var newDocuments: Int
    public var newTokens: Int
    /// Totals of the cache after this call.
    public var documents: Int
    public var tokens: Int
    public var seconds: Double
}

/// Encodes token ids as a little-endian Int32 blob.
func encodeTokenBlob(_ ids: [Int32]) -> Data {
    var data = Data(count: ids.count * 4)
    data.withUnsafeMutableBytes { raw in
        let out = raw.bindMemory(to: Int32.self)
        for (i, id) in ids.enumerated() { out[i] = id.littleEndian }
    }
    return data
}

/// Appends the ids of a little-endian Int32 blob to `buffer`.
/// - Throws: ``CorpusError/database(_:)`` naming the document when the blob is not whole
///   little-endian Int32s or holds a negative id (a damaged cache), before anything is appended.
func appendTokenBlob(_ data: Data, documentID: Int64, to buffer: inout [Int32]) throws {
    guard data.count % 4 == 0 else {
        throw CorpusError.database("token cache of document \(documentID): \(data.count) bytes is not a whole number of 4-byte ids")
    }
    let n = data.count / 4
    let start = buffer.count
    buffer.append(contentsOf: repeatElement(0, count: n))
    let firstBad: Int? = data.withUnsafeBytes { raw in
        buffer.withUnsafeMutableBufferPointer { out -> Int? in
            var bad: Int?
            for i in 0..<n {
                let id = Int32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))
                if id < 0 && bad == nil { bad = i }
                out[start + i] = id
            }
            return bad
        }
    }
    if let bad = firstBad {
        let id = buffer[start + bad]
        buffer.removeSubrange(start...)
        throw CorpusError.database("token cache of document \(documentID): id \(id) at position \(bad) is negative")
    }
}

extension CorpusStore {
    /// Tokenizes every document not yet cached for `fingerprint` and stores the ids.
    ///
    /// The tokenizer is passed as plain values so this layer needs no tokenizer type:
    /// `fingerprint` identifies it (e.g. a hash of its tokenizer.json: a different tokenizer
    /// must have a different fingerprint) and `encode` maps a text to token ids *without*
    /// special tokens. Work is committed every `batchSize` documents, so an interrupted run
    /// keeps what it did and the next call continues from there; documents added later are
    /// tokenized by the next call.
    ///
    /// - Parameter progress: called after each batch with (documents done, documents to do).
    @discardableResult
    public func buildTokenCache(
        fingerprint: String, batchSize: Int = 256, encode: (String) throws -> [Int32],
        progress: ((_ done: Int, _ total: Int) -> Void)? = nil
    ) throws -> TokenCacheReport {
        try buildTokenCache(fingerprint: fingerprint, batchSize: batchSize,
                            encodeBatch: { texts in try texts.map(encode) }, progress: progress)
    }

    /// ``buildTokenCache(fingerprint:batchSize:encode:progress:)`` with a tokenizer that encodes
    /// a batch of texts at once (e.g. over several threads): `encodeBatch` returns one id array
    /// per text, in order. When a batch fails, its documents are encoded one at a time to name
    /// the document that failed.
    @discardableResult
    public func buildTokenCache(
        fingerprint: String, batchSize: Int = 256, encodeBatch: ([String]) throws -> [[Int32]],
        progress: ((_ done: Int, _ total: Int) -> Void)? = nil
    ) throws -> TokenCacheReport {
        let started = Date()
        let now = started.timeIntervalSince1970
        try write { db in
            try db.execute(sql: """
                INSERT INTO tokenizer(fingerprint, createdAt, updatedAt, documents, tokens) VALUES (?, ?, ?, 0, 0)
                ON CONFLICT(fingerprint) DO NOTHING
                """, arguments: [fingerprint, now, now])
        }
        let todo = try read { db in
            try Int.fetchOne(db, sql: """
                SELECT count(*) FROM document d
                WHERE NOT EXISTS (SELECT 1 FROM token_cache c WHERE c.tokenizer = ? AND c.documentId = d.id)
                """, arguments: [fingerprint]) ?? 0
        }
        var done = 0, newTokens = 0
        var after = Int64.min
        while true {
            let batch = try read { db in
                try Row.fetchAll(db, sql: """
                    SELECT id, text FROM document d
                    WHERE d.id > ? AND NOT EXISTS (SELECT 1 FROM token_cache c WHERE c.tokenizer = ? AND c.documentId = d.id)
                    ORDER BY d.id LIMIT ?
                    """, arguments: [after, fingerprint, max(1, batchSize)]
                ).map { (($0["id"] as Int64), ($0["text"] as String)) }
            }
            guard let last = batch.last else { break }
            after = last.0
            var encoded: [(Int64, [Int32])] = []
            encoded.reserveCapacity(batch.count)
            if let ids = try? encodeBatch(batch.map(\.1)), ids.count == batch.count {
                for (document, documentIds) in zip(batch, ids) { encoded.append((document.0, documentIds)) }
            } else {
                for (id, text) in batch {
                    do {
                        let ids = try encodeBatch([text])
                        guard ids.count == 1 else {
                            throw CorpusError.database("the tokenizer returned \(ids.count) results for 1 text")
                        }
                        encoded.append((id, ids[0]))
                    } catch {
                        throw CorpusError.tokenizerFailed(documentID: id, reason: String(describing: error))
                    }
                }
            }
            try write { db in
                let insert = try db.cachedStatement(sql: """
                    INSERT INTO token_cache(tokenizer, documentId, count, ids) VALUES (?, ?, ?, ?)
                    ON CONFLICT(tokenizer, documentId) DO NOTHING
                    """)
                let exists = try db.cachedStatement(sql: "SELECT 1 FROM document WHERE id = ?")
                var addedDocuments = 0, addedTokens = 0
                for (id, ids) in encoded {
                    // The document may have been deleted meanwhile: skip it then.
                    guard try Int.fetchOne(exists, arguments: [id]) != nil else { continue }
                    try insert.execute(arguments: [fingerprint, id, ids.count, encodeTokenBlob(ids)])
                    if db.changesCount > 0 {  // another process may have cached it first
                        addedDocuments += 1
                        addedTokens += ids.count
                    }
                }
                newTokens += addedTokens
                try db.execute(sql: """
                    UPDATE tokenizer SET updatedAt = ?, documents = documents + ?, tokens = tokens + ? WHERE fingerprint = ?
                    """, arguments: [Date().timeIntervalSince1970, addedDocuments, addedTokens, fingerprint])
            }
            done += batch.count
            progress?(done, todo)
        }
        let totals = try tokenCacheStats(fingerprint: fingerprint)
        return TokenCacheReport(
            fingerprint: fingerprint, newDocuments: done, newTokens: newTokens, documents: totals.documents,
            tokens: totals.tokens, seconds: Date().timeIntervalSince(started))
    }

    /// Documents and tokens in the cache of `fingerprint`.
    public func tokenCacheStats(fingerprint: String) throws -> TokenizerStats {
        guard let row = try read({ db in
            try Row.fetchOne(db, sql: "SELECT fingerprint, documents, tokens FROM tokenizer WHERE fingerprint = ?", arguments: [fingerprint])
        }) else { throw CorpusError.noTokenCache(fingerprint: fingerprint) }
        return TokenizerStats(fingerprint: row["fingerprint"], documents: row["documents"], tokens: row["tokens"])
    }

    /// Cached documents and tokens of `fingerprint` among the documents selected by `filter`:
    /// with the separator after each document, a packed stream holds `tokens + documents` ids,
    /// i.e. `(tokens + documents) / blockLength` full blocks per epoch.
    public func cachedTokenCount(fingerprint: String, filter: DocumentFilter = .all) throws -> (documents: Int, tokens: Int) {
        try read { db in
            let c = try filter.condition(db)
            let row = try Row.fetchOne(db, sql: """
                SELECT count(*) AS documents, coalesce(sum(t.count), 0) AS tokens
                FROM token_cache t JOIN document d ON d.id = t.documentId
                WHERE t.tokenizer = ? AND t.count > 0 AND \(c.sql)
                """, arguments: [fingerprint] + c.arguments)
            return (row?["documents"] ?? 0, row?["tokens"] ?? 0)
        }
    }

    /// The cached ids of one document, or nil when it is not cached.
    public func cachedTokens(documentID: Int64, fingerprint: String) throws -> [Int32]? {
        try read { db in
            guard let data = try Data.fetchOne(db, sql: "SELECT ids FROM token_cache WHERE tokenizer = ? AND documentId = ?",
                                               arguments: [fingerprint, documentID]) else { return nil }
            var ids: [Int32] = []
            try appendTokenBlob(data, documentID: documentID, to: &ids)
            return ids
        }
    }

    /// A digest of the documents `filter` selects that the token cache of `fingerprint` holds:
    /// SHA-256 over the fingerprint, then each document's id and text hash in id order. The
    /// blocks ``packedBlocks(fingerprint:blockLength:separator:filter:shuffleSeed:dropRemainder:pageSize:)``
    /// makes of them depend on nothing else but its arguments, so a pretraining run saves it to
    /// know, when resumed, that it reads the same data (a document added, removed or moved to
    /// another split changes it, and so does another tokenizer).
    public func documentsDigest(fingerprint: String, filter: DocumentFilter = .all) throws -> String {
        try read { db in
            let c = try filter.condition(db)
            var sha = SHA256()
            sha.update(Array(fingerprint.utf8))
            let rows = try Row.fetchCursor(db, sql: """
                SELECT d.id, d.hash FROM document d JOIN token_cache t ON t.documentId = d.id AND t.tokenizer = ?
                WHERE \(c.sql) ORDER BY d.id
                """, arguments: [fingerprint] + c.arguments)
            while let row = try rows.next() {
                var id = (row[0] as Int64).littleEndian
                withUnsafeBytes(of: &id) { sha.update(buffer: $0) }
                let hash: Data = row[1]
                sha.update(hash)
            }
            return SHA256.hex(sha.finalize())
        }
    }

    /// Fixed-length blocks of token ids for language-model pretraining, read from the token
    /// cache of `fingerprint`.
    ///
    /// Documents are concatenated, each followed by `separator`, and the stream is cut into
    /// blocks of exactly `blockLength` ids (a block may span documents). With a `shuffleSeed`
    /// the *document order* is shuffled deterministically (the same seed gives the same blocks);
    /// without, documents come in import order. Memory stays bounded: documents are read
    /// `pageSize` at a time (a shuffled stream also holds the list of document ids, 8 bytes each).
    ///
    /// - Parameter dropRemainder: drop the final short block (default) instead of returning it.
    public func packedBlocks(
        fingerprint: String, blockLength: Int, separator: Int32, filter: DocumentFilter = .all,
        shuffleSeed: UInt64? = nil, dropRemainder: Bool = true, pageSize: Int = 512
    ) throws -> PackedBlocks {
        guard blockLength > 0 else { throw CorpusError.invalidArgument("block length must be positive, got \(blockLength)") }
        _ = try tokenCacheStats(fingerprint: fingerprint)
        var order: [Int64]?
        if let seed = shuffleSeed {
            var ids = try read { db in
                let c = try filter.condition(db)
                return try Int64.fetchAll(db, sql: """
                    SELECT d.id FROM document d JOIN token_cache t ON t.documentId = d.id AND t.tokenizer = ?
                    WHERE \(c.sql) ORDER BY d.id
                    """, arguments: [fingerprint] + c.arguments)
            }
            var rng = SplitMix64(seed: seed)
            ids.shuffle(using: &rng)
            order = ids
        }
        return PackedBlocks(store: self, fingerprint: fingerprint, blockLength: blockLength, separator: separator,
                            filter: filter, order: order, dropRemainder: dropRemainder, pageSize: max(1, pageSize))
    }
}

/// The stream of packed token blocks made by ``CorpusStore/packedBlocks(fingerprint:blockLength:separator:filter:shuffleSeed:dropRemainder:pageSize:)``.
///
/// Each element is one block of `blockLength` ids. ``batches(of:)`` groups blocks into training
/// batches. Iteration throws: a database error (or a damaged cache blob) in the middle of an
/// epoch reaches the caller as a ``CorpusError``, never as a short epoch.
public struct PackedBlocks: Sendable {
    let store: CorpusStore
    let fingerprint: String
    public let blockLength: Int
    let separator: Int32
    let filter: DocumentFilter
    let order: [Int64]?
    let dropRemainder: Bool
    let pageSize: Int

    public struct Iterator {
        let blocks: PackedBlocks
        var buffer: [Int32] = []
        var position = 0
        var after = Int64.min
        var orderIndex = 0
        var exhausted = false

        /// Reads the next page of documents into the buffer; false when there are no more.
        mutating func refill() throws -> Bool {
            if exhausted { return false }
            if position > 0 {
                buffer.removeSubrange(0..<position)
                position = 0
            }
            do {
                let blobs: [(id: Int64, blob: Data)]
                if let order = blocks.order {
                    guard orderIndex < order.count else { exhausted = true; return false }
                    let ids = Array(order[orderIndex..<Swift.min(order.count, orderIndex + blocks.pageSize)])
                    orderIndex += ids.count
                    let byID = try blocks.store.read { db -> [Int64: Data] in
                        var result: [Int64: Data] = [:]
                        let marks = Array(repeating: "?", count: ids.count).joined(separator: ",")
                        for row in try Row.fetchAll(db, sql: """
                            SELECT documentId, ids FROM token_cache WHERE tokenizer = ? AND documentId IN (\(marks))
                            """, arguments: StatementArguments([blocks.fingerprint]) + StatementArguments(ids)) {
                            result[row["documentId"]] = row["ids"]
                        }
                        return result
                    }
                    blobs = try ids.map { id in
                        guard let blob = byID[id] else {
                            throw CorpusError.database("the token cache of document \(id) (tokenizer \(blocks.fingerprint)) vanished during the epoch")
                        }
                        return (id, blob)
                    }
                } else {
                    let rows = try blocks.store.read { db in
                        let c = try blocks.filter.condition(db)
                        return try Row.fetchAll(db, sql: """
                            SELECT t.documentId, t.ids FROM token_cache t JOIN document d ON d.id = t.documentId
                            WHERE t.tokenizer = ? AND t.documentId > ? AND \(c.sql) ORDER BY t.documentId LIMIT ?
                            """, arguments: [blocks.fingerprint, after] + c.arguments + [blocks.pageSize])
                    }
                    guard let last = rows.last else { exhausted = true; return false }
                    after = last["documentId"]
                    if rows.count < blocks.pageSize { exhausted = true }
                    blobs = rows.map { ($0["documentId"], $0["ids"]) }
                }
                for (id, blob) in blobs where !blob.isEmpty {
                    try appendTokenBlob(blob, documentID: id, to: &buffer)
                    buffer.append(blocks.separator)
                }
                return true
            } catch {
                exhausted = true
                throw CorpusError.wrap(error)
            }
        }

        /// The next block, or nil at the real end of the epoch.
        /// - Throws: ``CorpusError`` when a page of the cache cannot be read.
        public mutating func next() throws -> [Int32]? {
            while buffer.count - position < blocks.blockLength {
                if !(try refill()) { break }
            }
            let available = buffer.count - position
            if available >= blocks.blockLength {
                defer { position += blocks.blockLength }
                return Array(buffer[position..<(position + blocks.blockLength)])
            }
            if available > 0 && !blocks.dropRemainder {
                defer { position = buffer.count }
                return Array(buffer[position...])
            }
            return nil
        }
    }

    public func makeIterator() -> Iterator { Iterator(blocks: self) }

    /// Every block of the epoch, in order (the whole epoch in memory: for small selections).
    public func all() throws -> [[Int32]] {
        var iterator = makeIterator()
        var out: [[Int32]] = []
        while let block = try iterator.next() { out.append(block) }
        return out
    }

    /// The first `count` blocks at most (e.g. the dev blocks of an evaluation).
    public func prefix(_ count: Int) throws -> [[Int32]] {
        var iterator = makeIterator()
        var out: [[Int32]] = []
        while out.count < count, let block = try iterator.next() { out.append(block) }
        return out
    }

    /// Blocks grouped `size` at a time, as one flat row-major array per batch
    /// (`size × blockLength` ids; the last batch may hold fewer blocks); `next()` throws as the
    /// stream does.
    public func batches(of size: Int) -> Batches {
        Batches(iterator: makeIterator(), size: Swift.max(1, size), blockLength: blockLength)
    }

    public struct Batches {
        var iterator: Iterator
        let size: Int
        let blockLength: Int
        public mutating func next() throws -> [Int32]? {
            var flat: [Int32] = []
            flat.reserveCapacity(size * blockLength)
            var count = 0
            while count < size, let block = try iterator.next() {
                flat.append(contentsOf: block)
                count += 1
            }
            return count == 0 ? nil : flat
        }
    }
}
