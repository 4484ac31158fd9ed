/// A mutable pointer that may be captured by concurrently running closures. The code using it
/// must guarantee that concurrent accesses touch disjoint memory (or only read).
public struct SharedPointer<T>: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<T>
    @inlinable public init(_ pointer: UnsafeMutablePointer<T>) { self.pointer = pointer }
}
