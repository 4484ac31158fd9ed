import Foundation
import GraftEngine
import GraftModels
import GraftSupport
import GraftTokenizers
import Testing
@testable import GraftTasks

/// Transfer techniques beyond plain fine-tuning, on tiny BERTs trained in process by the one
/// `Trainer`: discriminative layer-wise learning rates, freezing the lower layers
/// (`unfreezeTop`), gradual unfreezing (frozen bits across epoch boundaries, bit-identical
/// resumption) and cached frozen features (the same model as the uncached frozen run whose
/// encoder runs without dropout).
struct FineTuningSpectrumTests {
    /// A tiny BERT configuration over the shipped uncased vocabulary.
    static func config(layers: Int, dropout: Float = 0.1) -> ModelConfig {
        ModelConfig(kind: .bert, vocabSize: bertTokenizer.vocabSize, hidden: 8, layers: layers, heads: 2, ffn: 16, maxPositions: 32,
                    dropout: dropout, attentionDropout: dropout, padTokenId: 0)
    }

    /// Eight sentiment examples of seven tokens each (`[CLS]`, five words, `[SEP]`).
    static let sentences: [TextExample] = (0..<8).map { i in
        i % 2 == 0 ? TextExample(id: "\(i)", text: "the red cat sat down", label: "pos")
                   : TextExample(id: "\(i)", text: "a blue dog ran away", label: "neg")
    }

    static func sentimentPlugin() throws -> (TextClassificationPlugin, String) {
        let spec = temporaryFile("task.toml", "name = \"t\"\nkind = \"sentiment\"\nlabels = [\"neg\", \"pos\"]\n[model]\nmax_length = 16\n")
        return (try TextClassificationPlugin(spec: try TaskSpec.load(spec)), spec)
    }

    /// A sentiment objective on a fresh tiny `BertForSequenceClassification` (seed 7).
    static func sentimentObjective(_ options: FineTuningOptions, layers: Int = 2, encoderDropout: Float = 0.1)
        throws -> FineTuningObjective<TextClassificationPlugin>
    {
        let (plugin, spec) = try sentimentPlugin()
        let model = try BertForSequenceClassification(config: config(layers: layers, dropout: encoderDropout), numLabels: 2,
                                                      classifierDropout: 0.1, seed: 7)
        return try FineTuningObjective(plugin: plugin, model: model, tokenizer: bertTokenizer, train: sentences, dev: [],
                                       options: options, specFile: spec)
    }

    static func optimization(epochs: Int? = nil, steps: Int = 1, lr: Float = 1e-2) -> OptimizationOptions {
        var o = OptimizationOptions()
        o.batchSize = 4; o.epochs = epochs; o.steps = steps; o.learningRate = lr; o.warmupSteps = 0
        o.evalEvery = 0; o.checkpointEvery = 0; o.keepCheckpoints = 1; o.seed = 3
        return o
    }

    static func bits(_ store: ParameterStore, _ section: ParameterSection) -> [UInt32] {
        Array(UnsafeBufferPointer(start: store.values + section.range.lowerBound, count: section.range.count)).map(\.bitPattern)
    }

    static func sectionBits(_ model: any TaskHeadModel) -> [String: [UInt32]] {
        Dictionary(uniqueKeysWithValues: model.parameterSections.map { ($0.name, bits(model.store, $0)) })
    }

    // MARK: Discriminative rates

    /// Groups: head, pooler and top layer × 1, each layer below × F, embeddings × F^L; AdamW's
    /// first update (|Δw| = lr × scale where the gradient is far above eps) shows the factors for real.
    @Test func layerwiseRatesDifferByTheConfiguredFactor() throws {
        var options = FineTuningOptions()
        options.batchSize = 4
        options.layerLearningRateDecay = 0.5
        let objective = try Self.sentimentObjective(options, layers: 3)
        let model = objective.model
        let expected: [String: Float] = ["head": 1, "pooler": 1, "layer.2": 1, "layer.1": 0.5, "layer.0": 0.25, "embeddings": 0.125]
        for section in model.parameterSections {
            for p in section.parameters {
                let group = objective.parameterGroup(for: p)
                #expect(!group.frozen && group.learningRateScale == expected[section.name], "\(p.name): \(group)")
            }
        }
        let before = Self.sectionBits(model)
        var o = Self.optimization(steps: 1, lr: 1e-3)
        o.weightDecay = 0; o.clipNorm = 0
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Trainer(objective: objective, options: o, outputDirectory: dir).run()
        for section in model.parameterSections {
            let old = before[section.name]!, new = Self.bits(model.store, section)
            let moved = zip(old, new).map { abs(Float(bitPattern: $0) - Float(bitPattern: $1)) }.max() ?? 0
            let target = 1e-3 * expected[section.name]!
            #expect(abs(moved / target - 1) < 2e-3, "\(section.name): largest first update \(moved), expected \(target)")
        }
    }

    // MARK: Freezing spectrum

    /// Which sections change in each epoch: with gradual unfreezing the head alone in epoch 1,
    /// then the top layer (with the pooler), then the next, then the embeddings; with
    /// `unfreezeTop` 1 the top layer always, never what lies below. Frozen sections keep every bit.
    @Test(arguments: [true, false])
    func frozenSectionsKeepTheirBits(gradual: Bool) throws {
        var options = FineTuningOptions()
        options.batchSize = 4
        if gradual { options.gradualUnfreeze = true } else { options.unfreezeTop = 1 }
        let objective = try Self.sentimentObjective(options, layers: 2)
        let model = objective.model
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let trainer = try Trainer(objective: objective, options: Self.optimization(epochs: 4), outputDirectory: dir)
        #expect(trainer.totalSteps == 8)   // 8 windows, batch 4: 2 updates per epoch
        var atEpochStart = Self.sectionBits(model)
        var changedPerEpoch: [Set<String>] = []
        trainer.onStep = { s in
            guard s.step % 2 == 0 else { return }
            let now = Self.sectionBits(model)
            changedPerEpoch.append(Set(now.keys.filter { now[$0] != atEpochStart[$0] }))
            atEpochStart = now
        }
        try trainer.run()
        let expected: [Set<String>] = gradual
            ? [["head"], ["head", "pooler", "layer.1"], ["head", "pooler", "layer.1", "layer.0"],
               ["head", "pooler", "layer.1", "layer.0", "embeddings"]]
            : [Set<String>](repeating: ["head", "pooler", "layer.1"], count: 4)
        #expect(changedPerEpoch == expected)
    }

    /// Backward leaves out exactly the frozen bottom stages: every parameter of the embeddings and
    /// the layers it skips is frozen in that epoch, and the first stage it computes trains — for
    /// every combination of frozen encoder, frozen lower layers, top-k and gradual unfreezing.
    @Test func backwardSkipsExactlyTheFrozenBottomStages() throws {
        for freezeEncoder in [false, true] {
            for freezeLayers in [0, 1, 2] {
                for unfreezeTop in [nil, 0, 1, 2, 3, 4] as [Int?] {
                    for gradual in [false, true] {
                        var options = FineTuningOptions()
                        options.freezeEncoder = freezeEncoder
                        options.freezeLayers = freezeLayers
                        options.unfreezeTop = unfreezeTop
                        options.gradualUnfreeze = gradual
                        let objective = try Self.sentimentObjective(options, layers: 3)
                        let sections = objective.model.parameterSections
                        let stages = ["embeddings", "layer.0", "layer.1", "layer.2"]
                        for epoch in 0..<5 {
                            let skipped = objective.frozenBottomStages(epoch: epoch)
                            let what = "encoder \(freezeEncoder) lower \(freezeLayers) top \(unfreezeTop.map(String.init) ?? "-") gradual \(gradual) epoch \(epoch)"
                            func frozen(_ name: String) -> Bool {
                                sections.first { $0.name == name }!.parameters.allSatisfy { objective.parameterGroup(for: $0, epoch: epoch).frozen }
                            }
                            #expect((0...4).contains(skipped), "\(what)")
                            for s in stages.prefix(skipped) { #expect(frozen(s), "\(what): \(s) is skipped but trains") }
                            if skipped < 4 { #expect(!frozen(stages[skipped]), "\(what): \(stages[skipped]) is the first computed and trains") }
                        }
                    }
                }
            }
        }
    }

    /// A gradual-unfreezing run stopped at an epoch boundary or inside an epoch and resumed ends
    /// with the same bits as an uninterrupted one.
    @Test(arguments: [2, 3])
    func gradualUnfreezingResumesBitForBit(stopAfter: Int) throws {
        var options = FineTuningOptions()
        options.batchSize = 4
        options.gradualUnfreeze = true
        options.layerLearningRateDecay = 0.8
        let straightDir = makeTemporaryDirectory(), resumedDir = makeTemporaryDirectory()
        defer { for d in [straightDir, resumedDir] { try? FileManager.default.removeItem(atPath: d) } }
        let straight = try Self.sentimentObjective(options)
        try Trainer(objective: straight, options: Self.optimization(epochs: 3), outputDirectory: straightDir).run()

        let first = try Trainer(objective: try Self.sentimentObjective(options), options: Self.optimization(epochs: 3), outputDirectory: resumedDir)
        first.shouldStop = { first.optimizer.stepCount >= stopAfter }
        let stopped = try first.run()
        #expect(stopped.interrupted && stopped.steps == stopAfter)
        // What a process killed after that checkpoint may have left: a later update and a torn line.
        let history = URL(fileURLWithPath: resumedDir).appendingPathComponent(TrainingHistory.fileName)
        let handle = try FileHandle(forWritingTo: history)
        handle.seekToEndOfFile()
        handle.write(Data("{\"type\":\"step\",\"step\":\(stopAfter + 1),\"loss\":1}\n{\"type\":\"st".utf8))
        try handle.close()
        let resumedObjective = try Self.sentimentObjective(options)
        let summary = try Trainer(objective: resumedObjective, options: Self.optimization(epochs: 3), outputDirectory: resumedDir).run(resume: true)
        #expect(summary.steps == 6 && !summary.interrupted)
        let a = UnsafeBufferPointer(start: straight.store.values, count: straight.store.count).map(\.bitPattern)
        let b = UnsafeBufferPointer(start: resumedObjective.store.values, count: resumedObjective.store.count).map(\.bitPattern)
        #expect(a == b)
        // history.jsonl holds each update and evaluation once, as the uninterrupted run's does
        // (throughput aside, which is measured).
        func lines(_ dir: String) throws -> [String] {
            try TrainingHistory.read(URL(fileURLWithPath: dir).appendingPathComponent(TrainingHistory.fileName).path).map { line in
                JSONValue.object(line.object!.filter { $0.0 != "tokens_per_s" }).serialized()
            }
        }
        let straightLines = try lines(straightDir), resumedLines = try lines(resumedDir)
        #expect(straightLines.count == 6)   // 6 updates (no dev data: no evaluation lines)
        #expect(straightLines == resumedLines)
    }

    // MARK: Cached features

    /// Sequence and token classification: the cached run (encoder dropout 0.1, never applied:
    /// features computed in inference mode) ends with exactly the weights of the uncached frozen
    /// run of a model whose encoder has no dropout (same seed, same head dropout 0.1).
    @Test(arguments: [false, true])
    func cachedFeaturesGiveTheUncachedModel(tagging: Bool) throws {
        var options = FineTuningOptions()
        options.batchSize = 4
        options.freezeEncoder = true
        func train(cached: Bool) throws -> [UInt32] {
            var o = options
            o.cacheFeatures = cached
            let dir = makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let dropout: Float = cached ? 0.1 : 0
            let store: ParameterStore
            if tagging {
                let spec = temporaryFile("ner.toml", "name = \"t\"\nkind = \"ner\"\nlabels = [\"PER\", \"LOC\"]\n[model]\nmax_length = 16\n")
                let plugin = try TaggingPlugin(spec: try TaskSpec.load(spec))
                let model = try BertForTokenClassification(config: Self.config(layers: 2, dropout: dropout), numLabels: plugin.labels!.count,
                                                           classifierDropout: 0.1, seed: 9)
                let sentences = try (0..<8).map { i in
                    try TaggedSentence(id: "\(i)", words: i % 2 == 0 ? ["john", "lives", "in", "paris"] : ["mary", "went", "to", "london"],
                                       tags: i % 2 == 0 ? ["B-PER", "O", "O", "B-LOC"] : ["B-PER", "O", "O", "B-LOC"], scheme: .iob2)
                }
                let objective = try FineTuningObjective(plugin: plugin, model: model, tokenizer: bertTokenizer, train: sentences, dev: [],
                                                        options: o, specFile: spec)
                if cached { #expect(objective.featureCacheBytes == 8 * 6 * 8 * 4) }   // 8 windows x 6 tokens x C 8 floats
                try Trainer(objective: objective, options: Self.optimization(epochs: 3), outputDirectory: dir).run()
                store = objective.store
            } else {
                let objective = try Self.sentimentObjective(o, encoderDropout: dropout)
                if cached { #expect(objective.featureCacheBytes == 8 * 8 * 4) }   // 8 windows x C 8 floats
                try Trainer(objective: objective, options: Self.optimization(epochs: 3), outputDirectory: dir).run()
                store = objective.store
            }
            return UnsafeBufferPointer(start: store.values, count: store.count).map(\.bitPattern)
        }
        let cached = try train(cached: true), uncached = try train(cached: false)
        #expect(cached == uncached)
    }

    /// Cached features without a frozen encoder, or on a QA head, are refused clearly; the spec
    /// keys are checked too.
    @Test func cachedFeaturesAndFreezingOptionsAreChecked() throws {
        var options = FineTuningOptions()
        options.cacheFeatures = true
        let error = taskError { _ = try Self.sentimentObjective(options) }
        #expect(error.map { "\($0)".contains("frozen encoder") } == true, "\(String(describing: error))")
        options.freezeEncoder = true
        let qaSpec = temporaryFile("qa.toml", "name = \"q\"\nkind = \"qa\"\n[model]\nmax_length = 32\nstride = 8\n")
        let qa = taskError {
            _ = try FineTuningObjective(plugin: try QuestionAnsweringPlugin(spec: try TaskSpec.load(qaSpec)),
                                        model: try BertForQuestionAnswering(config: Self.config(layers: 1), seed: 1), tokenizer: bertTokenizer,
                                        train: [QuestionExample(id: "q", question: "who sat", context: "the cat sat", answers: [AnswerSpan(text: "the cat", start: 0)])],
                                        dev: [], options: options, specFile: qaSpec)
        }
        #expect(qa.map { "\($0)".contains("BertForQuestionAnswering") && "\($0)".contains(qaSpec) } == true, "\(String(describing: qa))")
        for (body, key) in [("cache_features = true", "train.cache_features"),
                            ("freeze_encoder = true\nunfreeze_top = 1", "train.unfreeze_top"),
                            ("freeze_layers = 1\ngradual_unfreeze = true", "train.gradual_unfreeze"),
                            ("layer_lr_decay = 1.5", "train.layer_lr_decay")] {
            let spec = temporaryFile("bad.toml", "name = \"t\"\nkind = \"sentiment\"\nlabels = [\"neg\", \"pos\"]\n[train]\n\(body)\n")
            let e = taskError { _ = try TaskSpec.load(spec) }
            #expect(e.map { "\($0)".contains(key) && "\($0)".contains(spec) } == true, "\(body): \(String(describing: e))")
        }
        let spec = temporaryFile("ok.toml", "name = \"t\"\nkind = \"sentiment\"\nlabels = [\"neg\", \"pos\"]\n[train]\nunfreeze_top = 2\ngradual_unfreeze = true\nlayer_lr_decay = 0.9\n")
        let t = try TaskSpec.load(spec).training
        #expect(t.unfreezeTop == 2 && t.gradualUnfreeze == true && t.layerLearningRateDecay == 0.9)
    }

    // MARK: Batching and per-epoch seeds

    @Test func randomBatchingDrawsNewBatchMatesAndSeedsDoNotShareEpochs() throws {
        func order(_ options: FineTuningOptions, epoch: Int) throws -> [Int] {
            let stream = try Self.sentimentObjective(options).examples(epoch: epoch)
            var out: [Int] = []
            while let i = try stream.next() { out.append(i) }
            return out
        }
        var options = FineTuningOptions()
        options.batchSize = 2
        let length0 = try order(options, epoch: 0)
        #expect(length0.sorted() == Array(0..<Self.sentences.count))
        // Seed 43's first epoch is not seed 42's second one (the epoch seed was seed + epoch).
        options.seed = 42
        let second42 = try order(options, epoch: 1)
        options.seed = 43
        #expect(try order(options, epoch: 0) != second42)
        options.seed = 42
        options.batching = .random
        let random0 = try order(options, epoch: 0), random1 = try order(options, epoch: 1)
        #expect(random0.sorted() == Array(0..<Self.sentences.count) && random1.sorted() == random0.sorted())
        #expect(random0 != random1 && random0 != length0)
        #expect(try order(options, epoch: 0) == random0)
        // FeatureBatch.randomBatches: a seeded permutation cut into batches, the last one short.
        let batches = FeatureBatch.randomBatches(count: 10, batchSize: 4, seed: 5)
        #expect(batches.map(\.count) == [4, 4, 2] && batches.flatMap { $0 }.sorted() == Array(0..<10))
        #expect(batches == FeatureBatch.randomBatches(count: 10, batchSize: 4, seed: 5))
        #expect(batches != FeatureBatch.randomBatches(count: 10, batchSize: 4, seed: 6))
        // The spec key, and a misspelled value named with its key.
        let ok = temporaryFile("ok.toml", "name = \"t\"\nkind = \"sentiment\"\nlabels = [\"neg\", \"pos\"]\n[train]\nbatching = \"random\"\n")
        #expect(try TaskSpec.load(ok).training.batching == .random)
        let bad = temporaryFile("bad.toml", "name = \"t\"\nkind = \"sentiment\"\nlabels = [\"neg\", \"pos\"]\n[train]\nbatching = \"shuffled\"\n")
        let e = taskError { _ = try TaskSpec.load(bad) }
        #expect(e.map { "\($0)".contains("train.batching") && "\($0)".contains("length, random") && "\($0)".contains(bad) } == true,
                "\(String(describing: e))")
    }

    // MARK: Runs that cannot go on

    /// A non-finite gradient stops the run before its update, with a clear error, the
    /// parameters left as they were; a run without dev data keeps its last model in `best`;
    /// windows longer than the model's positions are refused before any training.
    @Test func divergenceNoDevDataAndOverlongWindows() throws {
        let objective = try Self.sentimentObjective(FineTuningOptions())
        let store = objective.store
        store.value(try store.parameter(named: "classifier.weight"))[0] = .nan
        let before = UnsafeBufferPointer(start: store.values, count: store.count).map(\.bitPattern)
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            try Trainer(objective: objective, options: Self.optimization(steps: 3), outputDirectory: dir).run()
            Issue.record("a NaN parameter must stop the run")
        } catch let ModelError.diverged(step, detail) {
            #expect(step == 1 && detail.contains("nan"), "\(detail)")
        }
        #expect(UnsafeBufferPointer(start: store.values, count: store.count).map(\.bitPattern) == before)

        let clean = try Self.sentimentObjective(FineTuningOptions())
        try Trainer(objective: clean, options: Self.optimization(steps: 2), outputDirectory: dir + "/nodev").run()
        #expect(FileManager.default.fileExists(atPath: dir + "/nodev/best/model.safetensors"))

        let long = temporaryFile("long.toml", "name = \"t\"\nkind = \"sentiment\"\nlabels = [\"neg\", \"pos\"]\n[model]\nmax_length = 64\n")
        let model = try BertForSequenceClassification(config: Self.config(layers: 1), numLabels: 2, seed: 7)
        #expect { try FineTuningObjective(plugin: try TextClassificationPlugin(spec: try TaskSpec.load(long)), model: model, tokenizer: bertTokenizer,
                                          train: Self.sentences, dev: [], options: FineTuningOptions(), specFile: long) }
            throws: { "\($0)".contains("max_length 64 is more than the model's 32 positions") }
        var frozen = FineTuningOptions()
        frozen.freezeLayers = 3
        #expect { try Self.sentimentObjective(frozen, layers: 2) } throws: { "\($0)".contains("freeze_layers (--freeze-layers) 3 is more than the model's 2 layers") }
    }
}
