import Foundation
import GraftCorpus
import GraftEngine
import GraftModels
import GraftSupport
import GraftTokenizers

/// How fine-tuning adapts to the target domain of a spec's `[target]` section
/// (`graft finetune --adapt`, spec `train.adapt`).
public enum AdaptationMethod: String, Sendable, Equatable, Codable, CaseIterable {
    /// Source data only.
    case none
    /// Domain-adversarial training (DANN, Ganin et al. 2016): ``DomainAdversary``.
    case adversarial
    /// Source examples weighted by how target-like they are: ``InstanceWeighting``.
    case weighting
}

/// Domain-adaptation settings of a fine-tuning run.
public struct AdaptationOptions: Sendable, Equatable, Codable {
    public var method = AdaptationMethod.none
    /// Adversarial: the largest weight `λ_max` of the reversed domain gradient (`--adapt-weight`).
    /// 0.1 by default: the fine-tuned encoder starts from pretrained features that a full-weight
    /// adversary (Ganin et al. train from scratch with 1) can pull far from the task.
    public var weight: Float = 0.1

    public init(method: AdaptationMethod = .none, weight: Float = 0.1) {
        self.method = method
        self.weight = weight
    }
}

// MARK: - Target text

extension TargetDomain {
    /// More than this share of a target's tokens being the tokenizer's unknown token means the
    /// text is written in an alphabet the model's vocabulary does not cover (another language's
    /// script, another tokenizer's ids): adapting to it would adapt to `[UNK]`.
    public static let maxUnknownShare = 0.5

    /// The target's texts, in order: non-empty lines (`lines`), sentences (`conll`, tags
    /// ignored: any tag names, invalid sequences read leniently) or documents (`store`). None is
    /// an error naming the file.
    public func texts() throws -> [TextExample] {
        var out: [TextExample] = []
        let origin: String
        switch text {
        case .lines(let path):
            origin = path
            for (i, line) in try readLines(path).enumerated() where !line.allSatisfy(\.isWhitespace) {
                out.append(TextExample(id: "\(path):\(i + 1)", text: String(line), label: nil))
            }
        case .conll(let path):
            origin = path
            out = try CoNLLReader.read(path, labels: nil, scheme: .iob2, invalidTags: .repair)
                .map { TextExample(id: $0.id, text: $0.text, label: nil) }
        case .store(let path, let selection):
            origin = selection.describe(path)
            guard FileManager.default.fileExists(atPath: path) else { throw TaskError.unreadable(file: path, reason: "no such corpus store") }
            let store = try CorpusStore(path: path)
            let filter = try selection.filter(store)
            for (i, t) in try store.documentTexts(filter).all().enumerated() where !t.allSatisfy(\.isWhitespace) {
                out.append(TextExample(id: "\(origin) document \(i + 1)", text: t, label: nil))
            }
        }
        guard !out.isEmpty else {
            throw TaskError.malformed(TaskLocation(file: origin, item: "target.text"), reason: "the target text is empty: no non-empty text to adapt to")
        }
        return out
    }

    /// The model windows of target texts (unlabelled), after checking that at most
    /// ``maxUnknownShare`` of their tokens are the tokenizer's unknown token.
    public static func features(_ texts: [TextExample], tokenizer: Tokenizer, window: WindowOptions, origin: String) throws -> [TaskFeature] {
        var features: [TaskFeature] = []
        for (i, t) in texts.enumerated() {
            features += try FeatureBuilder.textClassification(t, index: i, tokenizer: tokenizer, options: window)
                .map { TaskFeature(window: $0, target: nil) }
        }
        let unknownToken: String?
        switch tokenizer.model {
        case .wordPiece(let w): unknownToken = w.unkToken
        case .bpe(let b): unknownToken = b.unkToken
        }
        if let unk = unknownToken.flatMap(tokenizer.id).map(Int32.init) {
            var tokens = 0, unknown = 0
            for f in features {
                for (id, special) in zip(f.window.inputIds, f.window.specialTokensMask) where special == 0 {
                    tokens += 1
                    if id == unk { unknown += 1 }
                }
            }
            let share = Double(unknown) / Double(max(tokens, 1))
            guard share <= maxUnknownShare else {
                throw TaskError.malformed(TaskLocation(file: origin, item: "target.text"),
                                          reason: String(format: "%.1f%% of the target's %d tokens are", share * 100, tokens)
                                              + " the tokenizer's unknown token \(unknownToken ?? "")"
                                              + String(format: " (at most %.0f%% allowed): the text is in an alphabet the model's vocabulary does not cover", maxUnknownShare * 100))
            }
        }
        return features
    }
}

// MARK: - Multi-source sampling

/// Draws training examples from several sources at set rates (multi-source transfer).
///
/// Each draw picks source `s` with probability `rates[s] / Σ rates` (one uniform number of a
/// seeded xoshiro256** generator against the cumulative rates), then the next element of that
/// source's own order: a seeded permutation of its elements, reshuffled each time it is used up,
/// so within a source every element comes once before any comes twice.
public struct MultiSourceSampler: Sendable {
    /// Elements per source.
    public let counts: [Int]
    /// The normalised rates (sum 1).
    public let rates: [Double]

    public init(counts: [Int], rates: [Double]) throws {
        guard counts.count == rates.count, !counts.isEmpty else {
            throw TaskError.invalidArgument("multi-source sampling: \(counts.count) sources but \(rates.count) rates")
        }
        for (i, c) in counts.enumerated() where c <= 0 {
            throw TaskError.invalidArgument("multi-source sampling: source \(i + 1) has no training windows")
        }
        guard rates.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw TaskError.invalidArgument("multi-source sampling: rates must be positive numbers, got \(rates)")
        }
        let total = rates.reduce(0, +)
        self.counts = counts
        self.rates = rates.map { $0 / total }
    }

    /// `n` draws as (source, element of that source), the same for the same seed.
    public func draws(_ n: Int, seed: UInt64) -> [(source: Int, element: Int)] {
        var rng = RNG(seed: seed)
        var cumulative: [Double] = [], sum = 0.0
        for r in rates { sum += r; cumulative.append(sum) }
        var orders = counts.map { Array(0..<$0) }
        var cursors = [Int](repeating: 0, count: counts.count)
        for s in orders.indices { orders[s].shuffle(using: &rng) }
        var out: [(source: Int, element: Int)] = []
        out.reserveCapacity(n)
        for _ in 0..<n {
            let u = Double(rng.next() >> 11) * 0x1p-53
            let s = cumulative.firstIndex { u < $0 } ?? counts.count - 1
            if cursors[s] == counts[s] {
                orders[s].shuffle(using: &rng)
                cursors[s] = 0
            }
            out.append((s, orders[s][cursors[s]]))
            cursors[s] += 1
        }
        return out
    }
}

// MARK: - Instance weighting

/// Instance weighting by a domain classifier (importance weighting for covariate shift): an
/// L2-regularised logistic regression on sentence embeddings tells target (1) from source (0);
/// each source example gets `w = p / (1 - p)`, the odds that it is target text, i.e. an estimate
/// of the density ratio `p_target(x) / p_source(x)`.
///
/// The classifier is deterministic: the two classes are weighted equally (each class's mean
/// log-loss, so the prior odds are 1 whatever the set sizes), the penalty is
/// `λ/2 |w|²` (`λ` = ``l2``, the bias unpenalised), and it is fitted by full-batch gradient
/// descent from zero for ``iterations`` steps of size `1 / (1 + λ)` (the loss's curvature is at
/// most `1 + λ` for unit-length embeddings), summed in a fixed order. Identical source and target
/// sets give a zero gradient at the start, so every weight is exactly 1. The odds are clipped
/// to [``minWeight``, ``maxWeight``] (a few near-certain examples must not dominate the loss),
/// then normalised to mean 1 over the source examples.
public enum InstanceWeighting {
    public static let l2 = 0.01
    public static let iterations = 300
    public static let minWeight = 0.1
    public static let maxWeight = 10.0

    /// The fitted weights and bias of the domain classifier on `source` `[n_s][C]` and `target`
    /// `[n_t][C]` embeddings.
    public static func fit(source: [[Float]], target: [[Float]]) throws -> (weights: [Double], bias: Double) {
        guard let c = source.first?.count, !target.isEmpty else {
            throw TaskError.invalidArgument("instance weighting needs source and target examples (\(source.count) and \(target.count))")
        }
        guard (source + target).allSatisfy({ $0.count == c }) else { throw TaskError.invalidArgument("instance weighting: embeddings of different sizes") }
        var w = [Double](repeating: 0, count: c), b = 0.0
        let step = 1 / (1 + l2)
        // The gradient of one class's mean log-loss: Σ (p - y) x / n_class, summed in row order.
        // Each class is summed on its own, so identical sets give exactly opposite sums at w = 0.
        func classGradient(_ rows: [[Float]], label: Double) -> (w: [Double], b: Double) {
            var g = [Double](repeating: 0, count: c), gb = 0.0
            let scale = 1 / Double(rows.count)
            for x in rows {
                let r = (sigmoid(logit(x, w, b)) - label) * scale
                gb += r
                for j in 0..<c { g[j] += r * Double(x[j]) }
            }
            return (g, gb)
        }
        for _ in 0..<iterations {
            let gs = classGradient(source, label: 0), gt = classGradient(target, label: 1)
            for j in 0..<c { w[j] -= step * ((gs.w[j] + gt.w[j]) + l2 * w[j]) }
            b -= step * (gs.b + gt.b)
        }
        return (w, b)
    }

    /// `[n_s]` weights of the source examples: the odds `p / (1 - p)` of the classifier fitted
    /// on `source` and `target` embeddings, clipped to [``minWeight``, ``maxWeight``], then
    /// normalised to mean 1.
    public static func weights(source: [[Float]], target: [[Float]]) throws -> [Float] {
        let (w, b) = try fit(source: source, target: target)
        let odds = source.map { min(max(exp(logit($0, w, b)), minWeight), maxWeight) }   // p/(1-p) = e^z
        let mean = odds.reduce(0, +) / Double(odds.count)
        return odds.map { Float($0 / mean) }
    }

    static func logit(_ x: [Float], _ w: [Double], _ b: Double) -> Double {
        var z = b
        for j in 0..<w.count { z += w[j] * Double(x[j]) }
        return z
    }

    static func sigmoid(_ z: Double) -> Double { z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z)) }
}

// MARK: - Domain-adversarial training

/// The domain classifier of domain-adversarial training (DANN: Ganin et al., *Domain-Adversarial
/// Training of Neural Networks*, JMLR 2016) on a BERT head model's encoder.
///
/// `mean-pool(h) [B, C] → GradientReversal(λ) → Linear(C, 100) → tanh → Linear(100, 2)` with
/// cross-entropy against the domain (0 source, 1 target). Its parameters are declared in the
/// model's own ``ParameterStore`` under ``ModelDirectory/trainingOnlyPrefix``
/// (`graft_training.domain_classifier.*`), so the trainer's AdamW updates them and checkpoints'
/// training state carries them, while model directories (`best/`, checkpoints' model) leave
/// them out: the classifier is needed for training only.
///
/// For each source micro-batch the task's backward comes first; then ``train(source:scale:)``
/// runs the encoder on the source batch and on the next target batch, each through the
/// classifier, and backward: the classifier descends the domain loss while the reversal makes
/// the encoder ascend it, weighted by `λ_p = λ_max (2 / (1 + e^{-10 p}) - 1)`, `p` the share of
/// the run's micro-batches done (Ganin et al.'s schedule: 0 at the start, → λ_max).
public final class DomainAdversary {
    public static let hiddenSize = 100
    public static let parameterPrefix = ModelDirectory.trainingOnlyPrefix + "domain_classifier."
    let model: any EncoderHeadModel
    let pool = MeanPool()
    let reversal = GradientReversal()
    let dense: Linear
    let activation = Tanh()
    let output: Linear
    let crossEntropy = LabelCrossEntropy()
    /// The target windows (unlabelled).
    let target: [TaskFeature]
    let padID: Int32
    let seed: UInt64
    /// λ_max.
    public let maxWeight: Float
    /// Micro-batches the whole run trains (the schedule's `p` is ``batches`` over this).
    public var plannedBatches: Int
    /// Micro-batches trained so far (saved with checkpoints).
    public internal(set) var batches = 0
    /// The domain loss (source + target) of the last ``train(source:scale:)``.
    public private(set) var lastLoss: Float = 0
    private var permutation: (cycle: Int, order: [Int])?

    public init(model: any EncoderHeadModel, target: [TaskFeature], maxWeight: Float, plannedBatches: Int, padID: Int32, seed: UInt64) throws {
        guard !target.isEmpty else { throw TaskError.invalidArgument("domain-adversarial training needs target windows") }
        guard maxWeight >= 0, maxWeight.isFinite else { throw TaskError.invalidArgument("the adversarial weight must be a number ≥ 0, got \(maxWeight)") }
        self.model = model
        self.target = target
        self.maxWeight = maxWeight
        self.plannedBatches = max(plannedBatches, 1)
        self.padID = padID
        self.seed = seed
        let c = model.config.hidden
        dense = try Linear(model.store, name: Self.parameterPrefix + "dense", inFeatures: c, outFeatures: Self.hiddenSize)
        output = try Linear(model.store, name: Self.parameterPrefix + "out", inFeatures: Self.hiddenSize, outFeatures: 2)
    }

    /// Ganin et al.'s weight at progress `p` ∈ [0, 1]: `λ_max (2 / (1 + e^{-10 p}) - 1)`.
    public static func weight(progress p: Double, maxWeight: Float) -> Float {
        Float(Double(maxWeight) * (2 / (1 + exp(-10 * min(max(p, 0), 1))) - 1))
    }

    /// The current λ.
    public var currentWeight: Float { Self.weight(progress: Double(batches) / Double(plannedBatches), maxWeight: maxWeight) }

    /// The `k`-th target batch of `size` windows: consecutive slices of seeded permutations of the
    /// target windows (a new permutation per pass), a function of `k` alone (so a resumed run
    /// draws the same batches).
    func targetBatch(_ k: Int, size: Int) -> FeatureBatch {
        var rows: [Int] = []
        for position in (k * size)..<((k + 1) * size) {
            let cycle = position / target.count
            if permutation?.cycle != cycle {
                var rng = SplitMix64(seed: SplitMix64.mix(seed &+ UInt64(cycle)))
                var order = Array(target.indices)
                order.shuffle(using: &rng)
                permutation = (cycle, order)
            }
            rows.append(permutation!.order[position % target.count])
        }
        return FeatureBatch(target, rows: rows, padID: padID)
    }

    /// Forward of the domain classifier on a batch (encoder included): `[B, 2]` logits, the
    /// mean cross-entropy against `domain` and whether the loss has a backward.
    func domainLoss(_ batch: FeatureBatch, domain: Int32, training: Bool) throws -> Float {
        let input = ModelTaskHead.input(batch)
        let h = try model.hiddenStates(input, training: training)
        let mask = Tensor(shape: [batch.batchSize, batch.length], values: batch.attentionMask.map(Float.init))
        let z = try output.forward(activation.forward(try dense.forward(reversal.forward(try pool.forward(h, mask: mask)))))
        return try crossEntropy.forward(z, targets: [Int32](repeating: domain, count: batch.batchSize))
    }

    /// Backward of the last ``domainLoss(_:domain:training:)``: `scale` × the classifier's
    /// gradient into its parameters, `-λ scale` × it into the encoder's.
    func domainBackward(scale: Float) throws {
        let dz = try crossEntropy.backward(scale: scale)
        let dPooled = try reversal.backward(try dense.backward(try activation.backward(try output.backward(dz))))
        try model.hiddenStatesBackward(try pool.backward(dPooled))
    }

    /// One adversarial step after the task's backward on `source`: the domain loss on `source`
    /// (domain 0) and on the next target batch (domain 1), each backward scaled by `scale`, with
    /// the reversal at the scheduled λ (``currentWeight``, or `lambda` when given).
    @discardableResult
    public func train(source: FeatureBatch, scale: Float, lambda: Float? = nil) throws -> Float {
        reversal.lambda = lambda ?? currentWeight
        let sourceLoss = try domainLoss(source, domain: 0, training: true)
        try domainBackward(scale: scale)
        let targetLoss = try domainLoss(targetBatch(batches, size: source.batchSize), domain: 1, training: true)
        try domainBackward(scale: scale)
        batches += 1
        lastLoss = sourceLoss + targetLoss
        return lastLoss
    }
}
