import Foundation
import GraftSupport
import Testing
import GraftEngine
import GraftTokenizers
@testable import GraftModels

/// `graft finetune / evaluate / classify / tag / ask` end to end on a tiny BERT (no shared data):
/// output formats, input order, empty documents, offsets that slice the user's text exactly,
/// and bad input refused with a message naming the file, line or key.
@Suite(.enabled(if: graftExecutable != nil, "needs the built graft executable next to the test bundle"))
struct TaskCLITests {
    /// A tiny masked-LM BERT over the small WordPiece vocabulary, saved as a base model directory.
    static func baseModel(in dir: URL) throws -> String {
        let config = ModelConfig(kind: .bert, vocabSize: 24, hidden: 16, layers: 2, heads: 2, ffn: 32, maxPositions: 64,
                                 dropout: 0.1, attentionDropout: 0.1, padTokenId: 0)
        let model = try BertForMaskedLM(config: config, seed: 5)
        let path = dir.appendingPathComponent("base").path
        try ModelDirectory.save(model, tokenizer: try smallWordPieceTokenizer(), to: path)
        return path
    }

    static func write(_ text: String, _ dir: URL, _ name: String) throws -> String {
        let url = dir.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url.path
    }

    static func slice(_ text: String, _ start: Int, _ end: Int) -> String {
        let s = Array(text.unicodeScalars)
        var v = String.UnicodeScalarView()
        v.append(contentsOf: s[start..<end])
        return String(v)
    }

    static func json(_ line: Substring) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test func sentimentFinetuneEvaluateClassify() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try Self.baseModel(in: dir)
        var rows = ["label\ttext"]
        for i in 0..<48 {
            rows.append(i % 2 == 0 ? "pos\tthe red cat sat on the mat ." : "neg\tthe blue dog ran and sat .")
        }
        let train = try Self.write(rows.joined(separator: "\n") + "\n", dir, "train.tsv")
        let devPath = try Self.write("label\ttext\npos\ta red house .\nneg\ta blue tree .\n", dir, "dev.tsv")
        let spec = try Self.write("""
            name = "tiny-sentiment"
            kind = "sentiment"
            labels = ["neg", "pos"]
            [data]
            train = "\(train)"
            dev = "\(devPath)"
            [model]
            max_length = 16
            [train]
            epochs = 2
            lr = 3e-3
            batch_size = 8
            seed = 3
            """, dir, "task.toml")
        let out = dir.appendingPathComponent("run").path
        let db = dir.appendingPathComponent("g.sqlite").path
        var r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", out, "--db", db, "--threads", "1", "--json"])
        #expect(r.0 == 0, "\(r.2)")
        let summary = try Self.json(try #require(r.1.split(separator: "\n").last))
        #expect(summary["best_dev_accuracy"] is Double && summary["accuracy"] is Double && summary["train_seconds"] is Double && summary["model"] as? String == out + "/best")
        #expect(r.2.contains("accuracy"), "progress and dev scores go to stderr")
        // The run is recorded in the corpus store.
        r = try runGraft(["corpus", "runs", "--db", db])
        #expect(r.1.contains("finetune-sentiment"), "\(r.1)")

        r = try runGraft(["evaluate", "--model", out + "/best", "--data", devPath, "--json"])
        #expect(r.0 == 0, "\(r.2)")
        let scores = try Self.json(try #require(r.1.split(separator: "\n").last))
        for key in ["accuracy", "macro_f1", "examples", "seconds"] { #expect(scores[key] is Double || scores[key] is Int, "\(key) in \(r.1)") }
        #expect(scores["examples"] as? Int == 2)

        r = try runGraft(["classify", "--model", out + "/best"], stdin: "a red cat .\n\nthe blue dog ran .\n")
        #expect(r.0 == 0, "\(r.2)")
        let lines = r.1.split(separator: "\n")
        #expect(lines.count == 3)
        let first = try Self.json(lines[0]), empty = try Self.json(lines[1])
        #expect(first["text"] as? String == "a red cat ." && ["neg", "pos"].contains(first["label"] as? String ?? ""))
        let p = try #require(first["scores"] as? [String: Double])
        #expect(abs(p.values.reduce(0, +) - 1) < 1e-4)
        #expect(empty["label"] is NSNull && r.2.contains("1 empty document"))

        // The from-scratch baseline: the same architecture and tokenizer, no weights loaded.
        r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", dir.appendingPathComponent("scratch").path,
                          "--db", db, "--threads", "1", "--epochs", "1", "--init", "random", "--json"])
        #expect(r.0 == 0 && r.2.contains("random initialisation"), "\(r.2)")
        r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", dir.appendingPathComponent("x").path, "--init", "randm"])
        #expect(r.0 != 0 && r.2.contains("pretrained") && r.2.contains("random"), "\(r.2)")

        // A model directory without a head, and a command of the wrong task, are refused clearly.
        r = try runGraft(["classify", "--model", base], stdin: "a cat\n")
        #expect(r.0 != 0 && r.2.contains("graft-task.toml"), "\(r.2)")
        r = try runGraft(["tag", "--model", out + "/best"], stdin: "a cat\n")
        #expect(r.0 != 0 && r.2.contains("token-classification"), "\(r.2)")
    }

    @Test func nerTagsWithExactOffsetsAndQAAnswersSliceTheContext() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try Self.baseModel(in: dir)
        var conll = ""
        for _ in 0..<12 {
            conll += "the O\ncat B-PER\nsat O\non O\nthe O\nred B-LOC\nhouse I-LOC\n. O\n\n"
            conll += "a O\ndog B-PER\nran O\n. O\n\n"
        }
        let train = try Self.write(conll, dir, "train.txt")
        let spec = try Self.write("""
            name = "tiny-ner"
            kind = "ner"
            labels = ["PER", "LOC"]
            scheme = "iob2"
            [data]
            train = "\(train)"
            dev = "\(train)"
            [model]
            max_length = 8
            stride = 2
            [train]
            epochs = 3
            lr = 5e-3
            batch_size = 8
            """, dir, "ner.toml")
        let out = dir.appendingPathComponent("ner").path
        let db = dir.appendingPathComponent("g.sqlite").path
        var r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", out, "--db", db, "--threads", "1"])
        #expect(r.0 == 0, "\(r.2)")
        // Non-ASCII text, and a document longer than the 8-token window (windows merged by offsets).
        let docs = ["Zoë's cat sat on the red house in 東京 .", "", "the cat sat on the red house and the dog ran to the big red house ."]
        r = try runGraft(["tag", "--model", out + "/best"], stdin: docs.joined(separator: "\n") + "\n")
        #expect(r.0 == 0, "\(r.2)")
        let lines = r.1.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == docs.count)
        var entities = 0
        for (doc, line) in zip(docs, lines) {
            let o = try Self.json(line)
            #expect(o["text"] as? String == doc)
            for e in try #require(o["entities"] as? [[String: Any]]) {
                let start = try #require(e["start"] as? Int), end = try #require(e["end"] as? Int)
                #expect(0 <= start && start < end && end <= doc.unicodeScalars.count)
                #expect(Self.slice(doc, start, end) == e["text"] as? String, "entity \(e) in \(doc)")
                #expect(["PER", "LOC"].contains(e["type"] as? String ?? ""))
                entities += 1
            }
        }
        #expect(entities > 0, "the tagger found no entity at all: \(r.1)")
        for format in ["conll", "html", "pretty"] {
            r = try runGraft(["tag", "--model", out + "/best", "--format", format], stdin: docs[0] + "\n")
            #expect(r.0 == 0 && !r.1.isEmpty, "\(format): \(r.2)")
        }
        let page = try runGraft(["tag", "--model", out + "/best", "--format", "html"], stdin: "a <b> & c\n").1
        #expect(page.contains("&lt;") && page.contains("&amp;") && !page.contains("<b>"), "\(page)")

        // QA on the same base: answers are the context sliced at the reported offsets.
        var paragraphs: [String] = []
        for i in 0..<10 {
            let color = i % 2 == 0 ? "red" : "blue"
            paragraphs.append("""
                {"context": "the cat sat on the \(color) mat .", "qas": [{"id": "q\(i)", "question": "the cat sat on the ?",
                 "answers": [{"text": "\(color) mat", "answer_start": 19}]}]}
                """)
        }
        let squad = try Self.write("{\"version\": \"1.1\", \"data\": [{\"title\": \"t\", \"paragraphs\": [\(paragraphs.joined(separator: ","))]}]}", dir, "qa.json")
        let qaSpec = try Self.write("""
            name = "tiny-qa"
            kind = "qa"
            [data]
            train = "\(squad)"
            dev = "\(squad)"
            [model]
            max_length = 24
            stride = 4
            [train]
            epochs = 2
            lr = 5e-3
            batch_size = 4
            """, dir, "qa.toml")
        let qaOut = dir.appendingPathComponent("qa").path
        r = try runGraft(["finetune", "--task", qaSpec, "--model", base, "--out", qaOut, "--db", db, "--threads", "1"])
        #expect(r.0 == 0, "\(r.2)")
        let context = "Zoë's red cat sat on the blue mat ."
        r = try runGraft(["ask", "--model", qaOut + "/best", "--context", try Self.write(context, dir, "ctx.txt"), "the cat sat on the ?"])
        #expect(r.0 == 0, "\(r.2)")
        let a = try Self.json(try #require(r.1.split(separator: "\n").first))
        let start = try #require(a["start"] as? Int), end = try #require(a["end"] as? Int)
        #expect(Self.slice(context, start, end) == a["answer"] as? String)
        // JSON Lines: one output line per input line, blank lines and unanswerable records
        // included (answer null, named on stderr); a question without --context is refused.
        let long = Array(repeating: "cat", count: 40).joined(separator: " ")
        let records = [#"{"context": "the cat sat on the red mat .", "question": "the cat sat on the ?"}"#, "",
                       #"{"context": "a mat .", "question": " "}"#, #"{"context": "a mat .", "question": "\#(long)"}"#,
                       #"{"context": "the dog sat on the blue mat .", "question": "the dog sat on the ?"}"#]
        r = try runGraft(["ask", "--model", qaOut + "/best"], stdin: records.joined(separator: "\n") + "\n")
        let answerLines = r.1.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(r.0 == 0 && answerLines.count == 5, "\(r.1) \(r.2)")
        if answerLines.count == 5 {
            let answers = try answerLines.map { try Self.json($0) }
            #expect(answers[0]["answer"] is String && answers[4]["answer"] is String)
            #expect(answers[1]["question"] is NSNull && answers[1]["answer"] is NSNull)
            #expect(answers[2]["answer"] is NSNull && answers[3]["answer"] is NSNull)
        }
        #expect(r.2.contains("stdin:3") && r.2.contains("empty") && r.2.contains("stdin:4") && r.2.contains("too long"), "\(r.2)")
        r = try runGraft(["ask", "--model", qaOut + "/best", "the cat sat on the ?"], stdin: "")
        #expect(r.0 != 0 && r.2.contains("--context"), "\(r.2)")
        r = try runGraft(["evaluate", "--model", qaOut + "/best", "--data", squad, "--json"])
        let s = try Self.json(try #require(r.1.split(separator: "\n").last))
        #expect(s["exact_match"] is Double && s["f1"] is Double, "\(r.1) \(r.2)")
    }

    @Test func badInputIsRefusedWithFileAndLineOrKey() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try Self.baseModel(in: dir)
        let train = try Self.write("label\ttext\npos\ta red cat\nmeh\ta blue dog\n", dir, "train.tsv")
        let spec = try Self.write("name = \"t\"\nkind = \"sentiment\"\nlabels = [\"neg\", \"pos\"]\n[data]\ntrain = \"\(train)\"\n", dir, "t.toml")
        var r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", dir.appendingPathComponent("o").path,
                              "--db", dir.appendingPathComponent("g.sqlite").path])
        #expect(r.0 != 0 && r.2.contains("train.tsv") && r.2.contains("3") && r.2.contains("meh"), "\(r.2)")
        let typo = try Self.write("name = \"t\"\nkind = \"sentiment\"\nlabels = [\"neg\", \"pos\"]\n[train]\nepochz = 3\n", dir, "typo.toml")
        r = try runGraft(["finetune", "--task", typo, "--model", base, "--out", dir.appendingPathComponent("o").path])
        #expect(r.0 != 0 && r.2.contains("epochz") && r.2.contains("epochs"), "\(r.2)")
        // Options out of their domain are refused by name before anything runs (nan and 1e300
        // once trapped converting the warm-up to a step count).
        let good = try Self.write("label\ttext\npos\ta red cat\nneg\ta blue dog\n", dir, "good.tsv")
        for (option, value) in [("--warmup-ratio", "nan"), ("--warmup-ratio", "1e300"), ("--warmup-ratio", "2"),
                                ("--weight-decay", "inf"), ("--weight-decay", "nan"), ("--epochs", "1000000000000")] {
            r = try runGraft(["finetune", "--task", spec, "--train", good, "--model", base, "--out", dir.appendingPathComponent("o").path, option, value])
            #expect(r.0 != 0 && r.2.contains(option), "\(option) \(value): \(r.2)")
        }
        // A table header 50,000 levels deep overflowed the TOML parser's stack.
        let deep = try Self.write("name = \"t\"\nkind = \"sentiment\"\n[" + Array(repeating: "a", count: 50_000).joined(separator: ".") + "]\nb = 1\n", dir, "deep.toml")
        r = try runGraft(["finetune", "--task", deep, "--model", base, "--out", dir.appendingPathComponent("o").path])
        #expect(r.0 != 0 && r.2.contains("deep.toml") && r.2.contains("nested more than 256"), "\(r.2.prefix(300))")
        // The same depth built across lines: a multi-line array of inline tables with long keys.
        let key = Array(repeating: "k", count: 255).joined(separator: ".")
        let across = "name = \"t\"\nkind = \"sentiment\"\nz = [\n" + String(repeating: "{ \(key) = [\n", count: 127) + "1\n"
            + String(repeating: "]}\n", count: 127) + "]\n"
        let wide = try Self.write(across, dir, "wide.toml")
        r = try runGraft(["finetune", "--task", wide, "--model", base, "--out", dir.appendingPathComponent("o").path])
        #expect(r.0 != 0 && r.2.contains("wide.toml") && r.2.contains("dots and brackets"), "\(r.2.prefix(300))")
        // A question without an answer is named when the data is read, not mid-training.
        let squad = try Self.write(#"{"data": [{"title": "t", "paragraphs": [{"context": "Ada wrote notes.", "qas": [{"id": "q1", "question": "Who?", "answers": [{"text": "Ada", "answer_start": 0}]}, {"id": "q2", "question": "What?", "answers": []}]}]}]}"#, dir, "qa.json")
        let qa = try Self.write("name = \"q\"\nkind = \"qa\"\n[data]\ntrain = \"\(squad)\"\n", dir, "qa.toml")
        r = try runGraft(["finetune", "--task", qa, "--model", base, "--out", dir.appendingPathComponent("q").path, "--db", dir.appendingPathComponent("g.sqlite").path])
        #expect(r.0 != 0 && r.2.contains("qa.json") && r.2.contains("q2") && r.2.contains("no answer"), "\(r.2)")
    }
}
