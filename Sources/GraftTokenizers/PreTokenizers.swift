/// How a pre-tokenizer cuts the normalized text into words. Each word is a half-open range of
/// normalized scalar indices; the model then tokenizes each word on its own.
public indirect enum PreTokenizer: Sendable, Equatable {
    /// BERT: split on whitespace (removed) and on every punctuation character (kept alone).
    case bert
    /// `\w+|[^\w\s]+` (HuggingFace `Whitespace`).
    case whitespace
    /// Split on whitespace only (HuggingFace `WhitespaceSplit`).
    case whitespaceSplit
    /// GPT-2's split pattern; the model then works on bytes mapped to the printable alphabet.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// Isolate digits: each digit alone, or runs of digits.
    case digits(individual: Bool)
    /// Several pre-tokenizers, each applied to the words of the previous.
    case sequence([PreTokenizer])

    /// Whether this pre-tokenizer makes the model see bytes (GPT-2 byte-level).
    public var isByteLevel: Bool {
        switch self {
        case .byteLevel: return true
        case .sequence(let steps): return steps.contains { $0.isByteLevel }
        default: return false
        }
    }

    /// Whether a leading space is added before splitting (byte-level `add_prefix_space`).
    var addsPrefixSpace: Bool {
        switch self {
        case .byteLevel(let add, _): return add
        case .sequence(let steps): return steps.contains { $0.addsPrefixSpace }
        default: return false
        }
    }

    /// Splits `s` (in normalized scalars) into word ranges, appended to `words`.
    public func split(_ s: UnsafeBufferPointer<UInt32>, into words: inout [Range<Int>]) {
        split(s, range: 0..<s.count, into: &words)
    }

    func split(_ s: UnsafeBufferPointer<UInt32>, range: Range<Int>, into words: inout [Range<Int>]) {
        switch self {
        case .bert:
            PreTokenizer.splitBert(s, range, &words)
        case .whitespace:
            PreTokenizer.splitWordsAndSymbols(s, range, &words)
        case .whitespaceSplit:
            PreTokenizer.splitOnWhitespace(s, range, &words)
        case .byteLevel(_, let useRegex):
            if useRegex { PreTokenizer.splitGPT2(s, range, &words) } else if !range.isEmpty { words.append(range) }
        case .digits(let individual):
            PreTokenizer.splitDigits(s, range, individual, &words)
        case .sequence(let steps):
            var current = [range]
            for step in steps {
                var next = [Range<Int>]()
                next.reserveCapacity(current.count * 2)
                for r in current { step.split(s, range: r, into: &next) }
                current = next
            }
            words.append(contentsOf: current)
        }
    }

    // MARK: Implementations

    static func splitBert(_ s: UnsafeBufferPointer<UInt32>, _ range: Range<Int>, _ words: inout [Range<Int>]) {
        var start = -1
        var i = range.lowerBound
        while i < range.upperBound {
            let c = s[i]
            if c == 0x20 || UnicodeProps.isWhitespace(c) {
                if start >= 0 { words.append(start..<i); start = -1 }
            } else if UnicodeProps.isBertPunctuation(c) {
                if start >= 0 { words.append(start..<i); start = -1 }
                words.append(i..<(i + 1))
            } else if start < 0 {
                start = i
            }
            i += 1
        }
        if start >= 0 { words.append(start..<range.upperBound) }
    }

    static func splitOnWhitespace(_ s: UnsafeBufferPointer<UInt32>, _ range: Range<Int>, _ words: inout [Range<Int>]) {
        var start = -1
        for i in range {
            if UnicodeProps.isWhitespace(s[i]) {
                if start >= 0 { words.append(start..<i); start = -1 }
            } else if start < 0 {
                start = i
            }
        }
        if start >= 0 { words.append(start..<range.upperBound) }
    }

    /// Unicode `\w` as the Rust `regex` crate (HuggingFace's) defines it: Alphabetic, marks,
    /// decimal numbers, connector punctuation and Join_Control. Letters, marks, `Nd`, `Nl` and
    /// `Pc` by category; then the zero-width (non-)joiner, and Other_Alphabetic symbols such as
    /// the circled letters (Ⓐ, 🅰), asked of the Alphabetic property.
    @inline(__always)
    static func isWordChar(_ c: UInt32) -> Bool {
        if c < 0x80 { return UnicodeProps.isLetter(c) || UnicodeProps.isNumber(c) || c == 0x5F }
        let cat = UnicodeProps.category(c).rawValue
        if (cat >= 1 && cat <= 10) || cat == 12 { return true }
        if c == 0x200C || c == 0x200D { return true }
        return Unicode.Scalar(c)?.properties.isAlphabetic ?? false
    }

    static func splitWordsAndSymbols(_ s: UnsafeBufferPointer<UInt32>, _ range: Range<Int>, _ words: inout [Range<Int>]) {
        var i = range.lowerBound
        while i < range.upperBound {
            let c = s[i]
            if UnicodeProps.isWhitespace(c) { i += 1; continue }
            let word = isWordChar(c)
            var j = i + 1
            while j < range.upperBound {
                let d = s[j]
                if UnicodeProps.isWhitespace(d) || isWordChar(d) != word { break }
                j += 1
            }
            words.append(i..<j)
            i = j
        }
    }

    static func splitDigits(_ s: UnsafeBufferPointer<UInt32>, _ range: Range<Int>, _ individual: Bool, _ words: inout [Range<Int>]) {
        var i = range.lowerBound
        while i < range.upperBound {
            let digit = UnicodeProps.isNumber(s[i])
            var j = i + 1
            if !(digit && individual) {
                while j < range.upperBound && UnicodeProps.isNumber(s[j]) == digit { j += 1 }
            }
            words.append(i..<j)
            i = j
        }
    }

    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    static func splitGPT2(_ s: UnsafeBufferPointer<UInt32>, _ range: Range<Int>, _ words: inout [Range<Int>]) {
        let end = range.upperBound
        var i = range.lowerBound
        @inline(__always) func kind(_ c: UInt32) -> UInt8 {
            // 0 whitespace, 1 letter, 2 number, 3 other
            if c < 0x80 {
                if c == 0x20 || (c >= 0x09 && c <= 0x0D) { return 0 }
                if (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A { return 1 }
                if c >= 0x30 && c <= 0x39 { return 2 }
                return 3
            }
            if UnicodeProps.isWhitespace(c) { return 0 }
            if UnicodeProps.isLetter(c) { return 1 }
            if UnicodeProps.isNumber(c) { return 2 }
            return 3
        }
        while i < end {
            let c = s[i]
            // Contractions.
            if c == 0x27 && i + 1 < end {
                let d = s[i + 1]
                if d == 0x73 || d == 0x74 || d == 0x6D || d == 0x64 { words.append(i..<(i + 2)); i += 2; continue }
                if i + 2 < end {
                    let e = s[i + 2]
                    if (d == 0x72 && e == 0x65) || (d == 0x76 && e == 0x65) || (d == 0x6C && e == 0x6C) {
                        words.append(i..<(i + 3)); i += 3; continue
                    }
                }
            }
            var j = i
            var k = kind(c)
            if c == 0x20 && i + 1 < end {
                let nk = kind(s[i + 1])
                if nk != 0 { j = i + 1; k = nk }
            }
            if k != 0 {
                // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
                j += 1
                while j < end && kind(s[j]) == k { j += 1 }
                words.append(i..<j)
                i = j
                continue
            }
            // Whitespace run.
            j = i + 1
            while j < end && kind(s[j]) == 0 { j += 1 }
            if j == end || j - i == 1 {
                words.append(i..<j)   // `\s+(?!\S)` at the end, or `\s+` of one char
                i = j
            } else {
                words.append(i..<(j - 1))  // leave the last whitespace for the next word
                i = j - 1
            }
        }
    }
}
