import Foundation
import GraftCorpus
import GraftEngine
import GraftModels
import GraftSupport
import GraftTokenizers
import Testing
@testable import GraftTasks

/// Domain adaptation (issue 13): label maps on data sources, the `[target]` section and its bad
/// input, the multi-source sampler, instance weighting and domain-adversarial training on tiny
/// models (no shared data), and the shipped benchmark specs on the shared data (skipped without).
@Suite struct AdaptationTests {
    // MARK: Fixtures

    static let words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "john", "smith", "lives", "in", "paris", "acme", "rocks",
                        "the", "cat", "sat", "on", "mat", ".", "lol", "omg", "u", "r", "so", "cool", "went", "to", "london", "mary"]
    static let tokenizer: Tokenizer = try! Tokenizer.bert(vocab: Vocabulary(tokens: words))

    /// A WNUT-style file: `token<TAB>tag`, types person, geo-loc, company.
    static let wnutText = "john\tB-person\nsmith\tI-person\nlives\tO\nin\tO\nparis\tB-geo-loc\n\nacme\tB-company\nrocks\tO\n\nomg\tO\nmary\tB-person\nso\tO\ncool\tO\n"
    static let mapText = """
        description = "test map"
        [types]
        person = "PER"
        geo-loc = "LOC"
        company = "ORG"
        """

    /// A fresh temporary folder, as the spec reader writes paths (standardized).
    static func directory() -> String { URL(fileURLWithPath: makeTemporaryDirectory()).standardizedFileURL.path }

    /// A tiny BERT token classifier over ``words`` (hidden 16, 2 layers) with CoNLL's 9 tags.
    static func tagger(dropout: Float = 0, seed: UInt64 = 5) throws -> BertForTokenClassification {
        var config = ModelConfig(kind: .bert, vocabSize: words.count, hidden: 16, layers: 2, heads: 2, ffn: 32, maxPositions: 64,
                                 dropout: dropout, attentionDropout: dropout, padTokenId: 0)
        config.labels = try LabelSet.tagging(entityTypes: ["PER", "ORG", "LOC", "MISC"], scheme: .iob2).labels
        return try BertForTokenClassification(config: config, numLabels: 9, seed: seed)
    }

    static func spec(_ dir: String, data: String, extra: String = "") throws -> TaskSpec {
        let path = dir + "/task.toml"
        try Data("""
            name = "t"
            kind = "ner"
            labels = ["PER", "ORG", "LOC", "MISC"]
            [data]
            \(data)
            [model]
            max_length = 16
            \(extra)
            """.utf8).write(to: URL(fileURLWithPath: path))
        return try TaskSpec.load(path)
    }

    static func sourceSentences() throws -> [TaggedSentence] {
        try [
            TaggedSentence(id: "s1", words: ["John", "lives", "in", "Paris", "."], tags: ["B-PER", "O", "O", "B-LOC", "O"], scheme: .iob2),
            TaggedSentence(id: "s2", words: ["Mary", "went", "to", "London", "."], tags: ["B-PER", "O", "O", "B-LOC", "O"], scheme: .iob2),
            TaggedSentence(id: "s3", words: ["the", "cat", "sat", "on", "the", "mat", "."], tags: ["O", "O", "O", "O", "O", "O", "O"], scheme: .iob2),
            TaggedSentence(id: "s4", words: ["Acme", "rocks", "in", "London"], tags: ["B-ORG", "O", "O", "B-LOC"], scheme: .iob2),
        ]
    }

    static let targetTexts = ["omg u r so cool lol", "john smith lol", "paris so cool", "u went to london lol omg"]
        .enumerated().map { TextExample(id: "t\($0.offset)", text: $0.element, label: nil) }

    /// The windows of ``sourceSentences()`` (one each).
    static func sourceFeatures(_ plugin: TaggingPlugin) throws -> [TaskFeature] {
        try sourceSentences().enumerated().flatMap { try plugin.features($1, index: $0, tokenizer: tokenizer) }
    }

    static func plugin(_ dir: String) throws -> TaggingPlugin {
        try TaggingPlugin(spec: try spec(dir, data: "train = \"x.txt\""))
    }

    // MARK: Label maps

    @Test func labelMapRenamesTypesAndKeepsPrefixes() throws {
        let dir = Self.directory()
        let data = dir + "/wnut.txt", map = dir + "/map.toml"
        try Data(Self.wnutText.utf8).write(to: URL(fileURLWithPath: data))
        try Data(Self.mapText.utf8).write(to: URL(fileURLWithPath: map))
        let spec = try Self.spec(dir, data: "train = { file = \"wnut.txt\", label_map = \"map.toml\" }")
        #expect(spec.train == .mapped(.file(data), labelMap: map))
        let sentences = try TaggingPlugin(spec: spec).examples(from: spec.train!)
        #expect(sentences.map { $0.tags! } == [["B-PER", "I-PER", "O", "O", "B-LOC"], ["B-ORG", "O"], ["O", "B-PER", "O", "O"]])
        #expect(sentences[0].entities.map(\.type) == ["PER", "LOC"])
        #expect(sentences[0].entities.map { scalarSlice(sentences[0].text, $0.start..<$0.end) } == ["john smith", "paris"])
        // `graft evaluate --label-map` reads the same way.
        #expect(try TaggingPlugin(spec: spec).examples(from: .mapped(.file(data), labelMap: map)) == sentences)
    }

    @Test func labelMapErrorsNameTheFileAndKeyOrLine() throws {
        let dir = Self.directory()
        let data = dir + "/wnut.txt", map = dir + "/map.toml"
        try Data(Self.wnutText.utf8).write(to: URL(fileURLWithPath: data))
        let plugin = try Self.plugin(dir)
        func read(_ mapText: String) -> TaskError? {
            try? Data(mapText.utf8).write(to: URL(fileURLWithPath: map))
            return taskError { _ = try plugin.examples(from: .mapped(.file(data), labelMap: map)) }
        }
        // A mapped type the data lacks: the map file and its key.
        guard case .badValue(let file, let key, _, let expected)? = read(Self.mapText + "\nmovie = \"MISC\"\n") else {
            Issue.record("a type absent from the data must be refused"); return
        }
        #expect(file == map && key == "types.movie" && expected.contains(data) && expected.contains("geo-loc"))
        // A type of the data the map does not cover: the data file and line, and the map.
        guard case .malformed(let at, let reason)? = read("[types]\nperson = \"PER\"\ngeo-loc = \"LOC\"\n") else {
            Issue.record("a data type outside the map must be refused"); return
        }
        #expect(at.file == data && at.line == 7 && reason.contains("B-company") && reason.contains(map))
        // A target that is not one of the task's types.
        guard case .badValue(let f2, let k2, _, let e2)? = read("[types]\nperson = \"PERSON\"\ngeo-loc = \"LOC\"\ncompany = \"ORG\"\n") else {
            Issue.record("a target outside the task's types must be refused"); return
        }
        #expect(f2 == map && k2 == "types.person" && e2.contains("MISC"))
        #expect(read("[kinds]\nperson = \"PER\"\n") == .unknownKey(file: map, key: "kinds", suggestion: nil))
        #expect(read("description = \"x\"\n") == .missingKey(file: map, key: "types"))
        guard case .unreadable(let f3, _)? = taskError({ _ = try LabelMap.load(dir + "/missing.toml") }) else {
            Issue.record("a missing map must be refused"); return
        }
        #expect(f3 == dir + "/missing.toml")
        // In the spec: a misspelt key of a source table, a label map without a target dev set.
        #expect(taskError { _ = try Self.spec(dir, data: "train = { file = \"wnut.txt\", labelmap = \"map.toml\" }") }
                == .unknownKey(file: dir + "/task.toml", key: "data.train.labelmap", suggestion: "data.train.label_map"))
        guard case .badValue(_, let k4, _, _)? = taskError({ _ = try Self.spec(dir, data: "", extra: "[target]\ntext = \"t.txt\"\nlabel_map = \"map.toml\"") }) else {
            Issue.record("target.label_map without target.dev must be refused"); return
        }
        #expect(k4 == "target.label_map")
    }

    // MARK: The target section

    @Test func targetSectionReadsTextAndBecomesTheDevSet() throws {
        let dir = Self.directory()
        try Data(Self.wnutText.utf8).write(to: URL(fileURLWithPath: dir + "/wnut.txt"))
        try Data(Self.mapText.utf8).write(to: URL(fileURLWithPath: dir + "/map.toml"))
        try Data("omg u r so cool\n\n   \nparis lol\n".utf8).write(to: URL(fileURLWithPath: dir + "/tweets.txt"))
        let spec = try Self.spec(dir, data: "train = \"src.txt\"", extra: """
            [target]
            text = "wnut.txt"
            dev = "wnut.txt"
            label_map = "map.toml"
            [train]
            adapt = "adversarial"
            adapt_weight = 0.5
            """)
        #expect(spec.target == TargetDomain(text: .conll(dir + "/wnut.txt")))
        #expect(spec.dev == .mapped(.file(dir + "/wnut.txt"), labelMap: dir + "/map.toml"))
        #expect(spec.training.adapt == .adversarial && spec.training.adaptWeight == 0.5)
        #expect(try spec.target!.texts().map(\.text) == ["john smith lives in paris", "acme rocks", "omg mary so cool"])
        #expect(try TargetDomain(text: .lines(dir + "/tweets.txt")).texts().map(\.text) == ["omg u r so cool", "paris lol"])
        // adapt without a target, and two dev sets, are refused.
        #expect(taskError { _ = try Self.spec(dir, data: "train = \"src.txt\"", extra: "[train]\nadapt = \"weighting\"") }
                == .missingKey(file: dir + "/task.toml", key: "target.text"))
        guard case .badValue(_, let key, _, _)? = taskError({
            _ = try Self.spec(dir, data: "dev = \"a.txt\"", extra: "[target]\ntext = \"wnut.txt\"\ndev = \"wnut.txt\"")
        }) else { Issue.record("two dev sets must be refused"); return }
        #expect(key == "target.dev")
        guard case .badValue(_, let k2, _, _)? = taskError({ _ = try Self.spec(dir, data: "", extra: "[train]\nadapt = \"dann\"") }) else {
            Issue.record("an unknown method must be refused"); return
        }
        #expect(k2 == "train.adapt")
    }

    @Test func targetTextFromACorpusStore() throws {
        let dir = Self.directory()
        let tweets = dir + "/tweets.txt"
        try Data("omg u r so cool\nparis lol\njohn smith lol\n".utf8).write(to: URL(fileURLWithPath: tweets))
        let store = try CorpusStore(path: dir + "/c.sqlite")
        _ = try store.importFile(tweets, options: ImportOptions(format: .lines, split: .train, deduplicate: false, name: "tweets"))
        let spec = try Self.spec(dir, data: "train = \"x.txt\"", extra: "[target]\nstore = \"c.sqlite\"\nsource = \"tweets\"\nsplit = \"train\"")
        #expect(spec.target == TargetDomain(text: .store(path: dir + "/c.sqlite", selection: StoreSelection(source: "tweets", split: .train))))
        #expect(try spec.target!.texts().map(\.text) == ["omg u r so cool", "paris lol", "john smith lol"])
        // Nothing in the selected part is the empty-target error, naming the store.
        let none = TargetDomain(text: .store(path: dir + "/c.sqlite", selection: StoreSelection(source: "tweets", split: .dev)))
        guard case .malformed(let at, _)? = taskError({ _ = try none.texts() }) else { Issue.record("an empty selection must be refused"); return }
        #expect(at.file.contains(dir + "/c.sqlite"))
        guard case .badValue(_, let key, _, _)? = taskError({
            _ = try Self.spec(dir, data: "", extra: "[target]\nstore = \"c.sqlite\"\ntext = \"t.txt\"")
        }) else { Issue.record("text beside store must be refused"); return }
        #expect(key == "target.text")
    }

    @Test func emptyOrForeignTargetTextIsAClearError() throws {
        let dir = Self.directory()
        try Data("\n  \n\n".utf8).write(to: URL(fileURLWithPath: dir + "/empty.txt"))
        guard case .malformed(let at, let reason)? = taskError({ _ = try TargetDomain(text: .lines(dir + "/empty.txt")).texts() }) else {
            Issue.record("empty target text must be refused"); return
        }
        #expect(at.file == dir + "/empty.txt" && reason.contains("empty"))
        // Greek text under this English vocabulary: every token is [UNK].
        let greek = [TextExample(id: "g", text: "καλημέρα κόσμε", label: nil), TextExample(id: "h", text: "paris λονδίνο", label: nil)]
        guard case .malformed(let at2, let r2)? = taskError({
            _ = try TargetDomain.features(greek, tokenizer: Self.tokenizer, window: WindowOptions(maxLength: 16, stride: 4), origin: "greek.txt")
        }) else { Issue.record("a target in another alphabet must be refused"); return }
        #expect(at2.file == "greek.txt" && r2.contains("[UNK]") && r2.contains("75.0%"))
        // At most half unknown passes.
        let half = [TextExample(id: "x", text: "paris λονδίνο", label: nil)]
        #expect(try TargetDomain.features(half, tokenizer: Self.tokenizer, window: WindowOptions(maxLength: 16, stride: 4), origin: "x").count == 1)
    }

    // MARK: Multi-source sampling

    @Test func multiSourceSamplerFollowsItsRates() throws {
        let sampler = try MultiSourceSampler(counts: [50, 7, 300], rates: [2, 1, 1])
        #expect(sampler.rates == [0.5, 0.25, 0.25])
        let n = 200_000
        let draws = sampler.draws(n, seed: 11)
        for s in 0..<3 {
            let share = Double(draws.filter { $0.source == s }.count) / Double(n)
            #expect(abs(share - sampler.rates[s]) < 0.005, "source \(s): \(share)")   // ~4.5 standard deviations
        }
        // Within a source every element comes once before any comes twice.
        let small = draws.filter { $0.source == 1 }.map(\.element)
        for cycle in 0..<10 { #expect(Set(small[(cycle * 7)..<(cycle * 7 + 7)]) == Set(0..<7)) }
        // A fixed seed gives the same sequence; another seed another one.
        let again = sampler.draws(n, seed: 11)
        #expect(again.map(\.source) == draws.map(\.source) && again.map(\.element) == draws.map(\.element))
        #expect(sampler.draws(100, seed: 12).map(\.source) != draws.prefix(100).map(\.source))
        #expect(throws: TaskError.self) { try MultiSourceSampler(counts: [3, 0], rates: [1, 1]) }
        #expect(throws: TaskError.self) { try MultiSourceSampler(counts: [3, 4], rates: [1, -1]) }
    }

    @Test func multiSourceSpecAndObjectiveMixTheSources() throws {
        let dir = Self.directory()
        try Data(Self.wnutText.utf8).write(to: URL(fileURLWithPath: dir + "/wnut.txt"))
        try Data(Self.mapText.utf8).write(to: URL(fileURLWithPath: dir + "/map.toml"))
        let spec = try Self.spec(dir, data: """
            train = [{ file = "news.txt", rate = 3 }, { file = "wnut.txt", label_map = "map.toml", rate = 1 }]
            """)
        #expect(spec.train == nil)
        #expect(spec.trainSources == [TrainingSourceSpec(source: .file(dir + "/news.txt"), rate: 3),
                                      TrainingSourceSpec(source: .mapped(.file(dir + "/wnut.txt"), labelMap: dir + "/map.toml"), rate: 1)])
        #expect(taskError { _ = try Self.spec(dir, data: "train = [{ file = \"a.txt\" }, { file = \"b.txt\", rate = 1 }]") }
                == .missingKey(file: dir + "/task.toml", key: "data.train[0].rate"))

        let plugin = try TaggingPlugin(spec: spec)
        let wnut = try plugin.examples(from: spec.trainSources[1].source)
        let objective = try FineTuningObjective(plugin: plugin, model: try Self.tagger(), tokenizer: Self.tokenizer,
                                                sources: [TrainingSource(examples: try Self.sourceSentences(), rate: 3),
                                                          TrainingSource(examples: wnut, rate: 1)],
                                                dev: [], options: FineTuningOptions(), specFile: dir + "/task.toml")
        func epoch(_ e: Int) throws -> [TaskFeature] {
            let stream = try objective.examples(epoch: e)   // window indices
            var out: [TaskFeature] = []
            while let i = try stream.next() { out.append(objective.train[i]) }
            return out
        }
        let first = try epoch(0)
        #expect(first.count == 7 && objective.examplesPerEpoch == 7)
        #expect(try epoch(0) == first)
        // Over many epochs about a quarter of the windows are WNUT's (its windows' ids differ from the news windows').
        let wnutIDs = Set(try wnut.enumerated().flatMap { try plugin.features($1, index: $0, tokenizer: Self.tokenizer) }.map(\.window.inputIds))
        #expect(wnutIDs.count == 3)
        var fromWnut = 0, total = 0
        for e in 0..<400 {
            for f in try epoch(e) {
                total += 1
                if wnutIDs.contains(f.window.inputIds) { fromWnut += 1 }
            }
        }
        #expect(abs(Double(fromWnut) / Double(total) - 0.25) < 0.03, "\(fromWnut) of \(total)")
    }

    // MARK: Instance weighting

    @Test func instanceWeightsOfIdenticalSetsAreUniform() throws {
        var rng = RNG(seed: 3)
        let x = (0..<40).map { _ in (0..<12).map { _ in rng.normal() } }
        #expect(try InstanceWeighting.weights(source: x, target: x) == [Float](repeating: 1, count: 40))
        // The same set drawn twice in another order: equal up to the summation order.
        let w = try InstanceWeighting.weights(source: x, target: x.reversed() + x)
        #expect(w.allSatisfy { abs($0 - 1) < 1e-9 }, "\(w)")
    }

    @Test func instanceWeightsFavourTargetLikeSourceExamples() throws {
        var rng = RNG(seed: 4)
        func cloud(_ center: Float, _ n: Int) -> [[Float]] { (0..<n).map { _ in (0..<6).map { i in (i == 0 ? center : 0) + 0.3 * rng.normal() } } }
        let near = cloud(1, 30), far = cloud(-1, 30)
        let w = try InstanceWeighting.weights(source: near + far, target: cloud(1, 25))
        let meanNear = w[0..<30].reduce(0, +) / 30, meanFar = w[30...].reduce(0, +) / 30
        #expect(meanNear > 2 * meanFar, "near \(meanNear), far \(meanFar)")
        #expect(abs(w.reduce(0, +) / Float(w.count) - 1) < 1e-5)
        let ratio = Double(w.max()! / w.min()!)
        #expect(ratio <= InstanceWeighting.maxWeight / InstanceWeighting.minWeight + 1e-6)
    }

    /// The weighted token loss is `Σ_p w_row(p) ℓ_p / Σ_p w_row(p)` over labelled positions,
    /// computed by hand from the model's logits.
    @Test func weightedLossEqualsTheHandComputedOne() throws {
        let (plugin, model) = (try Self.plugin(Self.directory()), try Self.tagger())
        var features = try Self.sourceFeatures(plugin)
        let weights: [Float] = [0.5, 2, 1, 0.25]
        for i in features.indices { features[i].weight = weights[i] }
        let batch = FeatureBatch(features, rows: Array(features.indices), padID: 0)
        #expect(batch.weights == weights)
        let head = try ModelTaskHead(kind: .tokenClassification, model: model)
        head.rowWeights = batch.weights
        let loss = try head.lossAndAccuracy(batch, training: false).loss
        head.rowWeights = nil
        let unweighted = try head.lossAndAccuracy(batch, training: false).loss
        let logits = try model.logits(ModelTaskHead.input(batch)).array
        let labels = try #require(batch.tokenLabels)
        var num = 0.0, den = 0.0, plainNum = 0.0, plainDen = 0.0
        for p in 0..<labels.count where labels[p] != -100 {
            let row = (0..<9).map { Double(logits[p * 9 + $0]) }
            let m = row.max()!
            let l = m + log(row.reduce(0) { $0 + exp($1 - m) }) - row[Int(labels[p])]
            let w = Double(weights[p / batch.length])
            num += w * l; den += w; plainNum += l; plainDen += 1
        }
        #expect(abs(Double(loss) - num / den) < 1e-5)
        #expect(abs(Double(unweighted) - plainNum / plainDen) < 1e-5)
        #expect(abs(loss - unweighted) > 1e-4)
    }

    @Test func objectiveWeighsIdenticalSourceAndTargetUniformly() throws {
        let dir = Self.directory()
        let spec = try Self.spec(dir, data: "train = \"x.txt\"")
        let sentences = try Self.sourceSentences()
        var options = FineTuningOptions()
        options.adaptation = AdaptationOptions(method: .weighting)
        let objective = try FineTuningObjective(plugin: try TaggingPlugin(spec: spec), model: try Self.tagger(), tokenizer: Self.tokenizer,
                                                sources: [TrainingSource(examples: sentences)], dev: [], options: options,
                                                specFile: spec.path, target: sentences.map { TextExample(id: $0.id, text: $0.text, label: nil) })
        let w = try #require(objective.trainingWeights)
        #expect(w.count == 4 && w.allSatisfy { abs($0 - 1) < 1e-6 }, "\(w)")
        // Against tweets the weights differ and keep mean 1.
        let shifted = try FineTuningObjective(plugin: try TaggingPlugin(spec: spec), model: try Self.tagger(), tokenizer: Self.tokenizer,
                                              sources: [TrainingSource(examples: sentences)], dev: [], options: options,
                                              specFile: spec.path, target: Self.targetTexts)
        let v = try #require(shifted.trainingWeights)
        #expect(Set(v).count > 1 && abs(v.reduce(0, +) / 4 - 1) < 1e-5, "\(v)")
        // Without target text the method is refused, naming the spec.
        #expect(taskError {
            _ = try FineTuningObjective(plugin: try TaggingPlugin(spec: spec), model: try Self.tagger(), tokenizer: Self.tokenizer,
                                        sources: [TrainingSource(examples: sentences)], dev: [], options: options, specFile: spec.path)
        } == .missingKey(file: spec.path, key: "target.text"))
    }

    // MARK: Domain-adversarial training

    @Test func gradientReversalSchedule() {
        #expect(DomainAdversary.weight(progress: 0, maxWeight: 0.5) == 0)
        #expect(abs(DomainAdversary.weight(progress: 0.5, maxWeight: 1) - Float(2 / (1 + exp(-5.0)) - 1)) < 1e-7)
        #expect(abs(DomainAdversary.weight(progress: 1, maxWeight: 0.5) - 0.5 * Float(2 / (1 + exp(-10.0)) - 1)) < 1e-7)
        #expect(DomainAdversary.weight(progress: 3, maxWeight: 1) == DomainAdversary.weight(progress: 1, maxWeight: 1))
    }

    /// One adversarial step: the classifier's gradient lowers the domain loss, while the encoder
    /// gets exactly -λ times the gradient of that loss (the same step without reversal), so the
    /// encoder's update raises it.
    @Test func domainLossFallsForTheClassifierAndRisesForTheEncoder() throws {
        let (plugin, model) = (try Self.plugin(Self.directory()), try Self.tagger())
        let features = try Self.sourceFeatures(plugin)
        let target = try TargetDomain.features(Self.targetTexts, tokenizer: Self.tokenizer, window: plugin.spec.window, origin: "t")
        let adversary = try DomainAdversary(model: model, target: target, maxWeight: 1, plannedBatches: 10, padID: 0, seed: 3)
        let store = model.store
        let classifier = store.parameters.filter { $0.name.hasPrefix(DomainAdversary.parameterPrefix) }
        #expect(classifier.map(\.name) == ["graft_training.domain_classifier.dense.weight", "graft_training.domain_classifier.dense.bias",
                                           "graft_training.domain_classifier.out.weight", "graft_training.domain_classifier.out.bias"])
        var rng = RNG(seed: 9)
        for p in classifier { try store.set(p, (0..<p.count).map { _ in rng.normal() * 0.5 }) }
        let encoder = store.parameters.filter { model.groupName($0.name) != "head" }
        let batch = FeatureBatch(features, rows: Array(features.indices), padID: 0)
        func domainLoss() throws -> Float {
            try adversary.domainLoss(batch, domain: 0, training: false)
                + adversary.domainLoss(adversary.targetBatch(0, size: batch.batchSize), domain: 1, training: false)
        }
        func grads(_ ps: [Parameter]) -> [Float] { ps.flatMap { Array(UnsafeBufferPointer(start: store.grad($0), count: $0.count)) } }
        func values(_ ps: [Parameter]) -> [[Float]] { ps.map { store.array($0) } }

        store.zeroGrads()
        let trainedLoss = try adversary.train(source: batch, scale: 1, lambda: 0.5)
        #expect(adversary.batches == 1)
        let reversed = grads(encoder), classifierGrad = grads(classifier)
        adversary.batches = 0
        store.zeroGrads()
        try adversary.train(source: batch, scale: 1, lambda: -1)   // no reversal: the plain gradient of the domain loss
        let plain = grads(encoder)
        #expect(reversed == plain.map { -0.5 * $0 })
        #expect(grads(classifier) == classifierGrad)
        let dot = zip(reversed, plain).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        #expect(dot < 0)

        let before = try domainLoss()
        #expect(abs(before - trainedLoss) < 1e-5)
        let savedClassifier = values(classifier), savedEncoder = values(encoder)
        // The classifier's step (its gradient) lowers the domain loss.
        let classifierNorm = Float(classifierGrad.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot())
        var offset = 0
        for p in classifier {
            let g = classifierGrad[offset..<(offset + p.count)]
            try store.set(p, zip(store.array(p), g).map { $0 - 0.05 / classifierNorm * $1 })
            offset += p.count
        }
        let afterClassifier = try domainLoss()
        #expect(afterClassifier < before, "\(before) -> \(afterClassifier)")
        for (p, v) in zip(classifier, savedClassifier) { try store.set(p, v) }
        // The encoder's step (its reversed gradient) raises it.
        let norm = Float(reversed.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot())
        #expect(norm > 0)
        offset = 0
        for p in encoder {
            let g = reversed[offset..<(offset + p.count)]
            try store.set(p, zip(store.array(p), g).map { $0 - 0.05 / norm * $1 })
            offset += p.count
        }
        let afterEncoder = try domainLoss()
        #expect(afterEncoder > before, "\(before) -> \(afterEncoder)")
        for (p, v) in zip(encoder, savedEncoder) { try store.set(p, v) }
    }

    /// Adversarial fine-tuning interrupted after 3 updates and resumed ends with the same bits
    /// as an uninterrupted run (the adversary's position and the domain classifier's weights and
    /// moments are in the checkpoint); the saved model directory holds no domain classifier.
    @Test func adversarialResumeIsBitIdentical() throws {
        let dir = Self.directory()
        let spec = try Self.spec(dir, data: "train = \"x.txt\"")
        let sentences = try Self.sourceSentences()
        func run(_ out: String, stopAfter: Int?, resume: Bool) throws -> (FineTuningObjective<TaggingPlugin>, TrainingSummary) {
            var options = FineTuningOptions()
            options.batchSize = 2
            options.adaptation = AdaptationOptions(method: .adversarial, weight: 0.5)
            let objective = try FineTuningObjective(plugin: try TaggingPlugin(spec: spec), model: try Self.tagger(dropout: 0.1),
                                                    tokenizer: Self.tokenizer, sources: [TrainingSource(examples: sentences)],
                                                    dev: [], options: options, specFile: spec.path, target: Self.targetTexts)
            var o = OptimizationOptions()
            o.batchSize = 2; o.epochs = 4; o.learningRate = 3e-3; o.warmupSteps = 1; o.evalEvery = 2; o.checkpointEvery = 2
            let trainer = try Trainer(objective: objective, options: o, outputDirectory: out)
            objective.plannedBatches = trainer.totalSteps
            var steps = 0
            trainer.onStep = { _ in steps += 1 }
            if let stopAfter { trainer.shouldStop = { steps >= stopAfter } }
            return (objective, try trainer.run(resume: resume))
        }
        let (straight, s1) = try run(dir + "/a", stopAfter: nil, resume: false)
        #expect(s1.steps == 8)
        let (_, s2) = try run(dir + "/b", stopAfter: 3, resume: false)
        #expect(s2.interrupted && s2.steps == 3)
        let (resumed, s3) = try run(dir + "/b", stopAfter: nil, resume: true)
        #expect(s3.steps == 8)
        #expect(resumed.adversary?.batches == 8 && straight.adversary?.batches == 8)
        let a = straight.model.store, b = resumed.model.store
        #expect(a.count == b.count)
        #expect(Array(UnsafeBufferPointer(start: a.values, count: a.count)) == Array(UnsafeBufferPointer(start: b.values, count: b.count)))
        // The checkpoint's model directory has no training-only tensors; the training state has them.
        let checkpoint = try #require(s3.checkpoint)
        let weights = try SafeTensors(contentsOf: URL(fileURLWithPath: checkpoint + "/model.safetensors"))
        #expect(!weights.names.contains { $0.hasPrefix(ModelDirectory.trainingOnlyPrefix) } && weights.names.contains("classifier.weight"))
        let state = try SafeTensors(contentsOf: URL(fileURLWithPath: checkpoint + "/" + Trainer<FineTuningObjective<TaggingPlugin>>.stateFile))
        #expect(state.names.contains(DomainAdversary.parameterPrefix + "dense.weight"))
        // It reopens as a plain tagger.
        #expect(try ModelDirectory.open(checkpoint).model is BertForTokenClassification)
    }

    // MARK: Shipped specs on the shared data

    @Test func shippedBenchmarkSpecsParse() throws {
        let env = ["GRAFT_DATA_DIR": "/data"], map = packageRoot + "/tasks/wnut16-to-conll2003.toml"
        let spec = try TaskSpec.load(packageRoot + "/tasks/ner-conll-to-wnut.toml", environment: env)
        #expect(spec.train == .file("/data/ner/conll2003/train.txt") && spec.target == TargetDomain(text: .conll("/data/ner/wnut16/train.txt")))
        #expect(spec.dev == .mapped(.file("/data/ner/wnut16/dev.txt"), labelMap: map))
        let multi = try TaskSpec.load(packageRoot + "/tasks/ner-conll-wnut-multisource.toml", environment: env)
        #expect(multi.trainSources == [TrainingSourceSpec(source: .file("/data/ner/conll2003/train.txt"), rate: 0.7),
                                       TrainingSourceSpec(source: .mapped(.file("/data/ner/wnut16/train.txt"), labelMap: map), rate: 0.3)])
        let only = try TaskSpec.load(packageRoot + "/tasks/ner-wnut16-mapped.toml", environment: env)
        #expect(only.train == .mapped(.file("/data/ner/wnut16/train.txt"), labelMap: map))
        let labels = try LabelMap.load(map)
        #expect(labels.sourceTypes.sorted() == ["company", "facility", "geo-loc", "movie", "musicartist", "other", "person", "product", "sportsteam", "tvshow"])
        try labels.checkTargets(try #require(spec.labels), tagging: .iob2)
    }

    @Test(.enabled(if: sharedDataDirectory != nil, "needs ../shared/data (WNUT-16, CoNLL-2003)"))
    func shippedBenchmarkSpecsReadTheSharedData() throws {
        let env = ["GRAFT_DATA_DIR": sharedDataDirectory!]
        let spec = try TaskSpec.load(packageRoot + "/tasks/ner-conll-to-wnut.toml", environment: env)
        let plugin = try TaggingPlugin(spec: spec)
        let dev = try plugin.examples(from: try #require(spec.dev))
        #expect(dev.count == 239)
        #expect(Set(dev.flatMap(\.entities).map(\.type)) == ["PER", "ORG", "LOC", "MISC"])
        #expect(dev.flatMap(\.entities).count == 122)
        #expect(try spec.target!.texts().count == 1915)
        let multi = try TaskSpec.load(packageRoot + "/tasks/ner-conll-wnut-multisource.toml", environment: env)
        #expect(multi.trainSources.map(\.rate) == [0.7, 0.3])
        #expect(try TaggingPlugin(spec: multi).examples(from: multi.trainSources[1].source).count == 1915)
        let only = try TaskSpec.load(packageRoot + "/tasks/ner-wnut16-mapped.toml", environment: env)
        #expect(try TaggingPlugin(spec: only).examples(from: only.train!).count == 1915)
    }
}
