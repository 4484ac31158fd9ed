import GraftSupport
import GraftEngine
import GraftTokenizers

/// BERT's masked-LM corruption: choose about `probability` of the non-special positions, set
/// their label to the original id, and replace 80% of them by `[MASK]`, 10% by a random
/// non-special token and keep 10% unchanged. Other positions get label -100 (ignored).
///
/// With ``wholeWord``, the choice is made per word (a token and the continuation pieces that
/// follow it, `##…` in WordPiece): each word is chosen with `probability`, and all of its pieces
/// are masked together; the 80/10/10 draw is still per piece.
public struct MLMMasker: Sendable {
    public var maskTokenId: Int32
    public var vocabSize: Int
    public var probability: Float
    public var wholeWord: Bool
    /// `isSpecial[id]`: never masked, never drawn as a random replacement.
    private let isSpecial: [Bool]
    /// `isContinuation[id]`: the token continues the previous one's word.
    private let isContinuation: [Bool]
    /// Non-special ids, for random replacements.
    private let replaceable: [Int32]

    public init(maskTokenId: Int32, vocabSize: Int, specialIds: Set<Int32>, continuationIds: Set<Int32> = [],
                probability: Float = 0.15, wholeWord: Bool = false) {
        self.maskTokenId = maskTokenId
        self.vocabSize = vocabSize
        self.probability = probability
        self.wholeWord = wholeWord
        var special = [Bool](repeating: false, count: vocabSize)
        for id in specialIds where Int(id) < vocabSize && id >= 0 { special[Int(id)] = true }
        var continuation = [Bool](repeating: false, count: vocabSize)
        for id in continuationIds where Int(id) < vocabSize && id >= 0 { continuation[Int(id)] = true }
        isSpecial = special
        isContinuation = continuation
        replaceable = (0..<Int32(vocabSize)).filter { !special[Int($0)] }
    }

    /// A masker for a WordPiece/BPE tokenizer: specials are its added special tokens, continuations
    /// the vocabulary entries starting with `##` (WordPiece).
    public init(tokenizer: Tokenizer, probability: Float = 0.15, wholeWord: Bool = false) throws {
        guard let mask = tokenizer.id("[MASK]") ?? tokenizer.id("<mask>") else {
            throw ModelError.invalidArgument("the tokenizer has no [MASK] token, which masked-LM pretraining needs")
        }
        let specials = Set(tokenizer.addedTokens.filter(\.special).map(\.id))
        var continuation = Set<Int32>()
        if case .wordPiece(let wp) = tokenizer.model {
            let prefix = Array(wp.continuingSubwordPrefix.unicodeScalars)
            for (id, t) in tokenizer.vocab.tokens.enumerated() where t.unicodeScalars.count > prefix.count && t.unicodeScalars.starts(with: prefix) {
                continuation.insert(Int32(id))
            }
        }
        self.init(maskTokenId: Int32(mask), vocabSize: tokenizer.vocabSize, specialIds: specials,
                  continuationIds: continuation, probability: probability, wholeWord: wholeWord)
    }

    /// Corrupts `ids` (one or more sequences, row-major) in place and returns the labels.
    public func mask(_ ids: inout [Int32], rng: inout RNG) -> [Int32] {
        var labels = [Int32](repeating: -100, count: ids.count)
        var wordChosen = false
        for i in 0..<ids.count {
            let id = ids[i]
            guard id >= 0, Int(id) < vocabSize, !isSpecial[Int(id)] else { wordChosen = false; continue }
            let chosen: Bool
            if wholeWord && isContinuation[Int(id)] && i > 0 {
                chosen = wordChosen
            } else {
                chosen = rng.uniform() < probability
                wordChosen = chosen
            }
            guard chosen else { continue }
            labels[i] = id
            let r = rng.uniform()
            if r < 0.8 {
                ids[i] = maskTokenId
            } else if r < 0.9 {
                ids[i] = replaceable[rng.int(below: replaceable.count)]
            }
        }
        return labels
    }
}
