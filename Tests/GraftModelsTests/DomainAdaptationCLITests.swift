import Foundation
import GraftEngine
import Testing
@testable import GraftModels

/// `graft finetune --adapt adversarial|weighting`, multi-source specs and `graft evaluate
/// --label-map` end to end on a tiny BERT (no shared data), and their bad input refused with a
/// message naming the file.
@Suite(.enabled(if: graftExecutable != nil, "needs the built graft executable next to the test bundle"))
struct DomainAdaptationCLITests {
    static func write(_ text: String, _ dir: URL, _ name: String) throws -> String { try TaskCLITests.write(text, dir, name) }

    /// "News" in CoNLL columns (PER, LOC), "tweets" with other type names, a map between them.
    static func data(_ dir: URL) throws -> (news: String, tweets: String, map: String) {
        var news = ""
        for _ in 0..<6 { news += "the O\nbig B-PER\ncat I-PER\nsat O\non O\nthe O\nred B-LOC\nmat I-LOC\n.\tO\n\n" }
        var tweets = ""
        for _ in 0..<4 { tweets += "a\tO\nsmall\tB-person\ndog\tI-person\nran\tO\nand\tO\nsat\tO\non\tO\nblue\tB-geo-loc\ntree\tI-geo-loc\n\n" }
        return (try write(news, dir, "news.txt"), try write(tweets, dir, "tweets.txt"),
                try write("[types]\nperson = \"PER\"\ngeo-loc = \"LOC\"\n", dir, "map.toml"))
    }

    static func spec(_ dir: URL, _ name: String, data: String, target: String) throws -> String {
        try write("""
            name = "tiny-adapt"
            kind = "ner"
            labels = ["PER", "LOC"]
            [data]
            \(data)
            \(target)
            [model]
            max_length = 16
            [train]
            epochs = 2
            lr = 3e-3
            batch_size = 4
            """, dir, name)
    }

    @Test func adaptationRunsFromTheCommandLine() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try TaskCLITests.baseModel(in: dir)
        let (news, tweets, map) = try Self.data(dir)
        let spec = try Self.spec(dir, "adapt.toml", data: "train = \"\(news)\"", target: """
            [target]
            text = "\(tweets)"
            dev = "\(tweets)"
            label_map = "\(map)"
            """)
        let db = dir.appendingPathComponent("g.sqlite").path
        var adversarialF1: Double?
        for method in ["adversarial", "weighting"] {
            let out = dir.appendingPathComponent(method).path
            let r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", out, "--db", db, "--threads", "1",
                                  "--adapt", method, "--adapt-weight", "0.5", "--json"])
            #expect(r.0 == 0, "\(r.2)")
            let s = try TaskCLITests.json(try #require(r.1.split(separator: "\n").last))
            #expect(s["adapt"] as? String == method && s["f1"] is Double && s["steps"] as? Int == 3, "\(s)")
            #expect(r.2.contains("domain adaptation: \(method) to 4 target texts"), "\(r.2)")
            if method == "adversarial" { adversarialF1 = s["best_dev_f1"] as? Double }
            // best/ is a plain tagger: no training-only tensors.
            let weights = try SafeTensors(contentsOf: URL(fileURLWithPath: out + "/best/model.safetensors"))
            #expect(!weights.names.contains { $0.hasPrefix(ModelDirectory.trainingOnlyPrefix) } && weights.names.contains("classifier.weight"))
            // The mapped target dev set scores the same through evaluate --label-map.
            let e = try runGraft(["evaluate", "--model", out + "/best", "--data", tweets, "--label-map", map, "--batch-size", "4", "--json"])
            #expect(e.0 == 0, "\(e.2)")
            let scores = try TaskCLITests.json(try #require(e.1.split(separator: "\n").last))
            #expect(scores["f1"] as? Double == s["f1"] as? Double && scores["examples"] as? Int == 4, "\(scores) vs \(s)")
        }
        // Resuming the finished adversarial run trains nothing more and keeps its score.
        let again = try runGraft(["finetune", "--task", spec, "--model", base, "--out", dir.appendingPathComponent("adversarial").path,
                                  "--db", db, "--threads", "1", "--adapt", "adversarial", "--adapt-weight", "0.5", "--json", "--resume"])
        #expect(again.0 == 0, "\(again.2)")
        let resumed = try TaskCLITests.json(try #require(again.1.split(separator: "\n").last))
        #expect(resumed["steps"] as? Int == 3 && adversarialF1 != nil && resumed["best_dev_f1"] as? Double == adversarialF1, "\(resumed)")

        // Two labelled sources at their rates.
        let multi = try Self.spec(dir, "multi.toml", data: """
            train = [{ file = "\(news)", rate = 0.5 }, { file = "\(tweets)", label_map = "\(map)", rate = 0.5 }]
            dev = { file = "\(tweets)", label_map = "\(map)" }
            """, target: "")
        let m = try runGraft(["finetune", "--task", multi, "--model", base, "--out", dir.appendingPathComponent("multi").path,
                              "--db", db, "--threads", "1", "--json"])
        #expect(m.0 == 0 && m.2.contains("10 training examples (10 windows from 2 sources)"), "\(m.2)")
    }

    @Test func badAdaptationInputIsRefusedClearly() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try TaskCLITests.baseModel(in: dir)
        let (news, tweets, _) = try Self.data(dir)
        let out = dir.appendingPathComponent("o").path
        // --adapt without a [target].
        let plain = try Self.spec(dir, "plain.toml", data: "train = \"\(news)\"", target: "")
        var r = try runGraft(["finetune", "--task", plain, "--model", base, "--out", out, "--adapt", "weighting"])
        #expect(r.0 != 0 && r.2.contains("[target]") && r.2.contains(plain), "\(r.2)")
        // An empty target text.
        let empty = try Self.write("\n\n", dir, "empty.txt")
        let emptySpec = try Self.spec(dir, "empty.toml", data: "train = \"\(news)\"", target: "[target]\ntext = \"\(empty)\"\nformat = \"lines\"")
        r = try runGraft(["finetune", "--task", emptySpec, "--model", base, "--out", out, "--adapt", "adversarial"])
        #expect(r.0 != 0 && r.2.contains(empty) && r.2.contains("empty"), "\(r.2)")
        // A target in another alphabet: all [UNK] under this vocabulary.
        let greek = try Self.write("καλημέρα κόσμε\nγεια σου\n", dir, "greek.txt")
        let greekSpec = try Self.spec(dir, "greek.toml", data: "train = \"\(news)\"", target: "[target]\ntext = \"\(greek)\"\nformat = \"lines\"")
        r = try runGraft(["finetune", "--task", greekSpec, "--model", base, "--out", out, "--adapt", "weighting"])
        #expect(r.0 != 0 && r.2.contains(greek) && r.2.contains("[UNK]"), "\(r.2)")
        // A mapping that names a type the data lacks.
        let wide = try Self.write("[types]\nperson = \"PER\"\ngeo-loc = \"LOC\"\nmovie = \"LOC\"\n", dir, "wide.toml")
        let wideSpec = try Self.spec(dir, "wide-spec.toml", data: "train = { file = \"\(tweets)\", label_map = \"\(wide)\" }", target: "")
        r = try runGraft(["finetune", "--task", wideSpec, "--model", base, "--out", out])
        #expect(r.0 != 0 && r.2.contains(wide) && r.2.contains("types.movie"), "\(r.2)")
    }
}
