/// GraftTokenizers: the text-to-ids layer of Graft.
///
/// The pipeline follows the one HuggingFace tokenizers made standard:
/// added-token split → ``Normalizer`` → ``PreTokenizer`` → model (``WordPiece`` or ``BPE``)
/// → ``PostProcessor``, with a ``NormalizedString`` that keeps, for every normalized scalar,
/// the range of original scalars it came from. Every token of an ``Encoding`` therefore
/// carries offsets into the caller's original text.
import CUtf8proc
import GraftSupport

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

extension TokenizerError {
    /// The tokenizers layer's form of a support error (JSON syntax, file I/O), same file and line.
    public init(_ error: SupportError) {
        switch error {
        case .io(let path, let operation, let reason): self = .io(path: path, reason: "\(operation) failed: \(reason)")
        case .malformedJSON(let path, let line, let reason): self = .malformed(path: path, line: line, reason: reason)
        case .invalidArgument(let what): self = .invalidArgument(what)
        }
    }

    /// Runs `body`, rethrowing a ``SupportError`` as a ``TokenizerError``.
    static func wrapping<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as SupportError { throw TokenizerError(error) }
    }
}

extension LineReader {
    /// The next line as a string, or nil at the end of the file.
    /// - Throws: ``TokenizerError/invalidUTF8(path:byteOffset:)`` with the offset of the first
    ///   ill-formed byte in the whole file; ``TokenizerError/io(path:reason:)`` on a read error.
    public func nextString() throws -> String? {
        guard let line = try TokenizerError.wrapping({ try next() }) else { return nil }
        if let bad = UTF8Validation.firstInvalidByte(line.bytes) {
            throw TokenizerError.invalidUTF8(path: path == "-" ? "stdin" : path, byteOffset: line.offset + bad)
        }
        return String(decoding: line.bytes, as: UTF8.self)
    }

    /// Opens `path` (`"-"`: standard input), reporting failure as ``TokenizerError/io(path:reason:)``.
    public static func open(_ path: String) throws -> LineReader {
        try TokenizerError.wrapping { try LineReader(path: path) }
    }
}
