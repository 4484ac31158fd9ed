/// Trains a WordPiece vocabulary the way HuggingFace tokenizers' `WordPieceTrainer` does: it
/// runs the BPE algorithm with the `##` continuation prefix and keeps the resulting vocabulary
/// (merges are dropped; WordPiece encodes by greedy longest match).
///
/// The default options are those of HuggingFace's `BertWordPieceTokenizer.train`: vocabulary
/// 30,000, minimum frequency 2, alphabet limited to 1,000 characters, special tokens
/// `[PAD] [UNK] [CLS] [SEP] [MASK]` (ids 0 to 4).
///
/// ```swift
/// var counter = WordCounter { text in myBertNormalizeAndSplit(text) }
/// try counter.add(linesOfFile: corpusURL)
/// let result = WordPieceTrainer(.wordPiece(vocabSize: 8000)).train(counter.counts())
/// // result.vocab[0] == "[PAD]", result.vocab contains "##s", result.merges is empty
/// ```
public struct WordPieceTrainer: Sendable {
    /// The settings; a nil ``BPETrainerOptions/continuingSubwordPrefix`` means `##`.
    public var options: BPETrainerOptions

    /// Creates a trainer (defaults: ``BPETrainerOptions/wordPiece(vocabSize:minFrequency:limitAlphabet:specialTokens:)``).
    public init(_ options: BPETrainerOptions = .wordPiece()) {
        self.options = options
    }

    /// Learns a WordPiece vocabulary from `counts`. The result's `merges` is empty and its
    /// `continuingSubwordPrefix` is the prefix used.
    public func train(_ counts: WordCounts) -> TrainingResult {
        var bpeOptions = options
        if bpeOptions.continuingSubwordPrefix == nil { bpeOptions.continuingSubwordPrefix = "##" }
        var result = BPETrainer(bpeOptions).train(counts)
        result.merges = []
        return result
    }
}
