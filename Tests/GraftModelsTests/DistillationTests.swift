import Foundation
import GraftSupport
import Testing
import GraftEngine
import GraftTokenizers
@testable import GraftModels

/// Knowledge distillation's loss (`DistillationLoss`, `ClassificationHead.softTargets`) against
/// finite differences, its minimum and Hinton et al.'s T² scaling; and `graft distill` end to end.
struct DistillationTests {
    static let n = 4, l = 3
    static func values(_ seed: UInt64, _ count: Int, scale: Float = 1.5) -> [Float] {
        var r = RNG(seed: seed)
        return (0..<count).map { _ in r.normal() * scale }
    }

    /// A tiny BERT with three classes, and a padded batch of two rows.
    static let headConfig: ModelConfig = {
        var config = tinyConfig(.bert, vocab: 24)
        config.labels = ["a", "b", "c"]
        return config
    }()
    static let input = HeadInput(inputIds: [2, 5, 6, 3, 2, 7, 3, 0], tokenTypeIds: nil, attentionMask: [1, 1, 1, 1, 1, 1, 1, 0],
                                 batch: 2, seqLen: 4)

    /// The loss's gradient equals central differences of the loss (gold rows, ignored rows and
    /// soft rows mixed; several temperatures and weights).
    @Test func gradientMatchesFiniteDifferences() throws {
        for (temperature, alpha, someRows) in [(Float(1), Float(0.5), false), (2.5, 0.8, true), (4, 0, false), (0.7, 1, true)] {
            try checkGradient(temperature: temperature, alpha: alpha, someRows: someRows)
        }
    }

    func checkGradient(temperature: Float, alpha: Float, someRows: Bool) throws {
        let z = Tensor(shape: [Self.n, Self.l], values: Self.values(1, Self.n * Self.l))
        let soft = SoftTargets(teacherLogits: Self.values(2, Self.n * Self.l), temperature: temperature, alpha: alpha,
                               rows: someRows ? [true, false, true, true] : nil)
        let targets: [Int32] = [2, -100, 0, 1]
        let loss = DistillationLoss()
        _ = try loss.forward(z, targets: targets, soft: soft)
        let analytic = try loss.backward(scale: 1).array
        let h: Float = 1e-2
        for i in 0..<z.count {
            let saved = z.data[i]
            z.data[i] = saved + h
            let plus = Double(try loss.forward(z, targets: targets, soft: soft))
            z.data[i] = saved - h
            let minus = Double(try loss.forward(z, targets: targets, soft: soft))
            z.data[i] = saved
            let numeric = (plus - minus) / Double(2 * h)
            #expect(abs(numeric - Double(analytic[i])) <= 1e-3 + 1e-2 * abs(numeric), "logit \(i): analytic \(analytic[i]) numeric \(numeric)")
        }
    }

    /// `T² · KL` by hand for one row, plus the gold cross-entropy; and at a high temperature the
    /// soft gradient tends to `(z − t) / L` for zero-mean logits (Hinton et al.: with T² the
    /// gradients keep their scale as T grows).
    @Test func temperatureSquaredScaling() throws {
        let zv: [Float] = [1.0, -0.5, 0.25], tv: [Float] = [0.2, 0.9, -1.1]
        let loss = DistillationLoss()
        let t: Float = 3, alpha: Float = 0.6
        let value = try loss.forward(Tensor(shape: [1, 3], values: zv), targets: [1], soft: SoftTargets(teacherLogits: tv, temperature: t, alpha: alpha))
        func softmax(_ x: [Float], _ t: Double) -> [Double] {
            let e = x.map { exp(Double($0) / t) }
            let s = e.reduce(0, +)
            return e.map { $0 / s }
        }
        let p = softmax(tv, 3), q = softmax(zv, 3), q1 = softmax(zv, 1)
        let kl = zip(p, q).reduce(0.0) { $0 + $1.0 * log($1.0 / $1.1) }
        let expected = 0.6 * 9 * kl + 0.4 * -log(q1[1])
        #expect(abs(Double(value) - expected) < 1e-6 * max(1, expected))
        #expect(abs(loss.softLoss - 9 * kl) < 1e-9 && abs(loss.goldLoss + log(q1[1])) < 1e-9)

        // High temperature: d/dz of T² KL → (z − t) / L with zero-mean logits.
        let zc = zv.map { $0 - zv.reduce(0, +) / 3 }, tc = tv.map { $0 - tv.reduce(0, +) / 3 }
        for temperature: Float in [50, 200] {
            _ = try loss.forward(Tensor(shape: [1, 3], values: zc), targets: [-100], soft: SoftTargets(teacherLogits: tc, temperature: temperature, alpha: 1))
            let g = try loss.backward(scale: 1).array
            for j in 0..<3 {
                let limit = (zc[j] - tc[j]) / 3
                #expect(abs(g[j] - limit) < 2 / temperature, "T \(temperature): \(g) vs \(limit)")
            }
        }
    }

    /// A student identical to its teacher, at T = 1 and alpha = 1, sits at the minimum: loss 0
    /// and every parameter gradient 0 (sequence and token classification heads).
    @Test func identicalStudentHasZeroLossAndGradient() throws {
        let config = Self.headConfig, input = Self.input
        let teacher = try BertForSequenceClassification(config: config, numLabels: 3, seed: 3)
        randomize(teacher.store, seed: 4)
        let student = try BertForSequenceClassification(config: config, numLabels: 3, seed: 9)
        student.store.values.update(from: teacher.store.values, count: teacher.store.count)
        let t = try teacher.logits(input).array
        student.head.softTargets = SoftTargets(teacherLogits: t, temperature: 1, alpha: 1)
        student.store.zeroGrads()
        let l = try student.loss(input, labels: [-100, -100], training: true)
        try student.backward(scale: 1)
        #expect(l.loss == 0)
        #expect((0..<student.store.count).allSatisfy { student.store.grads[$0] == 0 })
        // Any other student has a positive loss and a gradient.
        randomize(student.store, seed: 5)
        student.store.zeroGrads()
        #expect(try student.loss(input, labels: [-100, -100], training: true).loss > 0)
        try student.backward(scale: 1)
        #expect(student.store.gradNorm() > 0)

        let tagger = try BertForTokenClassification(config: config, numLabels: 3, seed: 3)
        randomize(tagger.store, seed: 6)
        let copy = try BertForTokenClassification(config: config, numLabels: 3, seed: 8)
        copy.store.values.update(from: tagger.store.values, count: tagger.store.count)
        let labels: [Int32] = [-100, 1, 2, -100, -100, 0, -100, -100]
        copy.head.softTargets = SoftTargets(teacherLogits: try tagger.logits(input).array, temperature: 1, alpha: 1,
                                            rows: labels.map { $0 != -100 })
        copy.store.zeroGrads()
        #expect(try copy.loss(input, labels: labels, training: true).loss == 0)
        try copy.backward(scale: 1)
        #expect((0..<copy.store.count).allSatisfy { copy.store.grads[$0] == 0 })
    }

    /// Through a head model the distillation gradient of every parameter matches finite differences.
    @Test func headModelGradientsMatchFiniteDifferences() throws {
        let config = Self.headConfig, input = Self.input
        let student = try BertForSequenceClassification(config: config, numLabels: 3, seed: 3)
        randomize(student.store, seed: 14)
        student.head.softTargets = SoftTargets(teacherLogits: Self.values(7, 6), temperature: 2, alpha: 0.7)
        let labels: [Int32] = [1, -100]
        student.store.zeroGrads()
        _ = try student.loss(input, labels: labels, training: true)
        try student.backward(scale: 1)
        let checked = try expectGradientsMatch(student.store, maxPerVar: 6) {
            Double(try student.loss(input, labels: labels, training: false).loss)
        }
        #expect(checked > 50)
    }
}

/// `graft distill` end to end on tiny models.
@Suite(.enabled(if: graftExecutable != nil, "needs the built graft executable next to the test bundle"))
struct DistillCLITests {
    @Test func distillIntoAPresetAndRefuseAnotherTokenizer() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try TaskCLITests.baseModel(in: dir)
        let (train, dev) = try FineTuneCLITests.sentimentData(dir)
        let spec = try FineTuneCLITests.sentimentSpec(dir, train: train, dev: dev)
        let db = dir.appendingPathComponent("g.sqlite").path
        let teacher = dir.appendingPathComponent("teacher").path
        var r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", teacher, "--db", db, "--threads", "1"])
        #expect(r.0 == 0, "\(r.2)")
        let unlabelled = try TaskCLITests.write("a red cat sat .\nthe blue dog ran .\n\n", dir, "unlabelled.txt")
        let out = dir.appendingPathComponent("student").path
        r = try runGraft(["distill", "--teacher", teacher + "/best", "--student", "bert-tiny", "--task", spec, "--out", out,
                          "--temperature", "2", "--alpha", "0.7", "--unlabelled", unlabelled, "--db", db, "--threads", "1", "--json"])
        #expect(r.0 == 0, "\(r.2)")
        #expect(r.2.contains("distilling into BertForSequenceClassification") && r.2.contains("+ 2 unlabelled"), "\(r.2)")
        let summary = try TaskCLITests.json(try #require(r.1.split(separator: "\n").last))
        #expect(summary["accuracy"] is Double, "\(r.1)")
        let config = try ModelDirectory.config(out + "/best")
        #expect(config.hidden == 128 && config.vocabSize == 24 && config.labels == ["neg", "pos"])
        r = try runGraft(["evaluate", "--model", out + "/best", "--data", dev, "--json"])
        #expect(r.0 == 0 && r.1.contains("accuracy"), "\(r.2)")
        r = try runGraft(["corpus", "runs", "--db", db])
        #expect(r.1.contains("distill-sentiment"), "\(r.1)")

        // Unlabelled documents from a corpus-store selection.
        let store = dir.appendingPathComponent("u.sqlite").path
        r = try runGraft(["corpus", "add", unlabelled, "--format", "lines", "--db", store, "--quiet"])
        #expect(r.0 == 0, "\(r.2)")
        r = try runGraft(["distill", "--teacher", teacher + "/best", "--student", "tiny", "--task", spec, "--out", out + "-store",
                          "--unlabelled-store", store, "--db", db, "--threads", "1"])
        #expect(r.0 == 0 && r.2.contains("+ 2 unlabelled"), "\(r.2)")
        r = try runGraft(["distill", "--teacher", teacher + "/best", "--student", "tiny", "--task", spec, "--out", out + "-x",
                          "--unlabelled-store", store, "--unlabelled-source", "nope", "--db", db, "--threads", "1"])
        #expect(r.0 != 0 && r.2.contains("nope"), "\(r.2)")

        // A student directory with another tokenizer (same size, other ids) is refused.
        var words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "dog", "sat", "on", "mat", "a", "ran",
                     "##s", "##ed", "and", ".", ",", "big", "small", "red", "blue", "house", "tree"]
        words.swapAt(6, 7)
        let other = dir.appendingPathComponent("other").path
        try ModelDirectory.save(try BertForMaskedLM(config: ModelDirectory.config(base), seed: 2),
                                tokenizer: try Tokenizer.bert(vocab: Vocabulary(tokens: words)), to: other)
        r = try runGraft(["distill", "--teacher", teacher + "/best", "--student", other, "--task", spec, "--out", dir.appendingPathComponent("x").path,
                          "--db", db, "--threads", "1"])
        #expect(r.0 != 0 && r.2.contains("tokenizer is not the teacher's"), "\(r.2)")
        for (args, text) in [(["--alpha", "1.5"], "--alpha"), (["--temperature", "0"], "--temperature"), (["--model", base], "--student")] {
            r = try runGraft(["distill", "--teacher", teacher + "/best", "--student", "tiny", "--task", spec, "--out", out + "2"] + args)
            #expect(r.0 != 0 && r.2.contains(text), "\(args): \(r.2)")
        }
    }
}
