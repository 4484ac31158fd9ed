import Foundation
import GraftEngine
import GraftModels
import Testing
@testable import GraftTasks

/// Token-classification loss weighting across length-grouped batches: with `uniform` a batch's
/// gradient is the sum of its labelled tokens' losses over the epoch's mean labelled tokens per
/// batch (every token weighs the same over an epoch, as under random batches), with `batch` its
/// own mean. Fixtures: ``AdaptationTests``' tiny tagger and four sentences (5, 5, 7 and 4 words).
struct TokenWeightingTests {
    static func objective(_ weighting: TokenWeighting, batchSize: Int = 2, weights: Bool = false)
        throws -> FineTuningObjective<TaggingPlugin>
    {
        let spec = try AdaptationTests.spec(AdaptationTests.directory(), data: "train = \"x.txt\"")
        var options = FineTuningOptions()
        options.batchSize = batchSize
        options.tokenWeighting = weighting
        let objective = try FineTuningObjective(plugin: try TaggingPlugin(spec: spec), model: try AdaptationTests.tagger(),
                                                tokenizer: AdaptationTests.tokenizer,
                                                sources: [TrainingSource(examples: try AdaptationTests.sourceSentences())], dev: [],
                                                options: options, specFile: spec.path)
        return objective
    }

    /// Labelled positions of a window (its first subwords).
    static func labelled(_ feature: TaskFeature) -> Int {
        guard case .tokenLabels(let l)? = feature.target else { return 0 }
        return l.filter { $0 != ignoreIndex }.count
    }

    /// The gradient buffer after one loss + backward of `rows` (scale 1).
    static func gradient(_ objective: FineTuningObjective<TaggingPlugin>, rows: [Int]) throws -> [Float] {
        objective.store.zeroGrads()
        let batch = try objective.trainingBatch(rows)
        _ = try objective.loss(batch, training: true)
        try objective.backward(scale: 1)
        return Array(UnsafeBufferPointer(start: objective.store.grads, count: objective.store.count))
    }

    @Test func meanTokensPerBatchCountsLabelledPositionsOverTheEpochsBatches() throws {
        let uniform = try Self.objective(.uniform)
        let counts = uniform.train.map(Self.labelled)
        #expect(counts == [5, 5, 7, 4], "one label per word: \(counts)")
        // 21 labelled tokens in ceil(4 / 2) = 2 batches.
        #expect(uniform.tokensPerBatch == 10.5)
        #expect(try Self.objective(.uniform, batchSize: 3).tokensPerBatch == 21.0 / 2)
        #expect(try Self.objective(.uniform, batchSize: 4).tokensPerBatch == 21)
        #expect(try Self.objective(.batch).tokensPerBatch == nil)
        #expect(uniform.settings.contains("token_weighting=uniform"))
        // Sequence classification has one target per window: nothing to re-weigh.
        #expect(try FineTuningSpectrumTests.sentimentObjective(FineTuningOptions()).tokensPerBatch == nil)
    }

    /// The same model and batch: the uniform gradient is the batch-mean one times
    /// labelled tokens / mean tokens per batch, so a batch of short sentences weighs less.
    @Test func uniformGradientIsTheTokenSumOverTheEpochMean() throws {
        for rows in [[3], [0, 2], [2, 1, 3]] {
            let uniform = try Self.objective(.uniform), perBatch = try Self.objective(.batch)
            let g = try Self.gradient(uniform, rows: rows), h = try Self.gradient(perBatch, rows: rows)
            let tokens = Double(rows.map { Self.labelled(uniform.train[$0]) }.reduce(0, +))
            let factor = Float(tokens / 10.5)
            var worst: Float = 0, norm: Float = 0
            for i in g.indices { worst = max(worst, abs(g[i] - factor * h[i])); norm = max(norm, abs(h[i])) }
            #expect(norm > 0 && worst <= 1e-6 * max(norm, 1), "rows \(rows): \(worst) against \(norm)")
            #expect(factor != 1)
        }
    }

    /// The uniform gradient against finite differences of `Σ ℓ / N̄` (dropout off).
    @Test func uniformGradientMatchesFiniteDifferencesOfTheSummedLoss() throws {
        let objective = try Self.objective(.uniform)
        let rows = [2, 3]
        let g = try Self.gradient(objective, rows: rows)
        let batch = try objective.trainingBatch(rows)
        let tokens = Double(rows.map { Self.labelled(objective.train[$0]) }.reduce(0, +))
        func summed() throws -> Double { Double(try objective.loss(batch, training: false).loss) * tokens / 10.5 }
        let classifier = try #require(objective.store.parameters.first { $0.name == "classifier.weight" })
        let values = objective.store.values
        for k in [0, 7, 33] {
            let i = classifier.offset + k, x = values[i], eps: Float = 1e-2
            values[i] = x + eps; let up = try summed()
            values[i] = x - eps; let down = try summed()
            values[i] = x
            let numeric = (up - down) / Double(2 * eps)
            #expect(abs(numeric - Double(g[i])) <= 2e-3 * max(1, abs(numeric)), "classifier.weight[\(k)]: \(numeric) vs \(g[i])")
        }
    }

    @Test func specKeyAndItsErrors() throws {
        let dir = AdaptationTests.directory()
        let ok = try AdaptationTests.spec(dir, data: "train = \"x.txt\"", extra: "[train]\ntoken_weighting = \"batch\"")
        #expect(ok.training.tokenWeighting == .batch)
        /// A spec `[train] token_weighting = value` of task `kind` must be refused with an error naming
        /// the file, the key and `reason`.
        func expectRefused(kind: String, labels: String, value: String, reason: String) throws {
            let path = dir + "/\(kind)-\(value).toml"
            try Data("name = \"t\"\nkind = \"\(kind)\"\nlabels = [\(labels)]\n[train]\ntoken_weighting = \"\(value)\"\n".utf8)
                .write(to: URL(fileURLWithPath: path))
            let e = taskError { _ = try TaskSpec.load(path) }
            #expect(e.map { "\($0)".contains("train.token_weighting") && "\($0)".contains(reason) && "\($0)".contains(path) } == true,
                    "\(String(describing: e))")
        }
        try expectRefused(kind: "ner", labels: "\"PER\"", value: "tokens", reason: "uniform, batch")
        // A task with one target per window has no tokens to weigh.
        try expectRefused(kind: "sentiment", labels: "\"neg\", \"pos\"", value: "batch", reason: "only tagging")
    }
}
