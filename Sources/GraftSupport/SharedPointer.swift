/// A value that may be captured by concurrently running closures (`Engine.parallelFor`,
/// `DispatchQueue.concurrentPerform`): a pointer into a buffer whose disjoint parts the work
/// items write, or a closure or array they only read. Swift cannot check that; the code using
/// it guarantees that the accesses are race-free. The one such wrapper of every layer.
public struct UncheckedBox<T>: @unchecked Sendable {
    public let value: T
    @inlinable public init(_ value: T) { self.value = value }
}

/// The common case: a mutable pointer shared by parallel work items (`p.value[i]`).
public typealias SharedPointer<T> = UncheckedBox<UnsafeMutablePointer<T>>
