import Foundation
import GraftSupport
import GraftCorpus
import GraftModels
import GraftTokenizers
import TOMLKit

/// A spec value, from TOML or JSON.
indirect enum SpecValue: Sendable {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case array([SpecValue])
    case table([(String, SpecValue)])
    case other(String)

    var typeName: String {
        switch self {
        case .string: "a string"
        case .int: "an integer"
        case .double: "a number"
        case .bool: "a boolean"
        case .array: "an array"
        case .table: "a table"
        case .other(let t): t
        }
    }

    var shown: String {
        switch self {
        case .string(let s): JSONValue.quoted(s)
        case .int(let i): String(i)
        case .double(let d): String(d)
        case .bool(let b): String(b)
        case .array(let a): "[" + a.map(\.shown).joined(separator: ", ") + "]"
        case .table: "{…}"
        case .other(let t): t
        }
    }

    static func fromTOML(_ v: TOMLValueConvertible) -> SpecValue {
        switch v.type {
        case .string: return .string(v.string ?? "")
        case .int: return .int(v.int ?? 0)
        case .double: return .double(v.double ?? 0)
        case .bool: return .bool(v.bool ?? false)
        case .array: return .array((v.array.map { Array($0) } ?? []).map(fromTOML))
        case .table:
            guard let t = v.table else { return .table([]) }
            return .table(t.keys.map { ($0, fromTOML(t[$0]!)) })
        default: return .other("a TOML \(v.type)")
        }
    }

    /// The deepest key nesting a TOML file may spell on one line (dots outside strings and
    /// comments), as toml++ bounds nested inline values at 256: it builds, and frees, one level
    /// at a time by recursion, and a 50,000-level table header overflowed the stack.
    static let maxTOMLNesting = 256
    /// The most dots, `[` and `{` (outside strings and comments) a whole TOML file may hold:
    /// nesting also builds up across lines (a multi-line array of inline tables, each with a
    /// long dotted key), and no spec or label map comes near this many.
    static let maxTOMLStructure = 4096

    /// Parses TOML text, first bounding its key nesting (``maxTOMLNesting`` per line,
    /// ``maxTOMLStructure`` in all); `path` names the file in errors.
    static func parseTOML(_ text: String, path: String) throws -> SpecValue {
        var line = 1, column = 0, dots = 0, structure = 0
        var quote: UInt8? = nil, multiline: UInt8? = nil, comment = false
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            column += 1
            if b == UInt8(ascii: "\n") {
                line += 1; column = 0; dots = 0; quote = nil; comment = false
            } else if let m = multiline {
                if b == UInt8(ascii: "\\") && m == UInt8(ascii: "\"") { i += 1; column += 1 }
                else if b == m && i + 2 < bytes.count && bytes[i + 1] == m && bytes[i + 2] == m { multiline = nil; i += 2; column += 2 }
            } else if let q = quote {
                if b == UInt8(ascii: "\\") && q == UInt8(ascii: "\"") { i += 1; column += 1 } else if b == q { quote = nil }
            } else if !comment {
                switch b {
                case UInt8(ascii: "#"): comment = true
                case UInt8(ascii: "\""), UInt8(ascii: "'"):
                    if i + 2 < bytes.count && bytes[i + 1] == b && bytes[i + 2] == b { multiline = b; i += 2; column += 2 } else { quote = b }
                case UInt8(ascii: "["), UInt8(ascii: "{"), UInt8(ascii: "."):
                    structure += 1
                    if structure > maxTOMLStructure {
                        throw TaskError.specSyntax(file: path, line: line, column: column,
                                                   reason: "more than \(maxTOMLStructure) dots and brackets: not a task spec or label map")
                    }
                    guard b == UInt8(ascii: ".") else { break }
                    dots += 1
                    if dots > maxTOMLNesting {
                        throw TaskError.specSyntax(file: path, line: line, column: column,
                                                   reason: "keys nested more than \(maxTOMLNesting) levels deep")
                    }
                default: break
                }
            }
            i += 1
        }
        do {
            return fromTOML(try TOMLTable(string: text))
        } catch let e as TOMLParseError {
            throw TaskError.specSyntax(file: path, line: e.source.begin.line, column: e.source.begin.column, reason: e.description)
        }
    }

    static func fromJSON(_ v: JSONValue) -> SpecValue {
        if let s = v.string { return .string(s) }
        if let b = v.bool { return .bool(b) }
        if let i = v.int { return .int(i) }
        if let d = v.double { return .double(d) }
        if let a = v.array { return .array(a.map(fromJSON)) }
        if let o = v.object { return .table(o.map { ($0.0, fromJSON($0.1)) }) }
        return .other("null")
    }
}

/// Levenshtein distance (for "did you mean" suggestions).
func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
    if x.isEmpty { return y.count }
    if y.isEmpty { return x.count }
    var previous = Array(0...y.count), current = [Int](repeating: 0, count: y.count + 1)
    for i in 1...x.count {
        current[0] = i
        for j in 1...y.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[y.count]
}

/// The closest of `candidates` to `key`, when it is close enough to be a likely misspelling.
func closest(_ key: String, among candidates: [String]) -> String? {
    let scored = candidates.map { ($0, editDistance(key.lowercased(), $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    return best.1 <= max(2, key.count / 2) ? best.0 : nil
}

/// Reads one table of a spec, remembering which keys were used so that any other key is an
/// error (with a suggestion) rather than silently ignored.
struct SpecTable {
    let file: String
    let prefix: String
    let entries: [(String, SpecValue)]

    func full(_ key: String) -> String { prefix.isEmpty ? key : "\(prefix).\(key)" }

    subscript(_ key: String) -> SpecValue? { entries.first { $0.0 == key }?.1 }

    /// Fails on the first key not in `known` (suggesting a known key, here or in the other
    /// tables: the key's ``TaskSpec/keyAliases`` entry when it has one, `learning_rate` →
    /// `train.lr`, else the closest by edit distance, `lr` at the top level → `train.lr`).
    func checkKeys(_ known: [String], elsewhere: [String] = []) throws {
        for (key, _) in entries where !known.contains(key) {
            // A key far longer than any known one gets no suggestion and is shown cut short
            // (a 10 MB key once took seconds of edit distances and filled the terminal).
            guard key.utf8.count <= 200 else {
                throw TaskError.unknownKey(file: file, key: full(String(key.prefix(60))) + "… (\(key.utf8.count) bytes)", suggestion: nil)
            }
            let candidates = known.map(full) + elsewhere
            let suggestion = TaskSpec.keyAliases[key.lowercased()].flatMap { candidates.contains($0) ? $0 : nil }
                ?? closest(full(key), among: candidates)
                ?? closest(key, among: known).map(full)
                ?? (elsewhere.first { $0.hasSuffix("." + key) })
            throw TaskError.unknownKey(file: file, key: full(key), suggestion: suggestion)
        }
    }

    func string(_ key: String) throws -> String? {
        guard let v = self[key] else { return nil }
        guard case .string(let s) = v else { throw bad(key, v, "a string") }
        return s
    }

    /// A string naming one case of `E` (its raw value); any other string is an error listing them.
    func choice<E: RawRepresentable & CaseIterable>(_ key: String, _: E.Type) throws -> E? where E.RawValue == String {
        guard let s = try string(key) else { return nil }
        guard let value = E(rawValue: s) else {
            throw bad(key, .string(s), "one of " + E.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return value
    }

    func requiredString(_ key: String) throws -> String {
        guard let s = try string(key) else { throw TaskError.missingKey(file: file, key: full(key)) }
        return s
    }

    func int(_ key: String, min lower: Int = Int.min) throws -> Int? {
        guard let v = self[key] else { return nil }
        guard case .int(let i) = v else { throw bad(key, v, "an integer") }
        guard i >= lower else { throw bad(key, v, "an integer ≥ \(lower)") }
        return i
    }

    func int(_ key: String, range: ClosedRange<Int>) throws -> Int? {
        guard let i = try int(key, min: range.lowerBound) else { return nil }
        guard i <= range.upperBound else { throw bad(key, self[key]!, "an integer in \(range.lowerBound)...\(range.upperBound)") }
        return i
    }

    func double(_ key: String, range: ClosedRange<Double> = -Double.greatestFiniteMagnitude...Double.greatestFiniteMagnitude) throws -> Double? {
        guard let v = self[key] else { return nil }
        let d: Double
        switch v {
        case .double(let x): d = x
        case .int(let i): d = Double(i)
        default: throw bad(key, v, "a number")
        }
        guard range.contains(d), d.isFinite else { throw bad(key, v, "a number in \(range.lowerBound)...\(range.upperBound)") }
        return d
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = self[key] else { return nil }
        guard case .bool(let b) = v else { throw bad(key, v, "true or false") }
        return b
    }

    func strings(_ key: String) throws -> [String]? {
        guard let v = self[key] else { return nil }
        guard case .array(let a) = v else { throw bad(key, v, "an array of strings") }
        return try a.map {
            guard case .string(let s) = $0 else { throw bad(key, v, "an array of strings") }
            return s
        }
    }

    func table(_ key: String) throws -> SpecTable? {
        guard let v = self[key] else { return nil }
        guard case .table(let t) = v else { throw bad(key, v, "a table ([\(full(key))])") }
        return SpecTable(file: file, prefix: full(key), entries: t)
    }

    func bad(_ key: String, _ v: SpecValue, _ expected: String) -> TaskError {
        .badValue(file: file, key: full(key), value: "\(v.shown) (\(v.typeName))", expected: expected)
    }
}

extension TaskSpec {
    static let topKeys = ["name", "kind", "description", "labels", "scheme", "data", "model", "train", "target"]
    static let dataKeys = ["train", "dev", "test", "format", "invalid_tags", "store", "source", "task",
                           "train_split", "dev_split", "test_split", "split_scheme"]
    static let modelKeys = ["base", "max_length", "stride", "max_answer_length", "pooling", "from_layer", "decoding"]
    static let trainKeys = ["epochs", "lr", "batch_size", "warmup_ratio", "weight_decay", "seed", "head_lr",
                            "freeze_encoder", "freeze_layers", "gradient_accumulation", "max_grad_norm",
                            "patience", "early_stopping_patience", "unfreeze_top", "gradual_unfreeze", "layer_lr_decay",
                            "cache_features", "adapt", "adapt_weight", "batching", "token_weighting"]
    static let targetKeys = ["text", "format", "store", "source", "split", "split_scheme", "dev", "label_map"]
    /// What other tools call some keys (HuggingFace `TrainingArguments` and scripts, spaCy's
    /// config), lower-cased, with the key Graft has for it: suggested for an unknown key before
    /// any key close by edit distance (`learning_rate` is nearer `warmup_ratio` than `lr`).
    static let keyAliases: [String: String] = [
        "learning_rate": "train.lr",
        "num_train_epochs": "train.epochs", "num_epochs": "train.epochs", "max_epochs": "train.epochs",
        "per_device_train_batch_size": "train.batch_size", "per_gpu_train_batch_size": "train.batch_size",
        "train_batch_size": "train.batch_size",
        "gradient_accumulation_steps": "train.gradient_accumulation", "accumulate_gradient": "train.gradient_accumulation",
        "warmup_proportion": "train.warmup_ratio",
        "max_seq_length": "model.max_length", "max_seq_len": "model.max_length", "model_max_length": "model.max_length",
        "doc_stride": "model.stride",
        "max_answer_len": "model.max_answer_length",
        "model_name_or_path": "model.base",
    ]
    /// The keys of a data source written as an inline table (`{ file = "…", label_map = "…" }`).
    static let sourceKeys = ["file", "label_map", "rate"]

    /// All keys with their table (`train.lr`), for suggestions across tables.
    static var allKeys: [String] {
        topKeys + dataKeys.map { "data." + $0 } + modelKeys.map { "model." + $0 } + trainKeys.map { "train." + $0 }
            + targetKeys.map { "target." + $0 }
    }

    /// Reads a spec file (`.toml`, or `.json` with the same keys).
    ///
    /// - Parameter environment: for `${VAR}` expansion in paths (default: the process's).
    public static func load(_ path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> TaskSpec {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TaskError.unreadable(file: path, reason: FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file")
        }
        guard let text = String(validating: data, as: UTF8.self) else { throw TaskError.unreadable(file: path, reason: "not valid UTF-8") }
        return try parse(text, path: path, environment: environment)
    }

    /// Parses spec text; `path` names it in errors and anchors relative paths.
    public static func parse(_ text: String, path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> TaskSpec {
        let root: [(String, SpecValue)]
        if path.lowercased().hasSuffix(".json") {
            let json: JSONValue
            do { json = try JSONValue.parse(text, path: path) } catch { throw TaskError.specSyntax(file: path, line: 0, column: 0, reason: "\(error)") }
            guard case .table(let t) = SpecValue.fromJSON(json) else { throw TaskError.malformed(TaskLocation(file: path), reason: "a spec is a JSON object") }
            root = t
        } else {
            guard case .table(let t) = try SpecValue.parseTOML(text, path: path) else { return try parse("", path: path) }
            root = t
        }
        let top = SpecTable(file: path, prefix: "", entries: root)
        try top.checkKeys(topKeys, elsewhere: allKeys)

        let name = try top.requiredString("name")
        let kindName = try top.requiredString("kind")
        guard let kind = HeadKind(name: kindName) else {
            throw TaskError.badValue(file: path, key: "kind", value: JSONValue.quoted(kindName),
                                     expected: "one of " + HeadKind.allCases.map(\.rawValue).joined(separator: ", ") + " (or sentiment, ner, qa)")
        }
        let schemeName = try top.string("scheme") ?? "iob2"
        guard let scheme = TagScheme(name: schemeName) else {
            throw TaskError.badValue(file: path, key: "scheme", value: JSONValue.quoted(schemeName), expected: "iob2 or bioes")
        }
        if kind != .tokenClassification && top["scheme"] != nil {
            throw TaskError.badValue(file: path, key: "scheme", value: JSONValue.quoted(schemeName), expected: "no scheme: only token-classification tasks have one")
        }
        var labels: LabelSet?
        switch kind {
        case .questionAnswering:
            if let v = top["labels"] { throw top.bad("labels", v, "no labels: question answering has none") }
        case .sequenceClassification, .tokenClassification:
            guard let list = try top.strings("labels") else { throw TaskError.missingKey(file: path, key: "labels") }
            guard !list.isEmpty else { throw top.bad("labels", .array([]), "a non-empty array of labels") }
            do {
                if kind == .sequenceClassification {
                    guard list.count >= 2 else { throw top.bad("labels", .array(list.map { .string($0) }), "at least two classes") }
                    labels = try LabelSet(list)
                } else if list.contains("O") {
                    labels = try LabelSet(list)
                    if let bad = list.first(where: { $0 != "O" && !scheme.prefixes.contains(String(ParsedTag($0).prefix)) }) {
                        throw TaskError.badValue(file: path, key: "labels", value: JSONValue.quoted(bad), expected: "\(scheme.rawValue) tags (\(scheme.prefixes.joined(separator: "/"))-TYPE) since the list holds O")
                    }
                } else {
                    // Without "O" the list holds entity types: a tag here (`B-DRUG`) would be
                    // expanded to `B-B-DRUG`, and every tag of the data would then be unknown.
                    if let tag = list.first(where: { $0.utf8.count > 2 && ($0.hasPrefix("B-") || $0.hasPrefix("I-")) }) {
                        var types: [String] = []
                        for label in list {
                            let parsed = ParsedTag(label)
                            let type = label.dropFirst().first == "-" && scheme.prefixes.contains(String(parsed.prefix)) ? parsed.type : label
                            if !types.contains(type) { types.append(type) }
                        }
                        let example = types.prefix(3).map { JSONValue.quoted($0) }.joined(separator: ", ")
                        throw TaskError.badValue(file: path, key: "labels", value: JSONValue.quoted(tag),
                                                 expected: "entity types such as \(example): a list without \"O\" holds entity types, which the \(scheme.rawValue) scheme expands to tags; a full tag list must include \"O\"")
                    }
                    labels = try LabelSet.tagging(entityTypes: list, scheme: scheme)
                }
            } catch let TaskError.invalidArgument(message) {
                throw TaskError.badValue(file: path, key: "labels", value: SpecValue.array(list.map { .string($0) }).shown, expected: "valid labels: \(message)")
            }
        }

        let base = URL(fileURLWithPath: path).deletingLastPathComponent()
        func resolve(_ raw: String, key: String) throws -> String {
            let expanded = try expand(raw, key: key, file: path, environment: environment)
            if expanded.hasPrefix("/") { return expanded }
            return base.appendingPathComponent(expanded).standardizedFileURL.path
        }

        var format = kind.defaultFormat
        var invalidTags = InvalidTagPolicy.error
        var train: DataSource?, dev: DataSource?, test: DataSource?
        var trainSources: [TrainingSourceSpec] = []
        if let data = try top.table("data") {
            try data.checkKeys(dataKeys, elsewhere: allKeys)
            if let f = try data.string("format") {
                guard let parsed = DataFormat(rawValue: f.lowercased()) else {
                    throw data.bad("format", .string(f), "one of " + DataFormat.allCases.map(\.rawValue).joined(separator: ", "))
                }
                format = parsed
            }
            if let p = try data.string("invalid_tags") {
                guard let parsed = InvalidTagPolicy(rawValue: p) else { throw data.bad("invalid_tags", .string(p), "error or repair") }
                invalidTags = parsed
            }
            if let store = try data.string("store") {
                for k in ["train", "dev", "test"] where data[k] != nil {
                    throw data.bad(k, data[k]!, "no file: [data] names a corpus store (store = …), use train_split/dev_split")
                }
                let storePath = try resolve(store, key: "data.store")
                let source = try data.string("source")
                let task = try data.string("task")   // nil: the default task of the head kind
                let splitScheme = try data.string("split_scheme") ?? "default"
                func part(_ key: String, _ fallback: SplitPart?) throws -> SplitPart? {
                    guard let s = try data.string(key) else { return fallback }
                    guard let p = SplitPart(rawValue: s) else { throw data.bad(key, .string(s), "train, dev or test") }
                    return p
                }
                let trainPart = try part("train_split", .train), devPart = try part("dev_split", .dev), testPart = try part("test_split", nil)
                train = trainPart.map { .store(path: storePath, selection: StoreSelection(source: source, split: $0, task: task, scheme: splitScheme)) }
                dev = devPart.map { .store(path: storePath, selection: StoreSelection(source: source, split: $0, task: task, scheme: splitScheme)) }
                test = testPart.map { .store(path: storePath, selection: StoreSelection(source: source, split: $0, task: task, scheme: splitScheme)) }
            } else {
                for k in ["source", "task", "train_split", "dev_split", "test_split", "split_scheme"] where data[k] != nil {
                    throw data.bad(k, data[k]!, "nothing: \(k) selects from a corpus store, and [data] names no store")
                }
                /// A file source: a path, or `{ file = "…", label_map = "…" [, rate = r] }`.
                func fileSource(_ value: SpecValue, key: String, rated: Bool) throws -> (source: DataSource, rate: Double?) {
                    switch value {
                    case .string(let p): return (.file(try resolve(p, key: key)), nil)
                    case .table(let entries):
                        let t = SpecTable(file: path, prefix: key, entries: entries)
                        try t.checkKeys(rated ? sourceKeys : sourceKeys.filter { $0 != "rate" })
                        var source = DataSource.file(try resolve(try t.requiredString("file"), key: key + ".file"))
                        if let map = try t.string("label_map") { source = .mapped(source, labelMap: try resolve(map, key: key + ".label_map")) }
                        let rate = try t.double("rate", range: 1e-9...1e9)
                        if rated && rate == nil { throw TaskError.missingKey(file: path, key: key + ".rate") }
                        return (source, rate)
                    default:
                        throw data.bad(key.replacingOccurrences(of: "data.", with: ""), value,
                                       rated ? "a table { file = \"…\", rate = r[, label_map = \"…\"] }" : "a path, or a table { file = \"…\", label_map = \"…\" }")
                    }
                }
                if case .array(let items)? = data["train"] {
                    guard items.count >= 2 else { throw data.bad("train", .array(items), "a path, or an array of at least two sources { file = \"…\", rate = r }") }
                    trainSources = try items.enumerated().map { i, item in
                        let (source, rate) = try fileSource(item, key: "data.train[\(i)]", rated: true)
                        return TrainingSourceSpec(source: source, rate: rate!)
                    }
                } else {
                    train = try data["train"].map { try fileSource($0, key: "data.train", rated: false).source }
                }
                dev = try data["dev"].map { try fileSource($0, key: "data.dev", rated: false).source }
                test = try data["test"].map { try fileSource($0, key: "data.test", rated: false).source }
            }
        }

        var target: TargetDomain?
        if let t = try top.table("target") {
            try t.checkKeys(targetKeys, elsewhere: allKeys)
            if let store = try t.string("store") {
                if let v = t["text"] { throw t.bad("text", v, "nothing: [target] names a corpus store (store = …); select with source and split") }
                if let v = t["format"] { throw t.bad("format", v, "nothing: a corpus store's documents are texts already") }
                var selection = StoreSelection(source: try t.string("source"), split: nil, scheme: try t.string("split_scheme") ?? "default")
                if let sp = try t.string("split") {
                    guard let part = SplitPart(rawValue: sp) else { throw t.bad("split", .string(sp), "train, dev or test") }
                    selection.split = part
                }
                target = TargetDomain(text: .store(path: try resolve(store, key: "target.store"), selection: selection))
            } else {
                for k in ["source", "split", "split_scheme"] where t[k] != nil {
                    throw t.bad(k, t[k]!, "nothing: \(k) selects from a corpus store, and [target] names no store")
                }
                let text = try resolve(try t.requiredString("text"), key: "target.text")
                let format = try t.string("format") ?? (kind == .tokenClassification ? "conll" : "lines")
                switch format {
                case "lines": target = TargetDomain(text: .lines(text))
                case "conll": target = TargetDomain(text: .conll(text))
                default: throw t.bad("format", .string(format), "\"lines\" (one text per line) or \"conll\" (CoNLL sentences, tags ignored)")
                }
            }
            if let d = try t.string("dev") {
                if dev != nil { throw t.bad("dev", .string(d), "nothing besides data.dev: a run has one dev set") }
                var source = DataSource.file(try resolve(d, key: "target.dev"))
                if let map = try t.string("label_map") { source = .mapped(source, labelMap: try resolve(map, key: "target.label_map")) }
                dev = source
            } else if let v = t["label_map"] {
                throw t.bad("label_map", v, "nothing without target.dev (the label map applies to the target's dev set)")
            }
        }

        var baseModel: String?
        var window = WindowOptions(maxLength: kind == .questionAnswering ? 384 : 128, stride: kind == .questionAnswering ? 128 : 32)
        var maxAnswerLength = 30
        var pooling: BertForSequenceClassification.Pooling?
        var fromLayer: Int?
        var decoding = TagDecoding.viterbi
        if let model = try top.table("model") {
            try model.checkKeys(modelKeys, elsewhere: allKeys)
            baseModel = try model.string("base").map { try resolve($0, key: "model.base") }
            window.maxLength = try model.int("max_length", min: 8) ?? window.maxLength
            // Without a stride of its own, a shorter window overlaps by a quarter of its length
            // (the defaults, 128/32 and 384/128, keep theirs).
            window.stride = try model.int("stride", min: 0) ?? min(window.stride, window.maxLength / 4)
            maxAnswerLength = try model.int("max_answer_length", range: 1...(1 << 20)) ?? maxAnswerLength
            if kind != .questionAnswering, let v = model["max_answer_length"] {
                throw model.bad("max_answer_length", v, "nothing: only question answering has answers")
            }
            if let p = try model.string("pooling") {
                guard kind == .sequenceClassification else {
                    throw model.bad("pooling", .string(p), "nothing: only sequence classification pools a sentence vector")
                }
                switch p.lowercased() {
                case "cls": pooling = .pooler
                case "mean": pooling = .mean
                default: throw model.bad("pooling", .string(p), "\"cls\" ([CLS] through the pooler, as HuggingFace) or \"mean\" (mean of the last hidden states)")
                }
            }
            fromLayer = try model.int("from_layer", min: 1)
            if let d = try model.choice("decoding", TagDecoding.self) {
                guard kind == .tokenClassification else {
                    throw model.bad("decoding", .string(d.rawValue), "nothing: only tagging decodes tag sequences")
                }
                decoding = d
            }
            guard window.stride < window.maxLength / 2 else {
                throw model.bad("stride", .int(window.stride), "an integer below max_length / 2 (\(window.maxLength / 2))")
            }
        }

        var training = TrainingOptions()
        if let t = try top.table("train") {
            try t.checkKeys(trainKeys, elsewhere: allKeys)
            training.epochs = try t.int("epochs", range: TrainingOptions.epochRange)
            training.learningRate = try t.double("lr", range: 1e-12...10)
            training.batchSize = try t.int("batch_size", range: 1...TrainingOptions.maxBatchSize)
            training.warmupRatio = try t.double("warmup_ratio", range: 0...1)
            training.weightDecay = try t.double("weight_decay", range: 0...10)
            training.seed = try t.int("seed", min: 0)
            training.headLearningRate = try t.double("head_lr", range: 1e-12...10)
            training.freezeEncoder = try t.bool("freeze_encoder")
            training.freezeLayers = try t.int("freeze_layers", range: 0...1024)
            training.gradientAccumulation = try t.int("gradient_accumulation", range: 1...65_536)
            training.maxGradNorm = try t.double("max_grad_norm", range: 0...1e9)
            training.patience = try t.int("patience", min: 1)
            if let alias = try t.int("early_stopping_patience", min: 1) {
                guard training.patience == nil else {
                    throw t.bad("early_stopping_patience", .int(alias), "nothing besides train.patience (the same setting)")
                }
                training.patience = alias
            }
            training.adapt = try t.choice("adapt", AdaptationMethod.self)
            training.adaptWeight = try t.double("adapt_weight", range: 0...1e3)
            training.batching = try t.choice("batching", Batching.self)
            if let w = try t.choice("token_weighting", TokenWeighting.self) {
                guard kind == .tokenClassification else {
                    throw t.bad("token_weighting", .string(w.rawValue), "nothing: only tagging weighs tokens (one target per window elsewhere)")
                }
                training.tokenWeighting = w
            }
            if training.freezeEncoder == true, let k = training.freezeLayers, k > 0 {
                throw t.bad("freeze_layers", .int(k), "nothing when freeze_encoder = true (the whole encoder is frozen)")
            }
            training.unfreezeTop = try t.int("unfreeze_top", min: 0)
            training.gradualUnfreeze = try t.bool("gradual_unfreeze")
            training.layerLearningRateDecay = try t.double("layer_lr_decay", range: 1e-6...1)
            training.cacheFeatures = try t.bool("cache_features")
            if let k = training.unfreezeTop, training.freezeEncoder == true || (training.freezeLayers ?? 0) > 0 {
                throw t.bad("unfreeze_top", .int(k), "nothing beside freeze_encoder or freeze_layers (one way to say which layers train)")
            }
            if training.gradualUnfreeze == true, training.freezeEncoder == true || (training.freezeLayers ?? 0) > 0 {
                throw t.bad("gradual_unfreeze", .bool(true), "nothing beside freeze_encoder or freeze_layers (gradual unfreezing decides which layers train)")
            }
            if training.cacheFeatures == true, training.freezeEncoder != true {
                throw t.bad("cache_features", .bool(true), "true only with freeze_encoder = true (only a frozen encoder's features can be cached)")
            }
        }

        if let method = training.adapt, method != .none, target == nil {
            throw TaskError.missingKey(file: path, key: "target.text")
        }
        return TaskSpec(path: path, name: name, kind: kind, description: try top.string("description"), labels: labels,
                        scheme: scheme, format: format, invalidTags: invalidTags, train: train, trainSources: trainSources,
                        dev: dev, test: test, baseModel: baseModel, window: window, maxAnswerLength: maxAnswerLength,
                        training: training, pooling: pooling, target: target, fromLayer: fromLayer, decoding: decoding)
    }

    /// Expands `${VAR}` and `${VAR:-default}` from `environment`; an unset variable without a
    /// default is an error naming the key.
    static func expand(_ s: String, key: String, file: String, environment: [String: String]) throws -> String {
        var out = "", rest = Substring(s)
        while let open = rest.range(of: "${") {
            out += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].firstIndex(of: "}") else {
                throw TaskError.badValue(file: file, key: key, value: JSONValue.quoted(s), expected: "a path with balanced ${…}")
            }
            let inner = rest[open.upperBound..<close]
            let name: Substring, fallback: Substring?
            if let sep = inner.range(of: ":-") { name = inner[..<sep.lowerBound]; fallback = inner[sep.upperBound...] } else { name = inner; fallback = nil }
            if let v = environment[String(name)], !v.isEmpty {
                out += v
            } else if let fallback {
                out += fallback
            } else {
                throw TaskError.badValue(file: file, key: key, value: JSONValue.quoted(s), expected: "a path whose variable $\(name) is set (or ${\(name):-default})")
            }
            rest = rest[rest.index(after: close)...]
        }
        return out + rest
    }

    /// The base model, or an error naming the spec when it has none and none was given.
    public func requireBaseModel(override: String? = nil) throws -> String {
        if let override { return override }
        guard let baseModel else { throw TaskError.missingKey(file: path, key: "model.base") }
        return baseModel
    }
}
