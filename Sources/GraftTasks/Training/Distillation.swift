import Foundation
import GraftEngine
import GraftModels
import GraftTokenizers

/// Knowledge distillation (Hinton et al., 2015) of a fine-tuned teacher into a student, for
/// sequence and token classification: a ``TrainingObjective`` of the one ``Trainer`` that wraps
/// the student's ``FineTuningObjective`` — its examples, length-grouped batches, dev evaluation,
/// parameter groups and `save` are the fine-tuning ones — and replaces the loss by
/// ``DistillationLoss``: `α · T² · KL(softmax(teacher / T) ‖ softmax(student / T)) + (1 − α) · CE(gold)`
/// per batch, the teacher's logits computed on the same padded batch by its inference path
/// (dropout off, nothing kept for a backward pass; its weights never change).
///
/// Teacher and student must share the tokenizer (the batch's token ids are fed to both). Rows
/// without a gold label (unlabelled text added to the training examples) get the soft term only;
/// token classification distils the labelled first subwords (the positions fine-tuning scores).
public final class DistillationObjective<Plugin: TaskPlugin>: TrainingObjective {
    public typealias Example = Int   // a training window's index, as the student's
    public typealias Batch = FeatureBatch

    public let student: FineTuningObjective<Plugin>
    public let teacher: any TaskHeadModel
    public let temperature: Float
    public let alpha: Float
    private let studentHead: ClassificationHead
    /// For each student class, the teacher's output index of the same label.
    private let teacherIndex: [Int]

    /// - Parameters:
    ///   - teacherLabels: the teacher's classes in its output order (the same set as the task's,
    ///     in any order: its logits are permuted into the student's).
    ///   - teacherTokenizer: the teacher's tokenizer, which must be the student's (padding and
    ///     truncation settings aside).
    public init(student: FineTuningObjective<Plugin>, teacher: any TaskHeadModel, teacherLabels: [String], teacherTokenizer: Tokenizer,
                temperature: Float, alpha: Float) throws {
        guard Plugin.headKind != .questionAnswering, let model = student.model as? any ClassificationHeadModel else {
            throw TaskError.invalidArgument("distillation applies to sequence and token classification, not \(Plugin.headKind.rawValue)")
        }
        guard temperature > 0, temperature.isFinite else { throw TaskError.invalidArgument("the temperature must be > 0, got \(temperature)") }
        guard alpha >= 0, alpha <= 1 else { throw TaskError.invalidArgument("alpha must lie in [0, 1], got \(alpha)") }
        let labels = student.plugin.labels?.labels ?? []
        guard teacher.numLabels == labels.count, Set(teacherLabels) == Set(labels), teacherLabels.count == labels.count else {
            throw TaskError.invalidArgument("the teacher's labels \(teacherLabels) are not the task's \(labels)")
        }
        guard Self.sameTokenizer(teacherTokenizer, student.tokenizer) else {
            throw TaskError.invalidArgument("the student's tokenizer is not the teacher's: distillation feeds the same token ids to both, so the student needs the teacher's tokenizer and vocabulary (a preset student is built with them)")
        }
        guard teacher.config.vocabSize == student.model.config.vocabSize else {
            throw TaskError.invalidArgument("the teacher has \(teacher.config.vocabSize) embedding rows, the student \(student.model.config.vocabSize): they must share the vocabulary")
        }
        self.student = student
        self.teacher = teacher
        self.temperature = temperature
        self.alpha = alpha
        studentHead = model.head
        teacherIndex = labels.map { teacherLabels.firstIndex(of: $0)! }
        student.head.unlabelledRowsIgnored = true
    }

    /// Whether two tokenizers encode alike: the same `tokenizer.json` apart from padding and truncation.
    public static func sameTokenizer(_ a: Tokenizer, _ b: Tokenizer) -> Bool {
        var a = a, b = b
        a.padding = nil; a.truncation = nil; b.padding = nil; b.truncation = nil
        return a.toJSON().serialized() == b.toJSON().serialized()
    }

    public var name: String { "distill-\(Plugin.name)" }
    public var settings: String { student.settings + " temperature=\(temperature) alpha=\(alpha)" }
    public var store: ParameterStore { student.store }
    public var dropoutRNG: SharedRNG? { student.dropoutRNG }
    public var mainMetric: GraftModels.MainMetric { student.mainMetric }
    public var examplesPerEpoch: Int? { student.examplesPerEpoch }
    /// The student's data (its labelled and unlabelled windows, its dev set).
    public var dataDigest: String { student.dataDigest }
    public func examples(epoch: Int) throws -> ExampleStream<Int> { try student.examples(epoch: epoch) }
    public func trainingBatch(_ examples: [Int]) throws -> FeatureBatch { try student.trainingBatch(examples) }
    public func tokenCount(_ batch: FeatureBatch) -> Int { student.tokenCount(batch) }

    /// The teacher's logits for `batch`, rows `[N, L]` in the student's class order, and the
    /// soft rows (token classification: the positions with a label).
    func softTargets(_ batch: FeatureBatch) throws -> SoftTargets {
        let raw = try teacher.logits(ModelTaskHead.input(batch)).array
        let l = teacherIndex.count
        var logits = [Float](repeating: 0, count: raw.count)
        for r in 0..<(raw.count / l) { for (k, t) in teacherIndex.enumerated() { logits[r * l + k] = raw[r * l + t] } }
        var rows: [Bool]?
        if Plugin.headKind == .tokenClassification {
            guard let labels = batch.tokenLabels else {
                throw TaskError.invalidArgument("token-classification distillation needs labelled sentences (the labelled first subwords are distilled)")
            }
            rows = labels.map { $0 != -100 }
        }
        return SoftTargets(teacherLogits: logits, temperature: temperature, alpha: alpha, rows: rows)
    }

    public func loss(_ batch: FeatureBatch, training: Bool) throws -> TrainingLoss {
        // The teacher's forward is its own region, so a profile does not add its layers to the student's.
        studentHead.softTargets = try Profiler.region("teacher forward") { try softTargets(batch) }
        defer { studentHead.softTargets = nil }
        return try student.loss(batch, training: training)
    }

    public func backward(scale: Float) throws { try student.backward(scale: scale) }
    public func evaluate(batchSize: Int, maxBatches: Int) throws -> [String: Double]? {
        try student.evaluate(batchSize: batchSize, maxBatches: maxBatches)
    }
    public func parameterGroup(for parameter: Parameter) -> GraftEngine.ParameterGroup { student.parameterGroup(for: parameter) }
    public func parameterGroup(for parameter: Parameter, epoch: Int) -> GraftEngine.ParameterGroup {
        student.parameterGroup(for: parameter, epoch: epoch)
    }
    public func parameterGroupsChanged(epoch: Int) { student.parameterGroupsChanged(epoch: epoch) }
    public var checkpointState: [String: String] { student.checkpointState }
    public func restore(checkpointState: [String: String]) throws { try student.restore(checkpointState: checkpointState) }
    public func save(to directory: String) throws { try student.save(to: directory) }
}
