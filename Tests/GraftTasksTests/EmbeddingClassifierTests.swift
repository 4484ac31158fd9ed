import Foundation
import GraftEngine
import GraftModels
import GraftTokenizers
import Testing
@testable import GraftTasks

/// Zero- and few-shot classification with a sentence-embedding model (`EmbeddingClassifierHead`)
/// on a tiny random BERT encoder, against expectations computed by hand from the embedder.
struct EmbeddingClassifierTests {
    static func embedder() throws -> SentenceEmbedder {
        let config = ModelConfig(kind: .bert, vocabSize: bertTokenizer.vocabSize, hidden: 16, layers: 2, heads: 2, ffn: 32,
                                 maxPositions: 64, dropout: 0, attentionDropout: 0, padTokenId: 0)
        return SentenceEmbedder(encoder: try BertModel(config: config, seed: 17), tokenizer: bertTokenizer)
    }

    static let classes = [ClassDescription(label: "pos", description: "a wonderful , moving film"),
                          ClassDescription(label: "neg", description: "dull and tedious from start to end")]

    @Test func labelsParseAndBadLabelsAreRefused() throws {
        let c = try ClassDescription.parse(" positive = a great, enjoyable film ;negative=a dull, bad film", requireDescriptions: true)
        #expect(c == [ClassDescription(label: "positive", description: "a great, enjoyable film"),
                      ClassDescription(label: "negative", description: "a dull, bad film")])
        #expect(try ClassDescription.parse("pos;neg", requireDescriptions: false).map(\.description) == [nil, nil])
        func message(_ text: String, descriptions: Bool = true) -> String {
            do { _ = try ClassDescription.parse(text, requireDescriptions: descriptions); return "" } catch { return "\(error)" }
        }
        #expect(message("pos=good;;neg=bad").contains("entry 2 is empty"))
        #expect(message("pos=good;=bad").contains("empty label"))
        #expect(message("pos=good;neg=").contains("\"neg\" has an empty description"))
        #expect(message("pos=good;pos=great").contains("label \"pos\" is given twice"))
        #expect(message("pos=good").contains("at least two"))
        #expect(message("pos=good;neg").contains("class \"neg\" has no description"))
        #expect(message("pos;neg", descriptions: false) == "")
    }

    /// A text identical to a label's description is classified as that label; the scores are
    /// softmax(cos / T) of the embedder's own embeddings.
    @Test func zeroShotScoresAreTheSoftmaxOfCosines() throws {
        let embedder = try Self.embedder()
        let temperature: Float = 0.5
        let head = try EmbeddingClassifierHead(embedder: embedder, classes: Self.classes, temperature: temperature)
        let descriptions = try embedder.embed(Self.classes.map { $0.description! })
        #expect(zip(head.prototypes, descriptions).allSatisfy { zip($0, $1).allSatisfy { abs($0 - $1) < 1e-6 } },
                "zero-shot prototypes are the descriptions' embeddings")
        let m = try TaskModel.embeddingClassifier(try Self.saved(embedder), classes: Self.classes, temperature: temperature)
        let plugin = try #require(m.plugin as? TextClassificationPlugin)
        let texts = ["dull and tedious from start to end", "a wonderful , moving film", "the cast is fine"]
        let runner = try TaskRunner(plugin: plugin, head: m.head, tokenizer: m.tokenizer, batchSize: 2)
        var predictions: [ClassPrediction] = []
        try runner.predict(texts.map { TextExample(id: $0, text: $0, label: nil) }) { _, _, p in predictions.append(p) }
        #expect(predictions.map(\.label).prefix(2) == ["neg", "pos"])
        for (text, p) in zip(texts, predictions) {
            let e = try embedder.embed([text])[0]
            let cos = descriptions.map { SentenceEmbedder.cosine(e, $0) / Double(temperature) }
            let mx = cos.max()!
            let z = cos.map { exp($0 - mx) }.reduce(0, +)
            for (k, c) in Self.classes.enumerated() {
                #expect(abs(p.scores[c.label]! - exp(cos[k] - mx) / z) < 1e-5, "\(text): \(p.scores)")
            }
        }
    }

    /// Few-shot prototypes are the normalised mean of the examples' embeddings (and the
    /// description's, when the class has one); a label outside --labels is an error naming the line.
    @Test func fewShotPrototypesAreNormalisedMeans() throws {
        let embedder = try Self.embedder()
        let dir = try Self.saved(embedder)
        let file = temporaryFile("shots.tsv", "label\ttext\npos\tgreat fun\nneg\tboring\npos\ta joy to watch\n")
        let m = try TaskModel.embeddingClassifier(dir, classes: nil, examplesFile: file, temperature: 0.05)
        let head = try #require(m.head as? EmbeddingClassifierHead)
        #expect(head.labels == ["pos", "neg"] && m.spec.name == "few-shot")
        func normalisedMean(_ texts: [String]) throws -> [Float] {
            let e = try embedder.embed(texts)
            var mean = [Double](repeating: 0, count: e[0].count)
            for v in e { for i in mean.indices { mean[i] += Double(v[i]) / Double(e.count) } }
            let norm = mean.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return mean.map { Float($0 / norm) }
        }
        func close(_ a: [Float], _ b: [Float]) -> Bool { zip(a, b).allSatisfy { abs($0 - $1) < 1e-6 } }
        #expect(close(head.prototypes[0], try normalisedMean(["great fun", "a joy to watch"])))
        #expect(close(head.prototypes[1], try normalisedMean(["boring"])))
        let unit = head.prototypes.map { $0.reduce(0) { $0 + Double($1) * Double($1) } }
        #expect(unit.allSatisfy { abs($0 - 1) < 1e-6 })

        let described = try TaskModel.embeddingClassifier(dir, classes: Self.classes, examplesFile: file, temperature: 0.05)
        let h2 = try #require(described.head as? EmbeddingClassifierHead)
        #expect(close(h2.prototypes[0], try normalisedMean(["great fun", "a joy to watch", Self.classes[0].description!])))

        let bad = temporaryFile("bad-shots.tsv", "pos\tgreat fun\nmeh\tso-so\n")
        let error = taskError { _ = try TaskModel.embeddingClassifier(dir, classes: Self.classes, examplesFile: bad, temperature: 0.05) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("bad-shots.tsv:2") && "\(error!)".contains("unknown label \"meh\""))
        let one = temporaryFile("one-class.tsv", "pos\tgreat fun\n")
        #expect(taskError { _ = try TaskModel.embeddingClassifier(dir, classes: nil, examplesFile: one, temperature: 0.05) } != nil)
        #expect(taskError { _ = try EmbeddingClassifierHead(embedder: embedder, classes: Self.classes, temperature: 0) } != nil)
        let bare = [ClassDescription(label: "pos", description: nil), ClassDescription(label: "neg", description: "dull")]
        let missing = taskError { _ = try EmbeddingClassifierHead(embedder: embedder, classes: bare, temperature: 1) }
        #expect("\(missing!)".contains("\"pos\" has neither a description nor an example"))
        // Nothing to train.
        #expect(throws: TaskError.self) { try head.backward(scale: 1) }
    }

    /// Writes the tiny encoder as a model directory (the directory `--model` names).
    static func saved(_ embedder: SentenceEmbedder) throws -> String {
        let dir = makeTemporaryDirectory() + "/encoder"
        try ModelDirectory.save(embedder.encoder, tokenizer: bertTokenizer, to: dir)
        return dir
    }
}
