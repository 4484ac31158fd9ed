import GraftSupport
import Foundation
import GraftEngine
import GraftTokenizers

/// Settings of the language-modelling objectives (the trainer's are ``OptimizationOptions``).
public struct LanguageModelingOptions: Codable, Sendable, Equatable {
    /// Tokens per sequence (BERT: `[CLS]`, a block of `seqLen - 2` ids, `[SEP]`).
    public var seqLen = 128
    /// Masked LM: share of positions predicted.
    public var maskProbability: Float = 0.15
    /// Masked LM: mask all pieces of a word together.
    public var wholeWordMask = false

    public init() {}

    /// Ids per block taken from the corpus for one sequence: `seqLen - 2` for BERT (room for
    /// `[CLS]` and `[SEP]`), `seqLen + 1` for GPT (inputs and the shifted targets).
    public func blockLength(for kind: ModelKind) -> Int { kind == .bert ? seqLen - 2 : seqLen + 1 }
}

/// The model and data of a language-modelling objective.
public struct LanguageModelingSetup {
    public var model: LanguageModel
    public var tokenizer: Tokenizer
    public var options: LanguageModelingOptions
    /// Seeds the corruption (normally ``OptimizationOptions/seed``) and the evaluation's fixed corruption.
    public var seed: UInt64
    /// Training blocks of an epoch, each ``LanguageModelingOptions/blockLength(for:)`` ids.
    public var trainBlocks: (_ epoch: Int) throws -> ExampleStream<[Int32]>
    /// Dev blocks (same length), evaluated in order.
    public var devBlocks: [[Int32]]
    /// The exact `tokenizer.json` bytes saved with the model (nil: the tokenizer's own
    /// serialization); continued pretraining keeps the start model's file.
    public var tokenizerFile: [UInt8]?
    /// Training blocks in an epoch, when counted (what `--epochs` needs); nil: unknown.
    public var blocksPerEpoch: Int?
    /// What the training blocks are made from, as the caller knows it (`graft pretrain`: the
    /// corpus store's digest of the train split's documents and token cache); part of the
    /// objective's ``TrainingObjective/dataDigest`` with the dev blocks. Empty: the dev blocks only.
    public var trainDigest: String

    /// Checks the model family and the sequence length.
    init(model: LanguageModel, tokenizer: Tokenizer, options: LanguageModelingOptions, seed: UInt64,
         trainBlocks: @escaping (_ epoch: Int) throws -> ExampleStream<[Int32]>, devBlocks: [[Int32]],
         tokenizerFile: [UInt8]?, blocksPerEpoch: Int?, trainDigest: String, kind: ModelKind, objective: String, minimumLength: Int) throws {
        guard model.config.kind == kind else {
            throw ModelError.invalidArgument("\(objective) pretraining needs a \(kind.rawValue) model, not \(model.config.kind.rawValue)")
        }
        guard options.seqLen >= minimumLength else {
            throw ModelError.invalidArgument("sequence length \(options.seqLen) is below \(minimumLength)")
        }
        guard options.seqLen <= model.config.maxPositions else {
            throw ModelError.invalidArgument("sequence length \(options.seqLen) exceeds the model's \(model.config.maxPositions) positions")
        }
        self.model = model; self.tokenizer = tokenizer; self.options = options; self.seed = seed
        self.trainBlocks = trainBlocks; self.devBlocks = devBlocks; self.tokenizerFile = tokenizerFile
        self.blocksPerEpoch = blocksPerEpoch
        self.trainDigest = trainDigest
    }

    /// The training data's digest (``trainDigest``) and the dev blocks', combined (computed
    /// on each read; the trainer reads it once).
    public var dataDigest: String {
        var digest = DataDigest()
        digest.add(trainDigest)
        digest.add(devBlocks.count)
        for block in devBlocks { digest.add(block) }
        return digest.hex
    }
}

/// What the two language-modelling objectives share: packed token blocks as examples, a
/// ``LanguageModel`` with its loss, evaluation on dev blocks with fixed corruption, and the
/// model directory they save.
public protocol LanguageModelingObjective: TrainingObjective where Example == [Int32], Batch == LMBatch {
    var setup: LanguageModelingSetup { get }
    /// Builds a batch from blocks, drawing any corruption from `rng`.
    func makeBatch(_ blocks: [[Int32]], rng: inout RNG) -> LMBatch
}

extension LanguageModelingObjective {
    public var model: LanguageModel { setup.model }
    public var tokenizer: Tokenizer { setup.tokenizer }
    public var options: LanguageModelingOptions { setup.options }
    public var seed: UInt64 { setup.seed }
    public var devBlocks: [[Int32]] { setup.devBlocks }
    public var store: ParameterStore { model.store }
    public var dropoutRNG: SharedRNG? { model.rng }
    public var examplesPerEpoch: Int? { setup.blocksPerEpoch }
    public var dataDigest: String { setup.dataDigest }
    /// Dev loss (mean cross-entropy over predicted positions), lower is better.
    public var mainMetric: MainMetric { MainMetric("loss", higherIsBetter: false) }
    /// The options as JSON with sorted keys (the same text for the same options; the bytes
    /// JSONEncoder wrote into earlier checkpoints, which `--resume` compares).
    public var settings: String { (try? JSONValue(encoding: options, sortedKeys: true).serialized()) ?? "" }

    public func examples(epoch: Int) throws -> ExampleStream<[Int32]> { try setup.trainBlocks(epoch) }
    public func tokenCount(_ batch: LMBatch) -> Int { batch.batch * batch.seqLen }

    public func loss(_ batch: LMBatch, training: Bool) throws -> TrainingLoss {
        let r = try model.loss(batch, training: training)
        return TrainingLoss(loss: r.loss, correct: r.correct, counted: r.counted)
    }

    public func backward(scale: Float) throws { try model.backward(scale: scale) }

    /// `loss` (mean over predicted positions), `accuracy` and `perplexity` over the dev blocks
    /// (fixed masking, no dropout).
    public func evaluate(batchSize: Int, maxBatches: Int) throws -> [String: Double]? {
        guard !devBlocks.isEmpty else { return nil }
        var rng = RNG(seed: seed ^ 0xDE5E_7E5E)
        var lossSum = 0.0, counted = 0, correct = 0
        var start = 0, batches = 0
        while start < devBlocks.count && (maxBatches == 0 || batches < maxBatches) {
            let blocks = Array(devBlocks[start..<min(start + batchSize, devBlocks.count)])
            let r = try model.loss(makeBatch(blocks, rng: &rng), training: false)
            lossSum += Double(r.loss) * Double(r.counted)
            counted += r.counted
            correct += r.correct
            start += batchSize
            batches += 1
        }
        guard counted > 0 else { return nil }
        let loss = Float(lossSum / Double(counted))
        return ["loss": Double(loss), "accuracy": Double(Float(correct) / Float(counted)), "perplexity": Foundation.exp(Double(loss))]
    }

    public func save(to directory: String) throws {
        try ModelDirectory.save(model, tokenizer: tokenizer, tokenizerFile: setup.tokenizerFile, to: directory)
    }
}

/// BERT masked-LM pretraining on packed blocks: each sequence is `[CLS] block [SEP]`, corrupted
/// by ``MLMMasker`` (15% of positions: 80% `[MASK]`, 10% random, 10% kept) with the objective's
/// own masking generator, saved with every checkpoint.
public final class MaskedLMObjective: LanguageModelingObjective {
    public let setup: LanguageModelingSetup
    public var name: String { "masked-lm" }
    let masker: MLMMasker
    let clsId: Int32
    let sepId: Int32
    var maskRNG: RNG

    /// `seed` (normally ``OptimizationOptions/seed``) seeds the masking and the evaluation's fixed masking.
    public init(model: LanguageModel, tokenizer: Tokenizer, options: LanguageModelingOptions, seed: UInt64,
                trainBlocks: @escaping (_ epoch: Int) throws -> ExampleStream<[Int32]>, devBlocks: [[Int32]],
                tokenizerFile: [UInt8]? = nil, blocksPerEpoch: Int? = nil, trainDigest: String = "") throws {
        setup = try LanguageModelingSetup(model: model, tokenizer: tokenizer, options: options, seed: seed, trainBlocks: trainBlocks,
                                          devBlocks: devBlocks, tokenizerFile: tokenizerFile, blocksPerEpoch: blocksPerEpoch, trainDigest: trainDigest, kind: .bert, objective: "masked-LM", minimumLength: 3)
        masker = try MLMMasker(tokenizer: tokenizer, probability: options.maskProbability, wholeWord: options.wholeWordMask)
        guard let cls = tokenizer.id("[CLS]"), let sep = tokenizer.id("[SEP]") else {
            throw ModelError.invalidArgument("a BERT tokenizer needs [CLS] and [SEP]")
        }
        clsId = Int32(cls); sepId = Int32(sep)
        maskRNG = RNG(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ 17)
    }

    public func makeBatch(_ blocks: [[Int32]], rng: inout RNG) -> LMBatch {
        let b = blocks.count, t = options.seqLen
        var ids = [Int32]()
        ids.reserveCapacity(b * t)
        for block in blocks {
            ids.append(clsId)
            ids.append(contentsOf: block.prefix(t - 2))
            ids.append(sepId)
        }
        let labels = masker.mask(&ids, rng: &rng)
        return LMBatch(inputIds: ids, tokenTypeIds: [Int32](repeating: 0, count: b * t),
                       attentionMask: [Int32](repeating: 1, count: b * t), labels: labels, batch: b, seqLen: t)
    }

    public func trainingBatch(_ examples: [[Int32]]) throws -> LMBatch { makeBatch(examples, rng: &maskRNG) }

    public var checkpointState: [String: String] { ["mask_rng": maskRNG.stateWords.map(String.init).joined(separator: ",")] }

    public func restore(checkpointState: [String: String]) throws {
        guard let words = checkpointState["mask_rng"]?.split(separator: ",").compactMap({ UInt64($0) }) else {
            throw ModelError.invalidArgument("the training state lacks the masking generator (objective.mask_rng)")
        }
        maskRNG = try RNG(state: words)
    }
}

/// GPT causal-LM pretraining on packed blocks of `seqLen + 1` ids: inputs are the first
/// `seqLen`, targets the next token at every position.
public final class CausalLMObjective: LanguageModelingObjective {
    public let setup: LanguageModelingSetup
    public var name: String { "causal-lm" }

    public init(model: LanguageModel, tokenizer: Tokenizer, options: LanguageModelingOptions, seed: UInt64,
                trainBlocks: @escaping (_ epoch: Int) throws -> ExampleStream<[Int32]>, devBlocks: [[Int32]],
                tokenizerFile: [UInt8]? = nil, blocksPerEpoch: Int? = nil, trainDigest: String = "") throws {
        setup = try LanguageModelingSetup(model: model, tokenizer: tokenizer, options: options, seed: seed, trainBlocks: trainBlocks,
                                          devBlocks: devBlocks, tokenizerFile: tokenizerFile, blocksPerEpoch: blocksPerEpoch, trainDigest: trainDigest, kind: .gpt, objective: "causal-LM", minimumLength: 1)
    }

    public func makeBatch(_ blocks: [[Int32]], rng: inout RNG) -> LMBatch {
        let b = blocks.count, t = options.seqLen
        var ids = [Int32](), labels = [Int32]()
        ids.reserveCapacity(b * t)
        labels.reserveCapacity(b * t)
        for block in blocks {
            ids.append(contentsOf: block.prefix(t))
            labels.append(contentsOf: block.dropFirst().prefix(t))
        }
        return LMBatch(inputIds: ids, tokenTypeIds: nil, attentionMask: nil, labels: labels, batch: b, seqLen: t)
    }

    public func trainingBatch(_ examples: [[Int32]]) throws -> LMBatch {
        var unused = RNG(seed: 0)
        return makeBatch(examples, rng: &unused)
    }
}
