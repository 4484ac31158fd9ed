import GraftSupport
import Foundation
import Testing
import GraftEngine
import GraftTokenizers
@testable import GraftModels

/// The built `graft` executable, next to the test bundle in the build folder.
let graftExecutable: String? = {
    let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let candidates = [here.appendingPathComponent("graft"), here.deletingLastPathComponent().appendingPathComponent("graft"),
                      here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("graft")]
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }?.path
}()

/// The environment `graft` runs in under test: the same OpenBLAS kernels as this test process
/// (graft would otherwise pick faster ones where OpenBLAS falls back to its generic kernels), so
/// every run of a test, and the test process itself, compute bit for bit alike.
let graftEnvironment: [String: String] = {
    var environment = ProcessInfo.processInfo.environment
    environment["GRAFT_OPENBLAS_CORETYPE"] = "off"
    return environment
}()

/// Runs `graft` with arguments and optional standard input; returns (status, stdout, stderr).
func runGraft(_ args: [String], stdin: String? = nil) throws -> (Int32, String, String) {
    try runProcess(graftExecutable!, args, stdin: stdin)
}

/// Runs `executable` with `environment` (`graftEnvironment` unless given); returns (status, stdout, stderr).
func runProcess(_ executable: String, _ args: [String], stdin: String? = nil,
                environment: [String: String] = graftEnvironment) throws -> (Int32, String, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    p.environment = environment
    let out = Pipe(), err = Pipe(), inp = Pipe()
    p.standardOutput = out; p.standardError = err; p.standardInput = inp
    try p.run()
    if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
    try inp.fileHandleForWriting.close()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

@Suite(.enabled(if: graftExecutable != nil, "needs the built graft executable next to the test bundle"))
struct ModelCLITests {
    @Test func embedJSONPairsImportExport() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tok = try smallWordPieceTokenizer()
        let model = try BertForMaskedLM(config: tinyConfig(.bert, vocab: 24), seed: 51)
        randomize(model.store, seed: 52)
        let m = dir.appendingPathComponent("m").path
        try ModelDirectory.save(model, tokenizer: tok, to: m)
        let lines = ["the cat sat on the mat.", "a big dog ran", "", "the red house and the blue tree"]
        let (status, out, err) = try runGraft(["embed", "--model", m, "--json", "--quiet"], stdin: lines.joined(separator: "\n") + "\n")
        #expect(status == 0, "\(err)")
        let rows = out.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(rows.count == lines.count)
        let expected = try SentenceEmbedder(encoder: ModelDirectory.openEncoder(m).0, tokenizer: tok).embed(lines)
        for (i, row) in rows.enumerated() {
            let v = try JSONSerialization.jsonObject(with: Data(row.utf8)) as! [Double]
            #expect(v.count == 8)
            #expect(v.map(Float.init) == expected[i], "line \(i)")
        }
        let (s2, pairs, _) = try runGraft(["embed", "--model", m, "--pairs", "--quiet"], stdin: lines.joined(separator: "\n"))
        #expect(s2 == 0)
        let cosines = pairs.split(separator: "\n").map { Double($0)! }
        #expect(cosines.count == 2)
        #expect(abs(cosines[0] - SentenceEmbedder.cosine(expected[0], expected[1])) < 1e-6)
        let (s3, _, e3) = try runGraft(["embed", "--model", m, "--pairs", "--quiet"], stdin: "one\ntwo\nthree\n")
        #expect(s3 != 0 && e3.contains("even number of lines"))
        // export -> import -> identical weights.
        let hf = dir.appendingPathComponent("hf").path, back = dir.appendingPathComponent("back").path
        #expect(try runGraft(["export", "--model", m, "--out", hf]).0 == 0)
        #expect(try runGraft(["import", hf, "--out", back]).0 == 0)
        let reloaded = try ModelDirectory.open(back).model
        #expect(Array(UnsafeBufferPointer(start: reloaded.store.values, count: reloaded.store.count))
                == Array(UnsafeBufferPointer(start: model.store.values, count: model.store.count)))
        // sentence-transformers' max_seq_length (sentence_bert_config.json) is kept by import and
        // truncates embed's input (all-MiniLM-L6-v2's 256 replaced its tokenizer.json's 128).
        try Data(#"{"max_seq_length": 4, "do_lower_case": false}"#.utf8).write(to: URL(fileURLWithPath: hf + "/sentence_bert_config.json"))
        let st = dir.appendingPathComponent("st").path
        #expect(try runGraft(["import", hf, "--out", st]).0 == 0)
        #expect(try SentenceEmbedder.maxSequenceLength(in: st) == 4)
        #expect(try SentenceEmbedder(directory: st).tokenizer.truncation?.maxLength == 4)
        let cut = try runGraft(["embed", "--model", st, "--json"], stdin: "the cat sat on the mat\nthe cat\n")
        #expect(cut.0 == 0 && cut.2.contains("1 of 2 lines") && cut.2.contains("4 tokens"), "\(cut.2)")
        let short = try SentenceEmbedder(encoder: ModelDirectory.openEncoder(m).0, tokenizer: tok).embed(["the cat"])[0]
        let row = try JSONSerialization.jsonObject(with: Data(try #require(cut.1.split(separator: "\n").first).utf8)) as! [Double]
        #expect(row.map(Float.init) == short, "cut to [CLS] the cat [SEP], the encoding of \"the cat\"")
        try Data(#"{"max_seq_length": "long"}"#.utf8).write(to: URL(fileURLWithPath: st + "/sentence_bert_config.json"))
        #expect(throws: ModelError.self) { try SentenceEmbedder(directory: st) }
        // Generating with a BERT model is an error naming the problem.
        let (s4, _, e4) = try runGraft(["generate", "--model", m, "--max-tokens", "2"])
        #expect(s4 != 0 && e4.contains("needs a GPT model"))
    }

    @Test func generateGreedyMatchesLibrary() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tok = try smallBPETokenizer()
        let model = try GPTForCausalLM(config: tinyConfig(.gpt, vocab: tok.vocabSize), seed: 61)
        randomize(model.store, seed: 62, scale: 1)
        let m = dir.appendingPathComponent("g").path
        try ModelDirectory.save(model, tokenizer: tok, to: m)
        let prompt = "the cat"
        var sampler = try Sampler(temperature: 0)
        let eot = tok.id("<|endoftext|>").map { Int32($0) }
        let ids = try model.generate(prompt: tok.encode(prompt, addSpecialTokens: false).ids, maxNewTokens: 5, sampler: &sampler,
                                     stop: eot.map { [$0] } ?? [])
        let (status, out, err) = try runGraft(["generate", "--model", m, "--prompt", prompt, "--max-tokens", "5", "--temperature", "0"])
        #expect(status == 0, "\(err)")
        #expect(out == prompt + tok.decode(ids) + "\n")
        // Seeded sampling is reproducible.
        let args = ["generate", "--model", m, "--max-tokens", "6", "--temperature", "1", "--top-k", "5", "--top-p", "0.9", "--seed", "7"]
        let a = try runGraft(args), b = try runGraft(args)
        #expect(a.0 == 0 && a.1 == b.1)
    }
}

/// Refusals and printed values of small CLI paths, run through the built executable.
@Suite(.enabled(if: graftExecutable != nil, "needs the built graft executable next to the test bundle"))
struct CLIMessageTests {
    /// `tokenizer train` refuses a file the corpus store parses (its raw lines are ids, quotes,
    /// headers and labels), naming `corpus add` and `--db`; a .txt file still trains.
    @Test func tokenizerTrainRefusesStructuredFiles() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("tok").path
        for name in ["news.csv", "news.TSV", "ner.conll", "squad.json"] {
            let path = dir.appendingPathComponent(name).path
            try "id,text,label\n1,\"a story\",world\n".write(toFile: path, atomically: true, encoding: .utf8)
            let (status, _, err) = try runGraft(["tokenizer", "train", "--vocab-size", "60", path, "--out", out])
            #expect(status != 0, "\(name)")
            #expect(err.contains("\(path): a ") && err.contains("graft corpus add \(path) --db DB") && err.contains("--db DB"), "\(err)")
            #expect(!FileManager.default.fileExists(atPath: out))
        }
        let text = dir.appendingPathComponent("news.txt").path
        try "a story about the world\nanother story\n".write(toFile: text, atomically: true, encoding: .utf8)
        let (status, _, err) = try runGraft(["tokenizer", "train", "--vocab-size", "60", "--min-frequency", "1", text, "--out", out])
        #expect(status == 0, "\(err)")
        #expect(FileManager.default.fileExists(atPath: out + "/tokenizer.json"))
        // .ndjson is JSON Lines, as corpus add reads it: the text field, not the raw line.
        let lines = dir.appendingPathComponent("news.NDJSON").path, fromLines = dir.appendingPathComponent("tok-nd").path
        try "{\"text\": \"a story about the world\"}\n{\"text\": \"another story\"}\n".write(toFile: lines, atomically: true, encoding: .utf8)
        let nd = try runGraft(["tokenizer", "train", "--vocab-size", "60", "--min-frequency", "1", lines, "--out", fromLines])
        #expect(nd.0 == 0, "\(nd.2)")
        let vocabulary = try String(contentsOfFile: fromLines + "/tokenizer.json", encoding: .utf8)
        #expect(vocabulary.contains("\"story\"") && !vocabulary.contains("\"{\""), "the raw JSON line was trained on")
    }

    /// `corpus split` prints its fractions rounded (no 4.16e-17 rest for test, no
    /// 0.09999999999999995) and refuses a negative fraction written `--train -0.5` with a range
    /// message, as it does `--train=-0.5`.
    @Test func corpusSplitFractions() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = dir.appendingPathComponent("t.txt").path, db = dir.appendingPathComponent("c.sqlite").path
        try (0..<20).map { "document number \($0)" }.joined(separator: "\n").write(toFile: text, atomically: true, encoding: .utf8)
        var r = try runGraft(["corpus", "add", text, "--format", "lines", "--db", db, "--quiet"])
        #expect(r.0 == 0, "\(r.2)")
        r = try runGraft(["corpus", "split", "--db", db, "--train", "0.95", "--dev", "0.05"])
        #expect(r.0 == 0 && r.1.hasPrefix("split default: train 0.95, dev 0.05, test 0\n"), "\(r.1)\(r.2)")
        r = try runGraft(["corpus", "split", "--db", db, "--train", "0.8", "--dev", "0.1"])
        #expect(r.0 == 0 && r.1.hasPrefix("split default: train 0.8, dev 0.1, test 0.1\n"), "\(r.1)\(r.2)")
        for args in [["--train", "-0.5"], ["--train=-0.5"], ["--dev", "1.5"]] {
            r = try runGraft(["corpus", "split", "--db", db] + args)
            #expect(r.0 != 0 && (r.2.contains("--train -0.5 is not a fraction from 0 to 1") || r.2.contains("--dev 1.5 is not a fraction from 0 to 1")),
                    "\(args): \(r.2)")
        }
        // The refused split left the last one in place.
        r = try runGraft(["corpus", "split", "--db", db])
        #expect(r.1.hasPrefix("split default: train 0.8, dev 0.1, test 0.1\n"), "\(r.1)")
    }

    /// `export --out` below a regular file names the file that is not a directory, not
    /// Foundation's "NSCocoaErrorDomain error 512".
    @Test func exportBelowARegularFileSaysWhichIsNotADirectory() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try BertForMaskedLM(config: tinyConfig(.bert, vocab: 24), seed: 51)
        let m = dir.appendingPathComponent("m").path
        try ModelDirectory.save(model, tokenizer: try smallWordPieceTokenizer(), to: m)
        let file = dir.appendingPathComponent("notes.txt").path
        try "x".write(toFile: file, atomically: true, encoding: .utf8)
        for out in [file + "/hf", file + "/deeper/hf"] {
            let (status, _, err) = try runGraft(["export", "--model", m, "--out", out])
            #expect(status != 0)
            #expect(err.contains("\(out): cannot create the directory: \(file) is not a directory"), "\(err)")
            #expect(!err.contains("NSCocoaErrorDomain"))
        }
        // And the model-directory writer's own message (what finetune --out and save go through).
        #expect(throws: ModelError.io(file: file + "/m", problem: "cannot create the directory: \(file) is not a directory")) {
            try ModelDirectory.save(model, tokenizer: try smallWordPieceTokenizer(), to: file + "/m")
        }
    }
}
