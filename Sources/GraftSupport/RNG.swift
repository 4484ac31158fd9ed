/// SplitMix64: a 64-bit seeded generator. The corpus shuffles packed blocks with it (so a shuffle
/// is the same on every platform) and ``RNG`` seeds itself through it; its stream is fixed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }

    @inlinable @inline(__always)
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The golden-ratio increment between states.
    @inlinable public static var increment: UInt64 { 0x9E37_79B9_7F4A_7C15 }

    public mutating func next() -> UInt64 {
        state &+= Self.increment
        return Self.mix(state)
    }
}

/// A seeded pseudo-random generator (xoshiro256**, seeded through ``SplitMix64``).
///
/// Its whole state is four `UInt64`s (``state``), which training checkpoints save so that a
/// restored run draws exactly the same numbers (dropout masks, shuffles) as an uninterrupted one.
public struct RNG: RandomNumberGenerator, Sendable, Equatable {
    public var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var s = SplitMix64(seed: seed)
        state = (s.next(), s.next(), s.next(), s.next())
    }

    /// Restores a generator from a saved ``state``.
    /// - Throws: ``SupportError/invalidArgument(_:)`` unless `state` is 4 words, not all zero.
    public init(state: [UInt64]) throws {
        guard state.count == 4, state.contains(where: { $0 != 0 }) else {
            throw SupportError.invalidArgument("RNG state must be 4 words, not all zero (got \(state.count) words)")
        }
        self.state = (state[0], state[1], state[2], state[3])
    }

    /// The state as 4 words (for saving).
    public var stateWords: [UInt64] { [state.0, state.1, state.2, state.3] }

    public static func == (a: RNG, b: RNG) -> Bool { a.stateWords == b.stateWords }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotl(state.3, 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 24 bits.
    @inline(__always)
    public mutating func uniform() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Uniform integer in `0..<n` (n > 0).
    public mutating func int(below n: Int) -> Int { Int(next() % UInt64(n)) }

    /// Moves past `count` calls of ``uniform()`` (one draw each) without computing them.
    public mutating func skipUniforms(_ count: Int) {
        for _ in 0..<max(0, count) { _ = next() }
    }

    /// Moves past `count` calls of ``normal()`` (two draws each) without computing them: a few
    /// nanoseconds per value instead of a logarithm and a cosine.
    public mutating func skipNormals(_ count: Int) {
        for _ in 0..<max(0, count) * 2 { _ = next() }
    }

    /// Standard normal (Box-Muller), from two draws.
    public mutating func normal() -> Float {
        let u1 = max(Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0), 1e-300)
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        return Float((-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2))
    }
}

import Foundation
@inline(__always) private func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Foundation.cos(x) }
