import Foundation

/// SQuAD v1.1 exact match and F1, exactly as the official `evaluate-v1.1.py`.
///
/// Strings are compared as Python compares them: by Unicode scalars, not by canonical
/// equivalence. ``normalize(_:)`` follows `normalize_answer`: Python's `str.lower()` (full case
/// mapping, with the final-sigma rule), removal of ASCII `string.punctuation`, replacement of the
/// words `a`, `an`, `the` (regex `\b(a|an|the)\b` with Python's Unicode word characters) by a
/// space, then `' '.join(text.split())` with Python's whitespace.
public enum SquadMetric {
    /// `normalize_answer(s)` as scalars.
    public static func normalize(_ s: String) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: whitespaceTokens(normalizedScalars(s)).joined(separator: [" "]))
        return String(view)
    }

    /// `normalize_answer(s).split()`, each token as scalars.
    public static func tokens(_ s: String) -> [[Unicode.Scalar]] {
        whitespaceTokens(normalizedScalars(s))
    }

    /// `exact_match_score`: 1 when the normalised strings are equal (scalar by scalar), else 0.
    public static func exactMatch(prediction: String, groundTruth: String) -> Double {
        let a = whitespaceTokens(normalizedScalars(prediction)), b = whitespaceTokens(normalizedScalars(groundTruth))
        return a.count == b.count && zip(a, b).allSatisfy { $0 == $1 } ? 1 : 0
    }

    /// `f1_score`: F1 over the bags of normalised tokens.
    public static func f1(prediction: String, groundTruth: String) -> Double {
        let p = tokens(prediction), g = tokens(groundTruth)
        var bag: [[Unicode.Scalar]: Int] = [:]
        for t in g { bag[t, default: 0] += 1 }
        var same = 0
        for t in p {
            if let n = bag[t], n > 0 { bag[t] = n - 1; same += 1 }
        }
        if same == 0 { return 0 }
        let precision = 1.0 * Double(same) / Double(p.count)
        let recall = 1.0 * Double(same) / Double(g.count)
        return (2 * precision * recall) / (precision + recall)
    }

    /// `metric_max_over_ground_truths` for exact match and F1 (both 0 when there is no gold answer).
    public static func score(prediction: String, groundTruths: [String]) -> (exactMatch: Double, f1: Double) {
        var em = 0.0, f = 0.0
        for (i, g) in groundTruths.enumerated() {
            let e = exactMatch(prediction: prediction, groundTruth: g), x = f1(prediction: prediction, groundTruth: g)
            em = i == 0 ? e : max(em, e)
            f = i == 0 ? x : max(f, x)
        }
        return (em, f)
    }

    // MARK: normalize_answer

    static func normalizedScalars(_ s: String) -> [Unicode.Scalar] {
        removeArticles(removePunctuation(pythonLower(Array(s.unicodeScalars))))
    }

    /// Python's `str.lower()`: each scalar's full lowercase mapping; a capital sigma becomes final
    /// `ς` when preceded by a cased letter and not followed by one (case-ignorable scalars skipped).
    static func pythonLower(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        for (i, c) in s.enumerated() {
            if c.value == 0x03A3 {
                out.append(isFinalSigma(s, i) ? "\u{03C2}" : "\u{03C3}")
                continue
            }
            if c.isASCII {
                out.append(c.value >= 0x41 && c.value <= 0x5A ? Unicode.Scalar(c.value + 32)! : c)
            } else {
                out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return out
    }

    private static func isFinalSigma(_ s: [Unicode.Scalar], _ i: Int) -> Bool {
        var j = i - 1
        while j >= 0, s[j].properties.isCaseIgnorable { j -= 1 }
        guard j >= 0, s[j].properties.isCased else { return false }
        j = i + 1
        while j < s.count, s[j].properties.isCaseIgnorable { j += 1 }
        return !(j < s.count && s[j].properties.isCased)
    }

    /// `string.punctuation`: ASCII only.
    static let punctuation = Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".unicodeScalars)

    static func removePunctuation(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        s.filter { !punctuation.contains($0) }
    }

    /// A word character of Python's `re` for `str` patterns: `ch.isalnum() or ch == '_'`.
    static func isWordCharacter(_ c: Unicode.Scalar) -> Bool {
        if c == "_" { return true }
        let p = c.properties
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return p.numericType != nil
        }
    }

    /// `re.sub(r'\b(a|an|the)\b', ' ', text)`.
    static func removeArticles(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        var i = 0
        func boundary(_ k: Int) -> Bool {
            let before = k > 0 && isWordCharacter(s[k - 1]), after = k < s.count && isWordCharacter(s[k])
            return before != after
        }
        func matches(_ word: [Unicode.Scalar], at k: Int) -> Bool {
            guard k + word.count <= s.count else { return false }
            for (m, c) in word.enumerated() where s[k + m] != c { return false }
            return boundary(k + word.count)
        }
        let words: [[Unicode.Scalar]] = [["a"], ["a", "n"], ["t", "h", "e"]]
        while i < s.count {
            if boundary(i), let w = words.first(where: { matches($0, at: i) }) {
                out.append(" ")
                i += w.count
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return out
    }

    /// Python's `str.isspace()`: White_Space plus the information separators U+001C–U+001F.
    static func isPythonWhitespace(_ c: Unicode.Scalar) -> Bool {
        c.properties.isWhitespace || (0x1C...0x1F).contains(c.value)
    }

    /// `text.split()`.
    static func whitespaceTokens(_ s: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
        var tokens: [[Unicode.Scalar]] = [], current: [Unicode.Scalar] = []
        for c in s {
            if isPythonWhitespace(c) {
                if !current.isEmpty { tokens.append(current); current = [] }
            } else {
                current.append(c)
            }
        }
        if !current.isEmpty { tokens.append(current) }
        return tokens
    }
}

/// SQuAD v1.1 exact match and F1 accumulated question by question (fractions 0–1; the official
/// script prints them ×100).
public struct QAMetric: Sendable {
    private var emSum = 0.0
    private var f1Sum = 0.0
    public private(set) var count = 0

    public init() {}

    /// Adds one question: the predicted answer text and the gold answer texts.
    public mutating func add(prediction: String, groundTruths: [String]) {
        let s = SquadMetric.score(prediction: prediction, groundTruths: groundTruths)
        emSum += s.exactMatch
        f1Sum += s.f1
        count += 1
    }

    /// Mean exact match over the questions added (0 when none).
    public var exactMatch: Double { count == 0 ? 0 : emSum / Double(count) }
    /// Mean F1 over the questions added (0 when none).
    public var f1: Double { count == 0 ? 0 : f1Sum / Double(count) }
    /// The official script's numbers: `100.0 * sum / total`.
    public var officialExactMatch: Double { count == 0 ? 0 : 100.0 * emSum / Double(count) }
    public var officialF1: Double { count == 0 ? 0 : 100.0 * f1Sum / Double(count) }
}
