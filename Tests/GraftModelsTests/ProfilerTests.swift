import GraftSupport
import Foundation
import Testing
import GraftEngine
@testable import GraftModels

/// The profile behind `--profile`: a model's regions in order, GEMM time attributed to the regions
/// that ran it, nesting, and nothing recorded (or changed) without a recording profiler.
@Suite struct ProfilerTests {
    let batch = LMBatch(inputIds: [2, 5, 4, 7, 9, 3, 2, 11, 4, 3, 0, 0], attentionMask: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
                        labels: [-100, 6, 8, -100, -100, -100, -100, 12, 10, -100, -100, -100], batch: 2, seqLen: 6)

    func step(_ model: LanguageModel) throws -> Float {
        model.store.zeroGrads()
        let loss = try model.loss(batch, training: false).loss
        try model.backward(scale: 1)
        return loss
    }

    @Test func bertRegionsInOrderWithTheirGEMMs() throws {
        let model = try BertForMaskedLM(config: tinyConfig(.bert), seed: 1)
        randomize(model.store, seed: 2)
        let plainLoss = try step(model)
        let plainGrads = Array(UnsafeBufferPointer(start: model.store.grads, count: model.store.count))
        let profiler = Profiler()
        let loss = try profiler.record { try Profiler.region("step") { try step(model) } }
        // Profiling changes no result.
        #expect(loss == plainLoss)
        #expect(Array(UnsafeBufferPointer(start: model.store.grads, count: model.store.count)) == plainGrads)
        #expect(profiler.regions.map(\.name) == [
            "step", "embeddings forward", "layer 0 forward", "layer 1 forward", "MLM head + loss forward",
            "MLM head backward", "layer 1 backward", "layer 0 backward", "embeddings backward",
        ])
        #expect(profiler.regions.map(\.depth) == [0, 1, 1, 1, 1, 1, 1, 1, 1])
        #expect(profiler.regions.allSatisfy { $0.calls == 1 && $0.seconds >= 0 })
        let byName = Dictionary(uniqueKeysWithValues: profiler.regions.map { ($0.name, $0) })
        // Each layer runs its projections, attention and feed-forward as GEMMs; the embeddings none.
        for name in ["layer 0 forward", "layer 1 backward", "MLM head + loss forward"] {
            #expect(byName[name]!.gemmFlops > 0, "\(name)")
            #expect(byName[name]!.gemmSeconds <= byName[name]!.seconds)
        }
        #expect(byName["embeddings forward"]!.gemmFlops == 0)
        // The enclosing region holds every GEMM of the step, and the children's time.
        let whole = byName["step"]!
        #expect(whole.gemmFlops == profiler.flops)
        let children = profiler.regions.filter { $0.depth == 1 }
        #expect(children.reduce(0) { $0 + $1.gemmFlops } == profiler.flops)
        #expect(children.reduce(0) { $0 + $1.seconds } <= whole.seconds)
        // By shape: every GEMM region under one name, together all of the GEMM time and work.
        #expect(Set(profiler.shapes.map(\.name)).count == profiler.shapes.count)
        #expect(profiler.shapes.reduce(0) { $0 + $1.flops } == profiler.flops)
        #expect(abs(profiler.shapes.reduce(0) { $0 + $1.seconds } - profiler.seconds) <= 1e-9 * Double(profiler.shapes.count))
        let names = profiler.shapes.map(\.name)
        #expect(names.contains { $0.hasPrefix("attention S = Q K^T, 4 x 6x6x") }, "\(names)")
        #expect(names.contains { $0.hasSuffix(" NT") && $0.hasPrefix("12x") }, "\(names)")   // a forward projection of the 12 rows
        // By operation, over both layers and the head: every kind ran, each call counted once,
        // the projections' GEMMs inside the Linear operations, none inside the element-wise ones.
        let operations = Dictionary(uniqueKeysWithValues: profiler.operations.map { ($0.name, $0) })
        #expect(Set(operations.keys) == [
            "embedding lookup", "Linear forward (GEMM, bias)", "attention forward (scores, softmax, P V)", "LayerNorm forward",
            "GELU forward", "dropout + residual forward", "cross-entropy forward", "cross-entropy backward",
            "Linear backward: input gradient (GEMM)", "Linear backward: weight (GEMM) and bias gradients",
            "LayerNorm backward", "dropout backward", "GELU backward (output rebuilt)", "GELU backward",
            "attention backward", "embedding gradient",
        ], "\(operations.keys.sorted())")
        #expect(operations["LayerNorm forward"]!.calls == 2 * 2 + 2)   // two per layer, the embeddings', the head's
        #expect(operations["attention forward (scores, softmax, P V)"]!.calls == 2)
        #expect(operations["GELU backward (output rebuilt)"]!.calls == 2)
        for name in ["LayerNorm forward", "GELU forward", "dropout backward", "embedding lookup"] {
            #expect(operations[name]!.gemmFlops == 0, "\(name)")
        }
        for name in ["Linear forward (GEMM, bias)", "Linear backward: input gradient (GEMM)", "attention backward"] {
            #expect(operations[name]!.gemmFlops > 0 && operations[name]!.gemmSeconds <= operations[name]!.seconds, "\(name)")
        }
        // Operations do not nest, so together they hold no more GEMM work than was done, nor more time than the step.
        #expect(profiler.operations.reduce(0) { $0 + $1.gemmFlops } <= profiler.flops)
        #expect(profiler.operations.reduce(0) { $0 + $1.seconds } <= whole.seconds)
    }

    @Test func gptRegionsAndRepeatedCalls() throws {
        let model = try GPTForCausalLM(config: tinyConfig(.gpt), seed: 3)
        randomize(model.store, seed: 4)
        let gptBatch = LMBatch(inputIds: [1, 4, 7, 2, 9, 3, 8, 5], labels: [4, 7, 2, 9, 3, 8, 5, 6], batch: 2, seqLen: 4)
        let profiler = Profiler()
        for _ in 0..<3 {
            try profiler.record {
                model.store.zeroGrads()
                _ = try model.loss(gptBatch, training: false)
                try model.backward(scale: 1)
            }
        }
        #expect(profiler.regions.map(\.name) == [
            "embeddings forward", "layer 0 forward", "layer 1 forward", "LM head + loss forward",
            "LM head backward", "layer 1 backward", "layer 0 backward", "embeddings backward",
        ])
        #expect(profiler.regions.allSatisfy { $0.calls == 3 && $0.depth == 0 })
        // Outside `record` nothing is measured.
        _ = try model.loss(gptBatch, training: false)
        #expect(profiler.regions.allSatisfy { $0.calls == 3 })
        #expect(Profiler.current == nil)
    }
}
