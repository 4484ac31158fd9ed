import Foundation
import GraftSupport
import Testing
import GraftEngine
import GraftTokenizers
@testable import GraftModels

/// Dropping attention heads (`ModelSurgery.droppingHeads`, HuggingFace's `pruned_heads` layout):
/// the pruned model computes what the original computes with those heads' outputs removed.
struct HeadPruningTests {
    static func config(labels: [String]? = nil) -> ModelConfig {
        var c = ModelConfig(kind: .bert, vocabSize: 24, hidden: 8, layers: 3, heads: 4, ffn: 16, maxPositions: 16,
                            dropout: 0, attentionDropout: 0, padTokenId: 0)
        c.labels = labels
        return c
    }

    static let input = SurgeryTests.input

    /// The reference: the original with the dropped heads' value rows (weights and biases) zeroed,
    /// so their context is zero and the output projection gets nothing from them.
    static func silencing(_ heads: [Int: [Int]], in store: ParameterStore, hidden: Int, heads count: Int) throws {
        let d = hidden / count
        for (layer, list) in heads {
            let w = try store.parameter(named: "encoder.layer.\(layer).attention.self.value.weight")
            let b = try store.parameter(named: "encoder.layer.\(layer).attention.self.value.bias")
            for h in list {
                store.value(w).advanced(by: h * d * hidden).update(repeating: 0, count: d * hidden)
                store.value(b).advanced(by: h * d).update(repeating: 0, count: d)
            }
        }
    }

    @Test func droppedHeadsEqualSilencedHeads() throws {
        let model = try BertForSequenceClassification(config: Self.config(labels: ["a", "b"]), numLabels: 2, seed: 3)
        randomize(model.store, seed: 21)
        let heads = [0: [1], 2: [0, 3]]
        let cut = try #require(try ModelSurgery.droppingHeads(heads, of: model) as? BertForSequenceClassification)
        #expect(cut.config.prunedHeads == [0: [1], 2: [0, 3]] && cut.config.heads == 4)
        #expect(try cut.store.parameter(named: "encoder.layer.2.attention.self.query.weight").shape == [4, 8])
        #expect(try cut.store.parameter(named: "encoder.layer.2.attention.output.dense.weight").shape == [8, 4])
        #expect(try cut.store.parameter(named: "encoder.layer.1.attention.self.key.weight").shape == [8, 8])
        let got = try cut.logits(Self.input).array
        let before = try model.logits(Self.input).array
        try Self.silencing(heads, in: model.store, hidden: 8, heads: 4)
        let want = try model.logits(Self.input).array
        #expect(zip(got, want).allSatisfy { abs($0 - $1) <= 1e-6 }, "\(got) vs \(want)")
        #expect(zip(before, want).contains { abs($0 - $1) > 1e-4 }, "the heads mattered")

        // Saved with pruned_heads (num_attention_heads unchanged, as transformers), reopened alike.
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try ModelDirectory.save(cut, tokenizer: try smallWordPieceTokenizer(), to: dir.path + "/pruned")
        let json = try JSONValue.parse(try String(contentsOfFile: dir.path + "/pruned/config.json", encoding: .utf8), path: "config.json")
        #expect(json["pruned_heads"]?.serialized() == "{\"0\":[1],\"2\":[0,3]}" && json["num_attention_heads"]?.int == 4)
        let reopened = try #require(try ModelDirectory.open(dir.path + "/pruned").model as? BertForSequenceClassification)
        #expect(try reopened.logits(Self.input).array == got)
        // transformers 5 cannot load pruned heads: export refuses, naming them.
        #expect(throws: ModelError.self) { try ModelDirectory.export(cut, tokenizer: try smallWordPieceTokenizer(), to: dir.path + "/hf") }
        do { try ModelDirectory.export(cut, tokenizer: try smallWordPieceTokenizer(), to: dir.path + "/hf") } catch {
            #expect("\(error)".contains("pruned attention heads") && "\(error)".contains("0: [1], 2: [0, 3]"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/hf/config.json"))

        // Dropping more heads later merges with the recorded ones; cutting layers renumbers them.
        let more = try ModelSurgery.droppingHeads([2: [2]], of: cut)
        #expect(more.config.prunedHeads == [0: [1], 2: [0, 2, 3]])
        let kept = try #require(try ModelSurgery.keepingLayers([1, 2], of: cut) as? BertForSequenceClassification)
        #expect(kept.config.prunedHeads == [1: [0, 3]])
        cut.bert.skippedLayers = [0]
        #expect(try kept.logits(Self.input).array == (try cut.logits(Self.input).array))
    }

    /// Gradients through pruned blocks match finite differences.
    @Test func prunedModelGradientsMatchFiniteDifferences() throws {
        let model = try BertForSequenceClassification(config: Self.config(labels: ["a", "b", "c"]), numLabels: 3, seed: 5)
        randomize(model.store, seed: 22)
        let cut = try #require(try ModelSurgery.droppingHeads([0: [0, 2], 1: [3]], of: model) as? BertForSequenceClassification)
        let labels: [Int32] = [2, 0]
        cut.store.zeroGrads()
        _ = try cut.loss(Self.input, labels: labels, training: true)
        try cut.backward(scale: 1)
        let checked = try expectGradientsMatch(cut.store, maxPerVar: 6) { Double(try cut.loss(Self.input, labels: labels, training: false).loss) }
        #expect(checked > 50)
    }

    @Test func badHeadListsAreRefusedClearly() throws {
        let model = try BertModel(config: Self.config(), seed: 1)
        func message(_ text: String) -> String {
            do { _ = try ModelSurgery.droppingHeads(try ModelSurgery.parseHeads(text), of: model); return "" } catch { return "\(error)" }
        }
        #expect(try ModelSurgery.parseHeads("0:1, 2:0,2:3") == [0: [1], 2: [0, 3]])
        #expect(message("0-1").contains("not LAYER:HEAD"))
        #expect(message("0:1,").contains("not LAYER:HEAD"))
        #expect(message("3:0").contains("layer 3 is out of range"))
        #expect(message("0:4").contains("head 4 of layer 0 is out of range"))
        #expect(message("0:1,0:1").contains("listed twice"))
        #expect(message("1:0,1:1,1:2,1:3").contains("leave layer 1 with none"))
        let pruned = try ModelSurgery.droppingHeads([0: [1]], of: model)
        #expect(throws: ModelError.self) { _ = try ModelSurgery.droppingHeads([0: [1]], of: pruned) }
        let gpt = try GPTForCausalLM(config: SurgeryTests.config(.gpt), seed: 1)
        #expect(throws: ModelError.self) { _ = try ModelSurgery.droppingHeads([0: [0]], of: gpt) }
        // A config.json whose pruned_heads make no sense is refused with the key named.
        var bad = Self.config()
        bad.prunedHeads = [0: [0, 1, 2, 3]]
        #expect(throws: ModelError.self) { try bad.validate() }
    }
}
