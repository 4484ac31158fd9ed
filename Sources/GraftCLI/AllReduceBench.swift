import ArgumentParser
import Foundation
import GraftEngine

/// `mpirun -np N graft bench allreduce`: the time of summing a float buffer over the ranks, as the
/// data-parallel trainer does (one blocking all-reduce, or buckets started together and waited
/// for), for the cost model in BENCHMARKS.md.
struct AllReduceBenchCommand: ParsableCommand, DataParallelCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "Time the gradient all-reduce between MPI ranks (run under mpirun).",
        discussion: "Prints one JSON line per buffer size from rank 0: median seconds of a blocking sum and of a bucketed one, and the bus bandwidth 2(N-1)/N x bytes / seconds.")

    @Option(parsing: .upToNextOption, help: "Buffer sizes in floats.") var floats: [Int] = [1024, 65_536, 1_048_576, 5_462_784]
    @Option(name: .customLong("bucket-mb"), help: "Bucket size of the bucketed sum.") var bucketMB: Double = 4
    @Option(name: .customLong("repeat"), help: "Timed repetitions (the median is reported).") var repetitions: Int = 10

    func run() throws {
        guard let world = try Ranks.world() else { throw CLIError("run it as several ranks: mpirun -np 2 graft bench allreduce") }
        let n = Double(world.size)
        for count in floats {
            let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
            defer { buffer.deallocate() }
            buffer.initialize(repeating: 1)
            func time(_ body: () throws -> Void) throws -> Double {
                try body()   // warm-up
                var seconds: [Double] = []
                for _ in 0..<max(1, repetitions) {
                    try world.barrier()
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    try body()
                    seconds.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                }
                return seconds.sorted()[seconds.count / 2]
            }
            let blocking = try time { try world.allReduceSum(buffer) }
            let bucket = max(1024, Int(bucketMB * 1_048_576) / 4)
            let bucketed = try time {
                var hi = count
                while hi > 0 {
                    let lo = max(0, hi - bucket)
                    try world.startAllReduceSum(UnsafeMutableBufferPointer(rebasing: buffer[lo..<hi]))
                    hi = lo
                }
                try world.waitAll()
            }
            if world.rank == 0 {
                let bytes = Double(count * 4)
                print(String(format: "{\"ranks\":%d,\"floats\":%d,\"bytes\":%.0f,\"blocking_s\":%.6f,\"bucketed_s\":%.6f,\"bucket_mb\":%.2f,\"bus_gb_per_s\":%.3f}",
                             world.size, count, bytes, blocking, bucketed, bucketMB, 2 * (n - 1) / n * bytes / blocking / 1e9))
            }
        }
    }
}
