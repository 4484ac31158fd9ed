import GraftSupport
import Foundation
import GRDB
import Testing
@testable import GraftCorpus

@Suite struct SHA256Tests {
    @Test func knownVectors() {
        #expect(SHA256.hex(SHA256.hash("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(SHA256.hash("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(SHA256.hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // 1,000,000 × "a", fed in uneven pieces to exercise buffering.
        var h = SHA256()
        let chunk = [UInt8](repeating: 0x61, count: 999)
        var fed = 0
        while fed < 1_000_000 {
            let n = min(999, 1_000_000 - fed)
            h.update(chunk[0..<n])
            fed += n
        }
        #expect(SHA256.hex(h.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func matchesSharedDataSplitKeyConvention() {
        // The data README sorts by SHA-256("<set-name>:<index>"); spot-check a multi-byte input too.
        #expect(SHA256.hex(SHA256.hash("wnut16:0")).count == 64)
        #expect(SHA256.hash("é") == SHA256.hash([0xC3, 0xA9]))
    }
}

@Suite struct StoreOpeningTests {
    @Test func newStoreIsMarkedAndInWALMode() throws {
        let (store, _) = try makeStore()
        #expect(try store.journalMode() == "wal")
        let appID = try store.read { try Int32.fetchOne($0, sql: "PRAGMA application_id") }
        #expect(appID == 0x4752_4654)
        let marker = try store.read { try String.fetchOne($0, sql: "SELECT value FROM graft_meta WHERE key = 'format'") }
        #expect(marker == "graft-corpus")
        #expect(try store.integrityCheck() == ["ok"])
        // Opening again runs no migration twice and keeps data.
        let reopened = try CorpusStore(path: store.path)
        #expect(try reopened.stats().documents == 0)
    }

    @Test func refusesAnotherApplicationsSQLiteFile() throws {
        let dir = makeTemporaryDirectory()
        let path = dir + "/other.sqlite"
        let queue = try DatabaseQueue(path: path)
        try queue.write { try $0.execute(sql: "CREATE TABLE contacts(name TEXT); INSERT INTO contacts VALUES ('x')") }
        try queue.close()
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect {
            _ = try CorpusStore(path: path)
        } throws: { error in
            guard case .notAGraftDatabase(let message) = error as? CorpusError else { return false }
            return message.contains("another application")
        }
        // The foreign file was not modified (not even switched to WAL).
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    }

    @Test func refusesNonSQLiteFile() throws {
        let dir = makeTemporaryDirectory()
        let path = dir + "/notes.sqlite"
        writeFile(path, String(repeating: "just some text, not a database\n", count: 10))
        #expect {
            _ = try CorpusStore(path: path)
        } throws: { error in
            guard case .notAGraftDatabase(let message) = error as? CorpusError else { return false }
            return message.contains("not an SQLite database")
        }
        let description = String(describing: CorpusError.notAGraftDatabase("x"))
        #expect(description.contains("not a Graft corpus database"))
    }

    @Test func refusesSchemaFromTheFuture() throws {
        let (store, _) = try makeStore()
        try store.write { try $0.execute(sql: "INSERT INTO grdb_migrations(identifier) VALUES ('v999-from-the-future')") }
        #expect(throws: CorpusError.schemaTooNew(path: store.path)) { _ = try CorpusStore(path: store.path) }
    }
}
