import Foundation
import GraftEngine
import GraftTokenizers
import GraftSupport

/// Sentence embeddings as sentence-transformers computes them: the mean of the last hidden
/// states over real (mask 1) tokens, L2-normalised (`x / max(|x|, 1e-12)`).
///
/// Sentences are encoded in batches padded to the batch's longest member (the tokenizer's
/// own fixed padding is turned off) and truncated to sentence-transformers' `max_seq_length`
/// (`sentence_bert_config.json` in the model directory: 256 for all-MiniLM-L6-v2), else to the
/// tokenizer's truncation length, or to the model's positions when that is shorter or absent.
public final class SentenceEmbedder {
    /// sentence-transformers' settings file beside a model (`max_seq_length`, `do_lower_case`).
    public static let configFile = "sentence_bert_config.json"

    /// The `max_seq_length` of `directory`'s ``configFile``, nil without one (or without the
    /// key); an unreadable file or a length outside 1...2^20 is an error naming the file.
    public static func maxSequenceLength(in directory: String) throws -> Int? {
        let file = directory + "/" + configFile
        guard FileManager.default.fileExists(atPath: file) else { return nil }
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: file),
              let size = attributes[.size] as? Int, size <= 1 << 20,
              let data = FileManager.default.contents(atPath: file) else {
            throw ModelError.badConfig(file: file, problem: "unreadable, or larger than 1 MB")
        }
        let json: JSONValue
        do { json = try JSONValue.parse(String(decoding: data, as: UTF8.self), path: file) } catch {
            throw ModelError.badConfig(file: file, problem: "\(error)")
        }
        guard let value = json["max_seq_length"], !value.isNull else { return nil }
        guard let n = value.int, (1...(1 << 20)).contains(n) else {
            throw ModelError.badConfig(file: file, problem: "max_seq_length \(value.serialized()) is not an integer in 1...\(1 << 20)")
        }
        return n
    }

    public let encoder: BertModel
    public private(set) var tokenizer: Tokenizer
    /// Sentences per forward pass.
    public var batchSize: Int
    private let pool = MeanPool()

    /// `maxLength` (sentence-transformers' `max_seq_length`), when given, replaces the
    /// tokenizer's truncation length; the model's positions bound both.
    public init(encoder: BertModel, tokenizer: Tokenizer, batchSize: Int = 32, maxLength: Int? = nil) {
        self.encoder = encoder
        var t = tokenizer
        t.padding = nil
        let limit = min(maxLength ?? t.truncation?.maxLength ?? encoder.config.maxPositions, encoder.config.maxPositions)
        if t.truncation == nil { t.truncation = Truncation(maxLength: limit) } else { t.truncation!.maxLength = limit }
        self.tokenizer = t
        self.batchSize = max(1, batchSize)
    }

    /// Loads the encoder and tokenizer of a model directory (Graft or HuggingFace BERT).
    public convenience init(directory: String, batchSize: Int = 32) throws {
        let (encoder, tokenizer) = try ModelDirectory.openEncoder(directory)
        self.init(encoder: encoder, tokenizer: tokenizer, batchSize: batchSize, maxLength: try Self.maxSequenceLength(in: directory))
    }

    /// The encodings used for `texts` (unpadded).
    public func encode(_ texts: [String]) throws -> [Encoding] {
        try tokenizer.encodeBatch(texts)
    }

    /// Last hidden states `[B, T, C]` of a batch of encodings padded to the longest, and the mask `[B, T]`.
    public func hiddenStates(_ encodings: [Encoding]) throws -> (hidden: Tensor, mask: Tensor, seqLen: Int) {
        try hiddenStates(ids: encodings.map(\.ids), typeIds: encodings.map(\.typeIds))
    }

    /// Last hidden states `[B, T, C]` of token sequences (`ids[i]`, segment ids `typeIds[i]`,
    /// all real tokens) padded to the longest, and the mask `[B, T]`.
    public func hiddenStates(ids sequences: [[Int32]], typeIds: [[Int32]]) throws -> (hidden: Tensor, mask: Tensor, seqLen: Int) {
        let b = sequences.count
        let t = max(1, sequences.map(\.count).max() ?? 1)
        var ids = [Int32](repeating: encoder.config.padTokenId ?? 0, count: b * t)
        var types = [Int32](repeating: 0, count: b * t)
        var mask = [Int32](repeating: 0, count: b * t)
        for (i, e) in sequences.enumerated() {
            for j in 0..<e.count {
                ids[i * t + j] = e[j]
                types[i * t + j] = j < typeIds[i].count ? typeIds[i][j] : 0
                mask[i * t + j] = 1
            }
        }
        let h = try encoder.forward(inputIds: ids, tokenTypeIds: encoder.config.typeVocabSize > 0 ? types : nil,
                                    attentionMask: mask, batch: b, seqLen: t, training: false, inference: true)
        return (h, Tensor(shape: [b, t], values: mask.map(Float.init)), t)
    }

    /// One L2-normalised embedding per text, in order. Texts are grouped by token count
    /// (batches of ``batchSize``) so that little padding is computed.
    public func embed(_ texts: [String]) throws -> [[Float]] {
        let encodings = try encode(texts)
        return try embed(ids: encodings.map(\.ids), typeIds: encodings.map(\.typeIds))
    }

    /// One L2-normalised embedding per token sequence already cut by a tokenizer (a task's
    /// windows: `ids[i]` with segment ids `typeIds[i]`), in order, batched by length as
    /// ``embed(_:)``.
    public func embed(ids: [[Int32]], typeIds: [[Int32]]) throws -> [[Float]] {
        let order = ids.indices.sorted { (ids[$0].count, $0) < (ids[$1].count, $1) }
        var out = [[Float]](repeating: [], count: ids.count)
        var start = 0
        while start < order.count {
            let idx = Array(order[start..<min(order.count, start + batchSize)])
            let (h, mask, _) = try hiddenStates(ids: idx.map { ids[$0] }, typeIds: idx.map { typeIds[$0] })
            for (target, e) in zip(idx, try embeddings(h, mask: mask)) { out[target] = e }
            start += idx.count
        }
        return out
    }

    /// The embeddings of hidden states `[B, T, C]` with their mask `[B, T]` (1 real, 0 padding;
    /// nil: no padding): the masked mean of each row, L2-normalised (`x / max(|x|, 1e-12)`).
    public func embeddings(_ hidden: Tensor, mask: Tensor?) throws -> [[Float]] {
        let c = encoder.config.hidden
        let pooled = try pool.forward(hidden, mask: mask)
        return (0..<hidden.shape[0]).map { i in
            let row = pooled.data + i * c
            let norm = max(Kernels.l2Norm(row, c), 1e-12)
            return (0..<c).map { Float(Double(row[$0]) / norm) }
        }
    }

    /// Cosine similarity of two vectors (Double accumulation).
    public static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        var dot = 0.0, na = 0.0, nb = 0.0
        for i in 0..<min(a.count, b.count) {
            dot += Double(a[i]) * Double(b[i]); na += Double(a[i]) * Double(a[i]); nb += Double(b[i]) * Double(b[i])
        }
        return dot / max((na * nb).squareRoot(), 1e-300)
    }
}
