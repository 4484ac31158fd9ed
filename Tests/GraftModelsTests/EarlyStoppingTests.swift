import Foundation
import Testing
import GraftEngine
@testable import GraftModels

/// ``ToyClassification`` whose dev metric follows a script, one value per evaluation; the number
/// of evaluations so far is objective state saved with checkpoints (as a real objective's
/// generators are), so a resumed run sees the same script.
final class ScriptedMetric: TrainingObjective {
    let inner: ToyClassification
    let script: [Double]
    let higherIsBetter: Bool
    private(set) var evaluations = 0

    init(_ script: [Double], higherIsBetter: Bool = true) throws {
        inner = try ToyClassification()
        self.script = script
        self.higherIsBetter = higherIsBetter
    }

    var name: String { "scripted" }
    var settings: String { "script=\(script)" }
    var store: ParameterStore { inner.store }
    var mainMetric: MainMetric { MainMetric("f1", higherIsBetter: higherIsBetter) }
    var examplesPerEpoch: Int? { inner.examplesPerEpoch }
    func examples(epoch: Int) throws -> ExampleStream<ToyClassification.Example> { try inner.examples(epoch: epoch) }
    func trainingBatch(_ examples: [ToyClassification.Example]) throws -> ToyClassification.Batch { try inner.trainingBatch(examples) }
    func tokenCount(_ batch: ToyClassification.Batch) -> Int { inner.tokenCount(batch) }
    func loss(_ batch: ToyClassification.Batch, training: Bool) throws -> TrainingLoss { try inner.loss(batch, training: training) }
    func backward(scale: Float) throws { try inner.backward(scale: scale) }
    func evaluate(batchSize: Int, maxBatches: Int) throws -> [String: Double]? {
        defer { evaluations += 1 }
        return ["f1": script[min(evaluations, script.count - 1)]]
    }
    var checkpointState: [String: String] { ["evaluations": String(evaluations)] }
    func restore(checkpointState: [String: String]) throws { evaluations = Int(checkpointState["evaluations"] ?? "") ?? 0 }
    func save(to directory: String) throws {
        try store.save(to: URL(fileURLWithPath: directory).appendingPathComponent("model.safetensors"))
        try Data("\(evaluations)".utf8).write(to: URL(fileURLWithPath: directory).appendingPathComponent("evaluation"))
    }
}

@Suite struct EarlyStoppingTests {
    /// 48 examples, 8 per update: 6 updates an epoch, evaluated (and checkpointed) every epoch.
    static func options(patience: Int?, epochs: Int = 8) -> OptimizationOptions {
        var o = OptimizationOptions()
        o.batchSize = 8; o.epochs = epochs; o.learningRate = 0.05; o.warmupSteps = 1; o.weightDecay = 0
        o.evalEvery = 6; o.checkpointEvery = 6; o.keepCheckpoints = 1; o.patience = patience
        return o
    }

    static func bestEvaluation(_ dir: URL) throws -> String {
        String(decoding: try Data(contentsOf: dir.appendingPathComponent("best/evaluation")), as: UTF8.self)
    }

    /// Improves at evaluations 1 and 2 (0-based: 0, 1), then stalls (equal is no improvement)
    /// for two: with patience 2 the run ends after the 4th evaluation, epoch 4 of 8, best/ from
    /// the 2nd.
    static let script = [0.50, 0.60, 0.60, 0.55, 0.70, 0.80, 0.90, 0.95]

    @Test func stopsAfterPatienceEvaluationsWithoutImprovement() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let objective = try ScriptedMetric(Self.script)
        let trainer = try Trainer(objective: objective, options: Self.options(patience: 2), outputDirectory: dir.path)
        var seen: [Double] = []
        trainer.onEvaluation = { seen.append($0.value) }
        let summary = try trainer.run()
        #expect(summary.stoppedEarly && !summary.interrupted)
        #expect(summary.steps == 24 && seen == [0.50, 0.60, 0.60, 0.55])
        #expect(summary.best == 0.60 && trainer.evaluationsSinceBest == 2)
        #expect(try Self.bestEvaluation(dir) == "2", "best/ holds the model of the 2nd evaluation")
        #expect(summary.checkpoint?.hasSuffix("step-0000024") == true, "the stopping point is checkpointed")

        // Without patience the same script trains all 8 epochs.
        let full = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: full) }
        let all = try Trainer(objective: try ScriptedMetric(Self.script), options: Self.options(patience: nil), outputDirectory: full.path).run()
        #expect(!all.stoppedEarly && all.steps == 48 && all.best == 0.95)

        // Lower is better (a loss): 3.0, 2.0, 2.5, 2.5 stops with patience 2 as well.
        let loss = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: loss) }
        let l = try Trainer(objective: try ScriptedMetric([3.0, 2.0, 2.5, 2.5, 1.0], higherIsBetter: false),
                            options: Self.options(patience: 2), outputDirectory: loss.path).run()
        #expect(l.stoppedEarly && l.steps == 24 && l.best == 2.0)
    }

    /// Interrupted after the first stalled evaluation and resumed: the count of evaluations
    /// without improvement survives the checkpoint, so the run stops where the uninterrupted one
    /// did with the same weights and best; resuming a run that already stopped does nothing.
    @Test func patienceSurvivesResume() throws {
        let a = try temporaryDirectory(), b = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: a); try? FileManager.default.removeItem(at: b) }
        let straight = try ScriptedMetric(Self.script)
        let reference = try Trainer(objective: straight, options: Self.options(patience: 2), outputDirectory: a.path).run()

        let first = try ScriptedMetric(Self.script)
        let stopping = try Trainer(objective: first, options: Self.options(patience: 2), outputDirectory: b.path)
        stopping.shouldStop = { stopping.optimizer.stepCount == 18 }   // right after the 3rd evaluation (a stall)
        let interrupted = try stopping.run()
        #expect(interrupted.interrupted && !interrupted.stoppedEarly && stopping.evaluationsSinceBest == 1)

        let second = try ScriptedMetric(Self.script)
        let resumed = try Trainer(objective: second, options: Self.options(patience: 2), outputDirectory: b.path)
        let summary = try resumed.run(resume: true)
        #expect(summary.stoppedEarly && summary.steps == reference.steps && summary.best == reference.best)
        #expect(Array(UnsafeBufferPointer(start: second.store.values, count: second.store.count)).map(\.bitPattern)
                == Array(UnsafeBufferPointer(start: straight.store.values, count: straight.store.count)).map(\.bitPattern))
        #expect(try Self.bestEvaluation(b) == "2")

        let again = try Trainer(objective: try ScriptedMetric(Self.script), options: Self.options(patience: 2), outputDirectory: b.path)
        let noop = try again.run(resume: true)
        #expect(noop.stoppedEarly && noop.steps == 24 && noop.checkpoint == nil)
        // A larger patience on resume continues the run (patience may change between runs).
        let more = try Trainer(objective: try ScriptedMetric(Self.script), options: Self.options(patience: 3), outputDirectory: b.path)
        let continued = try more.run(resume: true)
        #expect(!continued.stoppedEarly && continued.steps == 48 && continued.best == 0.95)
    }
}
