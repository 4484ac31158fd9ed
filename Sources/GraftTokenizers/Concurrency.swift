import Dispatch
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
    private let slots: UnsafeMutablePointer<Error?>
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
    func set(_ part: Int, _ error: Error) { slots[part] = error }
    /// The error of the lowest-numbered part (the earliest in the batch).
    var first: Error? {
        for i in 0..<count { if let e = slots[i] { return e } }
        return nil
    }
}
