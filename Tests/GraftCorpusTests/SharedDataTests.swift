import GraftSupport
import Foundation
import GRDB
import Testing
@testable import GraftCorpus

/// Full-size imports of the shared data sets; counts from /work/shared/data/README.md.
/// Skipped (visibly) when the data folder is absent.
@Suite(.enabled(if: sharedDataDirectory != nil, "needs the shared data (GRAFT_DATA_DIR or ../shared/data)"))
struct SharedDataImportTests {
    let data = sharedDataDirectory ?? ""

    func words(_ texts: some Sequence<String>) -> Int {
        texts.reduce(0) { total, text in
            total + text.unicodeScalars.split(whereSeparator: { $0.properties.isWhitespace }).count
        }
    }

    @Test func corpora() throws {
        let (store, dir) = try makeStore()
        defer { removeTemporaryDirectory(dir) }
        let wiki = try store.importFile(data + "/corpora/wiki-vital-en.jsonl")
        #expect(wiki.records == 10_033 && wiki.documents == 10_033)
        #expect(words(try store.documentTexts(DocumentFilter(sourceID: wiki.sourceID)).all()) == 775_848)
        // News with de-duplication off (so the word count covers all 3,788 articles); the
        // distinct content hashes give the README's 3,781 distinct texts.
        let news = try store.importFile(data + "/corpora/news-2017-en.jsonl", options: ImportOptions(deduplicate: false))
        #expect(news.records == 3_788 && news.documents == 3_788)
        #expect(words(try store.documentTexts(DocumentFilter(sourceID: news.sourceID)).all()) == 2_035_334)
        #expect(try count(store, "SELECT count(DISTINCT hash) FROM document WHERE sourceId = \(news.sourceID)") == 3_781)
        let play = try store.importFile(data + "/corpora/shakespeare-gutenberg.txt", options: ImportOptions(format: .text))
        #expect(play.documents == 1)
        let text = try #require(try store.documentTexts(DocumentFilter(sourceID: play.sourceID)).all().first)
        #expect(text.unicodeScalars.count == 4_850_452)
        #expect(text.utf8.filter { $0 == 0x0A }.count == 181_742)
        #expect(words([text]) == 867_823)
        // Importing again adds nothing.
        #expect(try store.importFile(data + "/corpora/wiki-vital-en.jsonl").alreadyImported)
        #expect(try store.stats().documents == 10_033 + 3_788 + 1)
    }

    @Test func sentiment() throws {
        let (store, dir) = try makeStore()
        defer { removeTemporaryDirectory(dir) }
        for (set, part, pos, neg) in [
            ("rt-snippets", SplitPart.train, 4_148, 4_306), ("rt-snippets", .dev, 548, 509),
            ("pang-lee-sentences", .train, 1_599, 1_601), ("pang-lee-sentences", .dev, 205, 195),
        ] {
            let report = try store.importFile(data + "/sentiment/\(set)/\(part.rawValue).tsv", options: ImportOptions(task: set, split: part))
            #expect(report.documents == pos + neg)
            let labels = try store.classificationExamples(task: set, DocumentFilter(part: part)).all().map(\.label)
            #expect(labels.filter { $0 == "pos" }.count == pos && labels.filter { $0 == "neg" }.count == neg, "\(set) \(part)")
            #expect(try store.importFile(data + "/sentiment/\(set)/\(part.rawValue).tsv", options: ImportOptions(task: set, split: part)).alreadyImported)
        }
    }

    @Test(arguments: [
        ("conll2003/train.txt", 14_041, 203_621, 946, nil), ("conll2003/dev.txt", 3_250, 51_362, 216, nil),
        ("wnut16/train.txt", 1_915, 37_316, 0, 1_237), ("wnut16/dev.txt", 239, 4_647, 0, 122),
    ] as [(String, Int, Int, Int, Int?)])
    func ner(file: String, sentences: Int, tokens: Int, documents: Int, entities: Int?) throws {
        let (store, dir) = try makeStore()
        defer { removeTemporaryDirectory(dir) }
        let path = data + "/ner/" + file
        let report = try store.importFile(path, options: ImportOptions(format: .conll))
        #expect(report.documents == sentences)
        let examples = (try store.taggingExamples().all())
        #expect(examples.count == sentences)
        #expect(examples.reduce(0) { $0 + $1.tokens.count } == tokens)
        if let entities { #expect(report.annotations == entities) }
        let docstarts = try store.read { db in
            try String.fetchAll(db, sql: "SELECT metadata FROM document WHERE metadata IS NOT NULL")
        }.compactMap { try metadataObject($0, documentID: 0)["docstart"] as? [String] }.reduce(0) { $0 + $1.count }
        #expect(docstarts == documents)
        var out = Data()
        _ = try store.export(format: .conll) { out.append(contentsOf: $0.utf8) }
        let identical = out == (try Data(contentsOf: URL(fileURLWithPath: path)))   // outside #expect: no megabyte diff on failure
        #expect(identical, "CoNLL round trip of \(file)")
        #expect(try store.importFile(path, options: ImportOptions(format: .conll)).alreadyImported)
    }

    @Test(arguments: [("train.json", 150, 600), ("dev.json", 30, 120)])
    func qa(file: String, passages: Int, questions: Int) throws {
        let (store, dir) = try makeStore()
        defer { removeTemporaryDirectory(dir) }
        let path = data + "/qa/" + file
        let report = try store.importFile(path)
        #expect(report.documents == passages)
        #expect((try store.qaExamples().all()).count == questions)
        var out = ""
        _ = try store.export(format: .squad) { out += $0 }
        let original = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! NSDictionary
        #expect((try JSONSerialization.jsonObject(with: Data(out.utf8)) as! NSDictionary) == original)
    }
}
