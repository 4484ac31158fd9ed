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
    /// Train only the top `unfreezeTop` layers of the backbone (with the pooler or final norm)
    /// and the head; the embeddings and the layers below stay frozen (nil: no such limit; 0: the
    /// head alone, as ``freezeEncoder``).
    public var unfreezeTop: Int?
    /// Gradual unfreezing (ULMFiT): epoch 1 trains the head only, each later epoch one more
    /// layer from the top (the pooler or final norm with the top layer), the embeddings once
    /// every layer trains; within ``unfreezeTop`` when both are set.
    public var gradualUnfreeze = false
    /// Discriminative learning rates: the head and the top layer train at the base rate, each
    /// layer below at `layerLearningRateDecay` times the one above, the embeddings at
    /// `layerLearningRateDecay`^layers (1: one rate for the whole backbone).
    public var layerLearningRateDecay: Float = 1
    /// With ``freezeEncoder``: run the frozen backbone once over every training window (inference
    /// mode: no dropout in the frozen part) and train the head on those cached rows, so epochs
    /// cost only the head. Memory: `C` floats per window (sequence classification: `[windows, C]`)
    /// or per token (tagging: `[tokens, C]`), 4 bytes each (``FineTuningObjective/featureCacheBytes``).
    public var cacheFeatures = false
    /// Windows per batch (the Trainer's batch size: length groups are cut to it).
    public var batchSize = 32
    /// Seeds the per-epoch order of the batches (each epoch's order is drawn from `mix(seed) + epoch`,
    /// so two seeds never share an epoch's order).
    public var seed: UInt64 = 42
    /// How training windows are batched (default: by length).
    public var batching = Batching.length
    /// Token classification: how labelled tokens weigh across batches (default: all alike).
    public var tokenWeighting = TokenWeighting.uniform
    /// Domain adaptation to the spec's `[target]` text (none by default).
    public var adaptation = AdaptationOptions()

    public init() {}
}

/// One labelled training source of a fine-tuning run and its sampling rate (multi-source
/// transfer: the rates of several sources are normalised to sum to 1).
public struct TrainingSource<Example> {
    public var examples: [Example]
    public var rate: Double

    public init(examples: [Example], rate: Double = 1) {
        self.examples = examples
        self.rate = rate
    }
}

/// A task's model file name in a fine-tuned model directory: a copy of the task spec, so
/// `evaluate`, `tag`, `classify` and `ask` know the labels, scheme and windows.
public let taskSpecFileNames = ["graft-task.toml", "graft-task.json"]

/// Fine-tuning a task head: the third objective of GraftModels' one ``Trainer`` (beside masked-
/// and causal-LM pretraining). Examples are the task's windows (``TaskFeature``), grouped by
/// length into batches (sorted, cut, the batches shuffled with the seed each epoch) so padding
/// stays near zero, or (``Batching/random``) in a fresh random order each epoch; evaluation scores
/// the whole dev set with the task's published metric, whose main value (accuracy, entity F1,
/// SQuAD F1) selects `best/`.
///
/// Transfer across domains composes with this one loop (``FineTuningOptions/adaptation``):
/// several labelled sources are mixed at their rates by a ``MultiSourceSampler`` (an epoch is
/// as many draws as all sources have windows, then length-grouped as usual); instance weighting
/// gives every training window the ``InstanceWeighting`` weight of its example (the loss is the
/// head's weighted mean); domain-adversarial training follows each task backward with a
/// ``DomainAdversary`` step on the same batch and a target batch.
public final class FineTuningObjective<Plugin: TaskPlugin>: TrainingObjective {
    /// A training window, as its index in the objective's windows (a batch's ``FeatureBatch/rows``
    /// are these indices, which find a window's cached features).
    public typealias Example = Int
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
    /// ``FineTuningOptions/cacheFeatures``: the model as a head over backbone rows, and the rows
    /// of every training window once computed (flat, `C` floats per row; window i's rows start at
    /// row `cacheStart[i]`).
    let rowsModel: (any ClassificationRowsModel)?
    private var cache: [Float] = []
    private var cacheStart: [Int] = []
    /// The sampler of a multi-source run (nil: one source, every window once per epoch).
    let sampler: MultiSourceSampler?
    /// `[S]` the first training window of each source (multi-source runs).
    let sourceStarts: [Int]
    /// Domain-adversarial training's classifier (``AdaptationMethod/adversarial``).
    public let adversary: DomainAdversary?
    /// Token classification with ``TokenWeighting/uniform``: the mean labelled (weighted) tokens
    /// of a training batch over an epoch; nil otherwise.
    public let tokensPerBatch: Double?
    /// With ``tokensPerBatch``: each training window's labelled tokens times its weight
    /// (``labelledWeight(_:)``, counted once); empty otherwise.
    private let labelledTokens: [Double]
    /// The last training batch's gradient factor: its labelled tokens over ``tokensPerBatch``
    /// (turns the batch's mean into its sum over the epoch's mean count); 1 without.
    private var batchFactor: Float = 1
    /// The last training batch, for the adversary's step after the task's backward.
    private var pendingBatch: FeatureBatch?

    /// Every training window as trained on (ids, type ids, target, weight) and every dev example
    /// as read (its reflection: texts, labels, answers), digested (``DataDigest``).
    public private(set) lazy var dataDigest: String = {
        var digest = DataDigest()
        digest.add(train.count)
        for f in train {
            digest.add(f.window.inputIds)
            digest.add(f.window.typeIds)
            switch f.target {
            case nil: digest.add(0)
            case .classID(let c)?: digest.add(1); digest.add(c)
            case .tokenLabels(let labels)?: digest.add(2); digest.add(labels)
            case .span(let s, let e)?: digest.add(3); digest.add(s); digest.add(e)
            }
            digest.add(f.weight ?? 1)
        }
        digest.add(dev.count)
        for e in dev { digest.add(String(reflecting: e)) }
        return digest.hex
    }()

    /// - Parameters:
    ///   - specFile: the task spec the run follows, copied into every saved model directory.
    public convenience init(plugin: Plugin, model: any PretrainedModel & TaskHeadModel, tokenizer: Tokenizer,
                            train: [Plugin.Example], dev: [Plugin.Example], options: FineTuningOptions, specFile: String) throws {
        try self.init(plugin: plugin, model: model, tokenizer: tokenizer, sources: [TrainingSource(examples: train)], dev: dev,
                      options: options, specFile: specFile)
    }

    /// - Parameters:
    ///   - sources: the labelled training sources (several: sampled at their rates).
    ///   - specFile: the task spec the run follows, copied into every saved model directory.
    ///   - target: unlabelled target-domain texts, required by ``AdaptationOptions/method``
    ///     `adversarial` and `weighting` (``TargetDomain/texts()``).
    ///   - targetOrigin: where `target` came from (for messages).
    public init(plugin: Plugin, model: any PretrainedModel & TaskHeadModel, tokenizer: Tokenizer,
                sources: [TrainingSource<Plugin.Example>], dev: [Plugin.Example], options: FineTuningOptions, specFile: String,
                target: [TextExample] = [], targetOrigin: String = "target") throws {
        self.plugin = plugin
        self.model = model
        self.tokenizer = tokenizer
        self.options = options
        try plugin.spec.window.check(fitting: model.config, spec: specFile)
        // (unfreeze_top above the layer count just trains them all; freezing more layers than
        // there are is a mistake: --freeze-encoder says that.)
        guard options.freezeLayers <= model.config.layers else {
            throw TaskError.invalidArgument("\(specFile): freeze_layers (--freeze-layers) \(options.freezeLayers) is more than the model's \(model.config.layers) layers (--freeze-encoder freezes them all)")
        }
        head = try ModelTaskHead(kind: Plugin.headKind, model: model)
        var features: [TaskFeature] = [], starts: [Int] = [], exampleOfFeature: [Int] = []
        var exampleCount = 0
        for source in sources {
            starts.append(features.count)
            for (i, e) in source.examples.enumerated() {
                let f = try plugin.features(e, index: i, tokenizer: tokenizer)
                features += f
                exampleOfFeature += [Int](repeating: exampleCount + i, count: f.count)
            }
            exampleCount += source.examples.count
        }
        guard !features.isEmpty else { throw TaskError.invalidArgument("\(specFile): no training windows") }
        sourceStarts = starts
        sampler = try sources.count > 1
            ? MultiSourceSampler(counts: zip(starts, starts.dropFirst() + [features.count]).map { $1 - $0 }, rates: sources.map(\.rate))
            : nil
        self.dev = dev
        guard let text = FileManager.default.contents(atPath: specFile) else { throw TaskError.unreadable(file: specFile, reason: "cannot read") }
        specText = (specFile.hasSuffix(".json") ? taskSpecFileNames[1] : taskSpecFileNames[0], text)
        let pad = tokenizer.padding?.padId ?? tokenizer.id("[PAD]").map(Int32.init) ?? 0
        padID = pad

        var adversary: DomainAdversary?
        if options.adaptation.method != .none {
            guard !target.isEmpty else {
                throw TaskError.missingKey(file: specFile, key: "target.text")
            }
            guard let encoder = model as? any EncoderHeadModel else {
                throw TaskError.invalidArgument("\(specFile): --adapt \(options.adaptation.method.rawValue) needs a BERT encoder; \(type(of: model)) has none")
            }
            let targetFeatures = try TargetDomain.features(target, tokenizer: tokenizer, window: plugin.spec.window, origin: targetOrigin)
            switch options.adaptation.method {
            case .none: break
            case .weighting:
                // Example embeddings of the base encoder (the model as loaded, before any update):
                // an example's first window stands for it.
                let embedder = SentenceEmbedder(encoder: encoder.bert, tokenizer: tokenizer, batchSize: max(options.batchSize, 8))
                var firstWindow = [Int](repeating: -1, count: exampleCount)
                for (f, e) in exampleOfFeature.enumerated() where firstWindow[e] < 0 { firstWindow[e] = f }
                let sourceRows = firstWindow.filter { $0 >= 0 }
                let sourceEmbeddings = try embedder.embed(ids: sourceRows.map { features[$0].window.inputIds },
                                                          typeIds: sourceRows.map { features[$0].window.typeIds })
                let targetEmbeddings = try embedder.embed(ids: targetFeatures.map(\.window.inputIds), typeIds: targetFeatures.map(\.window.typeIds))
                let weights = try InstanceWeighting.weights(source: sourceEmbeddings, target: targetEmbeddings)
                var weightOfExample = [Float](repeating: 1, count: exampleCount)
                for (k, f) in sourceRows.enumerated() { weightOfExample[exampleOfFeature[f]] = weights[k] }
                for i in features.indices { features[i].weight = weightOfExample[exampleOfFeature[i]] }
            case .adversarial:
                adversary = try DomainAdversary(model: encoder, target: targetFeatures, maxWeight: options.adaptation.weight,
                                                plannedBatches: (features.count + options.batchSize - 1) / max(options.batchSize, 1),
                                                padID: pad, seed: options.seed)
            }
        }
        self.adversary = adversary
        train = features
        if Plugin.headKind == .tokenClassification && options.tokenWeighting == .uniform {
            // Expected labelled tokens a window brings (multi-source: by the sources' rates), times
            // windows per batch (an epoch is train.count windows in ceil(count / batch) batches).
            let labelled = features.map(Self.labelledWeight)
            let ends = sourceStarts.dropFirst() + [features.count]
            let perSource = zip(sourceStarts, ends).map { s, e in labelled[s..<e].reduce(0, +) / Double(max(e - s, 1)) }
            let perWindow = sampler.map { zip($0.rates, perSource).reduce(0.0) { $0 + $1.0 * $1.1 } } ?? perSource[0]
            let batches = (features.count + max(options.batchSize, 1) - 1) / max(options.batchSize, 1)
            let mean = perWindow * Double(features.count) / Double(batches)
            tokensPerBatch = mean > 0 ? mean : nil
            labelledTokens = mean > 0 ? labelled : []
        } else {
            tokensPerBatch = nil
            labelledTokens = []
        }
        if options.cacheFeatures {
            guard options.adaptation.method == .none else {
                throw TaskError.invalidArgument("\(specFile): cached features (cache_features, --cache-features) train the head alone on fixed rows; domain adaptation (--adapt \(options.adaptation.method.rawValue)) needs the encoder's own forward")
            }
            guard options.freezeEncoder else {
                throw TaskError.invalidArgument("\(specFile): cached features (cache_features, --cache-features) need a frozen encoder (freeze_encoder, --freeze-encoder)")
            }
            guard let m = model as? any ClassificationRowsModel else {
                throw TaskError.invalidArgument("\(specFile): cached features serve sequence and token classification heads; a \(type(of: model)) (\(Plugin.headKind.rawValue)) trains through its backbone")
            }
            rowsModel = m
        } else {
            rowsModel = nil
        }
    }

    /// Bytes the cached features take (or will take): 4 × `C` × rows, one row per window for
    /// sequence classification, one per token for tagging; 0 without ``FineTuningOptions/cacheFeatures``.
    public var featureCacheBytes: Int {
        guard let m = rowsModel else { return 0 }
        let rows = m.classifiesPositions ? train.reduce(0) { $0 + $1.window.count } : train.count
        return rows * model.config.hidden * MemoryLayout<Float>.size
    }

    /// Runs the frozen backbone once over every training window (length-grouped batches,
    /// inference mode) and keeps the rows its head classifies.
    func buildFeatureCache() throws {
        guard let m = rowsModel, cacheStart.isEmpty else { return }
        let c = model.config.hidden
        var start = [Int](repeating: 0, count: train.count), next = 0
        for i in train.indices { start[i] = next; next += m.classifiesPositions ? train[i].window.count : 1 }
        var values = [Float](repeating: 0, count: next * c)
        for group in FeatureBatch.lengthGrouped(train, batchSize: options.batchSize, seed: nil) {
            let batch = FeatureBatch(train, rows: group, padID: padID)
            let rows = try m.headRows(ModelTaskHead.input(batch))
            for (b, i) in group.enumerated() {
                let count = m.classifiesPositions ? train[i].window.count : 1
                let from = (m.classifiesPositions ? b * batch.length : b) * c
                values.withUnsafeMutableBufferPointer { v in
                    (v.baseAddress! + start[i] * c).update(from: rows.data + from, count: count * c)
                }
            }
        }
        cache = values
        cacheStart = start
    }

    /// The cached rows of a batch in the layout the head sees: `[B, C]`, or `[B * T, C]` with
    /// zero rows at padding (labelled -100, so they count for nothing).
    func cachedRows(_ batch: FeatureBatch, positions: Bool) -> Tensor {
        let c = model.config.hidden
        let rowsPerWindow = positions ? batch.length : 1
        let t = Tensor(shape: [batch.batchSize * rowsPerWindow, c])
        cache.withUnsafeBufferPointer { v in
            for (b, i) in batch.rows.enumerated() {
                let count = positions ? batch.lengths[b] : 1
                (t.data + b * rowsPerWindow * c).update(from: v.baseAddress! + cacheStart[i] * c, count: count * c)
            }
        }
        return t
    }

    /// The micro-batches the whole run trains (the adversarial weight's schedule runs over them);
    /// nil without an adversary.
    public var plannedBatches: Int? {
        get { adversary?.plannedBatches }
        set { if let newValue { adversary?.plannedBatches = max(newValue, 1) } }
    }

    /// The training windows' loss weights (instance weighting), in window order; nil without.
    public var trainingWeights: [Float]? {
        options.adaptation.method == .weighting ? train.map { $0.weight ?? 1 } : nil
    }

    public var name: String { "finetune-\(Plugin.name)" }
    public var settings: String {
        "task=\(plugin.spec.name) labels=\(plugin.labels?.labels.joined(separator: ",") ?? "-") window=\(plugin.spec.window.maxLength)/\(plugin.spec.window.stride) " +
        "freeze_encoder=\(options.freezeEncoder) freeze_layers=\(options.freezeLayers) head_lr=\(options.headLearningRateScale) " +
        "batch=\(options.batchSize) seed=\(options.seed) windows=\(train.count)" +
        (options.unfreezeTop.map { " unfreeze_top=\($0)" } ?? "") + (options.gradualUnfreeze ? " gradual_unfreeze=true" : "") +
        (options.layerLearningRateDecay != 1 ? " layer_lr_decay=\(options.layerLearningRateDecay)" : "") +
        (options.cacheFeatures ? " cache_features=true" : "") + (options.batching == .length ? "" : " batching=\(options.batching.rawValue)") +
        (Plugin.headKind == .tokenClassification ? " token_weighting=\(options.tokenWeighting.rawValue)" : "") +
        (sampler.map { " sources=\(sourceStarts.count) rates=\($0.rates.map { String($0) }.joined(separator: ","))" } ?? "") +
        (options.adaptation.method == .none ? "" : " adapt=\(options.adaptation.method.rawValue) adapt_weight=\(options.adaptation.weight)")
    }
    public var store: ParameterStore { model.store }
    public var dropoutRNG: SharedRNG? { model.rng }
    public var mainMetric: GraftModels.MainMetric {
        GraftModels.MainMetric(plugin.mainMetric.key, higherIsBetter: plugin.mainMetric.higherIsBetter)
    }
    public var examplesPerEpoch: Int? { train.count }

    public func examples(epoch: Int) throws -> ExampleStream<Int> {
        // Seed s's epoch e must not be seed s+1's epoch e-1 (s + e was): mix the seed first.
        let epochSeed = SplitMix64.mix(options.seed) &+ UInt64(epoch)
        guard let sampler else {
            return ExampleStream(FeatureBatch.training(train.map(\.window.count), batchSize: options.batchSize,
                                                       batching: options.batching, seed: epochSeed).joined())
        }
        let drawn = sampler.draws(train.count, seed: SplitMix64.mix(epochSeed)).map { sourceStarts[$0.source] + $0.element }
        let order = FeatureBatch.training(drawn.map { train[$0].window.count }, batchSize: options.batchSize,
                                          batching: options.batching, seed: epochSeed)
        return ExampleStream(order.joined().lazy.map { drawn[$0] })
    }

    public func trainingBatch(_ examples: [Int]) throws -> FeatureBatch {
        FeatureBatch(train, rows: examples, padID: padID)
    }

    public func tokenCount(_ batch: FeatureBatch) -> Int { batch.lengths.reduce(0, +) }

    /// A window's labelled tokens (label not -100), times its loss weight.
    static func labelledWeight(_ feature: TaskFeature) -> Double {
        guard case .tokenLabels(let l)? = feature.target else { return 0 }
        return Double(l.reduce(0) { $0 + ($1 == ignoreIndex ? 0 : 1) }) * Double(feature.weight ?? 1)
    }

    public func loss(_ batch: FeatureBatch, training: Bool) throws -> TrainingLoss {
        if let tokensPerBatch {
            batchFactor = Float(batch.rows.reduce(0.0) { $0 + labelledTokens[$1] } / tokensPerBatch)
        }
        head.rowWeights = batch.weights
        defer { head.rowWeights = nil }
        if let m = rowsModel {
            // Cached features: the head alone, on the frozen backbone's rows.
            try buildFeatureCache()
            let targets = m.classifiesPositions ? batch.tokenLabels : batch.classLabels
            guard let targets else { throw TaskError.invalidArgument("a \(Plugin.headKind.rawValue) batch without targets cannot be trained on") }
            let l = try m.head.loss(cachedRows(batch, positions: m.classifiesPositions), targets: targets,
                                    weights: m.classifiesPositions ? nil : head.rowWeights, training: training).loss
            return TrainingLoss(loss: l, correct: m.head.crossEntropy.correctRows, counted: m.head.crossEntropy.countedRows)
        }
        let l = try head.lossAndAccuracy(batch, training: training)
        pendingBatch = training && adversary != nil ? batch : nil
        return TrainingLoss(loss: l.loss, correct: l.correct, counted: l.counted)
    }

    /// The task's backward, then (domain-adversarial training) the adversary's step on the same batch.
    public func backward(scale: Float) throws {
        if let m = rowsModel { _ = try m.head.backward(scale: scale * batchFactor); return }
        try head.backward(scale: scale * batchFactor)
        if let adversary, let batch = pendingBatch {
            pendingBatch = nil
            try adversary.train(source: batch, scale: scale)
        }
    }

    public var checkpointState: [String: String] {
        adversary.map { ["adversary.batches": String($0.batches)] } ?? [:]
    }

    public func restore(checkpointState: [String: String]) throws {
        guard let adversary else { return }
        guard let n = checkpointState["adversary.batches"].flatMap(Int.init), n >= 0 else {
            throw TaskError.invalidArgument("the checkpoint lacks the adversary's position (objective.adversary.batches)")
        }
        adversary.batches = n
    }

    /// Scores the whole dev set (`maxBatches` does not apply: the main metric must see all of it).
    public func evaluate(batchSize: Int, maxBatches: Int) throws -> [String: Double]? {
        guard !dev.isEmpty else { return nil }
        let runner = try TaskRunner(plugin: plugin, head: head, tokenizer: tokenizer, batchSize: max(batchSize, 1))
        return try runner.evaluate(dev).values
    }

    public func parameterGroup(for parameter: Parameter) -> GraftEngine.ParameterGroup {
        parameterGroup(for: parameter, epoch: 0)
    }

    /// The head at the head rate; the backbone frozen as the options say in `epoch` (0-based),
    /// else at the base rate times ``FineTuningOptions/layerLearningRateDecay`` to the power of
    /// the parameter's depth below the top layer (pooler and final norm: depth 0 with the top
    /// layer; embeddings: depth `layers`).
    public func parameterGroup(for parameter: Parameter, epoch: Int) -> GraftEngine.ParameterGroup {
        let group = model.groupName(parameter.name)
        if group == "head" {
            return options.headLearningRateScale == 1 ? .standard : GraftEngine.ParameterGroup(learningRateScale: options.headLearningRateScale)
        }
        if options.freezeEncoder { return .frozen }
        let layer = group.hasPrefix("layer.") ? Int(group.dropFirst(6)) : nil
        if options.freezeLayers > 0 {
            if group == "embeddings" { return .frozen }
            if let i = layer, i < options.freezeLayers { return .frozen }
        }
        let layers = model.config.layers
        let depth = layer.map { layers - 1 - $0 } ?? (group == "embeddings" ? layers : 0)
        if let top = trainedTopLayers(epoch: epoch), depth >= top { return .frozen }
        let decay = options.layerLearningRateDecay
        return decay == 1 || depth == 0 ? .standard : GraftEngine.ParameterGroup(learningRateScale: Float(Foundation.pow(Double(decay), Double(depth))))
    }

    /// The backbone's backward leaves out the stages frozen in `epoch`.
    public func parameterGroupsChanged(epoch: Int) {
        model.skipBackward(frozenBottomStages: frozenBottomStages(epoch: epoch))
    }

    /// How many bottom stages of the backbone — the embeddings, then layers 0, 1, … — have every
    /// parameter frozen in `epoch` by ``parameterGroup(for:epoch:)`` (the one freezing rule),
    /// counted from the bottom up to the first stage that trains: backward need not compute them.
    public func frozenBottomStages(epoch: Int) -> Int {
        let sections = model.parameterSections
        let stages = ["embeddings"] + (0..<model.config.layers).map { "layer.\($0)" }
        return stages.prefix { name in
            sections.first { $0.name == name }?.parameters.allSatisfy { parameterGroup(for: $0, epoch: epoch).frozen } ?? false
        }.count
    }

    /// How many backbone layers, from the top, train in `epoch` under ``FineTuningOptions/unfreezeTop``
    /// and ``FineTuningOptions/gradualUnfreeze`` (more than the layer count: the embeddings too; nil: no limit).
    public func trainedTopLayers(epoch: Int) -> Int? {
        var top = options.unfreezeTop
        if options.gradualUnfreeze { top = min(top ?? Int.max, epoch) }
        return top
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
    /// A fine-tuned head model (``ModelTaskHead``), or an ``EmbeddingClassifierHead``.
    public let head: any TaskHead
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
        // Fine-tuning starts a head from nothing; a model that predicts must have all its weights.
        guard loaded.initialized.isEmpty else {
            throw TaskError.invalidArgument("\(directory): the weights file lacks \(loaded.initialized.count) of the model's parameters (\(loaded.initializedSummary)); a model that predicts needs every weight trained (fine-tune it with graft finetune --model \(directory))")
        }
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
        try spec.window.check(fitting: model.config, spec: specPath ?? "\(directory)/config.json")
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
