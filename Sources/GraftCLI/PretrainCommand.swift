import ArgumentParser
import Foundation
import GraftCorpus
import GraftEngine
import GraftModels
import GraftSupport
import GraftTokenizers

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

    @Option(help: "bert: masked LM; gpt: causal LM.")
    var kind: ModelKind = .bert

    @Option(help: "Model size.")
    var preset: ModelPreset = .mini

    @Option(help: "Output directory.")
    var out: String

    @OptionGroup(title: "Optimization")
    var optimization: OptimizationOptionGroup

    @Option(name: .customLong("seq-len"), help: "Tokens per sequence.") var seqLen: Int = 128
    @Option(name: .customLong("mask-probability"), help: "Masked LM: share of positions predicted.") var maskProbability: Float = 0.15
    @Flag(name: .customLong("whole-word-mask"), help: "Masked LM: mask all pieces of a word together.") var wholeWordMask = false

    var languageModeling: LanguageModelingOptions {
        var o = LanguageModelingOptions()
        o.seqLen = seqLen; o.maskProbability = maskProbability; o.wholeWordMask = wholeWordMask
        return o
    }

    func run() throws {
        try Engine.withThreads(optimization.threads ?? Engine.defaultThreads) { try train() }
    }

    private func train() throws {
        let tok = try loadTokenizer(tokenizer)
        if kind == .bert {
            let missing = ["[CLS]", "[SEP]", "[MASK]"].filter { tok.id($0) == nil }
            guard missing.isEmpty else {
                throw CLIError("\(tokenizer): masked-LM pretraining (--kind bert) needs [CLS], [SEP] and [MASK]; this tokenizer lacks \(missing.joined(separator: ", ")) (train one with graft tokenizer train --kind wordpiece)")
            }
        }
        let fingerprint = tokenizerFingerprint(tok)
        let dataParallel = try Ranks.dataParallel()
        // OptimizationOptions.accumulation counts the micro-batches of an update over all ranks.
        let opts: OptimizationOptions = { var o = optimization.options; o.accumulation *= dataParallel.size; return o }()
        let store = try CorpusStore(path: db)
        if dataParallel.isLeader, (try? store.tokenCacheStats(fingerprint: fingerprint))?.documents ?? 0 < (try store.documentCount()) {
            _ = try tokenizeCorpus(dbPath: db, fingerprint: fingerprint) { try tok.encode($0, addSpecialTokens: false).ids }
        }
        try dataParallel.communicator?.barrier()   // the other ranks read the cache rank 0 built
        let separatorName = kind == .bert ? "[SEP]" : (tok.addedTokens.first { $0.special }?.content ?? "<|endoftext|>")
        guard let separator = tok.id(separatorName) else {
            throw CLIError("\(tokenizer): no \(separatorName) token to separate documents")
        }
        var config = preset.config(kind: kind, vocabSize: tok.vocabSize)
        if kind == .gpt { config.maxPositions = seqLen }  // generation then stays within the trained positions
        let lm = languageModeling
        let blockLength = lm.blockLength(for: kind)
        let sep = Int32(separator)
        let trainBlocks: (Int) throws -> ExampleStream<[Int32]> = { epoch in
            let blocks = try store.packedBlocks(fingerprint: fingerprint, blockLength: blockLength, separator: sep,
                                                filter: DocumentFilter(part: .train), shuffleSeed: opts.seed &+ UInt64(epoch))
            var iterator = blocks.makeIterator()   // its reads throw: a lost page stops training
            return ExampleStream { try iterator.next() }
        }
        let devBlocks = Array(try store.packedBlocks(fingerprint: fingerprint, blockLength: blockLength, separator: sep,
                                                      filter: DocumentFilter(part: .dev))
            .prefix(opts.evalBatches > 0 ? opts.evalBatches * opts.batchSize : Int.max))
        let configJSON = JSONValue.object([
            ("model", try JSONValue(encoding: config, sortedKeys: true)),
            ("training", try JSONValue(encoding: opts, sortedKeys: true)),
            ("objective", try JSONValue(encoding: lm, sortedKeys: true)),
            ("tokenizer", .string(fingerprint)), ("out", .string(out))]).serialized()
        let model: LanguageModel = kind == .bert
            ? try BertForMaskedLM(config: config, seed: opts.seed) : try GPTForCausalLM(config: config, seed: opts.seed)
        func train<Objective: TrainingObjective>(_ objective: Objective) throws {
            let trainer = try Trainer(objective: objective, options: opts, outputDirectory: out, dataParallel: dataParallel)
            let run = dataParallel.isLeader ? try store.startRun(kind: "pretrain-\(kind.rawValue)", name: out, configJSON: configJSON) : nil
            if dataParallel.isLeader {
                printError("pretraining \(kind.rawValue)-\(preset.rawValue): \(model.store.count) parameters, vocabulary \(config.vocabSize), " +
                           "\(devBlocks.count) dev blocks; writing to \(out)" +
                           (dataParallel.size > 1 ? "; \(dataParallel.size) ranks x batch \(opts.batchSize) x accumulation \(opts.accumulation / dataParallel.size)" : ""))
            }
            try runTraining(trainer, resume: optimization.resume, record: run, label: "pretrain", out: out) { e in
                let loss = e.metrics["loss"] ?? .nan
                return kind == .bert ? String(format: "dev MLM loss %.4f, accuracy %.3f", loss, e.metrics["accuracy"] ?? .nan)
                                     : String(format: "dev loss %.4f, perplexity %.1f", loss, e.metrics["perplexity"] ?? .nan)
            }
        }
        do {
            switch kind {
            case .bert:
                try train(try MaskedLMObjective(model: model, tokenizer: tok, options: lm, seed: opts.seed,
                                                trainBlocks: trainBlocks, devBlocks: devBlocks))
            case .gpt:
                try train(try CausalLMObjective(model: model, tokenizer: tok, options: lm, seed: opts.seed,
                                                trainBlocks: trainBlocks, devBlocks: devBlocks))
            }
        } catch let e as ModelError { throw CLIError("\(e)") }
    }
}
