/// Named scratch tensors shared by layers that never need them at the same time.
///
/// Backward runs one transformer block after another, so the gradient buffers a block uses
/// inside its backward are dead once it returns: one set serves every block of a model.
/// A model creates one `Workspace` and passes it to each block; a block asks for its
/// buffers by name (``tensor(_:_:)``) and for the gradient it returns with ``alternate(_:_:avoiding:)``,
/// which hands out one of two buffers, never the one holding the block's incoming gradient
/// (ping-pong: block `L` reads the buffer block `L+1` returned and writes the other).
///
/// Rules that keep this correct:
/// - A name stands for one buffer. Whoever asks for it gets the same memory, so two tensors
///   that are alive at the same time need different names.
/// - Contents are unspecified on request; the caller overwrites them.
/// - A tensor handed out stays valid (same memory, same shape) until the same name is requested
///   again. Storage grows when a larger shape is requested; the old storage lives on as long
///   as a tensor still refers to it.
///
/// Not thread-safe: one workspace per model, used by one thread of control at a time.
public final class Workspace {
    private var slots: [String: Storage] = [:]

    public init() {}

    /// The name of the ping-pong pair that blocks return their input gradient in (with
    /// ``alternate(_:_:avoiding:)``); the next consumer of a block's gradient (another block, an
    /// embedding dropout) takes the other buffer of the pair.
    public static let blockGradient = "block.dx"

    /// A tensor of `shape` in the buffer called `name` (contents unspecified).
    public func tensor(_ name: String, _ shape: [Int]) -> Tensor {
        let n = shape.reduce(1, *)
        if let s = slots[name], s.capacity >= n { return Tensor(storage: s, offset: 0, shape: shape) }
        let s = Storage(capacity: n)
        slots[name] = s
        return Tensor(storage: s, offset: 0, shape: shape)
    }

    /// One of the two buffers `name#0` / `name#1`: the one whose memory is not `avoiding`'s.
    /// Used for the gradient a block returns, which the next block backward reads while it
    /// writes its own.
    public func alternate(_ name: String, _ shape: [Int], avoiding: Tensor) -> Tensor {
        let first = tensor(name + "#0", shape)
        return first.storage === avoiding.storage ? tensor(name + "#1", shape) : first
    }

    /// Bytes held by the workspace's buffers.
    public var bytes: Int { slots.values.reduce(0) { $0 + $1.capacity * 4 } }
}
