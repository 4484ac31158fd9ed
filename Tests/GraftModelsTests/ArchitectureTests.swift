import GraftSupport
import Foundation
import Testing
import GraftEngine
import GraftTokenizers
@testable import GraftModels

/// A head model as a later module would add one: the BERT encoder with its pooler plus
/// `classifier.*`, HuggingFace `BertForSequenceClassification` names.
final class TestClassifier: PretrainedModel {
    let config: ModelConfig
    let store: ParameterStore
    let rng: SharedRNG
    let bert: BertModel
    let classifier: Linear
    var architecture: String { "TestBertForSequenceClassification" }

    init(config: ModelConfig, seed: UInt64) throws {
        self.config = config
        store = ParameterStore(seed: seed)
        rng = SharedRNG(seed: seed &+ 1)
        bert = try BertModel(config: config, store: store, rng: rng, pooler: true)
        classifier = try Linear(store, name: "classifier", inFeatures: config.hidden, outFeatures: 3)
    }

    static let entry = ModelArchitecture(
        name: "TestBertForSequenceClassification", family: .bert,
        weights: WeightMapping(prefix: "bert.", prefixOnExport: true, headPrefixes: ["classifier."],
                               ignoring: ModelRegistry.bertIgnoring, optional: [.prefix("classifier."), .prefix("pooler.")]),
        build: { try TestClassifier(config: $0.config, seed: $0.seed) })
}

@Suite struct ArchitectureTests {
    /// Writes `tensors` (name → shape, values 0.5) as a model directory with `config` naming `architecture`.
    static func writeDirectory(_ dir: URL, config: ModelConfig, architecture: String, tensors: [(String, [Int])]) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let buffers = tensors.map { t -> UnsafeMutablePointer<Float> in
            let n = t.1.reduce(1, *)
            let p = UnsafeMutablePointer<Float>.allocate(capacity: n)
            p.initialize(repeating: 0.5, count: n)
            return p
        }
        defer { buffers.forEach { $0.deallocate() } }
        let entries = zip(tensors, buffers).map { SafeTensors.Entry(name: $0.0.0, shape: $0.0.1, data: $0.1) }
        try SafeTensors.write(entries, metadata: ["format": "pt"], to: dir.appendingPathComponent("model.safetensors"))
        try Data(config.hfJSON(architecture: architecture).serialized().utf8).write(to: dir.appendingPathComponent("config.json"))
        try smallWordPieceTokenizer().save(to: dir.appendingPathComponent("tokenizer.json").path)
    }

    static func encoderTensors(_ config: ModelConfig, prefix: String) throws -> [(String, [Int])] {
        let encoder = try BertModel(config: config, seed: 1, pooler: true)
        return encoder.store.parameters.map { (prefix + $0.name, $0.shape) }
    }

    @Test func unknownArchitectureIsNamedWithTheKnownOnes() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cfg = tinyConfig(.bert, vocab: 24)
        try Self.writeDirectory(dir, config: cfg, architecture: "BertForMultipleChoice", tensors: try Self.encoderTensors(cfg, prefix: ""))
        do { _ = try ModelDirectory.open(dir.path); Issue.record("opened an unknown architecture") } catch let ModelError.badConfig(file, problem) {
            #expect(file == dir.appendingPathComponent("config.json").path)
            #expect(problem.contains("BertForMultipleChoice") && problem.contains("BertForMaskedLM") && problem.contains("BertModel"), "\(problem)")
        }
        // An architecture of the other family is refused too.
        #expect(throws: ModelError.self) { try ModelDirectory.open(dir.path, as: "GPT2LMHeadModel") }
    }

    @Test func extraAndMissingTensorsAreNamed() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cfg = tinyConfig(.bert, vocab: 24)
        // A sequence-classification checkpoint read as BertForMaskedLM: classifier.* is not a parameter.
        var tensors = try Self.encoderTensors(cfg, prefix: "bert.")
        tensors += [("classifier.weight", [3, 8]), ("classifier.bias", [3])]
        try Self.writeDirectory(dir, config: cfg, architecture: "BertForMaskedLM", tensors: tensors)
        do { _ = try ModelDirectory.open(dir.path); Issue.record("loaded unknown tensors") } catch let ModelError.badWeights(file, problem) {
            #expect(file.hasSuffix("model.safetensors"))
            #expect(problem.contains("classifier.weight") && problem.contains("classifier.bias") && problem.contains("BertForMaskedLM"), "\(problem)")
        }
        // An encoder tensor missing is an error naming it (the head may be missing, the encoder not).
        tensors = try Self.encoderTensors(cfg, prefix: "").filter { $0.0 != "encoder.layer.1.output.dense.bias" }
        try Self.writeDirectory(dir, config: cfg, architecture: "BertModel", tensors: tensors)
        do { _ = try ModelDirectory.open(dir.path, as: "BertForMaskedLM"); Issue.record("loaded with a missing tensor") } catch let ModelError.badWeights(_, problem) {
            #expect(problem.contains("encoder.layer.1.output.dense.bias"), "\(problem)")
        }
    }

    /// A registered head loads an HF-named checkpoint (`bert.` prefix, `classifier.*`), exports
    /// the same names, and loads its base encoder from a `BertModel` checkpoint with a fresh head.
    @Test func registeredHeadLoadsAndExportsByName() throws {
        ModelRegistry.register(TestClassifier.entry)
        #expect(ModelRegistry.names.contains("TestBertForSequenceClassification"))
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cfg = tinyConfig(.bert, vocab: 24)
        let model = try TestClassifier(config: cfg, seed: 5)
        randomize(model.store, seed: 6)
        let tok = try smallWordPieceTokenizer()
        let hf = dir.appendingPathComponent("hf").path
        try ModelDirectory.export(model, tokenizer: tok, to: hf)
        let f = try SafeTensors(contentsOf: URL(fileURLWithPath: hf + "/model.safetensors"))
        #expect(f.names.contains("bert.pooler.dense.weight") && f.names.contains("bert.embeddings.word_embeddings.weight"))
        #expect(f.names.contains("classifier.weight") && !f.names.contains("bert.classifier.weight"))
        let loaded = try ModelDirectory.open(hf)
        #expect(loaded.architecture.name == "TestBertForSequenceClassification" && loaded.initialized.isEmpty && loaded.ignored.isEmpty)
        let back = try #require(loaded.model as? TestClassifier)
        #expect(Array(UnsafeBufferPointer(start: back.store.values, count: back.store.count))
                == Array(UnsafeBufferPointer(start: model.store.values, count: model.store.count)))

        // A plain encoder checkpoint (with the MLM head and position ids) into the head: classifier fresh, cls.* ignored.
        let mlm = try BertForMaskedLM(config: cfg, seed: 7)
        let base = dir.appendingPathComponent("mlm").path
        try ModelDirectory.export(mlm, tokenizer: tok, to: base)
        let head = try ModelDirectory.open(base, as: "TestBertForSequenceClassification")
        #expect(Set(head.initialized) == ["pooler.dense.weight", "pooler.dense.bias", "classifier.weight", "classifier.bias"])
        #expect(Set(head.ignored) == Set(BertForMaskedLM.headParameterNames))
    }

    /// `randomWeights` (graft finetune --init random) builds the same model as the checkpoint
    /// would give but keeps the seeded initialisation: equal to a fresh model of that seed, and
    /// sharing no weights with the checkpoint.
    @Test func randomWeightsKeepTheSeededInitialisation() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cfg = tinyConfig(.bert, vocab: 24)
        let mlm = try BertForMaskedLM(config: cfg, seed: 7)
        randomize(mlm.store, seed: 8)
        let base = dir.appendingPathComponent("mlm").path
        try ModelDirectory.save(mlm, tokenizer: try smallWordPieceTokenizer(), to: base)
        let pretrained = try ModelDirectory.open(base, as: "BertForMaskedLM", seed: 3)
        let scratch = try ModelDirectory.open(base, as: "BertForMaskedLM", seed: 3, randomWeights: true)
        let fresh = try BertForMaskedLM(config: cfg, seed: 3)
        func values(_ m: any PretrainedModel) -> [Float] { Array(UnsafeBufferPointer(start: m.store.values, count: m.store.count)) }
        #expect(values(pretrained.model) == values(mlm))
        let s = values(scratch.model), f = values(fresh)
        #expect(s == f, "random weights are the architecture's seeded initialisation")
        let word = try #require(scratch.model.store.parameters.first { $0.name.hasSuffix("word_embeddings.weight") })
        let a = Array(UnsafeBufferPointer(start: scratch.model.store.value(word), count: word.count))
        let b = Array(UnsafeBufferPointer(start: mlm.store.value(word), count: word.count))
        #expect(zip(a, b).allSatisfy { $0 != $1 }, "no weight comes from the checkpoint")
        #expect(scratch.initialized.count == scratch.model.store.parameters.count && scratch.ignored.isEmpty)
    }

    /// Initial values left undrawn for the parameters a checkpoint will fill (ModelDirectory.open)
    /// change no other parameter's values and leave the generator where drawing them leaves it,
    /// for every registered architecture (half the parameters named, the other half compared bit
    /// for bit); a head missing from a checkpoint gets the values a fresh model of that seed has.
    @Test func undrawnInitialValuesLeaveTheOthersAsDrawn() throws {
        var compared = 0
        for name in ModelRegistry.names {
            guard let entry = ModelRegistry.architecture(named: name) else { continue }
            var cfg = tinyConfig(entry.family, vocab: 24)
            cfg.labels = ["a", "b", "c"]
            let eager: any PretrainedModel
            do { eager = try ModelRegistry.build(name, config: cfg, seed: 11) } catch { continue }
            let all = eager.store.parameters.map(\.name)
            let named = Set(all.enumerated().filter { $0.offset % 2 == 0 }.map(\.element))
            let lazy = try ParameterStore.withInitialValues(comingFrom: named) { try ModelRegistry.build(name, config: cfg, seed: 11) }
            #expect(!lazy.store.deferredParameters.isEmpty && Set(lazy.store.deferredParameters).isSubset(of: named), "\(name)")
            #expect(eager.store.rng == lazy.store.rng, "\(name): the generator ends elsewhere")
            for p in eager.store.parameters where !named.contains(p.name) {
                let q = try lazy.store.parameter(named: p.name)
                let x = Array(UnsafeBufferPointer(start: eager.store.value(p), count: p.count))
                let y = Array(UnsafeBufferPointer(start: lazy.store.value(q), count: q.count))
                #expect(x.map(\.bitPattern) == y.map(\.bitPattern), "\(name): \(p.name) differs")
            }
            compared += 1
        }
        #expect(compared >= 6, "only \(compared) architectures built")

        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var cfg = tinyConfig(.bert, vocab: 24)
        let mlm = try BertForMaskedLM(config: cfg, seed: 7)
        let base = dir.appendingPathComponent("mlm").path
        try ModelDirectory.save(mlm, tokenizer: try smallWordPieceTokenizer(), to: base)
        let opened = try ModelDirectory.open(base, as: "BertForSequenceClassification", labels: ["a", "b", "c"], seed: 5)
        cfg.labels = ["a", "b", "c"]
        let fresh = try ModelRegistry.build("BertForSequenceClassification", config: cfg, seed: 5)
        #expect(opened.initialized.contains("classifier.weight") && opened.model.store.deferredParameters.isEmpty)
        #expect(!opened.initialized.contains { $0.hasPrefix("embeddings.") || $0.hasPrefix("encoder.") })
        for name in opened.initialized {
            let p = try opened.model.store.parameter(named: name), q = try fresh.store.parameter(named: name)
            let x = Array(UnsafeBufferPointer(start: opened.model.store.value(p), count: p.count))
            let y = Array(UnsafeBufferPointer(start: fresh.store.value(q), count: q.count))
            #expect(x.map(\.bitPattern) == y.map(\.bitPattern), "\(name) differs from a fresh model's")
        }
    }

    /// A head's class names round-trip through config.json as HF's id2label / label2id / num_labels.
    @Test func labelsRoundTripThroughConfig() throws {
        var cfg = tinyConfig(.bert, vocab: 24)
        cfg.labels = ["negative", "neutral", "positive"]
        let json = cfg.hfJSON(architecture: "BertForSequenceClassification")
        #expect(json["num_labels"]?.int == 3 && json["id2label"]?["2"]?.string == "positive" && json["label2id"]?["neutral"]?.int == 1)
        #expect(json["architectures"] == .array([.string("BertForSequenceClassification")]))
        #expect(try ModelConfig(hfJSON: JSONValue.parse(json.serialized()), path: "c.json") == cfg)
        let bad = try JSONValue.parse(#"{"model_type": "bert", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 4, "id2label": {"0": "a", "5": "b"}}"#)
        #expect(throws: ModelError.self) { try ModelConfig(hfJSON: bad, path: "c.json") }
        // id2label decides, as in transformers: a num_labels or label2id that says otherwise (as
        // transformers 4.36's run_classification.py wrote) does not stop the model loading.
        let sizes = #""model_type": "bert", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 4, "id2label": {"0": "a", "1": "b"}"#
        for extra in [#""num_labels": 3"#, #""label2id": {"negative": 0, "positive": 1}"#] {
            #expect(try ModelConfig(hfJSON: JSONValue.parse("{\(sizes), \(extra)}"), path: "c.json").labels == ["a", "b"])
        }
    }
}
