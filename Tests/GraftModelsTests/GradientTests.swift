import GraftSupport
import Foundation
import Testing
import GraftEngine
@testable import GraftModels

/// End-to-end finite-difference checks of the language-model losses (every parameter, tied
/// weights included) on tiny models with padding, segments and ignored labels.
@Suite struct GradientTests {
    func bertBatch() -> LMBatch {
        // Batch 2 x 6: the second row has 2 padding positions; 4 labelled positions.
        LMBatch(inputIds: [2, 5, 4, 7, 9, 3, 2, 11, 4, 3, 0, 0],
                tokenTypeIds: [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0],
                attentionMask: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
                labels: [-100, 6, 8, -100, -100, -100, -100, 12, 10, -100, -100, -100],
                batch: 2, seqLen: 6)
    }

    @Test(arguments: [true, false])
    func bertMaskedLMGradients(maskedOnly: Bool) throws {
        let model = try BertForMaskedLM(config: tinyConfig(.bert), seed: 1)
        model.maskedPositionsOnly = maskedOnly
        randomize(model.store, seed: 2)
        let batch = bertBatch()
        model.store.zeroGrads()
        let l = try model.loss(batch, training: false)
        #expect(l.counted == 4)
        #expect(l.loss > 0)
        try model.backward(scale: 1)
        let n = try expectGradientsMatch(model.store) { Double(try model.loss(batch, training: false).loss) }
        #expect(n > 300)
    }

    @Test func bertHeadOnMaskedRowsEqualsFullHead() throws {
        let a = try BertForMaskedLM(config: tinyConfig(.bert), seed: 3)
        let b = try BertForMaskedLM(config: tinyConfig(.bert), seed: 3)
        b.maskedPositionsOnly = false
        randomize(a.store, seed: 4); randomize(b.store, seed: 4)
        a.store.zeroGrads(); b.store.zeroGrads()
        let la = try a.loss(bertBatch(), training: false), lb = try b.loss(bertBatch(), training: false)
        #expect(abs(la.loss - lb.loss) < 1e-5)
        #expect(la.correct == lb.correct && la.counted == lb.counted)
        try a.backward(scale: 0.5); try b.backward(scale: 0.5)
        var worst: Float = 0
        for i in 0..<a.store.count { worst = max(worst, abs(a.store.grads[i] - b.store.grads[i])) }
        #expect(worst < 1e-5, "max gradient difference \(worst)")
    }

    /// Items with different numbers of masked positions (3, 1 and none): the last layer runs at
    /// 3 rows per item, the short lists padded, and loss and gradients equal the full model's.
    @Test func bertLastLayerAtUnevenMaskedRowsEqualsFullModel() throws {
        let batch = LMBatch(inputIds: [2, 5, 4, 7, 9, 3, 2, 11, 4, 3, 0, 0, 2, 6, 6, 3, 0, 0],
                            attentionMask: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0],
                            labels: [-100, 6, 8, -100, 11, -100, -100, -100, 10, -100, -100, -100,
                                     -100, -100, -100, -100, -100, -100],
                            batch: 3, seqLen: 6)
        let selected = try #require(BertForMaskedLM.maskedRows(labels: batch.labels, batch: 3, seqLen: 6))
        #expect(selected.rows == RowSelection(rows: [1, 2, 4, 2, 2, 2, 0, 0, 0], perItem: 3))
        #expect(selected.labels == [6, 8, 11, 10, -100, -100, -100, -100, -100])
        #expect(BertForMaskedLM.maskedRows(labels: [Int32](repeating: -100, count: 6), batch: 1, seqLen: 6) == nil)
        #expect(BertForMaskedLM.maskedRows(labels: [1, 2, 3], batch: 1, seqLen: 3) == nil)
        let a = try BertForMaskedLM(config: tinyConfig(.bert), seed: 8)
        let b = try BertForMaskedLM(config: tinyConfig(.bert), seed: 8)
        b.maskedPositionsOnly = false
        randomize(a.store, seed: 9); randomize(b.store, seed: 9)
        a.store.zeroGrads(); b.store.zeroGrads()
        let la = try a.loss(batch, training: false), lb = try b.loss(batch, training: false)
        #expect(la.counted == 4 && lb.counted == 4 && la.correct == lb.correct)
        #expect(abs(la.loss - lb.loss) < 1e-5)
        try a.backward(scale: 1); try b.backward(scale: 1)
        var worst: Float = 0
        for i in 0..<a.store.count { worst = max(worst, abs(a.store.grads[i] - b.store.grads[i])) }
        #expect(worst < 1e-5, "max gradient difference \(worst)")
    }

    @Test func gptCausalLMGradients() throws {
        let model = try GPTForCausalLM(config: tinyConfig(.gpt), seed: 5)
        randomize(model.store, seed: 6)
        // Batch 2 x 5, next-token labels; the second row is padded after 3 tokens.
        let ids: [Int32] = [1, 4, 7, 2, 9, 3, 8, 5, 0, 0]
        let labels: [Int32] = [4, 7, 2, 9, -100, 8, 5, -100, -100, -100]
        let batch = LMBatch(inputIds: ids, attentionMask: [1, 1, 1, 1, 1, 1, 1, 1, 0, 0], labels: labels, batch: 2, seqLen: 5)
        model.store.zeroGrads()
        let l = try model.loss(batch, training: false)
        #expect(l.counted == 6)
        try model.backward(scale: 1)
        let n = try expectGradientsMatch(model.store) { Double(try model.loss(batch, training: false).loss) }
        #expect(n > 300)
    }

    /// Gradients accumulate across calls and scale with `scale`.
    @Test func backwardAccumulatesScaled() throws {
        let model = try GPTForCausalLM(config: tinyConfig(.gpt), seed: 7)
        let batch = LMBatch(inputIds: [1, 2, 3, 4], labels: [2, 3, 4, -100], batch: 1, seqLen: 4)
        model.store.zeroGrads()
        _ = try model.loss(batch, training: false)
        try model.backward(scale: 1)
        let once = Array(UnsafeBufferPointer(start: model.store.grads, count: model.store.count))
        _ = try model.loss(batch, training: false)
        try model.backward(scale: 2)
        var worst: Float = 0
        for i in 0..<once.count { worst = max(worst, abs(model.store.grads[i] - 3 * once[i])) }
        #expect(worst < 1e-6)
        #expect(once.contains { $0 != 0 })
    }

    /// Dropout is active only in training, is seeded, and replays from a saved RNG state.
    @Test func dropoutIsSeededAndReplayable() throws {
        var cfg = tinyConfig(.bert)
        cfg.dropout = 0.3; cfg.attentionDropout = 0.3
        let a = try BertForMaskedLM(config: cfg, seed: 8), b = try BertForMaskedLM(config: cfg, seed: 8)
        let batch = bertBatch()
        let evalLoss = try a.loss(batch, training: false).loss
        #expect(try a.loss(batch, training: false).loss == evalLoss)
        let saved = a.rng.rng
        let t1 = try a.loss(batch, training: true).loss
        #expect(t1 != evalLoss)
        #expect(try b.loss(batch, training: true).loss == t1)
        let t2 = try a.loss(batch, training: true).loss
        #expect(t2 != t1)
        a.rng.rng = saved
        #expect(try a.loss(batch, training: true).loss == t1)
    }

    @Test func batchValidation() throws {
        let model = try BertForMaskedLM(config: tinyConfig(.bert), seed: 1)
        #expect(throws: ModelError.self) { try model.loss(LMBatch(inputIds: [1, 2], labels: [1], batch: 1, seqLen: 2), training: false) }
        #expect(throws: ModelError.self) { try model.loss(LMBatch(inputIds: [1, 99], labels: [1, 1], batch: 1, seqLen: 2), training: false) }
        #expect(throws: ModelError.self) { try model.loss(LMBatch(inputIds: [1, 2], labels: [1, 50], batch: 1, seqLen: 2), training: false) }
        let long = [Int32](repeating: 1, count: 9)
        #expect(throws: ModelError.self) { try model.loss(LMBatch(inputIds: long, labels: long, batch: 1, seqLen: 9), training: false) }
        // No labelled position: zero loss, and backward is a no-op.
        model.store.zeroGrads()
        let l = try model.loss(LMBatch(inputIds: [1, 2], labels: [-100, -100], batch: 1, seqLen: 2), training: true)
        #expect(l.loss == 0 && l.counted == 0)
        try model.backward(scale: 1)
        #expect(model.store.gradNorm() == 0)
        // Backward once per loss; another forward in between invalidates it.
        let ok = LMBatch(inputIds: [1, 2, 3], labels: [-100, 5, -100], batch: 1, seqLen: 3)
        _ = try model.loss(ok, training: false)
        try model.backward(scale: 1)
        #expect(throws: ModelError.self) { try model.backward(scale: 1) }
        let gpt = try GPTForCausalLM(config: tinyConfig(.gpt), seed: 2)
        _ = try gpt.loss(LMBatch(inputIds: [1, 2, 3], labels: [2, 3, -100], batch: 1, seqLen: 3), training: false)
        _ = try gpt.nextTokenLogits([1, 2])
        #expect(throws: ModelError.self) { try gpt.backward(scale: 1) }
        #expect(throws: ModelError.self) {
            try model.loss(LMBatch(inputIds: [1, 2], tokenTypeIds: [0, 2], labels: [1, 1], batch: 1, seqLen: 2), training: false)
        }
    }
}
