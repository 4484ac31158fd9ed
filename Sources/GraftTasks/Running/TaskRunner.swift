import Foundation
import GraftTokenizers

/// Runs a task's head over examples for inference and evaluation, streaming: examples are taken
/// in chunks, each chunk's windows are batched by length (so padding stays near zero), run
/// through the head without keeping anything for a backward pass, decoded, and handed out in
/// input order before the next chunk starts. Memory holds one chunk's windows and outputs, not
/// the whole input's logits.
public struct TaskRunner<Plugin: TaskPlugin> {
    public let plugin: Plugin
    public let head: TaskHead
    public let tokenizer: Tokenizer
    /// Windows per forward pass.
    public var batchSize: Int
    /// Examples per chunk (bounds memory: one chunk's windows and outputs are held at a time).
    public var chunkSize: Int
    /// The token id batches are padded with.
    public var padID: Int32

    public init(plugin: Plugin, head: TaskHead, tokenizer: Tokenizer, batchSize: Int = 32, chunkSize: Int = 2048) throws {
        guard batchSize > 0, chunkSize > 0 else {
            throw TaskError.invalidArgument("batch size and chunk size must be positive (got \(batchSize), \(chunkSize))")
        }
        self.plugin = plugin
        self.head = head
        self.tokenizer = tokenizer
        self.batchSize = batchSize
        self.chunkSize = chunkSize
        padID = tokenizer.padding?.padId ?? tokenizer.id("[PAD]").map(Int32.init) ?? 0
    }

    /// Predicts every example, calling `emit(index, example, prediction)` in input order.
    /// `progress(done, tokens)` is called after each batch with the examples finished so far and
    /// the real tokens computed in that batch. With `chunks`, only the chunks (examples
    /// `c * chunkSize ..< (c + 1) * chunkSize`) whose index `c` it accepts are run and emitted,
    /// each exactly as in a run over all of them (data-parallel tagging splits chunks by rank).
    public func predict(_ examples: [Plugin.Example],
                        chunks: ((Int) -> Bool)? = nil,
                        progress: ((_ examplesDone: Int, _ tokens: Int) -> Void)? = nil,
                        emit: (Int, Plugin.Example, Plugin.Prediction) throws -> Void) throws {
        var start = 0
        while start < examples.count {
            let end = min(examples.count, start + chunkSize)
            if let chunks, !chunks(start / chunkSize) {
                start = end
                continue
            }
            var features: [TaskFeature] = []
            var ranges: [Range<Int>] = []
            for i in start..<end {
                let f = try plugin.features(examples[i], index: i, tokenizer: tokenizer)
                ranges.append(features.count..<(features.count + f.count))
                features += f
            }
            var outputs = [HeadOutput?](repeating: nil, count: features.count)
            for rows in FeatureBatch.lengthGrouped(features, batchSize: batchSize, seed: nil) {
                let batch = FeatureBatch(features, rows: rows, padID: padID)
                let out = try head.forward(batch)
                for (r, o) in zip(rows, out) { outputs[r] = o }
                progress?(start, batch.lengths.reduce(0, +))
            }
            for (k, i) in (start..<end).enumerated() {
                let r = ranges[k]
                let outs = outputs[r].map { $0! }
                try emit(i, examples[i], try plugin.decode(examples[i], features: Array(features[r]), outputs: outs))
            }
            start = end
            progress?(start, 0)
        }
    }

    /// Scores the head on labelled examples with the task's metric.
    public func evaluate(_ examples: [Plugin.Example], progress: ((Int, Int) -> Void)? = nil) throws -> TaskScores {
        var evaluator = plugin.makeEvaluator()
        try predict(examples, progress: progress) { _, example, prediction in try evaluator.add(example, prediction) }
        return evaluator.scores
    }
}
