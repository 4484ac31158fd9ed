import Foundation
import GraftEngine
import GraftModels
import GraftSupport
import GraftTokenizers
import Testing
@testable import GraftTasks

/// Multi-task learning (``MultiTaskObjective``, ``BertMultiTaskModel``) on a tiny BERT: the
/// sampling schedule, gradients of every head reaching the shared encoder, the saved multi-head
/// directory, frozen parameters and bit-identical resumption.
struct MultiTaskTests {
    static let words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "dog", "sat", "on", "mat", "a", "ran",
                        "red", "blue", "house", "tree", "anna", "paris", "in", "lives", "."]

    /// A sentiment task (TSV) and an NER task (CoNLL) with their spec files in `dir`.
    static func specs(in dir: String) throws -> (sentiment: String, ner: String) {
        func write(_ name: String, _ text: String) -> String {
            let path = dir + "/" + name
            _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
            return path
        }
        var rows: [String] = []
        for i in 0..<12 { rows.append(i % 2 == 0 ? "pos\tthe red cat sat on the mat ." : "neg\tthe blue dog ran .") }
        _ = write("sent-train.tsv", rows.joined(separator: "\n") + "\n")
        _ = write("sent-dev.tsv", "pos\ta red house .\nneg\ta blue tree .\n")
        var conll: [String] = []
        for i in 0..<7 {
            conll.append(i % 2 == 0 ? "anna B-PER\nlives O\nin O\nparis B-LOC\n. O\n" : "the O\ncat O\nsat O\nin O\nparis B-LOC\n")
        }
        _ = write("ner-train.txt", conll.joined(separator: "\n"))
        _ = write("ner-dev.txt", "anna B-PER\nran O\n. O\n\nparis B-LOC\n. O\n")
        func spec(_ name: String, kind: String, labels: String, data: String) -> String {
            write("\(name).toml", "name = \"\(name)\"\nkind = \"\(kind)\"\nlabels = \(labels)\n" +
                  "[data]\ntrain = \"\(data)-train.\(kind == "ner" ? "txt" : "tsv")\"\ndev = \"\(data)-dev.\(kind == "ner" ? "txt" : "tsv")\"\n" +
                  "[model]\nmax_length = 12\n")
        }
        let sentiment = spec("sent", kind: "sentiment", labels: "[\"neg\", \"pos\"]", data: "sent")
        let ner = spec("ner", kind: "ner", labels: "[\"PER\", \"LOC\"]", data: "ner")
        return (sentiment, ner)
    }

    static func tokenizer() throws -> Tokenizer { try Tokenizer.bert(vocab: Vocabulary(tokens: words)) }

    static func config(dropout: Float) -> ModelConfig {
        ModelConfig(kind: .bert, vocabSize: words.count, hidden: 8, layers: 2, heads: 2, ffn: 16, maxPositions: 16,
                    dropout: dropout, attentionDropout: dropout, padTokenId: 0)
    }

    /// A tiny multi-task objective over the two tasks (fresh model seeded by `seed`).
    static func objective(dir: String, dropout: Float = 0, options: FineTuningOptions = small(),
                          sampling: TaskSampling = .proportional, seed: UInt64 = 3) throws -> MultiTaskObjective {
        let (s, n) = try specs(in: dir)
        var tasks: [MultiTaskObjective.Task] = []
        for file in [s, n] {
            let spec = try TaskSpec.load(file)
            func add<P: TaskPlugin>(_ p: P) throws {
                tasks.append(.init(plugin: p, train: try p.examples(from: spec.train!), dev: try p.examples(from: spec.dev!), specFile: file))
            }
            try add(try TaskRegistry.plugin(for: spec))
        }
        var config = config(dropout: dropout)
        config.taskHeads = tasks.map(\.head)
        let model = try BertMultiTaskModel(config: config, seed: seed)
        return try MultiTaskObjective(model: model, tokenizer: try tokenizer(), tasks: tasks, options: options, sampling: sampling)
    }

    static func small() -> FineTuningOptions {
        var o = FineTuningOptions()
        o.batchSize = 4
        o.seed = 11
        return o
    }

    static func trainerOptions(steps: Int) -> OptimizationOptions {
        var o = OptimizationOptions()
        o.batchSize = 4
        o.steps = steps
        o.learningRate = 1e-2
        o.warmupSteps = 1
        o.evalEvery = 0
        o.checkpointEvery = 0
        o.seed = 11
        return o
    }

    static func values(_ store: ParameterStore) -> [Float] { Array(UnsafeBufferPointer(start: store.values, count: store.count)) }

    // MARK: Sampling

    @Test func samplerFollowsItsSchedule() throws {
        let proportional = try TaskSampler(windowCounts: [100, 300], sampling: .proportional)
        #expect(proportional.probabilities == [0.25, 0.75])
        // n^(1/T) with T = 2: √100 : √400 = 10 : 20.
        let tempered = try TaskSampler(windowCounts: [100, 400], sampling: .temperature(2))
        #expect(abs(tempered.probabilities[0] - 1.0 / 3) < 1e-15 && abs(tempered.probabilities[1] - 2.0 / 3) < 1e-15)
        // T = 1 is proportional.
        #expect(try TaskSampler(windowCounts: [100, 300], sampling: .temperature(1)).probabilities == [0.25, 0.75])

        let n = 40_000
        for (sampler, expected) in [(proportional, [0.25, 0.75]), (tempered, [1.0 / 3, 2.0 / 3])] {
            var counts = [0, 0]
            for e in 0..<4 { for t in sampler.draws(count: n / 4, seed: 7, epoch: e) { counts[t] += 1 } }
            for i in 0..<2 {
                // Binomial standard deviation √(np(1-p)) ≈ 87-94 draws: 5σ.
                #expect(abs(Double(counts[i]) - expected[i] * Double(n)) < 5 * (Double(n) * expected[i] * (1 - expected[i])).squareRoot(),
                        "\(counts) vs \(expected)")
            }
        }
        // Fixed seed and epoch: the same sequence, from any instance; another epoch or seed: another one.
        let a = proportional.draws(count: 64, seed: 7, epoch: 2)
        #expect(a == (try TaskSampler(windowCounts: [100, 300], sampling: .proportional)).draws(count: 64, seed: 7, epoch: 2))
        #expect(a != proportional.draws(count: 64, seed: 7, epoch: 3))
        #expect(a != proportional.draws(count: 64, seed: 8, epoch: 2))
        // The stream itself is pinned (checkpoints replay it): the first draws of seed 7, epoch 0.
        #expect(proportional.draws(count: 16, seed: 7, epoch: 0) == pinnedDraws)

        #expect(throws: TaskError.self) { try TaskSampler(windowCounts: [3, 0], sampling: .proportional) }
        #expect(throws: TaskError.self) { try TaskSampler(windowCounts: [3, 4], sampling: .temperature(0)) }
    }

    /// `TaskSampler(windowCounts: [100, 300]).draws(count: 16, seed: 7, epoch: 0)` as first computed.
    let pinnedDraws = [1, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0]

    @Test func epochsAreScheduledMicroBatchesOfOneTask() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let objective = try Self.objective(dir: dir)
        let b = objective.options.batchSize
        let total = objective.windowCounts.reduce(0, +)
        #expect(objective.batchesPerEpoch == (total + b - 1) / b)
        #expect(objective.examplesPerEpoch == objective.batchesPerEpoch * b)
        for epoch in 0..<3 {
            var seen: [MultiTaskObjective.Window] = []
            let stream = try objective.examples(epoch: epoch)
            while let w = try stream.next() { seen.append(w) }
            #expect(seen.count == objective.batchesPerEpoch * b)
            let plan = objective.schedule(epoch: epoch)
            for (j, t) in plan.enumerated() { #expect(seen[(j * b)..<((j + 1) * b)].allSatisfy { $0.task == t }) }
            // The same epoch twice: the same windows.
            var again: [Int] = []
            let s2 = try objective.examples(epoch: epoch)
            while let w = try s2.next() { again.append(w.feature.window.example) }
            #expect(again == seen.map(\.feature.window.example))
        }
        // A task's windows run through all of them before any repeats.
        var firstPass: [Int: [Int]] = [:]
        for epoch in 0..<4 {
            let stream = try objective.examples(epoch: epoch)
            while let w = try stream.next() { firstPass[w.task, default: []].append(w.feature.window.example) }
        }
        for (t, seen) in firstPass where seen.count >= objective.windowCounts[t] {
            #expect(Set(seen.prefix(objective.windowCounts[t])).count == objective.windowCounts[t])
        }
    }

    // MARK: Gradients

    /// Each task's loss reaches the shared encoder: its gradient there matches central finite
    /// differences, and a batch of one task leaves the other task's head gradient exactly zero.
    @Test func everyHeadsGradientFlowsIntoTheEncoder() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let objective = try Self.objective(dir: dir)
        let store = objective.store
        let heads = objective.model.heads
        let encoder = store.parameters.filter { !$0.name.hasPrefix("heads.") }
        for task in 0..<2 {
            var windows: [MultiTaskObjective.Window] = []
            let stream = try objective.examples(epoch: 0)
            while windows.count < 4, let w = try stream.next() { if w.task == task { windows.append(w) } }
            let batch = try objective.trainingBatch(windows)
            store.zeroGrads()
            _ = try objective.loss(batch, training: true)
            try objective.backward(scale: 1)
            let other = heads[1 - task].head.parameterPrefix
            for p in store.parameters where p.name.hasPrefix(other) {
                #expect(UnsafeBufferPointer(start: store.grad(p), count: p.count).allSatisfy { $0 == 0 }, "\(p.name)")
            }
            // The largest encoder gradients (in the first layer, the furthest from the heads) against finite differences.
            let layer0 = encoder.filter { $0.name.hasPrefix("encoder.layer.0.") && $0.name.hasSuffix(".weight") }
            var picks: [(Parameter, Int, Float)] = []
            for p in layer0 {
                let g = UnsafeBufferPointer(start: store.grad(p), count: p.count)
                let i = g.indices.max { abs(g[$0]) < abs(g[$1]) }!
                picks.append((p, i, g[i]))
            }
            picks.sort { abs($0.2) > abs($1.2) }
            #expect(picks.count >= 3 && abs(picks[0].2) > 1e-5, "task \(task): no encoder gradient")
            for (p, i, g) in picks.prefix(3) {
                let v = store.value(p)
                let h: Float = 1e-2, saved = v[i]
                v[i] = saved + h
                let up = try objective.loss(batch, training: false).loss
                v[i] = saved - h
                let down = try objective.loss(batch, training: false).loss
                v[i] = saved
                let fd = (up - down) / (2 * h)
                #expect(abs(fd - g) <= 2e-3 * max(1, abs(g)) + 0.05 * abs(g), "task \(task) \(p.name)[\(i)]: analytic \(g), finite differences \(fd)")
            }
        }
    }

    // MARK: Directory

    @Test func eachHeadReopensWithTheSameLogits() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let objective = try Self.objective(dir: dir)
        let trainer = try Trainer(objective: objective, options: Self.trainerOptions(steps: 3), outputDirectory: dir + "/run")
        try trainer.run()
        let saved = dir + "/saved"
        try objective.save(to: saved)
        for name in ["graft-task-sent.toml", "graft-task-ner.toml", "config.json", "model.safetensors"] {
            #expect(FileManager.default.fileExists(atPath: saved + "/" + name), "\(name)")
        }
        let input = HeadInput(inputIds: [2, 5, 6, 7, 3, 0, 2, 17, 20, 19, 18, 3], attentionMask: [1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1],
                              batch: 2, seqLen: 6)
        for (head, kind) in [("sent", HeadKind.sequenceClassification), ("ner", .tokenClassification)] {
            let before = try objective.model.head(named: head)!.logits(input).array
            let byName = try TaskModel.open(saved, head: head)
            let byKind = try TaskModel.open(saved, kind: kind)
            #expect(byName.spec.name == head && byKind.spec.name == head && byName.spec.kind == kind)
            #expect(try #require(byName.head as? ModelTaskHead).model.logits(input).array == before)
            #expect(try #require(byKind.head as? ModelTaskHead).model.logits(input).array == before)
        }
        // Each head extracted as its single-task class computes the same logits, bit for bit.
        for (head, architecture) in [("sent", "BertForSequenceClassification"), ("ner", "BertForTokenClassification")] {
            let single = try objective.model.extractHead(named: head)
            #expect(single.architecture == architecture && !single.store.parameters.contains { $0.name.hasPrefix("heads.") })
            #expect(try single.logits(input).array == objective.model.head(named: head)!.logits(input).array)
        }
        #expect(throws: ModelError.self) { try objective.model.extractHead(named: "qa") }
        // Ambiguity, unknown names and export are refused with the heads listed.
        let reopened = try #require(try ModelDirectory.open(saved).model as? BertMultiTaskModel)
        #expect(reopened.heads.map(\.head) == objective.model.heads.map(\.head))
        #expect(Self.values(reopened.store) == Self.values(objective.store))
        let ambiguous = taskError { _ = try TaskModel.open(saved) }
        #expect("\(ambiguous!)".contains("choose one with --head") && "\(ambiguous!)".contains("sent (sequence-classification)"))
        let unknown = taskError { _ = try TaskModel.open(saved, head: "qa") }
        #expect("\(unknown!)".contains("no head \"qa\""))
        #expect(taskError { _ = try TaskModel.open(saved, kind: .questionAnswering) } != nil)
        #expect(throws: ModelError.self) { try ModelDirectory.export(reopened, tokenizer: try Self.tokenizer(), to: dir + "/hf") }
        // The encoder of a multi-task directory is a base model for a single task (its heads skipped).
        let single = try ModelDirectory.open(saved, as: "BertForTokenClassification", labels: ["O", "B-X", "I-X"])
        let encoderNames = objective.store.parameters.map(\.name).filter { !$0.hasPrefix("heads.") && !$0.hasPrefix("pooler.") }
        for name in encoderNames {
            let a = objective.store.parameters.first { $0.name == name }!, b = single.model.store.parameters.first { $0.name == name }!
            #expect(Array(UnsafeBufferPointer(start: objective.store.value(a), count: a.count)) ==
                    Array(UnsafeBufferPointer(start: single.model.store.value(b), count: b.count)), "\(name)")
        }
    }

    // MARK: Training

    @Test func frozenEncoderStaysBitIdentical() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = Self.small()
        options.freezeEncoder = true
        let objective = try Self.objective(dir: dir, options: options)
        let store = objective.store
        let before = Self.values(store)
        try Trainer(objective: objective, options: Self.trainerOptions(steps: 4), outputDirectory: dir + "/run").run()
        let after = Self.values(store)
        var headChanged = false
        for p in store.parameters {
            let same = before[p.offset..<(p.offset + p.count)] == after[p.offset..<(p.offset + p.count)]
            if p.name.hasPrefix("heads.") { headChanged = headChanged || !same } else { #expect(same, "\(p.name) changed") }
        }
        #expect(headChanged)
    }

    /// Interrupted after 3 updates and resumed to 7 (epochs crossed, dropout on, temperature
    /// sampling): the weights equal those of an uninterrupted run bit for bit.
    @Test func resumeIsBitIdentical() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let options = Self.trainerOptions(steps: 7)
        let straight = try Self.objective(dir: dir, dropout: 0.1, sampling: .temperature(2))
        try Trainer(objective: straight, options: options, outputDirectory: dir + "/a").run()

        let first = try Self.objective(dir: dir, dropout: 0.1, sampling: .temperature(2))
        let t1 = try Trainer(objective: first, options: options, outputDirectory: dir + "/b")
        t1.shouldStop = { t1.optimizer.stepCount == 3 }
        let s1 = try t1.run()
        #expect(s1.interrupted && s1.steps == 3)
        let second = try Self.objective(dir: dir, dropout: 0.1, sampling: .temperature(2))
        let s2 = try Trainer(objective: second, options: options, outputDirectory: dir + "/b").run(resume: true)
        #expect(s2.steps == 7)
        #expect(Self.values(second.store) == Self.values(straight.store))
        #expect(Self.values(second.store) != Self.values(first.store))
        // Another sampling schedule is another run: resuming under it is refused.
        let other = try Self.objective(dir: dir, dropout: 0.1, sampling: .proportional)
        #expect(throws: ModelError.self) { try Trainer(objective: other, options: options, outputDirectory: dir + "/b").run(resume: true) }
    }

    @Test func evaluationReportsEveryTaskAndTheirMean() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let objective = try Self.objective(dir: dir)
        let m = try #require(try objective.evaluate(batchSize: 4, maxBatches: 0))
        let accuracy = try #require(m["sent.accuracy"]), f1 = try #require(m["ner.f1"])
        #expect(m["mean_main"] == (accuracy + f1) / 2)
        #expect(objective.mainMetric.name == "mean_main" && objective.mainMetric.higherIsBetter)
    }
}
