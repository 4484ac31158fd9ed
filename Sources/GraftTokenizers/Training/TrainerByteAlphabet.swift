/// GPT-2's printable byte alphabet, as the trainers need it: byte `b` is written as the
/// scalar `b` when it is printable Latin-1 (33...126, 161...172, 174...255) and otherwise as
/// U+0100 + n, n counting the other bytes in increasing order. The tokenizer layer's byte-level
/// pre-tokenizer uses the same table; this copy only serves training defaults.
enum TrainerByteAlphabet {
    /// `scalars[b]` is the printable scalar standing for byte `b`.
    static let scalars: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(256 + n)!
                n += 1
            }
        }
        return table
    }()

    /// The 256 scalars as a set (the byte-level initial alphabet).
    static var alphabet: Set<Unicode.Scalar> { Set(scalars) }

    /// Maps UTF-8 bytes to their printable string.
    static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var out = String.UnicodeScalarView()
        for b in bytes { out.append(scalars[Int(b)]) }
        return String(out)
    }
}
