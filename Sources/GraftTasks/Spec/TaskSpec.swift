import Foundation
import GraftCorpus
import GraftModels

/// The head kind a task trains: what the model predicts.
public enum HeadKind: String, Sendable, Equatable, Codable, CaseIterable {
    case sequenceClassification = "sequence-classification"
    case tokenClassification = "token-classification"
    case questionAnswering = "question-answering"

    /// The canonical names plus the aliases `sentiment`, `classification`, `text-classification`,
    /// `ner`, `tagging`, `qa`, `extractive-qa`.
    public init?(name: String) {
        switch name.lowercased() {
        case "sequence-classification", "sentiment", "classification", "text-classification": self = .sequenceClassification
        case "token-classification", "ner", "tagging": self = .tokenClassification
        case "question-answering", "qa", "extractive-qa": self = .questionAnswering
        default: return nil
        }
    }

    /// The data format a kind reads by default.
    public var defaultFormat: DataFormat {
        switch self {
        case .sequenceClassification: .tsv
        case .tokenClassification: .conll
        case .questionAnswering: .squad
        }
    }
}

/// The file formats the task readers understand.
public enum DataFormat: String, Sendable, Equatable, Codable, CaseIterable {
    /// `label<TAB>text` (``TSVReader``).
    case tsv
    /// Token columns with the tag last (``CoNLLReader``).
    case conll
    /// SQuAD v1.1 JSON (``SquadReader``).
    case squad
}

/// Where a task's examples come from: files, or a selection of a corpus store.
public indirect enum DataSource: Sendable, Equatable {
    case file(String)
    /// A corpus store file and the selection in it.
    case store(path: String, selection: StoreSelection)
    /// A source labelled with other types, read under the types of the label-map file
    /// `labelMap` (``LabelMap``) and renamed to the task's (`{ file = "…", label_map = "…" }`).
    case mapped(DataSource, labelMap: String)

    /// The file or store the examples are read from (for messages).
    public var origin: String {
        switch self {
        case .file(let path): path
        case .store(let path, let selection): selection.describe(path)
        case .mapped(let inner, _): inner.origin
        }
    }
}

/// One labelled source of a multi-source run (`[data] train = [{ file = "…", rate = 0.7 }, …]`):
/// where its examples come from and its share of the training draws.
public struct TrainingSourceSpec: Sendable, Equatable {
    public var source: DataSource
    /// The sampling rate (positive; the rates of a spec's sources are normalised to sum to 1).
    public var rate: Double

    public init(source: DataSource, rate: Double) {
        self.source = source
        self.rate = rate
    }
}

/// Unlabelled text of the target domain (`[target]`), read by ``TargetDomain/texts()``.
public enum TargetTextSource: Sendable, Equatable {
    /// One text per non-empty line of a file (`format = "lines"`).
    case lines(String)
    /// The sentences of a CoNLL file, their tags ignored (`format = "conll"`).
    case conll(String)
    /// The documents of a corpus-store selection (`store`, `source`, `split`).
    case store(path: String, selection: StoreSelection)
}

/// A spec's `[target]` section: unlabelled text of the domain the model will meet in use, for
/// domain adaptation (`graft finetune --adapt adversarial|weighting`). Its `dev` set (with its
/// `label_map`) becomes the run's dev set.
public struct TargetDomain: Sendable, Equatable {
    public var text: TargetTextSource

    public init(text: TargetTextSource) { self.text = text }
}

/// Fine-tuning hyper-parameters; nil means "the trainer's default".
public struct TrainingOptions: Sendable, Equatable {
    public var epochs: Int?
    public var learningRate: Double?
    public var batchSize: Int?
    /// The largest batch a run takes (windows per batch; a batch cycles through the training
    /// windows, so a larger one is memory, not data).
    public static let maxBatchSize = OptimizationOptions.maxBatchSize
    /// Epochs a run may ask for: 1...10,000 (more would overflow the update count long before it
    /// finished; an epoch is at least one update).
    public static let epochRange = 1...10_000
    public var warmupRatio: Double?
    public var weightDecay: Double?
    public var seed: Int?
    /// A separate learning rate for the head.
    public var headLearningRate: Double?
    /// Train only the head (feature extraction).
    public var freezeEncoder: Bool?
    /// Freeze the embeddings and the lowest k encoder layers.
    public var freezeLayers: Int?
    public var gradientAccumulation: Int?
    public var maxGradNorm: Double?
    /// Early stopping: stop after this many evaluations (epochs) in a row without improving the
    /// main metric (`train.patience`, alias `train.early_stopping_patience`).
    public var patience: Int?
    /// Train only the top k encoder layers (and the head).
    public var unfreezeTop: Int?
    /// Gradual unfreezing (ULMFiT): the head alone in epoch 1, one more layer from the top each epoch.
    public var gradualUnfreeze: Bool?
    /// Discriminative rates: each layer below the top at this factor times the one above.
    public var layerLearningRateDecay: Double?
    /// With a frozen encoder: run it once per window and train the head on the cached features.
    public var cacheFeatures: Bool?
    /// How training windows are batched (`train.batching`: `length` or `random`).
    public var batching: Batching?
    /// Token classification: how labelled tokens weigh across batches (`train.token_weighting`:
    /// `uniform` or `batch`).
    public var tokenWeighting: TokenWeighting?
    /// Domain adaptation (`train.adapt`: `none`, `adversarial` or `weighting`; needs `[target]`).
    public var adapt: AdaptationMethod?
    /// The largest weight of the domain-adversarial loss (`train.adapt_weight`).
    public var adaptWeight: Double?

    public init() {}
}

/// A declarative fine-tuning task, read from `tasks/NAME.toml` (or `.json`).
///
/// ```toml
/// name = "ner-conll2003"
/// kind = "token-classification"      # or ner / sentiment / qa ...
/// labels = ["PER", "ORG", "LOC", "MISC"]   # entity types (or the full tag list, "O" first)
/// scheme = "iob2"                    # iob2 | bioes
///
/// [data]
/// train = "${GRAFT_DATA_DIR:-../../shared/data}/ner/conll2003/train.txt"
/// dev = "${GRAFT_DATA_DIR:-../../shared/data}/ner/conll2003/dev.txt"
/// format = "conll"                   # tsv | conll | squad (default from kind)
///
/// [model]
/// base = "../runs/minilm"            # a model directory
/// pooling = "cls"                    # sequence classification on BERT: cls | mean
/// from_layer = 3                     # optional: the head on layer 3's output (layers above cut off)
/// max_length = 128
/// stride = 32
///
/// [train]
/// epochs = 2
/// lr = 5e-5
/// batch_size = 32
/// ```
///
/// Paths are relative to the spec file unless absolute; `${VAR}` and `${VAR:-default}` expand
/// from the environment. Instead of `train`/`dev` files, `[data]` may name a corpus store:
/// `store = "graft.sqlite"`, `source = "conll"`, `train_split = "train"`, `dev_split = "dev"`,
/// `task = "label"`.
public struct TaskSpec: Sendable, Equatable {
    /// The spec file.
    public var path: String
    public var name: String
    public var kind: HeadKind
    public var description: String?
    /// The label set: classes in id order for classification, the expanded tag set for tagging,
    /// nil for QA.
    public var labels: LabelSet?
    public var scheme: TagScheme
    public var format: DataFormat
    public var invalidTags: InvalidTagPolicy
    public var train: DataSource?
    /// Several labelled training sources with sampling rates (`[data] train` given as an array);
    /// empty for one source (then ``train``, which is nil when this is not empty).
    public var trainSources: [TrainingSourceSpec] = []
    public var dev: DataSource?
    public var test: DataSource?
    /// The base model directory (nil: the command line must give one).
    public var baseModel: String?
    public var window: WindowOptions
    /// QA: the longest answer in tokens.
    public var maxAnswerLength: Int
    public var training: TrainingOptions
    /// Sequence classification on BERT: how the sentence vector is pooled (`model.pooling`:
    /// `"cls"` = `[CLS]` through the pooler as HuggingFace, `"mean"` = masked mean of the last
    /// hidden states); nil: the model's own (HuggingFace's pooler for a fresh head).
    public var pooling: BertForSequenceClassification.Pooling?
    /// Unlabelled target-domain text for domain adaptation (`[target]`), nil without one.
    public var target: TargetDomain?
    /// The head sits on the output of the base model's first `fromLayer` layers (`model.from_layer`):
    /// the layers above are cut off before fine-tuning (``ModelSurgery``), so they are neither run
    /// nor saved; nil: all layers.
    public var fromLayer: Int? = nil
    /// Tagging: how tag sequences are decoded (`model.decoding`).
    public var decoding: TagDecoding = .viterbi
}

/// How a tagger turns per-word tag probabilities into tags; both give only valid sequences.
public enum TagDecoding: String, Sendable, Equatable, CaseIterable {
    /// The most probable valid sequence (Viterbi over the scheme's allowed transitions).
    case viterbi
    /// Each word's most probable tag, then only the entities seqeval's strict mode reads from
    /// those tags are kept (an `I-X` that cannot continue an entity becomes `O`): the entities
    /// transformers' argmax predictions score as under `seqeval` strict IOB2.
    case greedy
}
