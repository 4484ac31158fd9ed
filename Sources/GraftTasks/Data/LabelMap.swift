import Foundation
import GraftSupport

/// A label-mapping file: renames the labels (classes, or entity types with their `B-`/`I-`/…
/// prefixes kept) of a data source to a task's, so that data annotated with other types can
/// train or score the same head (WNUT-16's ten types scored as CoNLL-2003's four:
/// `tasks/wnut16-to-conll2003.toml`).
///
/// ```toml
/// description = "…"           # optional
/// [types]                     # source type = task type
/// person = "PER"
/// geo-loc = "LOC"
/// ```
///
/// Every source type of the data must be mapped, and every mapped type must occur in the data
/// (a mapping naming a type the data lacks is most likely a mapping for other data); each target
/// must be one of the task's labels. Violations are errors naming the map file and key, or the
/// data file and line.
public struct LabelMap: Sendable, Equatable {
    /// The map file.
    public var path: String
    /// Source type → task type, in file order.
    public var pairs: [(source: String, target: String)]

    public static func == (a: LabelMap, b: LabelMap) -> Bool {
        a.path == b.path && a.pairs.map(\.source) == b.pairs.map(\.source) && a.pairs.map(\.target) == b.pairs.map(\.target)
    }

    /// The source types, in file order.
    public var sourceTypes: [String] { pairs.map(\.source) }

    /// The task type of `source`.
    public func target(of source: String) -> String? { pairs.first { $0.source == source }?.target }

    /// Reads a map file (TOML: an optional `description`, a `[types]` table of strings).
    public static func load(_ path: String) throws -> LabelMap {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TaskError.unreadable(file: path, reason: FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such label-map file")
        }
        guard let text = String(validating: data, as: UTF8.self) else { throw TaskError.unreadable(file: path, reason: "not valid UTF-8") }
        let root = try SpecValue.parseTOML(text, path: path)
        guard case .table(let entries) = root else { throw TaskError.missingKey(file: path, key: "types") }
        let top = SpecTable(file: path, prefix: "", entries: entries)
        try top.checkKeys(["description", "types"])
        _ = try top.string("description")
        guard let types = try top.table("types") else { throw TaskError.missingKey(file: path, key: "types") }
        guard !types.entries.isEmpty else { throw TaskError.badValue(file: path, key: "types", value: "{}", expected: "at least one source type = task type") }
        let pairs = try types.entries.map { key, _ in (source: key, target: try types.requiredString(key)) }
        for p in pairs where p.source == "O" || p.target == "O" || p.target.isEmpty {
            throw TaskError.badValue(file: path, key: "types.\(p.source)", value: JSONValue.quoted(p.target), expected: "an entity type or class other than O (O stays O)")
        }
        return LabelMap(path: path, pairs: pairs)
    }

    /// Checks that every target is one of `labels` (tagging: as `B-TYPE` in `scheme`).
    func checkTargets(_ labels: LabelSet, tagging scheme: TagScheme?) throws {
        for p in pairs {
            let label = scheme.map { _ in "B-" + p.target } ?? p.target
            guard labels.id(of: label) != nil else {
                let known = scheme == nil ? labels.labels : Array(Set(labels.labels.filter { $0 != "O" }.map { ParsedTag($0).type })).sorted()
                throw TaskError.badValue(file: path, key: "types.\(p.source)", value: JSONValue.quoted(p.target),
                                         expected: "one of the task's \(scheme == nil ? "labels" : "entity types"): \(known.joined(separator: ", "))")
            }
        }
    }

    /// Checks that every mapped type occurs in `found` (the types of the data read from `origin`).
    func checkPresent(_ found: Set<String>, origin: String) throws {
        for p in pairs where !found.contains(p.source) {
            throw TaskError.badValue(file: path, key: "types.\(p.source)", value: JSONValue.quoted(p.target),
                                     expected: "a type that occurs in \(origin) (its types: \(found.sorted().joined(separator: ", ")))")
        }
    }

    /// The error for data whose label `label` (at `at`) the map does not cover.
    func uncovered(_ at: TaskLocation, label: String) -> TaskError {
        .malformed(at, reason: "label \"\(label)\" is not covered by the label map \(path) (it maps: \(sourceTypes.joined(separator: ", ")))")
    }

    /// The sentences with their tags renamed (prefixes kept; entities rebuilt from the tags).
    func apply(_ sentences: [TaggedSentence], scheme: TagScheme, origin: String) throws -> [TaggedSentence] {
        var found = Set<String>()
        for s in sentences { for t in s.tags ?? [] where t != "O" { found.insert(ParsedTag(t).type) } }
        try checkPresent(found, origin: origin)
        return try sentences.map { s in
            guard let tags = s.tags else { return s }
            let mapped = try tags.map { t -> String in
                guard t != "O" else { return t }
                let parsed = ParsedTag(t)
                guard let target = target(of: parsed.type) else { throw uncovered(TaskLocation(file: s.id), label: t) }
                return "\(parsed.prefix)-\(target)"
            }
            var out = s
            out.tags = mapped
            out.entities = SpanConversion.characterSpans(try scheme.strictSpans(mapped), tokenOffsets: s.wordOffsets)
            return out
        }
    }

    /// The examples with their labels renamed.
    func apply(_ examples: [TextExample], origin: String) throws -> [TextExample] {
        try checkPresent(Set(examples.compactMap(\.label)), origin: origin)
        return try examples.map { e in
            var out = e
            if let label = e.label {
                guard let target = target(of: label) else { throw uncovered(TaskLocation(file: e.id), label: label) }
                out.label = target
            }
            return out
        }
    }
}
