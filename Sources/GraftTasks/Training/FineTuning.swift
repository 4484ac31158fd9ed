import Foundation
import GraftEngine
import GraftModels
import GraftSupport
import GraftTokenizers

/// Which parameters a fine-tuning run trains, and how fast.
public struct FineTuningOptions: Sendable, Equatable, Codable {
    /// Train only the head (feature extraction): the whole backbone is frozen.
    public var freezeEncoder = false
    /// Freeze the embeddings and the lowest `freezeLayers` layers.
    public var freezeLayers = 0
    /// The head's learning rate as a multiple of the base one.
    public var headLearningRateScale: Float = 1
    /// Windows per batch (the Trainer's batch size: length groups are cut to it).
    public var batchSize = 32
    /// Seeds the per-epoch order of the length groups.
    public var seed: UInt64 = 42

    public init() {}
}

/// A task's model file name in a fine-tuned model directory: a copy of the task spec, so
/// `evaluate`, `tag`, `classify` and `ask` know the labels, scheme and windows.
public let taskSpecFileNames = ["graft-task.toml", "graft-task.json"]

/// Fine-tuning a task head: the third objective of GraftModels' one ``Trainer`` (beside masked-
/// and causal-LM pretraining). Examples are the task's windows (``TaskFeature``), grouped by
/// length into batches (sorted, cut, the batches shuffled with the seed each epoch) so padding
/// stays near zero; evaluation scores the whole dev set with the task's published metric, whose
/// main value (accuracy, entity F1, SQuAD F1) selects `best/`.
public final class FineTuningObjective<Plugin: TaskPlugin>: TrainingObjective {
    public typealias Example = TaskFeature
    public typealias Batch = FeatureBatch

    public let plugin: Plugin
    public let head: ModelTaskHead
    public let model: any PretrainedModel & TaskHeadModel
    public let tokenizer: Tokenizer
    public let options: FineTuningOptions
    let train: [TaskFeature]
    let dev: [Plugin.Example]
    let specText: (name: String, text: Data)
    let padID: Int32

    /// - Parameters:
    ///   - specFile: the task spec the run follows, copied into every saved model directory.
    public init(plugin: Plugin, model: any PretrainedModel & TaskHeadModel, tokenizer: Tokenizer,
                train: [Plugin.Example], dev: [Plugin.Example], options: FineTuningOptions, specFile: String) throws {
        self.plugin = plugin
        self.model = model
        self.tokenizer = tokenizer
        self.options = options
        head = try ModelTaskHead(kind: Plugin.headKind, model: model)
        var features: [TaskFeature] = []
        for (i, e) in train.enumerated() { features += try plugin.features(e, index: i, tokenizer: tokenizer) }
        guard !features.isEmpty else { throw TaskError.invalidArgument("\(specFile): no training windows") }
        self.train = features
        self.dev = dev
        guard let text = FileManager.default.contents(atPath: specFile) else { throw TaskError.unreadable(file: specFile, reason: "cannot read") }
        specText = (specFile.hasSuffix(".json") ? taskSpecFileNames[1] : taskSpecFileNames[0], text)
        padID = tokenizer.padding?.padId ?? tokenizer.id("[PAD]").map(Int32.init) ?? 0
    }

    public var name: String { "finetune-\(Plugin.name)" }
    public var settings: String {
        "task=\(plugin.spec.name) labels=\(plugin.labels?.labels.joined(separator: ",") ?? "-") window=\(plugin.spec.window.maxLength)/\(plugin.spec.window.stride) " +
        "freeze_encoder=\(options.freezeEncoder) freeze_layers=\(options.freezeLayers) head_lr=\(options.headLearningRateScale) " +
        "batch=\(options.batchSize) seed=\(options.seed) windows=\(train.count)"
    }
    public var store: ParameterStore { model.store }
    public var dropoutRNG: SharedRNG? { model.rng }
    public var mainMetric: GraftModels.MainMetric {
        GraftModels.MainMetric(plugin.mainMetric.key, higherIsBetter: plugin.mainMetric.higherIsBetter)
    }
    public var examplesPerEpoch: Int? { train.count }

    public func examples(epoch: Int) throws -> ExampleStream<TaskFeature> {
        let order = FeatureBatch.lengthGrouped(train, batchSize: options.batchSize, seed: options.seed &+ UInt64(epoch))
        return ExampleStream(order.joined().lazy.map { self.train[$0] })
    }

    public func trainingBatch(_ examples: [TaskFeature]) throws -> FeatureBatch {
        FeatureBatch(examples, rows: Array(examples.indices), padID: padID)
    }

    public func tokenCount(_ batch: FeatureBatch) -> Int { batch.lengths.reduce(0, +) }

    public func loss(_ batch: FeatureBatch, training: Bool) throws -> TrainingLoss {
        let l = try head.lossAndAccuracy(batch, training: training)
        return TrainingLoss(loss: l.loss, correct: l.correct, counted: l.counted)
    }

    public func backward(scale: Float) throws { try head.backward(scale: scale) }

    /// Scores the whole dev set (`maxBatches` does not apply: the main metric must see all of it).
    public func evaluate(batchSize: Int, maxBatches: Int) throws -> [String: Double]? {
        guard !dev.isEmpty else { return nil }
        let runner = try TaskRunner(plugin: plugin, head: head, tokenizer: tokenizer, batchSize: max(batchSize, 1))
        return try runner.evaluate(dev).values
    }

    public func parameterGroup(for parameter: Parameter) -> GraftEngine.ParameterGroup {
        let group = model.groupName(parameter.name)
        if group == "head" {
            return options.headLearningRateScale == 1 ? .standard : GraftEngine.ParameterGroup(learningRateScale: options.headLearningRateScale)
        }
        if options.freezeEncoder { return .frozen }
        if options.freezeLayers > 0 {
            if group == "embeddings" { return .frozen }
            if group.hasPrefix("layer."), let i = Int(group.dropFirst(6)), i < options.freezeLayers { return .frozen }
        }
        return .standard
    }

    public func save(to directory: String) throws {
        try ModelDirectory.save(model, tokenizer: tokenizer, to: directory)
        try AtomicFile.write([UInt8](specText.text), to: URL(fileURLWithPath: directory).appendingPathComponent(specText.name).path)
    }
}

/// A fine-tuned model directory opened for inference: its task (from the copied spec), plugin,
/// head and tokenizer.
public struct TaskModel {
    public let spec: TaskSpec
    public let plugin: any TaskPlugin
    public let head: ModelTaskHead
    public let tokenizer: Tokenizer
    public let directory: String

    /// Opens `directory`: written by `graft finetune` (its task spec copied as
    /// `graft-task.toml`), or a HuggingFace head model imported with `graft import`. Without a
    /// spec (`specFile` nil and no `graft-task.toml`) the task follows from the model: its kind
    /// from the architecture, its labels from `id2label` (tagging: IOB2, or BIOES when it has
    /// `S-`/`E-` tags), the default windows. The model's classes must be the task's labels; when
    /// they are the same set in another order (a transformers model's `id2label`), the model's
    /// order is used.
    ///
    /// A multi-task directory (``BertMultiTaskModel``, from `graft finetune --task A --task B`)
    /// serves the head named `head` (its spec `graft-task-HEAD.toml`); without a name, its only
    /// head of `kind` (or its only head when `kind` is nil). A single-task directory has one
    /// head, named after its task: `head` may name it.
    public static func open(_ directory: String, specFile: String? = nil, head: String? = nil, kind: HeadKind? = nil) throws -> TaskModel {
        let loaded = try ModelDirectory.open(directory)
        var specNames = taskSpecFileNames
        var headModel = loaded.model as? any PretrainedModel & TaskHeadModel
        if let multi = loaded.model as? BertMultiTaskModel {
            let chosen = try selectHead(of: multi, named: head, kind: kind, directory: directory)
            headModel = chosen.model
            specNames = multiTaskSpecFileNames(head: chosen.head.name)
        }
        let specPath = specFile ?? specNames.map { URL(fileURLWithPath: directory).appendingPathComponent($0).path }
            .first { FileManager.default.fileExists(atPath: $0) }
        var spec = try specPath.map { try TaskSpec.load($0) }
        guard let model = headModel else {
            let what = specPath == nil ? "has no \(taskSpecFileNames[0]) and holds" : "holds"
            throw TaskError.invalidArgument("\(directory) \(what) a \(loaded.architecture.name), which has no task head: not a fine-tuned model directory (fine-tune one with graft finetune --model \(directory))")
        }
        if spec == nil { spec = try TaskSpec.inferred(from: model, architecture: loaded.architecture.name, directory: directory) }
        guard var spec else { throw TaskError.invalidArgument("\(directory): no task") }
        if let head, !(loaded.model is BertMultiTaskModel), head != spec.name {
            throw TaskError.invalidArgument("\(directory) holds one head, task \(spec.name); there is no head \"\(head)\" (--head names a head of a multi-task model)")
        }
        if let labels = spec.labels {
            let ours = model.config.labels ?? []
            guard ours.count == labels.count, Set(ours) == Set(labels.labels) else {
                throw TaskError.invalidArgument("\(directory)/config.json: the model's labels \(ours) are not the task's \(labels.labels) (\(specPath ?? "id2label"))")
            }
            if ours != labels.labels { spec.labels = try LabelSet(ours) }   // the model's ids (id2label) decide
        }
        let plugin = try TaskRegistry.plugin(for: spec)
        return TaskModel(spec: spec, plugin: plugin, head: try ModelTaskHead(kind: spec.kind, model: model),
                         tokenizer: loaded.tokenizer, directory: directory)
    }
}

extension TaskModel {
    /// The head of a multi-task model that `name` names, else its only head of `kind` (or only head).
    static func selectHead(of multi: BertMultiTaskModel, named name: String?, kind: HeadKind?, directory: String) throws
        -> (head: BertMultiTaskModel.Head, model: any PretrainedModel & TaskHeadModel)
    {
        let list = multi.heads.map { "\($0.head.name) (\($0.head.kind.rawValue))" }.joined(separator: ", ")
        if let name {
            guard let found = multi.heads.first(where: { $0.head.name == name }) else {
                throw TaskError.invalidArgument("\(directory) has no head \"\(name)\" (heads: \(list))")
            }
            return found
        }
        let candidates = multi.heads.filter { kind == nil || $0.head.kind.rawValue == kind!.rawValue }
        guard candidates.count == 1 else {
            let what = kind.map { "\($0.rawValue) head" } ?? "head"
            throw TaskError.invalidArgument(candidates.isEmpty
                ? "\(directory) has no \(what) (heads: \(list))"
                : "\(directory) has \(candidates.count) \(what)s (heads: \(list)): choose one with --head NAME")
        }
        return candidates[0]
    }
}

extension TaskSpec {
    /// The task a head model implies on its own: kind from its architecture, labels from its
    /// `id2label` (tagging: the scheme from the tags' prefixes), default windows (at most the
    /// model's positions), no data.
    static func inferred(from model: any PretrainedModel & TaskHeadModel, architecture: String, directory: String) throws -> TaskSpec {
        let file = URL(fileURLWithPath: directory).appendingPathComponent("config.json").path
        let kind: HeadKind
        switch model {
        case is BertForSequenceClassification, is GPT2ForSequenceClassification: kind = .sequenceClassification
        case is BertForTokenClassification, is GPT2ForTokenClassification: kind = .tokenClassification
        case is BertForQuestionAnswering: kind = .questionAnswering
        default: throw TaskError.invalidArgument("\(directory): no task for a \(architecture); pass --task SPEC")
        }
        var labels: LabelSet?
        var scheme = TagScheme.iob2
        if kind != .questionAnswering {
            guard let names = model.config.labels, names.count >= 2 else {
                throw TaskError.missingKey(file: file, key: "id2label")
            }
            if kind == .tokenClassification {
                let prefixes = Set(names.filter { $0 != "O" }.map { String(ParsedTag($0).prefix) })
                scheme = prefixes.isSubset(of: ["B", "I"]) ? .iob2 : .bioes
                guard names.contains("O"), prefixes.isSubset(of: Set(scheme.prefixes)) else {
                    throw TaskError.badValue(file: file, key: "id2label", value: names.prefix(4).joined(separator: ", ") + (names.count > 4 ? ", …" : ""),
                                             expected: "IOB2 or BIOES tags (O, B-TYPE, I-TYPE, …) to tag without a spec; or pass --task SPEC with the tags")
                }
            }
            labels = try LabelSet(names)
        }
        let maxLength = min(kind == .questionAnswering ? 384 : 128, model.config.maxPositions)
        let stride = min(kind == .questionAnswering ? 128 : 32, maxLength / 4)
        return TaskSpec(path: file, name: URL(fileURLWithPath: directory).lastPathComponent, kind: kind, description: nil,
                        labels: labels, scheme: scheme, format: kind.defaultFormat, invalidTags: .error, train: nil, dev: nil, test: nil,
                        baseModel: nil, window: WindowOptions(maxLength: maxLength, stride: stride), maxAnswerLength: 30,
                        training: TrainingOptions(), pooling: nil)
    }
}
