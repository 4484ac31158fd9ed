import Foundation
import GraftEngine
import GraftModels
import GraftSupport
import GraftTokenizers

/// How ``MultiTaskObjective`` chooses the task of each micro-batch.
public enum TaskSampling: Sendable, Equatable {
    /// Task `i` with probability `n_i / Σ n_j` (`n`: training windows).
    case proportional
    /// Task `i` with probability `n_i^(1/T) / Σ n_j^(1/T)`: `T = 1` is proportional, a larger
    /// `T` flattens the schedule towards uniform (small tasks drawn more often).
    case temperature(Double)

    var text: String {
        switch self {
        case .proportional: return "proportional"
        case .temperature(let t): return "temperature(\(t))"
        }
    }
}

/// The seeded schedule of a multi-task run: which task each micro-batch of an epoch trains.
///
/// Each draw is `u = next() >> 11 · 2⁻⁵³` (uniform in `[0, 1)`) from an `RNG` seeded by the
/// run's seed and the epoch, and picks the first task whose cumulative probability exceeds `u`;
/// so the schedule of an epoch depends on the seed and the epoch alone, and a resumed run
/// replays it exactly.
public struct TaskSampler: Sendable, Equatable {
    /// The probability of each task, in task order (sums to 1).
    public let probabilities: [Double]
    private let cumulative: [Double]

    /// - Parameter windowCounts: each task's number of training windows (positive).
    public init(windowCounts: [Int], sampling: TaskSampling) throws {
        guard !windowCounts.isEmpty, windowCounts.allSatisfy({ $0 > 0 }) else {
            throw TaskError.invalidArgument("task sampling needs a positive number of training windows for every task, got \(windowCounts)")
        }
        let exponent: Double
        switch sampling {
        case .proportional: exponent = 1
        case .temperature(let t):
            guard t > 0, t.isFinite else { throw TaskError.invalidArgument("the sampling temperature must be a positive number, got \(t)") }
            exponent = 1 / t
        }
        let weights = windowCounts.map { Foundation.pow(Double($0), exponent) }
        let total = weights.reduce(0, +)
        probabilities = weights.map { $0 / total }
        var sum = 0.0
        cumulative = probabilities.map { sum += $0; return sum }
    }

    /// The tasks of `count` micro-batches of `epoch` under `seed`.
    public func draws(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var rng = RNG(seed: SplitMix64.mix(seed ^ 0x6D75_6C74_6974_6173) &+ UInt64(epoch))
        return (0..<count).map { _ in
            let u = Double(rng.next() >> 11) * 0x1p-53
            return cumulative.firstIndex { u < $0 } ?? cumulative.count - 1
        }
    }
}

/// What ``MultiTaskObjective`` uses of each task's ``FineTuningObjective`` (whatever its plugin).
protocol TaskFineTuning: AnyObject {
    var taskSpec: TaskSpec { get }
    var windows: [TaskFeature] { get }
    var specCopy: (name: String, text: Data) { get }
    var mainMetric: GraftModels.MainMetric { get }
    var settings: String { get }
    var dataDigest: String { get }
    func trainingBatch(_ examples: [Int]) throws -> FeatureBatch
    func loss(_ batch: FeatureBatch, training: Bool) throws -> TrainingLoss
    func backward(scale: Float) throws
    func evaluate(batchSize: Int, maxBatches: Int) throws -> [String: Double]?
    func parameterGroup(for parameter: Parameter) -> GraftEngine.ParameterGroup
    func parameterGroup(for parameter: Parameter, epoch: Int) -> GraftEngine.ParameterGroup
}

extension FineTuningObjective: TaskFineTuning {
    var taskSpec: TaskSpec { plugin.spec }
    var windows: [TaskFeature] { train }
    var specCopy: (name: String, text: Data) { specText }
}

/// Multi-task learning: one encoder, several heads (``BertMultiTaskModel``), trained together
/// by GraftModels' one ``Trainer``. Each task is a ``FineTuningObjective`` over its head of the
/// shared model (its windows, collation, loss, dev evaluation); this objective schedules them.
///
/// - An epoch is `⌈Σ n_i / B⌉` micro-batches of `B` windows (`n_i`: task `i`'s training windows,
///   `B`: the batch size). ``TaskSampler`` draws the task of each micro-batch (seeded by the
///   seed and the epoch); the micro-batch takes that task's next `B` windows from its own
///   endless stream (its windows length-grouped and shuffled again, seeded, each time it runs
///   out). A micro-batch holds windows of one task only, so one head's loss and backward run on
///   it: the gradient reaches that head and the shared encoder.
/// - Evaluation scores every task with dev data on all of it (its published metrics, reported
///   as `TASK.KEY`, e.g. `sst.accuracy`, `conll.f1`); the main metric `mean_main` is the mean of
///   the tasks' main metrics (accuracy, entity F1, SQuAD F1), which must share a direction. It
///   selects `best/`.
/// - `save` writes the multi-head model directory plus each task's spec as
///   `graft-task-NAME.toml` (or `.json`), so every head is served by name.
public final class MultiTaskObjective: TrainingObjective {
    /// A training window (its index among its task's windows) and the task (index) it belongs to.
    public struct Window {
        public let task: Int
        public let index: Int
        public let feature: TaskFeature
    }

    /// A collated micro-batch of one task.
    public struct Batch {
        public let task: Int
        public let features: FeatureBatch
    }

    /// A task of the run before the model exists: its head and how to build its objective.
    public struct Task {
        public let spec: TaskSpec
        let make: (any PretrainedModel & TaskHeadModel, Tokenizer, FineTuningOptions) throws -> any TaskFineTuning

        /// The task `plugin` trained on `train` and scored on `dev`; `specFile` is copied into saved directories.
        public init<P: TaskPlugin>(plugin: P, train: [P.Example], dev: [P.Example], specFile: String) {
            spec = plugin.spec
            make = { model, tokenizer, options in
                try FineTuningObjective(plugin: plugin, model: model, tokenizer: tokenizer, train: train, dev: dev,
                                        options: options, specFile: specFile)
            }
        }

        /// The head this task needs in a ``BertMultiTaskModel`` (named after the task).
        public var head: BertMultiTaskModel.Head {
            let kind = BertMultiTaskModel.Kind(rawValue: spec.kind.rawValue)!
            return BertMultiTaskModel.Head(name: spec.name, kind: kind, labels: spec.labels?.labels,
                                           pooling: kind == .sequenceClassification ? spec.pooling : nil)
        }
    }

    public let model: BertMultiTaskModel
    public let tokenizer: Tokenizer
    public let options: FineTuningOptions
    public let sampling: TaskSampling
    public let sampler: TaskSampler
    let tasks: [any TaskFineTuning]
    /// Micro-batches per epoch.
    public let batchesPerEpoch: Int
    private var lastTask: Int?

    /// - Parameters:
    ///   - model: a multi-task model whose heads are the tasks' (``Task/head``), in the same order.
    ///   - options: shared by every task; `batchSize` must be the trainer's batch size.
    public init(model: BertMultiTaskModel, tokenizer: Tokenizer, tasks: [Task], options: FineTuningOptions,
                sampling: TaskSampling) throws {
        guard tasks.count >= 1, tasks.count == model.heads.count else {
            throw TaskError.invalidArgument("\(tasks.count) tasks for a model with \(model.heads.count) heads")
        }
        var parts: [any TaskFineTuning] = []
        for (task, (head, headModel)) in zip(tasks, model.heads) {
            guard head == task.head else {
                throw TaskError.invalidArgument("\(task.spec.path): the model's head \(head.name) (\(head.kind.rawValue)) is not this task's \(task.spec.name) (\(task.spec.kind.rawValue))")
            }
            parts.append(try task.make(headModel, tokenizer, options))
        }
        let directions = Set(parts.map(\.mainMetric.higherIsBetter))
        guard directions.count == 1 else {
            throw TaskError.invalidArgument("the tasks' main metrics (\(parts.map { "\($0.taskSpec.name): \($0.mainMetric.name)" }.joined(separator: ", "))) do not share a direction, so their mean selects nothing")
        }
        self.model = model
        self.tokenizer = tokenizer
        self.options = options
        self.sampling = sampling
        self.tasks = parts
        sampler = try TaskSampler(windowCounts: parts.map(\.windows.count), sampling: sampling)
        let total = parts.reduce(0) { $0 + $1.windows.count }
        batchesPerEpoch = (total + options.batchSize - 1) / options.batchSize
    }

    /// The task names, in head order.
    public var taskNames: [String] { tasks.map(\.taskSpec.name) }
    /// Each task's training windows.
    public var windowCounts: [Int] { tasks.map(\.windows.count) }

    public var name: String { "finetune-multitask" }
    public var settings: String {
        "multitask sampling=\(sampling.text) batch=\(options.batchSize) seed=\(options.seed) tasks=[" +
            tasks.map(\.settings).joined(separator: " | ") + "]"
    }
    /// The tasks' data digests, in task order, digested together.
    public var dataDigest: String {
        var digest = DataDigest()
        for t in tasks { digest.add(t.dataDigest) }
        return digest.hex
    }
    public var store: ParameterStore { model.store }
    public var dropoutRNG: SharedRNG? { model.rng }
    /// `mean_main`: the mean of the tasks' main metrics.
    public var mainMetric: GraftModels.MainMetric {
        GraftModels.MainMetric("mean_main", higherIsBetter: tasks[0].mainMetric.higherIsBetter)
    }
    public var examplesPerEpoch: Int? { batchesPerEpoch * options.batchSize }

    /// The micro-batch tasks of `epoch` (``TaskSampler/draws(count:seed:epoch:)``).
    public func schedule(epoch: Int) -> [Int] {
        sampler.draws(count: batchesPerEpoch, seed: options.seed, epoch: epoch)
    }

    /// The windows of task `t` in the order of its `pass`-th run through them.
    func order(task t: Int, pass: Int) -> [Int] {
        let salt = SplitMix64.mix(UInt64(t) &+ 0x7461_736B)
        return Array(FeatureBatch.lengthGrouped(tasks[t].windows, batchSize: options.batchSize,
                                                seed: options.seed &+ salt &+ UInt64(pass)).joined())
    }

    public func examples(epoch: Int) throws -> ExampleStream<Window> {
        let b = options.batchSize
        var used = [Int](repeating: 0, count: tasks.count)   // windows each task gave in earlier epochs
        for e in 0..<epoch { for t in schedule(epoch: e) { used[t] += b } }
        let plan = schedule(epoch: epoch)
        var cached: [Int: (pass: Int, order: [Int])] = [:]
        var slot = 0
        return ExampleStream { [self] in
            guard slot < plan.count * b else { return nil }
            let t = plan[slot / b]
            slot += 1
            let n = tasks[t].windows.count, position = used[t]
            used[t] += 1
            let pass = position / n
            if cached[t]?.pass != pass { cached[t] = (pass, order(task: t, pass: pass)) }
            let index = cached[t]!.order[position % n]
            return Window(task: t, index: index, feature: tasks[t].windows[index])
        }
    }

    public func trainingBatch(_ examples: [Window]) throws -> Batch {
        guard let t = examples.first?.task, examples.allSatisfy({ $0.task == t }) else {
            throw TaskError.invalidArgument("a multi-task micro-batch mixes tasks (or is empty): the trainer's batch size must be the objective's \(options.batchSize)")
        }
        return Batch(task: t, features: try tasks[t].trainingBatch(examples.map(\.index)))
    }

    public func tokenCount(_ batch: Batch) -> Int { batch.features.lengths.reduce(0, +) }

    public func loss(_ batch: Batch, training: Bool) throws -> TrainingLoss {
        lastTask = nil
        let l = try tasks[batch.task].loss(batch.features, training: training)
        lastTask = batch.task
        return l
    }

    public func backward(scale: Float) throws {
        guard let t = lastTask else { throw TaskError.invalidArgument("multi-task backward needs a loss first") }
        try tasks[t].backward(scale: scale)
    }

    /// Every task's dev scores as `TASK.KEY`, and `mean_main` over the tasks with dev data; nil
    /// when no task has any.
    public func evaluate(batchSize: Int, maxBatches: Int) throws -> [String: Double]? {
        var metrics: [String: Double] = [:]
        var mains: [Double] = []
        for part in tasks {
            guard let m = try part.evaluate(batchSize: batchSize, maxBatches: maxBatches) else { continue }
            for (k, v) in m { metrics["\(part.taskSpec.name).\(k)"] = v }
            guard let main = m[part.mainMetric.name] else {
                throw TaskError.invalidArgument("\(part.taskSpec.name): the evaluation lacks its main metric \(part.mainMetric.name)")
            }
            mains.append(main)
        }
        guard !mains.isEmpty else { return nil }
        metrics[mainMetric.name] = mains.reduce(0, +) / Double(mains.count)
        return metrics
    }

    /// The shared options' groups (``FineTuningObjective/parameterGroup(for:)``): every head is a
    /// `head` group (the head learning rate), the encoder frozen as the options say.
    public func parameterGroup(for parameter: Parameter) -> GraftEngine.ParameterGroup {
        tasks[0].parameterGroup(for: parameter)
    }

    /// Per-epoch groups (gradual unfreezing), as every task's objective gives them.
    public func parameterGroup(for parameter: Parameter, epoch: Int) -> GraftEngine.ParameterGroup {
        tasks[0].parameterGroup(for: parameter, epoch: epoch)
    }

    /// The model directory (``BertMultiTaskModel``) plus each task's spec as `graft-task-NAME.toml`.
    public func save(to directory: String) throws {
        try ModelDirectory.save(model, tokenizer: tokenizer, to: directory)
        for part in tasks {
            let copy = part.specCopy
            let name = multiTaskSpecFileNames(head: part.taskSpec.name)[copy.name == taskSpecFileNames[1] ? 1 : 0]
            try AtomicFile.write([UInt8](copy.text), to: URL(fileURLWithPath: directory).appendingPathComponent(name).path)
        }
    }
}

/// The spec file names of head `head` in a multi-task model directory: `graft-task-HEAD.toml`, `.json`.
public func multiTaskSpecFileNames(head: String) -> [String] {
    ["graft-task-\(head).toml", "graft-task-\(head).json"]
}
