import GraftSupport

/// Gradient reversal (Ganin & Lempitsky, *Unsupervised Domain Adaptation by Backpropagation*,
/// ICML 2015): the identity in the forward pass, `dx = -λ dy` in the backward pass. Put between
/// an encoder and a domain classifier, it lets one backward train the classifier to tell the
/// domains apart while pushing the encoder, by the same gradient reversed and scaled by `λ`,
/// towards features the classifier cannot tell apart. No parameters.
public final class GradientReversal {
    /// The scale `λ ≥ 0` of the reversed gradient (domain-adversarial training puts it on a schedule).
    public var lambda: Float
    private var dx: Tensor?
    private var shape: [Int]?

    public init(lambda: Float = 1) { self.lambda = lambda }

    /// `x` `[...]` -> `x` itself (the identity: no copy).
    public func forward(_ x: Tensor) -> Tensor {
        shape = x.shape
        return x
    }

    /// `dy` `[...]` (the forward input's shape) -> `dx = -λ dy` (owned by the layer).
    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let shape, dy.shape == shape else {
            throw EngineError.shapeMismatch("GradientReversal backward dy \(dy.shape) for a forward of \(shape.map { "\($0)" } ?? "nothing")")
        }
        let d = Tensor.ensure(dx, shape)
        dx = d
        let scale = -lambda
        let pg = SharedPointer(dy.data), pd = SharedPointer(d.data)
        Engine.parallelFor(dy.count, minChunk: Kernels.minChunk) { r in
            for i in r { pd.value[i] = scale * pg.value[i] }
        }
        return d
    }
}
