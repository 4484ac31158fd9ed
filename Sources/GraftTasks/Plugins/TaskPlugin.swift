import Foundation
import GraftCorpus
import GraftSupport
import GraftTokenizers

/// What a head computes for one window.
public enum HeadOutput: Sendable, Equatable {
    /// Sequence classification: `[L]` logits.
    case sequence(logits: [Float])
    /// Token classification: `[T, L]` logits, row-major, `count` = T.
    case tokens(logits: [Float], count: Int)
    /// Extractive QA: `[T]` start and `[T]` end logits.
    case span(start: [Float], end: [Float])
}

/// The loss target of one window.
public enum HeadTarget: Sendable, Equatable {
    /// Sequence classification: the class id.
    case classID(Int)
    /// Token classification: `[T]` label ids, -100 (``ignoreIndex``) where there is no loss.
    case tokenLabels([Int])
    /// Extractive QA: start and end token positions (the CLS position when the answer is not in
    /// the window).
    case span(start: Int, end: Int)
}

/// One model input: a window of tokens and, for labelled data, its loss target.
public struct TaskFeature: Sendable, Equatable {
    public var window: Window
    public var target: HeadTarget?
    /// Token classification: `[T]` the example word of each token (for merging windows).
    public var words: [Int?]?
    /// QA: `[T]` true for context tokens.
    public var contextMask: [Bool]?
    /// The window's loss weight in training (instance weighting); nil weighs it 1.
    public var weight: Float?

    public init(window: Window, target: HeadTarget?, words: [Int?]? = nil, contextMask: [Bool]? = nil, weight: Float? = nil) {
        self.window = window
        self.target = target
        self.words = words
        self.contextMask = contextMask
        self.weight = weight
    }
}

/// The metric a task selects checkpoints and stops early on.
public struct MainMetric: Sendable, Equatable {
    /// A key of ``TaskScores/values`` (`accuracy`, `f1`, …).
    public var key: String
    public var higherIsBetter: Bool

    public init(key: String, higherIsBetter: Bool = true) {
        self.key = key
        self.higherIsBetter = higherIsBetter
    }

    /// Whether `candidate` improves on `best` (any value improves on nil).
    public func improves(_ candidate: Double, on best: Double?) -> Bool {
        guard let best else { return true }
        return higherIsBetter ? candidate > best : candidate < best
    }
}

/// A task's scores: flat values under the keys `graft evaluate --json` prints (`accuracy`,
/// `macro_f1`, `f1`, `precision`, `recall`, `exact_match`: fractions 0–1, as they apply), the
/// number of examples, and the detailed report of the task's metric.
public struct TaskScores: Sendable, Equatable {
    public var values: [String: Double]
    public var examples: Int
    public var detail: Detail

    public enum Detail: Sendable, Equatable {
        case classification(ClassificationScores)
        case entities(EntityScores)
        case answers(exactMatch: Double, f1: Double)
    }
}

/// Accumulates a task's metric over gold examples and predictions, one at a time.
public protocol TaskEvaluator<Example, Prediction>: Sendable {
    associatedtype Example: Sendable
    associatedtype Prediction: Sendable
    mutating func add(_ example: Example, _ prediction: Prediction) throws
    var scores: TaskScores { get }
}

/// A task kind: everything about a task that is not the network.
///
/// A plugin reads its examples (files or a corpus-store selection), turns each into model
/// windows through the tokenizer's offsets (``TaskFeature``: ids, offsets, loss targets),
/// decodes the head's window outputs (``HeadOutput``) back into the user's terms (labels,
/// character-offset entities, answer strings) and scores predictions with its published metric.
///
/// The network part — building the head on a backbone, its forward, loss and backward — is the
/// ``TaskHead`` seam, registered per ``HeadKind`` in ``TaskRegistry``; GraftTasks itself does not
/// implement it.
///
/// A new head kind is one type conforming to this protocol plus one
/// `TaskRegistry.register(MyPlugin.self)` line.
public protocol TaskPlugin: Sendable {
    associatedtype Example: Sendable
    associatedtype Prediction: Sendable
    associatedtype Evaluator: TaskEvaluator where Evaluator.Example == Example, Evaluator.Prediction == Prediction

    /// The registry name (`sentiment`, `ner`, `qa`).
    static var name: String { get }
    /// Other names the plugin answers to.
    static var aliases: [String] { get }
    static var headKind: HeadKind { get }

    init(spec: TaskSpec) throws
    var spec: TaskSpec { get }
    /// The label set (classes, or expanded tags); nil when the head has no labels (QA).
    var labels: LabelSet? { get }
    /// The number of outputs per position of the head: classes, tags, or 2 for QA.
    var outputCount: Int { get }
    var mainMetric: MainMetric { get }

    /// Reads labelled examples from a spec's data source.
    func examples(from source: DataSource) throws -> [Example]
    /// The model windows of one example (`index` identifies it in its list).
    func features(_ example: Example, index: Int, tokenizer: Tokenizer) throws -> [TaskFeature]
    /// The prediction for one example from the outputs of its windows (in window order).
    func decode(_ example: Example, features: [TaskFeature], outputs: [HeadOutput]) throws -> Prediction
    func makeEvaluator() -> Evaluator
}

extension TaskPlugin {
    public static var aliases: [String] { [] }

    /// Checks, for `init(spec:)`, that `spec` is a task of this plugin's head kind (an error
    /// naming the spec file otherwise).
    static func check(_ spec: TaskSpec) throws {
        guard spec.kind == headKind else { throw TaskError.invalidArgument("\(spec.path): not a \(headKind.rawValue) task") }
    }

    /// `spec`'s label set, for `init(spec:)` of a labelled kind: ``check(_:)``, then the
    /// labels, whose absence is a missing-key error naming the spec file.
    static func requiredLabels(_ spec: TaskSpec) throws -> LabelSet {
        try check(spec)
        guard let labels = spec.labels else { throw TaskError.missingKey(file: spec.path, key: "labels") }
        return labels
    }
}

/// The network side of a task: a head of some kind on a backbone, with its forward, loss and
/// backward. ``ModelTaskHead`` implements it over GraftModels' head models (which the
/// architecture registry builds from `config.json`).
public protocol TaskHead: AnyObject {
    var kind: HeadKind { get }
    /// `[B]` outputs for a batch of windows (padded to the longest).
    func forward(_ batch: FeatureBatch) throws -> [HeadOutput]
    /// The mean loss over the batch's targets, keeping what ``backward(scale:)`` needs.
    func loss(_ batch: FeatureBatch, training: Bool) throws -> Float
    /// Adds the loss's gradients into the model's parameter store.
    func backward(scale: Float) throws
}

/// Windows padded into one batch: `[B, T]` row-major, T the longest window.
public struct FeatureBatch: Sendable, Equatable {
    public var batchSize: Int
    public var length: Int
    public var inputIds: [Int32]
    public var typeIds: [Int32]
    /// 1 for real tokens, 0 for padding.
    public var attentionMask: [Int32]
    /// The targets of the windows (nil when unlabelled); token labels are padded with -100.
    public var targets: [HeadTarget?]
    /// Which feature each row is (indices into the list the batch was made from).
    public var rows: [Int]
    /// `[B]` real (unpadded) length of each row.
    public var lengths: [Int]
    /// `[B]` loss weights of the rows when any window carries one (others weigh 1), else nil.
    public var weights: [Float]?

    /// Pads `features[rows]` to their longest window with `padID`.
    public init(_ features: [TaskFeature], rows: [Int], padID: Int32) {
        batchSize = rows.count
        length = rows.map { features[$0].window.count }.max() ?? 0
        inputIds = []; typeIds = []; attentionMask = []; targets = []
        lengths = rows.map { features[$0].window.count }
        inputIds.reserveCapacity(batchSize * length)
        for r in rows {
            let w = features[r].window
            let pad = length - w.count
            inputIds += w.inputIds + [Int32](repeating: padID, count: pad)
            typeIds += w.typeIds + [Int32](repeating: 0, count: pad)
            attentionMask += [Int32](repeating: 1, count: w.count) + [Int32](repeating: 0, count: pad)
            if case .tokenLabels(let l)? = features[r].target {
                targets.append(.tokenLabels(l + [Int](repeating: ignoreIndex, count: pad)))
            } else {
                targets.append(features[r].target)
            }
        }
        self.rows = rows
        weights = rows.contains { features[$0].weight != nil } ? rows.map { features[$0].weight ?? 1 } : nil
    }

    /// `[B]` class ids, when every row has a ``HeadTarget/classID(_:)`` target.
    public var classLabels: [Int32]? {
        let ids = targets.compactMap { t -> Int32? in if case .classID(let c)? = t { return Int32(c) } else { return nil } }
        return ids.count == batchSize ? ids : nil
    }

    /// `[B * T]` token labels padded with -100, when every row has ``HeadTarget/tokenLabels(_:)``.
    public var tokenLabels: [Int32]? {
        var out: [Int32] = []
        out.reserveCapacity(batchSize * length)
        for t in targets {
            guard case .tokenLabels(let l)? = t else { return nil }
            out += l.map { Int32($0) }
        }
        return out
    }

    /// `[B]` start and `[B]` end positions, when every row has a ``HeadTarget/span(start:end:)``.
    public var spanPositions: (start: [Int32], end: [Int32])? {
        var s: [Int32] = [], e: [Int32] = []
        for t in targets {
            guard case .span(let a, let b)? = t else { return nil }
            s.append(Int32(a)); e.append(Int32(b))
        }
        return (s, e)
    }

    /// Splits a head's logits for this batch into one ``HeadOutput`` per row, padding removed:
    /// `[B, L]` for sequence classification, `[B, T, L]` for token classification, `[B, T, 2]`
    /// (start, end interleaved per position, as HF's `qa_outputs`) for question answering.
    public func outputs(logits: [Float], kind: HeadKind, labelCount: Int) throws -> [HeadOutput] {
        let expected: Int
        switch kind {
        case .sequenceClassification: expected = batchSize * labelCount
        case .tokenClassification: expected = batchSize * length * labelCount
        case .questionAnswering: expected = batchSize * length * 2
        }
        guard logits.count == expected else {
            throw TaskError.invalidArgument("\(kind.rawValue) logits: expected \(expected) values for batch \(batchSize) × \(length), got \(logits.count)")
        }
        return (0..<batchSize).map { b in
            let n = lengths[b]
            switch kind {
            case .sequenceClassification:
                return .sequence(logits: Array(logits[(b * labelCount)..<((b + 1) * labelCount)]))
            case .tokenClassification:
                let base = b * length * labelCount
                return .tokens(logits: Array(logits[base..<(base + n * labelCount)]), count: n)
            case .questionAnswering:
                let base = b * length * 2
                return .span(start: (0..<n).map { logits[base + 2 * $0] }, end: (0..<n).map { logits[base + 2 * $0 + 1] })
            }
        }
    }

    /// Batches of feature indices grouped by length so padding stays small: indices sorted by
    /// window length (ties by a seeded shuffle), cut into batches of `batchSize`, the batches
    /// shuffled with `seed` (nil keeps them in length order, as evaluation does).
    public static func lengthGrouped(_ features: [TaskFeature], batchSize: Int, seed: UInt64?) -> [[Int]] {
        lengthGrouped(features.map(\.window.count), batchSize: batchSize, seed: seed)
    }

    /// ``lengthGrouped(_:batchSize:seed:)`` over the windows' token counts.
    public static func lengthGrouped(_ lengths: [Int], batchSize: Int, seed: UInt64?) -> [[Int]] {
        precondition(batchSize > 0)
        var rng = SplitMix64(seed: seed ?? 0)
        var order = Array(lengths.indices)
        if seed != nil { order.shuffle(using: &rng) }
        order.sort { lengths[$0] < lengths[$1] }  // stable sort keeps the shuffle among ties
        var batches = stride(from: 0, to: order.count, by: batchSize).map { Array(order[$0..<min($0 + batchSize, order.count)]) }
        if seed != nil { batches.shuffle(using: &rng) }
        return batches
    }

    /// Batches of feature indices in a seeded random order (transformers' `Trainer` default
    /// sampler): every epoch draws new batch-mates, at the cost of padding each batch to its
    /// longest window.
    public static func randomBatches(count: Int, batchSize: Int, seed: UInt64) -> [[Int]] {
        precondition(batchSize > 0)
        var rng = SplitMix64(seed: seed)
        var order = Array(0..<count)
        order.shuffle(using: &rng)
        return stride(from: 0, to: count, by: batchSize).map { Array(order[$0..<min($0 + batchSize, count)]) }
    }

    /// Training batches of `lengths` under `batching`, with the epoch's `seed`.
    public static func training(_ lengths: [Int], batchSize: Int, batching: Batching, seed: UInt64) -> [[Int]] {
        switch batching {
        case .length: lengthGrouped(lengths, batchSize: batchSize, seed: seed)
        case .random: randomBatches(count: lengths.count, batchSize: batchSize, seed: seed)
        }
    }
}

/// How training windows are put into batches.
public enum Batching: String, Sendable, Equatable, Codable, CaseIterable {
    /// Sorted by length and cut, the batches shuffled each epoch: near-zero padding, but on a small
    /// set with many distinct lengths a window meets nearly the same batch-mates every epoch.
    case length
    /// A fresh random permutation each epoch, cut into batches (each padded to its longest window).
    case random
}

/// How a token-classification loss weighs its labelled tokens across batches.
///
/// A batch's cross-entropy is a mean over its labelled tokens. Under random batches every batch
/// holds about the same number of them, so every token weighs about the same over an epoch; under
/// length-grouped batches a batch of one-word sentences holds ~30 tokens and one of 40-word
/// sentences ~1,300, so a token of a short sentence would weigh ~40 times more (on CoNLL-2003 the
/// entity share of the loss rises from 17% to 23%, and the tagger over-predicts entities).
public enum TokenWeighting: String, Sendable, Equatable, Codable, CaseIterable {
    /// Every labelled token weighs the same: a batch's summed loss is divided by the epoch's mean
    /// labelled tokens per batch (what random batches give on average), not by its own count.
    case uniform
    /// Each batch's own mean (every batch weighs the same, whatever its token count).
    case batch
}

/// Task plugins by name.
public enum TaskRegistry {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var plugins: [String: any TaskPlugin.Type] = [
        "sentiment": TextClassificationPlugin.self, "classification": TextClassificationPlugin.self,
        "text-classification": TextClassificationPlugin.self, "sequence-classification": TextClassificationPlugin.self,
        "ner": TaggingPlugin.self, "tagging": TaggingPlugin.self, "token-classification": TaggingPlugin.self,
        "qa": QuestionAnsweringPlugin.self, "question-answering": QuestionAnsweringPlugin.self, "extractive-qa": QuestionAnsweringPlugin.self,
    ]

    /// Registers a plugin under its name and aliases (replacing any of the same name).
    public static func register<P: TaskPlugin>(_ plugin: P.Type) {
        lock.lock(); defer { lock.unlock() }
        for name in [P.name] + P.aliases { plugins[name.lowercased()] = plugin }
    }

    /// The plugin registered as `name`.
    public static func plugin(named name: String) throws -> any TaskPlugin.Type {
        lock.lock(); defer { lock.unlock() }
        guard let p = plugins[name.lowercased()] else { throw TaskError.unknownTask(name: name, known: plugins.keys.sorted()) }
        return p
    }

    /// The plugin for a spec: by its kind's canonical name.
    public static func plugin(for spec: TaskSpec) throws -> any TaskPlugin {
        try plugin(named: spec.kind.rawValue).init(spec: spec)
    }

    /// The registered names, sorted.
    public static var names: [String] {
        lock.lock(); defer { lock.unlock() }
        return plugins.keys.sorted()
    }
}
