import ArgumentParser
import Foundation

@main
struct Graft: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graft",
        abstract: "NLP transfer learning on an ordinary machine.",
        subcommands: [
            TokenizerCommand.self,
            CorpusCommand.self,
            PretrainCommand.self,
            ImportCommand.self,
            ExportCommand.self,
            EmbedCommand.self,
            GenerateCommand.self,
            BenchCommand.self,
        ]
    )
}

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run Graft's benchmarks (use a release build).",
        subcommands: [
            TokenizerBenchCommand.self,
            CorpusBench.self,
            EngineBenchCommand.self,
            PretrainBenchCommand.self,
        ]
    )
}
