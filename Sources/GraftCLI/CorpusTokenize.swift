import GraftSupport
import ArgumentParser
import Foundation
import GraftCorpus
import GraftTokenizers

struct CorpusTokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Cache every document's token ids for a tokenizer (incremental; used by pretraining).",
        discussion: "Ids are stored without special tokens, under the tokenizer's fingerprint (SHA-256 of its tokenizer.json)."
    )

    @OptionGroup var database: CorpusDatabaseOption

    @Option(help: "A tokenizer.json file, or a directory holding one (or vocab.txt, or encoder.json + vocab.bpe).")
    var tokenizer: String

    @Flag(help: "Print the report as JSON.")
    var json = false

    func run() throws {
        let tok = try loadTokenizer(tokenizer)
        try requireCorpusDatabase(database.db)
        let fingerprint = tokenizerFingerprint(tok)
        let report = try tokenizeCorpus(dbPath: database.db, tokenizer: tok, fingerprint: fingerprint, showProgress: !json)
        if json {
            print(JSONValue.object([("fingerprint", .string(fingerprint)), ("tokens", .number(Double(report.tokens)))]).serialized())
        } else {
            print("cached \(report.tokens) tokens under \(fingerprint.prefix(16))… in \(database.db)")
        }
    }
}
