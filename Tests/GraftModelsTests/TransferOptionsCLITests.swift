import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import GraftSupport
import Testing
@testable import GraftModels

/// `graft finetune --baseline scratch` (both runs, side by side, both recorded), the freezing
/// options on the command line, and `graft report` drawing the runs' `history.jsonl` as an HTML
/// page with SVG charts, rendered by headless Chromium where one is installed.
@Suite(.enabled(if: graftExecutable != nil, "needs the built graft executable next to the test bundle"))
struct TransferOptionsCLITests {
    static func spec(_ dir: URL, epochs: Int = 2) throws -> String { try FineTuneCLITests.sentimentSpec(in: dir, epochs: epochs).spec }

    /// The transfer run and its from-scratch twin: the JSON holds both with their difference,
    /// stderr the side-by-side table, the store both runs; then the report of the two runs.
    @Test func baselineScratchThenReport() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try TaskCLITests.baseModel(in: dir)
        let spec = try Self.spec(dir)
        let out = dir.appendingPathComponent("run").path, db = dir.appendingPathComponent("g.sqlite").path
        var r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", out, "--db", db, "--threads", "1",
                              "--baseline", "scratch", "--layer-lr-decay", "0.8", "--json"])
        #expect(r.0 == 0, "\(r.2)")
        let result = try FineTuneCLITests.lastJSON(r.1)
        let transfer = try #require(result["transfer"] as? [String: Any]), scratch = try #require(result["scratch"] as? [String: Any])
        let difference = try #require(result["difference"] as? [String: Double])
        let t = try #require(transfer["best_dev_accuracy"] as? Double), s = try #require(scratch["best_dev_accuracy"] as? Double)
        #expect(difference["best_dev_accuracy"] == t - s, "\(result)")
        #expect(transfer["model"] as? String == out + "/best" && scratch["model"] as? String == out + "/scratch/best")
        #expect(r.2.contains("random initialisation") && r.2.contains("transfer") && r.2.contains("scratch"), "\(r.2)")
        #expect(FileManager.default.fileExists(atPath: out + "/scratch/best/config.json"))
        r = try runGraft(["corpus", "runs", "--db", db])
        #expect(r.1.split(separator: "\n").count == 2 && r.1.contains(out + "/scratch"), "\(r.1)")
        // The scratch run really started elsewhere: its weights differ from the transfer run's.
        #expect(try PretrainCLITests.maxDifference(out + "/best", out + "/scratch/best") > 0.01)

        // Each history: one step line per update, one eval line per epoch.
        let history = try TrainingHistory.read(out + "/history.jsonl")
        #expect(history.filter { $0["type"]?.string == "step" }.count == 8 && history.filter { $0["type"]?.string == "eval" }.count == 2)
        #expect(history.last?["main_metric"]?.string == "accuracy")

        let html = dir.appendingPathComponent("report.html").path, svgs = dir.appendingPathComponent("svg").path
        r = try runGraft(["report", out, out + "/scratch", "--out", html, "--svg-dir", svgs, "--json"])
        #expect(r.0 == 0, "\(r.2)")
        let written = try FineTuneCLITests.lastJSON(r.1)
        let files = try #require(written["svg"] as? [String])
        #expect(files.map { ($0 as NSString).lastPathComponent } == ["train-loss.svg", "dev-accuracy.svg"], "\(files)")
        let page = try String(contentsOfFile: html, encoding: .utf8)
        #expect(page.components(separatedBy: "<svg ").count == 3 && !page.contains("<script") && page.contains(out + "/scratch"))
        let svg = try String(contentsOfFile: files[0], encoding: .utf8)
        #expect(svg.components(separatedBy: "<polyline").count == 1 + 1 + 2)   // axes + one line per run
        #expect(try XMLDocument(xmlString: svg).rootElement()?.name == "svg")

        // Bad input: a directory without history.
        r = try runGraft(["report", base, "--out", html])
        #expect(r.0 != 0 && r.2.contains(base) && r.2.contains("history.jsonl"), "\(r.2)")
        // Extreme but finite values draw; a step that is no update number is named (both trapped).
        let odd = dir.appendingPathComponent("odd")
        try FileManager.default.createDirectory(at: odd, withIntermediateDirectories: true)
        let lines = [#"{"type": "step", "step": 1, "loss": 1e308}"#, #"{"type": "step", "step": 2, "loss": -1e308}"#,
                     #"{"type": "eval", "step": 2, "main_metric": "loss", "higher_is_better": false, "metrics": {"loss": 1.7e308}}"#]
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: odd.appendingPathComponent("history.jsonl"))
        r = try runGraft(["report", odd.path, "--out", dir.appendingPathComponent("odd.html").path])
        #expect(r.0 == 0, "\(r.2)")
        try Data((lines[0] + "\n" + #"{"type": "step", "step": 1e300, "loss": 1}"# + "\n").utf8).write(to: odd.appendingPathComponent("history.jsonl"))
        r = try runGraft(["report", odd.path, "--out", dir.appendingPathComponent("odd.html").path])
        #expect(r.0 != 0 && r.2.contains("history.jsonl:2") && r.2.contains("not an update number"), "\(r.2)")
        try renderInChromium(html, dir: dir)
    }

    /// Loads the page in headless Chromium (skipped with a note where none is installed): the
    /// DOM has the charts, the console no error, and a screenshot is taken.
    func renderInChromium(_ html: String, dir: URL) throws {
        let candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        guard let chromium = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            print("TransferOptionsCLITests: no chromium binary found; the headless rendering check is skipped (apt-get install chromium)")
            return
        }
        let common = ["--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0"]
        var r = try runProcess(chromium, common + ["--dump-dom", "file://" + html])
        #expect(r.0 == 0, "\(r.2)")
        #expect(r.1.contains("<svg") && r.1.contains("polyline"), "\(r.1.prefix(400))")
        let consoleErrors = r.2.split(separator: "\n").filter { $0.contains("CONSOLE") || $0.contains("Uncaught") }
        #expect(consoleErrors.isEmpty, "\(consoleErrors)")
        let png = dir.appendingPathComponent("report.png").path
        r = try runProcess(chromium, common + ["--screenshot=" + png, "--window-size=1400,1100", "file://" + html])
        #expect(r.0 == 0 && FileManager.default.fileExists(atPath: png), "\(r.2)")
        if let keep = ProcessInfo.processInfo.environment["GRAFT_KEEP_REPORT_SCREENSHOT"] { try? FileManager.default.copyItem(atPath: png, toPath: keep) }
    }

    /// The freezing options on the command line, and their contradictions refused.
    @Test func freezingOptionsOnTheCommandLine() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try TaskCLITests.baseModel(in: dir)
        let spec = try Self.spec(dir, epochs: 3)
        let out = dir.appendingPathComponent("gradual").path, db = dir.appendingPathComponent("g.sqlite").path
        var r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", out, "--db", db, "--threads", "1", "--gradual-unfreeze"])
        #expect(r.0 == 0, "\(r.2)")
        // Epoch 1 trained the head alone, epoch 2 the top layer too, epoch 3 both layers; the embeddings never.
        let start = try ModelDirectory.open(base, as: "BertForSequenceClassification", labels: ["neg", "pos"]).model.store
        let end = try ModelDirectory.open(out + "/checkpoints/step-0000012").model.store   // after the third epoch
        for name in ["embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight", "encoder.layer.1.output.dense.weight"] {
            let a = start.value(try start.parameter(named: name)), b = end.value(try end.parameter(named: name))
            let count = try start.parameter(named: name).count
            let same = (0..<count).allSatisfy { a[$0].bitPattern == b[$0].bitPattern }
            #expect(same == name.hasPrefix("embeddings"), "\(name)")
        }
        let cached = dir.appendingPathComponent("cached").path
        r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", cached, "--db", db, "--threads", "1", "--freeze-encoder", "--cache-features"])
        #expect(r.0 == 0 && r.2.contains("cached features") && r.2.contains("MB"), "\(r.2)")
        r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", cached, "--cache-features"])
        #expect(r.0 != 0 && r.2.contains("--freeze-encoder"), "\(r.2)")
        r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", cached, "--freeze-layers", "1", "--unfreeze-top", "1"])
        #expect(r.0 != 0 && r.2.contains("--unfreeze-top 1"), "\(r.2)")
        r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", cached, "--layer-lr-decay", "1.5"])
        #expect(r.0 != 0 && r.2.contains("--layer-lr-decay"), "\(r.2)")
        r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", cached, "--baseline", "scratch", "--init", "random"])
        #expect(r.0 != 0 && r.2.contains("--baseline scratch"), "\(r.2)")
    }
}
