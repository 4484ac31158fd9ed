import ArgumentParser
import Foundation
import GraftEngine
import GraftModels
import GraftSupport
import GraftTasks

/// `graft classify --adapt tca`: classification across a domain shift without a fine-tuned
/// model, the classical feature-alignment baseline. The `--model`'s sentence embeddings (mean
/// pooling, as `graft embed`) of the labelled source (`--train`, TSV) and the unlabelled target
/// texts (`--target`) are projected by transfer component analysis (``TransferComponentAnalysis``)
/// so that their MMD is small, a logistic regression is fitted on the projected source, and the
/// input documents (embedded and projected alike) are classified with it.
struct TCAOptions: ParsableArguments {
    enum Method: String, ExpressibleByArgument, CaseIterable { case tca }
    enum KernelChoice: String, ExpressibleByArgument, CaseIterable { case linear, rbf }

    @Option(help: "Classify without a fine-tuned model: tca (transfer component analysis of the --model's sentence embeddings of --train and --target, then logistic regression on the projected --train data).")
    var adapt: Method?
    @Option(help: "With --adapt: the labelled source data (TSV label<TAB>text).") var train: String?
    @Option(help: "With --adapt: unlabelled target-domain texts, one per line.") var target: String?
    @Option(help: "With --adapt tca: transfer components kept.") var components: Int = 30
    @Option(help: "With --adapt tca: the trade-off μ (larger keeps more variance, smaller aligns more).") var mu: Double = 1
    @Option(help: "With --adapt tca: the kernel: linear, or rbf with the median-heuristic bandwidth.") var kernel: KernelChoice = .linear
    @Option(name: .customLong("max-texts"), help: "With --adapt tca: at most this many source and this many target texts (a seeded sample; at most \(TransferComponentAnalysis.maxPoints / 2) each, the kernel being n × n).")
    var maxTexts: Int = TransferComponentAnalysis.maxPoints / 2
    @Option(help: "With --adapt tca: the seed of the sample.") var seed: UInt64 = 42
}

/// At most `limit` of `items`, a seeded sample kept in input order.
func seededSample<T>(_ items: [T], limit: Int, seed: UInt64) -> [T] {
    guard items.count > limit else { return items }
    var rng = SplitMix64(seed: seed)
    var order = Array(items.indices)
    order.shuffle(using: &rng)
    return order.prefix(limit).sorted().map { items[$0] }
}

extension ClassifyCommand {
    /// `--adapt tca`: fits TCA and the classifier, then classifies `files` (JSON Lines as `classify`).
    func classifyAdapted() throws {
        guard let train = tca.train, let target = tca.target else {
            throw CLIError("--adapt tca needs --train SOURCE.tsv (labelled) and --target FILE (unlabelled target texts, one per line)")
        }
        guard tca.maxTexts >= 2, tca.maxTexts <= TransferComponentAnalysis.maxPoints / 2 else {
            throw CLIError("--max-texts must be between 2 and \(TransferComponentAnalysis.maxPoints / 2) (the TCA kernel is n × n over source and target)")
        }
        try Engine.withThreads(inference.threads ?? Engine.defaultThreads) {
            let embedder: SentenceEmbedder
            do { embedder = try SentenceEmbedder(directory: inference.model, batchSize: inference.batchSize) } catch { throw CLIError("\(error)") }
            var source: [TextExample]
            do { source = try TSVReader.read(train) } catch let e as TaskError { throw CLIError("\(e)") }
            var targetTexts = try readDocuments([target]).map(\.text).filter { !isBlank($0) }
            guard !source.isEmpty else { throw CLIError("\(train): no labelled examples") }
            guard !targetTexts.isEmpty else { throw CLIError("\(target): no texts") }
            let counts = (source.count, targetTexts.count)
            source = seededSample(source, limit: tca.maxTexts, seed: tca.seed)
            targetTexts = seededSample(targetTexts, limit: tca.maxTexts, seed: tca.seed &+ 1)
            if source.count < counts.0 || targetTexts.count < counts.1 {
                printError("sampled \(source.count) of \(counts.0) source and \(targetTexts.count) of \(counts.1) target texts (--max-texts \(tca.maxTexts), seed \(tca.seed))")
            }
            let labels = Array(Set(source.compactMap(\.label))).sorted()
            guard labels.count >= 2 else { throw CLIError("\(train): needs at least 2 labels, found \(labels)") }
            let d = embedder.encoder.config.hidden
            let xs = try embedder.embed(source.map(\.text)).flatMap { $0 }, xt = try embedder.embed(targetTexts).flatMap { $0 }
            let ns = source.count, nt = targetTexts.count
            let kernel: EmbeddingKernel = tca.kernel == .linear ? .linear : EmbeddingKernel.medianHeuristic(xs + xt, n: ns + nt, d: d)
            let components = min(tca.components, ns + nt)
            let model: TransferComponentAnalysis
            let classifier: LogisticRegression
            do {
                model = try TransferComponentAnalysis(source: xs, sourceCount: ns, target: xt, targetCount: nt, dimension: d,
                                                      kernel: kernel, components: components, mu: tca.mu)
                classifier = try LogisticRegression(features: model.projectedSource, count: ns, dimension: components,
                                                    labels: source.map { labels.firstIndex(of: $0.label!)! }, classes: labels.count)
            } catch let e as ModelError { throw CLIError("\(e)") }
            let before = relativeLinearMMD(xs, xt, n: ns, m: nt, d: d)
            let after = relativeLinearMMD(model.projectedSource, model.projectedTarget, n: ns, m: nt, d: components)
            printError(String(format: "TCA (%@ kernel, %d components, μ %g) on %d source + %d target texts: linear MMD² / total variance %.4g before, %.4g after",
                              tca.kernel.rawValue, components, tca.mu, ns, nt, before, after))
            let documents = try readDocuments(files)
            let out = OutputBuffer()
            let chunk = 512
            for start in stride(from: 0, to: documents.count, by: chunk) {
                let part = documents[start..<min(documents.count, start + chunk)]
                let run = part.filter { !isBlank($0.text) }
                let z = try model.project(try embedder.embed(run.map(\.text)).flatMap { $0 }, count: run.count)
                var probabilities = try classifier.probabilities(z, count: run.count)[...]
                for doc in part {
                    guard !isBlank(doc.text), let p = probabilities.popFirst() else {
                        out.write(JSONValue.object([("text", .string(doc.text)), ("label", .null), ("scores", .object([]))]).serialized() + "\n")
                        continue
                    }
                    let best = p.indices.max { p[$0] < p[$1] }!
                    let scores = labels.indices.map { (labels[$0], JSONValue.number((p[$0] * 1e6).rounded() / 1e6)) }
                    out.write(JSONValue.object([("text", .string(doc.text)), ("label", .string(labels[best])), ("scores", .object(scores))]).serialized() + "\n")
                }
            }
            try out.flush()
        }
    }
}
