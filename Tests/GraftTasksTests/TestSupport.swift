import Foundation
import GraftCorpus
import GraftSupport
import GraftTokenizers
@testable import GraftTasks

/// Path of a fixture file (copied into the test bundle).
func fixture(_ name: String) -> String {
    Bundle.module.url(forResource: "Fixtures/" + name, withExtension: nil)!.path
}

/// The package root (for `tasks/` and `vocab/`).
let packageRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// The shared data folder: `$GRAFT_DATA_DIR`, else `<package root>/../shared/data`; nil if absent.
let sharedDataDirectory: String? = {
    let candidate = ProcessInfo.processInfo.environment["GRAFT_DATA_DIR"]
        ?? URL(fileURLWithPath: packageRoot).deletingLastPathComponent().appendingPathComponent("shared/data").path
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory) && isDirectory.boolValue ? candidate : nil
}()

/// One folder per test process holds every temporary folder of its tests; it is removed when the
/// process exits, so tests that do not clean up after themselves leave nothing behind.
private let temporaryRoot = NSTemporaryDirectory() + "/graft-tasks-tests-" + UUID().uuidString
private let removeTemporaryRootAtExit: Void = {
    atexit { try? FileManager.default.removeItem(atPath: temporaryRoot) }
}()

/// A fresh empty folder under the temporary directory (inside this process's root, removed at exit).
func makeTemporaryDirectory() -> String {
    _ = removeTemporaryRootAtExit
    let path = temporaryRoot + "/" + UUID().uuidString
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Writes `text` to `name` in a fresh temporary folder and returns its path.
func temporaryFile(_ name: String, _ text: String) -> String {
    let path = makeTemporaryDirectory() + "/" + name
    _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    return path
}

/// BERT's uncased WordPiece pipeline over the shipped vocabulary (no shared data needed).
let bertTokenizer: Tokenizer = try! Tokenizer.bert(vocabFile: packageRoot + "/vocab/bert-base-uncased/vocab.txt")

/// The error a throwing expression throws, as a `TaskError` (nil when it does not throw).
func taskError(_ body: () throws -> Void) -> TaskError? {
    do { try body() } catch let e as TaskError { return e } catch { return .invalidArgument("not a TaskError: \(error)") }
    return nil
}

/// A seeded generator for property tests.
struct TestRNG: RandomNumberGenerator {
    var inner: SplitMix64
    init(_ seed: UInt64) { inner = SplitMix64(seed: seed) }
    mutating func next() -> UInt64 { inner.next() }
}
