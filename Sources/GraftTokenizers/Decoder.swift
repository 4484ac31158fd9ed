/// Turns token strings back into text.
public enum Decoder: Sendable, Equatable {
    /// WordPiece: pieces with the prefix join the previous token; others are separated by a
    /// space. `cleanup` removes the spaces before punctuation and in English contractions,
    /// token by token, as HuggingFace's decoder does.
    case wordPiece(prefix: String, cleanup: Bool)
    /// Byte-level: concatenate, map the alphabet back to bytes, decode UTF-8 (invalid → U+FFFD).
    case byteLevel
    /// Join with spaces (no model-specific rule).
    case plain

    public func decode(_ tokens: [String]) -> String {
        switch self {
        case .wordPiece(let prefix, let cleanup):
            var out = ""
            for (i, token) in tokens.enumerated() {
                var piece: String
                if i != 0 && !prefix.isEmpty && token.unicodeScalars.starts(with: prefix.unicodeScalars) {
                    piece = String(String.UnicodeScalarView(token.unicodeScalars.dropFirst(prefix.unicodeScalars.count)))
                } else if i != 0 {
                    piece = " " + token
                } else {
                    piece = token
                }
                if cleanup { piece = Decoder.cleanUp(piece) }
                out += piece
            }
            return out
        case .byteLevel:
            var bytes = [UInt8]()
            for token in tokens { bytes += ByteLevel.decode(token) }
            return String(decoding: bytes, as: UTF8.self)
        case .plain:
            return tokens.joined(separator: " ")
        }
    }

    static func cleanUp(_ s: String) -> String {
        guard s.utf8.first == 0x20 else { return s }
        var r = s
        for (from, to) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                           (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
            r = r.replacingAll(from, with: to)
        }
        return r
    }
}

extension String {
    /// Replaces every occurrence of `target` (compared by exact UTF-8 bytes).
    func replacingAll(_ target: String, with replacement: String) -> String {
        let src = Array(utf8), t = Array(target.utf8)
        guard !t.isEmpty, src.count >= t.count else { return self }
        var out = [UInt8]()
        out.reserveCapacity(src.count)
        var i = 0
        var changed = false
        while i < src.count {
            if i + t.count <= src.count && src[i] == t[0] && Array(src[i..<(i + t.count)]) == t {
                out += replacement.utf8
                i += t.count
                changed = true
            } else {
                out.append(src[i])
                i += 1
            }
        }
        return changed ? String(decoding: out, as: UTF8.self) : self
    }
}
