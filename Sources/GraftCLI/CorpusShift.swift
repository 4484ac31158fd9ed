import ArgumentParser
import Foundation
import GraftCorpus
import GraftEngine
import GraftModels
import GraftSupport
import GraftTasks

/// `graft corpus shift SOURCE TARGET --model DIR`: how far apart two sets of texts are for a
/// model (``CorpusShift``): MMD between their sentence embeddings (RBF with the median-heuristic
/// bandwidth, and linear), vocabulary overlap (types and tokens, Jaccard and coverage), and each
/// set's unknown-piece rate and pieces per word under the model's tokenizer.
struct CorpusShiftCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shift",
        abstract: "Measure the distance between two sets of texts for a model (MMD of sentence embeddings, vocabulary overlap, [UNK] rate).",
        discussion: """
            SOURCE and TARGET are files, read by extension or --format: TSV (label<TAB>text; .tsv), CoNLL \
            (token and tag columns, sentences split by blank lines: the tokens joined by spaces; .conll, or \
            a .txt whose first line has a tag in its last column), or text (one document per line); or a \
            corpus store selection DB.sqlite[#train|dev|test] (its documents, of that split part). \
            --max-texts N keeps a seeded sample of N texts per side (the MMD kernels are N x N).
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case auto, tsv, conll, text }

    @Argument(help: "The source texts (file or DB.sqlite[#part]).") var source: String
    @Argument(help: "The target texts (file or DB.sqlite[#part]).") var target: String
    @Option(help: "A model directory with a BERT encoder (its sentence embeddings and tokenizer).") var model: String
    @Option(help: "Input format of both files (default: auto, from the extension and the first line).") var format: Format = .auto
    @Option(name: .customLong("max-texts"), help: "At most this many texts per side (a seeded sample).") var maxTexts: Int = 2000
    @Option(help: "Seed of the samples.") var seed: UInt64 = 42
    @Option(name: .customLong("batch-size"), help: "Texts per forward pass.") var batchSize: Int = 32
    @Option(help: "Threads (default: GRAFT_THREADS, else all cores).") var threads: Int?
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard maxTexts >= 1 else { throw ValidationError("--max-texts must be at least 1") }
    }

    func run() throws {
        try Engine.withThreads(threads ?? Engine.defaultThreads) {
            let all = (try texts(source), try texts(target))
            let s = seededSample(all.0, limit: maxTexts, seed: seed), t = seededSample(all.1, limit: maxTexts, seed: seed &+ 1)
            printError("measuring \(s.count) of \(all.0.count) source and \(t.count) of \(all.1.count) target texts with \(model)")
            let embedder: SentenceEmbedder
            do { embedder = try SentenceEmbedder(directory: model, batchSize: batchSize) } catch { throw CLIError("\(error)") }
            let shift: CorpusShift
            do { shift = try CorpusShift.measure(source: s, target: t, embedder: embedder) } catch let e as ModelError { throw CLIError("\(e)") }
            func side(_ p: TextSetProfile, _ total: Int) -> JSONValue {
                .object([("texts", .integer(p.texts)), ("texts_available", .integer(total)), ("words", .integer(p.words)),
                         ("types", .integer(p.types)), ("pieces", .integer(p.pieces)), ("unk_rate", .number(p.unknownRate)),
                         ("pieces_per_word", .number(p.piecesPerWord))])
            }
            if json {
                print(JSONValue.object([
                    ("source", .string(source)), ("target", .string(target)), ("model", .string(model)), ("seed", .integer(seed)),
                    ("mmd_rbf", .number(shift.mmdRBF)), ("rbf_gamma", .number(shift.rbfGamma)), ("mmd_linear", .number(shift.mmdLinear)),
                    ("type_jaccard", .number(shift.typeJaccard)), ("type_coverage", .number(shift.typeCoverage)),
                    ("token_jaccard", .number(shift.tokenJaccard)), ("token_coverage", .number(shift.tokenCoverage)),
                    ("source_stats", side(shift.source, all.0.count)), ("target_stats", side(shift.target, all.1.count)),
                ]).serialized())
                return
            }
            func row(_ name: String, _ a: String, _ b: String) -> String {
                name.padding(toLength: 22, withPad: " ", startingAt: 0) + a.padding(toLength: 14, withPad: " ", startingAt: 0) + b
            }
            var lines = [row("", "source", "target")]
            for (name, f) in [("texts", { (p: TextSetProfile) in String(p.texts) }), ("words", { String($0.words) }), ("types", { String($0.types) }),
                              ("[UNK] rate", { String(format: "%.4f", $0.unknownRate) }), ("pieces per word", { String(format: "%.3f", $0.piecesPerWord) })] {
                lines.append(row(name, f(shift.source), f(shift.target)))
            }
            lines.append(String(format: "MMD² rbf (γ %.4g)      %.6f", shift.rbfGamma, shift.mmdRBF))
            lines.append(String(format: "MMD² linear           %.6f", shift.mmdLinear))
            lines.append(String(format: "types: Jaccard %.4f, target coverage %.4f", shift.typeJaccard, shift.typeCoverage))
            lines.append(String(format: "tokens: Jaccard %.4f, target coverage %.4f", shift.tokenJaccard, shift.tokenCoverage))
            print(lines.joined(separator: "\n"))
        }
    }

    /// The texts of a file or corpus-store selection.
    func texts(_ spec: String) throws -> [String] {
        let parts = spec.split(separator: "#", maxSplits: 1).map(String.init)
        if let path = parts.first, path.hasSuffix(".sqlite") || path.hasSuffix(".db") {
            var part: SplitPart?
            if parts.count == 2 {
                guard let p = SplitPart(rawValue: parts[1]) else { throw CLIError("\(spec): the split part must be train, dev or test") }
                part = p
            }
            try requireCorpusDatabase(path)
            let store = try CorpusStore(path: path)
            var out: [String] = []
            var it = store.documents(DocumentFilter(part: part)).makeIterator()
            while let d = try it.next() { out.append(d.text) }
            guard !out.isEmpty else { throw CLIError("\(spec): no documents") }
            return out
        }
        let chosen = format == .auto ? try Self.detect(spec) : format
        let out: [String]
        do {
            switch chosen {
            case .tsv: out = try TSVReader.read(spec).map(\.text)
            case .conll: out = try CoNLLReader.read(spec, invalidTags: .repair).map(\.text)
            case .text, .auto: out = try readDocuments([spec]).map(\.text).filter { !isBlank($0) }
            }
        } catch let e as TaskError { throw CLIError("\(e)") }
        guard !out.isEmpty else { throw CLIError("\(spec): no texts") }
        return out
    }

    /// `.tsv` → TSV; `.conll`, or a first non-empty line whose last column is a tag (`O`, `B-X`, …) → CoNLL; else text.
    static func detect(_ path: String) throws -> Format {
        if path.hasSuffix(".tsv") { return .tsv }
        if path.hasSuffix(".conll") { return .conll }
        let reader: LineReader
        do { reader = try LineReader.open(path) } catch { throw CLIError("\(error)") }
        while let line = try reader.nextString() {
            let columns = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if columns.isEmpty { continue }
            guard columns.count >= 2, let tag = columns.last else { return .text }
            let isTag = tag == "O" || (tag.count > 2 && "BIESLU".contains(tag.first!) && tag.dropFirst().first == "-")
            return isTag ? .conll : .text
        }
        return .text
    }
}
