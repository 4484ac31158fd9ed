import Foundation

/// An ordered set of labels: id `i` is `labels[i]`, as `id2label`/`label2id` in a HuggingFace
/// `config.json`.
///
/// For tagging, build one from entity types with ``tagging(entityTypes:scheme:)``: `O` first, then
/// `B-PER, I-PER, …` (IOB2) or `B-PER, I-PER, E-PER, S-PER, …` (BIOES), types in the given order.
public struct LabelSet: Sendable, Equatable, Codable {
    /// The labels, in id order.
    public let labels: [String]
    private let index: [String: Int]

    /// A label set from labels in id order; duplicates and empty labels are an error.
    public init(_ labels: [String]) throws {
        var index: [String: Int] = [:]
        for (i, label) in labels.enumerated() {
            guard !label.isEmpty else { throw TaskError.invalidArgument("label \(i) is empty") }
            guard index[label] == nil else { throw TaskError.invalidArgument("label \"\(label)\" appears twice in the label set") }
            index[label] = i
        }
        self.labels = labels
        self.index = index
    }

    public init(from decoder: Decoder) throws {
        try self.init(try [String](from: decoder))
    }

    public func encode(to encoder: Encoder) throws {
        try labels.encode(to: encoder)
    }

    public static func == (a: LabelSet, b: LabelSet) -> Bool { a.labels == b.labels }

    /// The tag set for `entityTypes` under `scheme`: `O`, then each type's prefixed tags.
    public static func tagging(entityTypes: [String], scheme: TagScheme) throws -> LabelSet {
        var tags = ["O"]
        for type in entityTypes {
            guard !type.isEmpty, type != "O" else { throw TaskError.invalidArgument("entity type \"\(type)\" is not allowed") }
            tags += scheme.prefixes.map { "\($0)-\(type)" }
        }
        return try LabelSet(tags)
    }

    public var count: Int { labels.count }

    /// The id of `label`, nil when it is not in the set.
    public func id(of label: String) -> Int? { index[label] }

    /// The label of `id` (precondition: `0 <= id < count`).
    public func label(_ id: Int) -> String { labels[id] }

    /// `config.json`'s `id2label` (keys are decimal strings there).
    public var id2label: [Int: String] { Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($0.offset, $0.element) }) }

    /// `config.json`'s `label2id`.
    public var label2id: [String: Int] { index }

    /// For a tag set: the entity types in order of first appearance (`O` excluded).
    public var entityTypes: [String] {
        var seen = Set<String>(), types: [String] = []
        for label in labels where label != "O" {
            let t = ParsedTag(label).type
            if seen.insert(t).inserted { types.append(t) }
        }
        return types
    }
}
