import Foundation
import GraftEngine

/// A model built from a ``ModelConfig`` whose parameters carry HuggingFace names in one flat
/// ``ParameterStore``: what ``ModelDirectory`` saves, loads and exports.
public protocol PretrainedModel: AnyObject {
    var config: ModelConfig { get }
    /// All parameters and gradients in one flat buffer.
    var store: ParameterStore { get }
    /// The dropout generator (seeded from the model seed). Save and restore it with the
    /// training checkpoint (`TrainingCheckpoint.save(..., rng:)`) for bit-identical resumption.
    var rng: SharedRNG { get }
    /// The ``ModelRegistry`` name of the model's class, written into `config.json`'s `architectures`.
    var architecture: String { get }
}

/// Matches checkpoint tensor or parameter names.
public enum NamePattern: Sendable, Hashable {
    case exact(String)
    case prefix(String)
    case suffix(String)

    public func matches(_ name: String) -> Bool {
        switch self {
        case .exact(let s): return name == s
        case .prefix(let s): return name.hasPrefix(s)
        case .suffix(let s): return name.hasSuffix(s)
        }
    }
}

extension Array where Element == NamePattern {
    /// Whether any pattern matches `name`.
    public func matches(_ name: String) -> Bool { contains { $0.matches(name) } }
}

/// How an architecture's parameters map to HuggingFace checkpoint tensors.
public struct WeightMapping: Sendable {
    /// The base model's prefix in HuggingFace head-model checkpoints (`bert.`, `transformer.`):
    /// stripped from checkpoint names that carry it when loading.
    public var prefix: String
    /// Whether ``ModelDirectory/export(_:tokenizer:to:)`` writes the base model's parameters under
    /// ``prefix`` (HuggingFace head models do, base models do not).
    public var prefixOnExport: Bool
    /// Parameter-name prefixes of the head, which are never prefixed: `cls.`, `classifier.`,
    /// `qa_outputs.`, `score.`.
    public var headPrefixes: [String]
    /// Checkpoint tensors (after stripping ``prefix``) that are skipped and reported as ignored:
    /// buffers, tied copies, heads of other architectures. Any other tensor that is not a
    /// parameter is an error naming it.
    public var ignoring: [NamePattern]
    /// Checkpoint tensors (after stripping ``prefix``) skipped when the model has no parameter of
    /// that name, loaded when it has (BERT's pooler: a mean-pooled classifier has none).
    public var ignoringAbsent: [NamePattern]
    /// Parameters a checkpoint may lack (a fresh head): they keep their initialisation and are
    /// reported as initialised. Any other missing parameter is an error.
    public var optional: [NamePattern]
    /// Other checkpoint names of a parameter (`cls.predictions.decoder.bias` →
    /// `cls.predictions.bias`): used when the checkpoint lacks the parameter's own name, ignored otherwise.
    public var aliases: [String: String]
    /// Parameters stored transposed, `[in, out]`, in checkpoints (GPT-2's `Conv1D`).
    public var transposed: @Sendable (String) -> Bool

    public init(prefix: String = "", prefixOnExport: Bool = false, headPrefixes: [String] = [], ignoring: [NamePattern] = [],
                ignoringAbsent: [NamePattern] = [], optional: [NamePattern] = [], aliases: [String: String] = [:],
                transposed: @escaping @Sendable (String) -> Bool = { _ in false }) {
        self.prefix = prefix; self.prefixOnExport = prefixOnExport; self.headPrefixes = headPrefixes
        self.ignoring = ignoring; self.ignoringAbsent = ignoringAbsent; self.optional = optional; self.aliases = aliases
        self.transposed = transposed
    }

    /// Whether the checkpoint tensor `name` (prefix stripped) is skipped for a model with `store`.
    public func skips(_ name: String, in store: ParameterStore) -> Bool {
        ignoring.matches(name) || (ignoringAbsent.matches(name) && !store.contains(name))
    }

    /// The checkpoint name without ``prefix``.
    public func stripped(_ name: String) -> String {
        !prefix.isEmpty && name.hasPrefix(prefix) ? String(name.dropFirst(prefix.count)) : name
    }

    /// The name a parameter gets in an exported (HuggingFace) checkpoint.
    public func exportedName(_ parameter: String) -> String {
        guard prefixOnExport, !headPrefixes.contains(where: { parameter.hasPrefix($0) }) else { return parameter }
        return prefix + parameter
    }
}

/// One entry of the ``ModelRegistry``: a HuggingFace architecture name (`config.json`'s
/// `architectures`), the family whose config keys it reads and writes, its builder and its
/// weight names.
public struct ModelArchitecture: Sendable {
    /// What a builder gets.
    public struct BuildContext: Sendable {
        public var config: ModelConfig
        /// Seeds the fresh initialisation and the dropout generator.
        public var seed: UInt64
        /// The checkpoint's tensor names (prefix stripped) when loading one, for parts that exist
        /// only when the checkpoint has them (BERT's pooler); nil for a fresh model.
        public var checkpointNames: Set<String>?
    }

    /// The HuggingFace class name, e.g. `BertForMaskedLM`, `BertForSequenceClassification`.
    public var name: String
    /// The config keys (`BertConfig` or `GPT2Config`) and tokenizer conventions.
    public var family: ModelKind
    public var weights: WeightMapping
    public var build: @Sendable (BuildContext) throws -> any PretrainedModel

    public init(name: String, family: ModelKind, weights: WeightMapping,
                build: @escaping @Sendable (BuildContext) throws -> any PretrainedModel) {
        self.name = name; self.family = family; self.weights = weights; self.build = build
    }
}

/// The architectures ``ModelDirectory`` can build, keyed by `config.json`'s `architectures`
/// (as HuggingFace's Auto classes do). Built in: `BertModel` (the encoder, with its pooler when
/// the checkpoint has one), `BertForMaskedLM`, `GPT2LMHeadModel` and `GPT2Model` (both built as
/// ``GPTForCausalLM``: the tied head has no parameters of its own).
///
/// A module with new heads registers each with one call, e.g.
/// ```swift
/// ModelRegistry.register(ModelArchitecture(
///     name: "BertForSequenceClassification", family: .bert,
///     weights: WeightMapping(prefix: "bert.", prefixOnExport: true, headPrefixes: ["classifier."],
///                            ignoring: ModelRegistry.bertIgnoring, optional: [.prefix("classifier."), .prefix("pooler.")]),
///     build: { try BertForSequenceClassification(config: $0.config, seed: $0.seed) }))
/// ```
public enum ModelRegistry {
    private final class Entries: @unchecked Sendable {
        let lock = NSLock()
        var byName: [String: ModelArchitecture] = [:]
    }

    private static let entries: Entries = {
        let e = Entries()
        for a in builtIn { e.byName[a.name] = a }
        return e
    }()

    /// Adds (or replaces) an architecture.
    public static func register(_ architecture: ModelArchitecture) {
        entries.lock.lock(); defer { entries.lock.unlock() }
        entries.byName[architecture.name] = architecture
    }

    /// The registered architecture names, sorted.
    public static var names: [String] {
        entries.lock.lock(); defer { entries.lock.unlock() }
        return entries.byName.keys.sorted()
    }

    /// The architecture registered as `name`, or nil.
    public static func architecture(named name: String) -> ModelArchitecture? {
        entries.lock.lock(); defer { entries.lock.unlock() }
        return entries.byName[name]
    }

    /// The architecture registered as `name`; otherwise an error naming it, `file` and the known ones.
    public static func architecture(named name: String, file: String) throws -> ModelArchitecture {
        guard let a = architecture(named: name) else {
            throw ModelError.badConfig(file: file, problem: "unknown architecture \"\(name)\" (known: \(names.joined(separator: ", ")))")
        }
        return a
    }

    /// A freshly initialised model of the architecture registered as `name` (store seeded by
    /// `seed`, dropout by `seed + 1`), e.g. a distillation student built from a preset.
    public static func build(_ name: String, config: ModelConfig, seed: UInt64) throws -> any PretrainedModel {
        let entry = try architecture(named: name, file: "config")
        guard entry.family == config.kind else {
            throw ModelError.invalidArgument("\(name) is a \(entry.family.rawValue) architecture, the configuration describes \(config.kind.rawValue)")
        }
        try config.validate()
        return try entry.build(.init(config: config, seed: seed, checkpointNames: nil))
    }

    /// The architecture a configuration of `kind` gets when `config.json` names none.
    public static func defaultArchitecture(for kind: ModelKind) -> String {
        kind == .bert ? "BertForMaskedLM" : "GPT2LMHeadModel"
    }

    /// What every BERT architecture skips in a checkpoint: the position-id buffer and the
    /// pretraining heads (masked LM, next-sentence prediction).
    public static let bertIgnoring: [NamePattern] = [.exact("embeddings.position_ids"), .prefix("cls.")]

    /// What a single-head BERT architecture skips besides ``bertIgnoring``: the heads of a
    /// multi-task model (``BertMultiTaskModel``), so its encoder serves as a base model.
    static let multiTaskHeads: [NamePattern] = [.prefix("heads.")]

    /// What every GPT-2 architecture skips: the attention-mask buffers and the tied `lm_head.weight`.
    public static let gpt2Ignoring: [NamePattern] = [.exact("lm_head.weight"), .suffix(".attn.bias"), .suffix(".attn.masked_bias")]

    static let builtIn: [ModelArchitecture] = {
        let gptWeights = WeightMapping(prefix: "transformer.", ignoring: gpt2Ignoring, transposed: { GPT2Block.isConv1DWeight($0) })
        let buildGPT: @Sendable (ModelArchitecture.BuildContext) throws -> any PretrainedModel = {
            try GPTForCausalLM(config: $0.config, seed: $0.seed)
        }
        return [
            ModelArchitecture(
                name: "BertModel", family: .bert,
                weights: WeightMapping(prefix: "bert.", ignoring: bertIgnoring + multiTaskHeads),
                build: { try BertModel(config: $0.config, seed: $0.seed, pooler: $0.checkpointNames?.contains("pooler.dense.weight") ?? false) }),
            ModelArchitecture(
                name: "BertForMaskedLM", family: .bert,
                weights: WeightMapping(
                    prefix: "bert.", prefixOnExport: true, headPrefixes: ["cls."],
                    ignoring: [.exact("embeddings.position_ids"), .exact("cls.predictions.decoder.weight"),
                               .prefix("cls.seq_relationship."), .prefix("pooler.")] + multiTaskHeads,
                    optional: BertForMaskedLM.headParameterNames.map { .exact($0) },
                    aliases: ["cls.predictions.decoder.bias": "cls.predictions.bias"]),
                build: { try BertForMaskedLM(config: $0.config, seed: $0.seed) }),
            ModelArchitecture(name: "GPT2LMHeadModel", family: .gpt, weights: gptWeights, build: buildGPT),
            ModelArchitecture(name: "GPT2Model", family: .gpt, weights: gptWeights, build: buildGPT),
        ] + taskHeads(gptWeights: gptWeights)
    }()

    /// The task heads (`Heads/`): HuggingFace's sequence/token classification and question
    /// answering classes. The number of classes comes from the configuration's `id2label`.
    static func taskHeads(gptWeights: WeightMapping) -> [ModelArchitecture] {
        func bert(_ head: String, ignoringPooler: Bool) -> WeightMapping {
            WeightMapping(prefix: "bert.", prefixOnExport: true, headPrefixes: [head],
                          ignoring: bertIgnoring + multiTaskHeads + (ignoringPooler ? [.prefix("pooler.")] : []),
                          ignoringAbsent: ignoringPooler ? [] : [.prefix("pooler.")],
                          optional: [.prefix(head)] + (ignoringPooler ? [] : [.prefix("pooler.")]))
        }
        func gpt(_ head: String) -> WeightMapping {
            var w = gptWeights
            w.prefixOnExport = true
            w.headPrefixes = [head]
            w.optional = [.prefix(head)]
            return w
        }
        @Sendable func classes(_ c: ModelArchitecture.BuildContext) throws -> Int {
            guard let n = c.config.labels?.count, n >= 2 else {
                throw ModelError.badConfig(file: "config.json", problem: "a classification head needs id2label with at least 2 labels")
            }
            return n
        }
        return [
            ModelArchitecture(name: "BertForSequenceClassification", family: .bert, weights: bert("classifier.", ignoringPooler: false),
                              build: { try BertForSequenceClassification(config: $0.config, numLabels: try classes($0),
                                                                                         pooling: $0.config.pooling ?? .pooler, seed: $0.seed) }),
            ModelArchitecture(name: "BertForTokenClassification", family: .bert, weights: bert("classifier.", ignoringPooler: true),
                              build: { try BertForTokenClassification(config: $0.config, numLabels: try classes($0), seed: $0.seed) }),
            ModelArchitecture(name: "BertForQuestionAnswering", family: .bert, weights: bert("qa_outputs.", ignoringPooler: true),
                              build: { try BertForQuestionAnswering(config: $0.config, seed: $0.seed) }),
            // Graft-only: one encoder, the heads of `graft_heads` (a base checkpoint's pooler and
            // heads are optional, as a fresh single head's are).
            ModelArchitecture(name: BertMultiTaskModel.architectureName, family: .bert,
                              weights: WeightMapping(prefix: "bert.", ignoring: bertIgnoring, ignoringAbsent: [.prefix("pooler.")],
                                                     optional: [.prefix("heads."), .prefix("pooler.")]),
                              build: { try BertMultiTaskModel(config: $0.config, seed: $0.seed) }),
            ModelArchitecture(name: "GPT2ForSequenceClassification", family: .gpt, weights: gpt("score."),
                              build: { try GPT2ForSequenceClassification(config: $0.config, numLabels: try classes($0), seed: $0.seed) }),
            ModelArchitecture(name: "GPT2ForTokenClassification", family: .gpt, weights: gpt("classifier."),
                              build: { try GPT2ForTokenClassification(config: $0.config, numLabels: try classes($0), seed: $0.seed) }),
        ]
    }
}
