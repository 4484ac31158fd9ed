/// GraftSupport: the one copy of each small utility the layers share: atomic file writes,
/// the line reader, UTF-8 validation, seeded generators, the order-preserving JSON value, the
/// median, the unchecked-Sendable pointer, and what counts as blank text. It depends on
/// Foundation/Glibc only; every layer may import it.
import Foundation

/// Errors thrown by the support target. Layers that wrap a support call may rethrow these as
/// their own error type; every message names the file (or value) and the problem.
public enum SupportError: Error, Equatable, CustomStringConvertible {
    /// A file operation failed: `operation` is the step (open, write, fsync, rename, ...).
    case io(path: String, operation: String, reason: String)
    /// JSON text that does not parse; `line` is 1-based.
    case malformedJSON(path: String, line: Int, reason: String)
    /// An argument out of range (e.g. an all-zero generator state).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .io(let path, let operation, let reason): return "\(path): \(operation) failed: \(reason)"
        case .malformedJSON(let path, let line, let reason): return "\(path):\(line): \(reason)"
        case .invalidArgument(let what): return "invalid argument: \(what)"
        }
    }
}

/// Whether `text` is nothing but whitespace (Unicode's White_Space, so U+3000 and NBSP count):
/// a document with nothing to run a model on, learn from or score.
public func isBlank(_ text: String) -> Bool { text.unicodeScalars.allSatisfy { $0.properties.isWhitespace } }

/// The text of the last C library error (`errno`).
func errnoDescription() -> String { String(cString: strerror(errno)) }

/// Creates the directory `path` and any missing parents (as `mkdir -p` does); one that exists
/// already is fine. A failure throws ``SupportError/io(path:operation:reason:)`` with `path`, the
/// operation "create the directory" and a plain reason naming the component at fault:
/// "out/model.bin is not a directory" where a parent is a regular file, "/srv: Permission denied"
/// (where Foundation's `createDirectory` reports "NSCocoaErrorDomain error 512").
public func createDirectories(atPath path: String) throws {
    func fail(_ reason: String) -> SupportError { .io(path: path, operation: "create the directory", reason: reason) }
    guard !path.isEmpty else { throw fail("the path is empty") }
    var prefix = path.hasPrefix("/") ? "/" : ""
    for component in path.split(separator: "/") {
        prefix += component
        var info = stat()
        if stat(prefix, &info) != 0 {
            guard errno == ENOENT else { throw fail("\(prefix): \(errnoDescription())") }
            if mkdir(prefix, 0o777) != 0 && errno != EEXIST { throw fail("\(prefix): \(errnoDescription())") }
            guard stat(prefix, &info) == 0 else { throw fail("\(prefix): \(errnoDescription())") }
        }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw fail("\(prefix) is not a directory") }
        prefix += "/"
    }
}
