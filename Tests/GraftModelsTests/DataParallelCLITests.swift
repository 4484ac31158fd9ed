import Foundation
import GraftEngine
import GraftSupport
import Testing
@testable import GraftModels

/// Open MPI's launcher, when installed (`.ci/run` installs it; elsewhere these tests are skipped).
let mpirunExecutable: String? = {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    return path.split(separator: ":").map { "\($0)/mpirun" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}()

/// The arguments that run `graft` as `ranks` ranks on this machine (as root in CI containers,
/// more ranks than cores, no CMA single-copy: containers often forbid the ptrace it needs).
func mpirunArguments(_ ranks: Int) -> [String] {
    ["--allow-run-as-root", "--oversubscribe", "--mca", "btl_vader_single_copy_mechanism", "none", "-np", String(ranks), graftExecutable!]
}

/// Runs `mpirun -np ranks graft args` (standard input reaches rank 0); returns (status, stdout, stderr).
func runMPI(_ ranks: Int, _ args: [String], stdin: String? = nil) throws -> (Int32, String, String) {
    try runProcess(mpirunExecutable!, mpirunArguments(ranks) + args, stdin: stdin)
}

/// `mpirun -np 2 graft ...` on loopback: 2 ranks × batch b train to the weights of one process
/// with batch b and accumulation 2; checkpoints resume on any number of ranks; `graft tag` output
/// is byte-identical; a killed rank ends the job quickly with the last checkpoint resumable.
@Suite(.serialized,
       .enabled(if: graftExecutable != nil, "needs the built graft executable next to the test bundle"),
       .enabled(if: mpirunExecutable != nil, "Open MPI's mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev; .ci/run does)"))
struct DataParallelCLITests {
    static func corpus(in dir: URL, kind: String) throws -> (db: String, tokenizer: String) {
        let (db, tok) = try PretrainCLITests.corpus(in: dir, lines: 300, kind: kind)
        // Build the token cache once, before any parallel run reads it.
        let r = try runGraft(["corpus", "tokenize", "--db", db, "--tokenizer", tok])
        #expect(r.0 == 0, "\(r.2)")
        return (db, tok)
    }

    static func pretrain(_ kind: String, db: String, tokenizer: String, out: String, accumulation: Int, steps: Int = 10) -> [String] {
        ["pretrain", "--db", db, "--tokenizer", tokenizer, "--kind", kind, "--preset", "tiny", "--out", out,
         "--steps", String(steps), "--batch-size", "4", "--accumulation", String(accumulation), "--seq-len", "32",
         "--eval-every", "5", "--eval-batches", "2", "--checkpoint-every", "5", "--keep-checkpoints", "100",
         "--warmup-steps", "2", "--threads", "1"]
    }

    /// The largest |a - b| / max|a| over the tensors of two weight files, and whether they are bit-identical.
    static func compare(_ a: String, _ b: String) throws -> (relative: Double, identical: Bool) {
        let da = try Data(contentsOf: URL(fileURLWithPath: a)), db = try Data(contentsOf: URL(fileURLWithPath: b))
        let fa = try SafeTensors(data: da, path: a), fb = try SafeTensors(data: db, path: b)
        #expect(fa.names.sorted() == fb.names.sorted())
        var worst = 0.0
        for name in fa.names {
            let x = try fa.floats(name), y = try fb.floats(name)
            guard x.count == y.count else { return (.infinity, false) }
            let scale = Double(x.map { abs($0) }.max() ?? 0)
            let diff = Double(zip(x, y).map { abs($0 - $1) }.max() ?? 0)
            if diff > 0 { worst = max(worst, scale > 0 ? diff / scale : .infinity) }
        }
        return (worst, da == db)
    }

    /// Copies a run directory keeping only its checkpoints up to `step`, LATEST pointing there.
    static func truncatedCopy(of run: String, to copy: String, step: Int) throws {
        let fm = FileManager.default
        try fm.copyItem(atPath: run, toPath: copy)
        let ckpts = URL(fileURLWithPath: copy).appendingPathComponent("checkpoints")
        let keep = String(format: "step-%07d", step)
        for name in try fm.contentsOfDirectory(atPath: ckpts.path) where name.hasPrefix("step-") && name > keep {
            try fm.removeItem(at: ckpts.appendingPathComponent(name))
        }
        try Data(keep.utf8).write(to: ckpts.appendingPathComponent("LATEST"))
    }

    static func weights(_ run: String, step: Int) -> String {
        run + String(format: "/checkpoints/step-%07d/model.safetensors", step)
    }

    @Test(arguments: ["bert", "gpt"])
    func twoRanksTrainAsOneProcessAccumulatingTwo(kind: String) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (db, tok) = try Self.corpus(in: dir, kind: kind)
        let parallel = dir.appendingPathComponent("parallel").path, single = dir.appendingPathComponent("single").path
        var r = try runMPI(2, Self.pretrain(kind, db: db, tokenizer: tok, out: parallel, accumulation: 1))
        #expect(r.0 == 0, "\(r.2)")
        #expect(r.2.contains("2 ranks x batch 4"), "\(r.2)")
        #expect(r.1.components(separatedBy: "done:").count == 2, "rank 0 alone reports: \(r.1)")
        r = try runGraft(Self.pretrain(kind, db: db, tokenizer: tok, out: single, accumulation: 2))
        #expect(r.0 == 0, "\(r.2)")
        for step in [5, 10] {
            let c = try Self.compare(Self.weights(parallel, step: step), Self.weights(single, step: step))
            #expect(c.relative <= 1e-6, "\(kind) step \(step): 2 ranks vs accumulation 2 differ by \(c.relative) relative")
            // Each micro-batch's gradient is computed from zero and two are summed once, in
            // either case: the same bits.
            #expect(c.identical, "\(kind) step \(step): 2 ranks vs accumulation 2 are not bit-identical")
            print("\(kind) step \(step): 2 ranks x batch 4 vs 1 process x accumulation 2: max relative difference \(c.relative), bit-identical \(c.identical)")
        }

        // The 2-rank run's step-5 checkpoint, resumed by one process accumulating 2 ...
        let resumedSingle = dir.appendingPathComponent("resumed-single").path
        try Self.truncatedCopy(of: parallel, to: resumedSingle, step: 5)
        r = try runGraft(Self.pretrain(kind, db: db, tokenizer: tok, out: resumedSingle, accumulation: 2) + ["--resume"])
        #expect(r.0 == 0, "\(r.2)")
        var c = try Self.compare(Self.weights(resumedSingle, step: 10), Self.weights(parallel, step: 10))
        #expect(c.relative <= 1e-6, "\(kind): resumed on 1 rank differs from the 2-rank run by \(c.relative)")
        #expect(c.identical, "\(kind): resumed on 1 rank is not bit-identical to the 2-rank run")
        print("\(kind): 2-rank step 5 resumed on 1 process to step 10: max relative difference \(c.relative), bit-identical \(c.identical)")

        // ... and the single process's step-5 checkpoint resumed on 2 ranks.
        let resumedParallel = dir.appendingPathComponent("resumed-parallel").path
        try Self.truncatedCopy(of: single, to: resumedParallel, step: 5)
        r = try runMPI(2, Self.pretrain(kind, db: db, tokenizer: tok, out: resumedParallel, accumulation: 1) + ["--resume"])
        #expect(r.0 == 0, "\(r.2)")
        c = try Self.compare(Self.weights(resumedParallel, step: 10), Self.weights(single, step: 10))
        #expect(c.relative <= 1e-6, "\(kind): resumed on 2 ranks differs from the 1-process run by \(c.relative)")
        #expect(c.identical, "\(kind): resumed on 2 ranks is not bit-identical to the 1-process run")
    }

    @Test func twoRankFinetuningEqualsAccumulatingTwo() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try TaskCLITests.baseModel(in: dir)
        var rows = ["label\ttext"]
        for i in 0..<40 { rows.append(i % 2 == 0 ? "pos\tthe red cat sat on the mat ." : "neg\tthe blue dog ran and sat .") }
        let train = try TaskCLITests.write(rows.joined(separator: "\n") + "\n", dir, "train.tsv")
        let dev = try TaskCLITests.write("label\ttext\npos\ta red house .\nneg\ta blue tree .\n", dir, "dev.tsv")
        func spec(_ accumulation: Int) throws -> String {
            try FineTuneCLITests.sentimentSpec(dir, train: train, dev: dev,
                                               training: "epochs = 2\nlr = 1e-3\nbatch_size = 4\ngradient_accumulation = \(accumulation)",
                                               name: "spec-\(accumulation).toml")
        }
        let parallel = dir.appendingPathComponent("parallel").path, single = dir.appendingPathComponent("single").path
        let db = dir.appendingPathComponent("g.sqlite").path
        var r = try runMPI(2, ["finetune", "--task", try spec(1), "--model", base, "--out", parallel, "--db", db, "--threads", "1"])
        #expect(r.0 == 0, "\(r.2)")
        r = try runGraft(["finetune", "--task", try spec(2), "--model", base, "--out", single, "--db", db, "--threads", "1"])
        #expect(r.0 == 0, "\(r.2)")
        let last = try String(contentsOfFile: single + "/checkpoints/LATEST", encoding: .utf8)
        #expect(try String(contentsOfFile: parallel + "/checkpoints/LATEST", encoding: .utf8) == last)
        let c = try Self.compare(parallel + "/checkpoints/\(last)/model.safetensors", single + "/checkpoints/\(last)/model.safetensors")
        #expect(c.identical, "fine-tuning on 2 ranks differs from accumulating 2 by \(c.relative) relative")
    }

    @Test func twoRankTaggingIsByteIdentical() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try TaskCLITests.baseModel(in: dir)
        var conll = ""
        for _ in 0..<12 {
            conll += "the O\ncat B-PER\nsat O\non O\nthe O\nred B-LOC\nhouse I-LOC\n. O\n\n"
            conll += "a O\ndog B-PER\nran O\n. O\n\n"
        }
        let train = try TaskCLITests.write(conll, dir, "train.txt")
        let spec = try TaskCLITests.write("""
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
            epochs = 2
            lr = 5e-3
            batch_size = 8
            """, dir, "ner.toml")
        let out = dir.appendingPathComponent("ner").path
        let r = try runGraft(["finetune", "--task", spec, "--model", base, "--out", out, "--db", dir.appendingPathComponent("g.sqlite").path,
                              "--threads", "1"])
        #expect(r.0 == 0, "\(r.2)")
        let words = ["the", "cat", "sat", "on", "red", "house", "a", "dog", "ran", "big", "tree", "Zoë", "東京", "."]
        var docs: [String] = []
        var g = SplitMix64(seed: 7)
        for i in 0..<61 {
            if i % 9 == 4 { docs.append(i % 2 == 0 ? "" : "   "); continue }   // blank documents keep their place
            docs.append((0..<(2 + Int(g.next() % 14))).map { _ in words[Int(g.next() % UInt64(words.count))] }.joined(separator: " "))
        }
        let input = docs.joined(separator: "\n") + "\n"
        for format in ["jsonl", "conll"] {
            let one = try runGraft(["tag", "--model", out + "/best", "--format", format, "--chunk-size", "4", "--threads", "1"], stdin: input)
            #expect(one.0 == 0, "\(one.2)")
            let two = try runMPI(2, ["tag", "--model", out + "/best", "--format", format, "--chunk-size", "4", "--threads", "1"], stdin: input)
            #expect(two.0 == 0, "\(two.2)")
            let same = one.1 == two.1   // not inside #expect: a failure would diff the whole output
            #expect(same, "\(format): mpirun -np 2 graft tag differs from graft tag")
            #expect(!one.1.isEmpty)
        }
        // The default chunking (one chunk here: rank 1 idle) and a file argument instead of stdin.
        let file = try TaskCLITests.write(input, dir, "docs.txt")
        let one = try runGraft(["tag", "--model", out + "/best", "--threads", "1", file])
        let two = try runMPI(2, ["tag", "--model", out + "/best", "--threads", "1", file])
        #expect(one.0 == 0 && two.0 == 0, "\(one.2)\(two.2)")
        let same = one.1 == two.1
        #expect(same, "mpirun -np 2 graft tag FILE differs from graft tag FILE")
    }

    @Test func aKilledRankEndsTheJobAndTheLastCheckpointResumes() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (db, tok) = try Self.corpus(in: dir, kind: "gpt")
        let run = dir.appendingPathComponent("run").path
        var arguments = Self.pretrain("gpt", db: db, tokenizer: tok, out: run, accumulation: 1, steps: 100000)
        arguments[arguments.firstIndex(of: "--checkpoint-every")! + 1] = "1"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: mpirunExecutable!)
        p.arguments = mpirunArguments(2) + arguments
        p.environment = graftEnvironment
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        // Wait for a few checkpoints, then kill rank 1 (a child of mpirun whose environment says so).
        let latest = URL(fileURLWithPath: run).appendingPathComponent("checkpoints/LATEST")
        let deadline = Date().addingTimeInterval(180)
        while p.isRunning, Date() < deadline, ((try? String(contentsOf: latest, encoding: .utf8)) ?? "") < "step-0000003" {
            Thread.sleep(forTimeInterval: 0.02)
        }
        let rank1 = try #require(Self.child(of: p.processIdentifier, rank: 1), "rank 1 not found among mpirun's children")
        let killedAt = Date()
        kill(rank1, SIGKILL)
        let giveUp = Date().addingTimeInterval(60)
        while p.isRunning, Date() < giveUp { Thread.sleep(forTimeInterval: 0.02) }
        let seconds = Date().timeIntervalSince(killedAt)
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(seconds < 20, "the job took \(seconds) s to end after a rank died")
        #expect(p.terminationStatus != 0)
        #expect(stderr.contains("rank 1") || stderr.contains("signal 9") || stderr.contains("Killed"), "\(stderr.suffix(2000))")
        print("a killed rank ended the 2-rank job in \(String(format: "%.2f", seconds)) s")

        // LATEST names a complete checkpoint, which one process accumulating 2 resumes.
        let name = try String(contentsOf: latest, encoding: .utf8)
        let ckpt = URL(fileURLWithPath: run).appendingPathComponent("checkpoints/\(name)")
        for file in ["config.json", "model.safetensors", "tokenizer.json", "training-state.safetensors"] {
            #expect(FileManager.default.fileExists(atPath: ckpt.appendingPathComponent(file).path), "\(name)/\(file) missing")
        }
        let step = Int(name.dropFirst("step-".count))!
        var resume = Self.pretrain("gpt", db: db, tokenizer: tok, out: run, accumulation: 2, steps: step + 2) + ["--resume"]
        resume[resume.firstIndex(of: "--checkpoint-every")! + 1] = "1"
        let r = try runGraft(resume)
        #expect(r.0 == 0, "\(r.2)")
    }

    /// The pid of mpirun's child process that is MPI rank `rank`.
    static func child(of parent: Int32, rank: Int) -> Int32? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for entry in entries {
            guard let pid = Int32(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, Int32(fields[1]) == parent,
                  let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { continue }
            let variables = environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if variables.contains("OMPI_COMM_WORLD_RANK=\(rank)") { return pid }
        }
        return nil
    }
}

/// Without mpirun nothing about MPI is needed; under a launcher without a loadable MPI library,
/// and for commands that cannot run as several ranks, graft says so (no mpirun needed to check).
@Suite(.enabled(if: graftExecutable != nil, "needs the built graft executable next to the test bundle"))
struct MPIOptionalTests {
    func runGraft(_ args: [String], extra: [String: String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: graftExecutable!)
        p.arguments = args
        p.environment = graftEnvironment.merging(extra) { $1 }
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice; p.standardError = err
        try p.run()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: e, as: UTF8.self))
    }

    @Test func graftDoesNotLinkMPI() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/ldd")
        p.arguments = [graftExecutable!]
        let out = Pipe()
        p.standardOutput = out
        guard (try? p.run()) != nil else { return }   // no ldd: nothing to check
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(!text.contains("libmpi"), "graft links MPI: \(text)")
    }

    @Test func aMissingMPILibraryIsNamed() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try TaskCLITests.baseModel(in: dir)
        let t = try runGraft(["pretrain", "--db", dir.appendingPathComponent("x.sqlite").path, "--tokenizer", model, "--out", dir.appendingPathComponent("o").path],
                             extra: ["OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0", "GRAFT_MPI_LIBRARY": "/nonexistent/libmpi.so.40"])
        #expect(t.0 != 0)
        #expect(t.1.contains("mpirun (OMPI_COMM_WORLD_SIZE=2)") && t.1.contains("/nonexistent/libmpi.so.40") && t.1.contains("GRAFT_MPI_LIBRARY"), "\(t.1)")
    }

    @Test func commandsThatCannotRunAsRanksRefuse() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try runGraft(["corpus", "stats", "--db", dir.appendingPathComponent("x.sqlite").path], extra: ["OMPI_COMM_WORLD_SIZE": "2"])
        #expect(r.0 != 0)
        #expect(r.1.contains("does not run as several MPI ranks"), "\(r.1)")
    }
}
