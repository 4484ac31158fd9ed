/// Options of BERT's normalizer (HuggingFace `BertNormalizer`).
public struct BertNormalizerOptions: Sendable, Equatable, Codable {
    /// Drop control/format/private-use characters, NUL and U+FFFD; map whitespace to a space.
    public var cleanText: Bool
    /// Surround CJK ideographs with spaces so each becomes its own word.
    public var handleChineseChars: Bool
    /// Strip accents (NFD, then drop Mn); `nil` means "when lowercasing", as HF does.
    public var stripAccents: Bool?
    /// Lowercase every scalar (full mapping, no final-sigma rule).
    public var lowercase: Bool

    public init(cleanText: Bool = true, handleChineseChars: Bool = true, stripAccents: Bool? = nil, lowercase: Bool = true) {
        self.cleanText = cleanText
        self.handleChineseChars = handleChineseChars
        self.stripAccents = stripAccents
        self.lowercase = lowercase
    }
}

/// A normalization step. Every case keeps the alignment of each normalized scalar to the
/// original text (see ``NormalizedString``).
public indirect enum Normalizer: Sendable, Equatable {
    case nfc, nfd, nfkc, nfkd
    /// Full lowercase mapping.
    case lowercase
    /// Removal of every combining mark (Mn, Mc, Me), as HuggingFace's `StripAccents`; put `.nfd`
    /// before it to strip the accents of precomposed letters.
    case stripAccents
    /// BERT's clean-text step on its own.
    case cleanText
    /// BERT's CJK spacing step on its own.
    case cjkSpacing
    /// BERT's normalizer: clean text, CJK spacing, strip accents, lowercase, in that order.
    case bert(BertNormalizerOptions)
    /// Remove whitespace at the left and/or right end.
    case strip(left: Bool, right: Bool)
    /// Several normalizers in order.
    case sequence([Normalizer])

    /// Applies the normalizer in place.
    public func normalize(_ s: inout NormalizedString) {
        switch self {
        case .nfd:
            Normalizer.decompose(&s, compatibility: false)
        case .nfkd:
            Normalizer.decompose(&s, compatibility: true)
        case .nfc:
            Normalizer.decompose(&s, compatibility: false)
            s.composeCanonically()
        case .nfkc:
            Normalizer.decompose(&s, compatibility: true)
            s.composeCanonically()
        case .lowercase:
            if s.scalars.allSatisfy({ $0 < 0x80 }) {
                s.map { ($0 >= 0x41 && $0 <= 0x5A) ? $0 + 32 : $0 }
            } else {
                s.flatMap { c, out in UnicodeProps.lowercase(c, into: &out) }
            }
        case .stripAccents:
            s.filter { !UnicodeProps.isMark($0) }
        case .cleanText:
            s.filter { c in !(c == 0 || c == 0xFFFD || UnicodeProps.isBertControl(c)) }
            s.map { UnicodeProps.isWhitespace($0) ? 0x20 : $0 }
        case .cjkSpacing:
            if s.scalars.contains(where: { $0 >= 0x3400 && UnicodeProps.isChineseChar($0) }) {
                s.flatMap { c, out in
                    if UnicodeProps.isChineseChar(c) {
                        out.append(0x20); out.append(c); out.append(0x20)
                    } else {
                        out.append(c)
                    }
                }
            }
        case .bert(let o):
            if o.cleanText { Normalizer.cleanText.normalize(&s) }
            if o.handleChineseChars { Normalizer.cjkSpacing.normalize(&s) }
            if o.stripAccents ?? o.lowercase {
                // BERT's own rule: NFD, then drop nonspacing marks (Mn) only.
                Normalizer.decompose(&s, compatibility: false)
                s.filter { !UnicodeProps.isNonspacingMark($0) }
            }
            if o.lowercase { Normalizer.lowercase.normalize(&s) }
        case .strip(let left, let right):
            var lo = 0, hi = s.count
            if left { while lo < hi && UnicodeProps.isWhitespace(s.scalars[lo]) { lo += 1 } }
            if right { while hi > lo && UnicodeProps.isWhitespace(s.scalars[hi - 1]) { hi -= 1 } }
            if lo != 0 || hi != s.count { s = s.slice(lo..<hi) }
        case .sequence(let steps):
            for step in steps { step.normalize(&s) }
        }
    }

    /// Convenience: normalizes a whole string.
    public func normalize(_ text: String) -> String {
        var s = NormalizedString(text)
        normalize(&s)
        return s.normalized
    }

    static func decompose(_ s: inout NormalizedString, compatibility: Bool) {
        let threshold: UInt32 = compatibility ? 0xA0 : 0xC0
        guard s.scalars.contains(where: { $0 >= threshold }) else { return }
        // Which output scalar is the first of its input's decomposition (the one that takes
        // the input's place in HuggingFace's alignment; the others are insertions).
        var firsts: [Bool] = []
        firsts.reserveCapacity(s.count)
        s.flatMap { c, out in
            let before = out.count
            UnicodeProps.decompose(c, compatibility: compatibility, into: &out)
            for k in before..<out.count { firsts.append(k == before) }
        }
        s.reorderCombiningMarks(firsts: firsts)
    }
}
