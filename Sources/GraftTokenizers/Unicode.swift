import GraftSupport
import CUtf8proc

/// Unicode character properties, all answered by utf8proc (Unicode 15 in Debian 12's 2.8).
///
/// Scalars are passed as `UInt32` values; every caller guarantees they are valid scalars.
enum UnicodeProps {
    @inline(__always)
    static func category(_ c: UInt32) -> utf8proc_category_t {
        utf8proc_category(Int32(bitPattern: c))
    }

    /// The `White_Space` property (what Rust's `char::is_whitespace` and Oniguruma's `\s` use).
    @inline(__always)
    static func isWhitespace(_ c: UInt32) -> Bool {
        switch c {
        case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// Letters: Lu, Ll, Lt, Lm, Lo (`\p{L}`).
    @inline(__always)
    static func isLetter(_ c: UInt32) -> Bool {
        if c < 0x80 { return (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A }
        let cat = category(c)
        return cat.rawValue >= UTF8PROC_CATEGORY_LU.rawValue && cat.rawValue <= UTF8PROC_CATEGORY_LO.rawValue
    }

    /// Numbers: Nd, Nl, No (`\p{N}`).
    @inline(__always)
    static func isNumber(_ c: UInt32) -> Bool {
        if c < 0x80 { return c >= 0x30 && c <= 0x39 }
        let cat = category(c)
        return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO
    }

    /// Decimal digits (Nd), as Rust's `char::is_numeric` narrowed to what HF's `Digits` uses.
    @inline(__always)
    static func isDigit(_ c: UInt32) -> Bool {
        if c < 0x80 { return c >= 0x30 && c <= 0x39 }
        return isNumber(c)
    }

    /// Unicode punctuation: Pc, Pd, Ps, Pe, Pi, Pf, Po.
    @inline(__always)
    static func isPunctuation(_ c: UInt32) -> Bool {
        let cat = category(c)
        return cat.rawValue >= UTF8PROC_CATEGORY_PC.rawValue && cat.rawValue <= UTF8PROC_CATEGORY_PO.rawValue
    }

    /// BERT's punctuation: every ASCII punctuation/symbol character plus Unicode `P*`.
    @inline(__always)
    static func isBertPunctuation(_ c: UInt32) -> Bool {
        if c < 0x80 {
            return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)
        }
        return isPunctuation(c)
    }

    /// Control, format and private-use characters (Cc, Cf, Co), which BERT's clean-text drops,
    /// except tab, LF and CR, which it treats as whitespace.
    @inline(__always)
    static func isBertControl(_ c: UInt32) -> Bool {
        if c == 0x09 || c == 0x0A || c == 0x0D { return false }
        if c >= 0x20 && c < 0x7F { return false }
        let cat = category(c)
        return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CO
    }

    /// The CJK ideograph blocks BERT surrounds with spaces.
    @inline(__always)
    static func isChineseChar(_ c: UInt32) -> Bool {
        switch c {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }

    /// Nonspacing marks (Mn), removed when accents are stripped.
    @inline(__always)
    static func isNonspacingMark(_ c: UInt32) -> Bool {
        if c < 0x300 { return false }
        return category(c) == UTF8PROC_CATEGORY_MN
    }

    /// Combining marks: Mn, Mc, Me.
    @inline(__always)
    static func isMark(_ c: UInt32) -> Bool {
        if c < 0x300 { return false }
        let cat = category(c)
        return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_MC || cat == UTF8PROC_CATEGORY_ME
    }

    @inline(__always)
    static func combiningClass(_ c: UInt32) -> Int {
        if c < 0x300 { return 0 }
        return Int(utf8proc_get_property(Int32(bitPattern: c)).pointee.combining_class)
    }

    /// Full lowercase mapping of one scalar, as Rust's `char::to_lowercase` gives it
    /// (unconditional mappings only: no final-sigma rule).
    @inline(__always)
    static func lowercase(_ c: UInt32, into out: inout [UInt32]) {
        if c < 0x80 {
            out.append((c >= 0x41 && c <= 0x5A) ? c + 32 : c)
        } else if c == 0x130 {
            // LATIN CAPITAL LETTER I WITH DOT ABOVE → "i" + COMBINING DOT ABOVE (SpecialCasing.txt).
            out.append(0x69)
            out.append(0x307)
        } else {
            out.append(UInt32(bitPattern: utf8proc_tolower(Int32(bitPattern: c))))
        }
    }

    /// Canonical (or compatibility) decomposition of one scalar, appended to `out`.
    static func decompose(_ c: UInt32, compatibility: Bool, into out: inout [UInt32]) {
        if c < 0xC0 && !compatibility { out.append(c); return }
        if c < 0xA0 { out.append(c); return }
        var buffer = [Int32](repeating: 0, count: 32)
        var options = UTF8PROC_DECOMPOSE
        if compatibility { options = utf8proc_option_t(options.rawValue | UTF8PROC_COMPAT.rawValue) }
        var lastBoundClass: Int32 = 0
        let n = buffer.withUnsafeMutableBufferPointer { buf in
            utf8proc_decompose_char(Int32(bitPattern: c), buf.baseAddress, 32, options, &lastBoundClass)
        }
        if n <= 0 || n > 32 { out.append(c); return }
        for i in 0..<n { out.append(UInt32(bitPattern: buffer[i])) }
    }

    /// The canonical composition of `a` followed by `b`, if one exists (and is not excluded).
    static func compose(_ a: UInt32, _ b: UInt32) -> UInt32? {
        var pair: [Int32] = [Int32(bitPattern: a), Int32(bitPattern: b)]
        let n = pair.withUnsafeMutableBufferPointer { buf in
            utf8proc_normalize_utf32(buf.baseAddress, 2, utf8proc_option_t(UTF8PROC_COMPOSE.rawValue | UTF8PROC_STABLE.rawValue))
        }
        return n == 1 ? UInt32(bitPattern: pair[0]) : nil
    }
}

/// UTF-8 helpers shared by the pipeline, the byte-level model and the file readers.
enum UTF8Util {
    /// Number of UTF-8 bytes of a scalar.
    @inline(__always)
    static func width(_ c: UInt32) -> Int {
        c < 0x80 ? 1 : (c < 0x800 ? 2 : (c < 0x10000 ? 3 : 4))
    }

    @inline(__always)
    static func append(_ c: UInt32, to out: inout [UInt8]) { UTF8Validation.append(c, to: &out) }

    /// Builds a `String` from scalars, exactly (no normalization).
    static func string<C: Collection>(_ scalars: C) -> String where C.Element == UInt32 {
        var bytes = [UInt8]()
        bytes.reserveCapacity(scalars.count)
        for c in scalars { append(c, to: &bytes) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The scalars of a Swift string (always valid).
    @inline(__always)
    static func scalars(_ s: String) -> [UInt32] {
        var out = [UInt32]()
        out.reserveCapacity(s.utf8.count)
        for u in s.unicodeScalars { out.append(u.value) }
        return out
    }
}
