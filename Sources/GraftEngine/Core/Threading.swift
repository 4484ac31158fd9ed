import COpenBLAS
import Dispatch
import Foundation
import GraftSupport

/// The engine's execution settings: how many threads a computation uses.
///
/// There is no process-wide setting that one computation can change under another. A
/// computation's thread count is bound to the calling task (or thread) with
/// ``withThreads(_:_:)-(_,()->R)``; code that runs outside any binding uses
/// ``defaultThreads``, read once from the environment (`GRAFT_THREADS`, else
/// `OPENBLAS_NUM_THREADS`, else the number of active processors) and never changed.
///
/// OpenBLAS's own threading is process-wide (`openblas_set_num_threads` affects every thread of
/// the process), so the engine never uses it: OpenBLAS is set to one thread once, before the
/// first product, and the engine splits large products itself (``BLAS/matmul``) across the
/// calling computation's threads, each slice one single-threaded `cblas_sgemm`. A product's
/// split, and every element-wise chunking and reduction order, depends only on its shapes and
/// the computation's thread count, so results depend only on seed and thread count.
///
/// What is safe to run concurrently: any number of computations (models, optimizers, kernels)
/// on *different* objects, each with its own thread count, from different tasks or threads —
/// e.g. a teacher and a student, or several requests of a tagging service, each in its own
/// `withThreads` scope. One model object must not be used by two computations at once (layers
/// keep their activations between forward and backward).
public enum Engine {
    /// The thread count used where no ``withThreads(_:_:)-(_,()->R)`` binding is active: read
    /// once from `GRAFT_THREADS` (else `OPENBLAS_NUM_THREADS`, else the active processors).
    public static let defaultThreads: Int = {
        let env = ProcessInfo.processInfo.environment
        for key in ["GRAFT_THREADS", "OPENBLAS_NUM_THREADS"] {
            if let s = env[key], let v = Int(s), v > 0 { return min(v, maxThreads) }
        }
        return max(1, min(ProcessInfo.processInfo.activeProcessorCount, maxThreads))
    }()

    /// Upper bound on a thread count (a typo such as `GRAFT_THREADS=1000000` must not spawn a
    /// million work items per kernel).
    public static let maxThreads = 1024

    /// The thread count bound to the current task or thread, if any.
    @TaskLocal public static var boundThreads: Int?

    /// The calling computation's thread count (at least 1).
    @inlinable public static var threads: Int { boundThreads ?? defaultThreads }

    /// Sets OpenBLAS to one thread, once per process, before the first BLAS call (see the type's
    /// discussion). Touched by every BLAS entry point; the check after the first is one load.
    public static let singleThreadedOpenBLAS: Void = {
        openblas_set_num_threads(1)
    }()

    /// Runs `body` with `threads` as the thread count of everything it computes (on this task or
    /// thread; other computations keep theirs).
    public static func withThreads<R>(_ threads: Int, _ body: () throws -> R) throws -> R {
        try checkThreadCount(threads)
        return try $boundThreads.withValue(threads) { try body() }
    }

    /// Async form of ``withThreads(_:_:)-(_,()->R)``: the count is bound to the task.
    public static func withThreads<R>(_ threads: Int, isolation: isolated (any Actor)? = #isolation,
                                      _ body: () async throws -> R) async throws -> R {
        try checkThreadCount(threads)
        return try await $boundThreads.withValue(threads) { try await body() }
    }

    static func checkThreadCount(_ n: Int) throws {
        guard n >= 1, n <= maxThreads else {
            throw EngineError.invalidArgument("thread count must be between 1 and \(maxThreads), got \(n)")
        }
    }

    /// Splits `0..<count` into at most ``threads`` contiguous chunks (never smaller than
    /// `minChunk` items) and runs `body(range)` for each, concurrently when more than one chunk.
    /// Work items run with a thread count of 1, so a kernel called inside one never fans out again.
    @inlinable
    public static func parallelFor(_ count: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = max(1, min(threads, count / max(1, minChunk)))
        if chunks == 1 { body(0..<count); return }
        let per = (count + chunks - 1) / chunks
        concurrent(chunks) { c in
            let lo = c * per
            let hi = min(count, lo + per)
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Runs `body(0)`, …, `body(n - 1)` concurrently (the caller runs some), each with a thread
    /// count of 1, and returns when all have finished. On the engine's ``WorkerPool`` (spinning
    /// workers, no wake-up per call) unless another computation's job holds it, then on
    /// `DispatchQueue.concurrentPerform`; which thread runs an item never changes what it computes.
    public static func concurrent(_ n: Int, _ body: (Int) -> Void) {
        if n <= 0 { return }
        withoutActuallyEscaping(body) { b in
            let box = UncheckedBox(b)
            let item: @Sendable (Int) -> Void = { c in $boundThreads.withValue(1) { box.value(c) } }
            if n == 1 || !WorkerPool.shared.run(n, item) {
                DispatchQueue.concurrentPerform(iterations: n, execute: item)
            }
        }
    }
}
