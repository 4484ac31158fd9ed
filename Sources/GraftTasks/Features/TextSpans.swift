import Foundation

/// A text's Unicode scalars with its grapheme-cluster boundaries, for turning token offsets into
/// the spans a user sees: no whitespace at either end (byte-level tokens carry their leading
/// space) and never half a user-perceived character (a normalizer that strips accents leaves a
/// token's offsets short of the combining marks that followed it: "Jose\u{301}" must not come
/// back as "Jose").
public struct TextSpans: Sendable {
    public let scalars: [Unicode.Scalar]
    /// `[n + 1]`: whether a grapheme cluster starts at each scalar index (and `true` at `n`).
    let boundary: [Bool]

    public init(_ text: String) {
        scalars = Array(text.unicodeScalars)
        var b = [Bool](repeating: false, count: scalars.count + 1)
        var k = 0
        for character in text {
            b[k] = true
            k += character.unicodeScalars.count
        }
        b[scalars.count] = true
        boundary = b
    }

    /// `range` (clamped to the text) with whitespace trimmed from both ends, then widened to
    /// whole grapheme clusters, but not below `floor` (the end of the span before); nil when
    /// nothing but whitespace is left.
    public func snapped(_ range: Range<Int>, floor: Int = 0) -> Range<Int>? {
        let n = scalars.count
        var lo = min(max(range.lowerBound, 0), n), hi = min(max(range.upperBound, lo), n)
        while lo < hi, scalars[lo].properties.isWhitespace { lo += 1 }
        while hi > lo, scalars[hi - 1].properties.isWhitespace { hi -= 1 }
        guard lo < hi else { return nil }
        let lowest = max(0, min(floor, lo))
        // (Not back onto whitespace: a space and the mark after it are one cluster.)
        while lo > lowest, !boundary[lo], !scalars[lo - 1].properties.isWhitespace { lo -= 1 }
        while hi < n, !boundary[hi] { hi += 1 }
        return lo..<hi
    }

    /// Word spans from tokenizer word ranges in text order: each ``snapped(_:floor:)``
    /// (never reaching back into the word before), the ones that were only whitespace dropped,
    /// and a word that starts inside a character joined to the word it continues (byte-level
    /// pre-tokenizers split "London\u{301}" into "London" and the mark).
    public func words(_ ranges: [Range<Int>]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        out.reserveCapacity(ranges.count)
        for r in ranges {
            let floor = out.last?.upperBound ?? 0
            guard let s = snapped(r, floor: floor) else { continue }
            if let last = out.last, s.lowerBound < last.upperBound || (s.lowerBound == last.upperBound && !boundary[s.lowerBound]) {
                out[out.count - 1] = last.lowerBound..<max(last.upperBound, s.upperBound)
            } else {
                out.append(max(s.lowerBound, floor)..<s.upperBound)
            }
        }
        return out
    }
}
