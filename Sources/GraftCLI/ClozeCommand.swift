import ArgumentParser
import Foundation
import GraftSupport
import GraftTasks

/// `graft cloze-qa PASSAGES... --out FILE`: cloze-style extractive questions generated from
/// unlabelled passages (a corpus JSON Lines file or plain text, one passage per line), written as
/// SQuAD v1.1 JSON for `graft finetune --train` (more QA training data from the corpora).
struct ClozeQACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloze-qa",
        abstract: "Generate cloze-style extractive QA examples (SQuAD v1.1 JSON) from unlabelled passages.",
        discussion: """
            Each question is one sentence of a passage with a year, a number or a capitalised name replaced by \
            "what year", "how many ..." or "what", ending in "?"; the replaced span is the answer (only spans that \
            occur once in their passage). Passages whose text equals a context of an --exclude SQuAD file are \
            skipped (keep dev and test contexts out of generated training data). Passages are visited in a \
            seeded random order until --max-questions are made. Example: \
            graft cloze-qa ../shared/data/corpora/wiki-vital-en.jsonl --exclude ../shared/data/qa/train.json \
            --exclude ../shared/data/qa/dev.json --out cloze.json
            """
    )

    @Argument(help: "Passage files: JSON Lines with a \"text\" (and optional \"title\") field, or plain text with one passage per line.")
    var passages: [String]

    @Option(help: "Output SQuAD v1.1 JSON file (written atomically).")
    var out: String

    @Option(help: "SQuAD files whose contexts are left out (repeatable).")
    var exclude: [String] = []

    @Option(name: .customLong("max-questions"), help: "Stop after this many questions.")
    var maxQuestions = 2_400

    @Option(name: .customLong("per-passage"), help: "Questions per passage at most (each from a different sentence).")
    var perPassage = 2

    @Option(help: "Seed of the passage order and of the choices within a passage.")
    var seed: UInt64 = 42

    @Flag(help: "Print one JSON object with the counts on stdout.")
    var json = false

    func validate() throws {
        guard maxQuestions >= 1, maxQuestions <= 10_000_000 else { throw ValidationError("--max-questions must be between 1 and 10,000,000") }
        guard perPassage >= 1, perPassage <= 1_000 else { throw ValidationError("--per-passage must be between 1 and 1,000") }
    }

    func run() throws {
        var excluded = Set<[UInt8]>()
        for file in exclude {
            for q in try SquadReader.read(file) { excluded.insert(Array(q.context.utf8)) }
        }
        let all = try PassageIndex(files: passages)   // passages are read back one at a time
        var rng = SplitMix64(seed: seed)
        var order = Array(0..<all.count)
        order.shuffle(using: &rng)
        let generator = ClozeQuestionGenerator(perPassage: perPassage)
        var questions: [QuestionExample] = []
        var kinds: [ClozeQuestionGenerator.Kind: Int] = [:]
        var skipped = 0, used = 0
        for i in order {
            if questions.count >= maxQuestions { break }
            let p = try all.passage(i)
            if excluded.contains(Array(p.text.utf8)) { skipped += 1; continue }
            var passageRNG = SplitMix64(seed: SplitMix64.mix(seed &+ UInt64(i)))
            let made = generator.questions(context: p.text, title: p.title, id: "cloze-\(i)", rng: &passageRNG)
            if !made.isEmpty { used += 1 }
            for q in made.prefix(maxQuestions - questions.count) {
                questions.append(q.example)
                kinds[q.kind, default: 0] += 1
            }
        }
        try AtomicFile.write(SquadWriter.json(questions), to: out)
        let counts = ClozeQuestionGenerator.Kind.allCases.map { "\($0.rawValue) \(kinds[$0, default: 0])" }.joined(separator: ", ")
        FileHandle.standardError.write(Data("""
            \(questions.count) questions (\(counts)) from \(used) of \(all.count) passages \
            (\(skipped) excluded as contexts of \(exclude.count) SQuAD file(s)); wrote \(out)\n
            """.utf8))
        if json {
            var fields: [(String, JSONValue)] = [("questions", .integer(questions.count)), ("passages", .integer(all.count)),
                                                 ("passages_used", .integer(used)), ("passages_excluded", .integer(skipped))]
            for k in ClozeQuestionGenerator.Kind.allCases { fields.append((k.rawValue, .integer(kinds[k, default: 0]))) }
            fields.append(("out", .string(out)))
            print(JSONValue.object(fields).serialized())
        }
    }
}
