import ArgumentParser
import Foundation

@main
struct Graft: AsyncParsableCommand {
    static func main() async {
        OpenBLASEnvironment.applyBeforeStart()
        await main(nil)
    }

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

/// OpenBLAS reads its settings once, when the library loads, before any Swift code runs. Its
/// worker threads spin for 2^28 cycles after each call by default, which on a 2-core machine
/// starves the engine's own worker threads between GEMMs (measured: BERT-Mini masked-LM
/// pretraining on 2 threads went from about 5,750 to 6,700 tokens/s with a timeout of 2^4).
/// So when the user has not chosen `OPENBLAS_THREAD_TIMEOUT`, the process sets it and
/// re-executes itself once (Linux only; elsewhere, or if the re-exec fails, it just continues).
enum OpenBLASEnvironment {
    static func applyBeforeStart() {
        #if os(Linux)
        let env = ProcessInfo.processInfo.environment
        guard env["OPENBLAS_THREAD_TIMEOUT"] == nil else { return }
        setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1)
        let args = CommandLine.arguments
        var cArgs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) }
        cArgs.append(nil)
        execv("/proc/self/exe", &cArgs)
        // execv returns only on failure: carry on with the default OpenBLAS settings.
        for p in cArgs { free(p) }
        #endif
    }
}
