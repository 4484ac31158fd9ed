import GraftEngine
import GraftModels

/// The ``TaskHead`` seam implemented by GraftModels' head models (BERT and GPT-2 sequence
/// classification, token classification, question answering): batches of windows become
/// ``HeadInput``s, logits come back split per window.
public final class ModelTaskHead: TaskHead {
    public let kind: HeadKind
    public let model: any TaskHeadModel
    /// Per-row (per-window) loss weights `[B]` for the next ``loss(_:training:)`` of a sequence-
    /// or token-classification head (instance weighting; a token head weighs every labelled
    /// position of the row); nil weighs every row 1. Question answering takes none.
    public var rowWeights: [Float]?
    /// Sequence classification: rows without a class target count as ignored (-100) instead of
    /// making the batch an error (distillation on unlabelled text: those rows get soft targets only).
    public var unlabelledRowsIgnored = false

    public init(kind: HeadKind, model: any TaskHeadModel) throws {
        switch (kind, model) {
        case (.sequenceClassification, is BertForSequenceClassification), (.sequenceClassification, is GPT2ForSequenceClassification),
             (.tokenClassification, is BertForTokenClassification), (.tokenClassification, is GPT2ForTokenClassification),
             (.questionAnswering, is BertForQuestionAnswering):
            break
        default:
            throw TaskError.invalidArgument("a \(type(of: model)) cannot serve a \(kind.rawValue) task")
        }
        self.kind = kind
        self.model = model
    }

    static func input(_ batch: FeatureBatch) -> HeadInput {
        HeadInput(inputIds: batch.inputIds, tokenTypeIds: batch.typeIds, attentionMask: batch.attentionMask,
                  batch: batch.batchSize, seqLen: batch.length)
    }

    public func forward(_ batch: FeatureBatch) throws -> [HeadOutput] {
        let logits = try model.logits(Self.input(batch))
        return try batch.outputs(logits: logits.array, kind: kind, labelCount: model.numLabels)
    }

    /// The loss and how many of its targets the argmax got right (`correct` of `counted`).
    public func lossAndAccuracy(_ batch: FeatureBatch, training: Bool) throws -> HeadLoss {
        let input = Self.input(batch)
        func missing(_ what: String) -> TaskError {
            TaskError.invalidArgument("a \(kind.rawValue) batch without \(what) targets cannot be trained on")
        }
        switch model {
        case let m as BertForSequenceClassification:
            guard let labels = classLabels(batch) else { throw missing("class") }
            return try m.loss(input, labels: labels, weights: rowWeights, training: training)
        case let m as GPT2ForSequenceClassification:
            guard let labels = classLabels(batch) else { throw missing("class") }
            return try m.loss(input, labels: labels, weights: rowWeights, training: training)
        case let m as BertForTokenClassification:
            guard let labels = batch.tokenLabels else { throw missing("token") }
            return try m.loss(input, labels: labels, weights: rowWeights, training: training)
        case let m as GPT2ForTokenClassification:
            guard let labels = batch.tokenLabels else { throw missing("token") }
            return try m.loss(input, labels: labels, weights: rowWeights, training: training)
        case let m as BertForQuestionAnswering:
            guard rowWeights == nil else { throw TaskError.invalidArgument("question answering takes no per-example loss weights") }
            guard let spans = batch.spanPositions else { throw missing("span") }
            return try m.loss(input, startPositions: spans.start, endPositions: spans.end, training: training)
        default:
            throw TaskError.invalidArgument("no loss for \(type(of: model))")
        }
    }

    /// `[B]` class ids; with ``unlabelledRowsIgnored``, -100 for rows without one.
    private func classLabels(_ batch: FeatureBatch) -> [Int32]? {
        if let labels = batch.classLabels { return labels }
        guard unlabelledRowsIgnored else { return nil }
        return batch.targets.map { t -> Int32 in if case .classID(let c)? = t { return Int32(c) } else { return -100 } }
    }

    public func loss(_ batch: FeatureBatch, training: Bool) throws -> Float {
        try lossAndAccuracy(batch, training: training).loss
    }

    public func backward(scale: Float) throws {
        try model.backward(scale: scale)
    }
}
