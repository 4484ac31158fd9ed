import Dispatch
import Foundation
import GraftSupport

// Small helpers shared by batch encoding and the trainers to run work on all cores.

/// Runs `body(0) ... body(count - 1)` over the Dispatch thread pool (serially when count is 1).
func parallelFor(_ count: Int, _ body: @Sendable (Int) -> Void) {
    if count <= 1 {
        if count == 1 { body(0) }
        return
    }
    DispatchQueue.concurrentPerform(iterations: count, execute: body)
}

/// One error slot per counting thread, each written only by its own thread.
final class ErrorSlots: @unchecked Sendable {
    private let slots: UnsafeMutablePointer<(order: Int, error: Error)?>
    private let count: Int
    init(count: Int) {
        self.count = count
        slots = .allocate(capacity: count)
        slots.initialize(repeating: nil, count: count)
    }
    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }
    /// Records thread `part`'s error; `order` places it in the batch (default: the part itself).
    func set(_ part: Int, _ error: Error, order: Int? = nil) { slots[part] = (order ?? part, error) }
    /// The error earliest in the batch (lowest order).
    var first: Error? {
        var best: (order: Int, error: Error)?
        for i in 0..<count { if let e = slots[i], e.order < (best?.order ?? .max) { best = e } }
        return best?.error
    }
}

/// Hands out consecutive chunks of `0..<count`, in order, to whichever thread asks next: dynamic
/// scheduling, so a thread on a busier core (a shared machine) simply takes fewer chunks instead of
/// holding the others up at the end, as a fixed split into equal parts does.
final class ChunkQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    private let count: Int, chunk: Int

    init(count: Int, chunk: Int) {
        self.count = count
        self.chunk = max(chunk, 1)
    }

    /// The next chunk, nil when all are handed out (or after ``stop()``).
    func take() -> Range<Int>? {
        lock.lock()
        defer { lock.unlock() }
        guard next < count else { return nil }
        let lo = next
        next = min(count, lo + chunk)
        return lo..<next
    }

    /// Hands out nothing more: chunks already taken (all of them before any later one) still finish.
    func stop() {
        lock.lock()
        next = count
        lock.unlock()
    }
}
