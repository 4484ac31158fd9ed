import GraftSupport
import ArgumentParser
import Foundation
import GraftEngine
import GraftModels
import GraftTokenizers

/// Training throughput of BERT-Mini / GPT-Mini on random tokens, for the PyTorch comparison
/// (`benchmarks/torch_pretrain_bench.py` runs both sides alternately).
struct PretrainBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pretrain",
        abstract: "Pretraining throughput (tokens/s) and peak memory on random tokens.",
        discussion: """
        BERT: masked LM with 15% of positions masked (80/10/10); --variant full computes the MLM head over all \
        positions, masked only at the masked ones. GPT: next-token loss over all positions. AdamW, clipping 1.0. \
        The last line printed is a JSON object with tokens_per_s and peak_rss_mb.
        """
    )

    /// Where BERT's masked-LM head runs; `gpt` is short for `--kind gpt`.
    enum Variant: String, CaseIterable, ExpressibleByArgument { case full, masked, gpt }

    @Option(help: "The model family.") var kind: ModelKind = .bert
    @Option(help: "Model preset.") var preset: ModelPreset = .mini
    @Option(help: "BERT: where the MLM head runs (full: all positions, masked: masked ones); gpt is short for --kind gpt.")
    var variant: Variant = .masked
    @Option(name: .customLong("vocab-size")) var vocabSize: Int = 8192
    @Option(name: .customLong("seq-len")) var seqLen: Int = 128
    @Option(name: .customLong("batch-size")) var batchSize: Int = 32
    @Option(help: "Timed steps.") var steps: Int = 10
    @Option(help: "Untimed warm-up steps.") var warmup: Int = 2
    @Option(help: "Threads (BLAS and element-wise kernels).") var threads: Int?
    @Flag(help: "Print only the JSON line.") var json = false
    @Flag(help: """
    Also report where the timed steps' time goes: per region (embeddings, each layer's forward and backward, \
    the head with its loss, zeroing, clipping, AdamW) milliseconds per step, share of the step and the GEMM \
    time inside it, and the GEMM rate against the SGEMM ceiling measured here (the engine's 4096x256x1024 \
    product at the same threads, as `graft bench engine` measures it; timed twice before the first timed step \
    and after each, outside the steps' time, and the median taken), each step's GEMM work rate against the \
    ceiling timed just before and after it (median and range over the steps), then each kind of operation \
    over all layers (a projection's forward, input and weight gradients, attention, LayerNorm, GELU, dropout, \
    embeddings, cross-entropy) with the GEMM time inside it and the rest, then the GEMMs by shape \
    (M x N x K and transposes, or an attention phase's per-head products) with their time and rate, the \
    longest first.
    """)
    var profile = false

    func validate() throws {
        guard (2...1_000_000).contains(vocabSize) else { throw ValidationError("--vocab-size must lie in 2...1000000") }
        guard (8...8192).contains(seqLen) else { throw ValidationError("--seq-len must lie in 8...8192") }
        guard (1...OptimizationOptions.maxBatchSize).contains(batchSize) else { throw ValidationError("--batch-size must lie in 1...\(OptimizationOptions.maxBatchSize)") }
        guard (1...100_000).contains(steps), (0...100_000).contains(warmup) else { throw ValidationError("--steps must lie in 1...100000 and --warmup in 0...100000") }
    }

    func run() throws {
        try Engine.withThreads(threads ?? Engine.defaultThreads) { try measure() }
    }

    private func measure() throws {
        let kind: ModelKind = variant == .gpt ? .gpt : self.kind
        var config = preset.config(kind: kind, vocabSize: vocabSize)
        if kind == .gpt { config.maxPositions = max(config.maxPositions, seqLen) }
        let model: LanguageModel
        if kind == .bert {
            let bert = try BertForMaskedLM(config: config, seed: 1)
            bert.maskedPositionsOnly = variant == .masked
            model = bert
        } else {
            model = try GPTForCausalLM(config: config, seed: 1)
        }
        let optimizer = AdamW(model.store, weightDecay: 0.01)
        // Ids 0..<5 play the specials ([PAD] [UNK] [CLS] [SEP] [MASK]); tokens are uniform over the rest.
        let masker = MLMMasker(maskTokenId: 4, vocabSize: vocabSize, specialIds: [0, 1, 2, 3, 4])
        var rng = RNG(seed: 42)
        func batch() -> LMBatch {
            let n = batchSize * seqLen
            if kind == .bert {
                var ids = (0..<n).map { _ in Int32(5 + rng.int(below: vocabSize - 5)) }
                let labels = masker.mask(&ids, rng: &rng)
                return LMBatch(inputIds: ids, labels: labels, batch: batchSize, seqLen: seqLen)
            }
            let stream = (0...n).map { _ in Int32(5 + rng.int(below: vocabSize - 5)) }
            return LMBatch(inputIds: Array(stream[0..<n]), labels: Array(stream[1...n]), batch: batchSize, seqLen: seqLen)
        }
        var seconds: [Double] = []
        let profiler = Profiler()
        // With --profile, the ceiling is sampled before the first timed update and after every one
        // (outside their timing), so the ratio compares the updates with the machine as it was
        // while they ran.
        let ceiling: SGEMMCeiling? = profile ? SGEMMCeiling() : nil
        func trainingStep(_ b: LMBatch) throws -> LMLoss {
            Profiler.region("zero gradients") { model.store.zeroGrads() }
            let loss = try model.loss(b, training: true)
            try model.backward(scale: 1)
            let norm = Profiler.region("clip gradients") { model.store.gradNorm() }
            try Profiler.region("AdamW step") { try optimizer.step(model.store, lr: 1e-4, gradientScale: clipFactor(norm: norm, maxNorm: 1)) }
            return loss
        }
        // Each timed update against the ceiling sampled just before and just after it (the median
        // of those four samples): the machine as that update saw it.
        var paired: [Double] = []
        var before: [Double] = []
        for step in 0..<(warmup + steps) {
            let b = batch()
            if step == warmup, let ceiling { before = ceiling.sample(2) }
            let flops0 = profiler.flops
            let t0 = DispatchTime.now().uptimeNanoseconds
            let loss = try profile && step >= warmup ? profiler.record { try trainingStep(b) } : trainingStep(b)
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            if step >= warmup {
                seconds.append(dt)
                if let ceiling {
                    let after = ceiling.sample(2)
                    paired.append((profiler.flops - flops0) / dt * 1e-9 / median(before + after))
                    before = after
                }
            }
            if !json {
                print(String(format: "step %2d  loss %.4f  %.0f ms  %.0f tokens/s%@", step, loss.loss, dt * 1000,
                             Double(batchSize * seqLen) / dt, (step < warmup ? "  (warm-up)" : "") as NSString))
            }
        }
        let total = seconds.reduce(0, +)
        let tokensPerSecond = Double(batchSize * seqLen * steps) / total
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let peakMB = Double(usage.ru_maxrss) / 1024  // Linux reports kilobytes
        var fields: [(String, JSONValue)] = [
            ("kind", .string(kind.rawValue)), ("preset", .string(preset.rawValue)), ("variant", .string(kind == .bert ? variant.rawValue : "full")),
            ("threads", .number(Double(Engine.threads))), ("parameters", .number(Double(model.store.count))),
            ("batch", .number(Double(batchSize))), ("seq_len", .number(Double(seqLen))), ("steps", .number(Double(steps))),
            ("tokens_per_s", .number((tokensPerSecond * 10).rounded() / 10)), ("peak_rss_mb", .number((peakMB * 10).rounded() / 10)),
            ("openblas_core", .string(BLAS.kernelCore)),
        ]
        if profile {
            let report = ProfileReport(profiler, steps: steps, seconds: total, ceiling: ceiling?.gflops ?? sgemmCeiling(), pairedUpdates: paired)
            if !json { report.lines.forEach { print($0) } }
            fields.append(("profile", report.json))
        }
        print(JSONValue.object(fields).serialized())
    }
}
