import GraftEngine
import GraftSupport

/// What a ``TrainingObjective`` reports for one batch.
public struct TrainingLoss: Sendable {
    /// Mean loss of the batch (0 when nothing counted).
    public var loss: Float
    /// Counted predictions that were right (for a training accuracy; 0 if the objective has none).
    public var correct: Int
    /// Counted predictions (labelled positions or examples).
    public var counted: Int

    public init(loss: Float, correct: Int = 0, counted: Int = 0) {
        self.loss = loss; self.correct = correct; self.counted = counted
    }
}

/// The metric that decides which model is kept as `best/`, and its direction.
public struct MainMetric: Sendable, Equatable {
    /// A key of the objective's evaluation metrics (`loss`, `f1`, `accuracy`, …).
    public var name: String
    /// Whether a larger value is better (F1, accuracy) or a smaller one (loss, perplexity).
    public var higherIsBetter: Bool

    public init(_ name: String, higherIsBetter: Bool) {
        self.name = name; self.higherIsBetter = higherIsBetter
    }

    /// Whether `value` improves on `best` (always true without a best yet).
    public func improves(_ value: Double, on best: Double?) -> Bool {
        guard let best else { return true }
        return higherIsBetter ? value > best : value < best
    }
}

/// What a ``Trainer`` trains: an objective owns the model, the data and the loss; the trainer
/// owns optimization (AdamW, schedule, clipping, accumulation) and checkpoints.
///
/// Per update the trainer takes `batchSize` examples × `accumulation` micro-batches from
/// ``examples(epoch:)`` (moving to the next epoch when one runs out), collates each micro-batch
/// with ``trainingBatch(_:)``, calls ``loss(_:training:)`` then ``backward(scale:)``, and steps the
/// optimizer over ``store`` with each parameter's ``parameterGroup(for:)``. It evaluates with
/// ``evaluate(batchSize:maxBatches:)`` and keeps `best/` by ``mainMetric``.
///
/// For bit-identical resumption the data position (epoch, examples used in it) is saved by the
/// trainer, and everything random the objective draws besides dropout (masking, augmentation)
/// must come from a generator it saves in ``checkpointState`` and restores in
/// ``restore(checkpointState:)``; ``examples(epoch:)`` must give the same order for the same
/// epoch every time.
///
/// Masked-LM (``MaskedLMObjective``) and causal-LM (``CausalLMObjective``) pretraining are
/// objectives; a task head (sequence or token classification, QA) is another: its `Example` a
/// labelled text of any length, its `Batch` the padded collation, its main metric `f1` with
/// `higherIsBetter`, and a ``parameterGroup(for:)`` that gives the fresh head a larger learning
/// rate or freezes the encoder.
public protocol TrainingObjective: AnyObject {
    /// One training example (a token block, a labelled sentence).
    associatedtype Example
    /// A collated micro-batch.
    associatedtype Batch

    /// Short name stored with checkpoints (`masked-lm`, `causal-lm`, …); resuming needs the same.
    var name: String { get }
    /// The objective's own settings, serialized deterministically (e.g. JSON with sorted keys);
    /// resuming needs the same text.
    var settings: String { get }
    /// The parameters the trainer optimizes (values and gradients in one flat store).
    var store: ParameterStore { get }
    /// The dropout generator, saved and restored with every checkpoint (nil: none).
    var dropoutRNG: SharedRNG? { get }
    /// The metric that selects `best/`, and its direction.
    var mainMetric: MainMetric { get }
    /// Examples per epoch when known; needed to train for a number of epochs.
    var examplesPerEpoch: Int? { get }

    /// The training examples of `epoch`, in the order to use them (the same order every call).
    func examples(epoch: Int) throws -> ExampleStream<Example>
    /// Collates examples into a training micro-batch (random corruption from the objective's own generator).
    func trainingBatch(_ examples: [Example]) throws -> Batch
    /// Tokens in a batch (for throughput).
    func tokenCount(_ batch: Batch) -> Int
    /// Forward and loss; keeps the activations for ``backward(scale:)``. Gradients are not zeroed.
    func loss(_ batch: Batch, training: Bool) throws -> TrainingLoss
    /// Backward of the last loss: adds `scale` × d(loss) into ``store``'s gradients.
    func backward(scale: Float) throws
    /// Evaluates on held-out data (deterministic, no dropout), at most `maxBatches` batches of
    /// `batchSize` (0: all); nil when there is none. The result holds ``mainMetric``'s name.
    func evaluate(batchSize: Int, maxBatches: Int) throws -> [String: Double]?
    /// The optimizer settings of a parameter (learning-rate multiplier, frozen).
    func parameterGroup(for parameter: Parameter) -> ParameterGroup
    /// The optimizer settings of a parameter in the updates of `epoch` (0-based: the epoch of an
    /// update's first example). Default: ``parameterGroup(for:)`` in every epoch; gradual
    /// unfreezing frees one more layer per epoch. The trainer asks again whenever the epoch
    /// changes, so the groups follow the data position and a resumed run gets the same ones.
    func parameterGroup(for parameter: Parameter, epoch: Int) -> ParameterGroup
    /// Called when the trainer has given the optimizer the groups of `epoch` (at the start, and
    /// when an update begins an epoch whose groups differ): an objective whose frozen layers
    /// change with the epoch stops its backward above them here.
    func parameterGroupsChanged(epoch: Int)
    /// A digest of the data the objective trains and evaluates on (``DataDigest``): the trainer
    /// saves it with every checkpoint and `--resume` refuses a checkpoint written for other data
    /// (a changed corpus split, an edited training or dev file), which would otherwise resume at
    /// a data position in other examples. Computed once per run. Empty: not checked.
    var dataDigest: String { get }
    /// State to save with a checkpoint besides the weights and dropout generator (e.g. the masking generator).
    var checkpointState: [String: String] { get }
    /// Restores ``checkpointState``.
    func restore(checkpointState: [String: String]) throws
    /// Writes the model as a model directory (config, weights, tokenizer) for `best/` and checkpoints.
    func save(to directory: String) throws
}

extension TrainingObjective {
    public var dropoutRNG: SharedRNG? { nil }
    public var examplesPerEpoch: Int? { nil }
    public func parameterGroup(for parameter: Parameter) -> ParameterGroup { .standard }
    public func parameterGroup(for parameter: Parameter, epoch: Int) -> ParameterGroup { parameterGroup(for: parameter) }
    public func parameterGroupsChanged(epoch: Int) {}
    public var dataDigest: String { "" }
    public var checkpointState: [String: String] { [:] }
    public func restore(checkpointState: [String: String]) throws {}
}

/// The examples of one epoch, read one at a time. A read may fail (a corpus page lost mid-epoch):
/// the error stops training with that error, instead of ending the epoch early and training on
/// part of the data.
public struct ExampleStream<Element> {
    private let nextElement: () throws -> Element?

    /// A stream whose `next()` calls `next` (nil ends the epoch).
    public init(_ next: @escaping () throws -> Element?) { nextElement = next }

    /// The elements of a sequence, in order (reads never fail).
    public init<S: Sequence>(_ elements: S) where S.Element == Element {
        var iterator = elements.makeIterator()
        nextElement = { iterator.next() }
    }

    /// The next example, nil at the end of the epoch.
    public func next() throws -> Element? { try nextElement() }
}

/// SHA-256 over what a run's data consists of (token ids, labels, weights, texts), as hex: a
/// ``TrainingObjective/dataDigest``. Each value is added with its length or width, so that
/// `[1, 2] + [3]` and `[1] + [2, 3]` differ.
public struct DataDigest {
    private var sha = SHA256()

    public init() {}

    public mutating func add(_ value: Int) {
        var v = Int64(value).littleEndian
        withUnsafeBytes(of: &v) { sha.update(buffer: $0) }
    }

    public mutating func add(_ value: Float) { add(Int(value.bitPattern)) }

    public mutating func add(_ values: [Int32]) {
        add(values.count)
        values.map(\.littleEndian).withUnsafeBytes { sha.update(buffer: $0) }
    }

    public mutating func add(_ values: [Int]) {
        add(values.count)
        for v in values { add(v) }
    }

    public mutating func add(_ text: String) {
        add(text.utf8.count)
        sha.update(Array(text.utf8))
    }

    /// The digest so far, as 64 hex digits.
    public var hex: String {
        var copy = sha
        return SHA256.hex(copy.finalize())
    }
}
