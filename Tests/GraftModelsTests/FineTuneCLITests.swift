import Foundation
import GraftSupport
import Testing
import GraftEngine
import GraftTokenizers
@testable import GraftModels

/// `graft finetune` options and data paths beyond the basics in ``TaskCLITests``: early stopping
/// (`--patience`, with `--resume`), mean pooling (`--pooling`, kept in config.json, refused by
/// export), fine-tuning from corpus-store selections (the runs recorded in that store), and
/// transformers head models imported with `graft import` and scored with `graft evaluate`.
@Suite(.enabled(if: graftExecutable != nil, "needs the built graft executable next to the test bundle"))
struct FineTuneCLITests {
    static func write(_ text: String, _ dir: URL, _ name: String) throws -> String { try TaskCLITests.write(text, dir, name) }
    static func lastJSON(_ out: String) throws -> [String: Any] { try TaskCLITests.json(try #require(out.split(separator: "\n").last)) }
    /// The summary object at the end of a `graft corpus runs` line.
    static func summary(_ line: Substring) throws -> [String: Any] {
        try TaskCLITests.json(line[try #require(line.firstIndex(of: "{"))...])
    }

    static func sentimentData(_ dir: URL) throws -> (train: String, dev: String) {
        var rows = ["label\ttext"]
        for i in 0..<32 { rows.append(i % 2 == 0 ? "pos\tthe red cat sat on the mat ." : "neg\tthe blue dog ran and sat .") }
        return (try write(rows.joined(separator: "\n") + "\n", dir, "train.tsv"),
                try write("label\ttext\npos\ta red house .\nneg\ta blue tree .\n", dir, "dev.tsv"))
    }

    /// A tiny sentiment spec over `train`/`dev`, written as `dir/name`: `model` adds `[model]`
    /// lines, `training` is the `[train]` table (default: one epoch).
    static func sentimentSpec(_ dir: URL, train: String, dev: String, model: String = "",
                              training: String = "epochs = 1\nlr = 3e-3\nbatch_size = 8", name: String = "task.toml") throws -> String {
        try write("""
            name = "tiny-sentiment"
            kind = "sentiment"
            labels = ["neg", "pos"]
            [data]
            train = "\(train)"
            dev = "\(dev)"
            [model]
            max_length = 16
            \(model)
            [train]
            \(training)
            """, dir, name)
    }

    /// ``sentimentData(_:)`` and a spec over it (max_length 16) with these `[train]` settings plus
    /// the extra `[model]` and `[train]` lines; returns the spec and the dev file.
    @discardableResult
    static func sentimentSpec(in dir: URL, epochs: Int, lr: String = "3e-3", batchSize: Int = 8, model: String = "", train extra: String = "")
        throws -> (spec: String, dev: String)
    {
        let (train, dev) = try sentimentData(dir)
        return (try sentimentSpec(dir, train: train, dev: dev, model: model,
                                  training: "epochs = \(epochs)\nlr = \(lr)\nbatch_size = \(batchSize)\n\(extra)"), dev)
    }

    /// With 2 dev examples accuracy takes 3 values, so it cannot improve 4 epochs running: patience 1
    /// ends a 12-epoch run early. The run record and --json say so; --resume of the stopped run
    /// trains nothing more.
    @Test func patienceStopsEarlyAndResumeKeepsTheStop() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try TaskCLITests.baseModel(in: dir)
        let spec = try Self.sentimentSpec(in: dir, epochs: 12, train: "patience = 1").spec
        let out = dir.appendingPathComponent("run").path, db = dir.appendingPathComponent("g.sqlite").path
        var r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", out, "--db", db, "--threads", "1", "--json"])
        #expect(r.0 == 0, "\(r.2)")
        let s = try Self.lastJSON(r.1)
        #expect(s["stopped_early"] as? Bool == true, "\(r.1)")
        let epochs = try #require(s["epochs"] as? Int)
        #expect(epochs >= 2 && epochs <= 4 && s["steps"] as? Int == epochs * 4, "\(s)")
        #expect(r.2.contains("stopped early at step \(epochs * 4) (epoch \(epochs))"), "\(r.2)")
        #expect(FileManager.default.fileExists(atPath: out + "/best/config.json"))
        r = try runGraft(["corpus", "runs", "--db", db])
        let record = try Self.summary(try #require(r.1.split(separator: "\n").first))
        #expect(record["stopped_early"] as? Double == 1 && record["epochs"] as? Double == Double(epochs), "\(r.1)")

        r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", out, "--db", db, "--threads", "1", "--json", "--resume"])
        #expect(r.0 == 0, "\(r.2)")
        let again = try Self.lastJSON(r.1)
        #expect(again["stopped_early"] as? Bool == true && again["steps"] as? Int == epochs * 4, "\(r.1)")
        #expect(again["best_dev_accuracy"] as? Double == s["best_dev_accuracy"] as? Double)

        // A bad value is refused before anything runs.
        r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", out, "--patience", "0"])
        #expect(r.0 != 0 && r.2.contains("--patience"), "\(r.2)")
    }

    /// --resume refuses a checkpoint written for other data (an edited dev file here: best/
    /// would be chosen on another dev set; an edited training file would resume at the saved
    /// position in other examples), naming what changed; on the same data it resumes.
    @Test func resumeRefusesOtherData() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try TaskCLITests.baseModel(in: dir)
        let (spec, dev) = try Self.sentimentSpec(in: dir, epochs: 1)
        let out = dir.appendingPathComponent("run").path, db = dir.appendingPathComponent("g.sqlite").path
        let args = ["finetune", "--task", spec, "--model", base, "--out", out, "--db", db, "--threads", "1", "--json"]
        var r = try runGraft(args)
        #expect(r.0 == 0, "\(r.2)")
        let original = try String(contentsOfFile: dev, encoding: .utf8)
        try (original + "pos\ta green hill .\n").write(toFile: dev, atomically: true, encoding: .utf8)
        r = try runGraft(args + ["--epochs", "2", "--resume"])
        #expect(r.0 != 0 && r.2.contains("other training data") && r.2.contains("trainer.data"), "\(r.2)")
        try original.write(toFile: dev, atomically: true, encoding: .utf8)
        r = try runGraft(args + ["--epochs", "2", "--resume"])
        #expect(r.0 == 0, "\(r.2)")
        #expect(try Self.lastJSON(r.1)["steps"] as? Int == 8, "\(r.1)")
    }

    /// --pooling mean builds the classifier without a pooler, records it in config.json
    /// (graft_pooling), evaluate and logits use it, and export refuses the model clearly.
    @Test func meanPoolingIsKeptAndExportRefusesIt() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try TaskCLITests.baseModel(in: dir)
        let (spec, dev) = try Self.sentimentSpec(in: dir, epochs: 2, model: "pooling = \"cls\"")
        let out = dir.appendingPathComponent("mean").path, db = dir.appendingPathComponent("g.sqlite").path
        var r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", out, "--db", db, "--threads", "1", "--pooling", "mean", "--json"])
        #expect(r.0 == 0, "\(r.2)")
        let config = try String(contentsOfFile: out + "/best/config.json", encoding: .utf8)
        #expect(config.contains("\"graft_pooling\": \"mean\""), "\(config)")
        let loaded = try ModelDirectory.open(out + "/best")
        let model = try #require(loaded.model as? BertForSequenceClassification)
        #expect(model.pooling == .mean && !model.store.contains("pooler.dense.weight"))

        r = try runGraft(["evaluate", "--model", out + "/best", "--data", dev, "--json"])
        #expect(r.0 == 0, "\(r.2)")
        #expect(try Self.lastJSON(r.1)["accuracy"] is Double)
        // graft logits gives the model's own logits (mean pooling) for the text.
        r = try runGraft(["logits", "--model", out + "/best"], stdin: "a red cat .\n")
        #expect(r.0 == 0, "\(r.2)")
        let row = try Self.lastJSON(r.1)
        let ids = try #require(row["input_ids"] as? [Int]).map(Int32.init)
        let expected = try model.logits(HeadInput(inputIds: ids, tokenTypeIds: [Int32](repeating: 0, count: ids.count), batch: 1, seqLen: ids.count)).array
        #expect((try #require(row["logits"] as? [Double])).map(Float.init) == expected)

        r = try runGraft(["export", "--model", out + "/best", "--out", dir.appendingPathComponent("hf").path])
        #expect(r.0 != 0 && r.2.contains("mean") && r.2.contains("pooler"), "\(r.2)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("hf/config.json").path))

        // The spec's pooling = "cls" (no --pooling) gives HuggingFace's pooler, which exports.
        let cls = dir.appendingPathComponent("cls").path
        r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", cls, "--db", db, "--threads", "1", "--epochs", "1"])
        #expect(r.0 == 0, "\(r.2)")
        #expect(try ModelDirectory.open(cls + "/best").model.store.contains("pooler.dense.weight"))
        r = try runGraft(["export", "--model", cls + "/best", "--out", dir.appendingPathComponent("hf").path])
        #expect(r.0 == 0, "\(r.2)")
        // Pooling on a tagging task is a spec error naming the key.
        let bad = try Self.write("name = \"t\"\nkind = \"ner\"\nlabels = [\"PER\"]\n[model]\npooling = \"mean\"\n", dir, "bad.toml")
        r = try runGraft(["finetune", "--task", bad, "--model", base, "--out", dir.appendingPathComponent("x").path])
        #expect(r.0 != 0 && r.2.contains("model.pooling"), "\(r.2)")
    }

    /// A labelled TSV and a CoNLL file imported into a corpus store with `graft corpus add`;
    /// sentiment and NER fine-tuned from store selections (train/dev split parts); both runs and
    /// their dev scores are recorded in that store.
    @Test func finetunesFromCorpusStoreSelectionsAndRecordsRuns() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try TaskCLITests.baseModel(in: dir)
        let db = dir.appendingPathComponent("store.sqlite").path
        var rows = ["label\ttext"], devRows = ["label\ttext"]
        for i in 0..<24 { rows.append(i % 2 == 0 ? "pos\tthe red cat sat on the mat \(i) ." : "neg\tthe blue dog ran and sat \(i) .") }
        for i in 0..<6 { devRows.append(i % 2 == 0 ? "pos\ta red house \(i) ." : "neg\ta blue tree \(i) .") }
        var conll = "", conllDev = ""
        for i in 0..<12 { conll += "the O\ncat B-PER\nsat O\non O\nthe O\nred B-LOC\nhouse I-LOC\n\(i) O\n\n" }
        for i in 0..<4 { conllDev += "a O\ndog B-PER\nran O\nto O\nthe O\nbig B-LOC\ntree I-LOC\n\(i) O\n\n" }
        let files = [("s-train.tsv", rows.joined(separator: "\n") + "\n", "tsv", "train"), ("s-dev.tsv", devRows.joined(separator: "\n") + "\n", "tsv", "dev"),
                     ("n-train.txt", conll, "conll", "train"), ("n-dev.txt", conllDev, "conll", "dev")]
        for (name, text, format, part) in files {
            let r = try runGraft(["corpus", "add", try Self.write(text, dir, name), "--format", format, "--split", part, "--db", db, "--quiet"])
            #expect(r.0 == 0, "\(name): \(r.2)")
        }
        let sentiment = try Self.write("""
            name = "store-sentiment"
            kind = "sentiment"
            labels = ["neg", "pos"]
            [data]
            store = "\(db)"
            train_split = "train"
            dev_split = "dev"
            [model]
            max_length = 16
            [train]
            epochs = 2
            lr = 3e-3
            batch_size = 8
            """, dir, "sentiment.toml")
        let ner = try Self.write("""
            name = "store-ner"
            kind = "ner"
            labels = ["PER", "LOC"]
            [data]
            store = "\(db)"
            [model]
            max_length = 16
            [train]
            epochs = 2
            lr = 5e-3
            batch_size = 8
            """, dir, "ner.toml")
        var r = try runGraft(["finetune", "--task", sentiment, "--model", base, "--out", dir.appendingPathComponent("s").path,
                              "--db", db, "--threads", "1", "--json"])
        #expect(r.0 == 0, "\(r.2)")
        #expect(r.2.contains("24 training examples") && r.2.contains("6 dev examples"), "only the TSV documents of each part: \(r.2)")
        let s = try Self.lastJSON(r.1)
        r = try runGraft(["finetune", "--task", ner, "--model", base, "--out", dir.appendingPathComponent("n").path,
                          "--db", db, "--threads", "1", "--json"])
        #expect(r.0 == 0, "\(r.2)")
        #expect(r.2.contains("12 training examples") && r.2.contains("4 dev examples"), "\(r.2)")
        let n = try Self.lastJSON(r.1)

        r = try runGraft(["corpus", "runs", "--db", db])
        #expect(r.0 == 0, "\(r.2)")
        let runs = r.1.split(separator: "\n")
        #expect(runs.count == 2, "\(r.1)")
        let sentimentRun = try #require(runs.first { $0.contains("finetune-sentiment") && $0.contains("finished") }, "\(r.1)")
        let nerRun = try #require(runs.first { $0.contains("finetune-ner") && $0.contains("finished") }, "\(r.1)")
        let accuracy = try #require(try Self.summary(sentimentRun)["best_dev_accuracy"] as? Double)
        let f1 = try #require(try Self.summary(nerRun)["best_dev_f1"] as? Double)
        #expect(abs(accuracy - (try #require(s["best_dev_accuracy"] as? Double))) < 1e-9)
        #expect(abs(f1 - (try #require(n["best_dev_f1"] as? Double))) < 1e-9)
        // Each evaluation's scores are in the run's metrics.
        r = try runGraft(["corpus", "runs", "--db", db, "--id", "2"])
        #expect(r.1.contains("dev_f1") && r.1.contains("dev_precision") && r.1.contains("store-ner"), "\(r.1)")
    }

    /// Copies a transformers head fixture (tiny, random, made by scripts/make_head_fixtures.py)
    /// with a tokenizer and, optionally, other labels in its config.json.
    static func hfDirectory(_ fixture: String, in dir: URL, labels: [String]? = nil) throws -> String {
        let src = try #require(Bundle.module.url(forResource: "Fixtures/heads/\(fixture)", withExtension: nil))
        let dst = dir.appendingPathComponent("hf-\(fixture)")
        try FileManager.default.createDirectory(at: dst, withIntermediateDirectories: true)
        for name in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: src.appendingPathComponent(name), to: dst.appendingPathComponent(name))
        }
        try smallWordPieceTokenizer().save(to: dst.appendingPathComponent("tokenizer.json").path)
        if let labels {
            var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: dst.appendingPathComponent("config.json"))) as? [String: Any])
            config["id2label"] = Dictionary(uniqueKeysWithValues: labels.enumerated().map { (String($0.offset), $0.element) })
            config["label2id"] = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($0.element, $0.offset) })
            try JSONSerialization.data(withJSONObject: config).write(to: dst.appendingPathComponent("config.json"))
        }
        return dst.path
    }

    /// transformers head directories (the HF-made fixtures) imported with `graft import` and
    /// scored with `graft evaluate`: the task comes from the architecture and id2label, or from
    /// a spec whose labels are the same set in another order (the model's ids decide); accuracy
    /// equals the argmax of the model's logits computed here.
    @Test func importedTransformersHeadsEvaluate() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Sequence classification: labels LABEL_0..2 as transformers names them by default.
        let seq = dir.appendingPathComponent("seq").path
        var r = try runGraft(["import", try Self.hfDirectory("bert_sequence", in: dir), "--out", seq])
        #expect(r.0 == 0, "\(r.2)")
        let texts = ["the cat sat on the mat .", "a big dog ran", "the red house and the blue tree", "a small cat", "the dog sat on a mat"]
        let model = try #require(try ModelDirectory.open(seq).model as? BertForSequenceClassification)
        let tok = try smallWordPieceTokenizer()
        var predicted: [Int] = []
        for t in texts {
            let ids = try tok.encode(t).ids
            let z = try model.logits(HeadInput(inputIds: ids, tokenTypeIds: [Int32](repeating: 0, count: ids.count), batch: 1, seqLen: ids.count)).array
            predicted.append(z.indices.max { z[$0] < z[$1] }!)
        }
        let gold = [0, 1, 2, 0, 1]
        let tsv = try Self.write("label\ttext\n" + zip(gold, texts).map { "LABEL_\($0)\t\($1)\n" }.joined(), dir, "seq.tsv")
        r = try runGraft(["evaluate", "--model", seq, "--data", tsv, "--json"])
        #expect(r.0 == 0, "\(r.2)")
        let expected = Double(zip(gold, predicted).filter { $0 == $1 }.count) / Double(texts.count)
        #expect(try Self.lastJSON(r.1)["accuracy"] as? Double == expected, "predicted \(predicted)")

        // Token classification: id2label in an order of its own.
        let tags = ["B-PER", "O", "I-PER"]
        let tokDir = dir.appendingPathComponent("tok").path
        r = try runGraft(["import", try Self.hfDirectory("bert_token", in: dir, labels: tags), "--out", tokDir])
        #expect(r.0 == 0, "\(r.2)")
        let conll = try Self.write("the O\ncat B-PER\nsat O\n\nbig B-PER\ndog I-PER\nran O\n\n", dir, "tok.txt")
        r = try runGraft(["evaluate", "--model", tokDir, "--data", conll, "--json"])
        #expect(r.0 == 0, "\(r.2)")
        let inferred = try Self.lastJSON(r.1)
        #expect(inferred["f1"] is Double && inferred["examples"] as? Int == 2, "\(r.1)")
        let spec = try Self.write("name = \"per\"\nkind = \"ner\"\nlabels = [\"PER\"]\n[model]\nmax_length = 16\nstride = 4\n", dir, "per.toml")
        r = try runGraft(["evaluate", "--model", tokDir, "--task", spec, "--data", conll, "--json"])
        #expect(r.0 == 0, "\(r.2)")
        let withSpec = try Self.lastJSON(r.1)
        for key in ["f1", "precision", "recall"] { #expect(withSpec[key] as? Double == inferred[key] as? Double, "\(key)") }
        // Tags that are not IOB2/BIOES need a spec.
        let odd = dir.appendingPathComponent("odd").path
        r = try runGraft(["import", try Self.hfDirectory("bert_token", in: dir.appendingPathComponent("o"), labels: nil), "--out", odd])
        r = try runGraft(["evaluate", "--model", odd, "--data", conll, "--json"])
        #expect(r.0 != 0 && r.2.contains("id2label") && r.2.contains("--task"), "\(r.2)")

        // Question answering.
        let qa = dir.appendingPathComponent("qa").path
        r = try runGraft(["import", try Self.hfDirectory("bert_qa", in: dir), "--out", qa])
        #expect(r.0 == 0, "\(r.2)")
        let squad = try Self.write("""
            {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "the cat sat on the red mat and the dog ran to the big house .",
             "qas": [{"id": "q1", "question": "the cat sat on ?", "answers": [{"text": "red mat", "answer_start": 19}]},
                     {"id": "q2", "question": "a dog ran to ?", "answers": [{"text": "the big house", "answer_start": 46}]}]}]}]}
            """, dir, "qa.json")
        r = try runGraft(["evaluate", "--model", qa, "--data", squad, "--json"])
        #expect(r.0 == 0, "\(r.2)")
        let q = try Self.lastJSON(r.1)
        #expect(q["exact_match"] is Double && q["f1"] is Double && q["examples"] as? Int == 2, "\(r.1)")
    }
}
