import GraftSupport
import GraftEngine

/// One BERT encoder with several task heads in one flat ``ParameterStore`` (multi-task
/// learning): the Graft-only architecture `GraftBertMultiTask`.
///
/// Layout of the store (and of `model.safetensors`, under these names): the encoder's
/// parameters as in every BERT head model (`embeddings.*`, `encoder.layer.N.*`, and `pooler.*`
/// when a head pools through `[CLS]`), then each head's in the order of ``ModelConfig/taskHeads``
/// under `heads.<name>.`: `heads.<name>.classifier.{weight,bias}` (`[L, C]`, `[L]`) for sequence
/// and token classification, `heads.<name>.qa_outputs.{weight,bias}` (`[2, C]`, `[2]`) for
/// question answering. `config.json` lists the heads under the Graft key `graft_heads` (name,
/// kind, labels, pooling) and has no top-level `id2label`.
///
/// Every head is also a model of its own class (``BertForSequenceClassification``,
/// ``BertForTokenClassification``, ``BertForQuestionAnswering``) built on the shared
/// ``BertBackbone`` (``head(named:)``): its `loss`/`backward` reach the shared encoder, so a
/// batch of one task updates the encoder and that task's head only, and its `logits` are what the
/// single-task model with the same tensors computes. transformers has no such class, so
/// ``ModelDirectory/export(_:tokenizer:to:)`` refuses one.
public final class BertMultiTaskModel: PretrainedModel {
    /// The kind of a head (the raw values are GraftTasks' head kinds).
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case sequenceClassification = "sequence-classification"
        case tokenClassification = "token-classification"
        case questionAnswering = "question-answering"
    }

    /// One head of the model, as `config.json`'s `graft_heads` lists it.
    public struct Head: Sendable, Equatable, Codable {
        /// The head's name: letters, digits, `_` and `-` (it is part of its parameter names).
        public var name: String
        public var kind: Kind
        /// Class names in id order (classification heads, at least 2); nil for question answering.
        public var labels: [String]?
        /// Sequence classification: how the sentence is pooled (nil given: `[CLS]` through the
        /// pooler); nil for the other kinds.
        public var pooling: BertForSequenceClassification.Pooling?

        public init(name: String, kind: Kind, labels: [String]? = nil, pooling: BertForSequenceClassification.Pooling? = nil) {
            self.name = name; self.kind = kind; self.labels = labels
            self.pooling = kind == .sequenceClassification ? pooling ?? .pooler : pooling
        }

        /// The head's parameter-name prefix in the shared store.
        public var parameterPrefix: String { "heads.\(name)." }
    }

    /// The architecture name written into `config.json`.
    public static let architectureName = "GraftBertMultiTask"

    public let config: ModelConfig
    public let store: ParameterStore
    public let rng: SharedRNG
    public let bert: BertModel
    /// The heads in ``ModelConfig/taskHeads`` order, each a head model over the shared encoder.
    public let heads: [(head: Head, model: any PretrainedModel & TaskHeadModel)]
    public var architecture: String { Self.architectureName }

    /// A fresh model (store seeded by `seed`, dropout by `seed + 1`) with the heads of
    /// `config.taskHeads` (at least one, unique valid names); the encoder has a pooler when a
    /// sequence-classification head pools through `[CLS]`.
    public init(config: ModelConfig, seed: UInt64) throws {
        guard let heads = config.taskHeads, !heads.isEmpty else {
            throw ModelError.invalidArgument("\(Self.architectureName) needs at least one head (graft_heads)")
        }
        try Self.validate(heads, file: "config")
        var config = config
        config.labels = nil
        config.pooling = nil
        self.config = config
        let pooler = heads.contains { $0.kind == .sequenceClassification && ($0.pooling ?? .pooler) == .pooler }
        let backbone = try BertModel.backbone(of: Self.architectureName, config: config, seed: seed, pooler: pooler)
        (store, rng, bert) = (backbone.store, backbone.rng, backbone.bert)
        var built: [(Head, any PretrainedModel & TaskHeadModel)] = []
        for h in heads {
            var own = config
            own.taskHeads = nil
            own.labels = h.labels
            switch h.kind {
            case .sequenceClassification:
                built.append((h, try BertForSequenceClassification(config: own, numLabels: h.labels?.count ?? 0, pooling: h.pooling ?? .pooler,
                                                                   backbone: backbone, headName: h.parameterPrefix + "classifier")))
            case .tokenClassification:
                built.append((h, try BertForTokenClassification(config: own, numLabels: h.labels?.count ?? 0, backbone: backbone,
                                                                headName: h.parameterPrefix + "classifier")))
            case .questionAnswering:
                built.append((h, try BertForQuestionAnswering(config: own, backbone: backbone, headName: h.parameterPrefix + "qa_outputs")))
            }
        }
        self.heads = built
    }

    /// The head model named `name`, or nil.
    public func head(named name: String) -> (any PretrainedModel & TaskHeadModel)? {
        heads.first { $0.head.name == name }?.model
    }

    /// The head `name` as a single-task model of its own class (``BertForSequenceClassification``,
    /// ``BertForTokenClassification``, ``BertForQuestionAnswering``): a copy of the encoder's
    /// tensors (the pooler only where that class has one) and of the head's under the
    /// single-task names (`classifier.*`, `qa_outputs.*`). It computes the same logits, and
    /// exports to transformers like any head model.
    public func extractHead(named name: String) throws -> any PretrainedModel & TaskHeadModel {
        guard let (head, view) = heads.first(where: { $0.head.name == name }) else {
            throw ModelError.invalidArgument("no head \"\(name)\" (heads: \(heads.map(\.head.name).joined(separator: ", ")))")
        }
        let single: any PretrainedModel & TaskHeadModel
        switch head.kind {
        case .sequenceClassification:
            single = try BertForSequenceClassification(config: view.config, numLabels: view.numLabels, pooling: head.pooling ?? .pooler, seed: 0)
        case .tokenClassification:
            single = try BertForTokenClassification(config: view.config, numLabels: view.numLabels, seed: 0)
        case .questionAnswering:
            single = try BertForQuestionAnswering(config: view.config, seed: 0)
        }
        for p in single.store.parameters {
            let source = try store.parameter(named: single.groupName(p.name) == "head" ? head.parameterPrefix + p.name : p.name)
            guard source.shape == p.shape else {
                throw ModelError.invalidArgument("head \(name): \(source.name) is \(source.shape), the single-task \(p.name) \(p.shape)")
            }
            single.store.value(p).update(from: store.value(source), count: p.count)
        }
        return single
    }

    /// Whether `name` can name a head: non-empty ASCII letters, digits, `_` and `-`.
    public static func isValidHeadName(_ name: String) -> Bool {
        !name.isEmpty && name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "-") }
    }

    /// Checks head names (non-empty, letters, digits, `_`, `-`; unique), labels (at least 2 for
    /// classification, none for question answering) and pooling (sequence classification only).
    static func validate(_ heads: [Head], file: String) throws {
        func bad(_ p: String) -> ModelError { .badConfig(file: file, problem: "graft_heads: \(p)") }
        var seen = Set<String>()
        for h in heads {
            guard isValidHeadName(h.name) else {
                throw bad("head name \"\(h.name)\" must be letters, digits, _ or -")
            }
            guard seen.insert(h.name).inserted else { throw bad("two heads are named \"\(h.name)\"") }
            switch h.kind {
            case .sequenceClassification, .tokenClassification:
                guard let l = h.labels, l.count >= 2 else { throw bad("head \"\(h.name)\" (\(h.kind.rawValue)) needs at least 2 labels") }
                guard Set(l).count == l.count else { throw bad("head \"\(h.name)\" repeats a label") }
            case .questionAnswering:
                guard h.labels == nil else { throw bad("head \"\(h.name)\" (question-answering) has no labels") }
            }
            if h.pooling != nil && h.kind != .sequenceClassification {
                throw bad("head \"\(h.name)\": pooling applies to sequence classification only")
            }
        }
    }
}

extension BertMultiTaskModel.Head {
    /// The `graft_heads` entry: `{"name", "kind", "labels" (classification), "pooling" (sequence classification)}`.
    var json: JSONValue {
        var members: [(String, JSONValue)] = [("name", .string(name)), ("kind", .string(kind.rawValue))]
        if let labels { members.append(("labels", .array(labels.map { .string($0) }))) }
        if kind == .sequenceClassification { members.append(("pooling", .string(pooling == .mean ? "mean" : "cls"))) }
        return .object(members)
    }

    /// Reads a `graft_heads` entry (`index` for the error).
    init(json: JSONValue, index: Int, file: String) throws {
        func bad(_ p: String) -> ModelError { .badConfig(file: file, problem: "graft_heads[\(index)]: \(p)") }
        guard let members = json.object else { throw bad("not an object") }
        for (key, _) in members where !["name", "kind", "labels", "pooling"].contains(key) { throw bad("unknown key \"\(key)\"") }
        guard let name = json["name"]?.string else { throw bad("\"name\" is not a string") }
        guard let kindName = json["kind"]?.string, let kind = BertMultiTaskModel.Kind(rawValue: kindName) else {
            throw bad("\"kind\" is not one of \(BertMultiTaskModel.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var labels: [String]?
        if let l = json["labels"], !l.isNull {
            guard let items = l.array, items.count <= 1 << 20 else { throw bad("\"labels\" is not a list of strings") }
            labels = try items.map { guard let s = $0.string else { throw bad("\"labels\" is not a list of strings") }; return s }
        }
        var pooling: BertForSequenceClassification.Pooling?
        if let p = json["pooling"], !p.isNull {
            switch p.string {
            case "mean": pooling = .mean
            case "cls", "pooler": pooling = .pooler
            default: throw bad("\"pooling\" \(p.serialized()) is not \"cls\" or \"mean\"")
            }
        }
        self.init(name: name, kind: kind, labels: labels, pooling: pooling)
    }
}
