import ArgumentParser
import COpenBLAS
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GraftEngine

@main
struct Graft: AsyncParsableCommand {
    static func main() async {
        OpenBLASKernel.selectBeforeStart()
        AllocatorPolicy.apply()
        do {
            var command = try parseAsRoot()
            // A thread count the engine would ignore is a mistake to say, not to pass over.
            if let s = ProcessInfo.processInfo.environment["GRAFT_THREADS"], !s.isEmpty,
               Int(s).map({ !(1...Engine.maxThreads).contains($0) }) ?? true {
                throw ValidationError("GRAFT_THREADS=\(s.prefix(40)) is not a thread count in 1...\(Engine.maxThreads)")
            }
            try Ranks.refuseUnlessDataParallel(command)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let caught {
            // Foundation's file errors print as a dump of their user info: say their reason.
            let ns = caught as NSError
            let error: any Error = [NSCocoaErrorDomain, NSPOSIXErrorDomain].contains(ns.domain)
                ? CLIError([ns.userInfo[NSFilePathErrorKey] as? String, ns.localizedDescription].compactMap { $0 }.joined(separator: ": "))
                : caught
            // Under mpirun a failing rank ends the whole job at once (MPI_Abort) instead of
            // leaving the others waiting in a collective.
            if MPICommunicator.isInitialised {
                Ranks.abortJob(after: error, message: fullMessage(for: error), code: exitCode(for: error).rawValue)
            }
            exit(withError: error)
        }
        MPICommunicator.finalize()
        if let status = interruptedExitStatus() { Glibc.exit(status) }   // stopped by a signal, checkpoint written
    }

    static let configuration = CommandConfiguration(
        commandName: "graft",
        abstract: "NLP transfer learning on an ordinary machine.",
        subcommands: [
            TokenizerCommand.self,
            CorpusCommand.self,
            PretrainCommand.self,
            FinetuneCommand.self,
            ReportCommand.self,
            EvaluateCommand.self,
            TagCommand.self,
            ClassifyCommand.self,
            AskCommand.self,
            ClozeQACommand.self,
            LogitsCommand.self,
            ImportCommand.self,
            ExportCommand.self,
            SurgeryCommand.self,
            DistillCommand.self,
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
            AllReduceBenchCommand.self,
        ]
    )
}

/// glibc's allocator raises its mmap threshold each time a large block is freed (up to 32 MB),
/// after which blocks of that size come from the heap and stay in the resident set when freed.
/// Training frees and regrows its activation buffers as batch shapes grow (length-grouped
/// batches), so with the dynamic threshold a sentiment fine-tuning run of MiniLM peaked 87 MB
/// higher (846 vs 759 MB, 960 examples, `/usr/bin/time -f %M`) at the same speed. A fixed
/// threshold keeps every block of 256 KiB or more in its own mapping, returned on free.
/// `GRAFT_MMAP_THRESHOLD=off` keeps glibc's default; a number sets another threshold in bytes.
enum AllocatorPolicy {
    static let defaultThreshold: Int32 = 256 * 1024

    static func apply() {
        #if os(Linux)
        let setting = ProcessInfo.processInfo.environment["GRAFT_MMAP_THRESHOLD"]
        if setting == "off" { return }
        let bytes = setting.flatMap(Int32.init).map { min(max($0, 4096), 32 << 20) } ?? defaultThreshold
        // mallopt(M_MMAP_THRESHOLD = -3, bytes): <malloc.h> is not part of Swift's Glibc module.
        typealias MalloptFunction = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        _ = unsafeBitCast(symbol, to: MalloptFunction.self)(-3, bytes)
        #endif
    }
}

/// OpenBLAS picks its GEMM kernels from the processor it recognises when the library loads. The
/// OpenBLAS of Debian 12 (0.3.21) does not recognise recent processors (seen here: an Intel Xeon
/// with AVX-512, AMX and AVX512-BF16, reported as "Intel(R) Xeon(R) Processor") and falls back
/// to its generic SSE3 `Prescott` kernels, which ran `graft bench engine`'s 4096x256x1024 GEMM at
/// 29.6 GFLOP/s where the AVX-512 `Cooperlake` kernels of the same library reach 141.
///
/// So when the user has not chosen `OPENBLAS_CORETYPE` and OpenBLAS reports such a fallback
/// core although the processor has AVX-512 (or AVX2 + FMA), `graft` sets the core type the
/// processor supports and re-executes itself once (Linux only; elsewhere, or if the re-exec
/// fails, it carries on with OpenBLAS's own choice). `GRAFT_OPENBLAS_CORETYPE=auto|off|NAME`
/// overrides the choice. The benchmarks report the kernels that ran (`openblas_core`).
enum OpenBLASKernel {
    /// Cores OpenBLAS falls back to when it does not know the processor.
    static let fallbacks: Set<String> = ["prescott", "katmai", "coppermine", "northwood", "banias", "core2", "penryn",
                                         "dunnington", "nehalem", "atom", "unknown"]

    static func selectBeforeStart() {
        #if os(Linux)
        let env = ProcessInfo.processInfo.environment
        guard env["OPENBLAS_CORETYPE"] == nil, env["GRAFT_OPENBLAS_REEXEC"] == nil else { return }
        let setting = env["GRAFT_OPENBLAS_CORETYPE"] ?? "auto"
        guard setting != "off" else { return }
        let core = setting == "auto" ? suggestedCore() : setting
        guard let core else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv("GRAFT_OPENBLAS_REEXEC", "1", 1)   // never loop
        var cArgs: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) }
        cArgs.append(nil)
        execv("/proc/self/exe", &cArgs)
        for p in cArgs { free(p) }   // execv returns only on failure: carry on
        unsetenv("OPENBLAS_CORETYPE")
        #endif
    }

    /// The core to ask for, or nil when OpenBLAS's own choice stands.
    static func suggestedCore() -> String? {
        guard fallbacks.contains(BLAS.kernelCore.lowercased()) else { return nil }
        guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),   // unreadable: keep OpenBLAS's choice
              let flagsLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        if ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"].allSatisfy(flags.contains) {
            return flags.contains("avx512_bf16") ? "COOPERLAKE" : "SKYLAKEX"
        }
        if ["avx2", "fma"].allSatisfy(flags.contains) { return "HASWELL" }
        return nil
    }
}
