import Foundation
import GraftSupport
import Testing
@testable import GraftTasks

/// Cloze-style QA generation (`graft cloze-qa`): questions, answers at exact offsets, the
/// sentence splitter, the uniqueness rule, and the SQuAD round trip.
@Suite struct ClozeQuestionTests {
    static let passage = """
        Zürich is the largest city in Switzerland. With an estimated population of 2,098,000 residents, it grew \
        quickly after 1850. It was the capital until it was surpassed by Bern in the federal era. St. Gallen \
        lies to the east of the Lake of Constance and was founded in 612 by Irish monks.
        """

    func allQuestions(_ text: String, id: String = "p", perPassage: Int = 10) -> [ClozeQuestionGenerator.Question] {
        var rng = SplitMix64(seed: 1)
        return ClozeQuestionGenerator(perPassage: perPassage).questions(context: text, title: "T", id: id, rng: &rng)
    }

    @Test func questionsReplaceTheirAnswerAndTheAnswerSitsAtItsOffsets() throws {
        let made = allQuestions(Self.passage)
        #expect(made.count == 4)   // one per sentence
        let scalars = Array(Self.passage.unicodeScalars)
        for q in made {
            let a = q.example.answers[0]
            // The answer's offsets are Unicode scalars of the context (the passage starts with "Zürich").
            #expect(String(String.UnicodeScalarView(scalars[a.start..<a.end])) == a.text)
            #expect(q.example.question.hasSuffix("?") && !q.example.question.contains(a.text))
            #expect(q.example.context == Self.passage && q.example.title == "T")
        }
        let byAnswer = Dictionary(uniqueKeysWithValues: made.map { ($0.example.answers[0].text, $0) })
        #expect(byAnswer["2,098,000"]?.kind == .number)
        #expect(byAnswer["2,098,000"]?.example.question == "With an estimated population of how many residents, it grew quickly after 1850?"
                || byAnswer["1850"]?.example.question == "With an estimated population of 2,098,000 residents, it grew quickly after what year?")
        #expect(byAnswer["Bern"]?.example.question == "It was the capital until it was surpassed by what in the federal era?")
        #expect(Set(made.map(\.example.id)) == ["p-0", "p-1", "p-2", "p-3"])
        // Every candidate of the first sentence: "Switzerland" ends the sentence; "Zürich" starts it (never asked).
        #expect(byAnswer["Switzerland"]?.example.question == "Zürich is the largest city in what?")
    }

    @Test func sentencesDoNotEndAtAbbreviationsAndAnswersMustBeUnique() {
        let s = Array("He moved to St. Louis in 1904. The U.S. Army came. Then came 3.5 more.\nNew line here".unicodeScalars)
        let sentences = ClozeQuestionGenerator.sentences(s).map { String(String.UnicodeScalarView(s[$0])) }
        #expect(sentences == ["He moved to St. Louis in 1904.", "The U.S. Army came.", "Then came 3.5 more.", "New line here"])
        let words = ClozeQuestionGenerator.words(s, in: 0..<s.count).map { String(String.UnicodeScalarView(s[$0.start..<$0.end])) }
        #expect(words.contains("3.5") && words.contains("1904") && words.contains("Louis"))
        // "Paris" occurs twice, so it is never an answer; "Lyon" once.
        let twice = "The old road from Paris to the coast ended at Lyon in the spring. Later the road to Paris was closed for good."
        let answers = allQuestions(twice).map(\.example.answers[0].text)
        #expect(!answers.contains("Paris") && answers.contains("Lyon"))
        #expect(ClozeQuestionGenerator.isNumber("2,098,000") && ClozeQuestionGenerator.isNumber("3.5")
                && !ClozeQuestionGenerator.isNumber("3,") && !ClozeQuestionGenerator.isNumber("x1"))
    }

    @Test func generatedQuestionsRoundTripThroughSquadJSON() throws {
        let made = allQuestions(Self.passage).map(\.example) + allQuestions("The river flows past Vienna and on to the sea. It was mapped in 1910 by the navy.", id: "q").map(\.example)
        let path = makeTemporaryDirectory() + "/cloze.json"
        try AtomicFile.write(SquadWriter.json(made), to: path)
        let back = try SquadReader.read(path)
        #expect(back.map(\.question) == made.map(\.question))
        #expect(back.map(\.answers) == made.map(\.answers))
        #expect(back.map(\.context) == made.map(\.context))
    }

    @Test func passageFilesAreReadOrRejectedWithTheirLine() throws {
        let jsonl = temporaryFile("p.jsonl", "{\"title\": \"A\", \"text\": \"One two.\"}\n\n{\"text\": \"Three.\"}\n")
        #expect(try PassageReader.read(jsonl).map(\.text) == ["One two.", "Three."])
        #expect(try PassageReader.read(jsonl).map(\.title) == ["A", nil])
        let plain = temporaryFile("p.txt", "first passage\n\nsecond passage\n")
        #expect(try PassageReader.read(plain).map(\.text) == ["first passage", "second passage"])
        let bad = temporaryFile("bad.jsonl", "{\"text\": \"ok\"}\n{\"title\": \"no text\"}\n")
        #expect(taskError { _ = try PassageReader.read(bad) } == .malformed(TaskLocation(file: bad, line: 2), reason: "no string \"text\" field"))
        let broken = temporaryFile("broken.jsonl", "{\"text\": \"ok\"}\n{\"text\": \n")
        let e = taskError { _ = try PassageReader.read(broken) }
        #expect(e.map { "\($0)".contains(broken) && "\($0)".contains("2") } == true, "\(String(describing: e))")
    }

    @Test func passageIndexReadsEachPassageBackByOffsetAcrossFiles() throws {
        // BOM, CRLF, blank lines, a blank JSON text, non-ASCII text, no final newline.
        let a = temporaryFile("a.jsonl", "\u{FEFF}{\"title\": \"A\", \"text\": \"Zoë went to Zürich.\"}\r\n\n{\"text\": \"  \"}\n{\"text\": \"Three.\"}")
        let b = temporaryFile("b.txt", "\n\u{FEFF}plain one\r\n   \nplain two — dash\n")
        let index = try PassageIndex(files: [a, b])
        #expect(index.count == 4)
        let read = try (0..<index.count).reversed().map { try index.passage($0) }.reversed()
        #expect(read.map(\.text) == ["Zoë went to Zürich.", "Three.", "\u{FEFF}plain one", "plain two — dash"])
        #expect(read.map(\.title) == ["A", nil, nil, nil])
        #expect(read.map(\.origin) == ["\(a):1", "\(a):4", "\(b):2", "\(b):4"])
        #expect(try PassageReader.read(a) + PassageReader.read(b) == Array(read))
        // A file cut short after indexing is reported, not misread.
        let h = try #require(FileHandle(forWritingAtPath: b))
        try h.truncate(atOffset: 3)
        try h.close()
        #expect(taskError { _ = try index.passage(3) } != nil)
        #expect(taskError { _ = try PassageIndex(files: [a, b + ".missing"]) } == .unreadable(file: b + ".missing", reason: "no such file"))
    }
}
