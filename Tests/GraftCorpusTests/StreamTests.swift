import GraftSupport
import Foundation
import GRDB
import Testing
@testable import GraftCorpus

/// A deterministic stand-in tokenizer for tests: one id per whitespace-separated word,
/// `1 + (scalar sum of the word) % 1000` (separator id 0 never occurs).
func testEncode(_ text: String) -> [Int32] {
    text.split(whereSeparator: { $0.isWhitespace }).map { word in
        Int32(1 + word.unicodeScalars.reduce(0) { $0 + Int($1.value) } % 1000)
    }
}

@Suite struct SplitTests {
    @Test func hashSplitsFollowRatiosAndStayStable() throws {
        let (store, dir) = try makeStore()
        let first = dir + "/first.txt"
        writeFile(first, (0..<2000).map { "document number \($0)" }.joined(separator: "\n"))
        _ = try store.importFile(first, options: ImportOptions(format: .lines))
        let counts = try store.defineSplit(name: "default", train: 0.7, dev: 0.2, test: 0.1)
        #expect(counts.values.reduce(0, +) == 2000)
        #expect(abs(counts[.train]! - 1400) < 100 && abs(counts[.dev]! - 400) < 70 && abs(counts[.test]! - 200) < 55)
        let trainBefore = Set(try store.documents(DocumentFilter(part: .train)).all().map(\.id))
        let devBefore = Set(try store.documents(DocumentFilter(part: .dev)).all().map(\.id))
        // Add more documents: earlier assignments do not move.
        let second = dir + "/second.txt"
        writeFile(second, (2000..<3000).map { "document number \($0)" }.joined(separator: "\n"))
        _ = try store.importFile(second, options: ImportOptions(format: .lines))
        let trainAfter = Set(try store.documents(DocumentFilter(part: .train)).all().map(\.id))
        let devAfter = Set(try store.documents(DocumentFilter(part: .dev)).all().map(\.id))
        #expect(trainBefore.isSubset(of: trainAfter) && devBefore.isSubset(of: devAfter))
        #expect(trainAfter.count > trainBefore.count)
        // Parts are disjoint and cover everything.
        let testAfter = Set(try store.documents(DocumentFilter(part: .test)).all().map(\.id))
        #expect(trainAfter.isDisjoint(with: devAfter) && trainAfter.isDisjoint(with: testAfter) && devAfter.isDisjoint(with: testAfter))
        #expect(trainAfter.count + devAfter.count + testAfter.count == 3000)
        // The same text falls in the same part in another store (the split depends on the text only).
        let (other, _) = try makeStore()
        _ = try other.importFile(second, options: ImportOptions(format: .lines))
        try other.defineSplit(name: "default", train: 0.7, dev: 0.2, test: 0.1)
        let otherTrainTexts = Set(try other.documents(DocumentFilter(part: .train)).all().map(\.text))
        let trainTexts = Set(try store.documents(DocumentFilter(part: .train)).all().map(\.text))
        #expect(otherTrainTexts.isSubset(of: trainTexts))
    }

    @Test func badRatiosAndUnknownSchemes() throws {
        let (store, _) = try makeStore()
        #expect(throws: CorpusError.self) { try store.defineSplit(name: "x", train: 0.8, dev: 0.3, test: 0.1) }
        #expect(throws: CorpusError.self) { try store.defineSplit(name: "x", train: -0.1, dev: 1.0, test: 0.1) }
        #expect(throws: CorpusError.unknownSplit("nope")) { try store.splitCounts(name: "nope") }
        #expect(throws: CorpusError.unknownSplit("nope")) { try store.documentTexts(DocumentFilter(part: .train, scheme: "nope")).all() }
    }
}

@Suite struct StreamingTests {
    @Test func documentsStreamInPagesInImportOrder() throws {
        let (store, dir) = try makeStore()
        let path = dir + "/lines.txt"
        let texts = (0..<1000).map { "line \($0) with ünïcode" }
        writeFile(path, texts.joined(separator: "\n") + "\n")
        _ = try store.importFile(path, options: ImportOptions(format: .lines))
        // A tiny page size forces many round trips; the result is the same.
        #expect(try store.documentTexts(pageSize: 7).all() == texts)
        #expect(try store.documentTexts(pageSize: 1000).all() == texts)
        var batches = store.documentTexts(pageSize: 64).batches(of: 300)
        var sizes: [Int] = []
        while let batch = try batches.next() { sizes.append(batch.count) }
        #expect(sizes == [300, 300, 300, 100])
        var words = 0
        try store.documentTexts().forEach { words += $0.split(separator: " ").count }
        #expect(words == 4000)
    }

    @Test func tokenCacheAndPackedBlocks() throws {
        let (store, dir) = try makeStore()
        let path = dir + "/docs.txt"
        let texts = (0..<300).map { i in (0..<(i % 17 + 1)).map { "w\($0 * 7 + i)" }.joined(separator: " ") }
        writeFile(path, texts.joined(separator: "\n"))
        _ = try store.importFile(path, options: ImportOptions(format: .lines))
        let report = try store.buildTokenCache(fingerprint: "test-tok", batchSize: 40, encode: testEncode)
        let expectedTokens = texts.reduce(0) { $0 + testEncode($1).count }
        #expect(report.newDocuments == 300 && report.tokens == expectedTokens)
        #expect(try store.stats().tokens == expectedTokens)
        // A second call has nothing to do.
        #expect(try store.buildTokenCache(fingerprint: "test-tok", encode: testEncode).newDocuments == 0)
        let ids = try store.read { try Int64.fetchAll($0, sql: "SELECT id FROM document ORDER BY id") }
        #expect(try store.cachedTokens(documentID: ids[5], fingerprint: "test-tok") == testEncode(texts[5]))

        // Sequential blocks: the concatenation of docs, each followed by the separator, cut every 16.
        var stream: [Int32] = []
        for t in texts { stream += testEncode(t); stream.append(0) }
        let blocks = try store.packedBlocks(fingerprint: "test-tok", blockLength: 16, separator: 0, pageSize: 13).all()
        #expect(blocks.allSatisfy { $0.count == 16 })
        #expect(blocks.count == stream.count / 16)
        #expect(Array(blocks.joined()) == Array(stream.prefix(blocks.count * 16)))
        let withTail = try store.packedBlocks(fingerprint: "test-tok", blockLength: 16, separator: 0, dropRemainder: false).all()
        #expect(Array(withTail.joined()) == stream)
        let counted = try store.cachedTokenCount(fingerprint: "test-tok")
        #expect(counted.documents + counted.tokens == stream.count && counted.tokens == expectedTokens)
        #expect(try store.documentCount() == 300)
        var flatBatches: [[Int32]] = []
        var batchStream = try store.packedBlocks(fingerprint: "test-tok", blockLength: 16, separator: 0).batches(of: 4)
        while let batch = try batchStream.next() { flatBatches.append(batch) }
        #expect(Array(flatBatches.joined()) == Array(blocks.joined()))

        // Shuffled: deterministic per seed, a permutation of the documents.
        let s1 = try store.packedBlocks(fingerprint: "test-tok", blockLength: 16, separator: 0, shuffleSeed: 42, dropRemainder: false).all()
        let s1again = try store.packedBlocks(fingerprint: "test-tok", blockLength: 16, separator: 0, shuffleSeed: 42, dropRemainder: false).all()
        let s2 = try store.packedBlocks(fingerprint: "test-tok", blockLength: 16, separator: 0, shuffleSeed: 7, dropRemainder: false).all()
        #expect(s1 == s1again)
        #expect(s1 != s2 && s1 != withTail)
        func documents(_ flat: [Int32]) -> [[Int32]] { flat.split(separator: 0, omittingEmptySubsequences: true).map(Array.init) }
        #expect(documents(Array(s1.joined())).sorted { $0.lexicographicallyPrecedes($1) }
                == documents(stream).sorted { $0.lexicographicallyPrecedes($1) })

        // Documents added later are tokenized by the next call only.
        let more = dir + "/more.txt"
        writeFile(more, "alpha beta gamma\n")
        _ = try store.importFile(more, options: ImportOptions(format: .lines))
        let update = try store.buildTokenCache(fingerprint: "test-tok", encode: testEncode)
        #expect(update.newDocuments == 1 && update.tokens == expectedTokens + 3)
        #expect(throws: CorpusError.noTokenCache(fingerprint: "other")) {
            _ = try store.packedBlocks(fingerprint: "other", blockLength: 8, separator: 0)
        }
    }

    /// A database error in the middle of an epoch is thrown by the iteration: the epoch is never
    /// silently cut short.
    @Test func packedBlocksFailingMidEpochThrow() throws {
        let (store, dir) = try makeStore()
        let path = dir + "/docs.txt"
        writeFile(path, (0..<100).map { "w\($0) w\($0 + 1) w\($0 + 2)" }.joined(separator: "\n"))
        _ = try store.importFile(path, options: ImportOptions(format: .lines))
        try store.buildTokenCache(fingerprint: "t", encode: testEncode)
        for seed: UInt64? in [nil, 9] {
            var blocks = try store.packedBlocks(fingerprint: "t", blockLength: 4, separator: 0, shuffleSeed: seed, pageSize: 10).makeIterator()
            for _ in 0..<5 { #expect(try blocks.next() != nil) }
            // The table disappears under the reader (as a damaged or replaced file would).
            try store.write { try $0.execute(sql: "ALTER TABLE token_cache RENAME TO token_cache_gone") }
            defer { try? store.write { try $0.execute(sql: "ALTER TABLE token_cache_gone RENAME TO token_cache") } }  // restore for the next seed
            #expect(throws: CorpusError.self) { while try blocks.next() != nil {} }
        }
    }

    /// A damaged cache blob (not whole Int32s, or a negative id) is an error naming the document.
    @Test func damagedTokenCacheBlobIsAnError() throws {
        let (store, dir) = try makeStore()
        let path = dir + "/docs.txt"
        writeFile(path, (0..<30).map { "w\($0) w\($0 + 1)" }.joined(separator: "\n"))
        _ = try store.importFile(path, options: ImportOptions(format: .lines))
        try store.buildTokenCache(fingerprint: "t", encode: testEncode)
        let id = try store.read { try Int64.fetchOne($0, sql: "SELECT documentId FROM token_cache ORDER BY documentId LIMIT 1 OFFSET 20")! }
        for blob in [Data([1, 0, 0]), Data([0xFF, 0xFF, 0xFF, 0xFF])] {
            try store.write { try $0.execute(sql: "UPDATE token_cache SET ids = ? WHERE documentId = ?", arguments: [blob, id]) }
            do {
                _ = try store.packedBlocks(fingerprint: "t", blockLength: 4, separator: 0, pageSize: 8).all()
                Issue.record("a damaged blob was read as data")
            } catch let CorpusError.database(message) {
                #expect(message.contains("document \(id)"))
            }
            #expect(throws: CorpusError.self) { try store.cachedTokens(documentID: id, fingerprint: "t") }
        }
    }

    /// Document streams throw on a database error met after the first page.
    @Test func documentStreamFailingMidwayThrows() throws {
        let (store, dir) = try makeStore()
        let path = dir + "/docs.txt"
        writeFile(path, (0..<50).map { "line \($0)" }.joined(separator: "\n"))
        _ = try store.importFile(path, options: ImportOptions(format: .lines))
        var texts = store.documentTexts(pageSize: 10).makeIterator()
        for _ in 0..<10 { #expect(try texts.next() != nil) }
        try store.write { try $0.execute(sql: "ALTER TABLE document RENAME TO document_gone") }
        #expect(throws: CorpusError.self) { try texts.next() }
    }

    @Test func packedBlocksOfOneSplitPart() throws {
        let (store, dir) = try makeStore()
        writeFile(dir + "/train.txt", "a b c\nd e\n")
        writeFile(dir + "/dev.txt", "x y z w\n")
        _ = try store.importFile(dir + "/train.txt", options: ImportOptions(format: .lines, split: .train))
        _ = try store.importFile(dir + "/dev.txt", options: ImportOptions(format: .lines, split: .dev))
        try store.buildTokenCache(fingerprint: "t", encode: testEncode)
        let dev = try store.packedBlocks(fingerprint: "t", blockLength: 5, separator: 0, filter: DocumentFilter(part: .dev)).all()
        #expect(dev == [testEncode("x y z w") + [0]])
        let train = try store.packedBlocks(fingerprint: "t", blockLength: 7, separator: 0, filter: DocumentFilter(part: .train)).all()
        #expect(train == [testEncode("a b c") + [0] + testEncode("d e") + [0]])
    }

    @Test func tokenizerErrorsNameTheDocument() throws {
        struct Boom: Error {}
        let (store, dir) = try makeStore()
        writeFile(dir + "/a.txt", "fine\nexplode here\n")
        _ = try store.importFile(dir + "/a.txt", options: ImportOptions(format: .lines))
        #expect {
            try store.buildTokenCache(fingerprint: "t", batchSize: 1) { text in
                if text.contains("explode") { throw Boom() }
                return testEncode(text)
            }
        } throws: { error in
            guard case .tokenizerFailed = error as? CorpusError else { return false }
            return true
        }
        // The first batch was committed; the next call resumes.
        #expect(try store.tokenCacheStats(fingerprint: "t").documents == 1)
    }

    @Test func batchEncodingCachesTheSameIdsAndNamesAFailingDocument() throws {
        struct Boom: Error {}
        let (store, dir) = try makeStore()
        let texts = (0..<50).map { i in (0..<(i % 7 + 1)).map { "w\($0 + i)" }.joined(separator: " ") }
        writeFile(dir + "/a.txt", texts.joined(separator: "\n") + "\nexplode here\n")
        _ = try store.importFile(dir + "/a.txt", options: ImportOptions(format: .lines))
        var batches: [Int] = []
        #expect {
            try store.buildTokenCache(fingerprint: "t", batchSize: 16, encodeBatch: { batch in
                batches.append(batch.count)
                if batch.contains(where: { $0.contains("explode") }) { throw Boom() }
                return batch.map(testEncode)
            })
        } throws: { error in
            // The failing batch (the last two documents) was retried one document at a time.
            guard case .tokenizerFailed(let documentID, _) = error as? CorpusError else { return false }
            return documentID == 51
        }
        #expect(batches == [16, 16, 16, 3, 1, 1, 1])
        let ids = try store.read { try Int64.fetchAll($0, sql: "SELECT id FROM document ORDER BY id") }
        #expect(try store.tokenCacheStats(fingerprint: "t").documents == 48)
        for (id, text) in zip(ids, texts).prefix(48) {
            #expect(try store.cachedTokens(documentID: id, fingerprint: "t") == testEncode(text))
        }
        // Without the bad document, the rest is cached by the next call, a batch at a time.
        _ = try store.write { try $0.execute(sql: "DELETE FROM document WHERE id = 51") }
        let report = try store.buildTokenCache(fingerprint: "t", batchSize: 16, encodeBatch: { $0.map(testEncode) })
        #expect(report.newDocuments == 2 && report.documents == 50)
    }
}

@Suite struct RunAndSearchTests {
    struct Config: Codable { var layers: Int; var lr: Double }

    @Test func runsRecordConfigMetricsAndTimings() throws {
        let (store, _) = try makeStore()
        let run = try store.startRun(kind: "pretrain", name: "tiny", config: Config(layers: 2, lr: 0.001))
        try run.log(step: 1, name: "loss", value: 5.5)
        try run.log(step: 2, metrics: ["loss": 4.25, "tokens_per_s": 1000])
        try run.finish(summary: ["loss": 4.25])
        let info = try store.run(id: run.id)
        #expect(info.kind == "pretrain" && info.name == "tiny" && info.status == .finished)
        #expect(info.config == #"{"layers":2,"lr":0.001}"#)
        #expect(info.summary == #"{"loss":4.25}"#)
        #expect((info.seconds ?? -1) >= 0 && info.finishedAt != nil)
        #expect(try store.metrics(run: run.id, name: "loss").map(\.value) == [5.5, 4.25])
        #expect(try store.metrics(run: run.id).count == 3)
        let failed = try store.startRun(kind: "finetune", configJSON: "{}")
        try failed.finish(status: .failed)
        #expect(try store.runs().map(\.status) == [.failed, .finished])
        #expect(try store.stats().runs == 2)
        #expect(throws: CorpusError.unknownRun(999)) { _ = try store.run(id: 999) }
    }

    @Test func fullTextSearchShowsSnippets() throws {
        let (store, _) = try makeStore()
        _ = try store.importFile(fixture("wiki-vital-en.head200.jsonl"))
        let hits = try store.search("symphony", limit: 5)
        #expect(!hits.isEmpty && hits.count <= 5)
        for hit in hits {
            #expect(hit.snippet.lowercased().contains("[symphon"))
            #expect(hit.source == "wiki-vital-en.head200.jsonl")
        }
        // Invalid FTS5 syntax falls back to quoted terms rather than failing.
        #expect(try store.search("classical \"music", limit: 3).count == 3)
        #expect(try store.search("zzzxqqnotaword").isEmpty)
    }
}

@Suite struct RemoveSourceTests {
    @Test func removingASourceRemovesItsDocumentsIndexAndTokens() throws {
        let (store, dir) = try makeStore()
        writeFile(dir + "/a.txt", "apple banana\ncherry\n")
        writeFile(dir + "/b.txt", "banana split\n")
        let a = try store.importFile(dir + "/a.txt", options: ImportOptions(format: .lines))
        _ = try store.importFile(dir + "/b.txt", options: ImportOptions(format: .lines))
        try store.buildTokenCache(fingerprint: "t", encode: testEncode)
        #expect(try store.search("banana").count == 2)
        try store.removeSource(id: a.sourceID)
        #expect(try store.search("banana").map(\.source) == ["b.txt"])
        #expect(try store.search("cherry").isEmpty)
        #expect(try store.stats().documents == 1 && store.stats().sources == 1)
        #expect(try store.tokenCacheStats(fingerprint: "t") == TokenizerStats(fingerprint: "t", documents: 1, tokens: 2))
        #expect(try store.integrityCheck() == ["ok"])
        #expect(try count(store, "SELECT count(*) FROM token_cache") == 1)
        try store.checkSearchIndex()
        // Removed, the file can be imported again.
        #expect(try store.importFile(dir + "/a.txt", options: ImportOptions(format: .lines)).documents == 2)
    }
}

/// Hostile numbers in corpus import files (answer offsets, labels, CoNLL columns), seeded:
/// every import either succeeds or throws a ``CorpusError``, never traps.
@Suite struct CorpusMutationTests {
    @Test func squadAndJSONLWithHostileNumbers() throws {
        let hostile = ["2147483648", "1000000000", "-1", "1e300", "-9223372036854775809", "18446744073709551616", "0.5", "null", "\"7\""]
        var rng = GraftSupport.SplitMix64(seed: 21)
        let (store, dir) = try makeStore()
        var outcomes = (imported: 0, rejected: 0)
        for i in 0..<120 {
            let start = hostile[Int(rng.next() % UInt64(hostile.count))]
            let label = hostile[Int(rng.next() % UInt64(hostile.count))]
            let squad = """
                {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "Café au lait is coffee \(i).", "qas": [
                  {"id": "q\(i)", "question": "What?", "answers": [{"text": "coffee", "answer_start": \(start)}]}]}]}]}
                """
            let jsonl = "{\"text\": \"doc \(i)\", \"label\": \(label)}\n"
            for (name, text) in [("s\(i).json", squad), ("j\(i).jsonl", jsonl)] {
                writeFile(dir + "/" + name, text)
                do {
                    _ = try store.importFile(dir + "/" + name, options: ImportOptions(labelField: name.hasSuffix(".jsonl") ? "label" : nil))
                    outcomes.imported += 1
                } catch is CorpusError {
                    outcomes.rejected += 1
                }
            }
        }
        #expect(outcomes.rejected > 100 && outcomes.imported > 0)
    }
}
