import Foundation

/// The two kinds of tokenizer Graft trains.
public enum TokenizerKind: String, Sendable, CaseIterable {
    /// BERT-style WordPiece (lowercased by default) with `[CLS] … [SEP]` post-processing.
    case wordPiece = "wordpiece"
    /// GPT-2-style byte-level BPE.
    case bpe
}

/// Trains a complete tokenizer: counts words through the kind's normalizer and pre-tokenizer,
/// runs the trainer, and wraps the result in the full pipeline (model, post-processor, decoder).
///
/// ```swift
/// let trainer = TokenizerTrainer(kind: .wordPiece, vocabSize: 8000)
/// var counter = trainer.makeCounter()
/// counter.add(documents: texts)                 // or add(linesOfFile:transform:)
/// let tokenizer = try trainer.finish(counter.counts())
/// try tokenizer.save(to: "out/tokenizer.json")
/// ```
public struct TokenizerTrainer: Sendable {
    public var kind: TokenizerKind
    public var options: BPETrainerOptions
    /// WordPiece only: lowercase and strip accents (bert-base-uncased style).
    public var lowercase: Bool

    /// Special tokens used when none are given: BERT's five for WordPiece, `<|endoftext|>` for BPE.
    public static func defaultSpecialTokens(_ kind: TokenizerKind) -> [String] {
        kind == .wordPiece ? ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] : ["<|endoftext|>"]
    }

    public init(kind: TokenizerKind, vocabSize: Int, minFrequency: Int = 2, limitAlphabet: Int? = nil,
                specialTokens: [String]? = nil, lowercase: Bool = true, threads: Int = 2,
                progress: (@Sendable (_ done: Int, _ total: Int) -> Void)? = nil) {
        self.kind = kind
        self.lowercase = lowercase
        let specials = specialTokens ?? TokenizerTrainer.defaultSpecialTokens(kind)
        switch kind {
        case .wordPiece:
            options = .wordPiece(vocabSize: vocabSize, minFrequency: minFrequency, limitAlphabet: limitAlphabet ?? 1000, specialTokens: specials)
        case .bpe:
            options = .byteLevel(vocabSize: vocabSize, minFrequency: minFrequency, specialTokens: specials)
            options.limitAlphabet = limitAlphabet
        }
        options.threads = threads
        options.progress = progress
    }

    public var normalizer: Normalizer? {
        kind == .wordPiece ? .bert(BertNormalizerOptions(stripAccents: lowercase ? nil : false, lowercase: lowercase)) : nil
    }

    public var preTokenizer: PreTokenizer {
        kind == .wordPiece ? .bert : .byteLevel(addPrefixSpace: false, useRegex: true)
    }

    /// A word counter that splits documents exactly as the trained tokenizer will.
    public func makeCounter(threads: Int? = nil) -> WordCounter {
        let normalizer = self.normalizer, preTokenizer = self.preTokenizer
        return WordCounter(threads: threads ?? options.threads) { text in
            Tokenizer.words(text, normalizer: normalizer, preTokenizer: preTokenizer)
        }
    }

    /// Trains on the counted words and builds the tokenizer.
    public func finish(_ counts: WordCounts) throws -> Tokenizer {
        let result: TrainingResult
        switch kind {
        case .wordPiece: result = WordPieceTrainer(options).train(counts)
        case .bpe: result = BPETrainer(options).train(counts)
        }
        let vocab = Vocabulary(tokens: result.vocab)
        let added = result.specialTokens.compactMap { t in vocab.id(t).map { AddedToken(content: t, id: Int32($0)) } }
        switch kind {
        case .wordPiece:
            guard let cls = vocab.id("[CLS]"), let sep = vocab.id("[SEP]") else {
                throw TokenizerError.invalidArgument("a WordPiece tokenizer needs [CLS] and [SEP] among its special tokens")
            }
            let unk = vocab.id("[UNK]") != nil ? "[UNK]" : result.specialTokens.first ?? "[UNK]"
            return Tokenizer(normalizer: normalizer, preTokenizer: preTokenizer,
                             model: .wordPiece(try WordPiece(vocab: vocab, unkToken: unk)),
                             postProcessor: .bert(cls: .init("[CLS]", Int32(cls)), sep: .init("[SEP]", Int32(sep))),
                             decoder: .wordPiece(prefix: "##", cleanup: true), addedTokens: added)
        case .bpe:
            return Tokenizer.gpt2(model: try BPE(vocab: vocab, merges: result.merges), addedTokens: added)
        }
    }

    /// Convenience: trains on any sequence of documents.
    public func train<S: Sequence>(documents: S) throws -> Tokenizer where S.Element == String {
        var counter = makeCounter()
        counter.add(documents: documents)
        return try finish(counter.counts())
    }
}
