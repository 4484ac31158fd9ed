import GraftSupport
import Foundation

/// A token matched in the raw text before normalization (HuggingFace "added tokens").
public struct AddedToken: Sendable, Equatable {
    public var content: String
    public var id: Int32
    public var special: Bool
    /// Whether the match happens on normalized text (Graft matches on the raw text either way).
    public var normalized: Bool
    public var singleWord: Bool
    public var lstrip: Bool
    public var rstrip: Bool

    public init(content: String, id: Int32, special: Bool = true, normalized: Bool = false,
                singleWord: Bool = false, lstrip: Bool = false, rstrip: Bool = false) {
        self.content = content; self.id = id; self.special = special; self.normalized = normalized
        self.singleWord = singleWord; self.lstrip = lstrip; self.rstrip = rstrip
    }
}

/// The model at the heart of a tokenizer.
public enum TokenizerModel: Sendable {
    case wordPiece(WordPiece)
    case bpe(BPE)

    public var vocab: Vocabulary {
        switch self {
        case .wordPiece(let m): return m.vocab
        case .bpe(let m): return m.vocab
        }
    }
}

/// How encodings are truncated.
public struct Truncation: Sendable, Equatable {
    public enum Strategy: String, Sendable, Equatable { case longestFirst, onlyFirst, onlySecond }
    public var maxLength: Int
    public var strategy: Strategy
    /// Overlap, in tokens, between consecutive overflowing windows.
    public var stride: Int
    public var fromLeft: Bool
    public init(maxLength: Int, strategy: Strategy = .longestFirst, stride: Int = 0, fromLeft: Bool = false) {
        self.maxLength = maxLength; self.strategy = strategy; self.stride = stride; self.fromLeft = fromLeft
    }
}

/// How encodings are padded.
public struct Padding: Sendable, Equatable {
    public enum Length: Sendable, Equatable {
        /// Pad a batch to its longest member.
        case longest
        /// Pad to exactly this length.
        case fixed(Int)
    }
    public var length: Length
    public var multipleOf: Int?
    public var padId: Int32
    public var padTypeId: Int32
    public var padToken: String
    public var left: Bool
    public init(length: Length = .longest, multipleOf: Int? = nil, padId: Int32 = 0, padTypeId: Int32 = 0,
                padToken: String = "[PAD]", left: Bool = false) {
        self.length = length; self.multipleOf = multipleOf; self.padId = padId; self.padTypeId = padTypeId
        self.padToken = padToken; self.left = left
    }
}

/// A complete tokenization pipeline: added tokens → normalizer → pre-tokenizer → model →
/// post-processor, with truncation, padding and decoding.
public struct Tokenizer: Sendable {
    public var normalizer: Normalizer?
    public var preTokenizer: PreTokenizer?
    public var model: TokenizerModel
    public var postProcessor: PostProcessor?
    public var decoder: Decoder?
    public var addedTokens: [AddedToken] { didSet { addedPatterns = addedTokens.map { UTF8Util.scalars($0.content) } } }
    /// The scalars of each added token, in ``addedTokens``' order (matched in every encode).
    private var addedPatterns: [[UInt32]]
    public var truncation: Truncation?
    public var padding: Padding?

    public init(normalizer: Normalizer?, preTokenizer: PreTokenizer?, model: TokenizerModel,
                postProcessor: PostProcessor?, decoder: Decoder?, addedTokens: [AddedToken] = [],
                truncation: Truncation? = nil, padding: Padding? = nil) {
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.model = model
        self.postProcessor = postProcessor
        self.decoder = decoder
        let sorted = addedTokens.sorted { $0.content.utf8.count > $1.content.utf8.count }
        self.addedTokens = sorted
        addedPatterns = sorted.map { UTF8Util.scalars($0.content) }
        self.truncation = truncation
        self.padding = padding
    }

    public var vocab: Vocabulary { model.vocab }
    /// Vocabulary size including added tokens beyond the model's vocabulary.
    public var vocabSize: Int { max(vocab.count, (addedTokens.map { Int($0.id) }.max() ?? -1) + 1) }

    /// The id of a token (added tokens first, then the model's vocabulary).
    public func id(_ token: String) -> Int? {
        if let t = addedTokens.first(where: { $0.content.unicodeScalars.elementsEqual(token.unicodeScalars) }) { return Int(t.id) }
        return vocab.id(token)
    }

    /// The string of an id.
    public func token(_ id: Int) -> String? {
        if let t = addedTokens.first(where: { Int($0.id) == id }) { return t.content }
        return vocab.token(id)
    }

    // MARK: Encoding

    /// Encodes `text` (and optionally a second sequence `pair`), applying truncation and
    /// post-processing, and padding when it is set to a fixed length.
    public func encode(_ text: String, pair: String? = nil, addSpecialTokens: Bool = true) throws -> Encoding {
        var state = WorkState()
        return try encode(text, pair: pair, addSpecialTokens: addSpecialTokens, state: &state)
    }

    /// ``encode(_:pair:addSpecialTokens:)`` with the caller's scratch (one per thread of a batch).
    func encode(_ text: String, pair: String?, addSpecialTokens: Bool, state: inout WorkState) throws -> Encoding {
        var a = encodeSequence(text, state: &state)
        var b = pair.map { s -> Encoding in
            var e = encodeSequence(s, state: &state)
            e.setSequenceId(1)
            return e
        }
        if let t = truncation {
            let added = addSpecialTokens ? (postProcessor?.addedTokens(pair: b != nil) ?? 0) : 0
            try Tokenizer.truncate(&a, &b, t, added: added)
        }
        var out = merge(a, b, addSpecialTokens: addSpecialTokens)
        if let p = padding, case .fixed = p.length { Tokenizer.pad(&out, p, longest: out.count) }
        return out
    }

    /// Adds the specials around `a` (and `b`) and combines their overflowing windows the way
    /// HuggingFace's `Encoding::merge_with` does: each window of A with B (which nests B's
    /// windows under it) and with each window of B, then A with each window of B.
    func merge(_ a: Encoding, _ b: Encoding?, addSpecialTokens: Bool) -> Encoding {
        var x = a, y = b
        x.overflowing = []
        y?.overflowing = []
        var out = postProcessor.map { $0.process(x, y, addSpecialTokens: addSpecialTokens) }
            ?? PostProcessor.byteLevel(trimOffsets: false).process(x, y, addSpecialTokens: false)
        var windows: [Encoding] = []
        let bWindows = b?.overflowing ?? []
        for ao in a.overflowing {
            windows.append(merge(ao, b, addSpecialTokens: addSpecialTokens))
            for bo in bWindows { windows.append(merge(ao, bo, addSpecialTokens: addSpecialTokens)) }
        }
        for bo in bWindows { windows.append(merge(a, bo, addSpecialTokens: addSpecialTokens)) }
        out.overflowing = windows
        return out
    }

    /// Encodes many inputs over `threads` threads (default: all cores), then pads the batch if
    /// padding is set.
    public func encodeBatch(_ texts: [String], addSpecialTokens: Bool = true, threads: Int? = nil) throws -> [Encoding] {
        try encodeBatch(pairs: texts.map { ($0, nil) }, addSpecialTokens: addSpecialTokens, threads: threads)
    }

    /// Encodes many single inputs or pairs over `threads` threads, then pads the batch if padding is set.
    public func encodeBatch(pairs inputs: [(String, String?)], addSpecialTokens: Bool = true, threads: Int? = nil) throws -> [Encoding] {
        let n = inputs.count
        var results = [Encoding?](repeating: nil, count: n)
        let workers = max(1, min(threads ?? ProcessInfo.processInfo.activeProcessorCount, n))
        let failures = ErrorSlots(count: workers)
        // Chunks of ~1/16 of a worker's share, taken in order as workers come free; an error stops
        // the handing out, and the earliest error in the batch is the one thrown.
        let queue = ChunkQueue(count: n, chunk: min(256, max(1, n / (workers * 16))))
        results.withUnsafeMutableBufferPointer { buf in
            let out = SharedPointer(buf.baseAddress!)
            parallelFor(workers) { w in
                // Each worker keeps its own scratch and word cache: nothing shared is written, and
                // no reference count is touched by two threads in the inner loops.
                var state = WorkState()
                state.reusesSequence = true
                if case .bpe(let bpe) = model { state.bpeCache = bpe.takeWorkerCache() }
                defer { if case .bpe(let bpe) = model, let cache = state.bpeCache { bpe.returnWorkerCache(cache) } }
                while let chunk = queue.take() {
                    for i in chunk {
                        do {
                            out.value[i] = try encode(inputs[i].0, pair: inputs[i].1, addSpecialTokens: addSpecialTokens, state: &state)
                        } catch {
                            failures.set(w, error, order: i)
                            queue.stop()
                            return
                        }
                    }
                }
            }
        }
        if let e = failures.first { throw e }
        var encodings = results.map { $0! }
        if let p = padding {
            let longest = encodings.map(\.count).max() ?? 0
            for i in 0..<encodings.count { Tokenizer.pad(&encodings[i], p, longest: longest) }
        }
        return encodings
    }

    /// The words the model sees for `text`: normalized, pre-tokenized, and for byte-level
    /// pipelines mapped to the printable byte alphabet (for inspection and training).
    public func preTokenize(_ text: String) -> [String] {
        Tokenizer.words(text, normalizer: normalizer, preTokenizer: preTokenizer)
    }

    /// The words of `text` under a normalizer and pre-tokenizer, without a model.
    public static func words(_ text: String, normalizer: Normalizer?, preTokenizer: PreTokenizer?) -> [String] {
        var words: [String] = []
        let scalars = UTF8Util.scalars(text)
        var ns = NormalizedString(scalars: scalars[...], base: 0)
        normalizer?.normalize(&ns)
        if preTokenizer?.addsPrefixSpace == true, let first = ns.scalars.first, first != 0x20 { ns.flatMapFirst(prefix: 0x20) }
        var ranges: [Range<Int>] = []
        ns.scalars.withUnsafeBufferPointer { buf in
            if let p = preTokenizer { p.split(buf, into: &ranges) } else if buf.count > 0 { ranges.append(0..<buf.count) }
        }
        let byteLevel = preTokenizer?.isByteLevel ?? false
        var bytes = [UInt8]()
        for r in ranges {
            let piece = ns.scalars[r]
            if byteLevel {
                bytes.removeAll(keepingCapacity: true)
                for c in piece { ByteLevel.appendMapped(c, to: &bytes) }
                words.append(String(decoding: bytes, as: UTF8.self))
            } else {
                words.append(UTF8Util.string(piece))
            }
        }
        return words
    }

    /// Encodes one sequence: added-token split, then each segment through the pipeline.
    func encodeSequence(_ text: String, state: inout WorkState) -> Encoding {
        let scalars = UTF8Util.scalars(text)
        // A batch worker's tokens go into its scratch encoding (whose arrays keep their capacity
        // from one document to the next) and an exact-size copy is returned; a single `encode`
        // returns the encoding it built.
        var enc = Encoding()
        if state.reusesSequence { swap(&enc, &state.sequence) } else { enc.ids.reserveCapacity(scalars.count / 3) }
        var wordIndex = 0
        var segmentStart = 0
        var i = 0
        let n = scalars.count
        let vocab = model.vocab
        func flush(_ end: Int) {
            if end > segmentStart {
                encodeSegment(scalars, segmentStart..<end, into: &enc, wordIndex: &wordIndex, vocab: vocab, state: &state)
            }
        }
        if !addedTokens.isEmpty {
            let patterns = addedPatterns
            while i < n {
                var matched: Int? = nil
                for (k, p) in patterns.enumerated() where !p.isEmpty && p[0] == scalars[i] && i + p.count <= n {
                    if scalars[i..<(i + p.count)].elementsEqual(p) { matched = k; break }  // longest first
                }
                if let k = matched {
                    let t = addedTokens[k]
                    var start = i, end = i + patterns[k].count
                    if t.singleWord {
                        let beforeOK = start == 0 || !PreTokenizer.isWordChar(scalars[start - 1])
                        let afterOK = end == n || !PreTokenizer.isWordChar(scalars[end])
                        if !(beforeOK && afterOK) { i += 1; continue }
                    }
                    if t.lstrip { while start > segmentStart && UnicodeProps.isWhitespace(scalars[start - 1]) { start -= 1 } }
                    if t.rstrip { while end < n && UnicodeProps.isWhitespace(scalars[end]) { end += 1 } }
                    flush(start)
                    enc.append(id: t.id, token: t.content, offset: start..<end, word: wordIndex, type: 0, special: false, sequence: 0)
                    wordIndex += 1
                    i = end
                    segmentStart = end
                    continue
                }
                i += 1
            }
        }
        flush(n)
        guard state.reusesSequence else { return enc }
        let out = enc.compacted()
        enc.removeAll(keepingCapacity: true)
        swap(&enc, &state.sequence)
        return out
    }

    /// Scratch buffers reused across the words of one call (or of one batch worker's inputs).
    struct WorkState {
        var words: [Range<Int>] = []
        var modelTokens: [ModelToken] = []
        var bytes: [UInt8] = []
        var charOfByte: [Int32] = []
        /// A batch worker's sequence being encoded (emptied, capacity kept, after each one).
        var sequence = Encoding()
        /// Whether ``sequence`` is used (batch workers: they keep exact-size copies of it).
        var reusesSequence = false
        /// A batch worker's own BPE word cache (nil: a single encode uses the model's shared one).
        var bpeCache: WordCache?
    }

    private func encodeSegment(_ scalars: [UInt32], _ range: Range<Int>, into enc: inout Encoding,
                               wordIndex: inout Int, vocab: Vocabulary, state: inout WorkState) {
        var ns = NormalizedString(scalars: scalars[range], base: range.lowerBound)
        normalizer?.normalize(&ns)
        if ns.count == 0 { return }
        let byteLevel = preTokenizer?.isByteLevel ?? false
        if preTokenizer?.addsPrefixSpace == true, range.lowerBound == 0, ns.scalars.first != 0x20 {
            ns.flatMapFirst(prefix: 0x20)
        }
        state.words.removeAll(keepingCapacity: true)
        ns.scalars.withUnsafeBufferPointer { buf in
            if let p = preTokenizer { p.split(buf, into: &state.words) } else { state.words.append(0..<buf.count) }
        }
        ns.scalars.withUnsafeBufferPointer { buf in
            // The model is taken out of its enum once per segment, not once per word (a copy of
            // WordPiece retains its tables: per word, two threads' atomics fight over them).
            func emit(_ w: Range<Int>) {
                for t in state.modelTokens {
                    let a = w.lowerBound + Int(t.start), b = w.lowerBound + Int(t.end)
                    let offset = ns.originalRange(a, b) ?? 0..<0
                    enc.append(id: t.id, token: vocab.tokens[Int(t.id)], offset: offset, word: wordIndex,
                               type: 0, special: false, sequence: 0)
                }
                wordIndex += 1
            }
            switch model {
            case .wordPiece(let wp):
                for w in state.words {
                    state.modelTokens.removeAll(keepingCapacity: true)
                    wp.tokenize(UnsafeBufferPointer(rebasing: buf[w]), into: &state.modelTokens, scratch: &state.bytes,
                                charOfByte: &state.charOfByte)
                    emit(w)
                }
            case .bpe(let bpe):
                for w in state.words {
                    state.modelTokens.removeAll(keepingCapacity: true)
                    let word = UnsafeBufferPointer(rebasing: buf[w])
                    if byteLevel {
                        state.bytes.removeAll(keepingCapacity: true)
                        state.charOfByte.removeAll(keepingCapacity: true)
                        for (k, c) in word.enumerated() {
                            let before = state.bytes.count
                            UTF8Util.append(c, to: &state.bytes)
                            for _ in before..<state.bytes.count { state.charOfByte.append(Int32(k)) }
                        }
                        state.charOfByte.append(Int32(word.count))
                        bpe.tokenizeBytes(state.bytes, charOfByte: state.charOfByte, into: &state.modelTokens, cache: &state.bpeCache)
                    } else {
                        bpe.tokenizeScalars(word, into: &state.modelTokens)
                    }
                    emit(w)
                }
            }
        }
    }

    static func truncate(_ a: inout Encoding, _ b: inout Encoding?, _ t: Truncation, added: Int) throws {
        let total = a.count + (b?.count ?? 0)
        guard total + added > t.maxLength else { return }
        guard t.maxLength >= added else {
            throw TokenizerError.invalidArgument("maximum length \(t.maxLength) is shorter than the \(added) special tokens")
        }
        let budget = t.maxLength - added
        if var second = b {
            switch t.strategy {
            case .longestFirst:
                var n1 = a.count, n2 = second.count
                let swap = n1 > n2
                if swap { Swift.swap(&n1, &n2) }
                n2 = n1 > budget ? n1 : max(n1, budget - n1)
                if n1 + n2 > budget { n1 = budget / 2; n2 = n1 + budget % 2 }
                if swap { Swift.swap(&n1, &n2) }
                try a.truncate(maxLength: n1, stride: t.stride, fromLeft: t.fromLeft)
                try second.truncate(maxLength: n2, stride: t.stride, fromLeft: t.fromLeft)
            case .onlyFirst:
                guard budget > second.count else {
                    throw TokenizerError.invalidArgument("the second sequence alone (\(second.count) tokens) exceeds the maximum length")
                }
                try a.truncate(maxLength: budget - second.count, stride: t.stride, fromLeft: t.fromLeft)
            case .onlySecond:
                guard budget > a.count else {
                    throw TokenizerError.invalidArgument("the first sequence alone (\(a.count) tokens) exceeds the maximum length")
                }
                try second.truncate(maxLength: budget - a.count, stride: t.stride, fromLeft: t.fromLeft)
            }
            b = second
        } else {
            if t.strategy == .onlySecond {
                throw TokenizerError.invalidArgument("only-second truncation needs a pair of sequences")
            }
            try a.truncate(maxLength: budget, stride: t.stride, fromLeft: t.fromLeft)
        }
    }

    static func pad(_ e: inout Encoding, _ p: Padding, longest: Int) {
        var target: Int
        switch p.length {
        case .longest: target = longest
        case .fixed(let n): target = n
        }
        if let m = p.multipleOf, m > 0, target % m != 0 { target += m - target % m }
        e.pad(to: target, id: p.padId, typeId: p.padTypeId, token: p.padToken, left: p.left)
    }

    // MARK: Decoding

    /// Decodes ids to text, skipping special tokens unless asked not to.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = true) -> String {
        let specials = Set(addedTokens.filter(\.special).map(\.id))
        var tokens: [String] = []
        for id in ids {
            if skipSpecialTokens && specials.contains(id) { continue }
            if let t = token(Int(id)) { tokens.append(t) }
        }
        return (decoder ?? .plain).decode(tokens)
    }
}

extension NormalizedString {
    /// Inserts a scalar at the front, aligned with the first scalar (byte-level prefix space).
    mutating func flatMapFirst(prefix: UInt32) {
        guard !scalars.isEmpty else { return }
        scalars.insert(prefix, at: 0)
        starts.insert(starts[0], at: 0)
        ends.insert(starts[0], at: 0)
    }
}
