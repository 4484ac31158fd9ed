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
        let texts = Array(reader.documentTexts(pageSize: 16))
        let documents = try reader.stats().documents
        let sources = try reader.stats().sources
        readerDone.signal()
        writerFinished.wait()
        #expect(texts.count == 100 && texts.first == "old 0")
        #expect(documents == 100 && sources == 1)
        guard case .success(let report)? = writerResult.value else { Issue.record("writer: \(String(describing: writerResult.value))"); return }
        #expect(report.documents == 3000)
        #expect(try reader.stats().documents == 3100)
        #expect(Array(reader.documentTexts()).count == 3100)
    }
}

@Suite struct DurabilityTests {
    func runGraft(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: graftExecutable!)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    @Test(.enabled(if: graftExecutable != nil, "needs the graft executable built next to the tests (swift build)"))
    func killedImportLeavesNoHalfSourceAndRerunCompletes() throws {
        let dir = makeTemporaryDirectory()
        let db = dir + "/corpus.sqlite"
        let big = dir + "/big.txt"
        let lineCount = 20_000
        var text = ""
        text.reserveCapacity(7_000_000)
        for i in 0..<lineCount {
            text += "line \(i): " + String(repeating: "lorem ipsum dolor sit amet \(i % 97) ", count: 10) + "\n"
        }
        writeFile(big, text)
        let arguments = ["corpus", "add", "--db", db, "--format", "lines", "--quiet", big]

        let process = try runGraft(arguments)
        // Wait until the import transaction has spilled > 1 MB into the WAL, i.e. it is mid-import.
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && (fileSize(db + "-wal") ?? 0) < 1_000_000 && Date() < deadline { usleep(2000) }
        let wasRunning = process.isRunning
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(wasRunning, "the import ended before it could be killed; make the file bigger")
        #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL)

        let store = try CorpusStore(path: db)
        #expect(try store.integrityCheck() == ["ok"])
        #expect(try store.sources().isEmpty, "a killed import must leave no source behind")
        #expect(try store.stats().documents == 0)
        #expect(try count(store, "SELECT count(*) FROM document_fts") == 0)

        let rerun = try runGraft(arguments)
        rerun.waitUntilExit()
        #expect(rerun.terminationStatus == 0)
        #expect(try store.integrityCheck() == ["ok"])
        let sources = try store.sources()
        #expect(sources.count == 1 && sources.first?.documents == lineCount)
        #expect(try store.stats().documents == lineCount)
        // A third run recognises the file and adds nothing.
        let again = try runGraft(arguments)
        again.waitUntilExit()
        #expect(again.terminationStatus == 0)
        #expect(try store.stats().documents == lineCount)
    }
}
