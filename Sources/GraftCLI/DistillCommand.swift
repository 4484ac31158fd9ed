import ArgumentParser
import Foundation
import GraftCorpus
import GraftEngine
import GraftModels
import GraftSupport
import GraftTasks
import GraftTokenizers

/// What `graft distill` adds to a fine-tuning run: the teacher, the student's source and the
/// distillation settings (``DistillationObjective``).
struct Distillation {
    let teacher: TaskModel
    let teacherModel: any PretrainedModel & TaskHeadModel
    /// A preset name (`mini`, `bert-mini`, …) or a model directory.
    let student: String
    let temperature: Float
    let alpha: Float
    /// Unlabelled documents, labelled by the teacher's soft targets only.
    let unlabelled: [TextExample]

    /// The preset the student names (`bert-mini` or `mini`), nil for a directory.
    var preset: ModelPreset? {
        let name = student.lowercased()
        return ModelPreset(rawValue: name.hasPrefix("bert-") || name.hasPrefix("gpt-") ? String(name.drop { $0 != "-" }.dropFirst()) : name)
    }

    /// The student head model: a preset built fresh with the teacher's vocabulary size, padding
    /// id, positions and tokenizer; or a model directory opened as `architecture` (its tokenizer
    /// is checked against the teacher's by ``DistillationObjective``).
    func studentModel(architecture: String, labels: [String]?, pooling: BertForSequenceClassification.Pooling?, seed: UInt64,
                      randomWeights: Bool) throws -> (model: any PretrainedModel, tokenizer: Tokenizer, initialized: [String]) {
        let t = teacherModel.config
        if let preset, !FileManager.default.fileExists(atPath: student) {
            var config = preset.config(kind: t.kind, vocabSize: t.vocabSize)
            config.padTokenId = t.padTokenId
            config.maxPositions = t.maxPositions
            config.typeVocabSize = t.typeVocabSize
            config.labels = labels
            config.pooling = pooling
            do {
                let model = try ModelRegistry.build(architecture, config: config, seed: seed)
                printError("student: \(architecture) from the \(preset.rawValue) preset with the teacher's vocabulary (\(t.vocabSize)) and tokenizer, randomly initialised")
                return (model, teacher.tokenizer, [])
            } catch let e as ModelError { throw CLIError("--student \(student): \(e)") }
        }
        do {
            let l = try ModelDirectory.open(student, as: architecture, labels: labels, pooling: pooling, seed: seed, randomWeights: randomWeights)
            return (l.model, l.tokenizer, l.initialized)
        } catch let e as ModelError {
            throw CLIError("--student \(student): \(e) (a student is a model directory or a preset: \(ModelConfig.presetNames.joined(separator: ", ")), optionally bert-…)")
        }
    }
}

/// `graft distill --teacher DIR --student PRESET|DIR --task SPEC --out DIR`.
struct DistillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distill",
        abstract: "Distil a fine-tuned classifier or tagger (the teacher) into a student model.",
        discussion: """
            Trains the student on the task spec's data with alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + \
            (1 - alpha) * cross-entropy(gold) (Hinton et al.), the teacher's logits computed on the same batches (inference \
            only). Sequence and token classification. The student is a preset (tiny, mini, small, or bert-mini …: built \
            with the teacher's vocabulary and tokenizer) or a model directory with the teacher's tokenizer. --unlabelled \
            FILE (one document per line) or --unlabelled-store DB (a corpus store's documents, optionally one \
            --unlabelled-source and --unlabelled-split) adds text the teacher labels on the fly (soft targets only; \
            sequence classification). Every finetune option applies (epochs, lr, batch size, patience, …); OUT/best is the student, \
            a fine-tuned model directory for evaluate / classify / tag.
            """)

    @Option(help: "The teacher: a fine-tuned model directory (graft finetune's OUT/best).") var teacher: String
    @Option(help: "The student: a preset (tiny, mini, small; or bert-mini …) or a model directory sharing the teacher's tokenizer.")
    var student: String
    @Option(help: "Softmax temperature T of the soft targets (> 0).") var temperature: Float = 2
    @Option(help: "Weight of the soft (distillation) term; 1 - alpha weighs the gold cross-entropy.") var alpha: Float = 0.5
    @Option(help: "Unlabelled documents (one per line) the teacher labels with soft targets.") var unlabelled: String?
    @Option(name: .customLong("unlabelled-store"), help: "A corpus store whose documents (all, or --unlabelled-source / --unlabelled-split) the teacher labels with soft targets.")
    var unlabelledStore: String?
    @Option(name: .customLong("unlabelled-source"), help: "With --unlabelled-store: only this imported source's documents.") var unlabelledSource: String?
    @Option(name: .customLong("unlabelled-split"), help: "With --unlabelled-store: only this split part (train, dev, test; the default scheme).")
    var unlabelledSplit: String?
    @OptionGroup var training: FinetuneCommand

    func validate() throws {
        guard temperature > 0, temperature.isFinite else { throw ValidationError("--temperature must be a positive number") }
        guard alpha >= 0, alpha <= 1 else { throw ValidationError("--alpha must lie in [0, 1]") }
        if unlabelledStore == nil && (unlabelledSource != nil || unlabelledSplit != nil) {
            throw ValidationError("--unlabelled-source and --unlabelled-split select from --unlabelled-store DB")
        }
        if let unlabelledSplit, SplitPart(rawValue: unlabelledSplit) == nil {
            throw ValidationError("--unlabelled-split \(unlabelledSplit) is not one of \(SplitPart.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if training.model != nil { throw ValidationError("graft distill takes the student as --student PRESET|DIR (and the teacher as --teacher), not --model") }
        try training.validate()
    }

    func run() throws {
        try Engine.withThreads(training.threads ?? Engine.defaultThreads) {
            guard training.tasks.count == 1 else { throw CLIError("graft distill takes one --task spec") }
            let spec = try TaskSpec.load(training.task)
            let plugin = try TaskRegistry.plugin(for: spec)
            let m: TaskModel
            do { m = try TaskModel.open(teacher) } catch let e as TaskError { throw CLIError("--teacher \(teacher): \(e)") }
            guard let head = (m.head as? ModelTaskHead)?.model as? any PretrainedModel & TaskHeadModel, m.spec.kind == spec.kind else {
                throw CLIError("--teacher \(teacher) is a \(m.spec.kind.rawValue) model; the task \(training.task) is \(spec.kind.rawValue)")
            }
            var documents: [TextExample] = []
            if let unlabelled {
                try forEachDocument([unlabelled]) { text, id in
                    if !isBlank(text) { documents.append(TextExample(id: id, text: text, label: nil)) }
                }
                guard !documents.isEmpty else { throw CLIError("\(unlabelled): no documents") }
            }
            if let unlabelledStore {
                guard FileManager.default.fileExists(atPath: unlabelledStore) else { throw CLIError("\(unlabelledStore): no such corpus store") }
                let selection = StoreSelection(source: unlabelledSource, split: unlabelledSplit.flatMap(SplitPart.init(rawValue:)))
                let found = try StoreReader.documents(try CorpusStore(path: unlabelledStore), selection)
                guard !found.isEmpty else {
                    throw CLIError("\(unlabelledStore): no documents in the selection (source \(unlabelledSource ?? "any"), split \(unlabelledSplit ?? "any"))")
                }
                documents += found
            }
            let d = Distillation(teacher: m, teacherModel: head, student: student, temperature: temperature, alpha: alpha, unlabelled: documents)
            try training.finetune(plugin, spec: spec, distillation: d)
        }
    }
}
