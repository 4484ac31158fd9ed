import Foundation
import GraftEngine
import GraftSupport

/// Settings every objective shares: optimizer, schedule, batching, evaluation and checkpoint
/// cadence (stored with every checkpoint; resuming needs the same, except the stopping point
/// and the cadences).
public struct OptimizationOptions: Codable, Sendable, Equatable {
    /// The largest micro-batch the commands accept (examples; a batch cycles through the
    /// training data, so a larger one is memory, not data).
    public static let maxBatchSize = 4096
    /// The learning rates the commands accept (the range a task spec's `train.lr` has).
    public static let learningRates: ClosedRange<Float> = 1e-12...10
    /// Examples per micro-batch.
    public var batchSize = 32
    /// Optimizer updates (when ``epochs`` is nil).
    public var steps = 1000
    /// Train for this many epochs instead of ``steps`` (needs the objective's examples per epoch).
    public var epochs: Int?
    /// Micro-batches per update.
    public var accumulation = 1
    /// Peak learning rate (after warm-up).
    public var learningRate: Float = 5e-4
    public var warmupSteps = 100
    /// The learning rate after warm-up.
    public var schedule = LRSchedule.Decay.linear
    /// AdamW's decoupled weight decay (parameters whose ``Parameter/decay`` is true).
    public var weightDecay: Float = 0.01
    /// Clip the global gradient norm to this (0: no clipping).
    public var clipNorm: Float = 1.0
    /// Evaluate every this many updates (0: only at the end).
    public var evalEvery = 200
    /// Batches per evaluation (0: all held-out data).
    public var evalBatches = 8
    /// Write a checkpoint every this many updates (0: only at the end).
    public var checkpointEvery = 200
    /// Checkpoints kept besides `best/` (older ones are deleted).
    public var keepCheckpoints = 2
    /// Seeds the data order and any generator the objective derives from it.
    public var seed: UInt64 = 1
    /// Early stopping: end the run when this many evaluations in a row have not improved the
    /// main metric (nil: never). `best/` keeps the best; the count is saved with checkpoints.
    public var patience: Int?

    public init() {}

    /// The options with the fields that may change between a run and its resumption cleared.
    var resumable: OptimizationOptions {
        var o = self
        o.steps = 0; o.epochs = nil; o.evalEvery = 0; o.checkpointEvery = 0; o.keepCheckpoints = 0; o.patience = nil
        return o
    }
}

/// What the trainer reports after each update.
public struct TrainingStep: Sendable {
    public var step: Int
    public var totalSteps: Int
    /// Mean loss over the update's micro-batches.
    public var loss: Float
    /// Share of counted predictions that were right (nil when the objective counted none).
    public var accuracy: Float?
    public var learningRate: Float
    /// Global gradient norm before clipping.
    public var gradNorm: Double
    /// Training tokens per second over this update.
    public var tokensPerSecond: Double
    public var tokensSeen: Int
}

/// An evaluation on held-out data.
public struct TrainingEvaluation: Sendable {
    public var step: Int
    /// Every metric of the objective (`loss`, `accuracy`, `f1`, …).
    public var metrics: [String: Double]
    public var mainMetric: MainMetric
    /// Whether this evaluation is the best so far (and was saved as `best/`).
    public var isBest: Bool
    /// The main metric's value.
    public var value: Double { metrics[mainMetric.name] ?? .nan }
}

/// Where a run ended.
public struct TrainingSummary: Sendable {
    public var steps: Int
    public var interrupted: Bool
    /// Whether the run ended early: ``OptimizationOptions/patience`` evaluations without improvement.
    public var stoppedEarly: Bool
    public var lastLoss: Float?
    /// The best value of the main metric.
    public var best: Double?
    public var mainMetric: MainMetric
    /// The last checkpoint written.
    public var checkpoint: String?
    /// Wall time of the run (this process's part of it, for a resumed run).
    public var seconds: Double
    /// The part of ``seconds`` spent in periodic dev evaluations (keeping `best/` included).
    public var evaluationSeconds: Double = 0
    /// The part of ``seconds`` spent writing checkpoints.
    public var checkpointSeconds: Double = 0
}

/// Trains a ``TrainingObjective``: AdamW (with the objective's parameter groups), linear warm-up
/// then the chosen decay, gradient accumulation and clipping, periodic evaluation keeping
/// `best/` by the objective's main metric, early stopping when the main metric has not improved
/// for ``OptimizationOptions/patience`` evaluations, and checkpoints from which a run continues
/// with bit-identical results.
///
/// Layout of `outputDirectory`:
/// - `checkpoints/step-NNNNNNN/`: the objective's model directory plus
///   `training-state.safetensors` (weights, AdamW moments, step, schedule, dropout generator,
///   data position and the objective's state); each is written under a temporary name and
///   renamed when complete.
/// - `checkpoints/LATEST`: the name of the newest complete checkpoint (replaced atomically).
/// - `best/`: the model with the best main metric so far (swapped in whole).
/// - `history.jsonl`: every update's loss, learning rate and throughput and every evaluation's
///   metrics, one JSON line each (``TrainingHistory``; a resumed run continues it).
///
/// ```swift
/// let trainer = try Trainer(objective: MaskedLMObjective(...), options: options, outputDirectory: "out")
/// trainer.shouldStop = { interrupted }   // e.g. set by SIGINT: writes a checkpoint, then returns
/// let summary = try trainer.run(resume: true)
/// ```
public final class Trainer<Objective: TrainingObjective> {
    public let objective: Objective
    public let options: OptimizationOptions
    public let outputDirectory: URL
    /// Updates of the whole run (``OptimizationOptions/steps``, or the epochs converted to updates).
    public let totalSteps: Int
    public let optimizer: AdamW
    public let schedule: LRSchedule
    /// Called after every update.
    public var onStep: ((TrainingStep) -> Void)?
    /// Called after every evaluation.
    public var onEvaluation: ((TrainingEvaluation) -> Void)?
    /// Called after every checkpoint with its directory.
    public var onCheckpoint: ((String) -> Void)?
    /// Polled after every update; when it returns true, a checkpoint is written and `run` returns.
    public var shouldStop: () -> Bool = { false }

    /// Data position: the epoch and the examples of it used so far.
    public private(set) var epoch = 0
    public private(set) var examplesUsed = 0
    public private(set) var tokensSeen = 0
    /// The best main-metric value so far.
    public private(set) var best: Double?
    /// Evaluations in a row (up to now) that did not improve on ``best``.
    public private(set) var evaluationsSinceBest = 0
    private var iterator: ExampleStream<Objective.Example>?
    /// `history.jsonl` of the running ``run(resume:)`` (rank 0).
    private var history: TrainingHistory?
    /// The checkpoint folders this trainer has written (each step's at most once).
    private var checkpointsWritten: Set<String> = []
    /// The ranks sharing each update (``DataParallel``; one process by default).
    public let dataParallel: DataParallel

    /// The objective's ``TrainingObjective/dataDigest``, taken once: saved with every checkpoint
    /// as `trainer.data`, compared on resume.
    let dataDigest: String

    /// `options.accumulation` counts the micro-batches of an update over all ranks of
    /// `dataParallel` (a multiple of its size: N ranks × the per-rank accumulation).
    public init(objective: Objective, options: OptimizationOptions, outputDirectory: String,
                dataParallel: DataParallel = DataParallel()) throws {
        guard options.batchSize > 0, options.accumulation > 0, options.steps > 0 || (options.epochs ?? 0) > 0 else {
            throw ModelError.invalidArgument("batch size, accumulation and steps (or epochs) must be positive")
        }
        guard options.accumulation % dataParallel.size == 0 else {
            throw ModelError.invalidArgument("accumulation \(options.accumulation) (micro-batches per update over all ranks) is not a multiple of the \(dataParallel.size) ranks")
        }
        self.dataParallel = dataParallel
        guard options.warmupSteps >= 0, options.evalEvery >= 0, options.evalBatches >= 0, options.checkpointEvery >= 0,
              options.learningRate > 0, options.weightDecay >= 0, options.clipNorm >= 0 else {
            throw ModelError.invalidArgument("learning rate must be positive; warm-up, weight decay, clipping and cadences not negative")
        }
        if let epochs = options.epochs {
            guard epochs > 0, let n = objective.examplesPerEpoch, n > 0 else {
                throw ModelError.invalidArgument("training for \(options.epochs ?? 0) epochs needs a positive epoch count and an objective that knows its examples per epoch")
            }
            let perUpdate = options.batchSize * options.accumulation
            totalSteps = (epochs * n + perUpdate - 1) / perUpdate
        } else {
            totalSteps = options.steps
        }
        self.objective = objective
        self.options = options
        dataDigest = objective.dataDigest
        self.outputDirectory = URL(fileURLWithPath: outputDirectory)
        optimizer = AdamW(objective.store, weightDecay: options.weightDecay, groups: { objective.parameterGroup(for: $0, epoch: 0) })
        schedule = LRSchedule(baseLR: options.learningRate, warmupSteps: options.warmupSteps, totalSteps: totalSteps,
                              decay: options.schedule)
        objective.parameterGroupsChanged(epoch: 0)
    }

    // MARK: Data

    /// The examples of the next micro-batch, moving to the next epoch when one runs out.
    func nextExamples() throws -> [Objective.Example] {
        var out: [Objective.Example] = []
        out.reserveCapacity(options.batchSize)
        var emptyEpochs = 0
        while out.count < options.batchSize {
            if iterator == nil { iterator = try objective.examples(epoch: epoch) }
            if let example = try iterator!.next() {
                out.append(example)
                examplesUsed += 1
                emptyEpochs = 0
            } else {
                if examplesUsed == 0 { emptyEpochs += 1 }
                guard emptyEpochs < 2 else {
                    throw ModelError.invalidArgument("the \(objective.name) objective has no training examples")
                }
                epoch += 1
                examplesUsed = 0
                iterator = nil
            }
        }
        return out
    }

    /// The epoch of the next micro-batch's first example (the current one, or the next when
    /// the current one is used up).
    var upcomingEpoch: Int {
        if let n = objective.examplesPerEpoch, examplesUsed >= n { return epoch + 1 }
        return epoch
    }

    /// The epoch whose parameter groups the optimizer holds.
    private var groupsEpoch = 0

    /// Gives the optimizer the objective's groups for the epoch of the coming update, when it
    /// differs from the one it has (gradual unfreezing).
    func updateParameterGroups() {
        let e = upcomingEpoch
        guard e != groupsEpoch else { return }
        optimizer.regroup(objective.store) { objective.parameterGroup(for: $0, epoch: e) }
        groupsEpoch = e
        objective.parameterGroupsChanged(epoch: e)
    }

    // MARK: Evaluation

    /// Evaluates the objective now (no side effects on `best/`); nil without held-out data.
    public func evaluate() throws -> [String: Double]? {
        try objective.evaluate(batchSize: options.batchSize, maxBatches: options.evalBatches)
    }

    /// Without dev data there is nothing to choose by: the model of the last update is kept in
    /// `best` (so a finished run always leaves one there).
    func evaluateAndKeepBest(step: Int) throws {
        guard let metrics = try evaluate() else {
            if step == totalSteps { try replaceDirectory(outputDirectory.appendingPathComponent("best")) { try objective.save(to: $0.path) } }
            return
        }
        let main = objective.mainMetric
        guard let value = metrics[main.name] else {
            throw ModelError.invalidArgument("the \(objective.name) evaluation lacks its main metric \(main.name) (has \(metrics.keys.sorted()))")
        }
        let isBest = main.improves(value, on: best)
        evaluationsSinceBest = isBest ? 0 : evaluationsSinceBest + 1
        if isBest {
            best = value
            try replaceDirectory(outputDirectory.appendingPathComponent("best")) { try objective.save(to: $0.path) }
        }
        let evaluation = TrainingEvaluation(step: step, metrics: metrics, mainMetric: main, isBest: isBest)
        try history?.record(evaluation)
        onEvaluation?(evaluation)
    }

    // MARK: Training

    /// Trains until ``totalSteps`` updates (or until ``shouldStop`` says so), continuing from
    /// the latest checkpoint when `resume` is true.
    @discardableResult
    public func run(resume: Bool = false) throws -> TrainingSummary {
        let started = Date()
        if resume {
            try restoreLatest()
            // Fewer updates than the checkpoint has done: nothing to run, and the run would be
            // reported finished at a step it is past.
            if optimizer.stepCount > totalSteps {
                throw ModelError.invalidArgument("nothing to resume: the checkpoint is at update \(optimizer.stepCount), past the \(totalSteps) updates asked for; ask for more (--steps or --epochs) to continue it")
            }
        } else if dataParallel.isLeader {
            try removeCheckpoints()
        }
        history = dataParallel.isLeader ? try TrainingHistory(directory: outputDirectory, resumingAt: resume ? optimizer.stepCount : nil) : nil
        defer { history = nil }
        let store = objective.store
        var lastLoss: Float?
        var interrupted = false
        var lastCheckpoint: String?
        var stoppedEarly = false
        var evaluationSeconds = 0.0, checkpointSeconds = 0.0
        /// Runs `body`, adding its wall time to `total`.
        func timed<R>(_ total: inout Double, _ body: () throws -> R) rethrows -> R {
            let t0 = DispatchTime.now().uptimeNanoseconds
            defer { total += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
            return try body()
        }
        var patienceExhausted: Bool { options.patience.map { evaluationsSinceBest >= $0 } ?? false }
        while optimizer.stepCount < totalSteps {
            if patienceExhausted { stoppedEarly = true; break }   // resumed from a run that had stopped early
            let t0 = DispatchTime.now().uptimeNanoseconds
            updateParameterGroups()
            let updateEpoch = groupsEpoch
            Profiler.region("zero gradients") { store.zeroGrads() }
            let (lossSum, correct, counted, tokens) = try Profiler.region("forward + backward") { try accumulateGradients() }
            let norm = Profiler.region("clip gradients") {
                optimizer.zeroFrozenGradients(store)
                return store.gradNorm()
            }
            // A non-finite gradient would make every parameter NaN: stop before the update, so the
            // parameters (and the last checkpoint) stay those of the last good update. The norm is
            // of the summed gradients, the same on every rank; the loss is checked in one process.
            let loss = lossSum / Float(options.accumulation)
            if !norm.isFinite || (!loss.isFinite && dataParallel.size == 1) {
                throw ModelError.diverged(step: optimizer.stepCount + 1, detail: "loss \(loss), gradient norm \(norm); the parameters of the last update are kept (a lower learning rate may help)")
            }
            let lr = schedule.lr(at: optimizer.stepCount)
            // Clipping scales the gradients as the optimizer reads them (no pass rewriting them).
            let scale = options.clipNorm > 0 ? clipFactor(norm: norm, maxNorm: options.clipNorm) : 1
            try Profiler.region("optimizer step") { try optimizer.step(store, lr: lr, gradientScale: scale) }
            tokensSeen += tokens
            lastLoss = loss
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            let step = optimizer.stepCount
            let report = TrainingStep(step: step, totalSteps: totalSteps, loss: loss,
                                      accuracy: counted > 0 ? Float(correct) / Float(counted) : nil, learningRate: lr,
                                      gradNorm: norm, tokensPerSecond: Double(tokens) / max(seconds, 1e-9), tokensSeen: tokensSeen)
            try history?.record(report, epoch: updateEpoch)
            onStep?(report)
            let finished = step == totalSteps
            if ((options.evalEvery > 0 && step % options.evalEvery == 0) || finished) && dataParallel.isLeader {
                try timed(&evaluationSeconds) { try Profiler.region("evaluation") { try evaluateAndKeepBest(step: step) } }
            }
            let stop = try agreedStop(interrupt: shouldStop(), early: patienceExhausted && !finished)
            stoppedEarly = stop.early
            if stop.interrupt || stoppedEarly {
                interrupted = !finished && !stoppedEarly
                lastCheckpoint = try timed(&checkpointSeconds) { try writeCheckpoint() }
                break
            }
            if (options.checkpointEvery > 0 && step % options.checkpointEvery == 0) || finished {
                lastCheckpoint = try timed(&checkpointSeconds) { try Profiler.region("checkpoint") { try writeCheckpoint() } }
            }
        }
        return TrainingSummary(steps: optimizer.stepCount, interrupted: interrupted, stoppedEarly: stoppedEarly, lastLoss: lastLoss, best: best,
                               mainMetric: objective.mainMetric, checkpoint: lastCheckpoint,
                               seconds: Date().timeIntervalSince(started),
                               evaluationSeconds: evaluationSeconds, checkpointSeconds: checkpointSeconds)
    }

    // MARK: Checkpoints

    /// The training-state file inside a checkpoint directory.
    public static var stateFile: String { "training-state.safetensors" }
    var checkpointsDirectory: URL { outputDirectory.appendingPathComponent("checkpoints") }

    /// Writes the full training state as a new checkpoint directory, then points LATEST at it.
    @discardableResult
    public func writeCheckpoint() throws -> String {
        let fm = FileManager.default
        let name = String(format: "step-%07d", optimizer.stepCount)
        guard dataParallel.isLeader else { return checkpointsDirectory.appendingPathComponent(name).path }   // rank 0 writes
        try fm.createDirectory(at: checkpointsDirectory, withIntermediateDirectories: true)
        let final = checkpointsDirectory.appendingPathComponent(name)
        // Written at most once per step in a run (a stop right after a periodic checkpoint asks
        // again); a folder of this name from before (an interrupted write's orphan) is replaced.
        if !checkpointsWritten.contains(name) {
            let tmp = checkpointsDirectory.appendingPathComponent("\(name).tmp-\(getpid())")
            try? fm.removeItem(at: tmp)
            try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
            try objective.save(to: tmp.path)
            try TrainingCheckpoint.save(to: tmp.appendingPathComponent(Self.stateFile), store: objective.store,
                                        optimizer: optimizer, schedule: schedule, rng: objective.dropoutRNG,
                                        metadata: stateMetadata())
            if fm.fileExists(atPath: final.path) { try fm.removeItem(at: final) }
            try fm.moveItem(at: tmp, to: final)
            checkpointsWritten.insert(name)
        }
        try writeAtomically(Data(name.utf8), to: checkpointsDirectory.appendingPathComponent("LATEST"))
        try pruneCheckpoints(keeping: name)
        onCheckpoint?(final.path)
        return final.path
    }

    func stateMetadata() throws -> [String: String] {
        var meta: [String: String] = [
            "trainer.options": try JSONValue(encoding: options).serialized(),
            "trainer.objective": objective.name,
            "trainer.objective_settings": objective.settings,
            "trainer.epoch": String(epoch),
            "trainer.examples_used": String(examplesUsed),
            "trainer.tokens_seen": String(tokensSeen),
            "trainer.evaluations_since_best": String(evaluationsSinceBest),
        ]
        if let best { meta["trainer.best"] = String(best.bitPattern) }
        if !dataDigest.isEmpty { meta["trainer.data"] = dataDigest }
        for (k, v) in objective.checkpointState { meta["objective." + k] = v }
        return meta
    }

    /// Restores the checkpoint LATEST names: weights, optimizer, schedule, dropout generator,
    /// data position, best value and the objective's state.
    func restoreLatest() throws {
        let latestFile = checkpointsDirectory.appendingPathComponent("LATEST")
        guard let data = FileManager.default.contents(atPath: latestFile.path) else {
            throw ModelError.invalidArgument("nothing to resume: \(latestFile.path) does not exist")
        }
        // LATEST names one checkpoint beside it, as writeCheckpoint writes it: step-NNNNNNNN.
        let name = String(decoding: data.prefix(64), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard data.count <= 64, name.hasPrefix("step-"), name.count > 5, name.dropFirst(5).allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw ModelError.badWeights(file: latestFile.path, problem: "does not name a checkpoint (step-N); it holds \(JSONValue.quoted(String(name.prefix(40))))")
        }
        let stateURL = checkpointsDirectory.appendingPathComponent(name).appendingPathComponent(Self.stateFile)
        let restored: TrainingCheckpoint.Restored
        do {
            restored = try TrainingCheckpoint.load(from: stateURL, store: objective.store, optimizer: optimizer,
                                                   rng: objective.dropoutRNG)
        } catch let e as ModelError { throw e } catch {
            throw ModelError.badWeights(file: stateURL.path, problem: "\(error)")
        }
        let meta = restored.metadata
        let saved = meta["trainer.options"].flatMap { try? JSONDecoder().decode(OptimizationOptions.self, from: Data($0.utf8)) }
        guard let saved, meta["trainer.objective"] == objective.name else {
            throw ModelError.invalidArgument("\(stateURL.path) is not a \(objective.name) training state")
        }
        guard saved.resumable == options.resumable, meta["trainer.objective_settings"] == objective.settings else {
            // Name what differs: the optimization options by field, else the objective's settings.
            func fields(_ o: OptimizationOptions) -> [String: String] {
                guard let data = try? JSONEncoder().encode(o),
                      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
                return object.mapValues { "\($0)" }
            }
            let was = fields(saved.resumable), now = fields(options.resumable)
            let changed = Set(was.keys).union(now.keys).filter { was[$0] != now[$0] }.sorted()
                .map { "\($0) \(was[$0] ?? "-") -> \(now[$0] ?? "-")" }
            let what = changed.isEmpty ? "the objective's settings (\(meta["trainer.objective_settings"] ?? "-") -> \(objective.settings))"
                                       : changed.joined(separator: ", ")
            throw ModelError.invalidArgument("\(stateURL.path) was written with other training settings (\(what)); resume with the same ones (only the steps or epochs and the eval/checkpoint intervals may change)")
        }
        // Other data would resume at the saved position in other examples (and choose best/ on
        // another dev set): refused. A state written before the digest existed is not checked.
        if let saved = meta["trainer.data"], !dataDigest.isEmpty, saved != dataDigest {
            throw ModelError.invalidArgument("\(stateURL.path) was written for other training data (trainer.data \(saved.prefix(16)) -> \(dataDigest.prefix(16))): the training or dev examples changed since (a corpus split, an edited or other data file, another --limit-train); resume on the same data, or start a new run in another output directory")
        }
        func corrupt(_ key: String, _ problem: String) -> ModelError {
            .badWeights(file: stateURL.path, problem: "\(key) \(meta[key].map { JSONValue.quoted($0) } ?? "(absent)") \(problem)")
        }
        // The state is read as written by writeCheckpoint: every number in range and consistent
        // with the checkpoint it sits in, or the resumed run would silently differ.
        let step = optimizer.stepCount
        if name.hasPrefix("step-"), let named = Int(name.dropFirst(5)), named != step {
            throw corrupt("optimizer.step", "is not the step of its checkpoint \(name)")
        }
        guard step >= 0 else { throw corrupt("optimizer.step", "is negative") }
        guard let e = meta["trainer.epoch"].flatMap(Int.init), let used = meta["trainer.examples_used"].flatMap(Int.init) else {
            throw ModelError.invalidArgument("\(stateURL.path) lacks the data position (trainer.epoch, trainer.examples_used)")
        }
        // An epoch holds at least one example, and an update takes batch x accumulation of them.
        let examplesTaken = step.multipliedReportingOverflow(by: options.batchSize * options.accumulation)
        let taken = examplesTaken.overflow ? Int.max : examplesTaken.partialValue
        guard e >= 0, e <= taken else { throw corrupt("trainer.epoch", "is not an epoch \(step) updates can reach") }
        guard used >= 0, used <= taken else { throw corrupt("trainer.examples_used", "is not a position \(step) updates can reach") }
        func number<T: LosslessStringConvertible>(_ key: String, _ type: T.Type, valid: (T) -> Bool = { _ in true }) throws -> T? {
            guard let text = meta[key] else { return nil }
            guard let v = T(text), valid(v) else { throw corrupt(key, "is not a valid value") }
            return v
        }
        var objectiveState: [String: String] = [:]
        for (k, v) in meta where k.hasPrefix("objective.") { objectiveState[String(k.dropFirst("objective.".count))] = v }
        try objective.restore(checkpointState: objectiveState)
        // Tokens: at most 2²⁰ per example taken; evaluations: at most one per update and a last one.
        let tokenBound = taken > Int.max >> 20 ? Int.max >> 1 : taken << 20
        tokensSeen = try number("trainer.tokens_seen", Int.self) { $0 >= 0 && $0 <= tokenBound } ?? 0
        best = try number("trainer.best", UInt64.self).map(Double.init(bitPattern:))
        evaluationsSinceBest = try number("trainer.evaluations_since_best", Int.self) { $0 >= 0 && $0 <= step + 1 } ?? 0
        epoch = e
        examplesUsed = 0
        let it = try objective.examples(epoch: epoch)
        iterator = it
        while examplesUsed < used, try it.next() != nil { examplesUsed += 1 }
        guard examplesUsed == used else { throw corrupt("trainer.examples_used", "is past the end of epoch \(e) (\(examplesUsed) examples)") }
    }

    /// A fresh run (not resumed) in an output directory that holds another run's checkpoints
    /// starts over, as its `history.jsonl` does: those checkpoints go, so that neither a
    /// checkpoint of the same step nor LATEST can stand for this run (a later `--resume` would
    /// continue the other run's weights).
    func removeCheckpoints() throws {
        let fm = FileManager.default
        guard fm.fileExists(atPath: checkpointsDirectory.path) else { return }
        do {
            try fm.removeItem(at: checkpointsDirectory)
        } catch {
            throw ModelError.invalidArgument("\(checkpointsDirectory.path): cannot remove the checkpoints of the run this one replaces (\(error.localizedDescription)); remove them, or resume that run with --resume")
        }
    }

    func pruneCheckpoints(keeping current: String) throws {
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: checkpointsDirectory.path)) ?? []
        let steps = names.filter { $0.hasPrefix("step-") && !$0.contains(".tmp-") }.sorted()
        for old in steps.dropLast(max(1, options.keepCheckpoints)) where old != current {
            try? fm.removeItem(at: checkpointsDirectory.appendingPathComponent(old))
        }
    }

    /// Builds a directory under a temporary name with `body`, then swaps it in for `dir`.
    func replaceDirectory(_ dir: URL, _ body: (URL) throws -> Void) throws {
        let fm = FileManager.default
        let tmp = dir.deletingLastPathComponent().appendingPathComponent(".\(dir.lastPathComponent).tmp-\(getpid())")
        try? fm.removeItem(at: tmp)
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        try body(tmp)
        let old = dir.deletingLastPathComponent().appendingPathComponent(".\(dir.lastPathComponent).old-\(getpid())")
        if fm.fileExists(atPath: dir.path) { try fm.moveItem(at: dir, to: old) }
        try fm.moveItem(at: tmp, to: dir)
        try? fm.removeItem(at: old)
    }

    func writeAtomically(_ data: Data, to url: URL) throws {
        try ModelDirectory.writeBytes([UInt8](data), to: url.path)
    }
}
