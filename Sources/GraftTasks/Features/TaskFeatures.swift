import Foundation
import GraftTokenizers

/// A window for token classification with its word alignment and, for labelled data, its loss
/// labels.
public struct TokenClassificationFeature: Sendable, Equatable {
    public var window: Window
    /// `[T]` the example's word (of ``TaggedSentence/wordOffsets``) each token belongs to.
    public var words: [Int?]
    /// `[T]` loss labels: the word's tag id on the first subword of each word in this window,
    /// ``ignoreIndex`` (-100) on the other subwords and specials; nil for unlabelled text.
    public var labels: [Int]?
}

/// A window of a question + context pair with its span labels.
public struct QuestionAnsweringFeature: Sendable, Equatable {
    public var window: Window
    /// `[T]` true for tokens of the context (answers can only be there).
    public var contextMask: [Bool]
    /// Token positions of the first gold answer in this window, or the first special token's
    /// position (HF's CLS index) when the answer is not inside it; nil for unlabelled data.
    public var startPosition: Int?
    public var endPosition: Int?
}

/// Turning examples into model inputs through the tokenizer's offsets.
public enum FeatureBuilder {
    /// Token-classification windows of `sentence`.
    ///
    /// Tokens are aligned to the sentence's words by character offsets, so the words need not be
    /// the tokenizer's pre-tokenized words (CoNLL tokens, user spans). The first subword of each
    /// word in each window carries the word's label id; every other token gets -100.
    public static func tokenClassification(_ sentence: TaggedSentence, example: Int, tokenizer: Tokenizer,
                                           labels: LabelSet, options: WindowOptions) throws -> [TokenClassificationFeature] {
        let windows = try Windowing.windows(of: sentence.text, example: example, tokenizer: tokenizer, options: options)
        var tagIds: [Int]?
        if let tags = sentence.tags {
            tagIds = try tags.enumerated().map { i, t in
                guard let id = labels.id(of: t) else {
                    throw TaskError.unknownLabel(TaskLocation(file: sentence.id, item: "word \(i + 1) \"\(sentence.words[i])\""),
                                                 label: t, known: labels.labels)
                }
                return id
            }
        }
        let locator = WordLocator(sentence.wordOffsets)
        return windows.map { w in
            let words = locator.wordIndices(tokenOffsets: w.offsets, special: w.specialTokensMask)
            var out: [Int]?
            if let tagIds {
                var l = [Int](repeating: ignoreIndex, count: w.count)
                var previous: Int?
                for i in 0..<w.count {
                    if let word = words[i], word != previous { l[i] = tagIds[word] }
                    previous = words[i]
                }
                out = l
            }
            return TokenClassificationFeature(window: w, words: words, labels: out)
        }
    }

    /// Question-answering windows of `example`: the question whole, the context in windows by
    /// `options.stride`; span labels from the first gold answer (HF's `prepare_train_features`).
    public static func questionAnswering(_ example: QuestionExample, index: Int, tokenizer: Tokenizer,
                                         options: WindowOptions) throws -> [QuestionAnsweringFeature] {
        let windows = try Windowing.windows(question: example.question, context: example.context, example: index,
                                            tokenizer: tokenizer, options: options)
        return windows.map { w in
            let mask = (0..<w.count).map { w.sequenceIds[$0] == 1 && w.specialTokensMask[$0] == 0 }
            var start: Int?, end: Int?
            if let answer = example.answers.first {
                let cls: Int = (0..<w.count).first(where: { w.specialTokensMask[$0] == 1 }) ?? 0
                let context: [Int] = (0..<w.count).filter { mask[$0] }
                if let first = context.first, let last = context.last,
                   w.offsets[first].lowerBound <= answer.start, w.offsets[last].upperBound >= answer.end {
                    start = context.last(where: { w.offsets[$0].lowerBound <= answer.start })
                    end = context.first(where: { w.offsets[$0].upperBound >= answer.end })
                    if start == nil || end == nil || end! < start! { start = cls; end = cls }
                } else {
                    start = cls; end = cls
                }
            }
            return QuestionAnsweringFeature(window: w, contextMask: mask, startPosition: start, endPosition: end)
        }
    }

    /// Text-classification windows of `example` (documents longer than the window are split;
    /// their probabilities are averaged by ``ClassificationDecoder/average(_:labelCount:)``).
    public static func textClassification(_ example: TextExample, index: Int, tokenizer: Tokenizer,
                                          options: WindowOptions) throws -> [Window] {
        guard !example.text.isEmpty else {
            throw TaskError.malformed(TaskLocation(file: example.id), reason: "empty document")
        }
        return try Windowing.windows(of: example.text, example: index, tokenizer: tokenizer, options: options)
    }
}
