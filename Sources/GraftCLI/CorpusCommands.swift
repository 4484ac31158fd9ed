import ArgumentParser
import Foundation
import GraftCorpus
import GraftSupport

/// `graft corpus ...`: the corpus store.
struct CorpusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "corpus",
        abstract: "Manage a corpus database: import, statistics, splits, search, export, runs.",
        subcommands: [
            CorpusAdd.self, CorpusStatsCommand.self, CorpusSplit.self, CorpusSearch.self, CorpusExport.self, CorpusTokenize.self,
            CorpusRuns.self, CorpusRemove.self, CorpusShiftCommand.self,
        ]
    )
}

/// The `--db` option shared by all corpus commands.
struct CorpusDatabaseOption: ParsableArguments {
    @Option(name: .long, help: "Corpus database file.")
    var db: String = "graft.sqlite"

    /// The database, created when absent (what `graft corpus add` writes into).
    func open() throws -> CorpusStore { try CorpusStore(path: db) }

    /// An existing database: reading commands do not create an empty one for a mistyped path.
    func openExisting() throws -> CorpusStore {
        try requireCorpusDatabase(db)
        return try CorpusStore(path: db)
    }
}

/// Throws unless a corpus database exists at `path` (opening one creates it: a command that
/// reads a corpus must not make an empty one for a mistyped path).
func requireCorpusDatabase(_ path: String) throws {
    guard FileManager.default.fileExists(atPath: path) else {
        throw CLIError("\(path): no such corpus database (graft corpus add FILE --db \(path) creates one)")
    }
}


struct CorpusAdd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Import files (each file one transaction; a file already imported is skipped).")

    @OptionGroup var database: CorpusDatabaseOption

    @Argument(help: "Files to import.")
    var files: [String]

    @Option(help: "Input format: text, lines, paragraphs, jsonl, tsv, csv, conll or squad (default: from the extension).")
    var format: ImportFormat?

    @Option(name: .customLong("text-field"), help: "JSONL field or CSV/TSV column with the text (default: text).")
    var textField: String?

    @Option(name: .customLong("label-field"), help: "JSONL field or CSV/TSV column with the label (CSV/TSV default: label).")
    var labelField: String?

    @Option(help: "Task name the annotations are stored under (default: label for labels, ner for entity spans / CoNLL tags; e.g. --task products for a product-name tagger).")
    var task: String?

    @Option(help: "Put all documents of these files in this split part (train, dev or test).")
    var split: SplitPart?

    @Option(name: .customLong("tag-scheme"), help: "CoNLL tags: iob (IOB2 or IOB1, the default) or bioes (also E-TYPE and S-TYPE). The rows are stored as written; a task spec's scheme converts them.")
    var tagScheme: CoNLLTagScheme = .iob

    @Flag(name: .customLong("skip-bad"), help: "Report and skip bad records (malformed lines, an empty text or label, …) instead of rolling the file back.")
    var skipBad = false

    @Flag(inversion: .prefixedNo, help: "Skip texts already stored (default: on for unlabelled text, off for labelled sets).")
    var dedupe: Bool?

    @Flag(help: "No progress display.")
    var quiet = false

    func run() throws {
        let store = try database.open()
        var failed = false
        for file in files {
            let options = ImportOptions(
                format: format, textField: textField, labelField: labelField, task: task, split: split,
                deduplicate: dedupe, skipBad: skipBad, tagScheme: tagScheme)
            let progress = ProgressReporter((file as NSString).lastPathComponent, total: nil, unit: .bytes, enabled: !quiet)
            do {
                let report = try store.importFile(file, options: options) { p in
                    progress.total = p.totalBytes
                    progress.update(p.bytesRead, fields: ["docs": ProgressReporter.grouped(p.documents)])
                }
                if report.alreadyImported {
                    progress.cancel()
                    print("\(file): already imported as source \(report.sourceID); nothing added")
                    continue
                }
                progress.finish(fields: ["docs": ProgressReporter.grouped(report.documents)])
                let mbps = report.seconds > 0 ? Double(report.bytes) / 1e6 / report.seconds : 0
                print("""
                    \(file): source \(report.sourceID), \(report.format.rawValue): \(report.documents) documents, \
                    \(report.annotations) annotations, \(report.duplicates) duplicates, \(report.skipped.count) skipped \
                    (\(String(format: "%.2f", report.seconds)) s, \(String(format: "%.1f", mbps)) MB/s)
                    """)
                for issue in report.skipped { printError("skipped: \(issue)") }
            } catch {
                progress.cancel()
                printError("error: \(error)")
                printError("\(file): nothing imported (the file's transaction was rolled back)")
                failed = true
            }
        }
        if failed { throw ExitCode.failure }
    }
}

struct CorpusStatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Show corpus statistics.")

    @OptionGroup var database: CorpusDatabaseOption

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        let store = try database.openExisting()
        let stats = try store.stats()
        if json {
            print(try JSONValue(encoding: stats, sortedKeys: true).serialized(pretty: true))
            return
        }
        let g = ProgressReporter.grouped
        print("documents    \(g(stats.documents)) (\(String(format: "%.1f", Double(stats.textBytes) / 1e6)) MB of text)")
        print("sources      \(g(stats.sources))")
        print("annotations  \(g(stats.annotations)) (labels \(g(stats.labels)), spans \(g(stats.spans)), questions \(g(stats.questions)))")
        for (task, counts) in stats.labelCounts.sorted(by: { $0.key < $1.key }) {
            let values = counts.sorted(by: { $0.key < $1.key }).map { "\($0.key) \(g($0.value))" }.joined(separator: ", ")
            print("  \(task): \(values)")
        }
        if stats.tokenizers.isEmpty {
            print("tokens       (no token cache)")
        }
        for t in stats.tokenizers {
            print("tokens       \(g(t.tokens)) in \(g(t.documents)) documents (tokenizer \(t.fingerprint))")
        }
        print("runs         \(g(stats.runs))")
        for s in try store.sources() {
            print("  source \(s.id): \(s.name) [\(s.format)] \(g(s.documents)) documents, \(g(s.duplicates)) duplicates, \(g(s.skipped)) skipped")
        }
    }
}

struct CorpusSplit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "split",
        abstract: "Define a train/dev/test split by document hash (stable when documents are added), or show one.",
        discussion: "Without ratios, shows the counts of the named scheme (default 0.8/0.1/0.1).")

    @OptionGroup var database: CorpusDatabaseOption

    @Option(help: "Scheme name.")
    var name: String = "default"

    // `.unconditional`: the value is the next argument even when it starts with "-", so that
    // `--train -0.5` reaches the range check below rather than "Missing value for '--train'".
    @Option(parsing: .unconditional, help: "Fraction of documents in train (0 to 1).")
    var train: Double?

    @Option(parsing: .unconditional, help: "Fraction in dev (0 to 1; default 0.1, or what train leaves when less).")
    var dev: Double?

    @Option(parsing: .unconditional, help: "Fraction in test (0 to 1; default: the rest).")
    var test: Double?

    func validate() throws {
        guard !name.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--name must not be empty") }
        for (option, value) in [("train", train), ("dev", dev), ("test", test)] {
            if let value, !(value >= 0 && value <= 1) {
                throw ValidationError("--\(option) \(value) is not a fraction from 0 to 1")
            }
        }
    }

    /// A split fraction as printed: six significant digits (0.1, not 0.09999999999999995).
    static func fraction(_ value: Double) -> String { String(format: "%g", value) }

    func run() throws {
        let store = try database.openExisting()
        if train != nil || dev != nil || test != nil {
            // dev defaults to 0.1, or what train leaves when that is less (--train 1: all in train).
            // The rest for test is 0 when it is rounding error (0.95 + 0.05 leaves 4e-17).
            let tr = train ?? 0.8, dv = dev ?? min(0.1, max(0, 1 - tr))
            let rest = 1 - tr - dv
            try store.defineSplit(name: name, train: tr, dev: dv, test: test ?? (rest < 1e-9 ? 0 : rest))
        }
        let scheme = try store.splitScheme(named: name)
        let counts = try store.splitCounts(name: name)
        print("split \(name): train \(Self.fraction(scheme.train)), dev \(Self.fraction(scheme.dev)), test \(Self.fraction(scheme.test))")
        for part in SplitPart.allCases {
            print("  \(part.rawValue): \(ProgressReporter.grouped(counts[part] ?? 0)) documents")
        }
    }
}

struct CorpusSearch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search", abstract: "Full-text search (SQLite FTS5 syntax) with matching snippets.")

    @OptionGroup var database: CorpusDatabaseOption

    @Argument(help: "Query, e.g. 'king', '\"to be or not\"', 'rome AND caesar'.")
    var query: String

    @Option(help: "Maximum number of results.")
    var limit = 10

    func validate() throws {
        guard limit >= 1 else { throw ValidationError("--limit must be at least 1") }
    }

    func run() throws {
        let store = try database.openExisting()
        let hits = try store.search(query, limit: limit)
        if hits.isEmpty { print("no match"); return }
        for hit in hits {
            let snippet = hit.snippet.replacingOccurrences(of: "\n", with: " ")
            print("[\(hit.documentID)] \(hit.source): \(snippet)")
        }
    }
}

struct CorpusExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Export documents as JSON Lines, CoNLL or SQuAD JSON.")

    @OptionGroup var database: CorpusDatabaseOption

    @Option(help: "Output format: jsonl, conll or squad.")
    var format: ExportFormat = .jsonl

    @Option(name: [.short, .long], help: "Output file (default: standard output).")
    var output: String?

    @Option(help: "Only this source (id or name).")
    var source: String?

    @Option(help: "Only this split part (train, dev or test).")
    var split: SplitPart?

    @Option(help: "Split scheme for --split.")
    var scheme: String = "default"

    @Option(help: "Label task to export (jsonl).")
    var task: String = "label"

    @Option(name: .customLong("tagging-task"), help: "Tagging task whose spans (jsonl) or CoNLL rows (conll) to export.")
    var taggingTask: String = "ner"

    @Option(name: .customLong("text-field"), help: "JSON field name for the text (jsonl).")
    var textField: String = "text"

    @Option(name: .customLong("label-field"), help: "JSON field name for the label (jsonl).")
    var labelField: String = "label"

    func run() throws {
        let store = try database.openExisting()
        var filter = DocumentFilter(part: split, scheme: scheme)
        if let source { filter.sourceID = try store.source(named: source).id }
        func export(_ write: (String) throws -> Void) throws -> ExportReport {
            try store.export(format: format, filter: filter, textField: textField, labelField: labelField, task: task,
                             taggingTask: taggingTask, write: write)
        }
        let report: ExportReport
        if let output {
            // Whole or not at all: a temporary file beside it, renamed into place when complete.
            var result: ExportReport?
            try AtomicFile.write(to: output) { file in
                var buffer: [UInt8] = []
                result = try export { text in
                    buffer.append(contentsOf: text.utf8)
                    if buffer.count >= 1 << 20 { try file.write(buffer); buffer.removeAll(keepingCapacity: true) }
                }
                try file.write(buffer)
            }
            report = result!
        } else {
            let out = OutputBuffer()
            report = try export { out.write($0) }
            try out.flush()
        }
        printError("exported \(report.documents) documents" + (report.skipped > 0 ? " (\(report.skipped) without \(format.rawValue) data left out)" : ""))
    }
}

struct CorpusRuns: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs", abstract: "List recorded training runs, or show one run's metrics.")

    @OptionGroup var database: CorpusDatabaseOption

    @Option(help: "Show this run's configuration and metrics.")
    var id: Int64?

    func run() throws {
        let store = try database.openExisting()
        guard let id else {
            let runs = try store.runs()
            if runs.isEmpty { print("no runs"); return }
            for r in runs {
                let seconds = r.seconds.map { String(format: "%.1f s", $0) } ?? "-"
                print("\(r.id)  \(r.kind)  \(r.name ?? "-")  \(r.status.rawValue)  \(seconds)  \(r.summary ?? "")")
            }
            return
        }
        let r = try store.run(id: id)
        print("run \(r.id) \(r.kind) \(r.name ?? "") \(r.status.rawValue)")
        print("config: \(r.config)")
        if let summary = r.summary { print("summary: \(summary)") }
        for m in try store.metrics(run: id) {
            print("step \(m.step)  \(m.name) = \(m.value)  (\(String(format: "%.1f", m.seconds)) s)")
        }
    }
}

struct CorpusRemove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Delete a source with its documents, annotations and cached tokens.")

    @OptionGroup var database: CorpusDatabaseOption

    @Argument(help: "Source id or name (see `graft corpus stats`).")
    var source: String

    func run() throws {
        let store = try database.openExisting()
        let info = try store.source(named: source)
        try store.removeSource(id: info.id)
        print("removed source \(info.id) (\(info.name)): \(info.documents) documents")
    }
}
