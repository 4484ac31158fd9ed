import GraftSupport
import Foundation
import Testing
import GraftEngine
import GraftTokenizers
@testable import GraftModels

/// `graft pretrain` end to end on a small corpus database: progress, checkpoints, and a run
/// killed with SIGKILL (even while writing a checkpoint) that resumes to the same weights as an
/// uninterrupted run.
@Suite(.enabled(if: graftExecutable != nil, "needs the built graft executable next to the test bundle"))
struct PretrainCLITests {
    /// A small line corpus (`lines` lines) in a store, and a tokenizer of `kind` (`bert`: WordPiece,
    /// `gpt`: BPE) trained on it. Shared with the data-parallel tests.
    static func corpus(in dir: URL, lines count: Int = 400, kind: String = "gpt") throws -> (db: String, tokenizer: String) {
        let sentences = ["The river flows to the sea.", "A cat sat on the warm mat.", "Rain fell on the old town.",
                         "The ship sailed past the lighthouse.", "Birds sang in the tall trees."]
        var lines: [String] = []
        for i in 0..<count { lines.append("\(sentences[i % 5]) \(sentences[(i * 7 + 3) % 5]) Line \(i).") }
        let text = dir.appendingPathComponent("corpus.txt")
        try lines.joined(separator: "\n").write(to: text, atomically: true, encoding: .utf8)
        let db = dir.appendingPathComponent("c.sqlite").path, tok = dir.appendingPathComponent("tok").path
        var r = try runGraft(["corpus", "add", text.path, "--format", "lines", "--db", db])
        #expect(r.0 == 0, "\(r.2)")
        r = try runGraft(["tokenizer", "train", "--kind", kind == "bert" ? "wordpiece" : "bpe", "--vocab-size", "400", "--db", db, "--out", tok])
        #expect(r.0 == 0, "\(r.2)")
        return (db, tok)
    }

    static func pretrainArguments(db: String, tokenizer: String, out: String) -> [String] {
        ["pretrain", "--db", db, "--tokenizer", tokenizer, "--kind", "gpt", "--preset", "tiny", "--out", out,
         "--steps", "24", "--batch-size", "4", "--seq-len", "32", "--eval-every", "8", "--checkpoint-every", "1",
         "--warmup-steps", "2", "--threads", "1"]
    }

    @Test func killedRunsResumeToTheUninterruptedWeights() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (db, tok) = try Self.corpus(in: dir)
        let straight = dir.appendingPathComponent("straight").path
        let r = try runGraft(Self.pretrainArguments(db: db, tokenizer: tok, out: straight))
        #expect(r.0 == 0, "\(r.2)")
        #expect(r.2.contains("dev loss"))

        // Kill -9 a few times, each after the run has written one more checkpoint than before
        // (waited for, not guessed with a fixed delay: on a loaded machine a fixed delay can land
        // before the first checkpoint every time), plus a short extra delay so that some kills
        // land inside the next checkpoint write (one is written after every update).
        let killed = dir.appendingPathComponent("killed").path
        var arguments = Self.pretrainArguments(db: db, tokenizer: tok, out: killed)
        let latest = URL(fileURLWithPath: killed).appendingPathComponent("checkpoints/LATEST")
        var previous: String? = nil
        for (round, extraDelay) in [0.0, 0.03, 0.07].enumerated() {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: graftExecutable!)
            p.arguments = arguments
            p.environment = graftEnvironment
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let deadline = Date().addingTimeInterval(120)
            while p.isRunning, Date() < deadline, (try? String(contentsOf: latest, encoding: .utf8)) == previous {
                Thread.sleep(forTimeInterval: 0.005)
            }
            Thread.sleep(forTimeInterval: extraDelay)
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            let name = try? String(contentsOf: latest, encoding: .utf8)
            #expect(name != nil && name != previous, "round \(round): no new checkpoint before the kill")
            if let name {
                // LATEST always names a complete checkpoint.
                let ckpt = URL(fileURLWithPath: killed).appendingPathComponent("checkpoints/\(name)")
                for file in ["config.json", "model.safetensors", "tokenizer.json", "training-state.safetensors"] {
                    #expect(FileManager.default.fileExists(atPath: ckpt.appendingPathComponent(file).path), "round \(round): \(name)/\(file) missing")
                }
                if !arguments.contains("--resume") { arguments.append("--resume") }
            }
            previous = name
        }
        if !arguments.contains("--resume") { arguments.append("--resume") }
        let resumed = try runGraft(arguments)
        #expect(resumed.0 == 0, "\(resumed.2)")
        let a = try Data(contentsOf: URL(fileURLWithPath: straight).appendingPathComponent("checkpoints/step-0000024/model.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: killed).appendingPathComponent("checkpoints/step-0000024/model.safetensors"))
        let identical = a == b   // not inside #expect: a failure would diff megabytes byte by byte
        #expect(identical, "resumed weights differ from the uninterrupted run")
    }

    /// --resume refuses a checkpoint written for other data: documents added to the corpus
    /// after it (the train split's documents differ), naming what changed.
    @Test func resumeRefusesAChangedCorpus() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (db, tok) = try Self.corpus(in: dir, lines: 120)
        let out = dir.appendingPathComponent("o").path
        var arguments = Self.pretrainArguments(db: db, tokenizer: tok, out: out)
        arguments[arguments.firstIndex(of: "--steps")! + 1] = "2"
        var r = try runGraft(arguments)
        #expect(r.0 == 0, "\(r.2)")
        let more = dir.appendingPathComponent("more.txt")
        try (0..<40).map { "A new line about the harbour, number \($0)." }.joined(separator: "\n").write(to: more, atomically: true, encoding: .utf8)
        r = try runGraft(["corpus", "add", more.path, "--format", "lines", "--db", db])
        #expect(r.0 == 0, "\(r.2)")
        arguments[arguments.firstIndex(of: "--steps")! + 1] = "3"
        r = try runGraft(arguments + ["--resume"])
        #expect(r.0 != 0 && r.2.contains("other training data"), "\(r.2)")
    }

    @Test func profileSaysWhereTheUpdatesTimeWent() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (db, tok) = try Self.corpus(in: dir)
        var arguments = Self.pretrainArguments(db: db, tokenizer: tok, out: dir.appendingPathComponent("p").path)
        arguments[arguments.firstIndex(of: "--steps")! + 1] = "4"
        let r = try runGraft(arguments + ["--profile"])
        #expect(r.0 == 0, "\(r.2)")
        for line in ["region (per update)", "  layer 0 forward", "  layer 1 backward", "optimizer step", "evaluation", "checkpoint",
                     "outside the regions", "of the SGEMM ceiling"] {
            #expect(r.2.contains(line), "\(line) missing from:\n\(r.2)")
        }
        // The benchmark's profile, as JSON: the model's regions, the step's own, GEMM against the ceiling.
        let b = try runGraft(["bench", "pretrain", "--variant", "masked", "--batch-size", "2", "--seq-len", "16", "--steps", "2",
                              "--warmup", "1", "--threads", "1", "--profile", "--json"])
        #expect(b.0 == 0, "\(b.2)")
        let object = try JSONSerialization.jsonObject(with: Data(b.1.split(separator: "\n").last!.utf8)) as! [String: Any]
        let profile = try #require(object["profile"] as? [String: Any])
        let names = (profile["regions"] as! [[String: Any]]).map { $0["region"] as! String }
        #expect(names == ["zero gradients", "embeddings forward", "layer 0 forward", "layer 1 forward", "layer 2 forward", "layer 3 forward",
                          "MLM head + loss forward", "MLM head backward", "layer 3 backward", "layer 2 backward", "layer 1 backward",
                          "layer 0 backward", "embeddings backward", "clip gradients", "AdamW step"])
        let share = try #require(profile["gemm_share"] as? Double)
        #expect(share > 0 && share <= 1)
        #expect((profile["sgemm_ceiling_gflops"] as? Double ?? 0) > 0)
        // Each timed update against the ceiling sampled beside it: a median within the range.
        let low = try #require(profile["update_of_ceiling_min"] as? Double), high = try #require(profile["update_of_ceiling_max"] as? Double)
        let middle = try #require(profile["update_of_ceiling_median"] as? Double)
        #expect(low > 0 && low <= middle && middle <= high)
        // By operation: the layers' kinds with their time outside the GEMMs, and the rest of the update.
        let operations = try #require(profile["operations"] as? [[String: Any]])
        let kinds = Set(operations.map { $0["operation"] as! String })
        #expect(kinds.isSuperset(of: ["LayerNorm forward", "GELU backward (output rebuilt)", "attention backward", "Linear forward (GEMM, bias)"]),
                "\(kinds.sorted())")
        #expect(operations.allSatisfy { ($0["other_ms_per_step"] as! Double) >= 0 && ($0["calls_per_step"] as! Double) > 0 })
        #expect((profile["outside_operations_ms_per_step"] as? Double ?? -1) >= 0)
    }

    /// `graft` re-executes itself with the OpenBLAS kernels `GRAFT_OPENBLAS_CORETYPE` names (SSE3
    /// `Prescott`: every x86-64 runs it), its benchmarks say which kernels ran, and `off` (the
    /// tests' setting) keeps this process's.
    @Test func openBLASKernelsChosenAndReported() throws {
        #if arch(x86_64)
        let arguments = ["bench", "pretrain", "--variant", "masked", "--batch-size", "2", "--seq-len", "16", "--steps", "1",
                         "--warmup", "0", "--threads", "1", "--json"]
        func core(_ environment: [String: String]) throws -> String? {
            let r = try runProcess(graftExecutable!, arguments, environment: environment)
            #expect(r.0 == 0, "\(r.2)")
            let object = try JSONSerialization.jsonObject(with: Data(r.1.split(separator: "\n").last!.utf8)) as? [String: Any]
            return object?["openblas_core"] as? String
        }
        var chosen = graftEnvironment
        chosen["GRAFT_OPENBLAS_CORETYPE"] = "PRESCOTT"
        chosen["OPENBLAS_CORETYPE"] = nil   // a user's own choice would stand
        #expect(try core(chosen) == "Prescott")
        #expect(try core(graftEnvironment) == BLAS.kernelCore)
        #endif
    }

    @Test func badArgumentsAreRefusedClearly() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (db, tok) = try Self.corpus(in: dir)
        var r = try runGraft(["pretrain", "--db", db, "--tokenizer", tok, "--kind", "bert", "--out", dir.appendingPathComponent("o").path])
        #expect(r.0 != 0)
        #expect(r.2.contains("[MASK]"), "\(r.2)")  // a BPE tokenizer without [MASK] cannot do masked LM
        r = try runGraft(["pretrain", "--db", db, "--tokenizer", tok, "--kind", "gpt", "--out", dir.appendingPathComponent("o").path, "--resume"])
        #expect(r.0 != 0)
        #expect(r.2.contains("nothing to resume"), "\(r.2)")
    }

    /// The largest absolute difference between the parameters of two model directories of the same shape.
    static func maxDifference(_ a: String, _ b: String) throws -> Float {
        let x = try ModelDirectory.open(a).model.store, y = try ModelDirectory.open(b).model.store
        var d: Float = 0
        for p in x.parameters {
            let q = try y.parameter(named: p.name)
            let u = x.value(p), v = y.value(q)
            for i in 0..<p.count { d = max(d, abs(u[i] - v[i])) }
        }
        return d
    }

    /// 4 updates at lr 1e-3 on sequences of 32, evaluated and checkpointed at the end.
    static func shortRun(db: String, out: String) -> [String] {
        ["pretrain", "--db", db, "--out", out, "--steps", "4", "--batch-size", "4", "--seq-len", "32",
         "--eval-every", "4", "--checkpoint-every", "4", "--warmup-steps", "1", "--lr", "1e-3", "--threads", "1"]
    }

    /// The GPT family: `--from` a causal-LM directory continues causal-LM pretraining from its
    /// weights with its tokenizer.json unchanged.
    @Test func continuesCausalPretrainingFromAModelDirectory() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (db, tok) = try Self.corpus(in: dir, lines: 120, kind: "gpt")
        let start = dir.appendingPathComponent("a").path, continued = dir.appendingPathComponent("b").path
        var r = try runGraft(Self.shortRun(db: db, out: start) + ["--tokenizer", tok, "--kind", "gpt", "--preset", "tiny"])
        #expect(r.0 == 0, "\(r.2)")
        r = try runGraft(Self.shortRun(db: db, out: continued) + ["--from", start + "/best"])
        #expect(r.0 == 0 && r.2.contains("dev loss") && !r.2.contains("freshly initialised"), "\(r.2)")
        #expect(try ModelDirectory.architecture(continued + "/best") == "GPT2LMHeadModel")
        let moved = try Self.maxDifference(start + "/best", continued + "/best")
        #expect(moved > 0 && moved < 0.01, "moved \(moved)")
        let same = try Data(contentsOf: URL(fileURLWithPath: continued + "/best/tokenizer.json")) == Data(contentsOf: URL(fileURLWithPath: start + "/best/tokenizer.json"))
        #expect(same)
        r = try runGraft(Self.shortRun(db: db, out: dir.appendingPathComponent("x").path) + ["--from", start + "/best", "--kind", "bert"])
        #expect(r.0 != 0 && r.2.contains("--kind bert contradicts"), "\(r.2)")
    }

    /// `--from`: continued masked-LM pretraining starts from the directory's weights (they move,
    /// but only as far as a few small updates take them) and keeps its tokenizer.json byte for
    /// byte; an encoder-only directory gets a fresh masked-LM head (reported); the result
    /// fine-tunes; contradicting --kind/--preset/--tokenizer and a missing or mismatched
    /// tokenizer are refused with the file and the problem.
    @Test func continuesPretrainingFromAModelDirectory() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (db, tok) = try Self.corpus(in: dir, lines: 120, kind: "bert")
        func args(_ out: String, _ extra: [String]) -> [String] { Self.shortRun(db: db, out: dir.appendingPathComponent(out).path) + extra }
        var r = try runGraft(args("a", ["--tokenizer", tok, "--kind", "bert", "--preset", "tiny"]))
        #expect(r.0 == 0, "\(r.2)")
        let start = dir.appendingPathComponent("a/best").path
        r = try runGraft(args("b", ["--from", start]))
        #expect(r.0 == 0, "\(r.2)")
        #expect(!r.2.contains("freshly initialised"), "\(r.2)")
        let continued = dir.appendingPathComponent("b/best").path
        let moved = try Self.maxDifference(start, continued)
        #expect(moved > 0 && moved < 0.01, "4 updates at lr 1e-3 from the start point moved the weights by at most \(moved)")
        let startTokenizer = try Data(contentsOf: URL(fileURLWithPath: start + "/tokenizer.json"))
        for file in ["b/best/tokenizer.json", "b/checkpoints/step-0000004/tokenizer.json"] {
            let same = try Data(contentsOf: dir.appendingPathComponent(file)) == startTokenizer
            #expect(same, "\(file) differs from the start model's tokenizer.json")
        }
        // The same tokenizer given explicitly is accepted.
        r = try runGraft(args("b2", ["--from", start, "--tokenizer", start + "/tokenizer.json", "--kind", "bert", "--preset", "tiny"]))
        #expect(r.0 == 0, "\(r.2)")

        // An encoder without a masked-LM head gets a fresh one; the output fine-tunes.
        let encoderDir = dir.appendingPathComponent("encoder").path
        let (encoder, tokenizer) = try ModelDirectory.openEncoder(start)
        try ModelDirectory.save(encoder, tokenizer: tokenizer, to: encoderDir)
        r = try runGraft(args("c", ["--from", encoderDir]))
        #expect(r.0 == 0, "\(r.2)")
        #expect(r.2.contains("no masked-LM head") && r.2.contains("cls.predictions"), "\(r.2)")
        let spec = try FineTuneCLITests.sentimentSpec(in: dir, epochs: 1, batchSize: 16).spec
        r = try runGraft(["finetune", "--task", spec, "--model", dir.appendingPathComponent("c").path + "/best", "--out", dir.appendingPathComponent("ft").path,
                          "--db", dir.appendingPathComponent("runs.sqlite").path, "--threads", "1"])
        #expect(r.0 == 0, "\(r.2)")

        // Contradictions and bad directories.
        r = try runGraft(args("x", ["--from", start, "--kind", "gpt"]))
        #expect(r.0 != 0 && r.2.contains("--kind gpt contradicts") && r.2.contains("config.json"), "\(r.2)")
        r = try runGraft(args("x", ["--from", start, "--preset", "mini"]))
        #expect(r.0 != 0 && r.2.contains("--preset mini") && r.2.contains("2 layers x 128"), "\(r.2)")
        let otherTokenizer = dir.appendingPathComponent("bpe").path
        r = try runGraft(["tokenizer", "train", "--kind", "bpe", "--vocab-size", "300", "--db", db, "--out", otherTokenizer])
        #expect(r.0 == 0, "\(r.2)")
        r = try runGraft(args("x", ["--from", start, "--tokenizer", otherTokenizer]))
        #expect(r.0 != 0 && r.2.contains("is not the tokenizer of --from"), "\(r.2)")
        let fm = FileManager.default
        let noTokenizer = dir.appendingPathComponent("no-tokenizer").path
        try fm.copyItem(atPath: start, toPath: noTokenizer)
        try fm.removeItem(atPath: noTokenizer + "/tokenizer.json")
        r = try runGraft(args("x", ["--from", noTokenizer]))
        #expect(r.0 != 0 && r.2.contains(noTokenizer + "/tokenizer.json is missing"), "\(r.2)")
        // A tokenizer with more tokens than the model's embeddings.
        let mismatched = dir.appendingPathComponent("mismatched").path
        try fm.copyItem(atPath: start, toPath: mismatched)
        try fm.removeItem(atPath: mismatched + "/tokenizer.json")
        try fm.copyItem(atPath: otherTokenizer + "/tokenizer.json", toPath: mismatched + "/tokenizer.json")
        let config = try String(contentsOfFile: mismatched + "/config.json", encoding: .utf8)
        let vocab = try Tokenizer.load(from: otherTokenizer).vocabSize
        try config.replacingOccurrences(of: "\"vocab_size\": \(try ModelDirectory.config(start).vocabSize)", with: "\"vocab_size\": \(vocab - 1)")
            .write(toFile: mismatched + "/config.json", atomically: true, encoding: .utf8)
        r = try runGraft(args("x", ["--from", mismatched]))
        #expect(r.0 != 0 && r.2.contains(mismatched) && r.2.contains("the tokenizer has \(vocab) tokens"), "\(r.2)")
        #expect(!fm.fileExists(atPath: dir.appendingPathComponent("x/best").path))
    }

    /// `--epochs` trains whole passes over the train split's blocks (it used to fail: the
    /// language-model objectives did not count their blocks); options that cannot be run are
    /// refused up front, and a database that does not exist is not created.
    @Test func epochsAndBadOptions() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (db, tok) = try Self.corpus(in: dir, lines: 120, kind: "gpt")
        let base = ["pretrain", "--db", db, "--tokenizer", tok, "--kind", "gpt", "--preset", "tiny", "--seq-len", "32",
                    "--warmup-steps", "1", "--threads", "1"]
        var r = try runGraft(base + ["--out", dir.appendingPathComponent("e").path, "--epochs", "1", "--batch-size", "4"])
        #expect(r.0 == 0 && r.1.contains("done:"), "\(r.1) \(r.2)")
        for bad in [["--batch-size", "9223372036854775807"], ["--eval-batches", "9223372036854775807"], ["--seq-len", "2"],
                    ["--lr", "inf"], ["--epochs", "0"]] {
            r = try runGraft(base + ["--out", dir.appendingPathComponent("x").path] + bad)
            #expect(r.0 != 0 && r.2.contains(bad[0]), "\(bad): \(r.2)")
        }
        let missing = dir.appendingPathComponent("nope.sqlite").path
        r = try runGraft(["pretrain", "--db", missing, "--tokenizer", tok, "--kind", "gpt", "--out", dir.appendingPathComponent("y").path])
        #expect(r.0 != 0 && r.2.contains("no such corpus database") && !FileManager.default.fileExists(atPath: missing), "\(r.2)")
    }
}
