import Foundation
import GraftModels
import GraftTokenizers

/// How long inputs are cut into windows: at most `maxLength` tokens per window (specials
/// included), consecutive windows overlapping by `stride` tokens (HuggingFace's
/// `max_length` / `stride` with `return_overflowing_tokens=True`).
public struct WindowOptions: Sendable, Equatable, Codable {
    public var maxLength: Int
    public var stride: Int

    public init(maxLength: Int, stride: Int = 0) {
        self.maxLength = maxLength
        self.stride = stride
    }

    /// Throws unless a window of ``maxLength`` tokens fits `config`'s positions (naming `spec`,
    /// the file that set it): a longer window would fail only on the first long text.
    public func check(fitting config: ModelConfig, spec: String) throws {
        guard maxLength <= config.maxPositions else {
            throw TaskError.invalidArgument("\(spec): model.max_length \(maxLength) is more than the model's \(config.maxPositions) positions (max_position_embeddings)")
        }
    }
}

/// The loss label of tokens that have none (continuation subwords, specials, padding), as
/// PyTorch's `CrossEntropyLoss(ignore_index=-100)`.
public let ignoreIndex = -100

/// One model input window cut from one example.
///
/// All arrays are `[T]` (no padding: batching pads). `offsets` are Unicode-scalar ranges into the
/// example's original text (for QA pairs: into the question for `sequenceIds == 0`, into the
/// context for `1`); specials have `0..<0`.
public struct Window: Sendable, Equatable {
    /// Index of the example this window came from.
    public var example: Int
    /// Index of this window among the example's windows.
    public var index: Int
    public var inputIds: [Int32]
    public var typeIds: [Int32]
    public var offsets: [Range<Int>]
    public var specialTokensMask: [Int32]
    public var sequenceIds: [Int?]
    /// The tokenizer's pre-tokenized word of each token (global to the example), nil for specials.
    public var wordIds: [Int?]

    public var count: Int { inputIds.count }

    init(example: Int, index: Int, encoding e: Encoding) {
        self.example = example
        self.index = index
        inputIds = e.ids
        typeIds = e.typeIds
        offsets = e.offsets
        specialTokensMask = e.specialTokensMask
        sequenceIds = e.sequenceIds.map { $0.map(Int.init) }
        wordIds = e.wordIds.map { $0.map(Int.init) }
    }

    /// Positions of the tokens of sequence `sequence` (content, not specials).
    public func positions(ofSequence sequence: Int) -> [Int] {
        (0..<count).filter { sequenceIds[$0] == sequence && specialTokensMask[$0] == 0 }
    }
}

/// Cutting examples into windows through the tokenizer's own truncation with overflow.
public enum Windowing {
    /// The windows of `text` (one sequence), in order.
    public static func windows(of text: String, example: Int, tokenizer: Tokenizer, options: WindowOptions) throws -> [Window] {
        var t = tokenizer
        t.padding = nil
        t.truncation = Truncation(maxLength: options.maxLength, strategy: .longestFirst, stride: options.stride)
        let e = try t.encode(text)
        return ([e] + e.overflowing).enumerated().map { Window(example: example, index: $0.offset, encoding: $0.element) }
    }

    /// The windows of a question + context pair: the question whole in each, the context cut
    /// (`only_second` truncation) into windows overlapping by `options.stride` tokens.
    public static func windows(question: String, context: String, example: Int, tokenizer: Tokenizer,
                               options: WindowOptions) throws -> [Window] {
        var t = tokenizer
        t.padding = nil
        t.truncation = Truncation(maxLength: options.maxLength, strategy: .onlySecond, stride: options.stride)
        let e: Encoding
        do {
            e = try t.encode(question, pair: context)
        } catch {
            throw TaskError.invalidArgument("question too long for max_length \(options.maxLength) with stride \(options.stride): \(error)")
        }
        return ([e] + e.overflowing).enumerated().map { Window(example: example, index: $0.offset, encoding: $0.element) }
    }

    /// The words of an encoded text by the tokenizer's word ids: each word's scalar range (the
    /// union of its tokens' offsets), ordered by word id. Used when there are no gold words
    /// (tagging raw documents).
    public static func tokenizerWords(_ windows: [Window]) -> [Range<Int>] {
        var ranges: [Int: Range<Int>] = [:]
        for w in windows {
            for i in 0..<w.count where w.specialTokensMask[i] == 0 {
                guard let id = w.wordIds[i], !w.offsets[i].isEmpty else { continue }
                let r = w.offsets[i]
                if let old = ranges[id] { ranges[id] = min(old.lowerBound, r.lowerBound)..<max(old.upperBound, r.upperBound) } else { ranges[id] = r }
            }
        }
        return ranges.keys.sorted().map { ranges[$0]! }
    }
}

/// Finds the word a token belongs to, by offsets: a binary search over the words when they
/// are in text order and disjoint (gold CoNLL words and tokenizer words are), else a table
/// of each scalar's first word. Built once per text: the table per window made tagging a
/// long one-line document quadratic (105 KB in 2.1 s, 840 KB in 33 s).
public struct WordLocator: Sendable {
    let words: [Range<Int>]
    /// For words out of order or overlapping: `[textLength]` the first word holding each scalar.
    let owner: [Int32]?

    public init(_ wordOffsets: [Range<Int>]) {
        words = wordOffsets
        var ordered = true
        for i in wordOffsets.indices.dropFirst() where wordOffsets[i - 1].upperBound > wordOffsets[i].lowerBound {
            ordered = false
            break
        }
        if ordered {
            owner = nil
        } else {
            let length = wordOffsets.map(\.upperBound).max() ?? 0
            var o = [Int32](repeating: -1, count: length)
            for (w, r) in wordOffsets.enumerated() { for k in r where o[k] < 0 { o[k] = Int32(w) } }
            owner = o
        }
    }

    /// The word that scalar range `r` overlaps first, if any.
    public func word(overlapping r: Range<Int>) -> Int? {
        if let owner {
            for k in r where k < owner.count && owner[k] >= 0 { return Int(owner[k]) }
            return nil
        }
        // The first word ending after r's start (ends increase with the words' order).
        var lo = 0, hi = words.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if words[mid].upperBound <= r.lowerBound { lo = mid + 1 } else { hi = mid }
        }
        // Skip empty words inside r's start; the first non-empty one starting before r's end.
        while lo < words.count, words[lo].isEmpty, words[lo].lowerBound < r.upperBound { lo += 1 }
        guard lo < words.count, !words[lo].isEmpty, words[lo].lowerBound < r.upperBound else { return nil }
        return lo
    }

    /// For each token, ``word(overlapping:)`` of its offsets; nil for specials.
    public func wordIndices(tokenOffsets: [Range<Int>], special: [Int32]) -> [Int?] {
        tokenOffsets.enumerated().map { i, r in special[i] == 0 && !r.isEmpty ? word(overlapping: r) : nil }
    }
}

/// Merging per-token model outputs of overlapping windows back into one row per word, by
/// character offsets: a word is scored by its first token (the one with the smallest start
/// offset), taken from the window where that token is most central (farthest from either end
/// of the window's content; ties go to the earlier window).
public enum WindowMerge {
    /// - Parameters:
    ///   - windows: the example's windows, in order.
    ///   - wordIndices: for each window, `[T_w]` the word of each token (nil for none), e.g. from
    ///     ``WordLocator/wordIndices(tokenOffsets:special:)``.
    ///   - rows: for each window, `[T_w, L]` scores (row-major).
    ///   - labelCount: `L`.
    ///   - wordCount: `W`.
    /// - Returns: `[W, L]` rows, and for each word the (window, position) it was read from (nil
    ///   for a word with no token, e.g. a word the tokenizer dropped entirely; its row is zeros).
    public static func wordRows(windows: [Window], wordIndices: [[Int?]], rows: [[Float]], labelCount: Int,
                                wordCount: Int) throws -> (rows: [Float], source: [(window: Int, position: Int)?]) {
        guard windows.count == wordIndices.count, windows.count == rows.count else {
            throw TaskError.invalidArgument("\(windows.count) windows, \(wordIndices.count) word maps and \(rows.count) score blocks")
        }
        // The first token of each word: the smallest start offset seen in any window.
        var firstStart = [Int](repeating: Int.max, count: wordCount)
        for (w, window) in windows.enumerated() {
            guard rows[w].count == window.count * labelCount, wordIndices[w].count == window.count else {
                throw TaskError.invalidArgument("window \(w): \(window.count) tokens but \(rows[w].count) scores for \(labelCount) labels")
            }
            for (i, word) in wordIndices[w].enumerated() {
                if let word { firstStart[word] = min(firstStart[word], window.offsets[i].lowerBound) }
            }
        }
        var best = [(window: Int, position: Int, centrality: Int)?](repeating: nil, count: wordCount)
        for (w, window) in windows.enumerated() {
            let content = (0..<window.count).filter { window.specialTokensMask[$0] == 0 }
            guard let lo = content.first, let hi = content.last else { continue }
            var seen = Set<Int>()
            for i in content {
                guard let word = wordIndices[w][i], window.offsets[i].lowerBound == firstStart[word], seen.insert(word).inserted else { continue }
                let c = min(i - lo, hi - i)
                if best[word] == nil || c > best[word]!.centrality { best[word] = (w, i, c) }
            }
        }
        var out = [Float](repeating: 0, count: wordCount * labelCount)
        for (word, b) in best.enumerated() {
            guard let b else { continue }
            for l in 0..<labelCount { out[word * labelCount + l] = rows[b.window][b.position * labelCount + l] }
        }
        return (out, best.map { $0.map { ($0.window, $0.position) } })
    }

    /// Token-level merge: one row per distinct token of the example, in text order, each read
    /// from the window where that token is most central (ties: the earlier window).
    ///
    /// Tokens are identified by their character offsets; tokens with identical offsets (the
    /// byte-level pieces of one character) by their order among those within the window.
    ///
    /// - Parameters:
    ///   - windows: the example's windows.
    ///   - rows: for each window, `[T_w, L]` scores.
    /// - Returns: the tokens' offsets `[N]` and their rows `[N, L]`.
    public static func tokenRows(windows: [Window], rows: [[Float]], labelCount: Int) throws -> (offsets: [Range<Int>], rows: [Float]) {
        guard windows.count == rows.count else { throw TaskError.invalidArgument("\(windows.count) windows but \(rows.count) score blocks") }
        struct Key: Hashable { var lo: Int; var hi: Int; var k: Int }
        var best: [Key: (window: Int, position: Int, centrality: Int)] = [:]
        for (w, window) in windows.enumerated() {
            guard rows[w].count == window.count * labelCount else {
                throw TaskError.invalidArgument("window \(w): \(window.count) tokens but \(rows[w].count) scores for \(labelCount) labels")
            }
            let content = (0..<window.count).filter { window.specialTokensMask[$0] == 0 && !window.offsets[$0].isEmpty }
            guard let first = content.first, let last = content.last else { continue }
            var occurrences: [Range<Int>: Int] = [:]
            for i in content {
                let r = window.offsets[i]
                let k = occurrences[r, default: 0]
                occurrences[r] = k + 1
                let key = Key(lo: r.lowerBound, hi: r.upperBound, k: k)
                let c = min(i - first, last - i)
                if best[key] == nil || c > best[key]!.centrality { best[key] = (w, i, c) }
            }
        }
        let keys = best.keys.sorted { ($0.lo, $0.hi, $0.k) < ($1.lo, $1.hi, $1.k) }
        var out: [Float] = []
        out.reserveCapacity(keys.count * labelCount)
        for key in keys {
            let b = best[key]!
            out += rows[b.window][(b.position * labelCount)..<((b.position + 1) * labelCount)]
        }
        return (keys.map { $0.lo..<$0.hi }, out)
    }
}
