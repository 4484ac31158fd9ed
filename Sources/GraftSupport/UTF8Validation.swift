/// The one UTF-8 validator (and encoder) of Graft.
public enum UTF8Validation {
    /// The offset of the first byte that does not begin a well-formed UTF-8 sequence, or nil
    /// when all of `bytes` is well-formed (overlongs, surrogates and values past U+10FFFF are
    /// ill-formed, as in the Unicode standard's table 3-7).
    public static func firstInvalidByte(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        let n = bytes.count
        var i = 0
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 { i += 1; continue }
            var need = 0
            var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
            switch b0 {
            case 0xC2...0xDF: need = 1
            case 0xE0: need = 2; lo = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: need = 2
            case 0xED: need = 2; hi = 0x9F
            case 0xF0: need = 3; lo = 0x90
            case 0xF1...0xF3: need = 3
            case 0xF4: need = 3; hi = 0x8F
            default: return i
            }
            if i + need >= n { return i }
            let b1 = bytes[i + 1]
            if b1 < lo || b1 > hi { return i }
            var k = 2
            while k <= need {
                let b = bytes[i + k]
                if b < 0x80 || b > 0xBF { return i }
                k += 1
            }
            i += need + 1
        }
        return nil
    }

    /// ``firstInvalidByte(_:)-(UnsafeBufferPointer<UInt8>)`` over a slice (offsets from its start).
    public static func firstInvalidByte<C: Collection>(_ bytes: C) -> Int? where C.Element == UInt8 {
        if let r = bytes.withContiguousStorageIfAvailable({ firstInvalidByte($0) }) { return r }
        return Array(bytes).withUnsafeBufferPointer { firstInvalidByte($0) }
    }

    /// Appends the UTF-8 encoding of scalar value `c` to `out`.
    @inlinable @inline(__always)
    public static func append(_ c: UInt32, to out: inout [UInt8]) {
        if c < 0x80 {
            out.append(UInt8(c))
        } else if c < 0x800 {
            out.append(UInt8(0xC0 | (c >> 6)))
            out.append(UInt8(0x80 | (c & 0x3F)))
        } else if c < 0x10000 {
            out.append(UInt8(0xE0 | (c >> 12)))
            out.append(UInt8(0x80 | ((c >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (c & 0x3F)))
        } else {
            out.append(UInt8(0xF0 | (c >> 18)))
            out.append(UInt8(0x80 | ((c >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((c >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (c & 0x3F)))
        }
    }
}
