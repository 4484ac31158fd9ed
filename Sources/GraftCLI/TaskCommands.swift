import ArgumentParser
import Foundation
import GraftCorpus
import GraftEngine
import GraftModels
import GraftSupport
import GraftTasks
import GraftTokenizers

/// `graft finetune --task tasks/NAME.toml [--model DIR] --out DIR`: fine-tunes a task head on a
/// base model (Graft-pretrained or imported) with the one Trainer; `DIR/best` is a model directory.
/// Where fine-tuning starts: the base model's weights, or a random initialisation of the same model.
enum WeightInitialization: String, ExpressibleByArgument, CaseIterable {
    case pretrained, random
}

struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune a sentiment, NER or QA head on a base model, as a task spec describes.",
        discussion: """
            Hyper-parameters come from the spec's [train] table; options given here override them. \
            Evaluates on the dev set after every epoch with the task's metric (accuracy, strict IOB2 \
            entity F1, SQuAD F1) and keeps the best model in OUT/best; checkpoints in OUT/checkpoints \
            (--resume continues bit for bit; Ctrl-C writes one). The run is recorded in --db. \
            --patience N stops when the dev metric has not improved for N epochs in a row (early stopping; \
            OUT/best keeps the best). --adapt adversarial|weighting adapts to the spec's [target] text (domain-adversarial \
            training, or instance weighting); a spec whose data.train lists several sources mixes them at their rates. --pooling mean classifies the mean of the last hidden states instead of \
            [CLS] through the pooler (BERT sequence classification; kept in the model's config.json). \
            Freezing spectrum: --freeze-encoder (head only), --unfreeze-top K (top K layers + head), --freeze-layers K \
            (embeddings + lowest K frozen), --gradual-unfreeze (ULMFiT: head only in epoch 1, one more layer from the top \
            each epoch); --layer-lr-decay F gives each layer below the top F times the rate of the one above. \
            --freeze-encoder --cache-features runs the frozen encoder once (no dropout in it) and trains the head on the \
            cached features. --baseline scratch trains the same run from a random initialisation into OUT/scratch and \
            reports both dev scores side by side. \
            Several --task specs train one BERT encoder with a head per task (multi-task learning): each \
            micro-batch is one task's, drawn with --sampling (proportional to the tasks' training windows, or \
            temperature-scaled, n^(1/T)); every task is scored on its dev set each epoch and OUT/best is kept by \
            mean_main, the mean of the tasks' main metrics. evaluate/tag/classify/ask serve each head by --head NAME \
            (the task's name).
            """)

    enum PoolingChoice: String, ExpressibleByArgument, CaseIterable {
        case cls, mean
        var pooling: BertForSequenceClassification.Pooling { self == .cls ? .pooler : .mean }
    }

    enum SamplingChoice: String, ExpressibleByArgument, CaseIterable {
        case proportional, temperature
    }

    @Option(name: .customLong("task"), help: "Task spec (TOML or JSON), e.g. tasks/sentiment-rt.toml. Repeat it to train several tasks together (multi-task: one encoder, a head per task).")
    var tasks: [String]
    /// The (first) task spec.
    var task: String { tasks[0] }
    @Option(help: "Base model directory (default: the (first) spec's model.base).") var model: String?
    @Option(help: "Training data (default: the spec's data.train; one task only).") var train: String?
    @Option(help: "Dev data (default: the spec's data.dev; one task only).") var dev: String?
    @Option(help: "Output directory.") var out: String
    @Option(help: "Epochs (default: the spec's train.epochs, else 3).") var epochs: Int?
    @Option(name: .customLong("lr"), help: "Peak learning rate (default: train.lr, else 5e-5).") var learningRate: Float?
    @Option(name: .customLong("batch-size"), help: "Windows per batch (default: train.batch_size, else 32).") var batchSize: Int?
    @Option(name: .customLong("warmup-ratio"), help: "Warm-up as a share of the updates (default: train.warmup_ratio, else 0.06).") var warmupRatio: Double?
    @Option(name: .customLong("weight-decay"), help: "AdamW weight decay (default: train.weight_decay, else 0.01).") var weightDecay: Float?
    @Option(help: "Seed of initialisation, dropout and data order (default: train.seed, else 42).") var seed: UInt64?
    @Option(name: .customLong("head-lr"), help: "The head's learning rate (default: the base one).") var headLearningRate: Float?
    @Flag(name: .customLong("freeze-encoder"), help: "Train only the head (feature extraction).") var freezeEncoder = false
    @Option(name: .customLong("freeze-layers"), help: "Freeze the embeddings and the lowest K layers.") var freezeLayers: Int?
    @Option(name: .customLong("unfreeze-top"), help: "Train only the top K encoder layers (with the pooler or final norm) and the head (default: train.unfreeze_top).")
    var unfreezeTop: Int?
    @Option(help: "How training windows are batched: length (sorted by length, near-zero padding) or random (a fresh random order each epoch, as transformers' Trainer) (default: train.batching, else length).")
    var batching: Batching?
    @Option(name: .customLong("token-weighting"), help: "Tagging: uniform (every labelled token weighs the same over an epoch, as under random batches) or batch (each batch's own mean; length-grouped batches then over-weigh short sentences) (default: train.token_weighting, else uniform).")
    var tokenWeighting: TokenWeighting?

    @Flag(name: .customLong("gradual-unfreeze"), help: "ULMFiT gradual unfreezing: epoch 1 trains the head only, each later epoch one more layer from the top (default: train.gradual_unfreeze).")
    var gradualUnfreeze = false
    @Option(name: .customLong("layer-lr-decay"), help: "Discriminative rates: head and top layer at --lr, each layer below at F times the one above, embeddings at F^layers (default: train.layer_lr_decay, else 1).")
    var layerLearningRateDecay: Float?
    @Flag(name: .customLong("cache-features"), help: "With --freeze-encoder: run the frozen encoder once per training window (no dropout in it) and train the head on the cached features (default: train.cache_features).")
    var cacheFeatures = false
    @Option(name: .customLong("limit-train"), help: "Use only the first N training examples (of each task, of each source).") var limitTrain: Int?
    @Option(help: "Early stopping: stop after N evaluations (epochs) in a row without a better dev metric (default: train.patience, else never).")
    var patience: Int?
    @Option(help: "Sequence classification on BERT: cls ([CLS] + pooler, as HuggingFace) or mean (mean of the last hidden states) (default: model.pooling, else cls).")
    var pooling: PoolingChoice?
    @Option(help: "Several tasks: how each micro-batch's task is drawn: proportional (probability ∝ its training windows n) or temperature (∝ n^(1/T)).")
    var sampling: SamplingChoice = .proportional
    @Option(name: .customLong("sampling-temperature"), help: "T of --sampling temperature (default 2; 1 is proportional, larger flattens towards uniform).")
    var samplingTemperature: Double?
    @Option(name: .customLong("from-layer"),
            help: "Put the head on layer K's output: the base model's layers above K are cut off (not run, not saved) (default: model.from_layer, else all layers).")
    var fromLayer: Int?
    @Option(help: "Corpus database that records the run.") var db: String = "graft.sqlite"
    @Option(help: "Threads (default: GRAFT_THREADS, else all cores).") var threads: Int?
    @Option(name: .customLong("init"),
            help: "pretrained: start from the base model's weights; random: the same architecture and tokenizer from a seeded random initialisation (the from-scratch baseline).")
    var initialization: WeightInitialization = .pretrained
    @Option(help: "scratch: train the same run again from a random initialisation into OUT/scratch and report both dev scores side by side (--json: {\"transfer\", \"scratch\", \"difference\"}).")
    var baseline: Baseline?
    @Option(help: "Domain adaptation to the spec's [target] text: none, adversarial (DANN: a domain classifier behind gradient reversal) or weighting (source examples weighted by p(target|x)/p(source|x)) (default: train.adapt, else none).")
    var adapt: AdaptationMethod?
    @Option(name: .customLong("adapt-weight"), help: "Adversarial: the largest weight of the reversed domain gradient (default: train.adapt_weight, else 0.1).")
    var adaptWeight: Float?
    @Flag(help: "Continue from OUT/checkpoints/LATEST.") var resume = false
    @Flag(help: "Print the final dev scores as one JSON object.") var json = false
    @Flag(help: profileHelp) var profile = false

    /// What a transfer run is compared with.
    enum Baseline: String, ExpressibleByArgument, CaseIterable {
        case scratch
    }

    func validate() throws {
        if let patience, patience < 1 { throw ValidationError("--patience must be at least 1") }
        if let limitTrain, limitTrain < 1 { throw ValidationError("--limit-train must be at least 1 (examples kept from the start of the training data)") }
        if let epochs, !TrainingOptions.epochRange.contains(epochs) {
            throw ValidationError("--epochs must lie in \(TrainingOptions.epochRange.lowerBound)...\(TrainingOptions.epochRange.upperBound)")
        }
        if let warmupRatio, !(0...1).contains(warmupRatio) { throw ValidationError("--warmup-ratio must lie in 0...1 (a share of the updates)") }
        if let weightDecay, !(0...10).contains(weightDecay) { throw ValidationError("--weight-decay must lie in 0...10") }
        if let batchSize, !(1...TrainingOptions.maxBatchSize).contains(batchSize) {
            throw ValidationError("--batch-size must lie in 1...\(TrainingOptions.maxBatchSize) (windows per batch)")
        }
        let rates = OptimizationOptions.learningRates
        for (rate, name) in [(learningRate, "--lr"), (headLearningRate, "--head-lr")] {
            if let rate, !rates.contains(rate) { throw ValidationError("\(name) must lie in \(rates.lowerBound)...\(rates.upperBound)") }
        }
        guard !tasks.isEmpty else { throw ValidationError("--task SPEC is required") }
        if tasks.count > 1 {
            for (given, name) in [(train != nil, "--train"), (dev != nil, "--dev"), (pooling != nil, "--pooling"), (adapt != nil, "--adapt"),
                                  (baseline != nil, "--baseline"), (fromLayer != nil, "--from-layer")] where given {
                throw ValidationError("\(name) applies to one task; with several --task specs each spec's [data] and model settings apply")
            }
        }
        if let samplingTemperature {
            guard sampling == .temperature else { throw ValidationError("--sampling-temperature needs --sampling temperature") }
            guard samplingTemperature > 0, samplingTemperature.isFinite else { throw ValidationError("--sampling-temperature must be a positive number") }
        }
        if let adaptWeight, !(adaptWeight >= 0 && adaptWeight.isFinite) { throw ValidationError("--adapt-weight must be a number ≥ 0") }
        if baseline == .scratch && initialization == .random {
            throw ValidationError("--baseline scratch compares with a random initialisation; the run itself must start from the pretrained weights (drop --init random)")
        }
        if let unfreezeTop, unfreezeTop < 0 { throw ValidationError("--unfreeze-top must not be negative") }
        if let f = layerLearningRateDecay, !(f > 0 && f <= 1) { throw ValidationError("--layer-lr-decay must lie in (0, 1]") }
        if let fromLayer, fromLayer < 1 { throw ValidationError("--from-layer must be at least 1 (the head on layer K's output keeps layers 0..<K)") }
    }

    func run() throws {
        try Engine.withThreads(threads ?? Engine.defaultThreads) { try finetune() }
    }

    private func finetune() throws {
        if tasks.count > 1 { return try finetuneTasks() }
        let spec = try TaskSpec.load(task)
        let plugin = try TaskRegistry.plugin(for: spec)
        try finetune(plugin, spec: spec)
    }

    /// Fine-tunes `plugin`'s head on the base model; with `distillation`, trains the student it
    /// describes towards its teacher instead (``DistillationObjective`` over the same
    /// fine-tuning objective, data and options).
    func finetune<Plugin: TaskPlugin>(_ plugin: Plugin, spec: TaskSpec, distillation: Distillation? = nil) throws {
        let t = spec.training
        let base = try distillation.map(\.student) ?? spec.requireBaseModel(override: model)
        let label = distillation == nil ? "finetune" : "distill"
        let (sourceSpecs, sources, devExamples) = try labelledData(plugin, spec: spec, specFile: task)
        if let test = spec.test {
            // Held out: named so that a test split in the spec is not silently taken as used.
            var file = test
            while case .mapped(let inner, _) = file { file = inner }
            if case .file(let path) = file, !FileManager.default.fileExists(atPath: path) {
                throw CLIError("\(task): data.test \(path) does not exist")
            }
            if isLeaderRank() {
                printError("data.test (\(test.origin)) is held out: fine-tuning does not read it; score the model on it with graft evaluate --model \(out)/best --data \(test.origin)")
            }
        }
        let trainCount = sources.reduce(0) { $0 + $1.examples.count }
        var adaptation = AdaptationOptions(method: adapt ?? t.adapt ?? .none)
        adaptation.weight = adaptWeight ?? t.adaptWeight.map(Float.init) ?? adaptation.weight
        var targetTexts: [TextExample] = []
        if adaptation.method != .none {
            guard let target = spec.target else {
                throw CLIError("\(task): --adapt \(adaptation.method.rawValue) needs unlabelled target text: a [target] section with text = FILE (or store = …)")
            }
            targetTexts = try target.texts()
        }
        var unlabelled: [Plugin.Example] = []
        if let texts = distillation?.unlabelled, !texts.isEmpty {
            guard let u = texts as? [Plugin.Example] else {
                throw CLIError("\(task): unlabelled text applies to sequence classification; a \(Plugin.headKind.rawValue) student is distilled on labelled data")
            }
            guard sources.count == 1 else {
                throw CLIError("\(task): distillation on unlabelled text takes one labelled source; data.train lists \(sources.count)")
            }
            unlabelled = u
        }
        var runSources = sources
        runSources[0].examples += unlabelled   // the teacher labels them (soft targets only)

        var (options, lr) = try fineTuningOptions(t, specFile: task, tagging: spec.kind == .tokenClassification)
        options.adaptation = adaptation

        let family = try distillation?.teacherModel.config.kind ?? ModelDirectory.config(base).kind
        let architecture = try headArchitecture(Plugin.headKind, family: family, base: base)
        let poolingChoice = pooling?.pooling ?? spec.pooling
        if let poolingChoice {
            guard architecture == "BertForSequenceClassification" else {
                throw CLIError("\(task): pooling (\(poolingChoice == .mean ? "mean" : "cls")) applies to BERT sequence classification; \(architecture) \(Plugin.headKind == .sequenceClassification ? "classifies from the last real token" : "does not pool")")
            }
        }
        let patienceValue = patience ?? t.patience
        if patienceValue != nil && devExamples.isEmpty {
            throw CLIError("\(task): early stopping (patience) needs dev data (data.dev in the spec, or --dev FILE)")
        }
        /// Trains one run from `initialization` into `out`; rank 0 records it, reports it and
        /// returns its `--json` fields and best dev scores (the other ranks: nil fields).
        let targetOrigin: String
        switch spec.target?.text {
        case .lines(let p)?, .conll(let p)?: targetOrigin = p
        case .store(let p, _)?: targetOrigin = p
        case nil: targetOrigin = task
        }
        let topLayer = fromLayer ?? spec.fromLayer
        /// Trains `objective` (the fine-tuning one or the distillation over it), records the run and reports.
        func trainAndReport<Objective: TrainingObjective>(_ objective: Objective, fineTuning: FineTuningObjective<Plugin>,
                                                          headModel: any PretrainedModel & TaskHeadModel, loaded initialized: [String],
                                                          initialization: WeightInitialization, out: String, resume: Bool) throws -> FinetuneResult {
            let windows = objective.examplesPerEpoch ?? 0
            let dataParallel = try Ranks.dataParallel()
            if adaptation.method == .adversarial && dataParallel.size > 1 {
                throw CLIError("--adapt adversarial runs in one process: its domain classifier runs extra encoder passes whose dropout draws the data-parallel ranks cannot follow")
            }
            let (opts, stepsPerEpoch) = optimizationOptions(t, options, learningRate: lr, windows: windows, patience: patienceValue,
                                                            dataParallel: dataParallel)
            let epochCount = opts.epochs ?? 0
            let trainer = try Trainer(objective: objective, options: opts, outputDirectory: out, dataParallel: dataParallel)
            fineTuning.plannedBatches = trainer.totalSteps * opts.accumulation
            guard dataParallel.isLeader else {   // rank 0 records the run, reports and writes
                let summary = try runTraining(trainer, resume: resume, record: nil, label: label, out: out) { _ in "" }
                return FinetuneResult(fields: nil, scores: [:], interrupted: summary.interrupted)
            }

            let store = try CorpusStore(path: db)
            var config: [(String, JSONValue)] = [
                ("task", .string(spec.name)), ("spec", .string(task)), ("base", .string(base)), ("architecture", .string(architecture)),
                ("init", .string(initialization.rawValue)), ("epochs", .integer(epochCount)), ("lr", .float(lr)),
                ("batch_size", .integer(opts.batchSize)), ("warmup_steps", .integer(opts.warmupSteps)), ("seed", .integer(opts.seed)),
                ("train_examples", .number(Double(trainCount))), ("train_windows", .number(Double(windows))),
                ("adapt", .string(adaptation.method.rawValue)), ("adapt_weight", .float(adaptation.weight)),
                ("train_sources", .array(sourceSpecs.map { .object([("data", .string($0.source.origin)), ("rate", .number($0.rate))]) })),
                ("target_texts", .number(Double(targetTexts.count))),
                ("dev_examples", .number(Double(devExamples.count))), ("settings", .string(objective.settings)), ("out", .string(out)),
                ("patience", patienceValue.map { .integer($0) } ?? .null), ("from_layer", topLayer.map { .integer($0) } ?? .null),
                ("pooling", (headModel as? BertForSequenceClassification).map { .string($0.pooling == .mean ? "mean" : "cls") } ?? .null),
            ]
            if let distillation {
                config += [("teacher", .string(distillation.teacher.directory)), ("temperature", .float(distillation.temperature)),
                           ("alpha", .float(distillation.alpha)), ("unlabelled_examples", .integer(unlabelled.count))]
            }
            let run = try store.startRun(kind: objective.name, name: out, configJSON: JSONValue.object(config).serialized())
            printError("\(distillation == nil ? "fine-tuning" : "distilling into") \(architecture) on \(spec.name): \(headModel.store.count) parameters, \(trainCount) training examples " +
                       "\(unlabelled.isEmpty ? "" : "+ \(unlabelled.count) unlabelled ")(\(windows) windows\(sources.count > 1 ? " from \(sources.count) sources" : "")), \(devExamples.count) dev examples, \(trainer.totalSteps) updates; writing to \(out)")
            if adaptation.method != .none {
                let detail = adaptation.method == .adversarial ? String(format: ", λ_max %g on Ganin et al.'s schedule", adaptation.weight)
                    : fineTuning.trainingWeights.map { w in String(format: ", source weights %.3f…%.3f", Double(w.min() ?? 1), Double(w.max() ?? 1)) } ?? ""
                printError("domain adaptation: \(adaptation.method.rawValue) to \(targetTexts.count) target texts\(detail)")
            }
            if options.cacheFeatures {
                printError(String(format: "cached features: the frozen encoder runs once over the %d training windows (inference mode, no dropout in it); the cache holds %.1f MB (%@ x %d floats)",
                                  windows, Double(fineTuning.featureCacheBytes) / 1e6, Plugin.headKind == .tokenClassification ? "tokens" : "windows", headModel.config.hidden))
            }
            if initialization == .random {
                printError("random initialisation (--init random): no weights loaded from \(base)")
            } else if !initialized.isEmpty {
                printError("new head parameters: \(initialized.joined(separator: ", "))")
            }
            let main = plugin.mainMetric.key
            var bestMetrics: [String: Double] = [:]
            let summary = try runTraining(trainer, resume: resume, record: run, label: label, out: out, announce: !json,
                                          stepsPerEpoch: stepsPerEpoch, profile: profile) { e in
                if e.isBest { bestMetrics = e.metrics }
                return e.metrics.keys.sorted().map { String(format: "%@ %.4f", $0, e.metrics[$0]!) }.joined(separator: ", ")
            }
            let fields = finetuneFields(name: spec.name, extra: [("adapt", .string(adaptation.method.rawValue))], summary: summary,
                                        stepsPerEpoch: stepsPerEpoch, main: main, best: bestMetrics, out: out)
            var scores = bestMetrics
            if let best = summary.best { scores["best_dev_\(main)"] = best }
            return FinetuneResult(fields: fields, scores: scores, interrupted: summary.interrupted)
        }

        /// Trains one run from `initialization` into `out` (fine-tuning, or distillation over the
        /// same fine-tuning objective); rank 0 records it, reports it and returns its `--json`
        /// fields and best dev scores (the other ranks: nil fields).
        func trainRun(_ initialization: WeightInitialization, out: String, resume: Bool) throws -> FinetuneResult {
            let loaded: (model: any PretrainedModel, tokenizer: Tokenizer, initialized: [String])
            if let distillation {
                loaded = try distillation.studentModel(architecture: architecture, labels: plugin.labels?.labels, pooling: poolingChoice,
                                                       seed: options.seed, randomWeights: initialization == .random)
            } else {
                let l = try ModelDirectory.open(base, as: architecture, labels: plugin.labels?.labels, pooling: poolingChoice,
                                                seed: options.seed, randomWeights: initialization == .random)
                loaded = (l.model, l.tokenizer, l.initialized)
            }
            var cutModel: (any PretrainedModel)?
            if let topLayer {
                let count = loaded.model.config.layers
                guard topLayer <= count else {
                    throw CLIError("\(task): from layer \(topLayer), but \(base) has \(count) layers (1...\(count))")
                }
                if topLayer < count { cutModel = try ModelSurgery.keepingLayers(Array(0..<topLayer), of: loaded.model, seed: options.seed) }
            }
            guard let headModel = (cutModel ?? loaded.model) as? any PretrainedModel & TaskHeadModel else {
                throw CLIError("\(base): \(architecture) did not build a task head")
            }
            let fineTuning = try FineTuningObjective(plugin: plugin, model: headModel, tokenizer: loaded.tokenizer,
                                                     sources: runSources, dev: devExamples, options: options, specFile: task,
                                                     target: targetTexts, targetOrigin: targetOrigin)
            guard let distillation else { return try trainAndReport(fineTuning, fineTuning: fineTuning, headModel: headModel, loaded: loaded.initialized,
                                                                    initialization: initialization, out: out, resume: resume) }
            let objective: DistillationObjective<Plugin>
            do {
                objective = try DistillationObjective(student: fineTuning, teacher: distillation.teacherModel,
                                                      teacherLabels: distillation.teacherModel.config.labels ?? [],
                                                      teacherTokenizer: distillation.teacher.tokenizer,
                                                      temperature: distillation.temperature, alpha: distillation.alpha)
            } catch let e as TaskError { throw CLIError("\(distillation.student): \(e)") }
            return try trainAndReport(objective, fineTuning: fineTuning, headModel: headModel, loaded: loaded.initialized,
                                      initialization: initialization, out: out, resume: resume)
        }

        let transfer = try trainRun(initialization, out: out, resume: resume)
        guard baseline == .scratch, !transfer.interrupted else {
            if json, let fields = transfer.fields { print(JSONValue.object(fields).serialized()) }
            return
        }
        // The same run from a random initialisation (resumed when it has a checkpoint).
        let scratchOut = (out as NSString).appendingPathComponent("scratch")
        let scratchResume = resume && FileManager.default.fileExists(atPath: (scratchOut as NSString).appendingPathComponent("checkpoints/LATEST"))
        let scratch = try trainRun(.random, out: scratchOut, resume: scratchResume)
        guard let transferFields = transfer.fields, let scratchFields = scratch.fields else { return }
        let keys = transfer.scores.keys.filter { scratch.scores[$0] != nil }.sorted()
        let difference = keys.map { ($0, transfer.scores[$0]! - scratch.scores[$0]!) }
        printError("baseline: best dev scores, transfer (\(out)) vs scratch (\(scratchOut))")
        printError("  " + "metric".padding(toLength: 24, withPad: " ", startingAt: 0) + "  transfer   scratch  difference")
        for (key, d) in difference {
            printError("  " + key.padding(toLength: 24, withPad: " ", startingAt: 0) +
                       String(format: "  %8.4f  %8.4f  %+10.4f", transfer.scores[key]!, scratch.scores[key]!, d))
        }
        if json {
            print(JSONValue.object([("transfer", .object(transferFields)), ("scratch", .object(scratchFields)),
                                    ("difference", .object(difference.map { ($0.0, .number($0.1)) }))]).serialized())
        }
    }

    /// The labelled data of one task: its training sources (`--train FILE` instead of the spec's
    /// data.train, one source or several with rates), each cut to the first `--limit-train`
    /// examples, and its dev examples (`--dev FILE` instead of data.dev; none without either).
    private func labelledData<P: TaskPlugin>(_ plugin: P, spec: TaskSpec, specFile: String) throws
        -> (specs: [TrainingSourceSpec], sources: [TrainingSource<P.Example>], dev: [P.Example]) {
        let sourceSpecs = train != nil || spec.trainSources.isEmpty
            ? (train.map { DataSource.file($0) } ?? spec.train).map { [TrainingSourceSpec(source: $0, rate: 1)] } ?? []
            : spec.trainSources
        guard !sourceSpecs.isEmpty else {
            throw CLIError("\(specFile): no training data (data.train in the spec, or --train FILE)")
        }
        let sources = try sourceSpecs.map { s -> TrainingSource<P.Example> in
            var examples = try plugin.examples(from: s.source)
            if let limitTrain { examples = Array(examples.prefix(max(0, limitTrain))) }
            guard !examples.isEmpty else { throw CLIError("\(specFile): the training data \(s.source.origin) has no examples") }
            return TrainingSource(examples: examples, rate: s.rate)
        }
        let devExamples = try (dev.map { DataSource.file($0) } ?? spec.dev).map { try plugin.examples(from: $0) } ?? []
        return (sourceSpecs, sources, devExamples)
    }

    /// The fine-tuning options and base learning rate from a spec's [train] table and the options
    /// given here (domain adaptation aside), checked for contradictions.
    /// `tagging`: whether a task of the run is token classification (`--token-weighting` applies).
    private func fineTuningOptions(_ t: TrainingOptions, specFile: String, tagging: Bool) throws -> (FineTuningOptions, learningRate: Float) {
        if let w = tokenWeighting, !tagging {
            throw CLIError("\(specFile): --token-weighting \(w.rawValue) applies to tagging (token classification) tasks only")
        }
        var options = FineTuningOptions()
        options.batchSize = batchSize ?? t.batchSize ?? 32
        options.seed = seed ?? t.seed.map { UInt64(max(0, $0)) } ?? 42
        options.freezeEncoder = freezeEncoder || (t.freezeEncoder ?? false)
        options.freezeLayers = freezeLayers ?? t.freezeLayers ?? 0
        options.unfreezeTop = unfreezeTop ?? t.unfreezeTop
        options.gradualUnfreeze = gradualUnfreeze || (t.gradualUnfreeze ?? false)
        options.layerLearningRateDecay = layerLearningRateDecay ?? t.layerLearningRateDecay.map(Float.init) ?? 1
        options.cacheFeatures = cacheFeatures || (t.cacheFeatures ?? false)
        options.batching = batching ?? t.batching ?? .length
        options.tokenWeighting = tokenWeighting ?? t.tokenWeighting ?? .uniform
        if options.cacheFeatures && !options.freezeEncoder {
            throw CLIError("\(specFile): --cache-features (train.cache_features) needs --freeze-encoder (train.freeze_encoder): only a frozen encoder's features stay the same")
        }
        if options.freezeEncoder || options.freezeLayers > 0 {
            let other = options.freezeEncoder ? "--freeze-encoder" : "--freeze-layers \(options.freezeLayers)"
            if let k = options.unfreezeTop { throw CLIError("\(specFile): --unfreeze-top \(k) (train.unfreeze_top) and \(other) both say which layers train; give one") }
            if options.gradualUnfreeze { throw CLIError("\(specFile): --gradual-unfreeze (train.gradual_unfreeze) decides which layers train; it does not combine with \(other)") }
        }
        let lr = learningRate ?? t.learningRate.map(Float.init) ?? 5e-5
        if let head = headLearningRate ?? t.headLearningRate.map(Float.init) { options.headLearningRateScale = head / lr }

        return (options, lr)
    }

    /// The trainer's options: an evaluation and a checkpoint every epoch of `windows` examples.
    private func optimizationOptions(_ t: TrainingOptions, _ options: FineTuningOptions, learningRate lr: Float, windows: Int,
                                     patience patienceValue: Int?, dataParallel: DataParallel)
        -> (options: OptimizationOptions, stepsPerEpoch: Int)
    {
        let epochCount = epochs ?? t.epochs ?? 3
        var opts = OptimizationOptions()
        opts.batchSize = options.batchSize
        opts.epochs = epochCount
        opts.accumulation = (t.gradientAccumulation ?? 1) * dataParallel.size   // micro-batches per update over all ranks
        opts.learningRate = lr
        opts.weightDecay = weightDecay ?? t.weightDecay.map(Float.init) ?? 0.01
        opts.clipNorm = Float(t.maxGradNorm ?? 1)
        opts.seed = options.seed
        let stepsPerEpoch = max(1, (windows + opts.batchSize * opts.accumulation - 1) / (opts.batchSize * opts.accumulation))
        // Rounded up, as transformers' `TrainingArguments.get_warmup_steps` (ceil(ratio · steps)).
        opts.warmupSteps = Int(((warmupRatio ?? t.warmupRatio ?? 0.06) * Double(stepsPerEpoch * epochCount)).rounded(.up))
        opts.evalEvery = stepsPerEpoch
        opts.checkpointEvery = stepsPerEpoch
        opts.keepCheckpoints = 1
        opts.patience = patienceValue
        return (opts, stepsPerEpoch)
    }

    /// Several `--task` specs: one BERT encoder with a head per task (``BertMultiTaskModel``),
    /// trained by ``MultiTaskObjective`` with the chosen sampling; hyper-parameters from the first
    /// spec's [train] table and the options given here.
    private func finetuneTasks() throws {
        let specs = try tasks.map { try TaskSpec.load($0) }
        for (i, spec) in specs.enumerated() {   // heads are named after their tasks
            guard BertMultiTaskModel.isValidHeadName(spec.name) else {
                throw CLIError("\(tasks[i]): the task name \"\(spec.name)\" names its head, so it must be letters, digits, _ or -")
            }
            if let j = specs[..<i].firstIndex(where: { $0.name == spec.name }) {
                throw CLIError("\(tasks[i]): the task name \"\(spec.name)\" is also \(tasks[j])'s; heads are named after their tasks, so the names must differ")
            }
        }
        let t = specs[0].training
        let base = try specs[0].requireBaseModel(override: model)
        guard try ModelDirectory.config(base).kind == .bert else {
            throw CLIError("\(base): multi-task fine-tuning needs a BERT encoder")
        }
        let dataParallel = try Ranks.dataParallel()
        guard dataParallel.size == 1 else { throw CLIError("multi-task fine-tuning runs in one process (not under mpirun)") }
        var parts: [MultiTaskObjective.Task] = []
        var counts: [(train: Int, dev: Int)] = []
        for (spec, file) in zip(specs, tasks) {
            func add<P: TaskPlugin>(_ plugin: P) throws {
                let (_, sources, devExamples) = try labelledData(plugin, spec: spec, specFile: file)
                guard sources.count == 1 else {
                    throw CLIError("\(file): data.train lists \(sources.count) sources; in multi-task fine-tuning each task has one (the tasks are mixed by --sampling)")
                }
                let trainExamples = sources[0].examples
                parts.append(MultiTaskObjective.Task(plugin: plugin, train: trainExamples, dev: devExamples, specFile: file))
                counts.append((trainExamples.count, devExamples.count))
            }
            try add(try TaskRegistry.plugin(for: spec))
        }
        let patienceValue = patience ?? t.patience
        if patienceValue != nil, let i = counts.firstIndex(where: { $0.dev == 0 }) {
            throw CLIError("\(tasks[i]): early stopping (patience) needs dev data for every task (data.dev)")
        }
        let (options, lr) = try fineTuningOptions(t, specFile: tasks[0], tagging: specs.contains { $0.kind == .tokenClassification })
        let loaded = try ModelDirectory.open(base, as: BertMultiTaskModel.architectureName, heads: parts.map(\.head),
                                             seed: options.seed, randomWeights: initialization == .random)
        guard let multi = loaded.model as? BertMultiTaskModel else { throw CLIError("\(base): no multi-task model was built") }
        let samplingValue: TaskSampling = sampling == .proportional ? .proportional : .temperature(samplingTemperature ?? 2)
        let objective = try MultiTaskObjective(model: multi, tokenizer: loaded.tokenizer, tasks: parts, options: options,
                                               sampling: samplingValue)
        let windows = objective.examplesPerEpoch ?? 0
        let (opts, stepsPerEpoch) = optimizationOptions(t, options, learningRate: lr, windows: windows, patience: patienceValue,
                                                        dataParallel: dataParallel)
        let trainer = try Trainer(objective: objective, options: opts, outputDirectory: out, dataParallel: dataParallel)
        let names = objective.taskNames
        let config: [(String, JSONValue)] = [
            ("tasks", .array(names.map { .string($0) })), ("specs", .array(tasks.map { .string($0) })), ("base", .string(base)),
            ("architecture", .string(BertMultiTaskModel.architectureName)), ("init", .string(initialization.rawValue)),
            ("sampling", .string(sampling.rawValue)), ("sampling_temperature", samplingValue == .proportional ? .null : .number(samplingTemperature ?? 2)),
            ("probabilities", .array(objective.sampler.probabilities.map { .number($0) })),
            ("epochs", .integer(opts.epochs ?? 0)), ("lr", .float(lr)), ("batch_size", .integer(opts.batchSize)),
            ("warmup_steps", .integer(opts.warmupSteps)), ("seed", .integer(opts.seed)),
            ("train_examples", .array(counts.map { .integer($0.train) })), ("train_windows", .array(objective.windowCounts.map { .integer($0) })),
            ("dev_examples", .array(counts.map { .integer($0.dev) })), ("settings", .string(objective.settings)), ("out", .string(out)),
            ("patience", patienceValue.map { .integer($0) } ?? .null),
        ]
        let shares = zip(names, objective.sampler.probabilities).map { String(format: "%@ %.3f", $0.0, $0.1) }.joined(separator: ", ")
        printError("multi-task fine-tuning \(BertMultiTaskModel.architectureName) on \(names.joined(separator: ", ")): \(multi.store.count) parameters, " +
                   "windows \(objective.windowCounts.map(String.init).joined(separator: "/")), \(sampling.rawValue) sampling (\(shares)), " +
                   "\(objective.batchesPerEpoch) batches per epoch, \(trainer.totalSteps) updates; writing to \(out)")
        if initialization == .random {
            printError("random initialisation (--init random): no weights loaded from \(base)")
        } else if !loaded.initialized.isEmpty {
            printError("new head parameters: \(loaded.initialized.joined(separator: ", "))")
        }
        let store = try CorpusStore(path: db)
        let run = try store.startRun(kind: "finetune-multitask", name: out, configJSON: JSONValue.object(config).serialized())
        var bestMetrics: [String: Double] = [:]
        let summary = try runTraining(trainer, resume: resume, record: run, label: "finetune", out: out, announce: !json,
                                      stepsPerEpoch: stepsPerEpoch, profile: profile) { e in
            if e.isBest { bestMetrics = e.metrics }
            return e.metrics.keys.sorted().map { String(format: "%@ %.4f", $0, e.metrics[$0]!) }.joined(separator: ", ")
        }
        if json {
            print(JSONValue.object(finetuneFields(name: names.joined(separator: "+"), summary: summary, stepsPerEpoch: stepsPerEpoch,
                                                  main: objective.mainMetric.name, best: bestMetrics, out: out)).serialized())
        }
    }

    /// `--json` fields of a finished run: the dev scores of the best evaluation under the task's
    /// metric keys (as `evaluate --json`); train_seconds is the trainer's wall time, its per-epoch
    /// dev evaluations and checkpoints included, and `eval_seconds` / `checkpoint_seconds` are
    /// those two parts of it (transformers' `Trainer.train()` without evaluation or saving, as
    /// benchmarks/hf_finetune_bench.py runs it, compares with the difference).
    private func finetuneFields(name: String, extra: [(String, JSONValue)] = [], summary: TrainingSummary, stepsPerEpoch: Int,
                                main: String, best bestMetrics: [String: Double], out: String) -> [(String, JSONValue)] {
        var fields: [(String, JSONValue)] = [("task", .string(name))] + extra + [
            ("steps", .number(Double(summary.steps))),
            ("epochs", .number(Double(epochsTrained(summary.steps, stepsPerEpoch)))),
            ("stopped_early", .bool(summary.stoppedEarly)),
            ("train_seconds", .number((summary.seconds * 10).rounded() / 10)),
            ("eval_seconds", .number((summary.evaluationSeconds * 10).rounded() / 10)),
            ("checkpoint_seconds", .number((summary.checkpointSeconds * 10).rounded() / 10))]
        if let best = summary.best { fields.append(("best_dev_\(main)", .number(best))) }
        for key in bestMetrics.keys.sorted() { fields.append((key, .number(bestMetrics[key]!))) }
        fields.append(("model", .string(out + "/best")))
        return fields
    }

    /// The HuggingFace head class for a head kind on the base model's family.
    private func headArchitecture(_ kind: HeadKind, family: ModelKind, base: String) throws -> String {
        switch (kind, family) {
        case (.sequenceClassification, .bert): return "BertForSequenceClassification"
        case (.tokenClassification, .bert): return "BertForTokenClassification"
        case (.questionAnswering, .bert): return "BertForQuestionAnswering"
        case (.sequenceClassification, .gpt): return "GPT2ForSequenceClassification"
        case (.tokenClassification, .gpt): return "GPT2ForTokenClassification"
        case (.questionAnswering, .gpt): throw CLIError("\(base): question answering needs a BERT encoder (GPT-2 has no QA head here)")
        }
    }
}

/// One fine-tuning run's outcome: its `--json` fields and best dev scores (rank 0; nil fields
/// on the other ranks of a data-parallel job), and whether it was interrupted.
struct FinetuneResult {
    var fields: [(String, JSONValue)]?
    var scores: [String: Double]
    var interrupted: Bool
}

/// Reads documents, one per line, from files or standard input.
func forEachDocument(_ files: [String], _ body: (String, String) throws -> Void) throws {
    for path in files.isEmpty ? ["-"] : files {
        let reader: LineReader
        do { reader = try LineReader.open(path) } catch { throw CLIError("\(error)") }
        var line = 0
        do {
            while let text = try reader.nextString() {
                line += 1
                try body(text, "\(path == "-" ? "stdin" : path):\(line)")
            }
        } catch let e as TokenizerError { throw CLIError("\(e)") }
    }
}

/// The documents (text, where it came from) of `files`, one per line (stdin without files). Under
/// `mpirun` rank 0 reads them and every rank receives them.
func readDocuments(_ files: [String]) throws -> [(text: String, id: String)] {
    try Ranks.shareDocuments(try Ranks.world()) {
        var lines: [(String, String)] = []
        try forEachDocument(files) { lines.append(($0, $1)) }
        return lines
    }.map { (text: $0.0, id: $0.1) }
}

/// Whether this process is rank 0 of an MPI job, or not under mpirun (it reports on stderr).
func isLeaderRank() -> Bool { ((try? Ranks.world())??.rank ?? 0) == 0 }

/// Options every inference command shares.
struct InferenceOptions: ParsableArguments {
    @Option(help: "A fine-tuned model directory (graft finetune's OUT/best).") var model: String
    @Option(help: "Task spec (default: the model's graft-task.toml, else the task its architectures and id2label imply, e.g. an imported transformers model).") var task: String?
    @Option(help: "The head of a multi-task model to use (default: its only head of the kind the command needs).") var head: String?
    @Option(name: .customLong("batch-size"), help: "Windows per forward pass.") var batchSize: Int = 32
    @Option(name: .customLong("chunk-size"), help: "Documents per chunk (bounds memory; under mpirun, the unit shared out to the ranks).")
    var chunkSize: Int = 2048
    @Option(help: "Threads (default: GRAFT_THREADS, else all cores).") var threads: Int?

    /// Opens the model; a multi-task model's head `--head`, else its only head of `kind`.
    func open(kind: HeadKind? = nil) throws -> TaskModel {
        do { return try TaskModel.open(model, specFile: task, head: head, kind: kind) } catch let e as TaskError { throw CLIError("\(e)") }
    }

    /// Runs `body` under `--threads` with the opened model (`opening`, else ``open()``) and its
    /// plugin, which must be a `P`: otherwise an error saying that `graft command` needs `kind`.
    func withModel<P: TaskPlugin>(_ type: P.Type, command: String, needs kind: String, opening: (() throws -> TaskModel?)? = nil,
                                  _ body: (P, TaskModel) throws -> Void) throws {
        try Engine.withThreads(threads ?? Engine.defaultThreads) {
            let m = try opening?() ?? open(kind: P.headKind)
            guard let plugin = m.plugin as? P else {
                throw CLIError("\(model) is a \(m.spec.kind.rawValue) model; graft \(command) needs \(kind)")
            }
            try body(plugin, m)
        }
    }
}

/// `--zero-shot --labels` / `--examples` of `graft classify` and `graft evaluate`: a
/// sentence-embedding model (`--model`, e.g. all-MiniLM-L6-v2) as a classifier without training
/// (``EmbeddingClassifierHead``).
struct EmbeddingClassifierOptions: ParsableArguments {
    static let discussion = """
        Zero-shot: --zero-shot --labels "positive=a great, enjoyable film;negative=a dull, bad film" with --model a \
        sentence-embedding model (e.g. an imported all-MiniLM-L6-v2): each text's embedding (masked mean of the last \
        hidden states, L2-normalised) is compared with each label description's; the label is the most similar. \
        Few-shot: --examples FILE (TSV label<TAB>text, a handful per class): each class's prototype is the normalised \
        mean of its examples' embeddings, with its description (if --labels gives one) counted as one more example; \
        without --labels the classes are the file's labels. Output as a fine-tuned classifier's; "scores" are \
        softmax(cosine / T) over the classes with T = --temperature (default 0.05).
        """

    @Flag(name: .customLong("zero-shot"), help: "Classify with a sentence-embedding model and label descriptions (--labels), no training.")
    var zeroShot = false
    @Option(help: "Classes for --zero-shot / --examples: \"LABEL=DESCRIPTION;LABEL=DESCRIPTION\" (a bare LABEL with --examples).")
    var labels: String?
    @Option(help: "Few-shot examples: TSV label<TAB>text; class prototypes are the normalised mean of their embeddings.")
    var examples: String?
    @Option(help: "Softmax temperature of the zero-/few-shot scores, softmax(cosine / T) (default 0.05).")
    var temperature: Float = 0.05

    var isEnabled: Bool { zeroShot || examples != nil }

    func validate(_ inference: InferenceOptions) throws {
        if !isEnabled && labels != nil { throw ValidationError("--labels needs --zero-shot or --examples FILE") }
        if zeroShot && labels == nil { throw ValidationError("--zero-shot needs --labels \"LABEL=DESCRIPTION;LABEL=DESCRIPTION\"") }
        if isEnabled && inference.task != nil { throw ValidationError("--task does not apply to a zero-/few-shot classifier (its task is --labels / --examples)") }
        // Below 1e-4 the scaled cosines overflow the softmax (every score NaN).
        if !(temperature >= 1e-4 && temperature <= 1e4) { throw ValidationError("--temperature must lie in 0.0001...10000") }
    }

    /// The embedding classifier, or nil without --zero-shot / --examples.
    func open(_ inference: InferenceOptions) throws -> TaskModel? {
        guard isEnabled else { return nil }
        do {
            let classes = try labels.map { try ClassDescription.parse($0, requireDescriptions: examples == nil) }
            return try TaskModel.embeddingClassifier(inference.model, classes: classes, examplesFile: examples, temperature: temperature)
        } catch let e as TaskError { throw CLIError("\(e)") } catch let e as ModelError { throw CLIError("\(e)") }
    }
}

/// Runs `plugin` over examples in length-grouped batches with progress on stderr, writing
/// `render(example, prediction)` to `out` for every example in input order; examples with
/// `skip[i]` true (empty documents) are not run and get a nil prediction.
///
/// Under `mpirun -np N` the examples the model runs on are cut into the runner's chunks, rank r
/// runs chunks r, r+N, … (each exactly as one process would, so the bytes are the same), and
/// rank 0 writes every chunk's text in input order (the others send theirs; they write nothing).
func predictInOrder<P: TaskPlugin>(_ plugin: P, _ m: TaskModel, batchSize: Int, chunkSize: Int, _ examples: [P.Example], skip: [Bool]? = nil,
                                   label: String, out: OutputBuffer, render: (P.Example, P.Prediction?) throws -> String) throws {
    let skip = skip ?? [Bool](repeating: false, count: examples.count)
    let run = examples.indices.filter { !skip[$0] }
    let runner = try TaskRunner(plugin: plugin, head: m.head, tokenizer: m.tokenizer, batchSize: batchSize, chunkSize: chunkSize)
    let world = try Ranks.world()
    let size = world?.size ?? 1, rank = world?.rank ?? 0
    let progress = ProgressReporter(label, total: run.count, unit: .items("docs"), enabled: rank == 0)
    var tokens = 0
    let started = Date()
    /// The text of the example at `index` and of the skipped ones right after it.
    func text(_ index: Int, _ prediction: P.Prediction?) throws -> String {
        var s = try render(examples[index], prediction)
        var next = index + 1
        while next < examples.count, skip[next] { s += try render(examples[next], nil); next += 1 }
        return s
    }
    var leading = ""   // skipped examples before the first one run
    var i = 0
    while i < examples.count, skip[i] { leading += try render(examples[i], nil); i += 1 }
    let update: (Int, Int) -> Void = { done, t in
        tokens += t
        progress.update(done, fields: ["tok/s": String(format: "%.0f", Double(tokens) / max(Date().timeIntervalSince(started), 1e-9))])
    }
    guard let world, size > 1 else {
        out.write(leading)
        try runner.predict(run.map { examples[$0] }, progress: update) { k, _, prediction in out.write(try text(run[k], prediction)) }
        progress.finish()
        return
    }
    let chunkCount = (run.count + runner.chunkSize - 1) / runner.chunkSize
    var mine: [Int: String] = [:]   // chunk -> its text
    try runner.predict(run.map { examples[$0] }, chunks: { $0 % size == rank }, progress: update) { k, _, prediction in
        mine[k / runner.chunkSize, default: ""] += try text(run[k], prediction)
    }
    let tag = 11
    if rank == 0 {
        out.write(leading)
        for c in 0..<chunkCount {
            if c % size == 0 {
                out.write(mine[c] ?? "")
            } else {
                out.write(String(decoding: try world.receive(from: c % size, tag: tag), as: UTF8.self))
            }
        }
    } else {
        for c in stride(from: rank, to: chunkCount, by: size) { try world.send(Array((mine[c] ?? "").utf8), to: 0, tag: tag) }
    }
    progress.finish()
}

/// `graft evaluate --model DIR --data FILE [--json]`.
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Score a fine-tuned model on labelled data in its task's format (TSV, CoNLL, SQuAD JSON).",
        discussion: "With --zero-shot --labels or --examples, scores a zero-/few-shot sentence-embedding classifier on TSV data (accuracy, macro_f1). " + EmbeddingClassifierOptions.discussion)

    @OptionGroup var inference: InferenceOptions
    @OptionGroup var embedding: EmbeddingClassifierOptions
    @Option(help: "Labelled data: TSV label<TAB>text, CoNLL columns (tag last) or SQuAD v1.1 JSON.") var data: String
    @Option(name: .customLong("label-map"), help: "A label-map file (e.g. tasks/wnut16-to-conll2003.toml): the data's labels are renamed to the model's before scoring.")
    var labelMap: String?
    @Flag(help: "Print one JSON object with the metrics (fractions 0-1), examples and seconds.") var json = false

    func validate() throws { try embedding.validate(inference) }

    func run() throws {
        try Engine.withThreads(inference.threads ?? Engine.defaultThreads) {
            let m = try embedding.open(inference) ?? inference.open()
            try evaluate(m.plugin, m)
        }
    }

    private func evaluate<P: TaskPlugin>(_ plugin: P, _ m: TaskModel) throws {
        let started = Date()
        let examples: [P.Example]
        let source = labelMap.map { DataSource.mapped(.file(data), labelMap: $0) } ?? .file(data)
        do { examples = try plugin.examples(from: source) } catch let e as TaskError { throw CLIError("\(e)") }
        guard !examples.isEmpty else { throw CLIError("\(data): no examples to score") }
        let runner = try TaskRunner(plugin: plugin, head: m.head, tokenizer: m.tokenizer, batchSize: inference.batchSize)
        let progress = ProgressReporter("evaluate", total: examples.count, unit: .items("examples"))
        let scores = try runner.evaluate(examples) { done, _ in progress.update(done) }
        progress.finish()
        let seconds = Date().timeIntervalSince(started)
        if json {
            var fields = scores.values.keys.sorted().map { ($0, JSONValue.number(scores.values[$0]!)) }
            fields.append(("examples", .number(Double(scores.examples))))
            fields.append(("seconds", .number((seconds * 100).rounded() / 100)))
            print(JSONValue.object(fields).serialized())
            return
        }
        print("\(data): \(scores.examples) examples, \(String(format: "%.1f", seconds)) s")
        for key in scores.values.keys.sorted() { print(String(format: "  %-12@ %.4f", key as NSString, scores.values[key]!)) }
        switch scores.detail {
        case .classification(let c):
            print("  per class (precision / recall / F1 / support):")
            for label in c.labels {
                guard let s = c.perClass[label] else { continue }
                print(String(format: "    %-12@ %.4f  %.4f  %.4f  %d", label as NSString, s.precision, s.recall, s.f1, s.support))
            }
            print("  confusion (rows gold, columns predicted: \(c.labels.joined(separator: " ")))")
            for (label, row) in zip(c.labels, c.confusion) { print("    \(label): \(row.map(String.init).joined(separator: " "))") }
        case .entities(let e):
            print("  per type (precision / recall / F1 / support):")
            for type in e.perType.keys.sorted() {
                let s = e.perType[type]!
                print(String(format: "    %-12@ %.4f  %.4f  %.4f  %d", type as NSString, s.precision, s.recall, s.f1, s.support))
            }
        case .answers:
            break
        }
    }
}

/// `graft tag FILES... --model DIR [--format jsonl|conll|html|pretty]`.
struct TagCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tag",
        abstract: "Tag entities in documents (one per line; stdin without files) with a fine-tuned NER model.")

    enum Format: String, ExpressibleByArgument, CaseIterable { case jsonl, conll, html, pretty }

    @OptionGroup var inference: InferenceOptions
    @Option(help: "jsonl (one object per document), conll (token and tag per line), html (a page), pretty (terminal).")
    var format: Format = .jsonl
    @Argument(help: "Input files (one document per line).") var files: [String] = []

    func run() throws {
        try inference.withModel(TaggingPlugin.self, command: "tag", needs: "a token-classification (NER) model", tag)
    }

    private func tag(_ plugin: TaggingPlugin, _ m: TaskModel) throws {
        var documents: [TaggedSentence] = []
        for (text, id) in try readDocuments(files) {
            documents.append(isBlank(text) ? TaggedSentence(id: id, text: text, words: [], wordOffsets: [], tags: nil, entities: [])
                                           : try plugin.document(text, id: id, tokenizer: m.tokenizer))
        }
        let skip = documents.map { $0.words.isEmpty }
        let blank = skip.filter { $0 }.count
        if blank > 0 && isLeaderRank() {
            // Blank lines, and lines of which the tokenizer keeps nothing (U+200B, a soft hyphen,
            // control characters): no word to tag. classify still classifies the latter (a model
            // sees [CLS] [SEP], as transformers' pipeline does) and counts blank lines only.
            printError("\(blank) document(s) without words (blank, or nothing the tokenizer keeps): written with no entities")
        }
        let out = OutputBuffer(silent: !isLeaderRank())
        if format == .html { out.write(EntityRendering.htmlHeader) }
        try predictInOrder(plugin, m, batchSize: inference.batchSize, chunkSize: inference.chunkSize, documents, skip: skip, label: "tag", out: out) { doc, p in
            EntityRendering.render(doc, p?.entities ?? [], tags: p?.tags ?? [], format: format)
        }
        if format == .html { out.write(EntityRendering.htmlFooter) }
        try out.flush()
    }
}

/// How `graft tag` writes a document and its entities.
enum EntityRendering {
    static func json(_ e: Entity) -> JSONValue {
        .object([("start", .number(Double(e.start))), ("end", .number(Double(e.end))), ("type", .string(e.type)),
                 ("text", .string(e.text)), ("score", .number((e.score * 1e4).rounded() / 1e4))])
    }

    static func render(_ doc: TaggedSentence, _ entities: [Entity], tags: [String], format: TagCommand.Format) -> String {
        switch format {
        case .jsonl:
            return JSONValue.object([("text", .string(doc.text)), ("entities", .array(entities.map(json)))]).serialized() + "\n"
        case .conll:
            return zip(doc.words, tags).map { "\($0)\t\($1)\n" }.joined() + "\n"
        case .html:
            return "<p>" + spans(doc.text, entities, open: { "<mark class=\"e-\(escape($0.type))\"\(htmlStyle($0.type)) title=\"\(escape($0.type)) \(String(format: "%.2f", $0.score))\">" },
                                 close: { "<span class=\"t\">\(escape($0.type))</span></mark>" }, escape: escape) + "</p>\n"
        case .pretty:
            let colors = [31, 32, 33, 34, 35, 36]
            func color(_ type: String) -> Int { colors[typeHash(type) % colors.count] }
            return spans(doc.text, entities, open: { "\u{1B}[1;\(color($0.type))m[" }, close: { " \(visible($0.type))]\u{1B}[0m" },
                         escape: visible) + "\n"
        }
    }

    /// A stable hash of an entity type, choosing its colour (the same in every run and document).
    static func typeHash(_ type: String) -> Int { type.unicodeScalars.reduce(0) { ($0 &* 31 &+ Int($1.value)) & 0xFFFF } }

    /// The CoNLL types have their colours in ``htmlHeader`` (displaCy's); any other type (a
    /// custom tag set's DRUG, DOSE, …) gets a light colour whose hue is the FNV-1a hash of its
    /// UTF-8 bytes, as an inline style (the same in every run and document).
    static let htmlClassTypes: Set<String> = ["PER", "ORG", "LOC", "MISC"]
    static func htmlStyle(_ type: String) -> String {
        guard !htmlClassTypes.contains(type) else { return "" }
        var h: UInt32 = 0x811C_9DC5
        for b in type.utf8 { h = (h ^ UInt32(b)) &* 0x0100_0193 }
        return " style=\"background: hsl(\(h % 360), 85%, 80%)\""
    }

    /// `text` with each entity wrapped in `open`/`close`, sliced at the entities' scalar offsets.
    static func spans(_ text: String, _ entities: [Entity], open: (Entity) -> String, close: (Entity) -> String,
                      escape: (String) -> String) -> String {
        let scalars = Array(text.unicodeScalars)
        func slice(_ r: Range<Int>) -> String { var s = String.UnicodeScalarView(); s.append(contentsOf: scalars[r]); return String(s) }
        var out = "", at = 0
        for e in entities.sorted(by: { $0.start < $1.start }) where e.start >= at && e.end <= scalars.count {
            out += escape(slice(at..<e.start)) + open(e) + escape(slice(e.start..<e.end)) + close(e)
            at = e.end
        }
        return out + escape(slice(at..<scalars.count))
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// `s` safe to write to a terminal: C0 controls but tab, DEL and C1 controls (an escape
    /// sequence in the user's text would otherwise drive the terminal) written as `\u{1B}`.
    static func visible(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: isControl) else { return s }
        var out = ""
        for c in s.unicodeScalars {
            if isControl(c) { out += "\\u{\(String(c.value, radix: 16, uppercase: true))}" } else { out.unicodeScalars.append(c) }
        }
        return out
    }

    private static func isControl(_ c: Unicode.Scalar) -> Bool {
        (c.value < 0x20 && c != "\t") || (0x7F...0x9F).contains(c.value)
    }

    static let htmlHeader = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>graft tag</title>
        <style>
        body { font: 16px/1.9 system-ui, sans-serif; max-width: 60em; margin: 2em auto; color: #222; }
        mark { padding: 0.15em 0.35em; border-radius: 0.35em; background: #ddd; }
        mark .t { font-size: 0.65em; font-weight: bold; margin-left: 0.4em; text-transform: uppercase; vertical-align: middle; }
        .e-PER { background: #aa9cfc; } .e-ORG { background: #7aecec; } .e-LOC { background: #feca74; }
        .e-MISC { background: #c887fb; }
        </style></head><body>

        """

    static let htmlFooter = "</body></html>\n"
}

/// `graft classify FILES... --model DIR`.
struct ClassifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classify",
        abstract: "Classify documents (one per line; stdin without files) with a fine-tuned classifier, or zero-/few-shot with a sentence-embedding model.",
        discussion: EmbeddingClassifierOptions.discussion)

    @OptionGroup var inference: InferenceOptions
    @OptionGroup var embedding: EmbeddingClassifierOptions
    @OptionGroup var tca: TCAOptions
    @Argument(help: "Input files (one document per line).") var files: [String] = []

    func validate() throws { try embedding.validate(inference) }

    func run() throws {
        if tca.adapt != nil { return try classifyAdapted() }   // DomainAdaptation.swift
        try inference.withModel(TextClassificationPlugin.self, command: "classify", needs: "a sequence-classification model",
                                opening: { try embedding.open(inference) }) { classifier, m in
            let documents = try readDocuments(files).map { TextExample(id: $0.id, text: $0.text, label: nil) }
            let skip = documents.map { isBlank($0.text) }
            let blank = skip.filter { $0 }.count
            if blank > 0 && isLeaderRank() { printError("\(blank) empty document(s): written with \"label\": null") }
            let out = OutputBuffer(silent: !isLeaderRank())
            try predictInOrder(classifier, m, batchSize: inference.batchSize, chunkSize: inference.chunkSize, documents, skip: skip, label: "classify", out: out) { doc, p in
                guard let p else {
                    return JSONValue.object([("text", .string(doc.text)), ("label", .null), ("scores", .object([]))]).serialized() + "\n"
                }
                let scores = p.scores.keys.sorted().map { ($0, JSONValue.number((p.scores[$0]! * 1e6).rounded() / 1e6)) }
                return JSONValue.object([("text", .string(doc.text)), ("label", .string(p.label)), ("scores", .object(scores))]).serialized() + "\n"
            }
            try out.flush()
        }
    }
}

/// `graft ask --model DIR --context FILE "question"`, or JSON Lines `{"context", "question"}` on stdin.
struct AskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ask",
        abstract: "Answer questions from a context with a fine-tuned extractive QA model.",
        discussion: "With --context and a question, answers it; without, reads JSON Lines {\"context\": ..., \"question\": ...} from stdin.")

    @OptionGroup var inference: InferenceOptions
    @Option(help: "A file holding the context (UTF-8 text).") var context: String?
    @Argument(help: "The question (with --context).") var question: String?

    func run() throws {
        if context == nil, let question {
            throw ValidationError("the question \(JSONValue.quoted(String(question.prefix(80)))) needs --context FILE (without a question, JSON Lines {\"context\": ..., \"question\": ...} are read from stdin)")
        }
        try inference.withModel(QuestionAnsweringPlugin.self, command: "ask", needs: "a question-answering model") { qa, m in
            var examples: [QuestionExample] = []
            // Records answered with "answer": null, one output line per input line as classify
            // and tag write them: blank lines (by id), and records with a reason (an empty or too
            // long question, an empty context) by index.
            var problems: [Int: String] = [:]
            var blankLines = Set<String>()
            if let context {
                guard let question else { throw ValidationError("give the question after --context FILE") }
                guard !isBlank(question) else { throw ValidationError("the question is empty") }
                let shared = try Ranks.shareDocuments(try Ranks.world()) {
                    var isDirectory: ObjCBool = false
                    guard FileManager.default.fileExists(atPath: context, isDirectory: &isDirectory) else { throw CLIError("\(context): no such file") }
                    guard !isDirectory.boolValue else { throw CLIError("\(context): is a directory, not a text file") }
                    guard let data = FileManager.default.contents(atPath: context) else { throw CLIError("\(context): cannot read the file") }
                    guard let text = String(validating: data, as: UTF8.self) else { throw CLIError("\(context): not valid UTF-8 text") }
                    guard !isBlank(text) else { throw CLIError("\(context): the context is empty") }
                    return [(text, "1")]
                }
                if let problem = qa.questionProblem(question, tokenizer: m.tokenizer) { throw ValidationError(problem) }
                examples.append(QuestionExample(id: "1", question: question, context: shared[0].0, answers: []))
            } else {
                for (line, id) in try readDocuments([]) {
                    if isBlank(line) {
                        blankLines.insert(id)
                        examples.append(QuestionExample(id: id, question: "", context: "", answers: []))
                        continue
                    }
                    let value: JSONValue
                    do { value = try JSONValue.parse(line, path: id) } catch { throw CLIError("\(error)") }
                    guard case .string(let c)? = value["context"], case .string(let q)? = value["question"] else {
                        throw CLIError("\(id): expected {\"context\": string, \"question\": string}")
                    }
                    if isBlank(q) {
                        problems[examples.count] = "the question is empty"
                    } else if isBlank(c) {
                        problems[examples.count] = "the context is empty"
                    } else if let problem = qa.questionProblem(q, tokenizer: m.tokenizer) {
                        problems[examples.count] = problem
                    }
                    examples.append(QuestionExample(id: id, question: q, context: c, answers: []))
                }
            }
            if isLeaderRank() {
                for (i, problem) in problems.sorted(by: { $0.key < $1.key }) {
                    printError("\(examples[i].id): \(problem): written with \"answer\": null")
                }
                if !blankLines.isEmpty { printError("\(blankLines.count) blank line(s): written with \"question\": null, \"answer\": null") }
            }
            let skip = examples.indices.map { problems[$0] != nil || blankLines.contains(examples[$0].id) }
            let out = OutputBuffer(silent: !isLeaderRank())
            try predictInOrder(qa, m, batchSize: inference.batchSize, chunkSize: inference.chunkSize, examples, skip: skip, label: "ask", out: out) { ex, p in
                let blank = blankLines.contains(ex.id)
                var fields: [(String, JSONValue)] = [("question", blank ? .null : .string(ex.question))]
                if let best = p?.best {
                    fields += [("answer", .string(best.text)), ("start", .number(Double(best.start))), ("end", .number(Double(best.end))),
                               ("score", .number((best.score * 1e4).rounded() / 1e4))]
                } else {
                    fields.append(("answer", .null))
                }
                return JSONValue.object(fields).serialized() + "\n"
            }
            try out.flush()
        }
    }
}

/// `graft logits --model DIR [FILES...]`: a head model's raw logits, for checking a model against
/// transformers (`scripts/check_hf_heads.py`).
struct LogitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logits",
        abstract: "Print a task head's raw logits for each input, with the token ids it ran on (for parity checks).",
        discussion: """
            Reads one text per line (sequence and token classification) or JSON Lines {"question": ..., "context": ...} \
            (question answering) from the files or stdin. Each input is one window: encoded with the model's tokenizer \
            and special tokens, not truncated (longer than the model's positions is an error), run alone (no padding). \
            Prints one JSON object per input: "input_ids", "token_type_ids" and "logits" ([L] for sequence \
            classification, [T][L] for token classification) or "start_logits" and "end_logits" ([T]); values are \
            the float32 logits exactly. Needs no task spec: any head model directory (graft finetune's OUT/best, or \
            an imported transformers model).
            """)

    @Option(help: "A head model directory (sequence/token classification or question answering).") var model: String
    @Argument(help: "Input files (one text, or one JSON question, per line).") var files: [String] = []

    func run() throws {
        try Engine.withThreads(Engine.defaultThreads) {
            let loaded = try openModel(model)
            guard let head = loaded.model as? any PretrainedModel & TaskHeadModel else {
                if let multi = loaded.model as? BertMultiTaskModel {
                    throw CLIError("\(model) is a multi-task model (heads \(multi.heads.map(\.head.name).joined(separator: ", "))); export one head with graft export --model \(model) --head NAME --out DIR, then run logits on DIR")
                }
                throw CLIError("\(model) holds a \(loaded.architecture.name), which has no task head")
            }
            var tokenizer = loaded.tokenizer
            tokenizer.truncation = nil
            tokenizer.padding = nil
            let isQA = head is BertForQuestionAnswering
            let out = OutputBuffer()
            try forEachDocument(files) { line, id in
                let encoding: Encoding
                do {
                    if isQA {
                        let value: JSONValue
                        do { value = try JSONValue.parse(line, path: id) } catch { throw CLIError("\(id): not JSON: \(error)") }
                        guard case .string(let c)? = value["context"], case .string(let q)? = value["question"] else {
                            throw CLIError("\(id): expected {\"context\": string, \"question\": string}")
                        }
                        encoding = try tokenizer.encode(q, pair: c)
                    } else {
                        encoding = try tokenizer.encode(line)
                    }
                } catch let e as TokenizerError { throw CLIError("\(id): \(e)") }
                let t = encoding.ids.count
                guard t > 0, t <= head.config.maxPositions else {
                    throw CLIError("\(id): \(t) tokens; the model takes 1 to \(head.config.maxPositions)")
                }
                let types = head.config.kind == .bert ? encoding.typeIds : nil
                let input = HeadInput(inputIds: encoding.ids, tokenTypeIds: types, attentionMask: nil, batch: 1, seqLen: t)
                let logits: [Float]
                do { logits = try head.logits(input).array } catch { throw CLIError("\(id): \(error)") }
                func row(_ r: ArraySlice<Float>) -> JSONValue { .array(r.map { .number(Double($0)) }) }
                var fields: [(String, JSONValue)] = [
                    ("input_ids", .array(encoding.ids.map { .number(Double($0)) })),
                    ("token_type_ids", .array(encoding.typeIds.map { .number(Double($0)) })),
                ]
                switch head {
                case is BertForQuestionAnswering:
                    fields.append(("start_logits", .array((0..<t).map { .number(Double(logits[2 * $0])) })))
                    fields.append(("end_logits", .array((0..<t).map { .number(Double(logits[2 * $0 + 1])) })))
                case is BertForTokenClassification, is GPT2ForTokenClassification:
                    let l = head.numLabels
                    fields.append(("logits", .array((0..<t).map { row(logits[($0 * l)..<(($0 + 1) * l)]) })))
                default:
                    fields.append(("logits", row(logits[...])))
                }
                out.write(JSONValue.object(fields).serialized() + "\n")
            }
            try out.flush()
        }
    }
}

extension AdaptationMethod: ExpressibleByArgument {}
extension Batching: ExpressibleByArgument {}
extension TokenWeighting: ExpressibleByArgument {}
