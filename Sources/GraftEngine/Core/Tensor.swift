/// Owned, 64-byte aligned `Float` memory. Freed when the last ``Tensor`` referring to it goes.
public final class Storage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let capacity: Int

    /// Zero-filled storage of `capacity` floats.
    public init(capacity: Int) {
        self.capacity = capacity
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, capacity) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(1, capacity))
        pointer.initialize(repeating: 0, count: max(1, capacity))
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
}

/// A row-major float32 tensor: a shape over contiguous memory.
///
/// Tensors are reference types; ``reshaped(_:)`` and ``batchSlice(_:)`` return views that share
/// memory with the original. Layers keep their outputs in tensors they own and reuse them
/// from one call to the next, so a tensor returned by `forward` is valid until that layer's
/// next `forward`.
public final class Tensor: @unchecked Sendable {
    public let storage: Storage
    public let offset: Int
    public private(set) var shape: [Int]
    /// Number of elements (product of `shape`).
    public private(set) var count: Int

    /// A zero-filled tensor.
    public init(shape: [Int]) {
        let n = shape.reduce(1, *)
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        storage = Storage(capacity: n)
        offset = 0
        self.shape = shape
        count = n
    }

    /// A tensor holding `values` (row-major) with the given shape.
    public convenience init(shape: [Int], values: [Float]) {
        self.init(shape: shape)
        precondition(values.count == count, "\(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    init(storage: Storage, offset: Int, shape: [Int]) {
        let n = shape.reduce(1, *)
        precondition(offset + n <= storage.capacity)
        self.storage = storage
        self.offset = offset
        self.shape = shape
        count = n
    }

    /// Pointer to the first element.
    @inlinable public var data: UnsafeMutablePointer<Float> { storage.pointer + offset }

    /// The elements as an array (a copy).
    public var array: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// Rank (number of axes).
    public var rank: Int { shape.count }

    /// Element access by flat index.
    public subscript(i: Int) -> Float {
        get { data[i] }
        set { data[i] = newValue }
    }

    /// Sets every element to zero.
    public func zero() { data.update(repeating: 0, count: count) }

    /// Copies the elements of `other` (same element count) into this tensor.
    public func copy(from other: Tensor) {
        precondition(other.count == count)
        data.update(from: other.data, count: count)
    }

    /// A view with a different shape and the same element count.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        let n = newShape.reduce(1, *)
        guard n == count else {
            throw EngineError.shapeMismatch("cannot reshape \(shape) to \(newShape)")
        }
        return Tensor(storage: storage, offset: offset, shape: newShape)
    }

    /// A view of batch items `range` along axis 0: shape `[range.count, shape[1...]]`.
    public func batchSlice(_ range: Range<Int>) throws -> Tensor {
        guard rank >= 1, range.lowerBound >= 0, range.upperBound <= shape[0] else {
            throw EngineError.shapeMismatch("batch slice \(range) of \(shape)")
        }
        let inner = count / max(1, shape[0])
        return Tensor(storage: storage, offset: offset + range.lowerBound * inner,
                      shape: [range.count] + shape.dropFirst())
    }

    /// Changes the shape in place, reallocating only when the storage is too small.
    /// Returns the tensor to use (itself, or a fresh one). Contents are unspecified.
    /// Layers use it for the output and gradient buffers they own: `out = Tensor.ensure(out, shape)`.
    public static func ensure(_ t: Tensor?, _ shape: [Int]) -> Tensor {
        let n = shape.reduce(1, *)
        if let t, t.offset == 0, t.storage.capacity >= n {
            t.shape = shape
            t.count = n
            return t
        }
        return Tensor(shape: shape)
    }
}

extension Tensor {
    /// The tensor a layer writes a result of `shape` into: the caller's `into` when given, else
    /// the layer's own buffer `owned` (made, or regrown, and kept in `owned` for the next call).
    /// Returns nil when `into` holds another number of elements or shares memory with one of
    /// `reads` (a kernel must not write what it reads); the layer reports that with its name.
    public static func output(into: Tensor?, shape: [Int], owned: inout Tensor?, notSharingWith reads: [Tensor] = []) -> Tensor? {
        guard let into else {
            let y = Tensor.ensure(owned, shape)
            owned = y
            return y
        }
        guard into.count == shape.reduce(1, *), !reads.contains(where: { $0.storage === into.storage }) else { return nil }
        return into
    }
}
