import ArgumentParser
import Foundation
import GraftCorpus
import GraftEngine
import GraftModels
import GraftTokenizers

/// Set by SIGINT; the training loop checks it after every update.
nonisolated(unsafe) private var interruptRequested: sig_atomic_t = 0

struct PretrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pretrain",
        abstract: "Pretrain a BERT (masked LM) or GPT (causal LM) on a corpus database.",
        discussion: """
        Reads packed token blocks of the corpus's train split (caching the tokenizer's ids first if needed), \
        evaluates on the dev split, and writes OUT/checkpoints/step-N (model + training state), \
        OUT/checkpoints/LATEST and OUT/best (lowest dev loss). --resume continues from LATEST with results \
        identical to an uninterrupted run; Ctrl-C writes a checkpoint before exiting.
        """
    )

    @Option(help: "Corpus database (see graft corpus add).")
    var db: String = "graft.sqlite"

    @Option(help: "Tokenizer (tokenizer.json, or a directory holding one).")
    var tokenizer: String

    @Option(help: "bert (masked LM) or gpt (causal LM).")
    var kind: String = "bert"

    @Option(help: "Model size: \(ModelConfig.presetNames.joined(separator: ", ")).")
    var preset: String = "mini"

    @Option(help: "Output directory.")
    var out: String

    @Flag(help: "Continue from OUT/checkpoints/LATEST.")
    var resume = false

    @Option(name: .customLong("batch-size")) var batchSize: Int = 32
    @Option(name: .customLong("seq-len")) var seqLen: Int = 128
    @Option(help: "Optimizer updates.") var steps: Int = 1000
    @Option(help: "Micro-batches per update.") var accumulation: Int = 1
    @Option(name: .customLong("lr")) var learningRate: Float = 5e-4
    @Option(name: .customLong("warmup-steps")) var warmupSteps: Int = 100
    @Option(help: "linear, cosine or constant.") var decay: String = "linear"
    @Option(name: .customLong("weight-decay")) var weightDecay: Float = 0.01
    @Option(name: .customLong("clip-norm"), help: "0 disables clipping.") var clipNorm: Float = 1
    @Option(name: .customLong("eval-every")) var evalEvery: Int = 200
    @Option(name: .customLong("eval-batches")) var evalBatches: Int = 8
    @Option(name: .customLong("checkpoint-every")) var checkpointEvery: Int = 200
    @Option(name: .customLong("keep-checkpoints")) var keepCheckpoints: Int = 2
    @Option var seed: UInt64 = 1
    @Option(name: .customLong("mask-probability")) var maskProbability: Float = 0.15
    @Flag(name: .customLong("whole-word-mask")) var wholeWordMask = false
    @Option(help: "Threads (default: GRAFT_THREADS, else all cores).") var threads: Int?

    func validate() throws {
        guard ModelKind(rawValue: kind) != nil else { throw ValidationError("--kind must be bert or gpt") }
        guard ModelConfig.presetNames.contains(preset) else {
            throw ValidationError("--preset must be one of \(ModelConfig.presetNames.joined(separator: ", "))")
        }
    }

    var options: PretrainingOptions {
        var o = PretrainingOptions()
        o.batchSize = batchSize; o.seqLen = seqLen; o.steps = steps; o.accumulation = accumulation
        o.learningRate = learningRate; o.warmupSteps = warmupSteps; o.decay = decay; o.weightDecay = weightDecay
        o.clipNorm = clipNorm; o.evalEvery = evalEvery; o.evalBatches = evalBatches; o.checkpointEvery = checkpointEvery
        o.keepCheckpoints = keepCheckpoints; o.seed = seed; o.maskProbability = maskProbability; o.wholeWordMask = wholeWordMask
        return o
    }

    func run() throws {
        try Engine.withThreads(threads ?? Engine.defaultThreads) { try train() }
    }

    private func train() throws {
        let kind = ModelKind(rawValue: self.kind)!
        let tok = try loadTokenizer(tokenizer)
        if kind == .bert {
            let missing = ["[CLS]", "[SEP]", "[MASK]"].filter { tok.id($0) == nil }
            guard missing.isEmpty else {
                throw CLIError("\(tokenizer): masked-LM pretraining (--kind bert) needs [CLS], [SEP] and [MASK]; this tokenizer lacks \(missing.joined(separator: ", ")) (train one with graft tokenizer train --kind wordpiece)")
            }
        }
        let fingerprint = tokenizerFingerprint(tok)
        let store = try CorpusStore(path: db)
        let cachedDocuments: Int
        do { cachedDocuments = try store.tokenCacheStats(fingerprint: fingerprint).documents } catch CorpusError.noTokenCache {
            cachedDocuments = 0  // no cache for this tokenizer yet: build it below
        }
        if try cachedDocuments < store.documentCount() {
            _ = try tokenizeCorpus(dbPath: db, fingerprint: fingerprint) { try tok.encode($0, addSpecialTokens: false).ids }
        }
        let separatorName = kind == .bert ? "[SEP]" : (tok.addedTokens.first { $0.special }?.content ?? "<|endoftext|>")
        guard let separator = tok.id(separatorName) else {
            throw CLIError("\(tokenizer): no \(separatorName) token to separate documents")
        }
        var config = ModelConfig.preset(preset, kind: kind, vocabSize: tok.vocabSize)!
        if kind == .gpt { config.maxPositions = seqLen }  // generation then stays within the trained positions
        let model: LanguageModel = kind == .bert
            ? try BertForMaskedLM(config: config, seed: seed) : try GPTForCausalLM(config: config, seed: seed)
        let opts = options
        let blockLength = opts.blockLength(for: kind)
        let sep = Int32(separator)
        let trainBlocks: (Int) throws -> () throws -> [Int32]? = { epoch in
            let blocks = try store.packedBlocks(fingerprint: fingerprint, blockLength: blockLength, separator: sep,
                                                filter: DocumentFilter(part: .train), shuffleSeed: opts.seed &+ UInt64(epoch))
            var iterator = blocks.makeIterator()
            return { try iterator.next() }
        }
        let devBlocks = try store.packedBlocks(fingerprint: fingerprint, blockLength: blockLength, separator: sep,
                                               filter: DocumentFilter(part: .dev)).prefix(opts.evalBatches * opts.batchSize)
        let trainer = try Pretrainer(model: model, tokenizer: tok, options: opts, outputDirectory: out,
                                     trainBlocks: trainBlocks, devBlocks: devBlocks)
        let configJSON = String(decoding: try JSONEncoder().encode(["model": String(decoding: try JSONEncoder().encode(config), as: UTF8.self),
                                                                   "training": String(decoding: try JSONEncoder().encode(opts), as: UTF8.self),
                                                                   "tokenizer": fingerprint, "out": out]), as: UTF8.self)
        let run = try store.startRun(kind: "pretrain-\(kind.rawValue)", name: out, configJSON: configJSON)
        let parameters = model.store.count
        printError("pretraining \(kind.rawValue)-\(preset): \(parameters) parameters, vocabulary \(config.vocabSize), " +
                   "\(devBlocks.count) dev blocks; writing to \(out)")
        let progress = ProgressReporter("pretrain", total: opts.steps, unit: .items("steps"))
        // The first failed run-log write: it stops training (checkpoint written) and is reported.
        var logError: Error?
        func log(step: Int, _ metrics: [String: Double]) {
            guard logError == nil else { return }
            do { try run.log(step: step, metrics: metrics) } catch { logError = error }
        }
        trainer.onStep = { s in
            progress.update(s.step, fields: ["loss": String(format: "%.4f", s.loss), "lr": String(format: "%.2e", s.learningRate),
                                             "tok/s": String(format: "%.0f", s.tokensPerSecond)])
            if s.step % 10 == 0 || s.step == s.totalSteps {
                log(step: s.step, ["train_loss": Double(s.loss), "train_accuracy": Double(s.accuracy),
                                   "lr": Double(s.learningRate), "tokens_per_s": s.tokensPerSecond])
            }
        }
        trainer.onEvaluation = { e in
            let what = kind == .bert ? String(format: "dev MLM loss %.4f, accuracy %.3f", e.loss, e.accuracy)
                                     : String(format: "dev loss %.4f, perplexity %.1f", e.loss, e.perplexity)
            progress.note("step \(e.step): \(what)\(e.isBest ? " (best)" : "")")
            log(step: e.step, ["dev_loss": Double(e.loss), "dev_accuracy": Double(e.accuracy)])
        }
        trainer.onCheckpoint = { path in progress.note("checkpoint \(path)") }
        signal(SIGINT) { _ in
            interruptRequested = 1
            signal(SIGINT, SIG_DFL)  // a second Ctrl-C ends the process at once
        }
        trainer.shouldStop = { interruptRequested != 0 || logError != nil }
        do {
            let summary = try trainer.run(resume: resume)
            if let logError {
                throw CLIError("\(db): cannot record the run's metrics: \(logError); stopped at step \(summary.steps) " +
                               "with checkpoint \(summary.checkpoint ?? "-") (continue with --resume)")
            }
            progress.finish()
            var totals: [String: Double] = ["steps": Double(summary.steps), "seconds": summary.seconds]
            if let l = summary.lastLoss { totals["train_loss"] = Double(l) }
            if let b = summary.bestDevLoss { totals["best_dev_loss"] = Double(b) }
            try run.finish(status: summary.interrupted ? .interrupted : .finished, summary: totals)
            print(summary.interrupted
                  ? "interrupted at step \(summary.steps); checkpoint \(summary.checkpoint ?? "-"); continue with --resume"
                  : "done: \(summary.steps) steps in \(String(format: "%.0f", summary.seconds)) s; best model in \(out)/best")
        } catch {
            progress.cancel()
            do { try run.finish(status: .failed) } catch let recordError {
                throw CLIError("\(error)\n(the run could not be marked failed in \(db): \(recordError))")
            }
            throw error
        }
    }
}
