import Foundation
import GraftEngine
import GraftModels
import GraftTokenizers

/// One class of a zero- or few-shot classifier: its name (the label written out and scored)
/// and an optional description embedded as its zero-shot prototype.
public struct ClassDescription: Sendable, Equatable {
    public var label: String
    public var description: String?

    public init(label: String, description: String?) {
        self.label = label; self.description = description
    }

    /// Parses `--labels`: classes separated by `;`, each `label=description` or a bare `label`
    /// (few-shot, described by its examples only). Spaces around names and descriptions are
    /// trimmed. At least two classes; an empty entry, label or description, a duplicate label,
    /// or (with `requireDescriptions`, zero-shot) a class without a description is an error
    /// naming the entry.
    public static func parse(_ text: String, requireDescriptions: Bool) throws -> [ClassDescription] {
        func bad(_ problem: String) -> TaskError { .invalidArgument("--labels \"\(text)\": \(problem)") }
        var classes: [ClassDescription] = []
        for (i, entry) in text.split(separator: ";", omittingEmptySubsequences: false).enumerated() {
            let item = entry.trimmingCharacters(in: .whitespaces)
            guard !item.isEmpty else { throw bad("entry \(i + 1) is empty (classes are separated by \";\")") }
            let label: String, description: String?
            if let eq = item.firstIndex(of: "=") {
                label = item[..<eq].trimmingCharacters(in: .whitespaces)
                description = item[item.index(after: eq)...].trimmingCharacters(in: .whitespaces)
                guard !description!.isEmpty else { throw bad("class \"\(label)\" has an empty description after \"=\"") }
            } else {
                label = item; description = nil
            }
            guard !label.isEmpty else { throw bad("entry \(i + 1) (\"\(item)\") has an empty label before \"=\"") }
            guard !classes.contains(where: { $0.label == label }) else { throw bad("label \"\(label)\" is given twice") }
            if requireDescriptions && description == nil {
                throw bad("class \"\(label)\" has no description (zero-shot needs LABEL=DESCRIPTION; give --examples FILE for few-shot)")
            }
            classes.append(ClassDescription(label: label, description: description))
        }
        guard classes.count >= 2 else { throw bad("\(classes.count) class; give at least two, e.g. \"positive=a great film;negative=a bad film\"") }
        return classes
    }
}

/// Zero- and few-shot sequence classification with a sentence-embedding model (e.g.
/// all-MiniLM-L6-v2): a ``TaskHead`` with nothing to train, so ``TaskRunner`` (and with it
/// `graft classify` and `graft evaluate`) runs it exactly as a fine-tuned classifier.
///
/// Each class has a prototype `p_k`, a unit vector `[C]`: the normalised mean of the
/// ``SentenceEmbedder`` embeddings of its few-shot examples and of its description (one more
/// member when it has one); zero-shot, the description's embedding alone. A window `x` (masked
/// mean of the last hidden states, L2-normalised: the embedder's own embedding) gets the logits
/// `cos(x, p_k) / T` `[L]`, so the plugin's softmax gives the scores `softmax(cos / T)` and the
/// label is the most similar prototype.
public final class EmbeddingClassifierHead: TaskHead {
    public let kind = HeadKind.sequenceClassification
    public let embedder: SentenceEmbedder
    /// The class labels, in id order.
    public let labels: [String]
    /// `[L][C]` unit-length prototypes.
    public let prototypes: [[Float]]
    /// The softmax temperature `T` (> 0).
    public let temperature: Float

    /// - Parameters:
    ///   - classes: the labels and their optional descriptions, in id order.
    ///   - examples: few-shot examples (each label one of `classes`; `id` names the file and line).
    ///     A class needs a description or at least one example.
    public init(embedder: SentenceEmbedder, classes: [ClassDescription], examples: [TextExample] = [],
                temperature: Float) throws {
        guard temperature > 0, temperature.isFinite else {
            throw TaskError.invalidArgument("the temperature must be a positive number, got \(temperature)")
        }
        var members = [[String]](repeating: [], count: classes.count)
        for e in examples {
            guard let label = e.label, let k = classes.firstIndex(where: { $0.label == label }) else {
                throw TaskError.unknownLabel(TaskLocation(file: e.id), label: e.label ?? "", known: classes.map(\.label))
            }
            members[k].append(e.text)
        }
        for (k, c) in classes.enumerated() {
            if let d = c.description { members[k].append(d) }
            guard !members[k].isEmpty else {
                throw TaskError.invalidArgument("class \"\(c.label)\" has neither a description nor an example")
            }
        }
        let embeddings = try embedder.embed(members.flatMap { $0 })
        var at = 0
        prototypes = members.map { m in
            defer { at += m.count }
            return Self.normalisedMean(Array(embeddings[at..<(at + m.count)]))
        }
        self.embedder = embedder
        labels = classes.map(\.label)
        self.temperature = temperature
    }

    /// The mean of `vectors` (accumulated in Double), scaled to unit length (`/ max(|m|, 1e-12)`).
    public static func normalisedMean(_ vectors: [[Float]]) -> [Float] {
        let c = vectors.first?.count ?? 0
        var sum = [Double](repeating: 0, count: c)
        for v in vectors { for i in 0..<c { sum[i] += Double(v[i]) } }
        let mean = sum.map { $0 / Double(max(vectors.count, 1)) }
        let norm = max(mean.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
        return mean.map { Float($0 / norm) }
    }

    /// `cos(x, p_k) / T` for each class of one unit-length embedding `x` `[C]`.
    public func logits(_ embedding: [Float]) -> [Float] {
        prototypes.map { p in
            var dot = 0.0
            for i in 0..<p.count { dot += Double(p[i]) * Double(embedding[i]) }
            return Float(dot / Double(temperature))
        }
    }

    public func forward(_ batch: FeatureBatch) throws -> [HeadOutput] {
        let encoder = embedder.encoder
        let h = try encoder.forward(inputIds: batch.inputIds, tokenTypeIds: encoder.config.typeVocabSize > 0 ? batch.typeIds : nil,
                                    attentionMask: batch.attentionMask, batch: batch.batchSize, seqLen: batch.length, training: false,
                                    inference: true)
        let mask = Tensor(shape: [batch.batchSize, batch.length], values: batch.attentionMask.map { $0 != 0 ? 1 : 0 })
        return try embedder.embeddings(h, mask: mask).map { .sequence(logits: logits($0)) }
    }

    public func loss(_ batch: FeatureBatch, training: Bool) throws -> Float {
        throw TaskError.invalidArgument("a zero-/few-shot embedding classifier has no trainable head (nothing to fine-tune)")
    }

    public func backward(scale: Float) throws {
        throw TaskError.invalidArgument("a zero-/few-shot embedding classifier has no trainable head (nothing to fine-tune)")
    }
}

extension TaskModel {
    /// A sentence-embedding model directory (a BERT encoder such as all-MiniLM-L6-v2, or any
    /// BERT model: its encoder is used) opened as a zero- or few-shot classifier over `classes`,
    /// with `examplesFile` (TSV `label<TAB>text`, each label one of `classes`) for few-shot
    /// prototypes. Windows are up to 256 tokens (at most the model's positions, a quarter
    /// overlapping); a longer document's window probabilities are averaged.
    /// Without `classes`, the classes are the labels of `examplesFile` in order of first appearance.
    public static func embeddingClassifier(_ directory: String, classes given: [ClassDescription]?, examplesFile: String? = nil,
                                           temperature: Float) throws -> TaskModel {
        var classes = given ?? []
        var examples: [TextExample] = []
        if let examplesFile {
            examples = try TSVReader.read(examplesFile, labels: try given.map { try LabelSet($0.map(\.label)) })
            if given == nil {
                for e in examples where !classes.contains(where: { $0.label == e.label }) {
                    classes.append(ClassDescription(label: e.label ?? "", description: nil))
                }
            }
            guard !examples.isEmpty else { throw TaskError.invalidArgument("\(examplesFile): no few-shot examples") }
        }
        guard classes.count >= 2 else {
            throw TaskError.invalidArgument("\(examplesFile ?? "--labels"): \(classes.count) class(es); a classifier needs at least two")
        }
        let labels = try LabelSet(classes.map(\.label))
        let embedder = try SentenceEmbedder(directory: directory)
        let head = try EmbeddingClassifierHead(embedder: embedder, classes: classes, examples: examples, temperature: temperature)
        let maxLength = min(256, embedder.encoder.config.maxPositions)
        let spec = TaskSpec(path: directory, name: examples.isEmpty ? "zero-shot" : "few-shot", kind: .sequenceClassification,
                            description: nil, labels: labels, scheme: .iob2, format: .tsv, invalidTags: .error,
                            train: nil, dev: nil, test: nil, baseModel: nil,
                            window: WindowOptions(maxLength: maxLength, stride: min(32, maxLength / 4)), maxAnswerLength: 30,
                            training: TrainingOptions(), pooling: nil)
        return TaskModel(spec: spec, plugin: try TextClassificationPlugin(spec: spec), head: head,
                         tokenizer: embedder.tokenizer, directory: directory)
    }
}
