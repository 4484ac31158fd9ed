import Foundation
import GraftCorpus

/// A selection of labelled documents in a corpus store: which source (name or id; nil for all),
/// which split part, and for classification which label task.
public struct StoreSelection: Sendable, Equatable {
    public var source: String?
    public var split: SplitPart?
    /// The annotation task: nil reads what `graft corpus add` stores by default (`label` for
    /// classification, `ner` for tagging); a tagger of its own (`--task products`) names it.
    public var task: String?
    /// The split scheme name.
    public var scheme: String

    public init(source: String? = nil, split: SplitPart? = nil, task: String? = nil, scheme: String = "default") {
        self.source = source
        self.split = split
        self.task = task
        self.scheme = scheme
    }

    /// A readable name for errors and ids: `store.sqlite[source/split]`.
    func describe(_ path: String) -> String {
        "\(path)[\(source ?? "*")/\(split?.rawValue ?? "all")]"
    }

    func filter(_ store: CorpusStore) throws -> DocumentFilter {
        var f = DocumentFilter(part: split, scheme: scheme)
        if let source { f.sourceID = try store.source(named: source).id }
        return f
    }
}

/// The same example types as the file readers, read from a corpus store (where `graft corpus
/// add` keeps labels, entity spans and QA annotations). Streams page by page; the first
/// database error is rethrown.
public enum StoreReader {
    /// Classification examples: documents labelled for `selection.task`. An empty text is an
    /// error; a label outside `labels` (when given) is an ``TaskError/unknownLabel(_:label:known:)``.
    public static func textExamples(_ store: CorpusStore, path: String, _ selection: StoreSelection,
                                    labels: LabelSet? = nil) throws -> [TextExample] {
        let stream = store.classificationExamples(task: selection.task ?? "label", try selection.filter(store))
        var out: [TextExample] = []
        for e in try stream.all() {
            let at = TaskLocation(file: selection.describe(path), item: "document \(e.documentID)")
            guard !e.text.isEmpty else { throw TaskError.malformed(at, reason: "empty document") }
            if let labels, labels.id(of: e.label) == nil { throw TaskError.unknownLabel(at, label: e.label, known: labels.labels) }
            out.append(TextExample(id: "doc:\(e.documentID)", text: e.text, label: e.label))
        }
        return out
    }

    /// The selection's documents as unlabelled text examples (no annotation read; empty
    /// documents skipped): the text a distillation teacher labels with soft targets.
    public static func documents(_ store: CorpusStore, _ selection: StoreSelection) throws -> [TextExample] {
        try store.documents(try selection.filter(store)).all().filter { !$0.text.isEmpty }
            .map { TextExample(id: "doc:\($0.id)", text: $0.text, label: nil) }
    }

    /// Tagging examples: CoNLL rows when the document has them (tokens and tags as imported,
    /// IOB or BIOES, re-encoded in `scheme`), else the document's entity spans over its
    /// whitespace-separated words.
    public static func taggedSentences(_ store: CorpusStore, path: String, _ selection: StoreSelection,
                                       labels: LabelSet? = nil, scheme: TagScheme = .iob2,
                                       invalidTags: InvalidTagPolicy = .error) throws -> [TaggedSentence] {
        let stream = store.taggingExamples(task: selection.task ?? "ner", try selection.filter(store))
        var out: [TaggedSentence] = []
        for e in try stream.all() {
            let at = TaskLocation(file: selection.describe(path), item: "document \(e.documentID)")
            let id = "doc:\(e.documentID)"
            if !e.tokens.isEmpty {
                var tags = e.tags
                // The rows keep the imported file's tags: BIOES when it has E-/S- tags
                // (`corpus add --tag-scheme bioes`), else IOB. They are checked under that
                // scheme and, when the task's differs, re-encoded in the task's.
                let stored: TagScheme = tags.contains { $0.hasPrefix("E-") || $0.hasPrefix("S-") } ? .bioes : .iob2
                if let v = stored.firstViolation(tags) {
                    guard invalidTags == .repair else {
                        let note = stored == scheme ? "" : " (the stored tags are \(stored.rawValue.uppercased()), read before conversion to \(scheme.rawValue.uppercased()))"
                        throw TaskError.invalidTagSequence(at, reason: "token \(v.index + 1): \(v.reason)\(note)")
                    }
                    tags = try stored.repaired(tags)
                }
                if stored != scheme { tags = try scheme.tags(for: stored.strictSpans(tags), count: tags.count) }
                for t in tags {
                    if let labels, labels.id(of: t) == nil { throw TaskError.unknownLabel(at, label: t, known: labels.labels) }
                }
                let sentence = try TaggedSentence(id: id, words: e.tokens, tags: tags, scheme: scheme)
                guard sentence.text == e.text else {
                    throw TaskError.offsetMismatch(at, reason: "the stored text is not the CoNLL tokens joined by single spaces")
                }
                out.append(sentence)
            } else {
                let spans = e.spans
                do {
                    let sentence = try TaggedSentence(id: id, text: e.text, entities: spans, scheme: scheme)
                    if let labels, let bad = sentence.tags?.first(where: { labels.id(of: $0) == nil }) {
                        throw TaskError.unknownLabel(at, label: bad, known: labels.labels)
                    }
                    out.append(sentence)
                } catch let TaskError.invalidArgument(message) {
                    throw TaskError.offsetMismatch(at, reason: message)
                }
            }
        }
        return out
    }

    /// QA examples: one per stored question; answers are checked against the context.
    public static func questions(_ store: CorpusStore, path: String, _ selection: StoreSelection) throws -> [QuestionExample] {
        let stream = store.qaExamples(try selection.filter(store))
        var out: [QuestionExample] = []
        for e in try stream.all() {
            let at = TaskLocation(file: selection.describe(path), item: "question \(e.questionID)")
            let context = Array(e.context.unicodeScalars)
            let answers = try e.answers.map { a -> AnswerSpan in
                let span = AnswerSpan(text: a.text, start: a.start)
                guard span.start >= 0, span.end <= context.count, context[span.start..<span.end].elementsEqual(a.text.unicodeScalars) else {
                    throw TaskError.offsetMismatch(at, reason: "answer \"\(a.text)\" does not match the context at \(a.start)")
                }
                return span
            }
            out.append(QuestionExample(id: e.questionID, question: e.question, context: e.context, answers: answers, title: e.title))
        }
        return out
    }
}
