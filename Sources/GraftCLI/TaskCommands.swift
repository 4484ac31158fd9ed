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
            OUT/best keeps the best). --pooling mean classifies the mean of the last hidden states instead of \
            [CLS] through the pooler (BERT sequence classification; kept in the model's config.json). \
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

    @Option(help: "Task spec (TOML or JSON), e.g. tasks/sentiment-rt.toml. Repeat it to train several tasks together (multi-task: one encoder, a head per task).")
    var task: [String]
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
    @Option(name: .customLong("limit-train"), help: "Use only the first N training examples (of each task).") var limitTrain: Int?
    @Option(help: "Early stopping: stop after N evaluations (epochs) in a row without a better dev metric (default: train.patience, else never).")
    var patience: Int?
    @Option(help: "Sequence classification on BERT: cls ([CLS] + pooler, as HuggingFace) or mean (mean of the last hidden states) (default: model.pooling, else cls; one task only: several tasks follow their specs).")
    var pooling: PoolingChoice?
    @Option(help: "Several tasks: how each micro-batch's task is drawn: proportional (probability ∝ its training windows n) or temperature (∝ n^(1/T)).")
    var sampling: SamplingChoice = .proportional
    @Option(name: .customLong("sampling-temperature"), help: "T of --sampling temperature (default 2; 1 is proportional, larger flattens towards uniform).")
    var samplingTemperature: Double?
    @Option(help: "Corpus database that records the run.") var db: String = "graft.sqlite"
    @Option(help: "Threads (default: GRAFT_THREADS, else all cores).") var threads: Int?
    @Option(name: .customLong("init"),
            help: "pretrained: start from the base model's weights; random: the same architecture and tokenizer from a seeded random initialisation (the from-scratch baseline).")
    var initialization: WeightInitialization = .pretrained
    @Flag(help: "Continue from OUT/checkpoints/LATEST.") var resume = false
    @Flag(help: "Print the final dev scores as one JSON object.") var json = false

    func validate() throws {
        if let patience, patience < 1 { throw ValidationError("--patience must be at least 1") }
        guard !task.isEmpty else { throw ValidationError("--task SPEC is required") }
        if task.count > 1 {
            for (given, name) in [(train != nil, "--train"), (dev != nil, "--dev"), (pooling != nil, "--pooling")] where given {
                throw ValidationError("\(name) applies to one task; with several --task specs each spec's [data] and model.pooling apply")
            }
        }
        if let samplingTemperature {
            guard sampling == .temperature else { throw ValidationError("--sampling-temperature needs --sampling temperature") }
            guard samplingTemperature > 0, samplingTemperature.isFinite else { throw ValidationError("--sampling-temperature must be a positive number") }
        }
    }

    func run() throws {
        try Engine.withThreads(threads ?? Engine.defaultThreads) { try finetune() }
    }

    private func finetune() throws {
        if task.count > 1 { return try finetuneTasks() }
        let spec = try TaskSpec.load(task[0])
        let plugin = try TaskRegistry.plugin(for: spec)
        try finetune(plugin, spec: spec)
    }

    /// The training and dev examples of one task (`--train`/`--dev` override the spec's data).
    private func examples<Plugin: TaskPlugin>(_ plugin: Plugin, spec: TaskSpec, specFile: String) throws
        -> (train: [Plugin.Example], dev: [Plugin.Example])
    {
        guard let trainSource = train.map(DataSource.file) ?? spec.train else {
            throw CLIError("\(specFile): no training data (data.train in the spec, or --train FILE)")
        }
        var trainExamples = try plugin.examples(from: trainSource)
        if let limitTrain { trainExamples = Array(trainExamples.prefix(max(0, limitTrain))) }
        let devExamples = try (dev.map(DataSource.file) ?? spec.dev).map { try plugin.examples(from: $0) } ?? []
        guard !trainExamples.isEmpty else { throw CLIError("\(specFile): the training data has no examples") }
        return (trainExamples, devExamples)
    }

    /// The fine-tuning options and base learning rate from a spec's [train] table and the options given here.
    private func fineTuningOptions(_ t: TrainingOptions) -> (FineTuningOptions, learningRate: Float) {
        var options = FineTuningOptions()
        options.batchSize = batchSize ?? t.batchSize ?? 32
        options.seed = seed ?? t.seed.map { UInt64(max(0, $0)) } ?? 42
        options.freezeEncoder = freezeEncoder || (t.freezeEncoder ?? false)
        options.freezeLayers = freezeLayers ?? t.freezeLayers ?? 0
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
        opts.warmupSteps = Int((warmupRatio ?? t.warmupRatio ?? 0.06) * Double(stepsPerEpoch * epochCount))
        opts.evalEvery = stepsPerEpoch
        opts.checkpointEvery = stepsPerEpoch
        opts.keepCheckpoints = 1
        opts.patience = patienceValue
        return (opts, stepsPerEpoch)
    }

    /// Records the run in --db, trains with progress, and prints the best dev scores with --json
    /// (`name`: the task, or the tasks joined by `+`).
    private func train<Objective: TrainingObjective>(_ trainer: Trainer<Objective>, runKind: String, name: String,
                                                     config: [(String, JSONValue)], stepsPerEpoch: Int) throws {
        let store = try CorpusStore(path: db)
        let run = try store.startRun(kind: runKind, name: out, configJSON: JSONValue.object(config).serialized())
        var bestMetrics: [String: Double] = [:]
        let summary = try runTraining(trainer, resume: resume, record: run, label: "finetune", out: out, announce: !json,
                                      stepsPerEpoch: stepsPerEpoch) { e in
            if e.isBest { bestMetrics = e.metrics }
            return e.metrics.keys.sorted().map { String(format: "%@ %.4f", $0, e.metrics[$0]!) }.joined(separator: ", ")
        }
        if json {
            // The dev scores of the best evaluation under the task's metric keys (as `evaluate --json`);
            // train_seconds is the trainer's wall time, its per-epoch dev evaluations included.
            var fields: [(String, JSONValue)] = [("task", .string(name)), ("steps", .number(Double(summary.steps))),
                                                 ("epochs", .number(Double(epochsTrained(summary.steps, stepsPerEpoch)))),
                                                 ("stopped_early", .bool(summary.stoppedEarly)),
                                                 ("train_seconds", .number((summary.seconds * 10).rounded() / 10))]
            if let best = summary.best { fields.append(("best_dev_\(trainer.objective.mainMetric.name)", .number(best))) }
            for key in bestMetrics.keys.sorted() { fields.append((key, .number(bestMetrics[key]!))) }
            fields.append(("model", .string(out + "/best")))
            print(JSONValue.object(fields).serialized())
        }
    }

    private func finetune<Plugin: TaskPlugin>(_ plugin: Plugin, spec: TaskSpec) throws {
        let taskFile = task[0]
        let t = spec.training
        let base = try spec.requireBaseModel(override: model)
        let (trainExamples, devExamples) = try examples(plugin, spec: spec, specFile: taskFile)
        let (options, lr) = fineTuningOptions(t)

        let architecture = try headArchitecture(Plugin.headKind, base: base)
        let poolingChoice = pooling?.pooling ?? spec.pooling
        if let poolingChoice {
            guard architecture == "BertForSequenceClassification" else {
                throw CLIError("\(taskFile): pooling (\(poolingChoice == .mean ? "mean" : "cls")) applies to BERT sequence classification; \(architecture) \(Plugin.headKind == .sequenceClassification ? "classifies from the last real token" : "does not pool")")
            }
        }
        let patienceValue = patience ?? t.patience
        if patienceValue != nil && devExamples.isEmpty {
            throw CLIError("\(taskFile): early stopping (patience) needs dev data (data.dev in the spec, or --dev FILE)")
        }
        let loaded = try ModelDirectory.open(base, as: architecture, labels: plugin.labels?.labels, pooling: poolingChoice,
                                             seed: options.seed, randomWeights: initialization == .random)
        guard let headModel = loaded.model as? any PretrainedModel & TaskHeadModel else {
            throw CLIError("\(base): \(architecture) did not build a task head")
        }
        let objective = try FineTuningObjective(plugin: plugin, model: headModel, tokenizer: loaded.tokenizer,
                                                train: trainExamples, dev: devExamples, options: options, specFile: taskFile)
        let windows = objective.examplesPerEpoch ?? 0
        let dataParallel = try Ranks.dataParallel()
        let (opts, stepsPerEpoch) = optimizationOptions(t, options, learningRate: lr, windows: windows, patience: patienceValue,
                                                        dataParallel: dataParallel)
        let trainer = try Trainer(objective: objective, options: opts, outputDirectory: out, dataParallel: dataParallel)
        guard dataParallel.isLeader else {   // rank 0 records the run, reports and writes
            try runTraining(trainer, resume: resume, record: nil, label: "finetune", out: out) { _ in "" }
            return
        }
        let config: [(String, JSONValue)] = [
            ("task", .string(spec.name)), ("spec", .string(taskFile)), ("base", .string(base)), ("architecture", .string(architecture)),
            ("init", .string(initialization.rawValue)), ("epochs", .integer(opts.epochs ?? 0)), ("lr", .float(lr)),
            ("batch_size", .integer(opts.batchSize)), ("warmup_steps", .integer(opts.warmupSteps)), ("seed", .integer(opts.seed)),
            ("train_examples", .number(Double(trainExamples.count))), ("train_windows", .number(Double(windows))),
            ("dev_examples", .number(Double(devExamples.count))), ("settings", .string(objective.settings)), ("out", .string(out)),
            ("patience", patienceValue.map { .integer($0) } ?? .null),
            ("pooling", (headModel as? BertForSequenceClassification).map { .string($0.pooling == .mean ? "mean" : "cls") } ?? .null),
        ]
        printError("fine-tuning \(architecture) on \(spec.name): \(headModel.store.count) parameters, \(trainExamples.count) training examples " +
                   "(\(windows) windows), \(devExamples.count) dev examples, \(trainer.totalSteps) updates; writing to \(out)")
        reportInitialization(loaded, base: base)
        try train(trainer, runKind: "finetune-\(Plugin.name)", name: spec.name, config: config, stepsPerEpoch: stepsPerEpoch)
    }

    private func reportInitialization(_ loaded: ModelDirectory.Loaded, base: String) {
        if initialization == .random {
            printError("random initialisation (--init random): no weights loaded from \(base)")
        } else if !loaded.initialized.isEmpty {
            printError("new head parameters: \(loaded.initialized.joined(separator: ", "))")
        }
    }

    /// Several `--task` specs: one BERT encoder with a head per task (``BertMultiTaskModel``),
    /// trained by ``MultiTaskObjective`` with the chosen sampling; hyper-parameters from the first
    /// spec's [train] table and the options given here.
    private func finetuneTasks() throws {
        let specs = try task.map { try TaskSpec.load($0) }
        for (i, spec) in specs.enumerated() {   // heads are named after their tasks
            guard BertMultiTaskModel.isValidHeadName(spec.name) else {
                throw CLIError("\(task[i]): the task name \"\(spec.name)\" names its head, so it must be letters, digits, _ or -")
            }
            if let j = specs[..<i].firstIndex(where: { $0.name == spec.name }) {
                throw CLIError("\(task[i]): the task name \"\(spec.name)\" is also \(task[j])'s; heads are named after their tasks, so the names must differ")
            }
        }
        let t = specs[0].training
        let base = try specs[0].requireBaseModel(override: model)
        guard try ModelDirectory.config(base).kind == .bert else {
            throw CLIError("\(base): multi-task fine-tuning needs a BERT encoder")
        }
        let dataParallel = try Ranks.dataParallel()
        guard dataParallel.size == 1 else { throw CLIError("multi-task fine-tuning runs in one process (not under mpirun)") }
        var tasks: [MultiTaskObjective.Task] = []
        var counts: [(train: Int, dev: Int)] = []
        for (spec, file) in zip(specs, task) {
            func add<P: TaskPlugin>(_ plugin: P) throws {
                let (trainExamples, devExamples) = try examples(plugin, spec: spec, specFile: file)
                tasks.append(MultiTaskObjective.Task(plugin: plugin, train: trainExamples, dev: devExamples, specFile: file))
                counts.append((trainExamples.count, devExamples.count))
            }
            try add(try TaskRegistry.plugin(for: spec))
        }
        let patienceValue = patience ?? t.patience
        if patienceValue != nil, let i = counts.firstIndex(where: { $0.dev == 0 }) {
            throw CLIError("\(task[i]): early stopping (patience) needs dev data for every task (data.dev)")
        }
        let (options, lr) = fineTuningOptions(t)
        let loaded = try ModelDirectory.open(base, as: BertMultiTaskModel.architectureName, heads: tasks.map(\.head),
                                             seed: options.seed, randomWeights: initialization == .random)
        guard let multi = loaded.model as? BertMultiTaskModel else { throw CLIError("\(base): no multi-task model was built") }
        let samplingValue: TaskSampling = sampling == .proportional ? .proportional : .temperature(samplingTemperature ?? 2)
        let objective = try MultiTaskObjective(model: multi, tokenizer: loaded.tokenizer, tasks: tasks, options: options,
                                               sampling: samplingValue)
        let windows = objective.examplesPerEpoch ?? 0
        let (opts, stepsPerEpoch) = optimizationOptions(t, options, learningRate: lr, windows: windows, patience: patienceValue,
                                                        dataParallel: dataParallel)
        let trainer = try Trainer(objective: objective, options: opts, outputDirectory: out, dataParallel: dataParallel)
        let names = objective.taskNames
        let config: [(String, JSONValue)] = [
            ("tasks", .array(names.map { .string($0) })), ("specs", .array(task.map { .string($0) })), ("base", .string(base)),
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
        reportInitialization(loaded, base: base)
        try train(trainer, runKind: "finetune-multitask", name: names.joined(separator: "+"), config: config, stepsPerEpoch: stepsPerEpoch)
    }

    /// The HuggingFace head class for a head kind on the base model's family.
    private func headArchitecture(_ kind: HeadKind, base: String) throws -> String {
        let family = try ModelDirectory.config(base).kind
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

    /// Runs `body` under `--threads` with the opened model and its plugin, which must be a `P`:
    /// otherwise an error saying that `graft command` needs `kind`.
    func withModel<P: TaskPlugin>(_ type: P.Type, command: String, needs kind: String,
                                  _ body: (P, TaskModel) throws -> Void) throws {
        try Engine.withThreads(threads ?? Engine.defaultThreads) {
            let m = try open(kind: P.headKind)
            guard let plugin = m.plugin as? P else {
                throw CLIError("\(model) is a \(m.spec.kind.rawValue) model; graft \(command) needs \(kind)")
            }
            try body(plugin, m)
        }
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

/// Whether a document has nothing to run the model on.
func isBlank(_ text: String) -> Bool { text.unicodeScalars.allSatisfy { $0.properties.isWhitespace } }

/// `graft evaluate --model DIR --data FILE [--json]`.
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Score a fine-tuned model on labelled data in its task's format (TSV, CoNLL, SQuAD JSON).")

    @OptionGroup var inference: InferenceOptions
    @Option(help: "Labelled data: TSV label<TAB>text, CoNLL columns (tag last) or SQuAD v1.1 JSON.") var data: String
    @Flag(help: "Print one JSON object with the metrics (fractions 0-1), examples and seconds.") var json = false

    func run() throws {
        try Engine.withThreads(inference.threads ?? Engine.defaultThreads) {
            let m = try inference.open()
            try evaluate(m.plugin, m)
        }
    }

    private func evaluate<P: TaskPlugin>(_ plugin: P, _ m: TaskModel) throws {
        let started = Date()
        let examples: [P.Example]
        do { examples = try plugin.examples(from: .file(data)) } catch let e as TaskError { throw CLIError("\(e)") }
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
        if blank > 0 && isLeaderRank() { printError("\(blank) empty document(s): written with no entities") }
        let out = OutputBuffer(silent: !isLeaderRank())
        if format == .html { out.write(EntityRendering.htmlHeader) }
        try predictInOrder(plugin, m, batchSize: inference.batchSize, chunkSize: inference.chunkSize, documents, skip: skip, label: "tag", out: out) { doc, p in
            EntityRendering.render(doc, p?.entities ?? [], tags: p?.tags ?? [], format: format)
        }
        if format == .html { out.write(EntityRendering.htmlFooter) }
        out.flush()
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
            return "<p>" + spans(doc.text, entities, open: { "<mark class=\"e-\(escape($0.type))\" title=\"\(escape($0.type)) \(String(format: "%.2f", $0.score))\">" },
                                 close: { "<span class=\"t\">\(escape($0.type))</span></mark>" }, escape: escape) + "</p>\n"
        case .pretty:
            let colors = [31, 32, 33, 34, 35, 36]
            func color(_ type: String) -> Int { colors[Int(type.unicodeScalars.reduce(0) { ($0 &* 31 &+ Int($1.value)) & 0xFFFF }) % colors.count] }
            return spans(doc.text, entities, open: { "\u{1B}[1;\(color($0.type))m[" }, close: { " \($0.type)]\u{1B}[0m" }, escape: { $0 }) + "\n"
        }
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
        abstract: "Classify documents (one per line; stdin without files) with a fine-tuned classifier.")

    @OptionGroup var inference: InferenceOptions
    @OptionGroup var tca: TCAOptions
    @Argument(help: "Input files (one document per line).") var files: [String] = []

    func run() throws {
        if tca.adapt != nil { return try classifyAdapted() }   // DomainAdaptation.swift
        try inference.withModel(TextClassificationPlugin.self, command: "classify", needs: "a sequence-classification model") { classifier, m in
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
            out.flush()
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
        try inference.withModel(QuestionAnsweringPlugin.self, command: "ask", needs: "a question-answering model") { qa, m in
            var examples: [QuestionExample] = []
            if let context {
                guard let question, !question.isEmpty else { throw ValidationError("give the question after --context FILE") }
                let shared = try Ranks.shareDocuments(try Ranks.world()) {
                    guard let data = FileManager.default.contents(atPath: context), let text = String(validating: data, as: UTF8.self) else {
                        throw CLIError("\(context): cannot read it as UTF-8 text")
                    }
                    return [(text, "1")]
                }
                examples.append(QuestionExample(id: "1", question: question, context: shared[0].0, answers: []))
            } else {
                for (line, id) in try readDocuments([]) {
                    if line.isEmpty { continue }
                    let value: JSONValue
                    do { value = try JSONValue.parse(line, path: id) } catch { throw CLIError("\(id): not JSON: \(error)") }
                    guard case .string(let c)? = value["context"], case .string(let q)? = value["question"] else {
                        throw CLIError("\(id): expected {\"context\": string, \"question\": string}")
                    }
                    examples.append(QuestionExample(id: id, question: q, context: c, answers: []))
                }
            }
            let out = OutputBuffer(silent: !isLeaderRank())
            try predictInOrder(qa, m, batchSize: inference.batchSize, chunkSize: inference.chunkSize, examples, label: "ask", out: out) { ex, p in
                var fields: [(String, JSONValue)] = [("question", .string(ex.question))]
                if let best = p?.best {
                    fields += [("answer", .string(best.text)), ("start", .number(Double(best.start))), ("end", .number(Double(best.end))),
                               ("score", .number((best.score * 1e4).rounded() / 1e4))]
                } else {
                    fields.append(("answer", .null))
                }
                return JSONValue.object(fields).serialized() + "\n"
            }
            out.flush()
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
            out.flush()
        }
    }
}
