/// GraftTokenizers: the text-to-ids layer of Graft.
///
/// The pipeline follows the one HuggingFace tokenizers made standard:
/// added-token split → ``Normalizer`` → ``PreTokenizer`` → model (``WordPiece`` or ``BPE``)
/// → ``PostProcessor``, with a ``NormalizedString`` that keeps, for every normalized scalar,
/// the range of original scalars it came from. Every token of an ``Encoding`` therefore
/// carries offsets into the caller's original text.
import CUtf8proc

/// Errors thrown by the tokenizers layer.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    /// A file could not be read or written.
    case io(path: String, reason: String)
    /// A file's bytes are not valid UTF-8; `byteOffset` is the first bad byte.
    case invalidUTF8(path: String, byteOffset: Int)
    /// A file has the wrong shape (JSON syntax, missing field, bad merge line...).
    case malformed(path: String, line: Int?, reason: String)
    /// A configuration the tokenizers layer does not implement.
    case unsupported(String)
    /// A token the vocabulary lacks (e.g. a special token named by a template).
    case unknownToken(String)
    /// An invalid argument (lengths, options).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .io(let path, let reason): return "\(path): \(reason)"
        case .invalidUTF8(let path, let offset): return "\(path): invalid UTF-8 at byte offset \(offset)"
        case .malformed(let path, let line, let reason):
            if let line { return "\(path):\(line): \(reason)" }
            return "\(path): \(reason)"
        case .unsupported(let what): return "unsupported: \(what)"
        case .unknownToken(let token): return "token not in vocabulary: \(token)"
        case .invalidArgument(let what): return "invalid argument: \(what)"
        }
    }
}
