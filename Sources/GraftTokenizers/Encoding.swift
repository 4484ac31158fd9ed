/// The result of encoding one input (or one pair of inputs).
///
/// All arrays have one entry per token. `offsets` are half-open ranges of Unicode scalar indices
/// into the original text of the token's sequence (see `sequenceIds`); special tokens added by
/// the post-processor and padding have `0..<0`.
public struct Encoding: Sendable, Equatable {
    public var ids: [Int32] = []
    public var tokens: [String] = []
    public var offsets: [Range<Int>] = []
    /// Index of the pre-tokenized word each token came from, nil for specials and padding.
    public var wordIds: [Int32?] = []
    public var typeIds: [Int32] = []
    /// 1 for tokens added by the post-processor (and for padding), 0 otherwise.
    public var specialTokensMask: [Int32] = []
    /// 1 for real tokens, 0 for padding.
    public var attentionMask: [Int32] = []
    /// Which input each token came from (0 or 1), nil for specials and padding.
    public var sequenceIds: [UInt8?] = []
    /// Windows cut off by truncation, each a complete encoding of its own.
    public var overflowing: [Encoding] = []

    public init() {}

    public var count: Int { ids.count }

    mutating func append(id: Int32, token: String, offset: Range<Int>, word: Int?, type: Int32, special: Bool, sequence: Int?) {
        ids.append(id)
        tokens.append(token)
        offsets.append(offset)
        wordIds.append(word.map { Int32($0) })
        typeIds.append(type)
        specialTokensMask.append(special ? 1 : 0)
        attentionMask.append(1)
        sequenceIds.append(sequence.map { UInt8($0) })
    }

    mutating func append(contentsOf other: Encoding) {
        ids += other.ids
        tokens += other.tokens
        offsets += other.offsets
        wordIds += other.wordIds
        typeIds += other.typeIds
        specialTokensMask += other.specialTokensMask
        attentionMask += other.attentionMask
        sequenceIds += other.sequenceIds
    }

    /// Empties every array, keeping their storage for the next encoding (a worker's scratch).
    mutating func removeAll(keepingCapacity keep: Bool) {
        ids.removeAll(keepingCapacity: keep); tokens.removeAll(keepingCapacity: keep)
        offsets.removeAll(keepingCapacity: keep); wordIds.removeAll(keepingCapacity: keep)
        typeIds.removeAll(keepingCapacity: keep); specialTokensMask.removeAll(keepingCapacity: keep)
        attentionMask.removeAll(keepingCapacity: keep); sequenceIds.removeAll(keepingCapacity: keep)
        overflowing.removeAll(keepingCapacity: keep)
    }

    /// Room for `n` tokens in every array.
    mutating func reserveCapacity(_ n: Int) {
        ids.reserveCapacity(n); tokens.reserveCapacity(n); offsets.reserveCapacity(n); wordIds.reserveCapacity(n)
        typeIds.reserveCapacity(n); specialTokensMask.reserveCapacity(n); attentionMask.reserveCapacity(n)
        sequenceIds.reserveCapacity(n)
    }

    /// A copy whose arrays are allocated at exactly their length, sharing nothing with `self`.
    ///
    /// An encoding built by appending keeps up to twice its length in spare capacity; a batch of
    /// thousands of documents keeps them all alive, so the batch path fills a reused scratch
    /// encoding and keeps these exact copies (less memory to fault in, no regrowth per document).
    func compacted() -> Encoding {
        var e = Encoding()
        e.ids = exactCopy(ids); e.tokens = exactCopy(tokens); e.offsets = exactCopy(offsets)
        e.wordIds = exactCopy(wordIds); e.typeIds = exactCopy(typeIds)
        e.specialTokensMask = exactCopy(specialTokensMask); e.attentionMask = exactCopy(attentionMask)
        e.sequenceIds = exactCopy(sequenceIds)
        e.overflowing = overflowing.map { $0.compacted() }
        return e
    }

    func slice(_ r: Range<Int>) -> Encoding {
        var e = Encoding()
        e.ids = Array(ids[r]); e.tokens = Array(tokens[r]); e.offsets = Array(offsets[r])
        e.wordIds = Array(wordIds[r]); e.typeIds = Array(typeIds[r])
        e.specialTokensMask = Array(specialTokensMask[r]); e.attentionMask = Array(attentionMask[r])
        e.sequenceIds = Array(sequenceIds[r])
        return e
    }

    /// Sets every type id (used for the second sequence of a pair).
    mutating func setTypeIds(_ t: Int32) {
        for i in 0..<typeIds.count { typeIds[i] = t }
    }

    mutating func setSequenceId(_ s: UInt8) {
        for i in 0..<sequenceIds.count { sequenceIds[i] = s }
    }

    /// Cuts to `maxLength` tokens; the rest becomes `overflowing` windows of `maxLength` tokens
    /// that overlap the previous window by `stride` tokens (HuggingFace semantics).
    mutating func truncate(maxLength: Int, stride: Int, fromLeft: Bool = false) throws {
        let n = count
        if n <= maxLength { return }
        if maxLength == 0 {
            let all = self
            self = Encoding()
            overflowing = [all]
            return
        }
        guard stride < maxLength else {
            throw TokenizerError.invalidArgument("stride (\(stride)) must be smaller than the maximum length (\(maxLength))")
        }
        let step = maxLength - stride
        var parts: [Range<Int>] = []
        var start = 0
        while true {
            let stop = min(start + maxLength, n)
            parts.append(start..<stop)
            if stop == n { break }
            start += step
        }
        if fromLeft {
            parts = parts.map { (n - $0.upperBound)..<(n - $0.lowerBound) }
        }
        let whole = self
        self = whole.slice(parts[0])
        overflowing = parts.dropFirst().map { whole.slice($0) }
    }

    /// Pads to `length` tokens on the right (or left).
    public mutating func pad(to length: Int, id: Int32, typeId: Int32, token: String, left: Bool = false) {
        for i in 0..<overflowing.count { overflowing[i].pad(to: length, id: id, typeId: typeId, token: token, left: left) }
        let missing = length - count
        if missing <= 0 { return }
        var p = Encoding()
        for _ in 0..<missing {
            p.ids.append(id); p.tokens.append(token); p.offsets.append(0..<0); p.wordIds.append(nil)
            p.typeIds.append(typeId); p.specialTokensMask.append(1); p.attentionMask.append(0); p.sequenceIds.append(nil)
        }
        if left {
            p.append(contentsOf: self)
            p.overflowing = overflowing
            self = p
        } else {
            append(contentsOf: p)
        }
    }
}

/// A new array with capacity for exactly `a.count` elements (`Array(a)` would share `a`'s storage).
@inline(__always)
func exactCopy<T>(_ a: [T]) -> [T] {
    if a.isEmpty { return [] }
    return Array(unsafeUninitializedCapacity: a.count) { buffer, initialized in
        a.withUnsafeBufferPointer { source in _ = buffer.initialize(fromContentsOf: source) }
        initialized = a.count
    }
}

/// Converts between Unicode-scalar offsets (what ``Encoding/offsets`` holds, as HuggingFace
/// reports them) and UTF-8 byte offsets of one text.
public struct TextOffsets: Sendable {
    /// `byteOffset[i]` is the UTF-8 offset of scalar `i`; the last entry is the text's byte count.
    public let byteOffsets: [Int]

    public init(_ text: String) {
        var offsets = [Int]()
        offsets.reserveCapacity(text.utf8.count + 1)
        var b = 0
        for u in text.unicodeScalars {
            offsets.append(b)
            b += UTF8Util.width(u.value)
        }
        offsets.append(b)
        byteOffsets = offsets
    }

    /// Number of scalars in the text.
    public var scalarCount: Int { byteOffsets.count - 1 }

    /// The UTF-8 byte range of a scalar range (clamped to the text).
    public func byteRange(_ scalars: Range<Int>) -> Range<Int> {
        let lo = min(max(scalars.lowerBound, 0), scalarCount), hi = min(max(scalars.upperBound, lo), scalarCount)
        return byteOffsets[lo]..<byteOffsets[hi]
    }

    /// The scalar range of a UTF-8 byte range, or nil when a bound falls inside a scalar.
    public func scalarRange(_ bytes: Range<Int>) -> Range<Int>? {
        guard let lo = index(ofByte: bytes.lowerBound), let hi = index(ofByte: bytes.upperBound) else { return nil }
        return lo..<hi
    }

    private func index(ofByte b: Int) -> Int? {
        var lo = 0, hi = byteOffsets.count - 1
        while lo <= hi {
            let mid = (lo + hi) / 2
            if byteOffsets[mid] == b { return mid }
            if byteOffsets[mid] < b { lo = mid + 1 } else { hi = mid - 1 }
        }
        return nil
    }
}

extension Encoding {
    /// The token offsets as UTF-8 byte ranges of `text` (the string this encoding came from;
    /// for a pair, pass each token's own sequence via ``sequenceIds``).
    public func byteOffsets(in text: String) -> [Range<Int>] {
        let conversion = TextOffsets(text)
        return offsets.map { conversion.byteRange($0) }
    }
}
