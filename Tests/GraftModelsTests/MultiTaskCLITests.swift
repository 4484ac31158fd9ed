import Foundation
import GraftSupport
import Testing
@testable import GraftModels

/// `graft finetune --task A --task B` (multi-task learning): one model directory whose heads
/// `classify`, `tag` and `evaluate` serve by `--head` (defaulting to the only head of a kind),
/// refused by `export`, resumed with the same scores.
@Suite(.enabled(if: graftExecutable != nil, "needs the built graft executable next to the test bundle"))
struct MultiTaskCLITests {
    static func write(_ text: String, _ dir: URL, _ name: String) throws -> String { try TaskCLITests.write(text, dir, name) }

    /// A sentiment and an NER spec over tiny data in `dir`.
    static func specs(_ dir: URL) throws -> (sentiment: String, ner: String, nerDev: String) {
        let (train, dev) = try FineTuneCLITests.sentimentData(dir)
        var conll: [String] = []
        for i in 0..<12 { conll.append(i % 2 == 0 ? "the O\nred B-COL\ncat O\nsat O\n" : "a O\nblue B-COL\nhouse O\n") }
        let nerTrain = try write(conll.joined(separator: "\n"), dir, "ner-train.txt")
        let nerDev = try write("the O\nblue B-COL\ntree O\n\na O\nred B-COL\nmat O\n", dir, "ner-dev.txt")
        func spec(_ name: String, kind: String, labels: String, train: String, dev: String, extra: String = "") throws -> String {
            try write("name = \"\(name)\"\nkind = \"\(kind)\"\nlabels = \(labels)\n[data]\ntrain = \"\(train)\"\ndev = \"\(dev)\"\n" +
                      "[model]\nmax_length = 16\n" + extra, dir, name + ".toml")
        }
        // Hyper-parameters come from the first spec's [train] table.
        let sentiment = try spec("sent", kind: "sentiment", labels: "[\"neg\", \"pos\"]", train: train, dev: dev,
                                 extra: "[train]\nepochs = 2\nlr = 3e-3\nbatch_size = 4\nseed = 3\n")
        let ner = try spec("colours", kind: "ner", labels: "[\"COL\"]", train: nerTrain, dev: nerDev)
        return (sentiment, ner, nerDev)
    }

    @Test func multiTaskFinetuneServesEveryHead() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try TaskCLITests.baseModel(in: dir)
        let (sentiment, ner, nerDev) = try Self.specs(dir)
        let out = dir.appendingPathComponent("run").path, db = dir.appendingPathComponent("g.sqlite").path
        let args = ["finetune", "--task", sentiment, "--task", ner, "--model", base, "--out", out, "--db", db, "--threads", "1",
                    "--sampling", "temperature", "--sampling-temperature", "2", "--json"]
        var r = try runGraft(args)
        #expect(r.0 == 0, "\(r.2)")
        let s = try TaskCLITests.json(try #require(r.1.split(separator: "\n").last))
        #expect(s["task"] as? String == "sent+colours")
        let accuracy = try #require(s["sent.accuracy"] as? Double), f1 = try #require(s["colours.f1"] as? Double)
        #expect(s["best_dev_mean_main"] as? Double == (accuracy + f1) / 2, "\(s)")
        #expect(r.2.contains("temperature sampling"), "\(r.2)")
        let best = out + "/best"
        for file in ["graft-task-sent.toml", "graft-task-colours.toml"] {
            #expect(FileManager.default.fileExists(atPath: best + "/" + file), "\(file)")
        }

        // Each command finds its head by kind; evaluate needs --head with two heads.
        r = try runGraft(["classify", "--model", best], stdin: "the red cat sat .\n")
        #expect(r.0 == 0 && r.1.contains("\"label\""), "\(r.2)")
        r = try runGraft(["tag", "--model", best], stdin: "the blue house\n")
        #expect(r.0 == 0 && r.1.contains("\"entities\""), "\(r.2)")
        r = try runGraft(["evaluate", "--model", best, "--data", nerDev, "--json"])
        #expect(r.0 != 0 && r.2.contains("choose one with --head"), "\(r.2)")
        r = try runGraft(["evaluate", "--model", best, "--head", "colours", "--data", nerDev, "--json"])
        #expect(r.0 == 0, "\(r.2)")
        let scores = try TaskCLITests.json(try #require(r.1.split(separator: "\n").last))
        #expect(scores["f1"] as? Double == f1, "the best model's dev F1 again: \(scores) vs \(s)")
        r = try runGraft(["tag", "--model", best, "--head", "sent"], stdin: "the blue house\n")
        #expect(r.0 != 0 && r.2.contains("graft tag needs"), "\(r.2)")
        r = try runGraft(["export", "--model", best, "--out", dir.appendingPathComponent("hf").path])
        #expect(r.0 != 0 && r.2.contains("multi-task"), "\(r.2)")
        // One head exported as its single-task class (with its spec) scores the same.
        let single = dir.appendingPathComponent("colours").path
        r = try runGraft(["export", "--model", best, "--head", "colours", "--out", single])
        #expect(r.0 == 0, "\(r.2)")
        #expect(FileManager.default.fileExists(atPath: single + "/graft-task.toml"))
        r = try runGraft(["evaluate", "--model", single, "--data", nerDev, "--json"])
        #expect(r.0 == 0, "\(r.2)")
        #expect(try TaskCLITests.json(try #require(r.1.split(separator: "\n").last))["f1"] as? Double == f1, "\(r.1)")
        r = try runGraft(["finetune", "--task", sentiment, "--task", ner, "--train", nerDev, "--out", out])
        #expect(r.0 != 0 && r.2.contains("--train applies to one task"), "\(r.2)")
        // A task whose data.train mixes several sources: refused by name (one source per task).
        let (sentTrain, sentDev) = try FineTuneCLITests.sentimentData(dir)
        let mixed = try Self.write("name = \"mixed\"\nkind = \"sentiment\"\nlabels = [\"neg\", \"pos\"]\n[data]\n" +
                                   "train = [{ file = \"\(sentTrain)\", rate = 0.5 }, { file = \"\(sentDev)\", rate = 0.5 }]\n" +
                                   "dev = \"\(sentDev)\"\n[model]\nmax_length = 16\n", dir, "mixed.toml")
        r = try runGraft(["finetune", "--task", mixed, "--task", ner, "--model", base, "--out", dir.appendingPathComponent("mixed").path,
                          "--db", db, "--threads", "1"])
        #expect(r.0 != 0 && r.2.contains("mixed.toml: data.train lists 2 sources"), "\(r.2)")

        // The run record, and a resumed run (nothing left to train) reports the same best.
        r = try runGraft(["corpus", "runs", "--db", db])
        #expect(r.1.contains("finetune-multitask"), "\(r.1)")
        r = try runGraft(args + ["--resume"])
        #expect(r.0 == 0, "\(r.2)")
    }
}
