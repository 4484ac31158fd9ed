import Foundation
import GraftSupport
import GraftTokenizers
import Testing
@testable import GraftModels

/// ``CorpusShift`` and ``TextSetProfile`` against hand-computed values, and `graft corpus shift`.
struct CorpusShiftTests {
    static func tokenizer() throws -> Tokenizer {
        try Tokenizer.bert(vocab: Vocabulary(tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "cat", "##s"]))
    }

    @Test func vocabularyMeasuresMatchAHandComputation() throws {
        let tok = try Self.tokenizer()
        // Source words a b b c (types a, b, c); target words c d (d unknown to the vocabulary).
        let s = try TextSetProfile(["a b", "b c"], tokenizer: tok), t = try TextSetProfile(["c d"], tokenizer: tok)
        #expect(s.words == 4 && s.types == 3 && s.counts == ["a": 1, "b": 2, "c": 1])
        #expect(t.pieces == 2 && t.unknownPieces == 1 && t.unknownRate == 0.5 && t.piecesPerWord == 1)
        let shift = CorpusShift(source: s, target: t)
        #expect(shift.typeJaccard == 0.25)          // {c} of {a, b, c, d}
        #expect(shift.typeCoverage == 0.5)          // c of {c, d}
        #expect(shift.tokenCoverage == 0.5)         // 1 of the target's 2 tokens
        // min/max of p_S = {a .25, b .5, c .25} and p_T = {c .5, d .5}: .25 / (.25 + .5 + .5 + .5).
        #expect(abs(shift.tokenJaccard - 1.0 / 7) < 1e-15)
        // "cats" is 2 pieces (cat ##s): 3 pieces for 2 words.
        let pieces = try TextSetProfile(["cats a"], tokenizer: tok)
        #expect(pieces.pieces == 3 && pieces.piecesPerWord == 1.5 && pieces.unknownPieces == 0)
    }

    /// The same texts on both sides: MMD 0 under both kernels, every overlap 1.
    @Test func identicalSetsHaveNoShift() throws {
        let config = ModelConfig(kind: .bert, vocabSize: 10, hidden: 8, layers: 1, heads: 2, ffn: 16, maxPositions: 16,
                                 dropout: 0, attentionDropout: 0, padTokenId: 0)
        let embedder = SentenceEmbedder(encoder: try BertModel(config: config, seed: 3), tokenizer: try Self.tokenizer())
        let texts = ["a b c", "cats", "b b a", "c a"]
        let same = try CorpusShift.measure(source: texts, target: texts, embedder: embedder)
        #expect(same.mmdLinear < 1e-6 && same.mmdRBF < 1e-6 && same.rbfGamma > 0)
        #expect(same.typeJaccard == 1 && same.typeCoverage == 1 && same.tokenJaccard == 1 && same.tokenCoverage == 1)
        let other = try CorpusShift.measure(source: texts, target: ["cats cats", "d d d"], embedder: embedder)
        #expect(other.mmdLinear > 1e-4 && other.mmdRBF > 1e-4 && other.typeJaccard < 1)
    }
}

/// `graft corpus shift` on files of each format, `--json` and the table.
@Suite(.enabled(if: graftExecutable != nil, "needs the built graft executable next to the test bundle"))
struct CorpusShiftCLITests {
    @Test func shiftBetweenFiles() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try TaskCLITests.baseModel(in: dir)
        let tsv = try TaskCLITests.write("label\ttext\npos\tthe red cat\nneg\tthe blue dog\n", dir, "a.tsv")
        let conll = try TaskCLITests.write("the O\nred B-COL\ncat O\n\nthe O\nblue B-COL\ndog O\n", dir, "b.txt")
        let text = try TaskCLITests.write("a big house\n\nthe small tree ran\n", dir, "c.txt")
        // The TSV texts and the CoNLL sentences are the same two texts.
        var r = try runGraft(["corpus", "shift", tsv, conll, "--model", base, "--json", "--threads", "1"])
        #expect(r.0 == 0, "\(r.2)")
        var j = try TaskCLITests.json(Substring(r.1.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(j["type_jaccard"] as? Double == 1 && j["token_coverage"] as? Double == 1, "\(j)")
        #expect((j["mmd_rbf"] as? Double ?? 1) < 1e-6 && (j["mmd_linear"] as? Double ?? 1) < 1e-6, "\(j)")
        r = try runGraft(["corpus", "shift", tsv, text, "--model", base, "--json", "--max-texts", "1"])
        #expect(r.0 == 0, "\(r.2)")
        j = try TaskCLITests.json(Substring(r.1.trimmingCharacters(in: .whitespacesAndNewlines)))
        let stats = try #require(j["target_stats"] as? [String: Any])
        #expect(stats["texts"] as? Int == 1 && stats["texts_available"] as? Int == 2, "\(j)")
        r = try runGraft(["corpus", "shift", tsv, text, "--model", base])
        #expect(r.0 == 0 && r.1.contains("MMD² rbf") && r.1.contains("[UNK] rate"), "\(r.1)")
        r = try runGraft(["corpus", "shift", tsv, dir.appendingPathComponent("none.txt").path, "--model", base])
        #expect(r.0 != 0 && r.2.contains("none.txt"), "\(r.2)")
    }
}
