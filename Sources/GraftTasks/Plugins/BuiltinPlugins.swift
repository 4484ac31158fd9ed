import Foundation
import GraftCorpus
import GraftSupport
import GraftTokenizers

/// Opens the corpus store of a store data source.
private func openStore(_ path: String) throws -> CorpusStore {
    guard FileManager.default.fileExists(atPath: path) else { throw TaskError.unreadable(file: path, reason: "no such corpus store") }
    return try CorpusStore(path: path)
}

private func requireFormat(_ spec: TaskSpec, _ expected: DataFormat, _ file: String) throws {
    guard spec.format == expected else {
        throw TaskError.badValue(file: spec.path, key: "data.format", value: "\"\(spec.format.rawValue)\"",
                                 expected: "\(expected.rawValue) for a \(spec.kind.rawValue) task (reading \(file))")
    }
}

/// Reads a source under a label map's source types: a label the map does not cover is an error
/// naming the data's file and line and the map.
private func readMapped<T>(_ map: LabelMap, _ read: () throws -> T) throws -> T {
    do { return try read() } catch TaskError.unknownLabel(let at, let label, _) { throw map.uncovered(at, label: label) }
}

/// Log-softmax of each `[L]` row of `[T, L]` logits (in Double, max-shifted).
func logSoftmaxRows(_ logits: [Float], labelCount l: Int) -> [Float] {
    var out = [Float](repeating: 0, count: logits.count)
    for r in 0..<(logits.count / max(l, 1)) {
        let row = logits[(r * l)..<((r + 1) * l)]
        let m = Double(row.max() ?? 0)
        let lse = m + log(row.reduce(0.0) { $0 + exp(Double($1) - m) })
        for k in 0..<l { out[r * l + k] = Float(Double(logits[r * l + k]) - lse) }
    }
    return out
}

// MARK: - Sequence classification

/// A classification prediction: the label and the probability of every label.
public struct ClassPrediction: Sendable, Equatable {
    public var label: String
    public var scores: [String: Double]
}

/// Sentiment / text classification: TSV `label<TAB>text` or corpus labels; documents longer
/// than the window are split into windows whose probabilities are averaged; accuracy, macro-F1,
/// per-class precision / recall / F1 and the confusion matrix; main metric accuracy.
public struct TextClassificationPlugin: TaskPlugin {
    public static let name = "sentiment"
    public static let aliases = ["classification", "text-classification", "sequence-classification"]
    public static let headKind = HeadKind.sequenceClassification

    public let spec: TaskSpec
    public let labels: LabelSet?
    let classes: LabelSet

    public init(spec: TaskSpec) throws {
        let labels = try Self.requiredLabels(spec)
        self.spec = spec
        self.labels = labels
        classes = labels
    }

    public var outputCount: Int { classes.count }
    public var mainMetric: MainMetric { MainMetric(key: "accuracy") }

    public func examples(from source: DataSource) throws -> [TextExample] {
        switch source {
        case .file(let path):
            try requireFormat(spec, .tsv, path)
            return try TSVReader.read(path, labels: classes)
        case .store(let path, let selection):
            return try StoreReader.textExamples(try openStore(path), path: path, selection, labels: classes)
        case .mapped(let inner, let mapFile):
            let map = try LabelMap.load(mapFile)
            try map.checkTargets(classes, tagging: nil)
            var sourceSpec = spec
            sourceSpec.labels = try LabelSet(map.sourceTypes)
            let raw = try readMapped(map) { try TextClassificationPlugin(spec: sourceSpec).examples(from: inner) }
            return try map.apply(raw, origin: inner.origin)
        }
    }

    public func features(_ example: TextExample, index: Int, tokenizer: Tokenizer) throws -> [TaskFeature] {
        let windows = try FeatureBuilder.textClassification(example, index: index, tokenizer: tokenizer, options: spec.window)
        var target: HeadTarget?
        if let label = example.label {
            guard let id = classes.id(of: label) else {
                throw TaskError.unknownLabel(TaskLocation(file: example.id), label: label, known: classes.labels)
            }
            target = .classID(id)
        }
        return windows.map { TaskFeature(window: $0, target: target) }
    }

    public func decode(_ example: TextExample, features: [TaskFeature], outputs: [HeadOutput]) throws -> ClassPrediction {
        let rows = try outputs.map { o -> [Double] in
            guard case .sequence(let logits) = o, logits.count == classes.count else {
                throw TaskError.invalidArgument("\(example.id): expected [\(classes.count)] sequence logits per window")
            }
            return ClassificationDecoder.softmax(logits)
        }
        let p = try ClassificationDecoder.average(rows, labelCount: classes.count)
        let d = ClassificationDecoder.decide(p, labels: classes)
        return ClassPrediction(label: d.label, scores: d.scores)
    }

    public func makeEvaluator() -> Evaluator { Evaluator(metric: ClassificationMetric(labels: classes)) }

    public struct Evaluator: TaskEvaluator {
        var metric: ClassificationMetric
        public mutating func add(_ example: TextExample, _ prediction: ClassPrediction) throws {
            guard let gold = example.label else { throw TaskError.invalidArgument("\(example.id): no gold label to score against") }
            try metric.add(gold: gold, predicted: prediction.label)
        }
        public var scores: TaskScores {
            let s = metric.scores
            return TaskScores(values: ["accuracy": s.accuracy, "macro_f1": s.macroF1], examples: s.examples, detail: .classification(s))
        }
    }
}

// MARK: - Token classification

/// A tagging prediction: the entities (character offsets of the sentence text) and the tag of
/// each word.
public struct TaggingPrediction: Sendable, Equatable {
    public var entities: [Entity]
    /// `[W]` word tags (a valid sequence of the scheme).
    public var tags: [String]
}

/// NER / tagging: CoNLL columns or corpus spans; first-subword labels (of each of the
/// tokenizer's words inside a labelled word; ``FeatureBuilder/tokenClassification``); windows merged by
/// offsets; Viterbi decoding over the scheme's transitions; seqeval strict entity F1 (main
/// metric `f1`).
public struct TaggingPlugin: TaskPlugin {
    public static let name = "ner"
    public static let aliases = ["tagging", "token-classification"]
    public static let headKind = HeadKind.tokenClassification

    public let spec: TaskSpec
    public let labels: LabelSet?
    let tags: LabelSet
    let viterbi: ViterbiDecoder

    public init(spec: TaskSpec) throws {
        let labels = try Self.requiredLabels(spec)
        self.spec = spec
        self.labels = labels
        tags = labels
        viterbi = try ViterbiDecoder(labels: labels, scheme: spec.scheme)
    }

    public var outputCount: Int { tags.count }
    public var mainMetric: MainMetric { MainMetric(key: "f1") }

    public func examples(from source: DataSource) throws -> [TaggedSentence] {
        switch source {
        case .file(let path):
            try requireFormat(spec, .conll, path)
            return try CoNLLReader.read(path, labels: tags, scheme: spec.scheme, invalidTags: spec.invalidTags)
        case .store(let path, let selection):
            return try StoreReader.taggedSentences(try openStore(path), path: path, selection, labels: tags,
                                                   scheme: spec.scheme, invalidTags: spec.invalidTags)
        case .mapped(let inner, let mapFile):
            let map = try LabelMap.load(mapFile)
            try map.checkTargets(tags, tagging: spec.scheme)
            var sourceSpec = spec
            sourceSpec.labels = try LabelSet.tagging(entityTypes: map.sourceTypes, scheme: spec.scheme)
            let raw = try readMapped(map) { try TaggingPlugin(spec: sourceSpec).examples(from: inner) }
            return try map.apply(raw, scheme: spec.scheme, origin: inner.origin)
        }
    }

    /// An unlabelled document to tag: its words are the tokenizer's pre-tokenized words (so an
    /// entity never includes the punctuation after it), with their offsets in `text`, trimmed of
    /// whitespace and widened to whole characters (``TextSpans``).
    public func document(_ text: String, id: String, tokenizer: Tokenizer) throws -> TaggedSentence {
        guard !text.isEmpty else { throw TaskError.malformed(TaskLocation(file: id), reason: "empty document") }
        var t = tokenizer
        t.truncation = nil
        t.padding = nil
        let e = try t.encode(text)
        let w = Window(example: 0, index: 0, encoding: e)
        let offsets = TextSpans(text).words(Windowing.tokenizerWords([w]))
        return TaggedSentence(id: id, text: text, words: scalarSlices(text, offsets), wordOffsets: offsets, tags: nil, entities: [])
    }

    public func features(_ example: TaggedSentence, index: Int, tokenizer: Tokenizer) throws -> [TaskFeature] {
        try FeatureBuilder.tokenClassification(example, example: index, tokenizer: tokenizer, labels: tags, scheme: spec.scheme,
                                               options: spec.window)
            .map { TaskFeature(window: $0.window, target: $0.labels.map { .tokenLabels($0) }, words: $0.words) }
    }

    public func decode(_ example: TaggedSentence, features: [TaskFeature], outputs: [HeadOutput]) throws -> TaggingPrediction {
        let l = tags.count
        let logProbs = try zip(features, outputs).map { f, o -> [Float] in
            guard case .tokens(let logits, let count) = o, count == f.window.count, logits.count == count * l else {
                throw TaskError.invalidArgument("\(example.id): expected [\(f.window.count), \(l)] token logits per window")
            }
            return logSoftmaxRows(logits, labelCount: l)
        }
        let merged = try WindowMerge.wordRows(windows: features.map(\.window), wordIndices: features.map { $0.words ?? [] },
                                              rows: logProbs, labelCount: l, wordCount: example.words.count)
        var rows = merged.rows
        let uniform = Float(-log(Double(l)))
        for (w, source) in merged.source.enumerated() where source == nil {
            for k in 0..<l { rows[w * l + k] = uniform }  // a word without tokens: no evidence either way
        }
        let path = try viterbi.tags(rows, count: example.words.count, decoding: spec.decoding)
        let entities = try viterbi.entities(rows, tags: path, wordOffsets: example.wordOffsets, text: example.text)
        return TaggingPrediction(entities: entities, tags: path.map { tags.label($0) })
    }

    public func makeEvaluator() -> Evaluator { Evaluator(metric: EntityMetric(scheme: spec.scheme)) }

    public struct Evaluator: TaskEvaluator {
        var metric: EntityMetric
        public mutating func add(_ example: TaggedSentence, _ prediction: TaggingPrediction) throws {
            guard let gold = example.tags else { throw TaskError.invalidArgument("\(example.id): no gold tags to score against") }
            try metric.add(gold: gold, predicted: prediction.tags)
        }
        public var scores: TaskScores {
            let s = metric.scores
            return TaskScores(values: ["f1": s.micro.f1, "precision": s.micro.precision, "recall": s.micro.recall],
                              examples: s.sentences, detail: .entities(s))
        }
    }
}

// MARK: - Extractive QA

/// A QA prediction: the best answer (nil when no span was possible) and the n best.
public struct AnswerPrediction: Sendable, Equatable {
    public var best: AnswerCandidate?
    public var nBest: [AnswerCandidate]
    /// The answer text ("" when there is none), what SQuAD scoring compares.
    public var text: String { best?.text ?? "" }
}

/// Extractive QA: SQuAD v1.1 JSON or corpus questions; question + context windows by document
/// stride; n-best span search; SQuAD v1.1 exact match and F1 (main metric `f1`).
public struct QuestionAnsweringPlugin: TaskPlugin {
    public static let name = "qa"
    public static let aliases = ["question-answering", "extractive-qa"]
    public static let headKind = HeadKind.questionAnswering

    public let spec: TaskSpec
    public var labels: LabelSet? { nil }
    /// How many candidates ``decode(_:features:outputs:)`` keeps.
    public var nBest = 20

    public init(spec: TaskSpec) throws {
        try Self.check(spec)
        self.spec = spec
    }

    public var outputCount: Int { 2 }
    public var mainMetric: MainMetric { MainMetric(key: "f1") }

    public func examples(from source: DataSource) throws -> [QuestionExample] {
        switch source {
        case .file(let path):
            try requireFormat(spec, .squad, path)
            return try Self.labelled(SquadReader.read(path), origin: path)
        case .store(let path, let selection):
            return try Self.labelled(StoreReader.questions(try openStore(path), path: path, selection), origin: path)
        case .mapped(let inner, let mapFile):
            throw TaskError.badValue(file: spec.path, key: "label_map", value: JSONValue.quoted(mapFile),
                                     expected: "nothing for \(inner.origin): question answering has no labels to map")
        }
    }

    /// `examples` as labelled data (what training and scoring read): each with a question and
    /// at least one answer, else an error naming `origin` and the question (found here, not
    /// mid-training or mid-evaluation).
    static func labelled(_ examples: [QuestionExample], origin: String) throws -> [QuestionExample] {
        for e in examples {
            let at = TaskLocation(file: origin, item: "question \(e.id)")
            if isBlank(e.question) { throw TaskError.malformed(at, reason: "empty question") }
            if e.answers.isEmpty {
                throw TaskError.malformed(at, reason: "no answer: SQuAD v1.1 training and scoring need at least one per question (unanswerable questions, SQuAD 2.0, are not supported)")
            }
        }
        return examples
    }

    /// Why `question` cannot be asked of any context with this model's windows (it is too long
    /// for `model.max_length` with the specials and the stride), or nil when it can.
    public func questionProblem(_ question: String, tokenizer: Tokenizer) -> String? {
        do {
            _ = try Windowing.windows(question: question, context: "x", example: 0, tokenizer: tokenizer, options: spec.window)
            return nil
        } catch TaskError.invalidArgument(let reason) {
            return reason
        } catch {
            return "\(error)"
        }
    }

    public func features(_ example: QuestionExample, index: Int, tokenizer: Tokenizer) throws -> [TaskFeature] {
        let features: [QuestionAnsweringFeature]
        do {
            features = try FeatureBuilder.questionAnswering(example, index: index, tokenizer: tokenizer, options: spec.window)
        } catch TaskError.invalidArgument(let reason) {
            throw TaskError.invalidArgument("question \(example.id): \(reason)")   // which one of many
        }
        return features.map { f in
            var target: HeadTarget?
            if let s = f.startPosition, let e = f.endPosition { target = .span(start: s, end: e) }
            return TaskFeature(window: f.window, target: target, contextMask: f.contextMask)
        }
    }

    public func decode(_ example: QuestionExample, features: [TaskFeature], outputs: [HeadOutput]) throws -> AnswerPrediction {
        var starts: [[Float]] = [], ends: [[Float]] = []
        for o in outputs {
            guard case .span(let s, let e) = o else { throw TaskError.invalidArgument("question \(example.id): expected start/end logits per window") }
            starts.append(s)
            ends.append(e)
        }
        let qa = features.map { f in
            QuestionAnsweringFeature(window: f.window, contextMask: f.contextMask ?? [], startPosition: nil, endPosition: nil)
        }
        let candidates = try AnswerSearch.nBest(features: qa, startLogits: starts, endLogits: ends, context: example.context,
                                                n: nBest, maxAnswerLength: spec.maxAnswerLength)
        return AnswerPrediction(best: candidates.first, nBest: candidates)
    }

    public func makeEvaluator() -> Evaluator { Evaluator() }

    public struct Evaluator: TaskEvaluator {
        var metric = QAMetric()
        public mutating func add(_ example: QuestionExample, _ prediction: AnswerPrediction) throws {
            guard !example.answers.isEmpty else { throw TaskError.invalidArgument("question \(example.id): no gold answer to score against") }
            metric.add(prediction: prediction.text, groundTruths: example.answers.map(\.text))
        }
        public var scores: TaskScores {
            TaskScores(values: ["exact_match": metric.exactMatch, "f1": metric.f1], examples: metric.count,
                       detail: .answers(exactMatch: metric.exactMatch, f1: metric.f1))
        }
    }
}
