/// Residual connection: `y = a + b`. Its backward passes `dy` unchanged to both inputs.
public final class Residual {
    private var out: Tensor?
    public init() {}

    /// `a`, `b`: same shape. Returns `a + b` (owned by this layer).
    public func forward(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        guard a.shape == b.shape else { throw EngineError.shapeMismatch("residual \(a.shape) + \(b.shape)") }
        let y = Tensor.ensure(out, a.shape)
        out = y
        Kernels.add(a.data, b.data, y.data, a.count)
        return y
    }
}
