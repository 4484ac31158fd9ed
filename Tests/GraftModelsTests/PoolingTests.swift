import Foundation
import Testing
import GraftEngine
import GraftTokenizers
@testable import GraftModels

/// The pooling of a BERT sentence classifier is part of the model directory: a mean-pooled
/// classifier reopens mean-pooled with the same logits, loads an encoder checkpoint that has a
/// pooler (skipped), and is not exported for transformers.
@Suite struct PoolingTests {
    @Test func meanPoolingRoundTripsAndExportRefuses() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tok = try smallWordPieceTokenizer()
        var config = tinyConfig(.bert, vocab: 24)
        config.labels = ["neg", "pos"]
        let mean = try BertForSequenceClassification(config: config, numLabels: 2, pooling: .mean, seed: 3)
        randomize(mean.store, seed: 4)
        #expect(mean.config.pooling == .mean)
        let path = dir.appendingPathComponent("mean").path
        try ModelDirectory.save(mean, tokenizer: tok, to: path)
        let text = try String(contentsOfFile: path + "/config.json", encoding: .utf8)
        #expect(text.contains("\"graft_pooling\": \"mean\""))
        let reopened = try #require(try ModelDirectory.open(path).model as? BertForSequenceClassification)
        #expect(reopened.pooling == .mean)
        let input = HeadInput(inputIds: [2, 5, 6, 7, 3, 0, 2, 8, 3, 0], attentionMask: [1, 1, 1, 1, 1, 0, 1, 1, 1, 0], batch: 2, seqLen: 5)
        #expect(try reopened.logits(input).array == mean.logits(input).array)
        #expect(throws: ModelError.self) { try ModelDirectory.export(reopened, tokenizer: tok, to: dir.appendingPathComponent("hf").path) }

        // An encoder with a pooler (as all-MiniLM-L6-v2) opened as a mean-pooled classifier: the
        // pooler is skipped and reported, the classifier is fresh.
        let encoder = try BertModel(config: tinyConfig(.bert, vocab: 24), seed: 7, pooler: true)
        let encoderPath = dir.appendingPathComponent("encoder").path
        try ModelDirectory.save(encoder, tokenizer: tok, to: encoderPath)
        let loaded = try ModelDirectory.open(encoderPath, as: "BertForSequenceClassification", labels: ["a", "b", "c"], pooling: .mean)
        let head = try #require(loaded.model as? BertForSequenceClassification)
        #expect(head.pooling == .mean && !head.store.contains("pooler.dense.weight"))
        #expect(loaded.ignored.contains("pooler.dense.weight") && loaded.initialized.contains("classifier.weight"))
        // The default keeps HuggingFace's pooler, loaded from the checkpoint, and exports.
        let cls = try #require(try ModelDirectory.open(encoderPath, as: "BertForSequenceClassification", labels: ["a", "b"]).model as? BertForSequenceClassification)
        #expect(cls.pooling == .pooler && cls.store.contains("pooler.dense.weight"))
        #expect(try cls.store.array(cls.store.parameter(named: "pooler.dense.weight")) == encoder.store.array(encoder.store.parameter(named: "pooler.dense.weight")))
        try ModelDirectory.export(cls, tokenizer: tok, to: dir.appendingPathComponent("hf").path)
        #expect(!(try String(contentsOfFile: dir.appendingPathComponent("hf/config.json").path, encoding: .utf8)).contains("graft_pooling"))
    }
}
