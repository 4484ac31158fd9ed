import Foundation
import GraftEngine
import GraftTokenizers

/// The vocabulary and tokenization of one set of texts under a model's tokenizer.
public struct TextSetProfile: Sendable, Equatable {
    public var texts: Int
    /// Word tokens: the tokenizer's normalized, pre-tokenized words (``Tokenizer/preTokenize(_:)``).
    public var words: Int
    /// Occurrences of each word type.
    public var counts: [String: Int]
    /// Model pieces (special tokens not added, no truncation).
    public var pieces: Int
    /// Pieces that are the unknown token (`[UNK]`, `<unk>`; 0 for a tokenizer without one).
    public var unknownPieces: Int

    public var types: Int { counts.count }
    /// Share of pieces that are unknown.
    public var unknownRate: Double { pieces > 0 ? Double(unknownPieces) / Double(pieces) : 0 }
    /// Mean pieces per word.
    public var piecesPerWord: Double { words > 0 ? Double(pieces) / Double(words) : 0 }

    public init(_ texts: [String], tokenizer: Tokenizer) throws {
        var tokenizer = tokenizer
        tokenizer.truncation = nil
        tokenizer.padding = nil
        let unknown = ["[UNK]", "<unk>", "<UNK>"].lazy.compactMap { tokenizer.id($0) }.first.map(Int32.init)
        self.texts = texts.count
        words = 0; counts = [:]; pieces = 0; unknownPieces = 0
        for text in texts {
            for w in tokenizer.preTokenize(text) { counts[w, default: 0] += 1; words += 1 }
            let ids = try tokenizer.encode(text, addSpecialTokens: false).ids
            pieces += ids.count
            if let unknown { unknownPieces += ids.lazy.filter { $0 == unknown }.count }
        }
    }
}

/// How far apart two sets of texts are for a model: the MMD between their sentence embeddings
/// and the overlap of their vocabularies, with each set's unknown-piece rate and pieces per word.
public struct CorpusShift: Sendable {
    public var source: TextSetProfile
    public var target: TextSetProfile
    /// `|S ∩ T| / |S ∪ T|` over word types.
    public var typeJaccard: Double
    /// `|S ∩ T| / |T|`: the share of the target's word types that occur in the source.
    public var typeCoverage: Double
    /// `Σ_w min(p_S(w), p_T(w)) / Σ_w max(p_S(w), p_T(w))` over the relative word frequencies
    /// (the weighted Jaccard of the token distributions; 1 for the same distribution).
    public var tokenJaccard: Double
    /// The share of the target's word tokens whose type occurs in the source.
    public var tokenCoverage: Double
    /// Biased MMD² of the L2-normalised sentence embeddings under `exp(-γ‖x - y‖²)`, `γ` by the
    /// median heuristic over both sets (``EmbeddingKernel/medianHeuristic(_:n:d:)``).
    public var mmdRBF: Double
    public var rbfGamma: Double
    /// Biased MMD² under the linear kernel: the squared distance between the mean embeddings.
    public var mmdLinear: Double

    /// The vocabulary measures of two profiles (the MMD fields 0).
    public init(source: TextSetProfile, target: TextSetProfile) {
        self.source = source; self.target = target
        let s = source.counts, t = target.counts
        let shared = t.keys.filter { s[$0] != nil }
        let union = s.count + t.count - shared.count
        typeJaccard = union > 0 ? Double(shared.count) / Double(union) : 1
        typeCoverage = t.isEmpty ? 1 : Double(shared.count) / Double(t.count)
        tokenCoverage = target.words > 0 ? Double(shared.reduce(0) { $0 + t[$1]! }) / Double(target.words) : 1
        var low = 0.0, high = 0.0
        for w in Set(s.keys).union(t.keys) {
            let ps = Double(s[w] ?? 0) / Double(max(source.words, 1)), pt = Double(t[w] ?? 0) / Double(max(target.words, 1))
            low += min(ps, pt); high += max(ps, pt)
        }
        tokenJaccard = high > 0 ? low / high : 1
        mmdRBF = 0; rbfGamma = 0; mmdLinear = 0
    }

    /// All measures of `source` and `target` under `embedder`'s model and tokenizer.
    public static func measure(source: [String], target: [String], embedder: SentenceEmbedder) throws -> CorpusShift {
        guard !source.isEmpty, !target.isEmpty else { throw ModelError.invalidArgument("measuring a shift needs texts on both sides") }
        var shift = CorpusShift(source: try TextSetProfile(source, tokenizer: embedder.tokenizer),
                                target: try TextSetProfile(target, tokenizer: embedder.tokenizer))
        let d = embedder.encoder.config.hidden
        let xs = try embedder.embed(source).flatMap { $0 }, xt = try embedder.embed(target).flatMap { $0 }
        let kernel = EmbeddingKernel.medianHeuristic(xs + xt, n: source.count + target.count, d: d)
        if case .rbf(let gamma) = kernel { shift.rbfGamma = gamma }
        shift.mmdRBF = maximumMeanDiscrepancy(xs, xt, n: source.count, m: target.count, d: d, kernel: kernel)
        shift.mmdLinear = maximumMeanDiscrepancy(xs, xt, n: source.count, m: target.count, d: d, kernel: .linear)
        return shift
    }
}
