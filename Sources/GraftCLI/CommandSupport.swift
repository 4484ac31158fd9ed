import ArgumentParser
import Foundation
import GraftSupport
import GraftCorpus
import GraftEngine
import GraftModels
import GraftTokenizers

// Helpers shared by the commands: errors, output, tokenizers and fingerprints, typed options,
// and the wiring of a training run (progress, run record, Ctrl-C).

/// An error the CLI reports as one line and a non-zero exit.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Buffered standard output (print() per line is slow for large outputs). A failed write (a
/// full disk, a closed pipe) is kept and reported by the next ``flush()``, which the commands
/// call at the end: output that did not arrive is an error, not a silent exit 0.
final class OutputBuffer {
    private var bytes: [UInt8] = []
    /// Discards everything (the ranks other than 0 of an MPI job: rank 0 writes the output).
    private let silent: Bool
    private var failure: Int32?
    init(silent: Bool = false) { self.silent = silent }
    func write(_ s: String) {
        guard !silent, failure == nil else { return }
        bytes.append(contentsOf: s.utf8)
        if bytes.count > 1 << 16 { drain() }
    }
    /// Writes what is buffered; throws if any write so far failed.
    func flush() throws {
        drain()
        if let failure { throw CLIError("standard output: write failed: \(String(cString: strerror(failure)))") }
    }
    private func drain() {
        guard !bytes.isEmpty, failure == nil else { bytes.removeAll(keepingCapacity: true); return }
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(1, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { failure = n < 0 ? errno : EIO; break }
                offset += n
            }
        }
        bytes.removeAll(keepingCapacity: true)
    }
}

/// Writes to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// One plain progress line on standard error.
func progressLine(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Loads a tokenizer or exits with a readable message.
func loadTokenizer(_ path: String) throws -> Tokenizer {
    do {
        return try Tokenizer.load(from: path)
    } catch let e as TokenizerError {
        throw CLIError("cannot load tokenizer: \(e)")   // a file problem, not a usage one: no usage text, exit 1
    }
}

/// The fingerprint under which a tokenizer's ids are cached: SHA-256 of its compact
/// `tokenizer.json` serialization, so any change to vocabulary or pipeline gives a new cache.
func tokenizerFingerprint(_ tokenizer: Tokenizer) -> String {
    SHA256.hex(SHA256.hash(Array(tokenizer.toJSON().serialized().utf8)))
}

/// Builds the token cache of the corpus at `dbPath` for `tokenizer`: every whole document's ids
/// *without* special tokens (the tokenizer's own truncation and padding, e.g. MiniLM's 128, are
/// left out: packing needs whole documents), under `fingerprint` (the caller's
/// ``tokenizerFingerprint(_:)`` of `tokenizer`), batches of documents encoded over all cores.
/// Returns the cache report; shows progress on stderr.
func tokenizeCorpus(dbPath: String, tokenizer: Tokenizer, fingerprint: String, showProgress: Bool = true) throws -> TokenCacheReport {
    let store = try CorpusStore(path: dbPath)
    let progress = ProgressReporter("tokenize", unit: .items("docs"), enabled: showProgress)
    var whole = tokenizer
    whole.truncation = nil
    whole.padding = nil
    let report = try store.buildTokenCache(fingerprint: fingerprint, batchSize: 1024, encodeBatch: { texts in
        try whole.encodeBatch(texts, addSpecialTokens: false).map(\.ids)
    }) { done, total in
        progress.total = total
        progress.update(done)
    }
    progress.finish(fields: ["tokens": ProgressReporter.grouped(report.tokens)])
    return report
}

// MARK: Typed options (`--help` lists the choices; a typo gets argument-parser's message)

extension ImportFormat: ExpressibleByArgument {}
extension ExportFormat: ExpressibleByArgument {}
extension SplitPart: ExpressibleByArgument {}
extension CoNLLTagScheme: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
}
extension TokenizerKind: ExpressibleByArgument {}
extension ModelKind: ExpressibleByArgument {}
extension ModelPreset: ExpressibleByArgument {}
extension LRSchedule.Decay: ExpressibleByArgument {}

// MARK: Training

/// The options every training command shares (`graft pretrain`, a future `graft finetune`).
struct OptimizationOptionGroup: ParsableArguments {
    @Option(name: .customLong("batch-size"), help: "Examples per micro-batch.") var batchSize: Int = 32
    @Option(help: "Optimizer updates.") var steps: Int = 1000
    @Option(help: "Train for this many epochs instead of --steps.") var epochs: Int?
    @Option(help: "Micro-batches per update.") var accumulation: Int = 1
    @Option(name: .customLong("lr"), help: "Peak learning rate.") var learningRate: Float = 5e-4
    @Option(name: .customLong("warmup-steps")) var warmupSteps: Int = 100
    @Option(help: "Learning rate after warm-up.") var decay: LRSchedule.Decay = .linear
    @Option(name: .customLong("weight-decay")) var weightDecay: Float = 0.01
    @Option(name: .customLong("clip-norm"), help: "0 disables clipping.") var clipNorm: Float = 1
    @Option(name: .customLong("eval-every"), help: "Updates between evaluations (0: only at the end).") var evalEvery: Int = 200
    @Option(name: .customLong("eval-batches"), help: "Batches per evaluation (0: all).") var evalBatches: Int = 8
    @Option(name: .customLong("checkpoint-every"), help: "Updates between checkpoints (0: only at the end).") var checkpointEvery: Int = 200
    @Option(name: .customLong("keep-checkpoints"), help: "Checkpoints kept besides best/.") var keepCheckpoints: Int = 2
    @Option(help: "Seed of the data order, masking and initialisation.") var seed: UInt64 = 1
    @Flag(help: "Continue from OUT/checkpoints/LATEST.") var resume = false
    @Option(help: "Threads (default: GRAFT_THREADS, else all cores).") var threads: Int?
    @Flag(help: profileHelp) var profile = false

    func validate() throws {
        guard batchSize > 0, accumulation > 0, steps > 0 else { throw ValidationError("--batch-size, --accumulation and --steps must be positive") }
        // Bounded so that no product of them overflows and a batch is memory one can have.
        guard batchSize <= OptimizationOptions.maxBatchSize, accumulation <= 65_536, steps <= 1_000_000_000 else {
            throw ValidationError("--batch-size must lie in 1...\(OptimizationOptions.maxBatchSize), --accumulation in 1...65536, --steps in 1...1000000000")
        }
        if let epochs, !(1...100_000).contains(epochs) { throw ValidationError("--epochs must lie in 1...100000") }
        let rates = OptimizationOptions.learningRates
        guard rates.contains(learningRate) else { throw ValidationError("--lr must lie in \(rates.lowerBound)...\(rates.upperBound)") }
        guard warmupSteps >= 0, weightDecay >= 0, clipNorm >= 0, evalEvery >= 0, evalBatches >= 0, checkpointEvery >= 0,
              keepCheckpoints >= 0 else {
            throw ValidationError("--warmup-steps, --weight-decay, --clip-norm and the eval/checkpoint options must not be negative")
        }
        guard weightDecay.isFinite, clipNorm.isFinite, warmupSteps <= 1_000_000_000, evalEvery <= 1_000_000_000,
              evalBatches <= 1_000_000, checkpointEvery <= 1_000_000_000, keepCheckpoints <= 10_000 else {
            throw ValidationError("--weight-decay and --clip-norm must be finite; --eval-batches at most 1000000, --keep-checkpoints at most 10000, the step counts at most 1000000000")
        }
    }

    var options: OptimizationOptions {
        var o = OptimizationOptions()
        o.batchSize = batchSize; o.steps = steps; o.epochs = epochs; o.accumulation = accumulation
        o.learningRate = learningRate; o.warmupSteps = warmupSteps; o.schedule = decay; o.weightDecay = weightDecay
        o.clipNorm = clipNorm; o.evalEvery = evalEvery; o.evalBatches = evalBatches; o.checkpointEvery = checkpointEvery
        o.keepCheckpoints = keepCheckpoints; o.seed = seed
        return o
    }
}

/// The help of the training commands' `--profile` flag (``runTraining(_:resume:record:label:out:announce:stepsPerEpoch:profile:describe:)``).
let profileHelp: ArgumentHelp = "Print on stderr where the updates' time went: per region (embeddings, each layer's forward and backward, head, optimizer, evaluation, checkpoints), per kind of operation over all layers (projections, attention, LayerNorm, GELU, dropout, cross-entropy), and GEMM against the SGEMM ceiling."

/// Epochs begun after `steps` updates of `stepsPerEpoch` each.
func epochsTrained(_ steps: Int, _ stepsPerEpoch: Int) -> Int { (steps + max(stepsPerEpoch, 1) - 1) / max(stepsPerEpoch, 1) }

/// The signal (SIGINT, SIGTERM) that asked training to stop, 0 if none; the training loop
/// checks it after every update.
nonisolated(unsafe) private var interruptRequested: sig_atomic_t = 0

/// Ctrl-C or SIGTERM stops training after the current update, with a checkpoint; the same
/// signal again ends the process at once.
private func catchInterrupts() {
    signal(SIGINT) { s in interruptRequested = s; signal(s, SIG_DFL) }
    signal(SIGTERM) { s in interruptRequested = s; signal(s, SIG_DFL) }
}

/// The exit status of a process whose training a signal stopped (128 + the signal, as a shell
/// reports a process the signal ended: 130 for Ctrl-C), so `graft pretrain … && next` does
/// not go on; nil when none did.
func interruptedExitStatus() -> Int32? { interruptRequested != 0 ? 128 + interruptRequested : nil }

/// Runs `trainer` the way every training command does: a progress line (loss, lr, tokens/s),
/// metrics logged into the corpus store's run record every 10 updates and at each evaluation,
/// Ctrl-C writing a checkpoint before returning (a second Ctrl-C ends the process), and the run
/// finished as `finished`, `interrupted` or `failed`. `describe` words an evaluation.
/// A failure to write the run record stops training (checkpoint kept) and is thrown. A run that
/// stopped early (patience) is recorded with `stopped_early` 1 and, given `stepsPerEpoch`, the
/// `epochs` it trained. `profile`: print the ``ProfileReport`` of this process's updates on stderr.
@discardableResult
func runTraining<Objective: TrainingObjective>(
    _ trainer: Trainer<Objective>, resume: Bool, record run: RunRecorder?, label: String, out: String, announce: Bool = true,
    stepsPerEpoch: Int? = nil, profile: Bool = false, describe: @escaping (TrainingEvaluation) -> String
) throws -> TrainingSummary {
    let dp = trainer.dataParallel
    guard dp.isLeader, let run else {
        // Another rank of a data-parallel job: rank 0 shows progress and records the run.
        catchInterrupts()
        trainer.shouldStop = { interruptRequested != 0 }
        return try trainer.run(resume: resume)
    }
    let progress = ProgressReporter(label, total: trainer.totalSteps, unit: .items("steps"))
    var recordError: Error?
    func log(_ step: Int, _ metrics: [String: Double]) {
        guard recordError == nil else { return }
        do { try run.log(step: step, metrics: metrics) } catch { recordError = error }
    }
    var lastTokensSeen: Int?
    var timedTokens = 0, timedSeconds = 0.0, firstStep: Int?   // throughput after this process's first update
    trainer.onStep = { s in
        if firstStep == nil { firstStep = s.step } else if s.tokensPerSecond > 0 {
            let tokens = s.tokensSeen - (lastTokensSeen ?? s.tokensSeen)
            timedTokens += tokens
            timedSeconds += Double(tokens) / s.tokensPerSecond
        }
        lastTokensSeen = s.tokensSeen
        progress.update(s.step, fields: ["loss": String(format: "%.4f", s.loss), "lr": String(format: "%.2e", s.learningRate),
                                         "tok/s": String(format: "%.0f", s.tokensPerSecond)])
        if s.step % 10 == 0 || s.step == s.totalSteps {
            var metrics = ["train_loss": Double(s.loss), "lr": Double(s.learningRate), "tokens_per_s": s.tokensPerSecond]
            if let a = s.accuracy { metrics["train_accuracy"] = Double(a) }
            log(s.step, metrics)
        }
    }
    trainer.onEvaluation = { e in
        progress.note("step \(e.step): \(describe(e))\(e.isBest ? " (best)" : "")")
        log(e.step, Dictionary(uniqueKeysWithValues: e.metrics.map { ("dev_" + $0.key, $0.value) }))
    }
    trainer.onCheckpoint = { path in progress.note("checkpoint \(path)") }
    catchInterrupts()
    trainer.shouldStop = { interruptRequested != 0 || recordError != nil }
    do {
        let profiler = profile ? Profiler() : nil
        let summary = try profiler.map { p in try p.record { try trainer.run(resume: resume) } } ?? trainer.run(resume: resume)
        if let recordError { throw CLIError("\(out): recording the run failed, training stopped at step \(summary.steps) (checkpoint kept): \(recordError)") }
        progress.finish()
        var totals: [String: Double] = ["steps": Double(summary.steps), "seconds": summary.seconds]
        if let l = summary.lastLoss { totals["train_loss"] = Double(l) }
        if let b = summary.best { totals["best_dev_\(summary.mainMetric.name)"] = b }
        if let stepsPerEpoch { totals["epochs"] = Double(epochsTrained(summary.steps, stepsPerEpoch)) }
        if summary.stoppedEarly { totals["stopped_early"] = 1 }
        try run.finish(status: summary.interrupted ? .interrupted : .finished, summary: totals)
        let epochText = stepsPerEpoch.map { " (epoch \(epochsTrained(summary.steps, $0)))" } ?? ""
        let message = summary.interrupted
              ? "interrupted at step \(summary.steps); checkpoint \(summary.checkpoint ?? "-"); continue with --resume"
              : summary.stoppedEarly
              ? "stopped early at step \(summary.steps)\(epochText): dev \(summary.mainMetric.name) did not improve for \(trainer.options.patience ?? 0) evaluations; best model in \(out)/best"
              : "done: \(summary.steps) steps in \(String(format: "%.0f", summary.seconds)) s; "
                + (summary.best == nil ? "no dev scores to choose by: the last update's model in \(out)/best" : "best model in \(out)/best")
        if announce { print(message) } else { printError(message) }
        if timedSeconds > 0 {
            printError(String(format: "throughput: %.0f tokens/s over updates %d-%d (%.2f s per update)", Double(timedTokens) / timedSeconds,
                              (firstStep ?? 0) + 1, summary.steps, timedSeconds / Double(max(1, summary.steps - (firstStep ?? 0)))))
        }
        if dp.size > 1 {
            printError(String(format: "data-parallel: %d ranks; rank 0 waited %.2f s of %.2f s of updates for the gradient all-reduce (%.1f%%: communication not hidden behind backward, and waiting for the slowest rank); %d buckets started during backward, %d after",
                              dp.size, dp.exposedCommunicationSeconds, dp.updateSeconds, 100 * dp.exposedCommunicationSeconds / max(dp.updateSeconds, 1e-9),
                              dp.overlappedBuckets, dp.trailingBuckets))
        }
        if let profiler, let first = firstStep, summary.steps >= first {
            // The updates of this process (after a resume, from the first one it made).
            let report = ProfileReport(profiler, steps: summary.steps - first + 1, seconds: summary.seconds, ceiling: sgemmCeiling())
            report.lines.forEach(printError)
        }
        return summary
    } catch {
        progress.cancel()
        try? run.finish(status: .failed)   // the original error is the one to report
        throw error
    }
}
