import GraftSupport
import Foundation
import GRDB
import Testing
@testable import GraftCorpus

/// Shared mutable state between the test thread and a writer thread.
final class Box<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); defer { lock.unlock() }; stored = newValue }
    }
}

@Suite struct ConcurrencyTests {
    @Test func readerStreamsItsSnapshotWhileAWriterImports() throws {
        let (store, dir) = try makeStore()
        writeFile(dir + "/old.txt", (0..<100).map { "old \($0)" }.joined(separator: "\n"))
        _ = try store.importFile(dir + "/old.txt", options: ImportOptions(format: .lines))
        let newFile = dir + "/new.txt"
        writeFile(newFile, (0..<3000).map { "new \($0)" }.joined(separator: "\n"))

        let reader = try CorpusStore(path: store.path)  // a second connection pool, as another process would have
        let inTransaction = DispatchSemaphore(value: 0)
        let readerDone = DispatchSemaphore(value: 0)
        let writerFinished = DispatchSemaphore(value: 0)
        let writerResult = Box<Result<ImportReport, CorpusError>?>(nil)
        DispatchQueue.global().async {
            var paused = false
            do {
                let report = try store.importFile(newFile, options: ImportOptions(format: .lines)) { progress in
                    // Inside the import's write transaction, with rows inserted but not committed:
                    // let the reader work, then carry on.
                    if !paused && progress.documents > 0 {
                        paused = true
                        inTransaction.signal()
                        readerDone.wait()
                    }
                }
                writerResult.value = .success(report)
            } catch {
                writerResult.value = .failure(CorpusError.wrap(error))
            }
            writerFinished.signal()
        }
        inTransaction.wait()
        // The writer holds the write lock: reading does not block and sees the last committed state.
        let texts = (try reader.documentTexts(pageSize: 16).all())
        let documents = try reader.stats().documents
        let sources = try reader.stats().sources
        readerDone.signal()
        writerFinished.wait()
        #expect(texts.count == 100 && texts.first == "old 0")
        #expect(documents == 100 && sources == 1)
        guard case .success(let report)? = writerResult.value else { Issue.record("writer: \(String(describing: writerResult.value))"); return }
        #expect(report.documents == 3000)
        #expect(try reader.stats().documents == 3100)
        #expect((try reader.documentTexts().all()).count == 3100)
    }
}

extension ConcurrencyTests {
    @Test func twoWritersImportingTheSameFileStoreItOnce() throws {
        let (store, dir) = try makeStore()
        let path = dir + "/same.txt"
        writeFile(path, (0..<2000).map { "row \($0)" }.joined(separator: "\n"))
        let other = try CorpusStore(path: store.path)
        let results = Box<[Bool]>([])
        let group = DispatchGroup()
        for s in [store, other] {
            DispatchQueue.global().async(group: group) {
                if let report = try? s.importFile(path, options: ImportOptions(format: .lines)) {
                    results.value.append(report.alreadyImported)
                }
            }
        }
        group.wait()
        #expect(results.value.sorted { !$0 && $1 } == [false, true])
        #expect(try store.stats().documents == 2000 && store.stats().sources == 1)
    }
}

@Suite struct DurabilityTests {
    func runGraft(_ arguments: [String], stderr: Pipe? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: graftExecutable!)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = stderr ?? FileHandle.nullDevice
        var environment = ProcessInfo.processInfo.environment
        environment["GRAFT_PROGRESS_INTERVAL"] = "0"  // a progress line at every update
        process.environment = environment
        try process.run()
        return process
    }

    /// The largest `docs=N` count in progress output.
    func documentsReported(_ output: String) -> Int {
        output.components(separatedBy: "docs=").dropFirst().compactMap { part in
            Int(String(part.prefix(while: { $0.isNumber || $0 == "," }).filter(\.isNumber)))
        }.max() ?? 0
    }

    @Test(.enabled(if: graftExecutable != nil, "needs the graft executable built next to the tests (swift build)"))
    func killedImportLeavesNoHalfSourceAndRerunCompletes() throws {
        let dir = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let db = dir + "/corpus.sqlite"
        let big = dir + "/big.txt"
        let lineCount = 20_000
        var text = ""
        text.reserveCapacity(7_000_000)
        for i in 0..<lineCount {
            text += "line \(i): " + String(repeating: "lorem ipsum dolor sit amet \(i % 97) ", count: 10) + "\n"
        }
        writeFile(big, text)
        let arguments = ["corpus", "add", "--db", db, "--format", "lines", big]

        // The progress lines count documents inserted inside the import's (uncommitted)
        // transaction: once 2,048 are reported, the process is mid-import. Kill it there.
        let pipe = Pipe()
        let process = try runGraft(arguments, stderr: pipe)
        var output = ""
        while documentsReported(output) < 2048 {
            let data = pipe.fileHandleForReading.availableData
            if data.isEmpty { break }  // end of output: the process ended
            output += String(decoding: data, as: UTF8.self)
        }
        let wasRunning = process.isRunning
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(wasRunning, "the import ended before it could be killed; output: \(output)")
        #expect(documentsReported(output) >= 2048 && documentsReported(output) < lineCount)
        #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL)

        let store = try CorpusStore(path: db)
        #expect(try store.integrityCheck() == ["ok"])
        #expect(try store.sources().isEmpty, "a killed import must leave no source behind")
        #expect(try store.stats().documents == 0)
        #expect(try count(store, "SELECT count(*) FROM document_fts") == 0)

        let rerun = try runGraft(arguments + ["--quiet"])
        rerun.waitUntilExit()
        #expect(rerun.terminationStatus == 0)
        #expect(try store.integrityCheck() == ["ok"])
        let sources = try store.sources()
        #expect(sources.count == 1 && sources.first?.documents == lineCount)
        #expect(try store.stats().documents == lineCount)
        try store.checkSearchIndex()
        #expect(try store.search("\"line 19999\"").count == 1)
        // A third run recognises the file and adds nothing.
        let again = try runGraft(arguments + ["--quiet"])
        again.waitUntilExit()
        #expect(again.terminationStatus == 0)
        #expect(try store.stats().documents == lineCount)
    }
}

/// The `graft corpus` commands, run as a user would.
@Suite(.enabled(if: graftExecutable != nil, "needs the graft executable built next to the tests (swift build)"))
struct CLITests {
    /// Runs graft and returns (exit status, stdout, stderr).
    func graft(_ arguments: [String]) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: graftExecutable!)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    @Test func addStatsSearchExportSplit() throws {
        let dir = makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let db = dir + "/c.sqlite"
        var (status, out, err) = try graft(["corpus", "add", "--db", db, "--quiet", fixture("wiki-vital-en.head200.jsonl"),
                                            fixture("rt-snippets-train.head300.tsv")])
        #expect(status == 0, "\(err)")
        #expect(out.contains("200 documents") && out.contains("300 annotations"))
        (status, out, err) = try graft(["corpus", "add", "--db", db, "--format", "conll", "--quiet", fixture("wnut16-train.head.txt")])
        #expect(status == 0, "\(err)")
        (status, out, _) = try graft(["corpus", "add", "--db", db, "--quiet", fixture("wiki-vital-en.head200.jsonl")])
        #expect(status == 0 && out.contains("already imported"))

        (status, out, _) = try graft(["corpus", "stats", "--db", db, "--json"])
        #expect(status == 0)
        let stats = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        #expect(stats["documents"] as? Int == 516 && stats["sources"] as? Int == 3 && stats["annotations"] as? Int == 316)

        (status, out, _) = try graft(["corpus", "search", "--db", db, "--limit", "2", "music"])
        #expect(status == 0)
        #expect(out.split(separator: "\n").count == 2 && out.split(separator: "\n").allSatisfy { $0.lowercased().contains("[music]") })

        let exported = dir + "/out.conll"
        (status, _, err) = try graft(["corpus", "export", "--db", db, "--format", "conll", "--source", "3", "-o", exported])
        #expect(status == 0 && err.contains("exported 16 documents"))
        let identical = try Data(contentsOf: URL(fileURLWithPath: exported)) == Data(contentsOf: URL(fileURLWithPath: fixture("wnut16-train.head.txt")))
        #expect(identical, "exported CoNLL differs from the imported file")

        (status, out, _) = try graft(["corpus", "split", "--db", db, "--train", "0.5", "--dev", "0.25", "--test", "0.25"])
        #expect(status == 0 && out.contains("split default: train 0.5"))

        // A bad file: non-zero exit, the error names file and line, nothing stored.
        writeFile(dir + "/bad.tsv", "label\ttext\npos\tok\nbroken\n")
        (status, _, err) = try graft(["corpus", "add", "--db", db, "--quiet", dir + "/bad.tsv"])
        #expect(status != 0 && err.contains("bad.tsv:3: expected 2 columns, found 1"))
        (status, out, _) = try graft(["corpus", "stats", "--db", db, "--json"])
        #expect((try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])?["sources"] as? Int == 3)

        // Not a Graft database.
        writeFile(dir + "/other.sqlite", "plain text")
        (status, _, err) = try graft(["corpus", "stats", "--db", dir + "/other.sqlite"])
        #expect(status != 0 && err.contains("not a Graft corpus database"))
    }
}
