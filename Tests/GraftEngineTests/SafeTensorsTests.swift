import GraftSupport
import Foundation
import Testing
@testable import GraftEngine

private let miniLMPath = dataDir.appendingPathComponent("models/all-MiniLM-L6-v2/model.safetensors")
private let miniLMReference = dataDir.appendingPathComponent("fixtures/minilm/reference.jsonl")
private let haveMiniLM = FileManager.default.fileExists(atPath: miniLMPath.path)

extension EngineTests {
    @Suite struct SafeTensorsFormat {
        /// `Fixtures/mixed.safetensors` is written by `scripts/make_safetensors_fixture.py` (numpy + struct).
        @Test func readsFixtureF32F16BF16I64() throws {
            let f = try SafeTensors(contentsOf: fixturesDir.appendingPathComponent("mixed.safetensors"))
            #expect(f.metadata == ["format": "pt", "note": "graft engine fixture"])
            #expect(Set(f.names) == ["f32", "f16", "bf16", "position_ids"])
            #expect(try f.info("f32").shape == [2, 3])
            let a = try f.floats("f32")
            #expect(a == [0.5, -1.25, 3.0, Float(1e-3), 123456.0, -0.0])
            #expect(a[5].sign == .minus)
            let h = try f.floats("f16")
            #expect(h == [1.0, -2.5, 0x1p-14, 0x1p-24, 65504.0, 0.333251953125])
            #expect(try f.floats("bf16") == [1.0, -3.140625, 0.5, 1.5])
            #expect(try f.int64s("position_ids") == [0, 1, 2, 3])
            #expect(throws: EngineError.self) { try f.floats("position_ids") }
            #expect(throws: EngineError.self) { try f.floats("missing") }
        }

        @Test func halfConversionEdgeCases() {
            #expect(halfToFloat(0x7C00) == .infinity)
            #expect(halfToFloat(0xFC00) == -.infinity)
            #expect(halfToFloat(0x7E00).isNaN)
            #expect(halfToFloat(0x8000) == 0 && halfToFloat(0x8000).sign == .minus)
            #expect(halfToFloat(0x03FF) == Float(1023) * 0x1p-24)   // largest subnormal
            #expect(halfToFloat(0x3C01) == 1 + 0x1p-10)
        }

        @Test func writeReadRoundTripWithMetadata() throws {
            let dir = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: dir) }
            let store = ParameterStore(seed: 3)
            try store.declare("encoder.layer.0.attention.self.query.weight", shape: [3, 5], initializer: .normal(std: 1))
            try store.declare("weird \"name\"\n", shape: [7], initializer: .uniform(bound: 2))
            let url = dir.appendingPathComponent("w.safetensors")
            let meta = ["config": "{\"hidden\": 3}", "quote\"d": "line\nbreak"]
            try store.save(to: url, metadata: meta)
            let data = try Data(contentsOf: url)
            let headerLen = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            #expect(headerLen % 8 == 0)
            let f = try SafeTensors(contentsOf: url)
            #expect(f.metadata == meta)
            for p in store.parameters {
                #expect(try f.info(p.name).dtype == "F32")
                #expect(try f.info(p.name).shape == p.shape)
                #expect(try f.floats(p.name) == store.array(p))
            }
            let other = ParameterStore(seed: 9)
            try other.declare("encoder.layer.0.attention.self.query.weight", shape: [3, 5], initializer: .zeros)
            try other.declare("weird \"name\"\n", shape: [7], initializer: .zeros)
            let (missing, unexpected) = try other.load(from: f, strict: true)
            #expect(missing.isEmpty && unexpected.isEmpty)
            #expect(Array(UnsafeBufferPointer(start: other.values, count: other.count)) ==
                    Array(UnsafeBufferPointer(start: store.values, count: store.count)))
            // No temporary files left behind by the atomic write.
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["w.safetensors"])
            // Renaming and transposed loading (GPT-2 Conv1D layout).
            let t = ParameterStore()
            try t.declare("h.0.attn.c_attn.weight", shape: [5, 3], initializer: .zeros)
            let (m2, u2) = try t.load(from: f, rename: { $0.hasPrefix("encoder") ? "h.0.attn.c_attn.weight" : nil },
                                      transposed: { _ in true })
            #expect(m2.isEmpty && u2 == ["weird \"name\"\n"])
            let src = try f.floats("encoder.layer.0.attention.self.query.weight")
            for r in 0..<3 { for c in 0..<5 { #expect(t.values[c * 3 + r] == src[r * 5 + c]) } }
            // Shape mismatch on load is an error naming the tensor.
            let wrong = ParameterStore()
            try wrong.declare("encoder.layer.0.attention.self.query.weight", shape: [5, 3], initializer: .zeros)
            #expect(throws: EngineError.self) { try wrong.load(from: f) }
        }

        /// Every way of damaging the file gives a clear `corruptFile` error naming the file.
        @Test func truncatedAndCorruptFiles() throws {
            let good = try Data(contentsOf: fixturesDir.appendingPathComponent("mixed.safetensors"))
            let headerLen = Int(good.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
            func header(_ json: String, data: Int = 0) -> Data {
                var d = Data()
                var n = UInt64(json.utf8.count).littleEndian
                withUnsafeBytes(of: &n) { d.append(contentsOf: $0) }
                d.append(contentsOf: Array(json.utf8))
                d.append(Data(count: data))
                return d
            }
            var lenTooBig = good
            lenTooBig.replaceSubrange(0..<8, with: [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0])
            var badJSON = good
            badJSON[8] = UInt8(ascii: "[")
            let cases: [(String, Data, String)] = [
                ("empty", Data(), "shorter than the 8-byte"),
                ("5 bytes", good.prefix(5), "shorter than the 8-byte"),
                ("header cut", good.prefix(8 + headerLen / 2), "runs past the end"),
                ("data cut", good.prefix(good.count - 3), "file truncated"),
                ("huge length", lenTooBig, "implausibly large"),
                ("not JSON", badJSON, "not valid JSON"),
                ("array", header("[1,2]"), "not a JSON object"),
                ("no dtype", header("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", data: 4), "no dtype"),
                ("bad shape", header("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", data: 4), "invalid dimension"),
                ("size mismatch", header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", data: 4), "span 4 bytes"),
                ("reversed offsets", header("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", data: 4), "begin 4 > end 0"),
                ("overlap", header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", data: 8), "overlap"),
                ("byte overflow", header("{\"a\":{\"dtype\":\"F32\",\"shape\":[3000000000000000,3000],\"data_offsets\":[0,4]}}", data: 4), "overflows"),
                ("shape overflow", header("{\"a\":{\"dtype\":\"F32\",\"shape\":[3000000000000000,3000000000000000],\"data_offsets\":[0,4]}}", data: 4), "overflows"),
                ("bad metadata", header("{\"__metadata__\":{\"a\":1}}"), "not a string"),
                ("float offsets", header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.5,4]}}", data: 4), "data_offsets"),
            ]
            for (label, bytes, fragment) in cases {
                do {
                    _ = try SafeTensors(data: bytes, path: "/tmp/\(label).safetensors")
                    Issue.record("\(label): no error")
                } catch let EngineError.corruptFile(file, problem) {
                    #expect(file == "/tmp/\(label).safetensors")
                    #expect(problem.contains(fragment), "\(label): \(problem)")
                }
            }
            // A missing file is an I/O error naming it.
            #expect(throws: EngineError.self) { try SafeTensors(contentsOf: URL(fileURLWithPath: "/nonexistent/x.safetensors")) }
            // An unsupported dtype parses but refuses conversion.
            let f = try SafeTensors(data: header("{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", data: 8), path: "f64")
            #expect(throws: EngineError.unsupportedDType(file: "f64", tensor: "a", dtype: "F64")) { try f.floats("a") }
        }

        /// Every truncation of the fixture is rejected, and random byte damage never crashes:
        /// either a clean error or a file whose tensors all read.
        @Test func truncationAndByteDamageNeverCrash() throws {
            let good = try Data(contentsOf: fixturesDir.appendingPathComponent("mixed.safetensors"))
            for n in 0..<good.count {
                #expect(throws: EngineError.self) { try SafeTensors(data: good.prefix(n), path: "cut") }
            }
            var r = RNG(seed: 7)
            var parsed = 0, rejected = 0
            for _ in 0..<500 {
                var d = good
                for _ in 0..<(1 + r.int(below: 3)) { d[r.int(below: d.count)] = UInt8(r.int(below: 256)) }
                do {
                    let f = try SafeTensors(data: d, path: "damaged")
                    for t in f.tensors {
                        if ["F32", "F16", "BF16"].contains(t.dtype) { _ = try f.floats(t.name) }
                        if t.dtype == "I64" { _ = try f.int64s(t.name) }
                    }
                    parsed += 1
                } catch is EngineError {
                    rejected += 1
                }
            }
            #expect(parsed + rejected == 500)
            #expect(rejected > 0)
        }

        /// Reads the real all-MiniLM-L6-v2 checkpoint: all 104 tensors, names, shapes, spot values.
        @Test(.enabled(if: haveMiniLM, "needs \(miniLMPath.path) (set GRAFT_DATA_DIR)"))
        func miniLMCheckpoint() throws {
            let f = try SafeTensors(contentsOf: miniLMPath)
            #expect(f.tensors.count == 104)
            #expect(f.metadata == ["format": "pt"])
            var expected: [String: [Int]] = [
                "embeddings.word_embeddings.weight": [30522, 384], "embeddings.position_embeddings.weight": [512, 384],
                "embeddings.token_type_embeddings.weight": [2, 384], "embeddings.LayerNorm.weight": [384],
                "embeddings.LayerNorm.bias": [384], "embeddings.position_ids": [1, 512],
                "pooler.dense.weight": [384, 384], "pooler.dense.bias": [384],
            ]
            for l in 0..<6 {
                let p = "encoder.layer.\(l)."
                for n in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
                    expected[p + n + ".weight"] = [384, 384]; expected[p + n + ".bias"] = [384]
                }
                for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
                    expected[p + n + ".weight"] = [384]; expected[p + n + ".bias"] = [384]
                }
                expected[p + "intermediate.dense.weight"] = [1536, 384]; expected[p + "intermediate.dense.bias"] = [1536]
                expected[p + "output.dense.weight"] = [384, 1536]; expected[p + "output.dense.bias"] = [384]
            }
            #expect(expected.count == 104)
            for t in f.tensors { #expect(expected[t.name] == t.shape, "\(t.name)") }
            #expect(f.tensors.filter { $0.dtype == "F32" }.count == 103)
            // Spot values (bit patterns read with numpy from the same file).
            let word = try f.floats("embeddings.word_embeddings.weight")
            #expect(word[101 * 384] == Float(bitPattern: 3_163_575_950))       // -0.017619397
            #expect(word[30521 * 384 + 383] == Float(bitPattern: 999_669_881))  // 0.0045700637
            #expect(try f.floats("encoder.layer.0.attention.self.query.weight")[0] == Float(bitPattern: 3_189_256_126))
            #expect(try f.floats("encoder.layer.5.output.LayerNorm.bias")[7] == Float(bitPattern: 1_013_495_837))
            #expect(try f.floats("embeddings.LayerNorm.weight")[0] == Float(bitPattern: 1_058_624_350))
            let pos = try f.int64s("embeddings.position_ids")
            #expect(pos.count == 512 && pos[0] == 0 && pos[511] == 511)
        }

        /// Loads MiniLM into engine layers by name and checks the encoder output against the
        /// reference last_hidden_state (numpy float64 forward) for `dev-00`, with 4 padded positions.
        @Test(.enabled(if: haveMiniLM && FileManager.default.fileExists(atPath: miniLMReference.path),
                       "needs the MiniLM checkpoint and fixtures/minilm/reference.jsonl (set GRAFT_DATA_DIR)"))
        func miniLMEncoderMatchesReference() throws {
            let store = ParameterStore(seed: 0)
            let rng = SharedRNG(seed: 0)
            let word = try Embedding(store, name: "embeddings.word_embeddings", vocabSize: 30522, dim: 384, initializer: .zeros)
            let pos = try Embedding(store, name: "embeddings.position_embeddings", vocabSize: 512, dim: 384, initializer: .zeros)
            let type = try Embedding(store, name: "embeddings.token_type_embeddings", vocabSize: 2, dim: 384, initializer: .zeros)
            let embNorm = try LayerNorm(store, name: "embeddings.LayerNorm", dim: 384, eps: 1e-12)
            let cfg = TransformerBlock.Config(hidden: 384, heads: 12, ffn: 1536, layerNormEps: 1e-12, gelu: .erf)
            let blocks = try (0..<6).map { try TransformerBlock(store, prefix: "encoder.layer.\($0)", config: cfg, rng: rng) }
            _ = try Linear(store, name: "pooler.dense", inFeatures: 384, outFeatures: 384)
            let (missing, unexpected) = try store.load(from: SafeTensors(contentsOf: miniLMPath))
            #expect(missing.isEmpty)
            #expect(unexpected == ["embeddings.position_ids"])

            let line = try String(contentsOf: miniLMReference, encoding: .utf8).split(separator: "\n")[0]
            let ref = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let n = ref["n_tokens"] as! Int
            let t = n + 4
            let ids = (ref["input_ids"] as! [Int]).prefix(t).map { Int32($0) }
            let types = (ref["token_type_ids"] as! [Int]).prefix(t).map { Int32($0) }
            let mask = Tensor(shape: [1, t], values: (ref["attention_mask"] as! [Int]).prefix(t).map { Float($0) })
            let e = try word.forward(ids, shape: [1, t])
            let p = try pos.forward((0..<Int32(t)).map { $0 }, shape: [1, t])
            Kernels.add(e.data, p.data, e.data, e.count)
            let s = try type.forward(types, shape: [1, t])
            Kernels.add(e.data, s.data, e.data, e.count)
            var h = try embNorm.forward(e)
            for b in blocks { h = try b.forward(h, mask: mask, training: false) }
            let expected = (ref["last_hidden_state"] as! [[Double]])
            #expect(expected.count == n)
            var worst = 0.0
            for i in 0..<n { for j in 0..<384 { worst = max(worst, abs(Double(h.data[i * 384 + j]) - expected[i][j])) } }
            print("MiniLM max |last_hidden_state difference| = \(worst)")
            #expect(worst < 2e-4, "max |difference| to reference = \(worst)")
            let pooled = try MeanPool().forward(h, mask: mask)
            let norm = Kernels.l2Norm(pooled.data, 384)
            let emb = ref["sentence_embedding"] as! [Double]
            var worstEmb = 0.0
            for j in 0..<384 { worstEmb = max(worstEmb, abs(Double(pooled.data[j]) / norm - emb[j])) }
            #expect(worstEmb < 1e-5, "max |embedding difference| = \(worstEmb)")
        }
    }
}
