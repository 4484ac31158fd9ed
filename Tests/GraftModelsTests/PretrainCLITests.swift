import GraftSupport
import Foundation
import Testing
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
}
