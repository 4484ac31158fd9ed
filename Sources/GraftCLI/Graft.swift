import ArgumentParser

@main
struct Graft: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graft",
        abstract: "NLP transfer learning on an ordinary machine.",
        subcommands: [
            BenchCommand.self,
        ]
    )
}

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run Graft's benchmarks (use a release build).",
        subcommands: [
            EngineBenchCommand.self,
        ]
    )
}
