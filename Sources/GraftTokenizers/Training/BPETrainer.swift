import GraftSupport
import Dispatch

/// Settings of ``BPETrainer`` (and of ``WordPieceTrainer``, which runs the same algorithm).
///
/// The fields mirror HuggingFace tokenizers' `BpeTrainer`. Use ``byteLevel(vocabSize:minFrequency:specialTokens:)``
/// for GPT-2 style byte-level BPE and ``wordPiece(vocabSize:minFrequency:limitAlphabet:specialTokens:)``
/// for BERT WordPiece defaults.
public struct BPETrainerOptions: Sendable {
    /// Target vocabulary size, counting special tokens, the alphabet and prefixed symbols.
    public var vocabSize: Int
    /// A pair is merged only if it occurs at least this often (HuggingFace's own default is 0;
    /// Graft's command line uses 2).
    public var minFrequency: Int
    /// Tokens placed first in the vocabulary, ids 0, 1, ... in this order (duplicates dropped).
    public var specialTokens: [String]
    /// Keep at most this many characters of the alphabet (the most frequent, counted by word
    /// frequency; characters of ``initialAlphabet`` count as infinitely frequent). Characters
    /// outside the kept alphabet are dropped from the words before merging.
    public var limitAlphabet: Int?
    /// Characters always in the alphabet, seen or not (for byte-level BPE the 256 byte symbols).
    public var initialAlphabet: Set<Unicode.Scalar>
    /// Prefix of symbols that continue a word (WordPiece's `##`). Every character but a word's
    /// first carries it; a merge `a + b` yields `a` followed by `b` without its prefix.
    public var continuingSubwordPrefix: String?
    /// Suffix appended to a word's last character (e.g. `</w>`).
    public var endOfWordSuffix: String?
    /// Limits merged tokens' length in characters, with HuggingFace's semantics (a new pair is
    /// only counted when the lengths of its two symbols add up to less than this).
    public var maxTokenLength: Int?
    /// Threads used to count pairs and to apply large merges (default 2). The result does not
    /// depend on it.
    public var threads: Int
    /// Called after each merge with the current vocabulary size and ``vocabSize``.
    public var progress: (@Sendable (_ done: Int, _ total: Int) -> Void)?
    /// Merges touching at least this many words are split over the threads.
    var parallelMergeThreshold = 2048

    /// Creates options; every parameter defaults as in HuggingFace's `BpeTrainer`, except
    /// `minFrequency`, which defaults to 2.
    public init(
        vocabSize: Int = 30000,
        minFrequency: Int = 2,
        specialTokens: [String] = [],
        limitAlphabet: Int? = nil,
        initialAlphabet: Set<Unicode.Scalar> = [],
        continuingSubwordPrefix: String? = nil,
        endOfWordSuffix: String? = nil,
        maxTokenLength: Int? = nil,
        threads: Int = 2,
        progress: (@Sendable (_ done: Int, _ total: Int) -> Void)? = nil
    ) {
        self.vocabSize = vocabSize
        self.minFrequency = minFrequency
        self.specialTokens = specialTokens
        self.limitAlphabet = limitAlphabet
        self.initialAlphabet = initialAlphabet
        self.continuingSubwordPrefix = continuingSubwordPrefix
        self.endOfWordSuffix = endOfWordSuffix
        self.maxTokenLength = maxTokenLength
        self.threads = threads
        self.progress = progress
    }

    /// The 256 scalars of GPT-2's printable byte alphabet (byte `b` is `b` itself when printable
    /// Latin-1, otherwise U+0100 + n).
    public static var byteLevelAlphabet: Set<Unicode.Scalar> { TrainerByteAlphabet.alphabet }

    /// Byte-level BPE as HuggingFace's `ByteLevelBPETokenizer.train`: the 256 byte symbols as
    /// initial alphabet, no prefix or suffix. Words must already be in the byte alphabet.
    public static func byteLevel(
        vocabSize: Int = 30000, minFrequency: Int = 2, specialTokens: [String] = []
    ) -> BPETrainerOptions {
        BPETrainerOptions(
            vocabSize: vocabSize, minFrequency: minFrequency, specialTokens: specialTokens,
            initialAlphabet: TrainerByteAlphabet.alphabet)
    }

    /// WordPiece as HuggingFace's `BertWordPieceTokenizer.train`: minimum frequency 2, alphabet
    /// limited to 1000 characters, `##` continuation prefix and BERT's five special tokens.
    public static func wordPiece(
        vocabSize: Int = 30000,
        minFrequency: Int = 2,
        limitAlphabet: Int? = 1000,
        specialTokens: [String] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    ) -> BPETrainerOptions {
        BPETrainerOptions(
            vocabSize: vocabSize, minFrequency: minFrequency, specialTokens: specialTokens,
            limitAlphabet: limitAlphabet, continuingSubwordPrefix: "##")
    }
}

/// What a trainer learned.
public struct TrainingResult: Sendable {
    /// Token strings ordered by id: special tokens, then the alphabet (by code point), then
    /// prefixed/suffixed single characters as first met, then merged tokens in merge order.
    public var vocab: [String]
    /// Merges in rank order (empty for WordPiece). When HuggingFace's algorithm merges the
    /// same pair twice, the pair keeps its last rank, as HuggingFace's saved files show it.
    public var merges: [(String, String)]
    /// The special tokens at the start of ``vocab``.
    public var specialTokens: [String]
    /// The continuation prefix the vocabulary was built with.
    public var continuingSubwordPrefix: String?
    /// The end-of-word suffix the vocabulary was built with.
    public var endOfWordSuffix: String?
}

/// Trains a BPE vocabulary and merges from word counts, reproducing HuggingFace tokenizers'
/// `BpeTrainer` algorithm.
///
/// Steps, as in HuggingFace: special tokens first; the alphabet (all characters, weighted by
/// word frequency, limited to the `limitAlphabet` most frequent plus the initial alphabet,
/// ordered by code point); words split into characters, later characters carrying the
/// continuation prefix and the last the end-of-word suffix (characters outside the alphabet
/// dropped); pair counts with, per pair, the words it occurs in; then repeatedly the most
/// frequent pair (ties: the smallest pair of ids) is merged in its words, while the
/// vocabulary is below `vocabSize` and the count at least `minFrequency`. Queue entries are
/// re-checked when popped, as HuggingFace does, so the order of merges is the same.
///
/// Symbols are interned as `Int32` ids, words are stored flat, pairs are packed into `UInt64`
/// keys of an open-addressing table, and large merges and the first pair count run on
/// ``BPETrainerOptions/threads`` threads; the result does not depend on the thread count.
///
/// ```swift
/// var counter = WordCounter { text in myByteLevelPreTokenize(text) }
/// counter.add(documents: corpus)
/// let result = BPETrainer(.byteLevel(vocabSize: 8000)).train(counter.counts())
/// print(result.vocab.count, result.merges.first!)
/// ```
public struct BPETrainer: Sendable {
    /// The settings this trainer uses.
    public var options: BPETrainerOptions

    /// Creates a trainer.
    public init(_ options: BPETrainerOptions = BPETrainerOptions()) {
        self.options = options
    }

    /// Learns a vocabulary and merges from `counts`.
    public func train(_ counts: WordCounts) -> TrainingResult {
        var run = BPETrainingRun(options: options)
        return run.train(counts.table)
    }
}

// MARK: - The algorithm

/// One queue entry: a pair, the count it had when pushed, and the words to merge it in.
struct MergeEntry {
    var count: Int64
    var key: UInt64
    var list: Int32
    var pair: Int32

    /// Pops first: higher count, then the smaller pair (HuggingFace's `Merge` ordering).
    @inline(__always)
    static func before(_ x: MergeEntry, _ y: MergeEntry) -> Bool {
        x.count != y.count ? x.count > y.count : x.key < y.key
    }
}

/// A binary max-heap of ``MergeEntry``.
struct MergeHeap {
    private(set) var items: [MergeEntry] = []

    init(_ items: [MergeEntry]) {
        self.items = items
        if items.count > 1 {
            var i = items.count / 2 - 1
            while i >= 0 { siftDown(i); i -= 1 }
        }
    }

    var isEmpty: Bool { items.isEmpty }

    mutating func push(_ e: MergeEntry) {
        items.append(e)
        items.withUnsafeMutableBufferPointer { h in
            var i = h.count - 1
            let x = h[i]
            while i > 0 {
                let parent = (i - 1) >> 1
                if !MergeEntry.before(x, h[parent]) { break }
                h[i] = h[parent]
                i = parent
            }
            h[i] = x
        }
    }

    mutating func pop() -> MergeEntry? {
        guard let last = items.popLast() else { return nil }
        if items.isEmpty { return last }
        let top = items[0]
        items[0] = last
        siftDown(0)
        return top
    }

    private mutating func siftDown(_ start: Int) {
        items.withUnsafeMutableBufferPointer { h in
            let n = h.count
            var i = start
            let x = h[i]
            while true {
                var child = 2 * i + 1
                if child >= n { break }
                if child + 1 < n && MergeEntry.before(h[child + 1], h[child]) { child += 1 }
                if !MergeEntry.before(h[child], x) { break }
                h[i] = h[child]
                i = child
            }
            h[i] = x
        }
    }
}

/// A pair-count change produced by merging in one word.
struct PairChange {
    var key: UInt64
    var word: Int32
    var delta: Int32
}

/// A per-thread buffer of changes.
final class PairChangeBuffer: @unchecked Sendable {
    var items: [PairChange] = []
}

/// The state of one training run.
struct BPETrainingRun {
    let options: BPETrainerOptions
    private(set) var tokens: [[UInt8]] = []
    private var tokenIDs: [[UInt8]: Int32] = [:]
    /// Length of each token in original characters (HuggingFace's `Symbol.len`).
    private var tokenChars: [Int32] = []
    private let prefix: [UInt8]?
    private let suffix: [UInt8]?

    init(options: BPETrainerOptions) {
        self.options = options
        self.prefix = options.continuingSubwordPrefix.map { Array($0.utf8) }
        self.suffix = options.endOfWordSuffix.map { Array($0.utf8) }
    }

    @discardableResult
    private mutating func intern(_ bytes: [UInt8], chars: Int32) -> Int32 {
        if let id = tokenIDs[bytes] { return id }
        let id = Int32(tokens.count)
        tokens.append(bytes)
        tokenIDs[bytes] = id
        tokenChars.append(chars)
        return id
    }

    /// The word entries in a fixed order that does not depend on how counting was threaded:
    /// by hash, then by bytes.
    private func wordOrder(_ table: ByteCountTable) -> [Int32] {
        var order = (0..<Int32(table.count)).map { $0 }
        let hashes = table.hashes
        table.storage.withUnsafeBufferPointer { s in
            order.sort { x, y in
                let hx = hashes[Int(x)], hy = hashes[Int(y)]
                if hx != hy { return hx < hy }
                let rx = table.range(of: Int(x)), ry = table.range(of: Int(y))
                return s[rx].lexicographicallyPrecedes(s[ry])
            }
        }
        return order
    }

    /// HuggingFace's `compute_alphabet`.
    private mutating func computeAlphabet(_ table: ByteCountTable) {
        var ascii = [Int64](repeating: -1, count: 128)
        var other: [UInt32: Int64] = [:]
        table.storage.withUnsafeBufferPointer { s in
            guard let p = s.baseAddress else { return }
            for entry in 0..<table.count {
                let r = table.range(of: entry)
                let c = table.counts[entry]
                var i = r.lowerBound
                while i < r.upperBound {
                    let v = decodeUTF8Scalar(p, &i)
                    if v < 128 {
                        ascii[Int(v)] = ascii[Int(v)] < 0 ? c : ascii[Int(v)] &+ c
                    } else {
                        other[v, default: 0] &+= c
                    }
                }
            }
        }
        var alphabet: [(scalar: UInt32, count: Int64)] = []
        for v in 0..<128 where ascii[v] >= 0 { alphabet.append((UInt32(v), ascii[v])) }
        for (v, c) in other { alphabet.append((v, c)) }
        let initial = Set(options.initialAlphabet.map { $0.value })
        for i in alphabet.indices where initial.contains(alphabet[i].scalar) {
            alphabet[i].count = Int64.max
        }
        let seen = Set(alphabet.map { $0.scalar })
        for v in initial where !seen.contains(v) { alphabet.append((v, Int64.max)) }

        if let limit = options.limitAlphabet, alphabet.count > limit {
            // Drop the rarest; among equal counts (HuggingFace leaves that order to its hash
            // map) drop higher code points first.
            alphabet.sort { $0.count != $1.count ? $0.count < $1.count : $0.scalar > $1.scalar }
            alphabet.removeFirst(alphabet.count - limit)
        }
        alphabet.sort { $0.scalar < $1.scalar }
        for (v, _) in alphabet {
            intern(Array(String(Unicode.Scalar(v)!).utf8), chars: 1)
        }
    }

    /// Runs the whole algorithm.
    mutating func train(_ table: ByteCountTable) -> TrainingResult {
        let vocabSize = options.vocabSize
        let threads = max(1, options.threads)

        // 1. Special tokens.
        for special in options.specialTokens {
            intern(Array(special.utf8), chars: Int32(special.unicodeScalars.count))
        }
        // 2. Alphabet.
        computeAlphabet(table)

        // 3. Words as symbol ids.
        let order = wordOrder(table)
        let wordTotal = order.count
        var wordCount = [Int64](repeating: 0, count: wordTotal)
        var wordStart = [Int32](repeating: 0, count: wordTotal)
        var wordLen = [Int32](repeating: 0, count: wordTotal)
        var symbols: [Int32] = []
        symbols.reserveCapacity(table.storage.count)
        var asciiCache = [Int32](repeating: -2, count: 128 * 4)
        var otherCache: [UInt32: SIMD4<Int32>] = [:]
        table.storage.withUnsafeBufferPointer { s in
            guard let p = s.baseAddress else { return }
            for (w, entry) in order.enumerated() {
                let r = table.range(of: Int(entry))
                wordCount[w] = table.counts[Int(entry)]
                wordStart[w] = Int32(symbols.count)
                var i = r.lowerBound
                var first = true
                while i < r.upperBound {
                    let v = decodeUTF8Scalar(p, &i)
                    let last = i >= r.upperBound
                    let variant = (first ? 0 : 2) + (last ? 1 : 0)
                    first = false
                    var id: Int32
                    if v < 128 {
                        id = asciiCache[Int(v) * 4 + variant]
                        if id == -2 {
                            id = symbolID(v, variant: variant)
                            asciiCache[Int(v) * 4 + variant] = id
                        }
                    } else {
                        var cached = otherCache[v] ?? SIMD4(repeating: -2)
                        id = cached[variant]
                        if id == -2 {
                            id = symbolID(v, variant: variant)
                            cached[variant] = id
                            otherCache[v] = cached
                        }
                    }
                    if id >= 0 { symbols.append(id) }
                }
                wordLen[w] = Int32(symbols.count) - wordStart[w]
            }
        }


        // 4. Pair counts and where each pair occurs, counted over `threads` slices of words.
        var pairTable = PairIndexTable(minimumCapacity: 1 << 16)
        var pairKey: [UInt64] = []
        var pairCount: [Int64] = []
        var lists: [[Int32]] = []
        if !symbols.isEmpty {
            let parts = wordTotal >= 4096 ? threads : 1
            let partials = (0..<parts).map { _ in PartialPairCounts() }
            symbols.withUnsafeMutableBufferPointer { symBuf in
                wordStart.withUnsafeMutableBufferPointer { startBuf in
                    wordLen.withUnsafeMutableBufferPointer { lenBuf in
                        wordCount.withUnsafeMutableBufferPointer { countBuf in
                            let sym = SharedPointer(symBuf.baseAddress!)
                            let start = SharedPointer(startBuf.baseAddress!)
                            let len = SharedPointer(lenBuf.baseAddress!)
                            let cnt = SharedPointer(countBuf.baseAddress!)
                            parallelFor(parts) { part in
                                let lo = wordTotal * part / parts, hi = wordTotal * (part + 1) / parts
                                partials[part].count(
                                    words: lo..<hi, symbols: sym.value, starts: start.value,
                                    lengths: len.value, counts: cnt.value)
                            }
                        }
                    }
                }
            }
            // Merge the slices in order (word indices stay sorted within each list).
            pairTable = partials[0].table
            pairKey = partials[0].keys
            pairCount = partials[0].counts
            lists = partials[0].lists
            for part in 1..<parts {
                let p = partials[part]
                for j in 0..<p.keys.count {
                    var inserted = false
                    let idx = Int(pairTable.findOrInsert(p.keys[j], inserted: &inserted))
                    if inserted {
                        pairKey.append(p.keys[j])
                        pairCount.append(p.counts[j])
                        lists.append(p.lists[j])
                    } else {
                        pairCount[idx] += p.counts[j]
                        lists[idx].append(contentsOf: p.lists[j])
                    }
                }
            }
        }
        var freeLists: [Int32] = []
        var initialEntries: [MergeEntry] = []
        initialEntries.reserveCapacity(pairKey.count)
        for idx in 0..<pairKey.count {
            if pairCount[idx] > 0 {
                initialEntries.append(MergeEntry(count: pairCount[idx], key: pairKey[idx], list: Int32(idx), pair: Int32(idx)))
            } else {
                lists[idx] = []
                freeLists.append(Int32(idx))
            }
        }
        var heap = MergeHeap(initialEntries)
        initialEntries = []
        var stepList = [Int32](repeating: -1, count: pairKey.count)
        var touched: [Int32] = []

        // 5. Merges.
        let minFrequency = Int64(max(0, options.minFrequency))
        let maxLength = options.maxTokenLength ?? Int.max
        var merges: [(Int32, Int32)] = []
        let buffers = (0..<threads).map { _ in PairChangeBuffer() }
        let parallelThreshold = options.parallelMergeThreshold

        while tokens.count < vocabSize {
            guard var top = heap.pop() else { break }
            let current = pairCount[Int(top.pair)]
            if top.count != current {
                top.count = current
                heap.push(top)
                continue
            }
            if top.count < 1 || minFrequency > top.count { break }

            let a = Int32(truncatingIfNeeded: top.key >> 32)
            let b = Int32(truncatingIfNeeded: top.key & 0xFFFF_FFFF)
            var newToken = tokens[Int(a)]
            let partB = tokens[Int(b)]
            if let prefix, partB.starts(with: prefix) {
                newToken.append(contentsOf: partB[prefix.count...])
            } else {
                newToken.append(contentsOf: partB)
            }
            let newID = intern(newToken, chars: tokenChars[Int(a)] + tokenChars[Int(b)])
            merges.append((a, b))

            // Merge the pair in every word of this entry's list (taken out of the pool while
            // in use, put back empty afterwards).
            var positions: [Int32] = []
            swap(&positions, &lists[Int(top.list)])
            let parts = positions.isEmpty ? 0 : positions.count >= parallelThreshold ? threads : 1
            for part in 0..<threads where part >= parts { buffers[part].items.removeAll(keepingCapacity: true) }
            if parts > 0 { symbols.withUnsafeMutableBufferPointer { symBuf in
                wordStart.withUnsafeMutableBufferPointer { startBuf in
                    wordLen.withUnsafeMutableBufferPointer { lenBuf in
                        tokenChars.withUnsafeMutableBufferPointer { charsBuf in
                            positions.withUnsafeMutableBufferPointer { posBuf in
                                let sym = SharedPointer(symBuf.baseAddress!)
                                let len = SharedPointer(lenBuf.baseAddress!)
                                let starts = SharedPointer(startBuf.baseAddress!)
                                let chars = SharedPointer(charsBuf.baseAddress!)
                                let pos = SharedPointer(posBuf.baseAddress!)
                                let n = posBuf.count
                                parallelFor(parts) { part in
                                    let lo = n * part / parts, hi = n * (part + 1) / parts
                                    let out = buffers[part]
                                    var items = out.items
                                    out.items = []
                                    items.removeAll(keepingCapacity: true)
                                    for k in lo..<hi {
                                        let w = Int(pos.value[k])
                                        mergeWord(
                                            symbols: sym.value + Int(starts.value[w]), length: &len.value[w],
                                            word: Int32(w), a: a, b: b, replacement: newID,
                                            tokenChars: chars.value, maxLength: maxLength, into: &items)
                                    }
                                    out.items = items
                                }
                            }
                        }
                    }
                }
            } }
            if positions.capacity <= 4096 {
                positions.removeAll(keepingCapacity: true)
                swap(&positions, &lists[Int(top.list)])
            }
            freeLists.append(top.list)

            // Apply the changes in word order (the same for any thread count).
            for part in 0..<parts {
                for change in buffers[part].items {
                    var inserted = false
                    let idx = Int(pairTable.findOrInsert(change.key, inserted: &inserted))
                    if inserted {
                        pairKey.append(change.key)
                        pairCount.append(0)
                        stepList.append(-1)
                    }
                    pairCount[idx] += Int64(change.delta) * wordCount[Int(change.word)]
                    if change.delta > 0 {
                        var list = stepList[idx]
                        if list < 0 {
                            if let free = freeLists.popLast() {
                                list = free
                            } else {
                                list = Int32(lists.count)
                                lists.append([])
                            }
                            stepList[idx] = list
                            touched.append(Int32(idx))
                        }
                        if lists[Int(list)].last != change.word {
                            lists[Int(list)].append(change.word)
                        }
                    }
                }
            }
            for idx32 in touched {
                let idx = Int(idx32)
                let list = stepList[idx]
                let count = pairCount[idx]
                if count > 0 {
                    heap.push(MergeEntry(count: count, key: pairKey[idx], list: list, pair: idx32))
                } else {
                    releaseList(&lists, list, &freeLists)
                }
                stepList[idx] = -1
            }
            touched.removeAll(keepingCapacity: true)

            options.progress?(tokens.count, vocabSize)
        }


        // HuggingFace keeps a pair's last rank when it was merged more than once.
        var lastRank: [UInt64: Int] = [:]
        for (rank, (a, b)) in merges.enumerated() { lastRank[packPair(a, b)] = rank }
        var mergeStrings: [(String, String)] = []
        mergeStrings.reserveCapacity(lastRank.count)
        for (rank, (a, b)) in merges.enumerated() where lastRank[packPair(a, b)] == rank {
            mergeStrings.append((string(Int(a)), string(Int(b))))
        }
        var seenSpecial = Set<[UInt8]>()
        let specials = options.specialTokens.filter { seenSpecial.insert(Array($0.utf8)).inserted }
        return TrainingResult(
            vocab: tokens.indices.map { string($0) },
            merges: mergeStrings,
            specialTokens: specials,
            continuingSubwordPrefix: options.continuingSubwordPrefix,
            endOfWordSuffix: options.endOfWordSuffix)
    }

    private func string(_ id: Int) -> String {
        String(decoding: tokens[id], as: UTF8.self)
    }

    /// HuggingFace's `tokenize_words` for one character: -1 when it is not in the alphabet,
    /// else the id of the character with the prefix/suffix its position calls for.
    private mutating func symbolID(_ v: UInt32, variant: Int) -> Int32 {
        let plain = Array(String(Unicode.Scalar(v)!).utf8)
        guard tokenIDs[plain] != nil else { return -1 }
        var s: [UInt8] = []
        if variant >= 2, let prefix { s.append(contentsOf: prefix) }
        s.append(contentsOf: plain)
        if variant & 1 == 1, let suffix { s.append(contentsOf: suffix) }
        return intern(s, chars: 1)
    }
}

@inline(__always)
private func releaseList(_ lists: inout [[Int32]], _ list: Int32, _ freeLists: inout [Int32]) {
    if lists[Int(list)].capacity > 4096 {
        lists[Int(list)] = []
    } else {
        lists[Int(list)].removeAll(keepingCapacity: true)
    }
    freeLists.append(list)
}

/// Merges every occurrence of `a b` in one word (HuggingFace's `Word::merge`), compacting the
/// word in place and reporting the pair-count changes.
@inline(__always)
func mergeWord(
    symbols: UnsafeMutablePointer<Int32>, length: inout Int32, word: Int32,
    a: Int32, b: Int32, replacement: Int32,
    tokenChars: UnsafePointer<Int32>, maxLength: Int,
    into changes: inout [PairChange]
) {
    let n = Int(length)
    var r = 0, w = 0
    let checkLength = maxLength != Int.max
    let newChars = Int(tokenChars[Int(a)]) + Int(tokenChars[Int(b)])
    while r < n {
        let s = symbols[r]
        if s == a && r + 1 < n && symbols[r + 1] == b {
            if w > 0 {
                let prev = symbols[w - 1]
                changes.append(PairChange(key: packPair(prev, a), word: word, delta: -1))
                if !checkLength || Int(tokenChars[Int(prev)]) + newChars < maxLength {
                    changes.append(PairChange(key: packPair(prev, replacement), word: word, delta: 1))
                }
            }
            symbols[w] = replacement
            if r + 2 < n {
                let next = symbols[r + 2]
                changes.append(PairChange(key: packPair(b, next), word: word, delta: -1))
                if !checkLength || Int(tokenChars[Int(next)]) + newChars < maxLength {
                    changes.append(PairChange(key: packPair(replacement, next), word: word, delta: 1))
                }
            }
            w += 1
            r += 2
        } else {
            symbols[w] = s
            w += 1
            r += 1
        }
    }
    length = Int32(w)
}

/// Pair counts over one slice of the words.
final class PartialPairCounts: @unchecked Sendable {
    var table = PairIndexTable(minimumCapacity: 1 << 15)
    var keys: [UInt64] = []
    var counts: [Int64] = []
    var lists: [[Int32]] = []

    func count(
        words: Range<Int>, symbols: UnsafeMutablePointer<Int32>, starts: UnsafeMutablePointer<Int32>,
        lengths: UnsafeMutablePointer<Int32>, counts wordCounts: UnsafeMutablePointer<Int64>
    ) {
        for w in words {
            let base = symbols + Int(starts[w])
            let n = Int(lengths[w])
            if n < 2 { continue }
            let c = wordCounts[w]
            for i in 0..<(n - 1) {
                let key = packPair(base[i], base[i + 1])
                var inserted = false
                let idx = Int(table.findOrInsert(key, inserted: &inserted))
                if inserted {
                    keys.append(key)
                    counts.append(0)
                    lists.append([])
                }
                counts[idx] += c
                if lists[idx].last != Int32(w) { lists[idx].append(Int32(w)) }
            }
        }
    }
}
