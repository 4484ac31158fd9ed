import GraftSupport
import Foundation
import Testing
import GraftEngine
@testable import GraftModels

/// Tiny models learn toy tasks: the loss falls far below its starting value (about ln V).
@Suite struct LearningTests {
    /// Rows are runs `s, s+1, s+2, ...` (mod V-1, offset by 1 so 0 stays padding).
    func progression(_ r: inout RNG, batch: Int, seqLen: Int, vocab: Int) -> [Int32] {
        var ids: [Int32] = []
        for _ in 0..<batch {
            let s = r.int(below: vocab - 1)
            for t in 0..<seqLen { ids.append(Int32(1 + (s + t) % (vocab - 1))) }
        }
        return ids
    }

    @Test func gptLearnsToCount() throws {
        var cfg = tinyConfig(.gpt, vocab: 11)
        cfg.hidden = 16; cfg.ffn = 32
        let model = try GPTForCausalLM(config: cfg, seed: 11)
        let opt = AdamW(model.store, weightDecay: 0)
        var r = RNG(seed: 12)
        var first: Float = 0, last: Float = 0
        for step in 0..<60 {
            let ids = progression(&r, batch: 4, seqLen: 8, vocab: 11)
            var labels = [Int32](repeating: -100, count: ids.count)
            for b in 0..<4 { for t in 0..<7 { labels[b * 8 + t] = ids[b * 8 + t + 1] } }
            model.store.zeroGrads()
            let l = try model.loss(LMBatch(inputIds: ids, labels: labels, batch: 4, seqLen: 8), training: true)
            try model.backward(scale: 1)
            try opt.step(model.store, lr: 1e-2)
            if step == 0 { first = l.loss }
            last = l.loss
        }
        #expect(abs(first - log(11)) < 0.5, "initial loss \(first)")
        #expect(last < 0.3 * first, "loss \(first) -> \(last)")
        // Greedy generation continues the count.
        var sampler = try Sampler(temperature: 0)
        let out = try model.generate(prompt: [3, 4, 5], maxNewTokens: 3, sampler: &sampler)
        #expect(out == [6, 7, 8])
    }

    @Test func bertLearnsToFillMaskedCopies() throws {
        // Each row repeats one token from 1...10 (11 is the mask token, never a target); two
        // positions per row are masked and must be read from the rest of the row.
        var cfg = tinyConfig(.bert, vocab: 12)
        cfg.hidden = 16; cfg.ffn = 32
        let model = try BertForMaskedLM(config: cfg, seed: 13)
        let opt = AdamW(model.store, weightDecay: 0)
        var r = RNG(seed: 14)
        var losses: [Float] = []
        for _ in 0..<200 {
            var ids: [Int32] = []
            for _ in 0..<8 { ids += [Int32](repeating: Int32(1 + r.int(below: 10)), count: 8) }
            var labels = [Int32](repeating: -100, count: ids.count)
            for b in 0..<8 {
                for p in [b * 8 + r.int(below: 4), b * 8 + 4 + r.int(below: 4)] {
                    labels[p] = ids[p]
                    ids[p] = 11
                }
            }
            model.store.zeroGrads()
            let l = try model.loss(LMBatch(inputIds: ids, labels: labels, batch: 8, seqLen: 8), training: true)
            try model.backward(scale: 1)
            try opt.step(model.store, lr: 5e-3)
            losses.append(l.loss)
        }
        let first = losses[0], last = losses.suffix(10).reduce(0, +) / 10
        #expect(abs(first - log(12)) < 0.5, "initial loss \(first)")
        #expect(last < 0.3 * first, "loss \(first) -> \(last) (mean of the last 10 steps)")
    }
}
