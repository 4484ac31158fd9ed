/// GraftModels: transformer language models on ``GraftEngine`` layers, and model directories.
///
/// - ``BertModel``: the BERT encoder (word + position + segment embeddings, LayerNorm, post-LN
///   ``TransformerBlock``s with erf GELU, key padding masks, optional pooler), with HuggingFace
///   `BertModel` tensor names, so real checkpoints load by name.
/// - ``BertForMaskedLM``: the encoder plus the masked-LM head (dense + GELU + LayerNorm +
///   decoder tied to the word embeddings, with its own bias). With
///   ``BertForMaskedLM/maskedPositionsOnly`` the head runs only on the rows that carry a label.
/// - ``GPTForCausalLM``: a GPT-2 style decoder (learned positions, pre-LN ``GPT2Block``s with
///   causal attention, final LayerNorm, LM head tied to the token embeddings) and sampling
///   (``Sampler``: greedy, temperature, top-k, top-p).
/// - ``ModelConfig`` (`Codable`, with presets) and ``ModelDirectory``: a model directory is
///   `config.json` (HuggingFace `BertConfig` / `GPT2Config` keys plus `graft_kind`),
///   `model.safetensors` (HuggingFace tensor names) and `tokenizer.json`; HuggingFace BERT and
///   GPT-2 directories load directly, and ``ModelDirectory/export(_:tokenizer:to:)`` writes the
///   HuggingFace layout back.
/// - ``SentenceEmbedder``: mean-pooled, L2-normalised sentence embeddings (sentence-transformers).
/// - Task heads (`Heads/`), HuggingFace's classes and tensor names: ``BertForSequenceClassification``
///   (pooler or mean pooling), ``BertForTokenClassification``, ``BertForQuestionAnswering``,
///   ``GPT2ForSequenceClassification``, ``GPT2ForTokenClassification``; each has `logits` for
///   inference, `loss` + `backward(scale:)` for training, and ``ParameterGroup``s (embeddings,
///   layers, head) for freezing and per-group learning rates.
///
/// Training uses the ``LanguageModel`` protocol: `loss(batch, training:)` runs the forward pass
/// and keeps activations, `backward(scale:)` accumulates gradients into the model's one flat
/// ``ParameterStore``, and any engine optimizer steps that store.
import GraftEngine

/// Errors of the models layer. Messages name the file (or batch field) and the problem.
public enum ModelError: Error, Equatable, CustomStringConvertible {
    /// A file the model directory needs is absent.
    case missingFile(String)
    /// `config.json` is unreadable, malformed or describes an unsupported model.
    case badConfig(file: String, problem: String)
    /// The weights file does not fit the configuration (missing, unexpected or misshapen tensors).
    case badWeights(file: String, problem: String)
    /// The tokenizer does not fit the model, or could not be read.
    case badTokenizer(file: String, problem: String)
    /// A batch whose arrays or values do not fit the model.
    case invalidBatch(String)
    /// An argument outside its range (sampling options, lengths).
    case invalidArgument(String)
    /// Writing or reading failed at the operating-system level.
    case io(file: String, problem: String)
    /// Training met a gradient (or loss) that is not a finite number; the update was not applied.
    case diverged(step: Int, detail: String)

    public var description: String {
        switch self {
        case .missingFile(let f): return "\(f): no such file"
        case .badConfig(let f, let p): return "\(f): \(p)"
        case .badWeights(let f, let p): return "\(f): \(p)"
        case .badTokenizer(let f, let p): return "\(f): \(p)"
        case .invalidBatch(let s): return "invalid batch: \(s)"
        case .invalidArgument(let s): return "invalid argument: \(s)"
        case .io(let f, let p): return "\(f): \(p)"
        case .diverged(let step, let detail): return "training diverged at update \(step): \(detail)"
        }
    }
}
