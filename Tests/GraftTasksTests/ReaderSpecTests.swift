import Foundation
import GraftCorpus
import Testing
@testable import GraftTasks

@Suite struct ReaderTests {
    let sentiment = try! LabelSet(["neg", "pos"])

    @Test func tsvReadsAndNamesFileAndLine() throws {
        let path = temporaryFile("s.tsv", "label\ttext\npos\tGreat\tfun, \"really\"\r\nneg\tDull.\n\n")
        let examples = try TSVReader.read(path, labels: sentiment)
        #expect(examples.map(\.text) == ["Great\tfun, \"really\"", "Dull."])
        #expect(examples.map(\.label) == ["pos", "neg"])
        let bad = temporaryFile("b.tsv", "pos\tok\nmeh\tso-so\n")
        #expect(taskError { _ = try TSVReader.read(bad, labels: sentiment) }
                == .unknownLabel(TaskLocation(file: bad, line: 2), label: "meh", known: ["neg", "pos"]))
        let noTab = temporaryFile("c.tsv", "pos ok\n")
        #expect(taskError { _ = try TSVReader.read(noTab) }?.description.hasPrefix("\(noTab):1: ") == true)
        let empty = temporaryFile("d.tsv", "pos\tok\nneg\t\n")
        let reason = "empty document (no text after the TAB, or only whitespace)"
        #expect(taskError { _ = try TSVReader.read(empty) } == .malformed(TaskLocation(file: empty, line: 2), reason: reason))
        let blank = temporaryFile("e.tsv", "pos\tok\nneg\t \u{3000}\t\n")
        #expect(taskError { _ = try TSVReader.read(blank) } == .malformed(TaskLocation(file: blank, line: 2), reason: reason))
        #expect(taskError { _ = try TSVReader.read("/nonexistent/x.tsv") } == .unreadable(file: "/nonexistent/x.tsv", reason: "no such file"))
    }

    /// A first line naming columns other than exactly label<TAB>text, and a line whose separator
    /// is a no-break space, are errors that say so.
    @Test func tsvHeaderAndSeparatorErrorsSayWhatIsWrong() throws {
        let reason = "line 1 looks like a header (\"label\", \"text\", \"source\"): the file must be label<TAB>text lines, and only a first line of exactly \"label<TAB>text\" is skipped as a header (each line is split at its first TAB, so a further column would be read as part of the text); remove the other columns, or the header"
        let extra = temporaryFile("h.tsv", "label\ttext\tsource\npos\tGreat\tweb\n")
        #expect(taskError { _ = try TSVReader.read(extra, labels: sentiment) } == .malformed(TaskLocation(file: extra, line: 1), reason: reason))
        #expect(taskError { _ = try TSVReader.read(extra) } == .malformed(TaskLocation(file: extra, line: 1), reason: reason))
        let swapped = temporaryFile("w.tsv", "Text\tLabel\nGreat\tpos\n")
        #expect(taskError { _ = try TSVReader.read(swapped, labels: sentiment) }?.description.contains("line 1 looks like a header (\"Text\", \"Label\")") == true)
        // A first line whose label is a known class is data, whatever its text.
        #expect(try TSVReader.read(temporaryFile("d.tsv", "pos\ttext\n"), labels: sentiment).map(\.text) == ["text"])
        let nbsp = temporaryFile("n.tsv", "pos\tok\nneg\u{a0}Dull.\n")
        #expect(taskError { _ = try TSVReader.read(nbsp) } == .malformed(TaskLocation(file: nbsp, line: 2),
                reason: "expected \"label<TAB>text\", found no TAB (the line has a no-break space (U+00A0) where a TAB was expected?)"))
        let conll = temporaryFile("n.txt", "Patient\u{a0}O\n")
        #expect(taskError { _ = try CoNLLReader.read(conll) } == .malformed(TaskLocation(file: conll, line: 1),
                reason: "expected a token and a tag separated by spaces or a TAB, found one column \"Patient\u{a0}O\" (it holds a no-break space (U+00A0), which does not separate columns)"))
        #expect(unexpectedWhitespace(in: "a\u{3000}b") == "an ideographic space (U+3000)" && unexpectedWhitespace(in: "a b\tc") == nil)
    }

    @Test func conllReadsBothLayouts() throws {
        let four = temporaryFile("a.txt", "-DOCSTART- -X- -X- O\n\nZoë NNP B-NP B-PER\nÅngström NNP I-NP I-PER\nflew VBD B-VP O\n\nParis NNP B-NP B-LOC\n")
        let s = try CoNLLReader.read(four)
        #expect(s.count == 2)
        #expect(s[0].text == "Zoë Ångström flew")
        #expect(s[0].entities == [CharacterSpan(start: 0, end: 12, type: "PER")])
        #expect(s[0].id == "\(four):3")
        #expect(s[1].entities == [CharacterSpan(start: 0, end: 5, type: "LOC")])
        let two = temporaryFile("b.txt", "@user\tO\nloves\tO\nNew\tB-geo-loc\nYork\tI-geo-loc\n\n")
        let t = try CoNLLReader.read(two)
        #expect(t.count == 1 && t[0].entities == [CharacterSpan(start: 12, end: 20, type: "geo-loc")])
        #expect(scalarSlice(t[0].text, 12..<20) == "New York")
    }

    @Test func conllErrorsNameFileAndLine() throws {
        let labels = try LabelSet.tagging(entityTypes: ["PER"], scheme: .iob2)
        let unknown = temporaryFile("u.txt", "Ann B-PER\nsmiled O\n\nBob B-ORG\n")
        #expect(taskError { _ = try CoNLLReader.read(unknown, labels: labels) }
                == .unknownLabel(TaskLocation(file: unknown, line: 4), label: "B-ORG", known: labels.labels))
        let oneColumn = temporaryFile("m.txt", "Ann B-PER\nsmiled\n")
        #expect(taskError { _ = try CoNLLReader.read(oneColumn) }?.description.hasPrefix("\(oneColumn):2: ") == true)
        let invalid = temporaryFile("i.txt", "The O\nbig O\nApple I-ORG\n")
        #expect(taskError { _ = try CoNLLReader.read(invalid) }
                == .invalidTagSequence(TaskLocation(file: invalid, line: 3), reason: "\"I-ORG\" cannot follow \"O\""))
        // A row with other columns than the first (its chunk tag would be read as the entity tag).
        let ragged = temporaryFile("r.txt", "Ann NNP B-NP B-PER\nsmiled VBD B-VP O\n\nBob B-PER\n")
        #expect(taskError { _ = try CoNLLReader.read(ragged) }?.description == "\(ragged):4: 2 columns, where line 1 has 4")
        let repaired = try CoNLLReader.read(invalid, invalidTags: .repair)
        #expect(repaired[0].tags == ["O", "O", "B-ORG"] && repaired[0].entities == [CharacterSpan(start: 8, end: 13, type: "ORG")])
    }

    @Test func squadChecksAnswersAgainstTheContext() throws {
        let good = temporaryFile("q.json", #"{"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "Ζεύς ruled from Olympus\u00a0mountain.", "qas": [{"id": "a1", "question": "Where?", "answers": [{"text": "Olympus\u00a0mountain", "answer_start": 16}]}]}]}]}"#)
        let q = try SquadReader.read(good)
        #expect(q.count == 1 && q[0].answers == [AnswerSpan(text: "Olympus\u{a0}mountain", start: 16)])
        #expect(scalarSlice(q[0].context, q[0].answers[0].start..<q[0].answers[0].end) == q[0].answers[0].text)
        let bad = temporaryFile("b.json", #"{"data": [{"paragraphs": [{"context": "Zeus ruled.", "qas": [{"id": "x9", "question": "Who?", "answers": [{"text": "Zeus", "answer_start": 1}]}]}]}]}"#)
        let e = taskError { _ = try SquadReader.read(bad) }
        #expect(e?.description.contains("\(bad) (question x9)") == true)
        #expect(e?.description.contains("does not match the context") == true)
        // Starts past the context, near Int.max or fractional: errors naming the question, not traps.
        for start in ["9223372036854775807", "-3", "12"] {
            let f = temporaryFile("o.json", #"{"data": [{"paragraphs": [{"context": "Zeus ruled.", "qas": [{"id": "x1", "question": "Who?", "answers": [{"text": "Zeus", "answer_start": "# + start + "}]}]}]}]}")
            #expect(taskError { _ = try SquadReader.read(f) }?.description.contains("lies outside the context") == true, "\(start)")
        }
        let fraction = temporaryFile("f.json", #"{"data": [{"paragraphs": [{"context": "Zeus ruled.", "qas": [{"id": "x1", "question": "Who?", "answers": [{"text": "Zeus", "answer_start": 1.5}]}]}]}]}"#)
        #expect(taskError { _ = try SquadReader.read(fraction) }?.description.contains("answer_start") == true)
        // An answer_start of another JSON type: the file, the question and what it must be.
        for (start, shown) in [("\"36\"", "\"36\" (a string)"), ("1.5", "1.5 (a fraction)"), ("true", "true (a boolean)"), ("null", "null"), ("[1]", "an array or object")] {
            let f = temporaryFile("t.json", #"{"data": [{"paragraphs": [{"context": "Zeus ruled.", "qas": [{"id": "x1", "question": "Who?", "answers": [{"text": "Zeus", "answer_start": 0}]}, {"id": "x2", "question": "Who?", "answers": [{"text": "Zeus", "answer_start": 0}, {"text": "Zeus", "answer_start": "# + start + "}]}]}]}]}")
            #expect(taskError { _ = try SquadReader.read(f) } == .malformed(TaskLocation(file: f, item: "question x2"),
                    reason: "answers[1].answer_start is \(shown): it must be an integer, the answer's character offset in the context (Unicode scalars from 0)"), "\(start)")
        }
        let missing = temporaryFile("m.json", #"{"data": [{"paragraphs": [{"context": "Zeus ruled.", "qas": [{"id": "x1", "question": "Who?", "answers": [{"text": "Zeus"}]}]}]}]}"#)
        #expect(taskError { _ = try SquadReader.read(missing) }?.description.contains("missing key \"answer_start\"") == true)
        #expect(AnswerSpan(text: "Zeus", start: Int.max).end == Int.max)
        // Not JSON: the line of the problem.
        let broken = temporaryFile("j.json", "{\"data\": [\n  {\"paragraphs\": [}\n]}\n")
        #expect(taskError { _ = try SquadReader.read(broken) }?.description.hasPrefix("\(broken):2: ") == true, "\(String(describing: taskError { _ = try SquadReader.read(broken) }))")
    }

    /// Many slices of one text in one pass equal one ``scalarSlice(_:_:)`` each (clamped alike).
    @Test func scalarSlicesEqualScalarSlice() {
        let text = "Ζεύς 👨‍👩‍👧 ruled e\u{301} from Olympus"
        let ranges = [0..<4, 5..<10, 3..<3, 20..<99, -2..<1, 9..<12]
        #expect(scalarSlices(text, ranges) == ranges.map { scalarSlice(text, $0) })
    }

    @Test func corpusStoreGivesTheSameExamples() throws {
        let dir = makeTemporaryDirectory()
        let store = try CorpusStore(path: dir + "/c.sqlite")
        let ner = packageRoot + "/tasks/samples/ner-dev.txt"
        _ = try store.importFile(ner, options: ImportOptions(format: .conll, split: .dev, deduplicate: false, name: "ner"))
        let fromFile = try CoNLLReader.read(ner)
        let fromStore = try StoreReader.taggedSentences(store, path: dir + "/c.sqlite", StoreSelection(source: "ner", split: .dev))
        #expect(fromStore.count == fromFile.count)
        for (a, b) in zip(fromFile, fromStore) {
            #expect(a.text == b.text && a.entities == b.entities && a.tags == b.tags && a.wordOffsets == b.wordOffsets)
        }
        let tsv = packageRoot + "/tasks/samples/sentiment-dev.tsv"
        _ = try store.importFile(tsv, options: ImportOptions(format: .tsv, split: .dev, deduplicate: false, name: "rt"))
        let texts = try StoreReader.textExamples(store, path: dir, StoreSelection(source: "rt", split: .dev), labels: sentiment)
        let fileTexts = try TSVReader.read(tsv, labels: sentiment)
        #expect(texts.map(\.text) == fileTexts.map(\.text) && texts.map(\.label) == fileTexts.map(\.label))
    }

    /// Stored CoNLL tags are read in the task's scheme: IOB2 rows under a BIOES task and BIOES
    /// rows under an IOB2 task give the same entities, with the task's tags.
    @Test func storedTagsAreConvertedToTheTaskScheme() throws {
        let dir = makeTemporaryDirectory()
        let store = try CorpusStore(path: dir + "/s.sqlite")
        let iob = temporaryFile("drug-iob.conll", "Take O\nAspirin B-DRUG\n100 B-DOSE\nmg I-DOSE\n\n")
        let bioes = temporaryFile("drug-bioes.conll", "Take O\nAspirin S-DRUG\n100 B-DOSE\nmg E-DOSE\n\n")
        _ = try store.importFile(iob, options: ImportOptions(format: .conll, task: "drug", split: .train, name: "iob"))
        _ = try store.importFile(bioes, options: ImportOptions(format: .conll, task: "drug", split: .dev, name: "bioes", tagScheme: .bioes))
        let entities = [CharacterSpan(start: 5, end: 12, type: "DRUG"), CharacterSpan(start: 13, end: 19, type: "DOSE")]
        for scheme in TagScheme.allCases {
            let labels = try LabelSet.tagging(entityTypes: ["DRUG", "DOSE"], scheme: scheme)
            let expected = scheme == .bioes ? ["O", "S-DRUG", "B-DOSE", "E-DOSE"] : ["O", "B-DRUG", "B-DOSE", "I-DOSE"]
            for split in [SplitPart.train, .dev] {
                let read = try StoreReader.taggedSentences(store, path: "s.sqlite", StoreSelection(split: split, task: "drug"),
                                                           labels: labels, scheme: scheme)
                #expect(read.map(\.tags) == [expected], "\(scheme) \(split)")
                #expect(read.map(\.entities) == [entities], "\(scheme) \(split)")
            }
        }
        // A stored IOB1 sequence is still an invalid IOB2 sequence to convert from (or repaired).
        let iob1 = temporaryFile("drug-iob1.conll", "Take O\nAspirin I-DRUG\n\n")
        _ = try store.importFile(iob1, options: ImportOptions(format: .conll, task: "drug", split: .test, name: "iob1"))
        let selection = StoreSelection(split: .test, task: "drug")
        #expect(taskError { _ = try StoreReader.taggedSentences(store, path: "s.sqlite", selection, scheme: .bioes) }?.description
                .contains("token 2: \"I-DRUG\" cannot follow \"O\" (the stored tags are IOB2, read before conversion to BIOES)") == true)
        #expect(try StoreReader.taggedSentences(store, path: "s.sqlite", selection, scheme: .bioes, invalidTags: .repair).map(\.tags)
                == [["O", "S-DRUG"]])
    }
}

@Suite struct SpecTests {
    @Test func shippedSpecsParse() throws {
        for name in ["sentiment-rt", "ner-conll2003", "ner-wnut16", "qa-shared", "sentiment-sample", "ner-sample"] {
            let spec = try TaskSpec.load(packageRoot + "/tasks/\(name).toml", environment: [:])
            #expect(spec.name == name)
            _ = try TaskRegistry.plugin(for: spec)
        }
        let ner = try TaskSpec.load(packageRoot + "/tasks/ner-conll2003.toml", environment: ["GRAFT_DATA_DIR": "/data"])
        #expect(ner.kind == .tokenClassification && ner.labels?.count == 9 && ner.window == WindowOptions(maxLength: 128, stride: 32))
        #expect(ner.train == .file("/data/ner/conll2003/train.txt"))
        #expect(ner.training.learningRate == 5e-5 && ner.training.epochs == 2)
        let sample = try TaskSpec.load(packageRoot + "/tasks/ner-sample.toml", environment: [:])
        #expect(sample.train == .file(packageRoot + "/tasks/samples/ner-train.txt"))
        let examples = try TaggingPlugin(spec: sample).examples(from: sample.train!)
        #expect(examples.count == 300)
        let sentiment = try TaskSpec.load(packageRoot + "/tasks/sentiment-sample.toml", environment: [:])
        #expect(try TextClassificationPlugin(spec: sentiment).examples(from: sentiment.dev!).count == 150)
    }

    func error(_ toml: String) -> TaskError? {
        taskError { _ = try TaskSpec.parse(toml, path: "/specs/x.toml", environment: [:]) }
    }

    @Test func errorsNameFileAndKey() {
        #expect(error("kind = \"ner\"\nlabels = [\"PER\"]\n") == .missingKey(file: "/specs/x.toml", key: "name"))
        #expect(error("name = \"x\"\nkind = \"sentiment\"\n") == .missingKey(file: "/specs/x.toml", key: "labels"))
        #expect(error("name = \"x\"\nkind = \"qa\"\n[train]\nepochz = 3\n") == .unknownKey(file: "/specs/x.toml", key: "train.epochz", suggestion: "train.epochs"))
        #expect(error("name = \"x\"\nkind = \"qa\"\nlr = 0.1\n") == .unknownKey(file: "/specs/x.toml", key: "lr", suggestion: "train.lr"))
        #expect(error("name = \"x\"\nkind = \"qa\"\n[data]\ntrian = \"a\"\n") == .unknownKey(file: "/specs/x.toml", key: "data.trian", suggestion: "data.train"))
        #expect(error("name = \"x\"\nkind = \"qa\"\n[train]\nepochs = \"three\"\n")
                == .badValue(file: "/specs/x.toml", key: "train.epochs", value: "\"three\" (a string)", expected: "an integer"))
        #expect(error("name = \"x\"\nkind = \"qa\"\n[train]\nepochs = 0\n")
                == .badValue(file: "/specs/x.toml", key: "train.epochs", value: "0 (an integer)", expected: "an integer ≥ 1"))
        #expect(error("name = \"x\"\nkind = \"qa\"\n[train]\nlr = true\n")?.description.contains("\"train.lr\"") == true)
        #expect(error("name = \"x\"\nkind = \"parsing\"\n")?.description.contains("key \"kind\"") == true)
        #expect(error("name = \"x\"\nkind = \"ner\"\nlabels = [\"PER\"]\nscheme = \"bilou\"\n")?.description.contains("key \"scheme\"") == true)
        #expect(error("name = \"x\"\nkind = \"qa\"\n[data]\ntrain = \"${NOPE}/a.json\"\n")?.description.contains("data.train") == true)
        if case .specSyntax(let file, let line, _, _)? = error("name = \"x\"\nkind = = 3\n") {
            #expect(file == "/specs/x.toml" && line == 2)
        } else {
            Issue.record("expected a syntax error")
        }
    }

    /// HuggingFace and spaCy names of keys suggest Graft's key, in whichever table it is,
    /// before edit distance would (`learning_rate` is closer to `warmup_ratio`).
    @Test func otherToolsKeyNamesSuggestGraftsKeys() {
        let head = "name = \"x\"\nkind = \"ner\"\nlabels = [\"PER\"]\n"
        for (written, expected) in [
            ("[train]\nlearning_rate = 1e-4\n", ("train.learning_rate", "train.lr")),
            ("learning_rate = 1e-4\n", ("learning_rate", "train.lr")),
            ("[train]\nnum_train_epochs = 3\n", ("train.num_train_epochs", "train.epochs")),
            ("[train]\nper_device_train_batch_size = 16\n", ("train.per_device_train_batch_size", "train.batch_size")),
            ("[train]\ntrain_batch_size = 16\n", ("train.train_batch_size", "train.batch_size")),
            ("[train]\ngradient_accumulation_steps = 2\n", ("train.gradient_accumulation_steps", "train.gradient_accumulation")),
            ("[train]\nwarmup_proportion = 0.1\n", ("train.warmup_proportion", "train.warmup_ratio")),
            ("[train]\nmax_seq_length = 256\n", ("train.max_seq_length", "model.max_length")),
            ("[model]\ndoc_stride = 64\n", ("model.doc_stride", "model.stride")),
            ("[model]\nmodel_name_or_path = \"m\"\n", ("model.model_name_or_path", "model.base")),
            ("[train]\nLearning_Rate = 1e-4\n", ("train.Learning_Rate", "train.lr")),
        ] {
            #expect(error(head + written) == .unknownKey(file: "/specs/x.toml", key: expected.0, suggestion: expected.1), "\(written)")
        }
        #expect(error(head + "[train]\nlearning_rate = 1e-4\n")?.description
                == "/specs/x.toml: unknown key \"train.learning_rate\" (did you mean \"train.lr\"?)")
        // Every alias names a key that exists.
        for (alias, key) in TaskSpec.keyAliases {
            #expect(TaskSpec.allKeys.contains(key), "\(alias) → \(key)")
        }
    }

    /// A tagging spec listing tags without "O" is refused (its entries would be taken for entity
    /// types and expanded to `B-B-DRUG`), naming the key and the types to write instead.
    @Test func tagNamesWithoutOAreRefused() throws {
        let spec = "name = \"x\"\nkind = \"ner\"\nlabels = [\"B-DRUG\", \"I-DRUG\", \"B-DOSE\", \"I-DOSE\"]\n"
        let expected = "entity types such as \"DRUG\", \"DOSE\": a list without \"O\" holds entity types, which the iob2 scheme expands to tags; a full tag list must include \"O\""
        #expect(error(spec) == .badValue(file: "/specs/x.toml", key: "labels", value: "\"B-DRUG\"", expected: expected))
        #expect(error(spec)?.description.hasPrefix("/specs/x.toml: key \"labels\" has value \"B-DRUG\", expected entity types such as") == true)
        let bioes = "name = \"x\"\nkind = \"ner\"\nscheme = \"bioes\"\nlabels = [\"S-DRUG\", \"B-DRUG\", \"E-DRUG\", \"CHEM\"]\n"
        #expect(error(bioes)?.description.contains("has value \"B-DRUG\", expected entity types such as \"DRUG\", \"CHEM\"") == true)
        // Entity types, and full tag lists with "O", still parse.
        let types = try TaskSpec.parse("name = \"x\"\nkind = \"ner\"\nlabels = [\"DRUG\", \"E-MAIL\"]\n", path: "/specs/x.toml", environment: [:])
        #expect(types.labels?.labels == ["O", "B-DRUG", "I-DRUG", "B-E-MAIL", "I-E-MAIL"])
        let tags = try TaskSpec.parse("name = \"x\"\nkind = \"ner\"\nlabels = [\"O\", \"B-DRUG\", \"I-DRUG\"]\n", path: "/specs/x.toml", environment: [:])
        #expect(tags.labels?.labels == ["O", "B-DRUG", "I-DRUG"])
    }

    /// `[model] pooling` (sequence classification only) and `[train] patience` (alias
    /// `early_stopping_patience`, not both).
    @Test func poolingAndPatienceKeys() throws {
        func parse(_ toml: String) throws -> TaskSpec { try TaskSpec.parse(toml, path: "/specs/x.toml", environment: [:]) }
        let head = "name = \"x\"\nkind = \"sentiment\"\nlabels = [\"neg\", \"pos\"]\n"
        #expect(try parse(head).pooling == nil && parse(head).training.patience == nil)
        #expect(try parse(head + "[model]\npooling = \"mean\"\n").pooling == .mean)
        #expect(try parse(head + "[model]\npooling = \"cls\"\n").pooling == .pooler)
        #expect(try parse(head + "[train]\npatience = 3\n").training.patience == 3)
        #expect(try parse(head + "[train]\nearly_stopping_patience = 2\n").training.patience == 2)
        #expect(error(head + "[model]\npooling = \"max\"\n")?.description.contains("model.pooling") == true)
        #expect(error("name = \"x\"\nkind = \"ner\"\nlabels = [\"PER\"]\n[model]\npooling = \"mean\"\n")?.description.contains("model.pooling") == true)
        #expect(error(head + "[train]\npatience = 0\n") == .badValue(file: "/specs/x.toml", key: "train.patience", value: "0 (an integer)", expected: "an integer ≥ 1"))
        #expect(error(head + "[train]\npatience = 2\nearly_stopping_patience = 2\n")?.description.contains("train.early_stopping_patience") == true)
        #expect(error(head + "pooling = \"mean\"\n") == .unknownKey(file: "/specs/x.toml", key: "pooling", suggestion: "model.pooling"))
    }

    @Test func jsonSpecsAndStoreSelections() throws {
        let spec = try TaskSpec.parse(#"{"name": "j", "kind": "sentiment", "labels": ["a", "b"], "data": {"store": "c.sqlite", "source": "rt", "task": "stars"}}"#,
                                      path: "/specs/j.json", environment: [:])
        #expect(spec.train == .store(path: "/specs/c.sqlite", selection: StoreSelection(source: "rt", split: .train, task: "stars")))
        #expect(spec.dev == .store(path: "/specs/c.sqlite", selection: StoreSelection(source: "rt", split: .dev, task: "stars")))
        #expect(throws: TaskError.self) { try TaskRegistry.plugin(named: "summarization") }
    }
}
