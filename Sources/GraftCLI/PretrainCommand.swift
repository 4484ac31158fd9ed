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
        identical to an uninterrupted run; Ctrl-C writes a checkpoint before exiting. \
        --from MODEL_DIR continues pretraining an imported or Graft-pretrained model on this corpus \
        (domain-adaptive pretraining): its config.json gives the kind and size, its tokenizer.json is kept \
        byte for byte, its weights are the start point; an encoder without a masked-LM head (BertModel) \
        gets a fresh one.
        """
    )

    @Option(help: "Corpus database (see graft corpus add).")
    var db: String = "graft.sqlite"

    @Option(help: "Tokenizer (tokenizer.json, or a directory holding one); with --from, the model's own (this must then be the same).")
    var tokenizer: String?

    @Option(name: .customLong("from"), help: "Continue pretraining this model directory (imported or Graft-pretrained) instead of a new model.")
    var from: String?

    @Option(help: "bert: masked LM; gpt: causal LM (default bert; with --from, the model's).")
    var kind: ModelKind?

    @Option(help: "Model size (default mini; with --from, the model's).")
    var preset: ModelPreset?

    @Option(help: "Output directory.")
    var out: String

    @OptionGroup(title: "Optimization")
    var optimization: OptimizationOptionGroup

    @Option(name: .customLong("seq-len"), help: "Tokens per sequence.") var seqLen: Int = 128
    @Option(name: .customLong("mask-probability"), help: "Masked LM: share of positions predicted.") var maskProbability: Float = 0.15
    @Flag(name: .customLong("whole-word-mask"), help: "Masked LM: mask all pieces of a word together.") var wholeWordMask = false

    func validate() throws {
        guard (8...65_536).contains(seqLen) else { throw ValidationError("--seq-len must lie in 8...65536 (tokens per sequence)") }
        guard maskProbability > 0 && maskProbability < 1 else { throw ValidationError("--mask-probability must lie strictly between 0 and 1") }
    }

    var languageModeling: LanguageModelingOptions {
        var o = LanguageModelingOptions()
        o.seqLen = seqLen; o.maskProbability = maskProbability; o.wholeWordMask = wholeWordMask
        return o
    }

    func run() throws {
        try Engine.withThreads(optimization.threads ?? Engine.defaultThreads) { try train() }
    }

    /// The model to train, its tokenizer and where they came from: a new model of `--kind` and
    /// `--preset`, or (`--from`) a model directory's weights and tokenizer.json.
    private struct Start {
        var kind: ModelKind
        var tokenizer: Tokenizer
        /// The tokenizer's source (a path), for messages.
        var tokenizerPath: String
        /// `--from`: the loaded model and the exact bytes of its tokenizer.json.
        var loaded: ModelDirectory.Loaded?
        var tokenizerFile: [UInt8]?
    }

    private func start(seed: UInt64) throws -> Start {
        guard let from else {
            guard let tokenizer else { throw ValidationError("--tokenizer is required (or --from MODEL_DIR, which brings its own)") }
            return Start(kind: kind ?? .bert, tokenizer: try loadTokenizer(tokenizer), tokenizerPath: tokenizer)
        }
        let configFile = (from as NSString).appendingPathComponent(ModelDirectory.configFile)
        let config: ModelConfig
        do { config = try ModelDirectory.config(from) } catch let e as ModelError { throw CLIError("--from \(from): \(e)") }
        if let kind, kind != config.kind {
            throw CLIError("--kind \(kind.rawValue) contradicts \(configFile), which describes a \(config.kind.rawValue) model (drop --kind: --from takes the model's)")
        }
        if let preset {
            let p = preset.config(kind: config.kind, vocabSize: config.vocabSize)
            if (p.layers, p.hidden, p.heads, p.ffn) != (config.layers, config.hidden, config.heads, config.ffn) {
                throw CLIError("--preset \(preset.rawValue) (\(p.layers) layers x \(p.hidden), \(p.heads) heads, FFN \(p.ffn)) contradicts \(configFile) (\(config.layers) layers x \(config.hidden), \(config.heads) heads, FFN \(config.ffn)); drop --preset: --from takes the model's size")
            }
        }
        let tokenizerPath = (from as NSString).appendingPathComponent(ModelDirectory.tokenizerFile)
        guard let bytes = FileManager.default.contents(atPath: tokenizerPath) else {
            throw CLIError("--from \(from): \(tokenizerPath) is missing; continued pretraining keeps the model's own tokenizer.json (graft import writes one for a transformers directory)")
        }
        let own = try loadTokenizer(tokenizerPath)
        if let tokenizer {
            let given = try loadTokenizer(tokenizer)
            guard tokenizerFingerprint(given) == tokenizerFingerprint(own) else {
                throw CLIError("--tokenizer \(tokenizer) is not the tokenizer of --from \(from) (\(tokenizerPath)): the model's embeddings belong to its own tokenizer; drop --tokenizer")
            }
        }
        let loaded: ModelDirectory.Loaded
        do {
            loaded = try ModelDirectory.open(from, as: config.kind == .bert ? "BertForMaskedLM" : "GPT2LMHeadModel", seed: seed)
        } catch let e as ModelError { throw CLIError("--from \(from): \(e)") }
        return Start(kind: config.kind, tokenizer: own, tokenizerPath: tokenizerPath, loaded: loaded, tokenizerFile: [UInt8](bytes))
    }

    private func train() throws {
        let seed = optimization.seed
        let start = try start(seed: seed)
        let kind = start.kind, tok = start.tokenizer, tokenizer = start.tokenizerPath
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
        try requireCorpusDatabase(db)
        let store = try CorpusStore(path: db)
        if dataParallel.isLeader, (try? store.tokenCacheStats(fingerprint: fingerprint))?.documents ?? 0 < (try store.documentCount()) {
            _ = try tokenizeCorpus(dbPath: db, tokenizer: tok, fingerprint: fingerprint)
        }
        try dataParallel.communicator?.barrier()   // the other ranks read the cache rank 0 built
        let separatorName = kind == .bert ? "[SEP]" : (tok.addedTokens.first { $0.special }?.content ?? "<|endoftext|>")
        guard let separator = tok.id(separatorName) else {
            throw CLIError("\(tokenizer): no \(separatorName) token to separate documents")
        }
        var config = start.loaded?.model.config ?? (preset ?? .mini).config(kind: kind, vocabSize: tok.vocabSize)
        if kind == .gpt && start.loaded == nil { config.maxPositions = seqLen }  // generation then stays within the trained positions
        let lm = languageModeling
        let blockLength = lm.blockLength(for: kind)
        let sep = Int32(separator)
        let trainBlocks: (Int) throws -> ExampleStream<[Int32]> = { epoch in
            let blocks = try store.packedBlocks(fingerprint: fingerprint, blockLength: blockLength, separator: sep,
                                                filter: DocumentFilter(part: .train), shuffleSeed: opts.seed &+ UInt64(epoch))
            var iterator = blocks.makeIterator()   // its reads throw: a lost page stops training
            return ExampleStream { try iterator.next() }
        }
        // An empty train split: say why (a file imported whole is one document, in one split)
        // rather than the trainer's "no training examples".
        let trainDocuments = try store.documentCount(DocumentFilter(part: .train))
        if trainDocuments == 0 {
            let all = try store.documentCount()
            throw CLIError("\(db): the train split holds none of the corpus's \(all) document(s)" +
                           (all < 20 ? "; a file added with --format text (the default for .txt) is one document and goes to one split whole: add it with --format lines or --format paragraphs" : "") +
                           " (graft corpus split shows the shares)")
        }
        // --epochs: the trainer needs the blocks in an epoch (one pass over the train split's cache).
        var blocksPerEpoch: Int?
        if opts.epochs != nil {
            let stream = try trainBlocks(0)
            var n = 0
            while try stream.next() != nil { n += 1 }
            guard n > 0 else { throw CLIError("\(db): the train split holds no block of \(blockLength) tokens to train on") }
            blocksPerEpoch = n
        }
        let trainDigest = try store.documentsDigest(fingerprint: fingerprint, filter: DocumentFilter(part: .train))
        let devBlocks = Array(try store.packedBlocks(fingerprint: fingerprint, blockLength: blockLength, separator: sep,
                                                      filter: DocumentFilter(part: .dev))
            .prefix(opts.evalBatches > 0 ? opts.evalBatches * opts.batchSize : Int.max))
        let configJSON = JSONValue.object([
            ("model", try JSONValue(encoding: config, sortedKeys: true)),
            ("training", try JSONValue(encoding: opts, sortedKeys: true)),
            ("objective", try JSONValue(encoding: lm, sortedKeys: true)),
            ("tokenizer", .string(fingerprint)), ("out", .string(out)), ("from", from.map { .string($0) } ?? .null)]).serialized()
        let model: LanguageModel
        if let loaded = start.loaded {
            guard let lm = loaded.model as? LanguageModel else { throw CLIError("--from \(from ?? ""): \(loaded.architecture.name) is not a language model") }
            model = lm
        } else {
            model = kind == .bert ? try BertForMaskedLM(config: config, seed: opts.seed) : try GPTForCausalLM(config: config, seed: opts.seed)
        }
        let sizeName = from.map { "from \($0)" } ?? (preset ?? .mini).rawValue
        func train<Objective: TrainingObjective>(_ objective: Objective) throws {
            let trainer = try Trainer(objective: objective, options: opts, outputDirectory: out, dataParallel: dataParallel)
            let run = dataParallel.isLeader ? try store.startRun(kind: "pretrain-\(kind.rawValue)", name: out, configJSON: configJSON) : nil
            if dataParallel.isLeader {
                if let loaded = start.loaded, !loaded.initialized.isEmpty {
                    printError("\(from ?? ""): \(loaded.architecture.name == "BertForMaskedLM" ? "no masked-LM head in the checkpoint; " : "")freshly initialised: \(loaded.initialized.joined(separator: ", "))")
                }
                if devBlocks.isEmpty {
                    printError("note: the dev split holds no block of \(blockLength) tokens, so nothing is evaluated and \(out)/best holds the last update's model (a corpus of a few large documents: add them with --format lines or paragraphs)")
                }
                printError("pretraining \(kind.rawValue) \(sizeName): \(model.store.count) parameters, vocabulary \(config.vocabSize), " +
                           "\(devBlocks.count) dev blocks; writing to \(out)" +
                           (dataParallel.size > 1 ? "; \(dataParallel.size) ranks x batch \(opts.batchSize) x accumulation \(opts.accumulation / dataParallel.size)" : ""))
            }
            try runTraining(trainer, resume: optimization.resume, record: run, label: "pretrain", out: out,
                            profile: optimization.profile) { e in
                let loss = e.metrics["loss"] ?? .nan
                return kind == .bert ? String(format: "dev MLM loss %.4f, accuracy %.3f", loss, e.metrics["accuracy"] ?? .nan)
                                     : String(format: "dev loss %.4f, perplexity %.1f", loss, e.metrics["perplexity"] ?? .nan)
            }
        }
        do {
            switch kind {
            case .bert:
                try train(try MaskedLMObjective(model: model, tokenizer: tok, options: lm, seed: opts.seed,
                                                trainBlocks: trainBlocks, devBlocks: devBlocks, tokenizerFile: start.tokenizerFile,
                                                blocksPerEpoch: blocksPerEpoch, trainDigest: trainDigest))
            case .gpt:
                try train(try CausalLMObjective(model: model, tokenizer: tok, options: lm, seed: opts.seed,
                                                trainBlocks: trainBlocks, devBlocks: devBlocks, tokenizerFile: start.tokenizerFile,
                                                blocksPerEpoch: blocksPerEpoch, trainDigest: trainDigest))
            }
        } catch let e as ModelError { throw CLIError("\(e)") }
    }
}
