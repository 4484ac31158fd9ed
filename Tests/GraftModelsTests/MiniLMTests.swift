import GraftSupport
import Foundation
import Testing
import GraftEngine
import GraftTokenizers
@testable import GraftModels

private let miniLMDir = dataDir.appendingPathComponent("models/all-MiniLM-L6-v2")
private let referenceFile = dataDir.appendingPathComponent("fixtures/minilm/reference.jsonl")
private let cosineFile = dataDir.appendingPathComponent("fixtures/minilm/cosine.json")
private let haveMiniLM = FileManager.default.fileExists(atPath: miniLMDir.appendingPathComponent("model.safetensors").path)
    && FileManager.default.fileExists(atPath: referenceFile.path)

/// Parity with sentence-transformers/all-MiniLM-L6-v2 (reference: numpy float64 forward pass
/// over the float32 weights, `fixtures/minilm/reference.jsonl`). Needs the shared data directory.
@Suite(.enabled(if: haveMiniLM, "needs \(miniLMDir.path) and fixtures/minilm (set GRAFT_DATA_DIR)"))
struct MiniLMTests {
    @Test func loadsHuggingFaceDirectory() throws {
        // As config.json says: a BertModel encoder with its pooler.
        let encoder = try ModelDirectory.open(miniLMDir.path)
        #expect(encoder.architecture.name == "BertModel")
        #expect((encoder.model as? BertModel)?.pooler != nil)
        #expect(encoder.initialized.isEmpty && encoder.ignored == ["embeddings.position_ids"])
        // Into the masked-LM architecture: a fresh head, the pooler ignored.
        let loaded = try ModelDirectory.open(miniLMDir.path, as: "BertForMaskedLM")
        let cfg = loaded.model.config
        #expect(cfg == ModelConfig(kind: .bert, vocabSize: 30522, hidden: 384, layers: 6, heads: 12, ffn: 1536,
                                   maxPositions: 512, typeVocabSize: 2, dropout: 0.1, attentionDropout: 0.1,
                                   layerNormEps: 1e-12, padTokenId: 0))
        #expect(Set(loaded.initialized) == Set(BertForMaskedLM.headParameterNames))
        #expect(Set(loaded.ignored) == ["embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"])
        #expect((loaded.model as? BertForMaskedLM)?.bert.pooler == nil)
        #expect(try ModelDirectory.openEncoder(miniLMDir.path).0.pooler != nil)
    }

    /// Input ids, last hidden states (max abs difference <= 1e-4) and pooled embeddings
    /// (cosine >= 1 - 1e-5) for all 20 reference sentences in one padded batch.
    @Test func reproducesReferenceOutputs() throws {
        let refs = try readJSONLines(referenceFile)
        #expect(refs.count == 20)
        // The references follow tokenizer.json's truncation (128, the transformers recipe);
        // sentence-transformers, and so `graft embed` on this directory, cuts at its
        // sentence_bert_config.json's 256.
        #expect(try SentenceEmbedder(directory: miniLMDir.path).tokenizer.truncation?.maxLength == 256)
        let (encoder, tokenizer) = try ModelDirectory.openEncoder(miniLMDir.path)
        let embedder = SentenceEmbedder(encoder: encoder, tokenizer: tokenizer, batchSize: 32)
        // Input ids exactly as HF tokenizers gives them with tokenizer.json (padded to 128).
        let hfTokenizer = try Tokenizer.load(from: miniLMDir.path)
        for r in refs {
            let e = try hfTokenizer.encode(r["text"] as! String)
            #expect(e.ids.map(Int.init) == r["input_ids"] as! [Int], "\(r["id"]!)")
            #expect(e.attentionMask.map(Int.init) == r["attention_mask"] as! [Int], "\(r["id"]!)")
            #expect(e.typeIds.map(Int.init) == r["token_type_ids"] as! [Int], "\(r["id"]!)")
        }
        let texts = refs.map { $0["text"] as! String }
        let encodings = try embedder.encode(texts)
        let (h, _, t) = try embedder.hiddenStates(encodings)
        var worst = 0.0
        for (i, r) in refs.enumerated() {
            let n = r["n_tokens"] as! Int
            #expect(encodings[i].ids.count == n)
            let expected = r["last_hidden_state"] as! [[Double]]
            #expect(expected.count == n)
            for p in 0..<n { for j in 0..<384 { worst = max(worst, abs(Double(h.data[(i * t + p) * 384 + j]) - expected[p][j])) } }
        }
        print("MiniLM parity: max |last_hidden_state - reference| = \(worst)")
        #expect(worst <= 1e-4)
        let embeddings = try embedder.embed(texts)
        var minCos = 1.0, worstEmb = 0.0
        for (i, r) in refs.enumerated() {
            let ref = (r["sentence_embedding"] as! [Double]).map(Float.init)
            minCos = min(minCos, SentenceEmbedder.cosine(embeddings[i], ref))
            for j in 0..<384 { worstEmb = max(worstEmb, abs(Double(embeddings[i][j]) - Double(ref[j]))) }
        }
        print("MiniLM parity: min cosine(embedding, reference) = \(minCos), max |embedding difference| = \(worstEmb)")
        #expect(minCos >= 1 - 1e-5)
    }

    /// The 5 sentence pairs of `cosine.json`, embedded one batch per pair.
    @Test func reproducesPairCosines() throws {
        let pairs = try JSONSerialization.jsonObject(with: Data(contentsOf: cosineFile)) as! [[String: Any]]
        #expect(pairs.count == 5)
        let embedder = try SentenceEmbedder(directory: miniLMDir.path)
        var worst = 0.0
        for p in pairs {
            let e = try embedder.embed([p["text_a"] as! String, p["text_b"] as! String])
            let c = SentenceEmbedder.cosine(e[0], e[1])
            worst = max(worst, abs(c - (p["cosine"] as! Double)))
        }
        print("MiniLM parity: max |pair cosine - reference| = \(worst)")
        #expect(worst < 1e-5)
    }

    /// Embeddings do not depend on batching (padding is masked).
    @Test func embeddingsIndependentOfBatching() throws {
        let embedder = try SentenceEmbedder(directory: miniLMDir.path)
        let texts = ["A short one.", "A much longer sentence that needs many more word pieces than the first one does."]
        let together = try embedder.embed(texts)
        for (i, text) in texts.enumerated() {
            let alone = try embedder.embed([text])[0]
            #expect(SentenceEmbedder.cosine(alone, together[i]) > 1 - 1e-6)
        }
    }
}
