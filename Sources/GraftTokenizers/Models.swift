import Foundation

/// A token produced by a model inside one word: its id and its span in the word's
/// normalized scalars (half-open, relative to the word).
struct ModelToken {
    var id: Int32
    var start: Int32
    var end: Int32
}

/// WordPiece: greedy longest-match-first over each word, with a continuation prefix.
public struct WordPiece: Sendable {
    public let vocab: Vocabulary
    public let unkToken: String
    public let continuingSubwordPrefix: String
    public let maxInputCharsPerWord: Int
    let unkId: Int32
    /// Byte trie over tokens: word-initial tokens under node 0, continuations (prefix stripped)
    /// under node 1.
    private var edges: PairTable
    private var terminal: [Int32]

    public init(vocab: Vocabulary, unkToken: String = "[UNK]", continuingSubwordPrefix: String = "##",
                maxInputCharsPerWord: Int = 100) throws {
        guard let unk = vocab.id(unkToken) else { throw TokenizerError.unknownToken(unkToken) }
        self.vocab = vocab
        self.unkToken = unkToken
        self.continuingSubwordPrefix = continuingSubwordPrefix
        self.maxInputCharsPerWord = maxInputCharsPerWord
        self.unkId = Int32(unk)
        edges = PairTable(capacity: vocab.count * 4)
        terminal = [-1, -1]
        let prefix = Array(continuingSubwordPrefix.utf8)
        for (id, token) in vocab.tokens.enumerated() where !token.isEmpty {
            var bytes = Array(token.utf8)
            var node: Int32 = 0
            if !prefix.isEmpty && bytes.count > prefix.count && bytes.starts(with: prefix) {
                bytes.removeFirst(prefix.count)
                node = 1
            }
            for b in bytes {
                let key = (UInt64(UInt32(node)) << 8) | UInt64(b)
                if let (child, _) = edges.find(key) {
                    node = child
                } else {
                    let child = Int32(terminal.count)
                    terminal.append(-1)
                    edges.insert(key, child, 0)
                    node = child
                }
            }
            if terminal[Int(node)] < 0 { terminal[Int(node)] = Int32(id) }
        }
    }

    /// Tokenizes one word given as normalized scalars.
    func tokenize(_ word: UnsafeBufferPointer<UInt32>, into out: inout [ModelToken], scratch: inout [UInt8], charOfByte: inout [Int32]) {
        let n = word.count
        if n == 0 { return }
        if n > maxInputCharsPerWord {
            out.append(ModelToken(id: unkId, start: 0, end: Int32(n)))
            return
        }
        scratch.removeAll(keepingCapacity: true)
        charOfByte.removeAll(keepingCapacity: true)
        for (i, c) in word.enumerated() {
            let before = scratch.count
            UTF8Util.append(c, to: &scratch)
            for _ in before..<scratch.count { charOfByte.append(Int32(i)) }
        }
        charOfByte.append(Int32(n))
        let mark = out.count
        let total = scratch.count
        var pos = 0
        while pos < total {
            var node: Int32 = pos == 0 ? 0 : 1
            var bestId: Int32 = -1
            var bestEnd = 0
            var p = pos
            while p < total {
                let key = (UInt64(UInt32(node)) << 8) | UInt64(scratch[p])
                guard let (child, _) = edges.find(key) else { break }
                node = child
                p += 1
                let t = terminal[Int(node)]
                if t >= 0 { bestId = t; bestEnd = p }
            }
            if bestId < 0 {
                out.removeSubrange(mark...)
                out.append(ModelToken(id: unkId, start: 0, end: Int32(n)))
                return
            }
            out.append(ModelToken(id: bestId, start: charOfByte[pos], end: charOfByte[bestEnd]))
            pos = bestEnd
        }
    }
}

/// Byte-pair encoding with ranked merges; byte-level when built for GPT-2 style input.
public final class BPE: @unchecked Sendable {
    public let vocab: Vocabulary
    /// Merges in rank order, as token strings.
    public let merges: [(String, String)]
    public let unkToken: String?
    public let continuingSubwordPrefix: String
    public let endOfWordSuffix: String
    /// Word cache size (entries); 0 disables it.
    public let cacheCapacity: Int
    let unkId: Int32
    /// (left id << 32 | right id) → (rank, merged id).
    private var mergeTable: PairTable
    /// Vocabulary id of each byte's alphabet symbol (byte-level input), or -1.
    let byteIds: [Int32]
    /// Scalars per token: for byte-level tokens, the number of bytes each stands for.
    private let symbolLengths: [Int32]
    /// Word cache, split in shards with a lock each so that batch threads rarely meet.
    private let shards: [CacheShard]
    final class CacheShard: @unchecked Sendable {
        let lock = NSLock()
        var map: WordCache
        init(capacity: Int) { map = WordCache(capacity: capacity) }
    }
    /// Word caches of batch workers between batches: a worker takes one for a whole batch
    /// (``takeWorkerCache()``) and gives it back after, so no two threads touch one cache and
    /// the next batch starts warm.
    private let workerCaches = WorkerCachePool()
    final class WorkerCachePool: @unchecked Sendable {
        let lock = NSLock()
        var free: [WordCache] = []
    }

    /// A word cache for one batch worker (warm from an earlier batch when one is free).
    func takeWorkerCache() -> WordCache {
        workerCaches.lock.lock()
        defer { workerCaches.lock.unlock() }
        return workerCaches.free.popLast() ?? WordCache(capacity: cacheCapacity)
    }

    /// Returns a worker's cache for later batches (at most 64 are kept).
    func returnWorkerCache(_ cache: WordCache) {
        workerCaches.lock.lock()
        defer { workerCaches.lock.unlock() }
        if workerCaches.free.count < 64 { workerCaches.free.append(cache) }
    }

    public init(vocab: Vocabulary, merges: [(String, String)], unkToken: String? = nil,
                continuingSubwordPrefix: String = "", endOfWordSuffix: String = "", cacheCapacity: Int = 65_536) throws {
        self.vocab = vocab
        self.merges = merges
        self.unkToken = unkToken
        self.continuingSubwordPrefix = continuingSubwordPrefix
        self.endOfWordSuffix = endOfWordSuffix
        self.cacheCapacity = cacheCapacity
        if let unkToken {
            guard let id = vocab.id(unkToken) else { throw TokenizerError.unknownToken(unkToken) }
            unkId = Int32(id)
        } else {
            unkId = -1
        }
        mergeTable = PairTable(capacity: merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = vocab.id(a) else { throw TokenizerError.unknownToken(a) }
            guard let ib = vocab.id(b) else { throw TokenizerError.unknownToken(b) }
            let suffixLess = !continuingSubwordPrefix.isEmpty && b.unicodeScalars.starts(with: continuingSubwordPrefix.unicodeScalars)
                ? String(b.unicodeScalars.dropFirst(continuingSubwordPrefix.unicodeScalars.count)) : b
            let merged = a + suffixLess
            guard let im = vocab.id(merged) else { throw TokenizerError.unknownToken(merged) }
            mergeTable.insert((UInt64(UInt32(ia)) << 32) | UInt64(UInt32(ib)), Int32(rank), Int32(im))
        }
        byteIds = ByteLevel.alphabet.map { vocab.id($0).map(Int32.init) ?? -1 }
        shards = (0..<32).map { _ in CacheShard(capacity: cacheCapacity / 32 + 1) }
        symbolLengths = vocab.tokens.map { Int32(max(1, $0.unicodeScalars.count)) }
    }

    /// Applies the merges to a sequence of symbol ids (in place), lowest rank first, leftmost first.
    func merge(_ symbols: inout [Int32], _ spanStart: inout [Int32], _ spanEnd: inout [Int32]) {
        if symbols.count > 48 {
            mergeWithHeap(&symbols, &spanStart, &spanEnd)
            return
        }
        while symbols.count > 1 {
            var bestRank = Int32.max, bestPos = -1, bestId: Int32 = 0
            for i in 0..<(symbols.count - 1) {
                let key = (UInt64(UInt32(symbols[i])) << 32) | UInt64(UInt32(symbols[i + 1]))
                if let (rank, id) = mergeTable.find(key), rank < bestRank {
                    bestRank = rank; bestPos = i; bestId = id
                }
            }
            if bestPos < 0 { break }
            // Merge every non-overlapping occurrence of the best pair, left to right.
            let a = symbols[bestPos], b = symbols[bestPos + 1]
            var w = 0, r = 0
            let n = symbols.count
            while r < n {
                if r < n - 1 && symbols[r] == a && symbols[r + 1] == b && r >= bestPos {
                    symbols[w] = bestId; spanStart[w] = spanStart[r]; spanEnd[w] = spanEnd[r + 1]
                    r += 2
                } else {
                    symbols[w] = symbols[r]; spanStart[w] = spanStart[r]; spanEnd[w] = spanEnd[r]
                    r += 1
                }
                w += 1
            }
            symbols.removeSubrange(w...); spanStart.removeSubrange(w...); spanEnd.removeSubrange(w...)
        }
    }

    /// The same merges in O(n log n) for long words: symbols in a linked list, candidate pairs
    /// in a min-heap keyed by (rank, position), stale entries skipped when popped.
    func mergeWithHeap(_ symbols: inout [Int32], _ spanStart: inout [Int32], _ spanEnd: inout [Int32]) {
        let n = symbols.count
        var next = [Int](0..<n).map { $0 + 1 }
        var prev = [Int](0..<n).map { $0 - 1 }
        var alive = [Bool](repeating: true, count: n)
        var heap = MinHeap()
        func push(_ i: Int) {
            let j = next[i]
            guard j < n else { return }
            let key = (UInt64(UInt32(symbols[i])) << 32) | UInt64(UInt32(symbols[j]))
            if let (rank, _) = mergeTable.find(key) { heap.push((UInt64(UInt32(rank)) << 32) | UInt64(i)) }
        }
        for i in 0..<(n - 1) { push(i) }
        while let top = heap.pop() {
            let rank = Int32(truncatingIfNeeded: top >> 32), i = Int(top & 0xFFFF_FFFF)
            guard alive[i], next[i] < n else { continue }
            let j = next[i]
            let key = (UInt64(UInt32(symbols[i])) << 32) | UInt64(UInt32(symbols[j]))
            guard let (r, merged) = mergeTable.find(key), r == rank else { continue }
            symbols[i] = merged
            spanEnd[i] = spanEnd[j]
            alive[j] = false
            next[i] = next[j]
            if next[j] < n { prev[next[j]] = i }
            if prev[i] >= 0 { push(prev[i]) }
            push(i)
        }
        var w = 0
        var i = 0
        while i < n {
            symbols[w] = symbols[i]; spanStart[w] = spanStart[i]; spanEnd[w] = spanEnd[i]
            w += 1
            i = next[i]
        }
        symbols.removeSubrange(w...); spanStart.removeSubrange(w...); spanEnd.removeSubrange(w...)
    }

    /// Tokenizes one byte-level word: `bytes` are its UTF-8 bytes and `charOfByte[k]` the word
    /// scalar index of byte k (with one extra entry, the word length). Merges are memoised in
    /// `cache` when the caller has one of its own (a batch worker), else in the model's shared,
    /// sharded cache; either holds at most ``cacheCapacity`` words.
    func tokenizeBytes(_ bytes: [UInt8], charOfByte: [Int32], into out: inout [ModelToken],
                       cache: inout WordCache?) {
        let h = bytes.withUnsafeBufferPointer { WordCache.hash($0) }
        if cacheCapacity > 0, cache != nil {
            let hit: Void? = bytes.withUnsafeBufferPointer { key in
                cache!.withIDs(of: key, hash: h) { ids in emit(ids, bytes: bytes, charOfByte: charOfByte, into: &out) }
            }
            if hit != nil { return }
            let symbols = mergedSymbols(bytes)
            bytes.withUnsafeBufferPointer { cache!.insert($0, hash: h, ids: symbols) }
            emit(symbols, bytes: bytes, charOfByte: charOfByte, into: &out)
            return
        }
        let shard = shards[Int(h & 31)]
        if cacheCapacity > 0 {
            shard.lock.lock()
            let hit: Void? = bytes.withUnsafeBufferPointer { key in
                shard.map.withIDs(of: key, hash: h) { ids in emit(ids, bytes: bytes, charOfByte: charOfByte, into: &out) }
            }
            shard.lock.unlock()
            if hit != nil { return }
        }
        let symbols = mergedSymbols(bytes)
        if cacheCapacity > 0 {
            shard.lock.lock()
            bytes.withUnsafeBufferPointer { shard.map.insert($0, hash: h, ids: symbols) }
            shard.lock.unlock()
        }
        emit(symbols, bytes: bytes, charOfByte: charOfByte, into: &out)
    }

    /// The merged symbols of one byte-level word.
    private func mergedSymbols(_ bytes: [UInt8]) -> [Int32] {
        var symbols = [Int32](), starts = [Int32](), ends = [Int32]()
        symbols.reserveCapacity(bytes.count)
        starts.reserveCapacity(bytes.count)
        ends.reserveCapacity(bytes.count)
        for (k, b) in bytes.enumerated() {
            let id = byteIds[Int(b)]
            if id < 0 {
                if unkId >= 0 { symbols.append(unkId) } else { continue }
            } else {
                symbols.append(id)
            }
            starts.append(Int32(k)); ends.append(Int32(k + 1))
        }
        merge(&symbols, &starts, &ends)
        return symbols
    }

    /// Converts merged byte-level symbols to tokens with scalar spans: a token covering only part
    /// of a character's bytes reports the whole character.
    private func emit<IDs: Collection<Int32>>(_ ids: IDs, bytes: [UInt8], charOfByte: [Int32], into out: inout [ModelToken]) {
        var pos = 0
        for id in ids {
            let len = byteLength(of: id)
            let startChar = charOfByte[pos]
            let lastByte = pos + max(len, 1) - 1
            let endChar = charOfByte[min(lastByte, bytes.count - 1)] + 1
            out.append(ModelToken(id: id, start: startChar, end: endChar))
            pos += len
        }
    }

    @inline(__always)
    private func byteLength(of id: Int32) -> Int {
        id >= 0 && Int(id) < symbolLengths.count ? Int(symbolLengths[Int(id)]) : 1
    }

    /// Tokenizes one word of scalars, each scalar an initial symbol (char-level BPE).
    func tokenizeScalars(_ word: UnsafeBufferPointer<UInt32>, into out: inout [ModelToken]) {
        var symbols = [Int32](), starts = [Int32](), ends = [Int32]()
        for (i, c) in word.enumerated() {
            var piece = UTF8Util.string([c])
            if i > 0 && !continuingSubwordPrefix.isEmpty { piece = continuingSubwordPrefix + piece }
            if i == word.count - 1 && !endOfWordSuffix.isEmpty { piece += endOfWordSuffix }
            if let id = vocab.id(piece) {
                symbols.append(Int32(id))
            } else if unkId >= 0 {
                symbols.append(unkId)
            } else {
                continue
            }
            starts.append(Int32(i)); ends.append(Int32(i + 1))
        }
        merge(&symbols, &starts, &ends)
        for k in 0..<symbols.count { out.append(ModelToken(id: symbols[k], start: starts[k], end: ends[k])) }
    }
}

/// A binary min-heap of packed `UInt64` keys.
struct MinHeap {
    private var items: [UInt64] = []
    var isEmpty: Bool { items.isEmpty }
    mutating func push(_ v: UInt64) {
        items.append(v)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if items[p] <= items[i] { break }
            items.swapAt(p, i)
            i = p
        }
    }
    mutating func pop() -> UInt64? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            let n = items.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && items[l] < items[m] { m = l }
                if r < n && items[r] < items[m] { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return first
    }
}

/// A BPE word cache: a word's bytes → its merged ids, by open addressing over flat arrays (no
/// allocation per entry: a lookup hashes the bytes once, FNV-1a, and compares them in place; the
/// ids are read where they lie). Holds at most `capacity` words and is emptied when full.
struct WordCache: Sendable {
    let capacity: Int
    private(set) var count = 0
    /// Entry index of each slot, or -1; a power of two at least twice `capacity` long.
    private var slots: [Int32]
    private var entryHash: [UInt32] = []
    /// Entry e's key is `keyBytes[keyEnd[e - 1] ..< keyEnd[e]]` (from 0 for e = 0); its ids likewise.
    private var keyEnd: [Int32] = []
    private var idEnd: [Int32] = []
    private var keyBytes: [UInt8] = []
    private var ids: [Int32] = []

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        var size = 16
        while size < 2 * self.capacity { size <<= 1 }
        slots = [Int32](repeating: -1, count: size)
    }

    /// FNV-1a of the bytes (also the shard choice of the shared cache).
    @inline(__always)
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt32 {
        var h: UInt32 = 2166136261
        for b in bytes { h = (h ^ UInt32(b)) &* 16777619 }
        return h
    }

    /// Calls `body` with the ids cached for `key` (hashed to `hash`) and returns its result, or
    /// nil when `key` is not cached.
    @inline(__always)
    func withIDs<R>(of key: UnsafeBufferPointer<UInt8>, hash: UInt32, _ body: (UnsafeBufferPointer<Int32>) -> R) -> R? {
        let mask = slots.count - 1
        var i = Int(hash) & mask
        return slots.withUnsafeBufferPointer { slots in
            entryHash.withUnsafeBufferPointer { entryHash in
                keyEnd.withUnsafeBufferPointer { keyEnd in
                    keyBytes.withUnsafeBufferPointer { keyBytes -> R? in
                        while true {
                            let e = Int(slots[i])
                            if e < 0 { return nil }
                            if entryHash[e] == hash {
                                let ks = e == 0 ? 0 : Int(keyEnd[e - 1]), ke = Int(keyEnd[e])
                                if ke - ks == key.count, key.count == 0 || memcmp(keyBytes.baseAddress! + ks, key.baseAddress!, key.count) == 0 {
                                    return idEnd.withUnsafeBufferPointer { idEnd in
                                        ids.withUnsafeBufferPointer { ids in
                                            let s = e == 0 ? 0 : Int(idEnd[e - 1])
                                            return body(UnsafeBufferPointer(rebasing: ids[s..<Int(idEnd[e])]))
                                        }
                                    }
                                }
                            }
                            i = (i + 1) & mask
                        }
                    }
                }
            }
        }
    }

    /// Adds `key` (not cached yet) with its ids; empties the cache first when it is full.
    mutating func insert(_ key: UnsafeBufferPointer<UInt8>, hash: UInt32, ids newIDs: [Int32]) {
        if count >= capacity { removeAll() }
        let mask = slots.count - 1
        var i = Int(hash) & mask
        while slots[i] >= 0 { i = (i + 1) & mask }
        slots[i] = Int32(count)
        entryHash.append(hash)
        keyBytes.append(contentsOf: key)
        keyEnd.append(Int32(keyBytes.count))
        ids.append(contentsOf: newIDs)
        idEnd.append(Int32(ids.count))
        count += 1
    }

    /// Empties the cache, keeping its storage.
    mutating func removeAll() {
        slots.withUnsafeMutableBufferPointer { $0.update(repeating: -1) }
        entryHash.removeAll(keepingCapacity: true)
        keyEnd.removeAll(keepingCapacity: true)
        idEnd.removeAll(keepingCapacity: true)
        keyBytes.removeAll(keepingCapacity: true)
        ids.removeAll(keepingCapacity: true)
        count = 0
    }
}
