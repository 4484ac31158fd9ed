import ArgumentParser
import Foundation
import GraftEngine
import GraftModels
import GraftSupport

// Running under `mpirun`: the commands that run data-parallel (training, tagging) and the
// helpers they share. Everything else refuses to run as several ranks.

/// A command that runs correctly as several MPI ranks (`mpirun -np N graft ...`).
protocol DataParallelCommand {}

extension PretrainCommand: DataParallelCommand {}
extension FinetuneCommand: DataParallelCommand {}
extension TagCommand: DataParallelCommand {}
extension ClassifyCommand: DataParallelCommand {}
extension AskCommand: DataParallelCommand {}

enum Ranks {
    /// The job's communicator (nil: one process), with a CLI error when MPI cannot be loaded.
    static func world() throws -> MPICommunicator? {
        do { return try MPICommunicator.world() } catch { throw CLIError("\(error)") }
    }

    /// The data-parallel setting of a training command: the job's ranks, gradient buckets of at
    /// least `GRAFT_BUCKET_MB` MiB (default 1: one block per bucket for BERT-Mini and larger).
    static func dataParallel() throws -> DataParallel {
        let mb = ProcessInfo.processInfo.environment["GRAFT_BUCKET_MB"].flatMap(Double.init) ?? 1
        return DataParallel(try world(), bucketBytes: max(4096, Int(mb * 1_048_576)))
    }

    /// Refuses a command that does not run data-parallel when started as one rank of several
    /// (two ranks importing or writing the same files would corrupt them).
    static func refuseUnlessDataParallel(_ command: ParsableCommand) throws {
        guard MPICommunicator.launchedByMPI(), !(command is DataParallelCommand) else { return }
        let name = type(of: command).configuration.commandName ?? "\(type(of: command))"
        throw CLIError("graft \(name) does not run as several MPI ranks; run it without mpirun (data-parallel: pretrain, finetune, tag, classify, ask)")
    }

    /// Reports a failure on one rank and ends every rank of the job (the others would otherwise
    /// wait for it in a collective forever).
    static func abortJob(after error: Error, message: String, code: Int32) -> Never {
        let rank = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_RANK"] ?? ProcessInfo.processInfo.environment["PMIX_RANK"] ?? "?"
        printError("Error (rank \(rank)): \(message)\nending every rank of the job")
        MPICommunicator.abort(code: code == 0 ? 1 : code)
    }

    /// Documents (text, id) read by rank 0 and handed to every rank (only rank 0 has standard
    /// input under mpirun, and input files need not exist on the other machines).
    static func shareDocuments(_ communicator: Communicator?, read: () throws -> [(String, String)]) throws -> [(String, String)] {
        guard let communicator, communicator.size > 1 else { return try read() }
        var bytes: [UInt8] = []
        if communicator.rank == 0 {
            for (text, id) in try read() {
                for field in [text, id] {
                    var n = UInt64(field.utf8.count).littleEndian
                    withUnsafeBytes(of: &n) { bytes.append(contentsOf: $0) }
                    bytes.append(contentsOf: field.utf8)
                }
            }
        }
        let shared = try communicator.broadcast(bytes, root: 0)
        var out: [(String, String)] = []
        var at = 0
        func field() -> String {
            var n: UInt64 = 0
            withUnsafeMutableBytes(of: &n) { $0.copyBytes(from: shared[at..<(at + 8)]) }
            let length = Int(UInt64(littleEndian: n))
            defer { at += 8 + length }
            return String(decoding: shared[(at + 8)..<(at + 8 + length)], as: UTF8.self)
        }
        while at < shared.count { let text = field(); out.append((text, field())) }
        return out
    }
}
