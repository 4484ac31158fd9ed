import GraftSupport
import Foundation
import GRDB
import Testing
@testable import GraftCorpus

@Suite struct FixtureImportTests {
    @Test func jsonlCorpusAndReimport() throws {
        let (store, _) = try makeStore()
        let report = try store.importFile(fixture("wiki-vital-en.head200.jsonl"))
        #expect(report.format == .jsonl)
        #expect(report.documents == 200 && report.records == 200 && report.duplicates == 0)
        let again = try store.importFile(fixture("wiki-vital-en.head200.jsonl"))
        #expect(again.alreadyImported && again.documents == 0 && again.sourceID == report.sourceID)
        #expect(try store.stats().documents == 200)
        #expect(try store.stats().sources == 1)
        // Other fields are kept as metadata.
        let first = try #require(try store.documents().all().first)
        #expect(first.text.hasPrefix("20th-century classical music is"))
        #expect(first.metadata == #"{"title":"20th-century classical music"}"#)
    }

    @Test func jsonlDuplicatesAreDropped() throws {
        let (store, _) = try makeStore()
        let report = try store.importFile(fixture("news-2017-en.slice20.jsonl"))
        #expect(report.records == 20 && report.documents == 18 && report.duplicates == 2)
        // With de-duplication off, every line is a document.
        let (store2, _) = try makeStore()
        let all = try store2.importFile(fixture("news-2017-en.slice20.jsonl"), options: ImportOptions(deduplicate: false))
        #expect(all.documents == 20)
    }

    @Test func plainTextLinesParagraphsAndWholeFile() throws {
        let (store, _) = try makeStore()
        let lines = try store.importFile(fixture("shakespeare-gutenberg.head400.txt"), options: ImportOptions(format: .lines))
        #expect(lines.documents == 252 && lines.duplicates == 309 - 252)
        let paragraphs = try store.importFile(fixture("shakespeare-gutenberg.head400.txt"), options: ImportOptions(format: .paragraphs, deduplicate: false))
        #expect(paragraphs.documents == 82)
        let whole = try store.importFile(fixture("shakespeare-gutenberg.head400.txt"), options: ImportOptions(format: .text))
        #expect(whole.documents == 1)
        let text = try #require(try store.documents(DocumentFilter(sourceID: whole.sourceID)).all().first).text
        let original = try String(contentsOfFile: fixture("shakespeare-gutenberg.head400.txt"), encoding: .utf8)
        #expect(Array(text.utf8) == Array(original.utf8))
        #expect(try store.stats().sources == 3)
    }

    @Test func sentimentTSV() throws {
        let (store, _) = try makeStore()
        let report = try store.importFile(fixture("rt-snippets-train.head300.tsv"), options: ImportOptions(split: .train))
        #expect(report.documents == 300 && report.annotations == 300)
        let dev = try store.importFile(fixture("pang-lee-sentences-dev.head200.tsv"), options: ImportOptions(task: "sentiment", split: .dev))
        #expect(dev.documents == 200)
        let stats = try store.stats()
        #expect(stats.labelCounts["label"] == ["pos": 134, "neg": 166])
        #expect(stats.labelCounts["sentiment"] == ["pos": 104, "neg": 96])
        let train = (try store.classificationExamples(task: "label", DocumentFilter(part: .train)).all())
        #expect(train.count == 300)
        #expect((try store.classificationExamples(task: "label", DocumentFilter(part: .dev)).all()).isEmpty)
        #expect((try store.classificationExamples(task: "sentiment", DocumentFilter(part: .dev)).all()).count == 200)
        // Texts that begin with or contain quotes are kept verbatim (no quoting in these TSVs).
        let firstRow = try String(contentsOfFile: fixture("rt-snippets-train.head300.tsv"), encoding: .utf8)
            .split(separator: "\n")[1].split(separator: "\t", maxSplits: 1)
        #expect(train[0].label == String(firstRow[0]) && train[0].text == String(firstRow[1]))
    }

    @Test func csvWithQuotes() throws {
        let (store, dir) = try makeStore()
        let path = dir + "/reviews.csv"
        writeFile(path, "\u{FEFF}id,label,text\n1,pos,\"Great, really \"\"great\"\" film\"\n2,neg,\"two\nlines\"\n3,pos,plain\n")
        let report = try store.importFile(path)
        #expect(report.format == .csv && report.documents == 3)
        let examples = (try store.classificationExamples().all())
        #expect(examples.map(\.text) == ["Great, really \"great\" film", "two\nlines", "plain"])
        #expect(examples.map(\.label) == ["pos", "neg", "pos"])
        #expect((try store.documents().all()).map(\.metadata) == [#"{"id":"1"}"#, #"{"id":"2"}"#, #"{"id":"3"}"#])
    }

    /// A CRLF file: the `\r\n` that ends a record is dropped (also after a closing quote and on
    /// the header), a `\r\n` inside quotes is data and comes back as written, like Python's csv.
    @Test func csvKeepsCRLFInsideQuotes() throws {
        let (store, dir) = try makeStore()
        let path = dir + "/crlf.csv"
        writeFile(path, "review,stars\r\n\"multi\r\nline\",1\r\n\"unix\nbreak\",2\r\nplain,\"3\"\r\n\r\n\"a\r\n\r\nb\",4")
        let report = try store.importFile(path, options: ImportOptions(textField: "review", labelField: "stars"))
        #expect(report.documents == 4)
        let examples = try store.classificationExamples().all()
        #expect(examples.map(\.text) == ["multi\r\nline", "unix\nbreak", "plain", "a\r\n\r\nb"])
        #expect(examples.map(\.label) == ["1", "2", "3", "4"])
        var exported = ""
        _ = try store.export(format: .jsonl, labelField: "label") { exported += $0 }
        #expect(exported.contains(#""text":"multi\r\nline""#), "\(exported)")
    }

    @Test func jsonlWithUserFields() throws {
        let (store, dir) = try makeStore()
        let path = dir + "/reviews.jsonl"
        writeFile(path, """
            {"review": "Loved it\\u2028really", "stars": 5, "user": "a"}
            {"review": "Meh", "stars": 2, "user": "b"}

            """)
        let report = try store.importFile(path, options: ImportOptions(textField: "review", labelField: "stars", task: "stars"))
        #expect(report.documents == 2 && report.annotations == 2)
        let examples = (try store.classificationExamples(task: "stars").all())
        #expect(examples.map(\.label) == ["5", "2"])
        #expect(examples[0].text.unicodeScalars.map(\.value).contains(0x2028))
    }

    @Test func conllRoundTripAndOffsets() throws {
        for (name, sentences, tokens, entities) in [
            ("conll2003-train.head.txt", 25, 583, 58), ("wnut16-train.head.txt", 16, 392, 16),
        ] {
            let (store, _) = try makeStore()
            let report = try store.importFile(fixture(name), options: ImportOptions(format: .conll))
            #expect(report.documents == sentences)
            #expect(report.annotations == entities)
            let examples = (try store.taggingExamples().all())
            #expect(examples.count == sentences)
            #expect(examples.reduce(0) { $0 + $1.tokens.count } == tokens)
            for example in examples {
                let scalars = Array(example.text.unicodeScalars)
                // Text is the tokens joined by single spaces.
                #expect(example.text == example.tokens.joined(separator: " "))
                // Each span covers exactly the tokens of one entity.
                var entityTexts: [String] = []
                var current: [String] = []
                for (token, tag) in zip(example.tokens, example.tags) {
                    if tag.hasPrefix("B-") || (tag.hasPrefix("I-") && current.isEmpty) {
                        if !current.isEmpty { entityTexts.append(current.joined(separator: " ")) }
                        current = [token]
                    } else if tag.hasPrefix("I-") {
                        current.append(token)
                    } else if !current.isEmpty {
                        entityTexts.append(current.joined(separator: " "))
                        current = []
                    }
                }
                if !current.isEmpty { entityTexts.append(current.joined(separator: " ")) }
                let spanTexts = example.spans.map { span in
                    var view = String.UnicodeScalarView()
                    view.append(contentsOf: scalars[span.start..<span.end])
                    return String(view)
                }
                #expect(spanTexts == entityTexts)
            }
            var out = ""
            let exported = try store.export(format: .conll) { out += $0 }
            #expect(exported.documents == sentences)
            let original = try Data(contentsOf: URL(fileURLWithPath: fixture(name)))
            #expect(Data(out.utf8) == original, "CoNLL export of \(name) differs from the input")
        }
    }

    @Test func conllEntityOffsetsAreInScalars() throws {
        let (store, dir) = try makeStore()
        let path = dir + "/multi.conll"
        writeFile(path, "Zoë\tB-PER\nmet\tO\n😀\tO\nSão\tB-LOC\nPaulo\tI-LOC\n\n")
        _ = try store.importFile(path)
        let example = try #require((try store.taggingExamples().all()).first)
        #expect(example.text == "Zoë met 😀 São Paulo")
        #expect(example.spans == [EntitySpan(start: 0, end: 3, type: "PER"), EntitySpan(start: 10, end: 19, type: "LOC")])
    }

    @Test func squadImportVerifyAndRoundTrip() throws {
        let (store, _) = try makeStore()
        let report = try store.importFile(fixture("qa-dev.head9.json"))
        #expect(report.format == .squad && report.documents == 9 && report.annotations == 36)
        let examples = (try store.qaExamples().all())
        #expect(examples.count == 36)
        for example in examples {
            let scalars = Array(example.context.unicodeScalars)
            for answer in example.answers {
                let end = answer.start + answer.text.unicodeScalars.count
                #expect(scalars[answer.start..<end].elementsEqual(answer.text.unicodeScalars))
            }
        }
        var out = ""
        _ = try store.export(format: .squad) { out += $0 }
        let original = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture("qa-dev.head9.json")))) as! NSDictionary
        let exported = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! NSDictionary
        #expect(exported == original)
        // Re-importing the export gives the same examples.
        let (store2, dir2) = try makeStore()
        writeFile(dir2 + "/export.json", out)
        _ = try store2.importFile(dir2 + "/export.json")
        #expect((try store2.qaExamples().all()).map { [$0.questionID, $0.question, $0.context] } == examples.map { [$0.questionID, $0.question, $0.context] })
        #expect((try store2.qaExamples().all()).map(\.answers) == examples.map(\.answers))
    }

    @Test func jsonlExportRoundTrip() throws {
        let (store, dir) = try makeStore()
        _ = try store.importFile(fixture("wiki-vital-en.head200.jsonl"))
        var out = ""
        let report = try store.export(format: .jsonl) { out += $0 }
        #expect(report.documents == 200)
        let originalLines = try String(contentsOfFile: fixture("wiki-vital-en.head200.jsonl"), encoding: .utf8).split(separator: "\n")
        let exportedLines = out.split(separator: "\n")
        #expect(exportedLines.count == originalLines.count)
        for (a, b) in zip(originalLines, exportedLines) {
            let x = try JSONSerialization.jsonObject(with: Data(a.utf8)) as! NSDictionary
            let y = try JSONSerialization.jsonObject(with: Data(b.utf8)) as! NSDictionary
            #expect(x == y)
        }
        // An exported file imports into another store as the same texts.
        let (store2, _) = try makeStore()
        writeFile(dir + "/out.jsonl", out)
        _ = try store2.importFile(dir + "/out.jsonl")
        #expect((try store2.documentTexts().all()) == (try store.documentTexts().all()))
    }
}

/// Source identities and stored metadata are written by GraftSupport's JSON writer with the
/// bytes JSONSerialization wrote before, so databases made earlier recognise their files.
@Suite struct StoredJSONBytesTests {
    @Test func sourceIdentityIsJSONSerializationsBytes() throws {
        let fields: [String?] = [nil, "text", "meta/title", "é \"x\" \u{7}\u{7F}\t😀"]
        for format in [ImportFormat.jsonl, .conll, .squad] {
            for (i, field) in fields.enumerated() {
                for dedupe in [true, false] {
                    let options = ImportOptions(format: format, textField: field, labelField: fields[(i + 1) % fields.count],
                                                task: field.map { $0 + "-task" }, split: i % 2 == 0 ? nil : .dev)
                    var old: [String: Any] = ["format": format.rawValue, "task": options.task ?? "label", "dedupe": dedupe,
                                              "split": options.split?.rawValue ?? ""]
                    if let f = options.textField { old["textField"] = f }
                    if let f = options.labelField { old["labelField"] = f }
                    let expected = String(decoding: try JSONSerialization.data(withJSONObject: old, options: [.sortedKeys]), as: UTF8.self)
                    #expect(CorpusStore.sourceIdentity(format: format, options: options, deduplicate: dedupe) == expected)
                }
            }
        }
    }

    @Test func storedMetadataIsJSONSerializationsBytes() throws {
        let (store, dir) = try makeStore()
        let lines = [
            #"{"text": "one", "id": 9007199254740993, "Title": "a/b \u00e9\b", "score": 0.1, "ok": true, "tags": ["x", 2.5e-5], "a10": 1, "a9": null}"#,
            #"{"text": "two", "big": 123456789012345678901234567890, "nested": {"K": 1, "k": -0.0, "e\u0301": "é"}, "w": 1E2}"#,
        ]
        writeFile(dir + "/m.jsonl", lines.joined(separator: "\n") + "\n")
        _ = try store.importFile(dir + "/m.jsonl")
        let stored = try store.read { db in try String.fetchAll(db, sql: "SELECT metadata FROM document ORDER BY id") }
        let expected = try lines.map { line in
            var object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            object["text"] = nil
            return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
        }
        #expect(stored == expected)
    }
}

@Suite struct BadInputTests {
    /// Imports `content` written to a file and returns the error, checking nothing was stored.
    func failure(_ content: [UInt8], name: String, options: ImportOptions = ImportOptions()) throws -> CorpusError? {
        let (store, dir) = try makeStore()
        let path = dir + "/" + name
        writeFile(path, bytes: content)
        do {
            _ = try store.importFile(path, options: options)
            return nil
        } catch let error as CorpusError {
            #expect(try store.stats().documents == 0)
            #expect(try store.stats().sources == 0)
            #expect(try store.stats().annotations == 0)
            return error
        }
    }

    func failure(_ content: String, name: String, options: ImportOptions = ImportOptions()) throws -> CorpusError? {
        try failure(Array(content.utf8), name: name, options: options)
    }

    @Test func malformedJSONLine() throws {
        let error = try failure("{\"text\": \"ok\"}\n{\"text\": \"broken\n{\"text\": \"fine\"}\n", name: "a.jsonl")
        guard case .malformedJSON(let file, let line, _) = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(file.hasSuffix("a.jsonl") && line == 2)
        #expect(error!.description.contains("a.jsonl:2: malformed JSON"))
    }

    @Test func missingJSONField() throws {
        let error = try failure("{\"text\": \"ok\"}\n{\"body\": \"no text\"}\n", name: "b.jsonl")
        guard case .missingField(_, 2, "text") = error else { Issue.record("got \(String(describing: error))"); return }
    }

    @Test func tsvRowMissingAColumn() throws {
        let error = try failure("label\ttext\npos\tgood\nneg-without-text\n", name: "c.tsv")
        guard case .missingColumn(let file, 3, 2, 1) = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(file.hasSuffix("c.tsv"))
    }

    @Test func csvRowMissingAColumnAndBrokenQuote() throws {
        let error = try failure("label,text\npos,good\nneg\n", name: "d.csv")
        guard case .missingColumn(_, 3, 2, 1) = error else { Issue.record("got \(String(describing: error))"); return }
        let quote = try failure("label,text\npos,\"unterminated\n", name: "e.csv")
        guard case .malformedCSV(_, 2, _) = quote else { Issue.record("got \(String(describing: quote))"); return }
    }

    @Test func conllWrongColumnCount() throws {
        let error = try failure("EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-PER\n\n", name: "f.conll")
        guard case .conllColumnCount(_, 4, 4, 3) = error else { Issue.record("got \(String(describing: error))"); return }
        let tag = try failure("EU B-ORG\nrejects X-ORG\n\n", name: "g.conll")
        guard case .invalidTag(_, 2, "X-ORG", .iob) = tag else { Issue.record("got \(String(describing: tag))"); return }
    }

    /// A BIOES file is refused under the default IOB scheme with a message naming the option,
    /// and imported with `tagScheme: .bioes`: spans from B/I/E and S tags, rows kept as written.
    @Test func conllBIOESTagsImportWithTheirScheme() throws {
        let text = "Take\tO\nAspirin\tS-DRUG\n100\tB-DOSE\nmg\tE-DOSE\ndaily\tO\n\nTylenol\tB-DRUG\nPM\tI-DRUG\nExtra\tE-DRUG\n\n"
        let refused = try failure(text, name: "drugs.conll")
        guard case .invalidTag(_, 2, "S-DRUG", .iob) = refused else { Issue.record("got \(String(describing: refused))"); return }
        #expect(refused!.description.hasSuffix("drugs.conll:2: invalid IOB tag \"S-DRUG\" (expected O, B-TYPE or I-TYPE; E-/S- tags are BIOES: import the file with --tag-scheme bioes)"))
        let notBIOES = try failure("Take\tO\nAspirin\tX-DRUG\n\n", name: "x.conll", options: ImportOptions(tagScheme: .bioes))
        #expect(notBIOES?.description.hasSuffix("x.conll:2: invalid BIOES tag \"X-DRUG\" (expected O, B-TYPE, I-TYPE, E-TYPE or S-TYPE)") == true)

        let (store, dir) = try makeStore()
        let path = dir + "/drugs.conll"
        writeFile(path, text)
        let report = try store.importFile(path, options: ImportOptions(tagScheme: .bioes))
        #expect(report.documents == 2 && report.annotations == 3)
        let examples = try store.taggingExamples().all()
        #expect(examples.map(\.spans) == [
            [EntitySpan(start: 5, end: 12, type: "DRUG"), EntitySpan(start: 13, end: 19, type: "DOSE")],
            [EntitySpan(start: 0, end: 16, type: "DRUG")],
        ])
        #expect(examples[0].tags == ["O", "S-DRUG", "B-DOSE", "E-DOSE", "O"])
        var out = ""
        _ = try store.export(format: .conll) { out += $0 }
        #expect(out == text)
        // Scheme names, and the scheme as a key of the source identity (absent for IOB).
        #expect(CoNLLTagScheme(name: "IOBES") == .bioes && CoNLLTagScheme(name: "iob1") == .iob && CoNLLTagScheme(name: "bilou") == nil)
        #expect(CorpusStore.sourceIdentity(format: .conll, options: ImportOptions(tagScheme: .bioes), deduplicate: true)
                == #"{"dedupe":true,"format":"conll","split":"","tagScheme":"bioes","task":"label"}"#)
    }

    @Test func squadAnswerOffsetMismatch() throws {
        let json = """
            {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "Café au lait is coffee.", "qas": [
              {"id": "q1", "question": "What?", "answers": [{"text": "coffee", "answer_start": 16}]},
              {"id": "q2", "question": "Which?", "answers": [{"text": "lait", "answer_start": 9}]}
            ]}]}]}
            """
        // q1 is right in code points (16; it would be 17 in UTF-8 bytes); q2 is off by one.
        let error = try failure(json, name: "h.json")
        guard case .answerMismatch(_, 3, "q2", "lait", "ait ") = error else { Issue.record("got \(String(describing: error))"); return }
        // With skipping, q2 is reported and q1 kept.
        let (store, dir) = try makeStore()
        writeFile(dir + "/h.json", json)
        let report = try store.importFile(dir + "/h.json", options: ImportOptions(skipBad: true))
        #expect(report.skipped.count == 1)
        #expect((try store.qaExamples().all()).map(\.questionID) == ["q1"])
    }

    @Test func invalidUTF8ReportsLineAndByteOffset() throws {
        var bytes = Array("first line\nsecond é line\n".utf8)
        bytes += [0x74, 0x68, 0xC3, 0x28, 0x0A]  // "th", then a broken 2-byte sequence, on line 3
        let error = try failure(bytes, name: "i.txt", options: ImportOptions(format: .lines))
        let expectedOffset = Array("first line\nsecond é line\n".utf8).count + 2
        guard case .invalidUTF8(_, 3, expectedOffset) = error else { Issue.record("got \(String(describing: error))"); return }
        // Whole-file text and JSONL report the same place.
        let whole = try failure(bytes, name: "j.txt", options: ImportOptions(format: .text))
        guard case .invalidUTF8(_, 3, expectedOffset) = whole else { Issue.record("got \(String(describing: whole))"); return }
        var jsonl = Array("{\"text\": \"ok\"}\n{\"text\": \"".utf8)
        let offset = jsonl.count
        jsonl += [0xFF] + Array("\"}\n".utf8)
        let j = try failure(jsonl, name: "k.jsonl")
        guard case .invalidUTF8(_, 2, offset) = j else { Issue.record("got \(String(describing: j))"); return }
    }

    @Test func skipBadReportsAndKeepsTheRest() throws {
        let (store, dir) = try makeStore()
        let path = dir + "/mixed.jsonl"
        writeFile(path, "{\"text\": \"one\"}\nnot json\n{\"text\": \"three\"}\n{\"other\": 1}\n")
        let report = try store.importFile(path, options: ImportOptions(skipBad: true))
        #expect(report.documents == 2)
        #expect(report.skipped.count == 2)
        guard case .malformedJSON(_, 2, _) = report.skipped[0], case .missingField(_, 4, "text") = report.skipped[1] else {
            Issue.record("got \(report.skipped)"); return
        }
        #expect(try store.sources()[0].skipped == 2)

        let conll = dir + "/mixed.conll"
        writeFile(conll, "A B-X\nb O\n\nbad line here\nc O\n\nD B-Y\n\n")
        let r2 = try store.importFile(conll, options: ImportOptions(skipBad: true))
        #expect(r2.documents == 2 && r2.skipped.count == 1)
    }

    /// SQuAD answer starts and types that are wrong: each a clear error, never an overflow or a
    /// silent coercion (`4.7` to 4, `true` to 1, an `answers` object read as no answers).
    @Test func squadBadAnswerStartsAndTypes() throws {
        func squad(answers: String = "[]", qas: String? = nil) -> String {
            let q = qas ?? #"[{"id": "q1", "question": "?", "answers": "# + answers + "}]"
            return #"{"data": [{"title": "T", "paragraphs": [{"context": "The cat sat", "qas": "# + q + "}]}]}"
        }
        func reason(_ json: String) throws -> String? {
            guard case .malformedSQuAD(_, _, let r)? = try failure(json, name: "s.json") else { return nil }
            return r
        }
        for start in ["9223372036854775807", "-1", "12"] {
            #expect(try reason(squad(answers: #"[{"text": "cat", "answer_start": "# + start + "}]"))?.contains("outside the context") == true, "\(start)")
        }
        for start in ["4.7", "true", #""4""#, "1e2"] {
            #expect(try reason(squad(answers: #"[{"text": "cat", "answer_start": "# + start + "}]"))?.contains("not an integer") == true, "\(start)")
        }
        #expect(try reason(squad(answers: #"{"text": "cat", "answer_start": 4}"#))?.contains("\"answers\" is not an array") == true)
        #expect(try reason(squad(qas: #""oops""#))?.contains("qas is not an array") == true)
        // A repeated question id (predictions and scores go by id; the task reader refuses it too).
        let twice = #"[{"id": "q1", "question": "?", "answers": []}, {"id": "q1", "question": "!", "answers": []}]"#
        #expect(try reason(squad(qas: twice)) == "question q1: duplicate id")
    }

    /// A record whose text is nothing but whitespace is refused with its line (the task readers
    /// refuse it in a file too), or skipped and counted with --skip-bad.
    @Test func blankTextsAreRefused() throws {
        let tsv = try failure(Array("label\ttext\npos\tgood\nneg\t \u{3000}\n".utf8), name: "b.tsv", options: ImportOptions(format: .tsv))
        guard case .invalidValue(_, 3, let reason)? = tsv else { Issue.record("got \(String(describing: tsv))"); return }
        #expect(reason.contains("empty text"))
        let json = try failure(#"{"text": "x"}"# + "\n" + #"{"text": ""}"# + "\n", name: "b.jsonl")
        guard case .invalidValue(_, 2, _)? = json else { Issue.record("got \(String(describing: json))"); return }
    }

    /// An empty label is refused like an empty text (it is no class), with file and line, in
    /// TSV, CSV and JSON Lines; --skip-bad skips and counts such a record.
    @Test func blankLabelsAreRefused() throws {
        let tsv = try failure("label\ttext\npos\tgood\n\thello\n", name: "l.tsv")
        guard case .invalidValue(let file, 3, let reason)? = tsv else { Issue.record("got \(String(describing: tsv))"); return }
        #expect(file.hasSuffix("l.tsv") && reason == "empty label (nothing but whitespace)")
        #expect(tsv!.description.contains("l.tsv:3: "))
        let csv = try failure("text,label\nbar,neg\nfoo,\n", name: "l.csv")
        guard case .invalidValue(_, 3, _)? = csv else { Issue.record("got \(String(describing: csv))"); return }
        let json = try failure(#"{"text": "x", "label": "pos"}"# + "\n" + #"{"text": "y", "label": " "}"# + "\n",
                               name: "l.jsonl", options: ImportOptions(labelField: "label"))
        guard case .invalidValue(_, 2, _)? = json else { Issue.record("got \(String(describing: json))"); return }

        let (store, dir) = try makeStore()
        writeFile(dir + "/s.csv", "text,label\nbar,neg\nfoo,\nbaz,pos\n")
        let report = try store.importFile(dir + "/s.csv", options: ImportOptions(skipBad: true))
        #expect(report.documents == 2 && report.skipped.count == 1)
        guard case .invalidValue(_, 3, _)? = report.skipped.first else { Issue.record("got \(report.skipped)"); return }
        #expect(try store.classificationExamples().all().map(\.label) == ["neg", "pos"])
    }

    /// Text with a NUL character is refused with its line: SQLite would keep it only up to the NUL.
    @Test func nulCharactersAreRefusedNotCut() throws {
        let lines = try failure(Array("a\u{0}b\nc\n".utf8), name: "n.txt", options: ImportOptions(format: .lines))
        guard case .invalidValue(_, 1, let reason)? = lines else { Issue.record("got \(String(describing: lines))"); return }
        #expect(reason.contains("NUL"))
        let json = try failure(#"{"text": "x"}"# + "\n" + #"{"text": "a\u0000b"}"# + "\n", name: "n.jsonl")
        guard case .invalidValue(_, 2, _)? = json else { Issue.record("got \(String(describing: json))"); return }
    }

    /// A JSON Lines label is a string or an integer; a boolean or a fraction is an error.
    @Test func jsonlLabelsAreStringsOrIntegers() throws {
        let options = ImportOptions(labelField: "label")
        for (value, kind) in [("true", "a boolean"), ("1e20", "the number"), ("{}", "an object")] {
            let e = try failure(#"{"text": "a", "label": "# + value + "}\n", name: "l.jsonl", options: options)
            guard case .invalidValue(_, 1, let reason)? = e else { Issue.record("\(value): got \(String(describing: e))"); continue }
            #expect(reason.contains(kind), "\(value): \(reason)")
        }
        let (store, dir) = try makeStore()
        writeFile(dir + "/ok.jsonl", #"{"text": "a", "label": 1}"# + "\n" + #"{"text": "b", "label": "neg"}"# + "\n")
        _ = try store.importFile(dir + "/ok.jsonl", options: options)
        #expect(try store.classificationExamples().all().map(\.label) == ["1", "neg"])
    }

    /// CoNLL drops a byte-order mark like the other formats, and a first line rejected under
    /// `--skip-bad` does not set the column count for the rest of the file.
    @Test func conllByteOrderMarkAndSkippedFirstLine() throws {
        let (store, dir) = try makeStore()
        writeFile(dir + "/bom.conll", "\u{FEFF}-DOCSTART- O\n\nEU B-ORG\nrejects O\n\n")
        _ = try store.importFile(dir + "/bom.conll")
        let tagged = try store.taggingExamples().all()
        #expect(tagged.map(\.text) == ["EU rejects"] && tagged.first?.spans == [EntitySpan(start: 0, end: 2, type: "ORG")])
        writeFile(dir + "/first.conll", "EU\nrejects B-ORG\n\nPeter B-PER\nBlackburn I-PER\n\n")
        let report = try store.importFile(dir + "/first.conll", options: ImportOptions(skipBad: true))
        #expect(report.documents == 1 && report.skipped.count == 1)
        let empty = try failure(" B-PER\nx O\n\n", name: "e.conll")
        guard case .invalidValue(_, 1, _)? = empty else { Issue.record("got \(String(describing: empty))"); return }
    }

    /// `-DOCSTART-` lines after the last sentence come back out of the export too (they used to
    /// have no sentence to go with and were dropped).
    @Test func conllTrailingDocstartRoundTrips() throws {
        let (store, dir) = try makeStore()
        let text = "-DOCSTART- -X- O\n\nEU B-ORG\nrejects O\n\n-DOCSTART- -X- O\n\nPeter B-PER\n\n-DOCSTART- -X- O\n\n-DOCSTART- -X- -X- O\n\n"
        writeFile(dir + "/trailing.conll", text)
        let report = try store.importFile(dir + "/trailing.conll")
        #expect(report.documents == 2)
        var out = ""
        _ = try store.export(format: .conll) { out += $0 }
        #expect(out == text)
    }

    /// A pipe is refused at once (it would be read by the hash alone, then parsed empty).
    @Test func nonRegularFilesAreRefused() throws {
        let (store, dir) = try makeStore()
        let fifo = dir + "/fifo.txt"
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect { try store.importFile(fifo) } throws: { "\($0)".contains("not a regular file") }
        #expect { try store.importFile(dir) } throws: { "\($0)".contains("not a regular file") }
        // A database in a folder that does not exist: SQLite's error, with the path.
        #expect { try CorpusStore(path: dir + "/no/such/folder/c.sqlite") } throws: { "\($0)".contains(dir + "/no/such/folder/c.sqlite") }
    }
}

/// A tagging task other than NER keeps its own name: stored, streamed and exported under it.
@Suite struct TaskImportTests {
    @Test func conllUnderItsOwnTask() throws {
        let (store, dir) = try makeStore()
        let products = "Buy B-PROD\niPhone I-PROD\nnow O\n\nSell O\nGalaxy B-PROD\n\n"
        let people = "Ada B-PER\nLovelace I-PER\nwrote O\n\n"
        writeFile(dir + "/products.conll", products)
        writeFile(dir + "/people.conll", people)
        _ = try store.importFile(dir + "/products.conll", options: ImportOptions(task: "products"))
        _ = try store.importFile(dir + "/people.conll")
        let tagged = try store.taggingExamples(task: "products").all()
        #expect(tagged.map(\.text) == ["Buy iPhone now", "Sell Galaxy"])
        #expect(tagged[0].spans == [EntitySpan(start: 0, end: 10, type: "PROD")])
        #expect(tagged[0].tags == ["B-PROD", "I-PROD", "O"])
        #expect(try store.taggingExamples().all().map(\.text) == ["Ada Lovelace wrote"])
        let stored = try store.read { try String.fetchAll($0, sql: "SELECT DISTINCT task FROM span ORDER BY task") }
        #expect(stored == ["ner", "products"])
        var out = ""
        _ = try store.export(format: .conll, taggingTask: "products") { out += $0 }
        #expect(out == products)
        var jsonl = ""
        _ = try store.export(format: .jsonl, taggingTask: "products") { jsonl += $0 }
        #expect(jsonl.contains("\"type\":\"PROD\"") && !jsonl.contains("\"type\":\"PER\""))
    }
}
