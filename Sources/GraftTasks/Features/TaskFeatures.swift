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
    /// word in each window carries the word's label id. A word the tokenizer splits into several
    /// words of its own ("co-codamol": "co", "-", "codamol"; "U.S."; "@user") also labels the
    /// first subword of each of those with the tag that continues the word's entity in `scheme`
    /// (`B-X` then `I-X`; BIOES `S-X` as `B-X` … `E-X`; `O` stays `O`): `graft tag` reads a raw
    /// document by the tokenizer's words, so every word it reads is one the model was trained on
    /// (trained on first subwords only, it split such words into entities at the punctuation).
    /// Every other token gets -100.
    public static func tokenClassification(_ sentence: TaggedSentence, example: Int, tokenizer: Tokenizer,
                                           labels: LabelSet, scheme: TagScheme = .iob2,
                                           options: WindowOptions) throws -> [TokenClassificationFeature] {
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
        let words = windows.map { locator.wordIndices(tokenOffsets: $0.offsets, special: $0.specialTokensMask) }
        // The tokenizer's words inside each labelled word, in order (global ids: windows overlap).
        var pieces: [Int: [Int]] = [:]
        if tagIds != nil {
            for (w, window) in windows.enumerated() {
                for i in 0..<window.count {
                    if let word = words[w][i], let piece = window.wordIds[i] { pieces[word, default: []].append(piece) }
                }
            }
            for (word, ids) in pieces { pieces[word] = Array(Set(ids)).sorted() }
        }
        return windows.enumerated().map { w, window in
            var out: [Int]?
            if let tagIds, let tags = sentence.tags {
                var l = [Int](repeating: ignoreIndex, count: window.count)
                var previous: (word: Int, piece: Int?)?
                for i in 0..<window.count {
                    guard let word = words[w][i] else { previous = nil; continue }
                    let piece = window.wordIds[i]
                    let first = previous?.word != word
                    let startsPiece = first || (piece != nil && piece != previous?.piece)
                    previous = (word, piece)
                    guard startsPiece else { continue }
                    // A split word's pieces take their piece's tag (its first too: a split S-X
                    // begins with B-X); a whole word its own tag on its first subword.
                    if let piece, let all = pieces[word], all.count > 1, let k = all.firstIndex(of: piece) {
                        l[i] = labels.id(of: scheme.pieceTag(tags[word], piece: k, of: all.count)) ?? (first ? tagIds[word] : ignoreIndex)
                    } else if first {
                        l[i] = tagIds[word]
                    }
                }
                out = l
            }
            return TokenClassificationFeature(window: window, words: words[w], labels: out)
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
