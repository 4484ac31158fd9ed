import GraftSupport

/// A generator shared by several layers (dropout) and saved with training checkpoints.
public final class SharedRNG: @unchecked Sendable {
    public var rng: RNG
    public init(seed: UInt64) { rng = RNG(seed: seed) }
}
