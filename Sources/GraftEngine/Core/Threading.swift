import COpenBLAS
import Dispatch
import Foundation

/// A raw pointer that may cross into ``Engine/parallelFor(_:minChunk:_:)`` work items. Each
/// work item must touch a disjoint region (or only read).
public struct SendablePtr: @unchecked Sendable {
    public let p: UnsafeMutablePointer<Float>
    @inlinable public init(_ p: UnsafeMutablePointer<Float>) { self.p = p }
}

/// Process-wide engine settings: the number of threads.
///
/// The thread count is read once from the environment variable `GRAFT_THREADS` (if unset:
/// `OPENBLAS_NUM_THREADS`, else the number of active processors) and can be changed with ``Engine/setThreads(_:)``.
/// It sets OpenBLAS's thread count for large GEMMs and the number of chunks element-wise
/// kernels and per-head attention products are split into. Results are deterministic for a
/// given seed and thread count (every chunk writes a disjoint region; reductions are summed
/// in a fixed order).
public enum Engine {
    nonisolated(unsafe) private static var _threads: Int = {
        let n: Int
        let env = ProcessInfo.processInfo.environment
        if let s = env["GRAFT_THREADS"], let v = Int(s), v > 0 {
            n = v
        } else if let s = env["OPENBLAS_NUM_THREADS"], let v = Int(s), v > 0 {
            n = v
        } else {
            n = max(1, ProcessInfo.processInfo.activeProcessorCount)
        }
        openblas_set_num_threads(Int32(n))
        return n
    }()

    /// The current thread count (at least 1).
    public static var threads: Int { _threads }

    /// Sets the thread count for OpenBLAS and for the engine's own parallel loops.
    public static func setThreads(_ n: Int) throws {
        guard n >= 1 else { throw EngineError.invalidArgument("thread count must be >= 1, got \(n)") }
        _ = _threads
        _threads = n
        openblas_set_num_threads(Int32(n))
    }

    /// Runs `body` with OpenBLAS single-threaded, restoring the engine's thread count after.
    /// Used when many small GEMMs are spread over cores by the engine itself.
    @inlinable
    public static func withSingleThreadedBLAS<R>(_ body: () throws -> R) rethrows -> R {
        let n = threads
        if n > 1 { openblas_set_num_threads(1) }
        defer { if n > 1 { openblas_set_num_threads(Int32(n)) } }
        return try body()
    }

    /// Splits `0..<count` into at most `threads` contiguous chunks (never smaller than
    /// `minChunk` items) and runs `body(range)` for each, concurrently when more than one chunk.
    @inlinable
    public static func parallelFor(_ count: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = max(1, min(threads, count / max(1, minChunk)))
        if chunks == 1 { body(0..<count); return }
        let per = (count + chunks - 1) / chunks
        withoutActuallyEscaping(body) { b in
            let box = UncheckedBox(b)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = c * per
                let hi = min(count, lo + per)
                if lo < hi { box.value(lo..<hi) }
            }
        }
    }
}

/// Wraps a value (a closure, an array) for use inside parallel work items; the caller
/// guarantees the accesses are race-free.
public struct UncheckedBox<T>: @unchecked Sendable {
    public let value: T
    @inlinable public init(_ v: T) { value = v }
}
