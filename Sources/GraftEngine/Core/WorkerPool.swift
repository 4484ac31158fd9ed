import Foundation
import Synchronization

/// Persistent worker threads that run the chunks of ``Engine/concurrent(_:_:)``, spinning
/// briefly between jobs so that the next one starts without a wake-up.
///
/// Why: `DispatchQueue.concurrentPerform` wakes its workers through a semaphore for every call.
/// A training step makes hundreds of short parallel calls (each band of a split product, each
/// element-wise kernel), and on the 2-vCPU VM of BENCHMARKS.md each call lost 50–250 µs to the
/// wake-up: two 125 µs chunks took 226–289 µs (serial: 250 µs), here 134–147 µs.
///
/// One job at a time: a call that finds the pool running another computation's job returns
/// false and the caller falls back to `concurrentPerform`, so concurrent computations stay
/// correct (each chunk is the same work, whoever runs it). The caller runs chunks too, and
/// waits for the rest; chunks are claimed with one compare-and-swap on a ticket holding the
/// job's generation, chunk count and next chunk, so a worker that wakes late can never claim a
/// chunk of a newer job by mistake. Workers spin for ``spinNanoseconds`` after their last chunk,
/// then sleep on a condition until the next job.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool()

    /// How long an idle worker keeps polling for the next job before it sleeps.
    static let spinNanoseconds: UInt64 = 2_000_000

    /// `generation << 32 | chunks << 16 | next`.
    private let ticket = Atomic<UInt64>(0)
    private let finished = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    /// The running job's body: written before the ticket is published, read by a worker only
    /// after it claimed a chunk of that job (which the caller waits for before replacing it).
    private var body: ((Int) -> Void)?
    private let wake = NSCondition()
    private var sleepers = 0      // guarded by `wake`
    private var workers = 0       // touched only by the caller holding `busy`

    /// Runs `body(c)` for `c` in `0..<chunks` on the caller and the pool's workers; returns
    /// false without running anything when another job holds the pool (or `chunks` is out of
    /// the ticket's range).
    func run(_ chunks: Int, _ body: @escaping (Int) -> Void) -> Bool {
        guard chunks >= 1, chunks < 1 << 16,
              busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        defer { busy.store(false, ordering: .releasing) }
        startWorkers(chunks - 1)
        self.body = body
        finished.store(0, ordering: .relaxed)
        let generation = ((ticket.load(ordering: .relaxed) >> 32) &+ 1) & 0xFFFF_FFFF
        ticket.store(generation << 32 | UInt64(chunks) << 16, ordering: .releasing)
        wake.lock()
        if sleepers > 0 { wake.broadcast() }
        wake.unlock()
        runChunks(of: generation)
        var polls = 0
        while finished.load(ordering: .acquiring) < chunks {
            polls += 1
            if polls & 1023 == 0 { sched_yield() }   // a descheduled worker: let it finish
        }
        self.body = nil
        return true
    }

    private func startWorkers(_ wanted: Int) {
        while workers < wanted {
            workers += 1
            let thread = Thread { [unowned self] in self.workerLoop() }
            thread.name = "graft-worker-\(workers)"
            thread.start()
        }
    }

    /// Claims and runs chunks of job `generation` until none is left (or a newer job replaced it).
    private func runChunks(of generation: UInt64) {
        while true {
            let t = ticket.load(ordering: .acquiring)
            guard t >> 32 == generation else { return }
            let chunks = (t >> 16) & 0xFFFF, next = t & 0xFFFF
            guard next < chunks else { return }
            if ticket.compareExchange(expected: t, desired: t + 1, ordering: .acquiringAndReleasing).exchanged {
                body!(Int(next))
                finished.add(1, ordering: .releasing)
            }
        }
    }

    private func workerLoop() {
        var seen = ticket.load(ordering: .acquiring) >> 32
        while true {
            var t = ticket.load(ordering: .acquiring)
            var polls = 0
            var deadline: UInt64 = 0
            while t >> 32 == seen {
                polls += 1
                if polls & 255 == 0 {
                    let now = DispatchTime.now().uptimeNanoseconds
                    if deadline == 0 { deadline = now + Self.spinNanoseconds } else if now > deadline {
                        wake.lock()
                        sleepers += 1
                        while ticket.load(ordering: .acquiring) >> 32 == seen { wake.wait() }
                        sleepers -= 1
                        wake.unlock()
                    }
                }
                t = ticket.load(ordering: .acquiring)
            }
            seen = t >> 32
            runChunks(of: seen)
        }
    }
}
