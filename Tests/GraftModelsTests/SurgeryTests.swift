import Foundation
import GraftSupport
import Testing
import GraftEngine
import GraftTokenizers
@testable import GraftModels

/// Network surgery (`ModelSurgery`, `graft surgery`, `graft finetune --from-layer`): a cut model
/// computes bit for bit what the original computes with the dropped layers skipped.
struct SurgeryTests {
    static func config(_ kind: ModelKind, layers: Int = 4, labels: [String]? = nil) -> ModelConfig {
        var c = ModelConfig(kind: kind, vocabSize: 24, hidden: 8, layers: layers, heads: 2, ffn: 16, maxPositions: 16,
                            dropout: 0, attentionDropout: 0, padTokenId: kind == .bert ? 0 : nil)
        c.labels = labels
        return c
    }

    /// Two rows, the second padded.
    static let input = HeadInput(inputIds: [2, 5, 6, 7, 3, 2, 9, 3, 0, 0], tokenTypeIds: [0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
                                 attentionMask: [1, 1, 1, 1, 1, 1, 1, 1, 0, 0], batch: 2, seqLen: 5)

    @Test func cutEncoderEqualsTheOriginalWithLayersSkipped() throws {
        let original = try BertModel(config: Self.config(.bert), seed: 3, pooler: true)
        randomize(original.store, seed: 8)
        let cut = try #require(try ModelSurgery.keepingLayers([0, 2, 3], of: original) as? BertModel)
        #expect(cut.config.layers == 3 && cut.pooler != nil)
        var expected = Self.config(.bert); expected.layers = 3
        #expect(cut.config == expected)
        let i = Self.input
        let got = try cut.forward(inputIds: i.inputIds, tokenTypeIds: i.tokenTypeIds, attentionMask: i.attentionMask,
                                  batch: 2, seqLen: 5, training: false).array
        original.skippedLayers = [1]
        let want = try original.forward(inputIds: i.inputIds, tokenTypeIds: i.tokenTypeIds, attentionMask: i.attentionMask,
                                        batch: 2, seqLen: 5, training: false).array
        #expect(got == want)
        // Layer 1 of the cut is layer 2 of the original, tensor for tensor.
        #expect(cut.store.array(try cut.store.parameter(named: "encoder.layer.1.attention.self.query.weight"))
                == original.store.array(try original.store.parameter(named: "encoder.layer.2.attention.self.query.weight")))
        // Skipping nothing differs (the test would be vacuous otherwise).
        original.skippedLayers = []
        let all = try original.forward(inputIds: i.inputIds, tokenTypeIds: i.tokenTypeIds, attentionMask: i.attentionMask,
                                       batch: 2, seqLen: 5, training: false).array
        #expect(all != want)
    }

    /// A head on layer K (the first K layers kept) equals the full head model run with the
    /// layers above K skipped; so do GPT-2 heads and the causal LM; the head and pooler are copied.
    @Test func headOnLayerKEqualsTheTruncatedModel() throws {
        let labels = ["a", "b", "c"]
        let bert = try BertForSequenceClassification(config: Self.config(.bert, labels: labels), numLabels: 3, seed: 4)
        randomize(bert.store, seed: 9)
        let cut = try #require(try ModelSurgery.keepingLayers([0, 1], of: bert) as? BertForSequenceClassification)
        #expect(cut.config.layers == 2 && cut.config.labels == labels && cut.pooling == .pooler)
        let got = try cut.logits(Self.input).array
        bert.bert.skippedLayers = [2, 3]
        #expect(got == (try bert.logits(Self.input).array))

        let tagger = try BertForTokenClassification(config: Self.config(.bert, labels: labels), numLabels: 3, seed: 4)
        randomize(tagger.store, seed: 10)
        let cutTagger = try #require(try ModelSurgery.keepingLayers([1, 3], of: tagger) as? BertForTokenClassification)
        let tags = try cutTagger.logits(Self.input).array
        tagger.bert.skippedLayers = [0, 2]
        #expect(tags == (try tagger.logits(Self.input).array))

        var gptInput = Self.input
        gptInput.tokenTypeIds = nil
        let gpt = try GPT2ForSequenceClassification(config: Self.config(.gpt, labels: labels), numLabels: 3, seed: 4)
        randomize(gpt.store, seed: 11)
        let cutGPT = try #require(try ModelSurgery.keepingLayers([0], of: gpt) as? GPT2ForSequenceClassification)
        #expect(cutGPT.config.layers == 1)
        let g = try cutGPT.logits(gptInput).array
        gpt.transformer.skippedLayers = [1, 2, 3]
        #expect(g == (try gpt.logits(gptInput).array))

        let lm = try GPTForCausalLM(config: Self.config(.gpt), seed: 2)
        randomize(lm.store, seed: 12)
        let cutLM = try #require(try ModelSurgery.keepingLayers([0, 3], of: lm) as? GPTForCausalLM)
        let ids: [Int32] = [1, 4, 9, 2]
        let l = try cutLM.logits(inputIds: ids, batch: 1, seqLen: 4).array
        lm.skippedLayers = [1, 2]
        #expect(l == (try lm.logits(inputIds: ids, batch: 1, seqLen: 4).array))
    }

    @Test func savedCutReopensWithTheSameOutputs() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try BertForSequenceClassification(config: Self.config(.bert, labels: ["n", "p"]), numLabels: 2, seed: 4)
        randomize(model.store, seed: 13)
        let cut = try ModelSurgery.keepingLayers(try ModelSurgery.everyLayer(2, of: 4), of: model)
        let path = dir.appendingPathComponent("cut").path
        try ModelDirectory.save(cut, tokenizer: try smallWordPieceTokenizer(), to: path)
        let config = try JSONValue.parse(try String(contentsOfFile: path + "/config.json", encoding: .utf8), path: "config.json")
        #expect(config["num_hidden_layers"]?.int == 2)
        let reopened = try #require(try ModelDirectory.open(path).model as? BertForSequenceClassification)
        let want = try (cut as! BertForSequenceClassification).logits(Self.input).array
        #expect(try reopened.logits(Self.input).array == want)
    }

    @Test func badLayerListsAreRefusedClearly() throws {
        #expect(try ModelSurgery.parseLayers("0, 2,3", of: 4) == [0, 2, 3])
        #expect(try ModelSurgery.everyLayer(2, of: 5) == [0, 2, 4])
        #expect(try ModelSurgery.everyLayer(1, of: 3) == [0, 1, 2])
        func message(_ text: String, of count: Int = 4) -> String {
            do { _ = try ModelSurgery.parseLayers(text, of: count); return "" } catch { return "\(error)" }
        }
        #expect(message("").contains("empty"))
        #expect(message("0,4").contains("layer 4 is out of range") && message("0,4").contains("0..<4"))
        #expect(message("-1").contains("out of range"))
        #expect(message("1,1").contains("layer 1 is listed twice"))
        #expect(message("2,1").contains("not in increasing order"))
        #expect(message("0,x").contains("\"x\"") && message("0,x").contains("not a layer number"))
        #expect(message("0,,1").contains("not a layer number"))
        #expect(throws: ModelError.self) { _ = try ModelSurgery.everyLayer(0, of: 4) }
        let model = try BertModel(config: Self.config(.bert), seed: 1)
        #expect(throws: ModelError.self) { _ = try ModelSurgery.keepingLayers([], of: model) }
        #expect(throws: ModelError.self) { _ = try ModelSurgery.keepingLayers([3, 5], of: model) }
    }
}

/// `graft surgery` and `graft finetune --from-layer` end to end on a tiny BERT.
@Suite(.enabled(if: graftExecutable != nil, "needs the built graft executable next to the test bundle"))
struct SurgeryCLITests {
    @Test func surgeryAndFromLayer() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try TaskCLITests.baseModel(in: dir)   // 2 layers
        let cutPath = dir.appendingPathComponent("cut").path
        var r = try runGraft(["surgery", "--model", base, "--keep-layers", "1", "--out", cutPath, "--json"])
        #expect(r.0 == 0, "\(r.2)")
        let summary = try TaskCLITests.json(try #require(r.1.split(separator: "\n").last))
        #expect(summary["layers"] as? Int == 1 && summary["original_layers"] as? Int == 2, "\(r.1)")
        let cut = try ModelDirectory.open(cutPath)
        let original = try ModelDirectory.open(base)
        #expect(cut.model.config.layers == 1)
        #expect(FileManager.default.contents(atPath: cutPath + "/tokenizer.json") == FileManager.default.contents(atPath: base + "/tokenizer.json"))
        let kept = try original.model.store.parameter(named: "encoder.layer.1.output.dense.weight")
        #expect(cut.model.store.array(try cut.model.store.parameter(named: "encoder.layer.0.output.dense.weight")) == original.model.store.array(kept))

        for (args, text) in [(["--keep-layers", "0,2"], "layer 2 is out of range"), (["--keep-layers", "1,0"], "increasing order"),
                             (["--keep-layers", "0,0"], "listed twice"), (["--keep-layers", ""], "empty"),
                             (["--every", "2", "--keep-layers", "0"], "at most one"), ([], "--drop-heads"),
                             (["--drop-heads", "0:2"], "head 2 of layer 0 is out of range"), (["--drop-heads", "0:0,0:1"], "none of its 2 heads"),
                             (["--drop-heads", "1"], "not LAYER:HEAD")] {
            r = try runGraft(["surgery", "--model", base, "--out", dir.appendingPathComponent("bad").path] + args)
            #expect(r.0 != 0 && r.2.contains(text), "\(args): \(r.2)")
        }

        // Dropping a head records pruned_heads; the model reopens with one head in layer 0.
        let pruned = dir.appendingPathComponent("pruned").path
        r = try runGraft(["surgery", "--model", base, "--drop-heads", "0:1", "--out", pruned, "--json"])
        #expect(r.0 == 0 && r.1.contains("\"pruned_heads\":{\"0\":[1]}"), "\(r.1) \(r.2)")
        let p = try ModelDirectory.open(pruned)
        #expect(p.model.config.prunedHeads == [0: [1]] && p.model.config.layers == 2)
        #expect(try p.model.store.parameter(named: "encoder.layer.0.attention.self.query.weight").shape == [8, 16])

        // The head on layer 1's output: the fine-tuned model has 1 layer and reopens for evaluate/classify.
        let (train, dev) = try FineTuneCLITests.sentimentData(dir)
        let spec = try FineTuneCLITests.sentimentSpec(dir, train: train, dev: dev, model: "from_layer = 1")
        let out = dir.appendingPathComponent("run").path, db = dir.appendingPathComponent("g.sqlite").path
        r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", out, "--db", db, "--threads", "1", "--json"])
        #expect(r.0 == 0, "\(r.2)")
        #expect(try ModelDirectory.config(out + "/best").layers == 1)
        r = try runGraft(["evaluate", "--model", out + "/best", "--data", dev, "--json"])
        #expect(r.0 == 0 && r.1.contains("accuracy"), "\(r.2)")
        r = try runGraft(["classify", "--model", out + "/best"], stdin: "a red cat .\n")
        #expect(r.0 == 0 && r.1.contains("\"label\""), "\(r.2)")
        r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", out + "2", "--db", db, "--from-layer", "3"])
        #expect(r.0 != 0 && r.2.contains("from layer 3") && r.2.contains("2 layers"), "\(r.2)")
    }
}
