import GraftSupport
import Foundation
import Testing
import GraftEngine
import GraftTokenizers
@testable import GraftModels

/// Masked-LM corruption, the pretraining loop, and checkpoints that resume bit for bit.
@Suite struct PretrainingTests {
    /// Blocks of `length` ids cut from patterned sentences (documents separated by `separator`).
    static func blocks(_ tok: Tokenizer, count: Int, length: Int, separator: Int32, seed: UInt64) throws -> [[Int32]] {
        let sentences = ["the cat sat on the mat.", "the dog ran and the cat sat.", "a big red house, a small blue tree.",
                         "the small dogs ran on the mat.", "a red cat sat on a blue mat."]
        var rng = RNG(seed: seed)
        var stream: [Int32] = []
        while stream.count < count * length {
            stream += try tok.encode(sentences[rng.int(below: sentences.count)], addSpecialTokens: false).ids
            stream.append(separator)
        }
        return (0..<count).map { Array(stream[($0 * length)..<(($0 + 1) * length)]) }
    }

    static func options(steps: Int) -> OptimizationOptions {
        var o = OptimizationOptions()
        o.batchSize = 4; o.steps = steps; o.learningRate = 3e-3; o.warmupSteps = 2
        o.evalEvery = 4; o.evalBatches = 2; o.checkpointEvery = 5; o.seed = 7; o.accumulation = 2
        return o
    }

    static let lmOptions: LanguageModelingOptions = { var o = LanguageModelingOptions(); o.seqLen = 8; return o }()

    static func model(_ kind: ModelKind, vocab: Int) throws -> LanguageModel {
        var c = tinyConfig(kind, vocab: vocab)
        c.dropout = 0.1; c.attentionDropout = 0.1   // dropout on: its RNG must be restored too
        return kind == .bert ? try BertForMaskedLM(config: c, seed: 3) : try GPTForCausalLM(config: c, seed: 3)
    }

    /// The masked-LM (BERT) or causal-LM (GPT) objective over patterned blocks.
    static func objective(_ kind: ModelKind, options: OptimizationOptions) throws -> any LanguageModelingObjective {
        let tok = kind == .bert ? try smallWordPieceTokenizer() : try smallBPETokenizer()
        let sep = Int32(kind == .bert ? tok.id("[SEP]")! : tok.id("<|endoftext|>")!)
        let length = lmOptions.blockLength(for: kind)
        let train = try blocks(tok, count: 40, length: length, separator: sep, seed: 1)
        let dev = try blocks(tok, count: 8, length: length, separator: sep, seed: 2)
        let trainBlocks: (Int) throws -> ExampleStream<[Int32]> = { epoch in
            // A different order each epoch, deterministic.
            var r = RNG(seed: 100 + UInt64(epoch))
            var order = Array(train.indices)
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, r.int(below: i + 1)) }
            return ExampleStream(order.map { train[$0] })
        }
        let m = try model(kind, vocab: tok.vocabSize)
        return kind == .bert
            ? try MaskedLMObjective(model: m, tokenizer: tok, options: lmOptions, seed: options.seed, trainBlocks: trainBlocks, devBlocks: dev)
            : try CausalLMObjective(model: m, tokenizer: tok, options: lmOptions, seed: options.seed, trainBlocks: trainBlocks, devBlocks: dev)
    }

    static func trainer(_ kind: ModelKind, out: URL, steps: Int) throws -> Trainer<AnyLMObjective> {
        let opts = options(steps: steps)
        return try Trainer(objective: AnyLMObjective(try objective(kind, options: opts)), options: opts, outputDirectory: out.path)
    }

    @Test func maskingFollowsTheEightyTenTenRule() throws {
        let special: Set<Int32> = [0, 1, 2]
        let masker = MLMMasker(maskTokenId: 2, vocabSize: 1000, specialIds: special, probability: 0.15)
        var ids = (0..<200_000).map { Int32($0 % 1000) }
        let original = ids
        var rng = RNG(seed: 11)
        let labels = masker.mask(&ids, rng: &rng)
        var chosen = 0, masked = 0, random = 0, kept = 0, eligible = 0
        for i in ids.indices {
            if special.contains(original[i]) {
                #expect(labels[i] == -100 && ids[i] == original[i])
                continue
            }
            eligible += 1
            guard labels[i] != -100 else { #expect(ids[i] == original[i]); continue }
            #expect(labels[i] == original[i])
            chosen += 1
            if ids[i] == 2 { masked += 1 } else if ids[i] == original[i] { kept += 1 } else { random += 1; #expect(!special.contains(ids[i])) }
        }
        #expect(abs(Double(chosen) / Double(eligible) - 0.15) < 0.005)
        #expect(abs(Double(masked) / Double(chosen) - 0.8) < 0.01)
        #expect(abs(Double(random) / Double(chosen) - 0.1) < 0.01)
        #expect(abs(Double(kept) / Double(chosen) - 0.1) < 0.011)  // includes random draws of the same id
    }

    @Test func wholeWordMaskingMasksAllPiecesOfAWord() throws {
        let tok = try smallWordPieceTokenizer()
        let masker = try MLMMasker(tokenizer: tok, probability: 0.3, wholeWord: true)
        let cont = Int32(tok.id("##s")!)
        var ids: [Int32] = []
        for _ in 0..<2000 { ids += [Int32(tok.id("cat")!), cont, Int32(tok.id("sat")!)] }
        var rng = RNG(seed: 5)
        let labels = masker.mask(&ids, rng: &rng)
        for w in stride(from: 0, to: ids.count, by: 3) {
            #expect((labels[w] == -100) == (labels[w + 1] == -100), "word at \(w) split by masking")
        }
        let share = Double(labels.filter { $0 != -100 }.count) / Double(labels.count)
        #expect(share > 0.2 && share < 0.4)
    }

    @Test(arguments: [ModelKind.bert, .gpt])
    func resumedRunEqualsUninterruptedRunBitForBit(kind: ModelKind) throws {
        let dirA = try temporaryDirectory(), dirB = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dirA); try? FileManager.default.removeItem(at: dirB) }
        let a = try Self.trainer(kind, out: dirA, steps: 14)
        let full = try a.run()
        #expect(full.steps == 14 && !full.interrupted)

        // Stop after update 7 (as Ctrl-C does), then continue in a new process-like setup.
        let b = try Self.trainer(kind, out: dirB, steps: 14)
        var updates = 0
        b.onStep = { _ in updates += 1 }
        b.shouldStop = { updates == 7 }
        let first = try b.run()
        #expect(first.interrupted && first.steps == 7)
        let c = try Self.trainer(kind, out: dirB, steps: 14)
        let second = try c.run(resume: true)
        #expect(second.steps == 14)
        let wa = Array(UnsafeBufferPointer(start: a.objective.store.values, count: a.objective.store.count))
        let wc = Array(UnsafeBufferPointer(start: c.objective.store.values, count: c.objective.store.count))
        #expect(wa.map(\.bitPattern) == wc.map(\.bitPattern))
        #expect(full.lastLoss?.bitPattern == second.lastLoss?.bitPattern)
        #expect(full.best != nil && full.best?.bitPattern == second.best?.bitPattern)
        #expect(full.mainMetric == MainMetric("loss", higherIsBetter: false))
        #expect(a.objective.base.model.rng.rng == c.objective.base.model.rng.rng)
        // The checkpoints hold the same weights as the live model, and the best model loads.
        let (best, _) = try ModelDirectory.load(dirB.appendingPathComponent("best").path)
        #expect(best.store.count == c.objective.store.count)
    }

    @Test func devLossFallsDuringPretraining() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let t = try Self.trainer(.gpt, out: dir, steps: 150)
        let before = try #require(try t.evaluate()?["loss"])
        var evaluations: [Double] = []
        t.onEvaluation = { evaluations.append($0.value) }
        try t.run()
        let after = try #require(evaluations.last)
        #expect(after < before * 0.7, "dev loss \(before) -> \(after)")
    }

    @Test func resumeRefusesOtherSettingsAndMissingCheckpoints() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: ModelError.self) { try Self.trainer(.gpt, out: dir, steps: 4).run(resume: true) }
        try Self.trainer(.gpt, out: dir, steps: 4).run()
        var other = Self.options(steps: 8)
        other.learningRate = 1e-2
        let t = try Trainer(objective: AnyLMObjective(try Self.objective(.gpt, options: other)), options: other, outputDirectory: dir.path)
        #expect(throws: ModelError.self) { try t.run(resume: true) }
        // Another objective's settings are refused too, and so is another objective.
        var longer = Self.lmOptions
        longer.seqLen = 6
        let tok = try smallBPETokenizer()
        let causal = try CausalLMObjective(model: try Self.model(.gpt, vocab: tok.vocabSize), tokenizer: tok, options: longer, seed: 7,
                                           trainBlocks: { _ in ExampleStream([[Int32]]()) }, devBlocks: [])
        #expect(throws: ModelError.self) { try Trainer(objective: causal, options: Self.options(steps: 8), outputDirectory: dir.path).run(resume: true) }
        let bertDir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: bertDir) }
        try Self.trainer(.bert, out: bertDir, steps: 2).run()
        try FileManager.default.removeItem(at: dir.appendingPathComponent("checkpoints"))
        try FileManager.default.copyItem(at: bertDir.appendingPathComponent("checkpoints"), to: dir.appendingPathComponent("checkpoints"))
        #expect(throws: ModelError.self) { try Self.trainer(.gpt, out: dir, steps: 8).run(resume: true) }
    }

    /// A data stream that fails in the middle of an epoch stops training with that error (not a
    /// short epoch), and the last checkpoint written before it stays the one LATEST names.
    @Test func streamFailingMidEpochStopsTraining() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }  // cleanup of a test directory
        struct PageLost: Error, Equatable {}
        let tok = try smallWordPieceTokenizer()
        let sep = Int32(tok.id("[SEP]")!)
        let opts = Self.options(steps: 10)
        let train = try Self.blocks(tok, count: 40, length: Self.lmOptions.blockLength(for: .bert), separator: sep, seed: 1)
        let objective = try MaskedLMObjective(model: try Self.model(.bert, vocab: tok.vocabSize), tokenizer: tok, options: Self.lmOptions,
                                              seed: opts.seed, trainBlocks: { epoch in
                                                  var served = 0
                                                  return ExampleStream {
                                                      // Epoch 1 loses its page after 10 blocks (step 6 of 10).
                                                      if epoch == 1 && served == 10 { throw PageLost() }
                                                      guard served < train.count else { return nil }
                                                      defer { served += 1 }
                                                      return train[served]
                                                  }
                                              }, devBlocks: [])
        let trainer = try Trainer(objective: objective, options: opts, outputDirectory: dir.path)
        #expect(throws: PageLost()) { try trainer.run() }
        #expect(trainer.optimizer.stepCount == 6)
        let latest = dir.appendingPathComponent("checkpoints/LATEST")
        #expect(try String(contentsOf: latest, encoding: .utf8) == "step-0000005")
    }

    /// A write killed mid-way leaves a temporary directory behind, never a damaged checkpoint:
    /// LATEST still names the previous complete one, and resuming from it works.
    @Test func leftoverTemporaryCheckpointIsIgnored() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.trainer(.bert, out: dir, steps: 5).run()
        let checkpoints = dir.appendingPathComponent("checkpoints")
        let partial = checkpoints.appendingPathComponent("step-0000006.tmp-99999")
        try FileManager.default.createDirectory(at: partial, withIntermediateDirectories: true)
        try Data("truncated".utf8).write(to: partial.appendingPathComponent("training-state.safetensors"))
        #expect(try String(contentsOf: checkpoints.appendingPathComponent("LATEST"), encoding: .utf8) == "step-0000005")
        let resumed = try Self.trainer(.bert, out: dir, steps: 8).run(resume: true)
        #expect(resumed.steps == 8)
    }
}

/// Either language-modelling objective behind one concrete type, so tests run both kinds through one `Trainer` type.
final class AnyLMObjective: TrainingObjective {
    let base: any LanguageModelingObjective
    init(_ base: any LanguageModelingObjective) { self.base = base }
    var name: String { base.name }
    var settings: String { base.settings }
    var store: ParameterStore { base.store }
    var dropoutRNG: SharedRNG? { base.dropoutRNG }
    var mainMetric: MainMetric { base.mainMetric }
    func examples(epoch: Int) throws -> ExampleStream<[Int32]> { try base.examples(epoch: epoch) }
    func trainingBatch(_ examples: [[Int32]]) throws -> LMBatch { try base.trainingBatch(examples) }
    func tokenCount(_ batch: LMBatch) -> Int { base.tokenCount(batch) }
    func loss(_ batch: LMBatch, training: Bool) throws -> TrainingLoss { try base.loss(batch, training: training) }
    func backward(scale: Float) throws { try base.backward(scale: scale) }
    func evaluate(batchSize: Int, maxBatches: Int) throws -> [String: Double]? { try base.evaluate(batchSize: batchSize, maxBatches: maxBatches) }
    var checkpointState: [String: String] { base.checkpointState }
    func restore(checkpointState: [String: String]) throws { try base.restore(checkpointState: checkpointState) }
    func save(to directory: String) throws { try base.save(to: directory) }
}
