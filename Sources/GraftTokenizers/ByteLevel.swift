/// GPT-2's reversible map from bytes to printable scalars: printable Latin-1 bytes map to
/// themselves, the other 68 bytes to U+0100 upwards in byte order.
public enum ByteLevel {
    /// `scalar[b]` is the printable scalar standing for byte `b`.
    public static let scalar: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
            if printable {
                table[b] = UInt32(b)
            } else {
                table[b] = next
                next += 1
            }
        }
        return table
    }()

    /// The inverse of ``scalar``: byte of a printable scalar, or -1.
    static let byteOf: [Int16] = {
        var inverse = [Int16](repeating: -1, count: 324)
        for (b, c) in scalar.enumerated() { inverse[Int(c)] = Int16(b) }
        return inverse
    }()

    /// The 256 alphabet symbols as strings, in byte order.
    public static let alphabet: [String] = scalar.map { String(Character(Unicode.Scalar($0)!)) }

    /// Appends the byte-level form (as UTF-8) of one scalar's UTF-8 bytes.
    @inline(__always)
    static func appendMapped(_ c: UInt32, to out: inout [UInt8]) {
        if c < 0x80 {
            UTF8Util.append(scalar[Int(c)], to: &out)
            return
        }
        var raw = [UInt8]()
        UTF8Util.append(c, to: &raw)
        for b in raw { UTF8Util.append(scalar[Int(b)], to: &out) }
    }

    /// Maps raw bytes to their byte-level string.
    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { UTF8Util.append(scalar[Int(b)], to: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Maps a byte-level string back to bytes; scalars outside the alphabet are kept as their UTF-8.
    public static func decode(_ s: String) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(s.utf8.count)
        for u in s.unicodeScalars {
            let v = Int(u.value)
            if v < byteOf.count, byteOf[v] >= 0 {
                out.append(UInt8(byteOf[v]))
            } else {
                UTF8Util.append(u.value, to: &out)
            }
        }
        return out
    }
}
