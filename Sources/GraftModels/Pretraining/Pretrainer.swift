import GraftSupport
import Foundation
import GraftEngine
import GraftTokenizers

/// Settings of a pretraining run (stored with every checkpoint).
public struct PretrainingOptions: Codable, Sendable, Equatable {
    /// Sequences per micro-batch.
    public var batchSize = 32
    /// Tokens per sequence (BERT: `[CLS]`, a block of `seqLen - 2` ids, `[SEP]`).
    public var seqLen = 128
    /// Optimizer updates.
    public var steps = 1000
    /// Micro-batches per update.
    public var accumulation = 1
    public var learningRate: Float = 5e-4
    public var warmupSteps = 100
    /// `linear`, `cosine` or `constant` after warm-up.
    public var decay = "linear"
    public var weightDecay: Float = 0.01
    /// Clip the global gradient norm to this (0: no clipping).
    public var clipNorm: Float = 1.0
    /// Evaluate on the dev blocks every this many updates (0: only at the end).
    public var evalEvery = 200
    /// Dev batches per evaluation.
    public var evalBatches = 8
    /// Write a checkpoint every this many updates (0: only at the end).
    public var checkpointEvery = 200
    /// Checkpoints kept besides the best model (older ones are deleted).
    public var keepCheckpoints = 2
    public var seed: UInt64 = 1
    /// Masked-LM: share of positions predicted, and whether whole words are masked together.
    public var maskProbability: Float = 0.15
    public var wholeWordMask = false

    public init() {}

    /// Ids per block taken from the corpus for one sequence of the model.
    public func blockLength(for kind: ModelKind) -> Int { kind == .bert ? seqLen - 2 : seqLen + 1 }
}

/// What the trainer reports after each update.
public struct PretrainingStep: Sendable {
    public var step: Int
    public var totalSteps: Int
    public var loss: Float
    /// Share of predicted positions whose argmax is right.
    public var accuracy: Float
    public var learningRate: Float
    public var gradNorm: Double
    /// Training tokens per second over this update.
    public var tokensPerSecond: Double
    public var tokensSeen: Int
}

/// A dev-set evaluation.
public struct PretrainingEvaluation: Sendable {
    public var step: Int
    public var loss: Float
    public var accuracy: Float
    /// `exp(loss)`.
    public var perplexity: Double { Foundation.exp(Double(loss)) }
    public var isBest: Bool
}

/// Where a run ended.
public struct PretrainingSummary: Sendable {
    public var steps: Int
    public var interrupted: Bool
    public var lastLoss: Float?
    public var bestDevLoss: Float?
    public var checkpoint: String?
    public var seconds: Double
}

/// Self-supervised pretraining of a ``LanguageModel`` on packed token blocks: masked LM for
/// BERT, next-token prediction for GPT. AdamW with warm-up and decay, clipping, gradient
/// accumulation, periodic dev evaluation, and checkpoints from which a run continues with
/// bit-identical results.
///
/// Layout of `outputDirectory`:
/// - `checkpoints/step-NNNNNNN/`: a model directory (config, weights, tokenizer) plus
///   `training-state.safetensors` (weights, AdamW moments, step, schedule, RNG states and data
///   position); each is written under a temporary name and renamed when complete.
/// - `checkpoints/LATEST`: the name of the newest complete checkpoint (replaced atomically).
/// - `best/`: the model with the lowest dev loss so far.
public final class Pretrainer {
    public let model: LanguageModel
    public let tokenizer: Tokenizer
    public let options: PretrainingOptions
    public let outputDirectory: URL
    /// Training blocks of an epoch, each `options.blockLength(for:)` ids, in the epoch's order:
    /// each call of the returned closure gives the next block, nil at the end of the epoch; an
    /// error it throws (e.g. a database error mid-epoch) stops training.
    public let trainBlocks: (_ epoch: Int) throws -> () throws -> [Int32]?
    /// Dev blocks (same length), evaluated in order.
    public let devBlocks: [[Int32]]
    /// Called after every update.
    public var onStep: ((PretrainingStep) -> Void)?
    /// Called after every evaluation.
    public var onEvaluation: ((PretrainingEvaluation) -> Void)?
    /// Called after every checkpoint with its directory.
    public var onCheckpoint: ((String) -> Void)?
    /// Polled after every update; when it returns true, a checkpoint is written and `run` returns.
    public var shouldStop: () -> Bool = { false }

    let optimizer: AdamW
    let schedule: LRSchedule
    let masker: MLMMasker?
    let clsId: Int32
    let sepId: Int32
    var maskRNG: RNG
    var epoch = 0
    var blocksUsed = 0
    var tokensSeen = 0
    var bestDevLoss: Float?
    var iterator: (() throws -> [Int32]?)?

    public init(model: LanguageModel, tokenizer: Tokenizer, options: PretrainingOptions, outputDirectory: String,
                trainBlocks: @escaping (_ epoch: Int) throws -> () throws -> [Int32]?, devBlocks: [[Int32]]) throws {
        self.model = model
        self.tokenizer = tokenizer
        self.options = options
        self.outputDirectory = URL(fileURLWithPath: outputDirectory)
        self.trainBlocks = trainBlocks
        self.devBlocks = devBlocks
        guard options.batchSize > 0, options.seqLen > 2, options.steps > 0, options.accumulation > 0 else {
            throw ModelError.invalidArgument("batch size, steps and accumulation must be positive and the sequence longer than 2")
        }
        guard options.seqLen <= model.config.maxPositions else {
            throw ModelError.invalidArgument("sequence length \(options.seqLen) exceeds the model's \(model.config.maxPositions) positions")
        }
        guard let decay = LRSchedule.Decay(rawValue: options.decay) else {
            throw ModelError.invalidArgument("decay must be linear, cosine or constant, not \(options.decay)")
        }
        optimizer = AdamW(model.store, weightDecay: options.weightDecay)
        schedule = LRSchedule(baseLR: options.learningRate, warmupSteps: options.warmupSteps, totalSteps: options.steps, decay: decay)
        if model.config.kind == .bert {
            masker = try MLMMasker(tokenizer: tokenizer, probability: options.maskProbability, wholeWord: options.wholeWordMask)
            guard let cls = tokenizer.id("[CLS]"), let sep = tokenizer.id("[SEP]") else {
                throw ModelError.invalidArgument("a BERT tokenizer needs [CLS] and [SEP]")
            }
            clsId = Int32(cls); sepId = Int32(sep)
        } else {
            masker = nil
            clsId = -1; sepId = -1
        }
        maskRNG = RNG(seed: options.seed &* 0x9E37_79B9_7F4A_7C15 &+ 17)
    }

    // MARK: Batches

    /// Builds a model batch from `batchSize` blocks (masking with `rng` for BERT).
    func makeBatch(_ blocks: [[Int32]], rng: inout RNG) -> LMBatch {
        let b = blocks.count, t = options.seqLen
        var ids = [Int32](), labels = [Int32]()
        ids.reserveCapacity(b * t)
        switch model.config.kind {
        case .bert:
            for block in blocks {
                ids.append(clsId)
                ids.append(contentsOf: block.prefix(t - 2))
                ids.append(sepId)
            }
            labels = masker!.mask(&ids, rng: &rng)
            return LMBatch(inputIds: ids, tokenTypeIds: [Int32](repeating: 0, count: b * t),
                           attentionMask: [Int32](repeating: 1, count: b * t), labels: labels, batch: b, seqLen: t)
        case .gpt:
            labels.reserveCapacity(b * t)
            for block in blocks {
                ids.append(contentsOf: block.prefix(t))
                labels.append(contentsOf: block.dropFirst().prefix(t))
            }
            return LMBatch(inputIds: ids, tokenTypeIds: nil, attentionMask: nil, labels: labels, batch: b, seqLen: t)
        }
    }

    /// The next `batchSize` training blocks, moving to the next epoch when one runs out.
    func nextBlocks() throws -> [[Int32]] {
        var out: [[Int32]] = []
        out.reserveCapacity(options.batchSize)
        var emptyEpochs = 0
        while out.count < options.batchSize {
            if iterator == nil { iterator = try trainBlocks(epoch) }
            if let block = try iterator!() {
                out.append(block)
                blocksUsed += 1
                emptyEpochs = 0
            } else {
                if blocksUsed == 0 { emptyEpochs += 1 }
                guard emptyEpochs < 2 else {
                    throw ModelError.invalidArgument("the training data has no block of \(options.blockLength(for: model.config.kind)) tokens")
                }
                epoch += 1
                blocksUsed = 0
                iterator = nil
            }
        }
        return out
    }

    // MARK: Evaluation

    /// Mean loss and accuracy over the dev blocks (fixed masking, no dropout).
    public func evaluate() throws -> (loss: Float, accuracy: Float)? {
        guard !devBlocks.isEmpty else { return nil }
        var rng = RNG(seed: options.seed ^ 0xDE5E_7E5E)
        var lossSum = 0.0, counted = 0, correct = 0
        var start = 0
        var batches = 0
        while start < devBlocks.count && batches < options.evalBatches {
            let blocks = Array(devBlocks[start..<min(start + options.batchSize, devBlocks.count)])
            let r = try model.loss(makeBatch(blocks, rng: &rng), training: false)
            lossSum += Double(r.loss) * Double(r.counted)
            counted += r.counted
            correct += r.correct
            start += options.batchSize
            batches += 1
        }
        guard counted > 0 else { return nil }
        return (Float(lossSum / Double(counted)), Float(correct) / Float(counted))
    }

    // MARK: Training

    /// Trains until `options.steps` updates (or until ``shouldStop`` says so), continuing from
    /// the latest checkpoint when `resume` is true.
    @discardableResult
    public func run(resume: Bool = false) throws -> PretrainingSummary {
        let started = Date()
        if resume { try restoreLatest() }
        var lastLoss: Float?
        let tokensPerUpdate = options.batchSize * options.seqLen * options.accumulation
        var interrupted = false
        var lastCheckpoint: String?
        while optimizer.stepCount < options.steps {
            let t0 = DispatchTime.now().uptimeNanoseconds
            model.store.zeroGrads()
            var lossSum: Float = 0, correct = 0, counted = 0
            for _ in 0..<options.accumulation {
                let batch = makeBatch(try nextBlocks(), rng: &maskRNG)
                let r = try model.loss(batch, training: true)
                try model.backward(scale: 1 / Float(options.accumulation))
                lossSum += r.loss
                correct += r.correct
                counted += r.counted
            }
            let norm = options.clipNorm > 0 ? clipGradNorm(model.store, maxNorm: options.clipNorm) : model.store.gradNorm()
            let lr = schedule.lr(at: optimizer.stepCount)
            try optimizer.step(model.store, lr: lr)
            tokensSeen += tokensPerUpdate
            let loss = lossSum / Float(options.accumulation)
            lastLoss = loss
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            let step = optimizer.stepCount
            onStep?(PretrainingStep(step: step, totalSteps: options.steps, loss: loss,
                                    accuracy: counted > 0 ? Float(correct) / Float(counted) : 0, learningRate: lr,
                                    gradNorm: norm, tokensPerSecond: Double(tokensPerUpdate) / max(seconds, 1e-9),
                                    tokensSeen: tokensSeen))
            let finished = step == options.steps
            if (options.evalEvery > 0 && step % options.evalEvery == 0) || finished {
                try evaluateAndKeepBest(step: step)
            }
            if shouldStop() {
                interrupted = !finished
                lastCheckpoint = try writeCheckpoint()
                break
            }
            if (options.checkpointEvery > 0 && step % options.checkpointEvery == 0) || finished {
                lastCheckpoint = try writeCheckpoint()
            }
        }
        return PretrainingSummary(steps: optimizer.stepCount, interrupted: interrupted, lastLoss: lastLoss,
                                  bestDevLoss: bestDevLoss, checkpoint: lastCheckpoint, seconds: Date().timeIntervalSince(started))
    }

    func evaluateAndKeepBest(step: Int) throws {
        guard let (loss, accuracy) = try evaluate() else { return }
        let isBest = bestDevLoss.map { loss < $0 } ?? true
        if isBest {
            bestDevLoss = loss
            try replaceDirectory(outputDirectory.appendingPathComponent("best")) { dir in
                try ModelDirectory.save(model, tokenizer: tokenizer, to: dir.path)
            }
        }
        onEvaluation?(PretrainingEvaluation(step: step, loss: loss, accuracy: accuracy, isBest: isBest))
    }

    // MARK: Checkpoints

    static let stateFile = "training-state.safetensors"
    var checkpointsDirectory: URL { outputDirectory.appendingPathComponent("checkpoints") }

    /// Writes the full training state as a new checkpoint directory, then points LATEST at it.
    @discardableResult
    public func writeCheckpoint() throws -> String {
        let fm = FileManager.default
        try fm.createDirectory(at: checkpointsDirectory, withIntermediateDirectories: true)
        let name = String(format: "step-%07d", optimizer.stepCount)
        let final = checkpointsDirectory.appendingPathComponent(name)
        if !fm.fileExists(atPath: final.path) {
            let tmp = checkpointsDirectory.appendingPathComponent("\(name).tmp-\(getpid())")
            if fm.fileExists(atPath: tmp.path) { try fm.removeItem(at: tmp) }
            try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
            try ModelDirectory.save(model, tokenizer: tokenizer, to: tmp.path)
            try TrainingCheckpoint.save(to: tmp.appendingPathComponent(Pretrainer.stateFile), store: model.store,
                                        optimizer: optimizer, schedule: schedule, rng: model.rng, metadata: stateMetadata())
            try fm.moveItem(at: tmp, to: final)
        }
        try AtomicFile.write(name, to: checkpointsDirectory.appendingPathComponent("LATEST").path)
        try pruneCheckpoints(keeping: name)
        onCheckpoint?(final.path)
        return final.path
    }

    func stateMetadata() throws -> [String: String] {
        let optionsJSON = String(decoding: try JSONEncoder().encode(options), as: UTF8.self)
        var meta: [String: String] = [
            "pretrain.options": optionsJSON,
            "pretrain.epoch": String(epoch),
            "pretrain.blocks_used": String(blocksUsed),
            "pretrain.tokens_seen": String(tokensSeen),
            "pretrain.mask_rng": maskRNG.stateWords.map(String.init).joined(separator: ","),
        ]
        if let best = bestDevLoss { meta["pretrain.best_dev_loss"] = "\(best.bitPattern)" }
        return meta
    }

    /// Restores the state of the checkpoint LATEST names (model, optimizer, schedule, RNGs, data position).
    func restoreLatest() throws {
        let latestFile = checkpointsDirectory.appendingPathComponent("LATEST")
        guard let data = FileManager.default.contents(atPath: latestFile.path) else {
            throw ModelError.invalidArgument("nothing to resume: \(latestFile.path) does not exist")
        }
        let name = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let stateURL = checkpointsDirectory.appendingPathComponent(name).appendingPathComponent(Pretrainer.stateFile)
        let restored = try TrainingCheckpoint.load(from: stateURL, store: model.store, optimizer: optimizer, rng: model.rng)
        let meta = restored.metadata
        if let saved = try meta["pretrain.options"].map({ try JSONDecoder().decode(PretrainingOptions.self, from: Data($0.utf8)) }) {
            var a = saved, b = options
            a.steps = 0; b.steps = 0; a.evalEvery = 0; b.evalEvery = 0; a.checkpointEvery = 0; b.checkpointEvery = 0
            a.keepCheckpoints = 0; b.keepCheckpoints = 0
            guard a == b else {
                throw ModelError.invalidArgument("\(stateURL.path) was written with other training settings; resume with the same ones (only --steps and the eval/checkpoint intervals may change)")
            }
        }
        guard let e = meta["pretrain.epoch"].flatMap(Int.init), let used = meta["pretrain.blocks_used"].flatMap(Int.init),
              let words = meta["pretrain.mask_rng"]?.split(separator: ",").compactMap({ UInt64($0) }) else {
            throw ModelError.invalidArgument("\(stateURL.path) lacks the pretraining data position")
        }
        maskRNG = try RNG(state: words)
        tokensSeen = meta["pretrain.tokens_seen"].flatMap(Int.init) ?? 0
        bestDevLoss = meta["pretrain.best_dev_loss"].flatMap(UInt32.init).map(Float.init(bitPattern:))
        epoch = e
        blocksUsed = 0
        iterator = try trainBlocks(epoch)
        for _ in 0..<used {
            guard try iterator!() != nil else { break }
            blocksUsed += 1
        }
    }

    func pruneCheckpoints(keeping current: String) throws {
        let fm = FileManager.default
        let names = try fm.contentsOfDirectory(atPath: checkpointsDirectory.path)
        let steps = names.filter { $0.hasPrefix("step-") && !$0.contains(".tmp-") }.sorted()
        let keep = max(1, options.keepCheckpoints)
        for old in steps.dropLast(keep) where old != current {
            try fm.removeItem(at: checkpointsDirectory.appendingPathComponent(old))
        }
    }

    /// Builds a directory under a temporary name with `body`, then swaps it in for `dir`.
    func replaceDirectory(_ dir: URL, _ body: (URL) throws -> Void) throws {
        let fm = FileManager.default
        let tmp = dir.deletingLastPathComponent().appendingPathComponent(".\(dir.lastPathComponent).tmp-\(getpid())")
        if fm.fileExists(atPath: tmp.path) { try fm.removeItem(at: tmp) }
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        try body(tmp)
        let old = dir.deletingLastPathComponent().appendingPathComponent(".\(dir.lastPathComponent).old-\(getpid())")
        if fm.fileExists(atPath: dir.path) { try fm.moveItem(at: dir, to: old) }
        try fm.moveItem(at: tmp, to: dir)
        if fm.fileExists(atPath: old.path) { try fm.removeItem(at: old) }
    }
}
