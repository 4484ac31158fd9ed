import GraftSupport
import Foundation
import Testing
import GraftEngine
@testable import GraftModels

/// A classification objective as a task head would be: labelled examples of different lengths
/// (mean of the feature vectors), a frozen "encoder" layer, a head with its own learning rate,
/// accuracy as the main metric (higher is better).
final class ToyClassification: TrainingObjective {
    struct Example { var vectors: [[Float]]; var label: Int32 }
    struct Batch { var x: Tensor; var labels: [Int32] }

    let store = ParameterStore(seed: 4)
    let encoder: Linear
    let classifier: Linear
    let ce: CrossEntropyLoss
    let train: [Example]
    let dev: [Example]
    var name: String { "toy-classification" }
    var settings: String { "dim=4" }
    var mainMetric: MainMetric { MainMetric("accuracy", higherIsBetter: true) }
    var examplesPerEpoch: Int? { train.count }

    init() throws {
        encoder = try Linear(store, name: "encoder.dense", inFeatures: 4, outFeatures: 4)
        classifier = try Linear(store, name: "classifier", inFeatures: 4, outFeatures: 2)
        ce = try CrossEntropyLoss()
        var rng = RNG(seed: 9)
        func example() -> Example {
            let label = Int32(rng.int(below: 2))
            let n = 1 + rng.int(below: 5)
            let vectors = (0..<n).map { _ in (0..<4).map { j in rng.normal() * 0.5 + (j == Int(label) ? 1 : 0) } }
            return Example(vectors: vectors, label: label)
        }
        train = (0..<48).map { _ in example() }
        dev = (0..<16).map { _ in example() }
    }

    func parameterGroup(for p: Parameter) -> ParameterGroup {
        p.name.hasPrefix("encoder.") ? .frozen : ParameterGroup(learningRateScale: 2)
    }

    func examples(epoch: Int) throws -> ExampleStream<Example> {
        var r = RNG(seed: 50 + UInt64(epoch))
        var order = Array(train.indices)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, r.int(below: i + 1)) }
        return ExampleStream(order.map { train[$0] })
    }

    func trainingBatch(_ examples: [Example]) throws -> Batch {
        let x = Tensor(shape: [examples.count, 4])
        for (i, e) in examples.enumerated() {
            for v in e.vectors { for j in 0..<4 { x.data[i * 4 + j] += v[j] / Float(e.vectors.count) } }
        }
        return Batch(x: x, labels: examples.map(\.label))
    }

    func tokenCount(_ batch: Batch) -> Int { batch.labels.count }

    func loss(_ batch: Batch, training: Bool) throws -> TrainingLoss {
        let logits = try classifier.forward(encoder.forward(batch.x))
        let correct = (0..<batch.labels.count).filter { i in (logits.data[2 * i + 1] > logits.data[2 * i] ? 1 : 0) == batch.labels[i] }.count
        return TrainingLoss(loss: try ce.forward(logits, targets: batch.labels), correct: correct, counted: batch.labels.count)
    }

    func backward(scale: Float) throws { _ = try encoder.backward(classifier.backward(ce.backward(scale: scale))) }

    func evaluate(batchSize: Int, maxBatches: Int) throws -> [String: Double]? {
        let r = try loss(trainingBatch(dev), training: false)
        return ["accuracy": Double(r.correct) / Double(r.counted), "loss": Double(r.loss)]
    }

    func save(to directory: String) throws {
        try store.save(to: URL(fileURLWithPath: directory).appendingPathComponent("model.safetensors"))
    }
}

@Suite struct TrainerTests {
    static func options() -> OptimizationOptions {
        var o = OptimizationOptions()
        o.batchSize = 8; o.epochs = 3; o.learningRate = 0.05; o.warmupSteps = 1; o.schedule = .cosine
        o.evalEvery = 1; o.checkpointEvery = 4; o.weightDecay = 0
        return o
    }

    /// Epochs become updates, the frozen encoder keeps its bytes, best/ follows the highest
    /// accuracy, and a resumed run equals the uninterrupted one.
    @Test func higherIsBetterMetricFrozenParametersAndResume() throws {
        let dir = try temporaryDirectory(), dirB = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir); try? FileManager.default.removeItem(at: dirB) }
        let objective = try ToyClassification()
        let frozen = objective.store.array(objective.encoder.weight).map(\.bitPattern)
        let trainer = try Trainer(objective: objective, options: Self.options(), outputDirectory: dir.path)
        #expect(trainer.totalSteps == 18)   // 3 epochs x 48 examples / 8 per update
        var accuracies: [Double] = []
        trainer.onEvaluation = { accuracies.append($0.value) }
        let summary = try trainer.run()
        #expect(summary.steps == 18 && summary.mainMetric.higherIsBetter)
        #expect(summary.best == accuracies.max() && accuracies.count == 18)
        #expect(try #require(accuracies.max()) >= 0.75, "\(accuracies)")
        #expect(objective.store.array(objective.encoder.weight).map(\.bitPattern) == frozen)
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("best/model.safetensors").path))

        let first = try ToyClassification()
        let stopping = try Trainer(objective: first, options: Self.options(), outputDirectory: dirB.path)
        stopping.shouldStop = { first.store.count > 0 && stopping.optimizer.stepCount == 7 }
        #expect(try stopping.run().interrupted)
        let resumed = try ToyClassification()
        let second = try Trainer(objective: resumed, options: Self.options(), outputDirectory: dirB.path)
        #expect(try second.run(resume: true).best == summary.best)
        #expect(Array(UnsafeBufferPointer(start: resumed.store.values, count: resumed.store.count)).map(\.bitPattern)
                == Array(UnsafeBufferPointer(start: objective.store.values, count: objective.store.count)).map(\.bitPattern))
    }

    /// A fresh run into a directory that holds another run's checkpoints replaces them: its own
    /// checkpoint of the same step is written (the other run's was kept, and LATEST pointed a
    /// later --resume at the other run's weights).
    @Test func aFreshRunReplacesAnotherRunsCheckpoints() throws {
        let dir = try temporaryDirectory(), dirB = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir); try? FileManager.default.removeItem(at: dirB) }
        var options = Self.options()
        options.epochs = 1; options.checkpointEvery = 3
        // The other run: other weights (its classifier zeroed), checkpoints at steps 3 and 6.
        let other = try ToyClassification()
        for i in 0..<other.store.count { other.store.values[i] = 0 }
        try Trainer(objective: other, options: options, outputDirectory: dir.path).run()
        let stale = dir.appendingPathComponent("checkpoints/step-0000006/model.safetensors").path
        let staleBytes = try Data(contentsOf: URL(fileURLWithPath: stale))
        // This run in the same directory, and the same run alone in an empty one.
        let mine = try ToyClassification(), alone = try ToyClassification()
        try Trainer(objective: mine, options: options, outputDirectory: dir.path).run()
        try Trainer(objective: alone, options: options, outputDirectory: dirB.path).run()
        let written = try Data(contentsOf: URL(fileURLWithPath: stale))
        #expect(written != staleBytes)
        #expect(written == (try Data(contentsOf: dirB.appendingPathComponent("checkpoints/step-0000006/model.safetensors"))))
        // Resuming for a second epoch continues this run, as in the directory it had alone.
        options.epochs = 2
        let resumed = try ToyClassification(), resumedAlone = try ToyClassification()
        try Trainer(objective: resumed, options: options, outputDirectory: dir.path).run(resume: true)
        try Trainer(objective: resumedAlone, options: options, outputDirectory: dirB.path).run(resume: true)
        #expect(Array(UnsafeBufferPointer(start: resumed.store.values, count: resumed.store.count)).map(\.bitPattern)
                == Array(UnsafeBufferPointer(start: resumedAlone.store.values, count: resumedAlone.store.count)).map(\.bitPattern))
        // Asking a resume for fewer updates than the checkpoint has done is refused by name.
        options.epochs = 1
        #expect(throws: ModelError.self) { try Trainer(objective: try ToyClassification(), options: options, outputDirectory: dir.path).run(resume: true) }
    }

    /// Sets one `__metadata__` entry of a safetensors file, the tensors' bytes kept.
    static func editMetadata(_ path: String, _ key: String, _ value: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var header = try #require(try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any])
        var meta = try #require(header["__metadata__"] as? [String: String])
        meta[key] = value
        header["__metadata__"] = meta
        var h = try JSONSerialization.data(withJSONObject: header)
        while h.count % 8 != 0 { h.append(0x20) }
        var length = UInt64(h.count).littleEndian
        try (Data(bytes: &length, count: 8) + h + data.subdata(in: (8 + n)..<data.count)).write(to: URL(fileURLWithPath: path))
    }

    /// A training state whose numbers do not fit its checkpoint is refused on --resume, naming
    /// the key (an edited step used to "finish" at once; an edited data position to train on
    /// other data, silently).
    @Test func resumeRefusesInconsistentTrainingState() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try ToyClassification()
        let stopping = try Trainer(objective: first, options: Self.options(), outputDirectory: dir.path)
        stopping.shouldStop = { stopping.optimizer.stepCount == 5 }
        #expect(try stopping.run().interrupted)
        let state = dir.appendingPathComponent("checkpoints/step-0000005/training-state.safetensors").path
        let original = try Data(contentsOf: URL(fileURLWithPath: state))
        for (key, value) in [("optimizer.step", "99999999999999"), ("optimizer.step", "7"), ("trainer.examples_used", "99999999999999"),
                             ("trainer.epoch", "9223372036854775807"), ("trainer.tokens_seen", "abc"), ("trainer.best", "xyz"),
                             ("trainer.evaluations_since_best", "-3"), ("trainer.tokens_seen", "9223372036854775000"),
                             ("trainer.evaluations_since_best", "9223372036854775807"), ("optimizer.beta1", "nan"),
                             ("optimizer.eps", "0"), ("optimizer.weight_decay", "inf")] {
            try Self.editMetadata(state, key, value)
            let trainer = try Trainer(objective: try ToyClassification(), options: Self.options(), outputDirectory: dir.path)
            #expect { try trainer.run(resume: true) } throws: { "\($0)".contains(key) && "\($0)".contains(state) }
            try original.write(to: URL(fileURLWithPath: state))
        }
        // LATEST names a checkpoint beside it and nothing else (not a path out of the run).
        let latest = dir.appendingPathComponent("checkpoints/LATEST")
        for content in ["", "../../etc", "step-12/../../x", String(repeating: "7", count: 100)] {
            try Data(content.utf8).write(to: latest)
            let trainer = try Trainer(objective: try ToyClassification(), options: Self.options(), outputDirectory: dir.path)
            #expect { try trainer.run(resume: true) } throws: { "\($0)".contains(latest.path) && "\($0)".contains("step-N") }
        }
        try Data("step-0000005".utf8).write(to: latest)
        let trainer = try Trainer(objective: try ToyClassification(), options: Self.options(), outputDirectory: dir.path)
        #expect(try trainer.run(resume: true).steps == 18)
    }

    @Test func epochsNeedAKnownEpochSize() throws {
        var o = Self.options()
        o.epochs = 0
        #expect(throws: ModelError.self) { try Trainer(objective: try ToyClassification(), options: o, outputDirectory: "/tmp/unused") }
    }
}
