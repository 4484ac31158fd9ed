import GraftSupport
import Foundation
import GRDB
import Testing
@testable import GraftCorpus

/// Path of a fixture file (copied into the test bundle).
func fixture(_ name: String) -> String {
    Bundle.module.url(forResource: "Fixtures/" + name, withExtension: nil)!.path
}

/// One folder per test process holds every temporary folder of its tests; it is removed when the
/// process exits, so tests that do not clean up after themselves leave nothing behind.
private let temporaryRoot = NSTemporaryDirectory() + "/graft-corpus-tests-" + UUID().uuidString
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

/// Deletes a folder made by ``makeTemporaryDirectory()`` (for tests that write large files).
func removeTemporaryDirectory(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

/// A new store in a fresh folder.
func makeStore() throws -> (CorpusStore, String) {
    let dir = makeTemporaryDirectory()
    return (try CorpusStore(path: dir + "/corpus.sqlite"), dir)
}

func writeFile(_ path: String, _ text: String) {
    _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
}

func writeFile(_ path: String, bytes: [UInt8]) {
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
}

/// The shared data folder: `$GRAFT_DATA_DIR`, else `<package root>/../shared/data`; nil if absent.
let sharedDataDirectory: String? = {
    let candidate = ProcessInfo.processInfo.environment["GRAFT_DATA_DIR"]
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/data").path
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory) && isDirectory.boolValue ? candidate : nil
}()

/// The built `graft` executable, next to the test products in the build folder.
let graftExecutable: String? = {
    var candidates: [URL] = []
    candidates.append(Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("graft"))
    candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("graft"))
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }?.path
}()

/// Runs a SQL count on a store (test helper).
func count(_ store: CorpusStore, _ sql: String) throws -> Int {
    try store.read { try Int.fetchOne($0, sql: sql) ?? -1 }
}
