import GraftSupport
import Foundation
import Testing
import GraftEngine
import GraftTokenizers
@testable import GraftModels

@Suite struct ConfigTests {
    @Test func presets() throws {
        #expect(ModelConfig.presetNames == ["tiny", "mini", "small"])
        let mini = try #require(ModelConfig.preset("mini", kind: .bert, vocabSize: 8192))
        #expect([mini.layers, mini.hidden, mini.heads, mini.ffn, mini.maxPositions, mini.typeVocabSize] == [4, 256, 4, 1024, 512, 2] as [Int])
        #expect(mini.layerNormEps == 1e-12 && mini.padTokenId == 0 && mini.dropout == 0.1)
        let tiny = try #require(ModelConfig.preset("tiny", kind: .gpt, vocabSize: 100))
        #expect([tiny.layers, tiny.hidden, tiny.heads, tiny.ffn, tiny.typeVocabSize] == [2, 128, 2, 512, 0] as [Int])
        #expect(tiny.layerNormEps == 1e-5 && tiny.padTokenId == nil)
        let small = try #require(ModelConfig.preset("small", kind: .bert, vocabSize: 100))
        #expect([small.layers, small.hidden, small.heads, small.ffn] == [4, 512, 8, 2048] as [Int])
        #expect(ModelConfig.preset("huge", kind: .bert, vocabSize: 100) == nil)
    }

    @Test(arguments: [ModelKind.bert, .gpt])
    func hfJSONRoundTrip(kind: ModelKind) throws {
        var cfg = try #require(ModelConfig.preset("tiny", kind: kind, vocabSize: 777))
        cfg.dropout = 0.05; cfg.attentionDropout = 0.2; cfg.maxPositions = 300
        let text = cfg.hfJSON().serialized(pretty: true)
        let back = try ModelConfig(hfJSON: JSONValue.parse(text), path: "c.json")
        #expect(back == cfg)
        #expect(text.contains(kind == .bert ? "\"layer_norm_eps\": 1e-12" : "\"layer_norm_epsilon\": 1e-05"))
        // Graft's own Codable form round-trips too.
        let data = try JSONEncoder().encode(cfg)
        #expect(try JSONDecoder().decode(ModelConfig.self, from: data) == cfg)
    }

    @Test func badConfigsNameTheFileAndProblem() throws {
        let cases: [(String, String)] = [
            ("{\"model_type\": \"t5\"}", "model_type \"t5\""),
            ("{\"model_type\": \"bert\", \"hidden_size\": 8}", "missing \"vocab_size\""),
            ("{\"model_type\": \"bert\", \"vocab_size\": 10, \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 3, \"intermediate_size\": 4}", "not a multiple"),
            ("{\"model_type\": \"bert\", \"vocab_size\": 10, \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"intermediate_size\": 4, \"hidden_act\": \"relu\"}", "hidden_act"),
            ("{\"model_type\": \"gpt2\", \"n_embd\": 8, \"n_layer\": 1, \"n_head\": 2, \"activation_function\": \"relu\"}", "activation_function"),
            ("[1]", "not a JSON object"),
            ("{\"vocab_size\": 3}", "no \"model_type\""),
        ]
        for (text, fragment) in cases {
            do {
                _ = try ModelConfig(hfJSON: JSONValue.parse(text), path: "/x/config.json")
                Issue.record("accepted \(text)")
            } catch let ModelError.badConfig(file, problem) {
                #expect(file == "/x/config.json")
                #expect(problem.contains(fragment), "\(problem)")
            }
        }
    }
}

@Suite struct DirectoryTests {
    func bertBatch() -> LMBatch {
        LMBatch(inputIds: [2, 5, 4, 7, 9, 3, 2, 11, 4, 3, 0, 0], tokenTypeIds: [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0],
                attentionMask: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
                labels: [-100, 6, 8, -100, -100, -100, -100, 12, 10, -100, -100, -100], batch: 2, seqLen: 6)
    }

    func gptBatch() -> LMBatch {
        LMBatch(inputIds: [1, 4, 7, 2, 9, 3, 8, 5, 0, 0], attentionMask: [1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
                labels: [4, 7, 2, 9, -100, 8, 5, -100, -100, -100], batch: 2, seqLen: 5)
    }

    /// Loss and gradients of two models on a batch, compared bit for bit.
    func expectIdentical(_ a: LanguageModel, _ loaded: any PretrainedModel, _ batch: LMBatch, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let b = try #require(loaded as? LanguageModel, sourceLocation: sourceLocation)
        #expect(a.config == b.config, sourceLocation: sourceLocation)
        #expect(a.store.parameters.map(\.name) == b.store.parameters.map(\.name), sourceLocation: sourceLocation)
        #expect(Array(UnsafeBufferPointer(start: a.store.values, count: a.store.count))
                == Array(UnsafeBufferPointer(start: b.store.values, count: b.store.count)), sourceLocation: sourceLocation)
        a.store.zeroGrads(); b.store.zeroGrads()
        let la = try a.loss(batch, training: false), lb = try b.loss(batch, training: false)
        #expect(la.loss.bitPattern == lb.loss.bitPattern && la.correct == lb.correct, sourceLocation: sourceLocation)
        try a.backward(scale: 1); try b.backward(scale: 1)
        #expect(Array(UnsafeBufferPointer(start: a.store.grads, count: a.store.count))
                == Array(UnsafeBufferPointer(start: b.store.grads, count: b.store.count)), sourceLocation: sourceLocation)
    }

    @Test func bertSaveLoadAndExportRoundTrip() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tok = try smallWordPieceTokenizer()
        var cfg = tinyConfig(.bert, vocab: 24)
        cfg.dropout = 0.1
        let model = try BertForMaskedLM(config: cfg, seed: 21)
        randomize(model.store, seed: 22)
        let graftDir = dir.appendingPathComponent("graft").path
        try ModelDirectory.save(model, tokenizer: tok, to: graftDir)
        #expect(try FileManager.default.contentsOfDirectory(atPath: graftDir).sorted() == ["config.json", "model.safetensors", "tokenizer.json"])
        let loaded = try ModelDirectory.open(graftDir)
        #expect(loaded.initialized.isEmpty && loaded.ignored.isEmpty)
        try expectIdentical(model, loaded.model, bertBatch())
        #expect(try loaded.tokenizer.encode("the cats sat").ids == tok.encode("the cats sat").ids)

        let hfDir = dir.appendingPathComponent("hf").path
        try ModelDirectory.export(model, tokenizer: tok, to: hfDir)
        #expect(try FileManager.default.contentsOfDirectory(atPath: hfDir).sorted() ==
                ["config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"])
        let f = try SafeTensors(contentsOf: URL(fileURLWithPath: hfDir + "/model.safetensors"))
        #expect(f.metadata["format"] == "pt")
        #expect(f.names.contains("bert.embeddings.word_embeddings.weight"))
        #expect(f.names.contains("bert.encoder.layer.1.output.LayerNorm.bias"))
        #expect(f.names.contains("cls.predictions.bias") && f.names.contains("cls.predictions.transform.dense.weight"))
        #expect(!f.names.contains { $0.hasPrefix("bert.cls") })
        let config = try JSONValue.parse(String(contentsOfFile: hfDir + "/config.json", encoding: .utf8))
        #expect(config["architectures"] == .array([.string("BertForMaskedLM")]))
        #expect(config["hidden_size"]?.int == 8 && config["hidden_act"]?.string == "gelu")
        let exported = try ModelDirectory.open(hfDir)
        try expectIdentical(model, exported.model, bertBatch())
        // vocab.txt alone (no tokenizer.json) gives the same tokenizer.
        try FileManager.default.removeItem(atPath: hfDir + "/tokenizer.json")
        let fromVocab = try ModelDirectory.open(hfDir)
        #expect(try fromVocab.tokenizer.encode("the big red house.").ids == tok.encode("the big red house.").ids)
    }

    @Test func gptSaveLoadAndExportRoundTrip() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tok = try smallBPETokenizer()
        let cfg = tinyConfig(.gpt, vocab: tok.vocabSize + 3)
        let model = try GPTForCausalLM(config: cfg, seed: 31)
        randomize(model.store, seed: 32)
        let graftDir = dir.appendingPathComponent("graft").path
        try ModelDirectory.save(model, tokenizer: tok, to: graftDir)
        let loaded = try ModelDirectory.open(graftDir)
        try expectIdentical(model, loaded.model, gptBatch())
        // Conv1D weights are stored [in, out] as in HF GPT-2.
        let f = try SafeTensors(contentsOf: URL(fileURLWithPath: graftDir + "/model.safetensors"))
        #expect(try f.info("h.0.attn.c_attn.weight").shape == [8, 24])
        #expect(try f.info("h.1.mlp.c_fc.weight").shape == [8, 16])
        #expect(try f.info("h.1.mlp.c_proj.weight").shape == [16, 8])
        let w = try model.store.parameter(named: "h.0.attn.c_attn.weight")
        #expect(try f.floats("h.0.attn.c_attn.weight")[1 * 24 + 5] == model.store.value(w)[5 * 8 + 1])

        let hfDir = dir.appendingPathComponent("hf").path
        try ModelDirectory.export(model, tokenizer: tok, to: hfDir)
        #expect(try FileManager.default.contentsOfDirectory(atPath: hfDir).sorted() ==
                ["config.json", "merges.txt", "model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json"])
        // The end token's id is in config.json (GPT2Config's default 50256 is outside this
        // vocabulary), and the tokenizer class is the tokenizer's.
        let config = try JSONValue.parse(String(contentsOfFile: hfDir + "/config.json", encoding: .utf8))
        let end = try #require(tok.id("<|endoftext|>"))
        #expect(config["bos_token_id"]?.int == end && config["eos_token_id"]?.int == end)
        let tokConfig = try JSONValue.parse(String(contentsOfFile: hfDir + "/tokenizer_config.json", encoding: .utf8))
        #expect(tokConfig["tokenizer_class"]?.string == "GPT2Tokenizer" && tokConfig["eos_token"]?.string == "<|endoftext|>")
        try FileManager.default.removeItem(atPath: hfDir + "/tokenizer.json")
        let exported = try ModelDirectory.open(hfDir)
        try expectIdentical(model, exported.model, gptBatch())
        let text = "the red cat sat."
        #expect(try exported.tokenizer.encode(text).ids == tok.encode(text).ids)

        // A GPT on a WordPiece vocabulary: a BertTokenizer (it was declared GPT2Tokenizer, and
        // AutoTokenizer split words into letters), [CLS] / [SEP] as its bos / eos.
        let wordPiece = try smallWordPieceTokenizer()
        let onWordPiece = try GPTForCausalLM(config: tinyConfig(.gpt, vocab: wordPiece.vocabSize), seed: 33)
        let wpDir = dir.appendingPathComponent("hf-wp").path
        try ModelDirectory.export(onWordPiece, tokenizer: wordPiece, to: wpDir)
        let wpConfig = try JSONValue.parse(String(contentsOfFile: wpDir + "/config.json", encoding: .utf8))
        #expect(wpConfig["bos_token_id"]?.int == wordPiece.id("[CLS]") && wpConfig["eos_token_id"]?.int == wordPiece.id("[SEP]"))
        let wpTokConfig = try JSONValue.parse(String(contentsOfFile: wpDir + "/tokenizer_config.json", encoding: .utf8))
        #expect(wpTokConfig["tokenizer_class"]?.string == "BertTokenizer" && wpTokConfig["eos_token"]?.string == "[SEP]")
        #expect(FileManager.default.fileExists(atPath: wpDir + "/vocab.txt"))
    }

    @Test func encoderOnlyCheckpointGetsAFreshHead() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cfg = tinyConfig(.bert, vocab: 24)
        let encoder = try BertModel(config: cfg, seed: 41, pooler: true)
        try encoder.store.save(to: dir.appendingPathComponent("model.safetensors"), metadata: ["format": "pt"])
        try Data(cfg.hfJSON().serialized().utf8).write(to: dir.appendingPathComponent("config.json"))
        try smallWordPieceTokenizer().saveVocabularyFiles(in: dir.path)
        let loaded = try ModelDirectory.open(dir.path)
        #expect(Set(loaded.initialized) == Set(BertForMaskedLM.headParameterNames))
        #expect(Set(loaded.ignored) == ["pooler.dense.weight", "pooler.dense.bias"])
        let bert = try #require(loaded.model as? BertForMaskedLM)
        #expect(bert.bert.pooler == nil)
        let fresh = try BertForMaskedLM(config: cfg, seed: 0)
        #expect(bert.store.parameters.map(\.name) == fresh.store.parameters.map(\.name))
        let (enc, _) = try ModelDirectory.openEncoder(dir.path)
        #expect(enc.pooler != nil)
        let ids: [Int32] = [2, 5, 6, 3]
        let a = try encoder.forward(inputIds: ids, batch: 1, seqLen: 4, training: false).array
        let b = try enc.forward(inputIds: ids, batch: 1, seqLen: 4, training: false).array
        let identical = a == b   // outside #expect: a failure would diff every value
        #expect(identical)
    }

    @Test func loadErrorsNameTheFile() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tok = try smallWordPieceTokenizer()
        let model = try BertForMaskedLM(config: tinyConfig(.bert, vocab: 24), seed: 1)
        let d = dir.appendingPathComponent("m").path
        try ModelDirectory.save(model, tokenizer: tok, to: d)
        // A tokenizer larger than the embedding table.
        let small = try BertForMaskedLM(config: tinyConfig(.bert, vocab: 10), seed: 1)
        #expect(throws: ModelError.self) { try ModelDirectory.save(small, tokenizer: tok, to: dir.appendingPathComponent("x").path) }
        // Wrong shapes: a config that disagrees with the weights.
        var other = tinyConfig(.bert, vocab: 24); other.ffn = 12
        try Data(other.hfJSON().serialized().utf8).write(to: URL(fileURLWithPath: d + "/config.json"))
        do { _ = try ModelDirectory.open(d); Issue.record("loaded mismatched weights") } catch let ModelError.badWeights(file, problem) {
            #expect(file == d + "/model.safetensors")
            #expect(problem.contains("intermediate.dense"), "\(problem)")
        }
        // Sizes far beyond the weights are refused before anything is allocated (2²⁰ positions
        // once reserved gigabytes, then trapped when the machine refused the mapping).
        var huge = tinyConfig(.bert, vocab: 24); huge.maxPositions = 1 << 20; huge.hidden = 64
        try Data(huge.hfJSON().serialized().utf8).write(to: URL(fileURLWithPath: d + "/config.json"))
        do { _ = try ModelDirectory.open(d); Issue.record("built a model the weights do not describe") } catch let ModelError.badConfig(file, problem) {
            #expect(file == d + "/config.json")
            #expect(problem.contains("does not describe these weights") && problem.contains("1048576"), "\(problem)")
        }
        // An unknown tensor.
        try ModelDirectory.save(model, tokenizer: tok, to: d)
        let f = try SafeTensors(contentsOf: URL(fileURLWithPath: d + "/model.safetensors"))
        var entries: [SafeTensors.Entry] = []
        var buffers: [[Float]] = []
        for t in f.tensors { buffers.append(try f.floats(t.name)) }
        buffers.append([0, 0])
        let ptrs = buffers.map { b -> UnsafeMutablePointer<Float> in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: b.count); p.initialize(from: b, count: b.count); return p
        }
        defer { ptrs.forEach { $0.deallocate() } }
        for (i, t) in f.tensors.enumerated() { entries.append(.init(name: t.name, shape: t.shape, data: ptrs[i])) }
        entries.append(.init(name: "encoder.layer.9.mystery", shape: [2], data: ptrs.last!))
        try SafeTensors.write(entries, metadata: ["format": "pt"], to: URL(fileURLWithPath: d + "/model.safetensors"))
        do { _ = try ModelDirectory.open(d); Issue.record("loaded an unknown tensor") } catch let ModelError.badWeights(_, problem) {
            #expect(problem.contains("encoder.layer.9.mystery"))
        }
        // Missing files.
        try FileManager.default.removeItem(atPath: d + "/model.safetensors")
        #expect(throws: ModelError.missingFile(d + "/model.safetensors")) { try ModelDirectory.open(d) }
        #expect(throws: ModelError.missingFile(dir.path + "/none")) { try ModelDirectory.open(dir.path + "/none") }
    }
}

@Suite struct SamplerTests {
    let logits: [Float] = [0.5, 2.0, -1.0, 1.5, 0.0]

    @Test func greedyAndDegenerateFilters() throws {
        var g = try Sampler(temperature: 0)
        #expect(try g.sample(logits) == 1)
        for seed in 0..<20 as Range<UInt64> {
            var k1 = try Sampler(temperature: 1.3, topK: 1, seed: seed)
            #expect(try k1.sample(logits) == 1)
            var p = try Sampler(temperature: 1, topP: 0.01, seed: seed)
            #expect(try p.sample(logits) == 1)
        }
    }

    @Test func distributionAfterFilters() throws {
        let s = try Sampler(temperature: 2, topK: 2)
        let d = s.distribution(logits)
        #expect(d.map(\.id) == [1, 3])
        #expect(abs(d[0].p / d[1].p - exp((2.0 - 1.5) / 2)) < 1e-12)
        #expect(abs(d.map(\.p).reduce(0, +) - 1) < 1e-12)
        // probabilities 0.5, 0.3, 0.2: top-p 0.7 keeps the first two.
        let l: [Float] = [log(0.3), log(0.5), log(0.2)]
        let n = try Sampler(temperature: 1, topP: 0.7).distribution(l)
        #expect(n.map(\.id) == [1, 0])
        #expect(abs(n[0].p - 0.625) < 1e-6)
    }

    @Test func samplingIsSeededAndFollowsTheDistribution() throws {
        var a = try Sampler(temperature: 1, seed: 9), b = try Sampler(temperature: 1, seed: 9)
        var counts = [Int](repeating: 0, count: logits.count)
        let draws = 20_000
        for _ in 0..<draws {
            let x = try a.sample(logits)
            #expect(try b.sample(logits) == x)
            counts[Int(x)] += 1
        }
        let z = logits.map { exp(Double($0)) }.reduce(0, +)
        for (i, c) in counts.enumerated() {
            let p = exp(Double(logits[i])) / z
            let sigma = (p * (1 - p) / Double(draws)).squareRoot()
            #expect(abs(Double(c) / Double(draws) - p) < 5 * sigma, "token \(i): \(c) draws, p \(p)")
        }
    }

    @Test func invalidOptions() {
        #expect(throws: ModelError.self) { try Sampler(temperature: -1) }
        #expect(throws: ModelError.self) { try Sampler(topK: 0) }
        #expect(throws: ModelError.self) { try Sampler(topP: 0) }
        #expect(throws: ModelError.self) { try Sampler(topP: 1.5) }
    }
}
