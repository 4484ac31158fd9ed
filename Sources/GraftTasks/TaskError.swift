import Foundation

/// Where a problem was found: a file and, when known, a line (1-based) or a key / question id.
public struct TaskLocation: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    /// A spec key (`train.lr`), a SQuAD question id or another name inside the file.
    public var item: String?

    public init(file: String, line: Int? = nil, item: String? = nil) {
        self.file = file
        self.line = line
        self.item = item
    }

    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        if let item { s += " (\(item))" }
        return s
    }
}

/// The one error type of GraftTasks. Every message names the file, the line or key, the
/// offending value and the problem.
public enum TaskError: Error, Equatable, Sendable, LocalizedError, CustomStringConvertible {
    /// A file could not be read (missing, unreadable, not UTF-8).
    case unreadable(file: String, reason: String)
    /// A line or record does not have the expected shape.
    case malformed(TaskLocation, reason: String)
    /// A label or tag that is not in the task's label set.
    case unknownLabel(TaskLocation, label: String, known: [String])
    /// A tag sequence that the scheme does not allow (e.g. `I-PER` after `O` when strict).
    case invalidTagSequence(TaskLocation, reason: String)
    /// An answer or entity whose offsets do not match the text.
    case offsetMismatch(TaskLocation, reason: String)
    /// A spec key that is not known; `suggestion` is the closest known key.
    case unknownKey(file: String, key: String, suggestion: String?)
    /// A required spec key that is absent.
    case missingKey(file: String, key: String)
    /// A spec value of the wrong type or out of range.
    case badValue(file: String, key: String, value: String, expected: String)
    /// A TOML syntax error.
    case specSyntax(file: String, line: Int, column: Int, reason: String)
    /// No plugin is registered under this name.
    case unknownTask(name: String, known: [String])
    /// An argument outside its domain (shapes, lengths, strides).
    case invalidArgument(String)
    /// A part that needs the model heads, which this build does not have yet.
    case notAvailable(String)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason):
            return "\(file): cannot read: \(reason)"
        case .malformed(let at, let reason):
            return "\(at): \(reason)"
        case .unknownLabel(let at, let label, let known):
            let list = known.count <= 20 ? known.joined(separator: ", ") : known.prefix(20).joined(separator: ", ") + ", …"
            return "\(at): unknown label \"\(label)\" (the label set is: \(list))"
        case .invalidTagSequence(let at, let reason):
            return "\(at): invalid tag sequence: \(reason)"
        case .offsetMismatch(let at, let reason):
            return "\(at): \(reason)"
        case .unknownKey(let file, let key, let suggestion):
            return "\(file): unknown key \"\(key)\"" + (suggestion.map { " (did you mean \"\($0)\"?)" } ?? "")
        case .missingKey(let file, let key):
            return "\(file): missing required key \"\(key)\""
        case .badValue(let file, let key, let value, let expected):
            return "\(file): key \"\(key)\" has value \(value), expected \(expected)"
        case .specSyntax(let file, let line, let column, let reason):
            return "\(file):\(line):\(column): TOML syntax error: \(reason)"
        case .unknownTask(let name, let known):
            return "unknown task kind \"\(name)\" (known: \(known.joined(separator: ", ")))"
        case .invalidArgument(let message):
            return message
        case .notAvailable(let message):
            return message
        }
    }

    public var errorDescription: String? { description }
}
