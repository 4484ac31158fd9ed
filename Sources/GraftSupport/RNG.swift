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
        step()
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 24 bits.
    @inline(__always)
    public mutating func uniform() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Uniform integer in `0..<n` (n > 0).
    public mutating func int(below n: Int) -> Int { Int(next() % UInt64(n)) }

    /// Moves past `count` calls of ``uniform()`` (one draw each) without computing them.
    public mutating func skipUniforms(_ count: Int) { advance(by: count) }

    /// Moves past `count` calls of ``normal()`` (two draws each) without computing them.
    public mutating func skipNormals(_ count: Int) { advance(by: count.multipliedReportingOverflow(by: 2).partialValue) }

    /// The state transition of ``next()`` without its output.
    @inline(__always)
    mutating func step() {
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotl(state.3, 45)
    }

    /// Moves the state `steps` calls of ``next()`` ahead, as that many calls would (nothing for
    /// `steps <= 0`). Short distances step; long ones apply `T^steps`, `T` the (linear) state
    /// transition, through its characteristic polynomial `p` (degree 256, found once by
    /// Berlekamp-Massey on an output bit): `x^steps mod p = Σ r_i x^i` by squaring, so
    /// `T^steps s = Σ r_i T^i s` over 256 steps; xoshiro's own `jump()` does this for the one
    /// distance 2^128. Opening all-MiniLM-L6-v2 moves past 44 million draws of the weights it
    /// loads (``skipNormals(_:)``): 60 ms stepping; a jump of 23 million steps takes 0.06-0.08 ms
    /// (`benchmarks/rng_advance.swift`).
    public mutating func advance(by steps: Int) {
        guard steps > 0 else { return }
        guard steps >= 4096, let p = Self.characteristicPolynomial else {
            for _ in 0..<steps { step() }
            return
        }
        let r = GF2Polynomial.power(ofXTo: UInt64(steps), modulo: p)
        var sum: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        for i in 0..<256 {
            if r.bit(i) { sum.0 ^= state.0; sum.1 ^= state.1; sum.2 ^= state.2; sum.3 ^= state.3 }
            step()
        }
        state = sum
    }

    /// The characteristic polynomial of the state transition (its terms below `x^256`; nil if
    /// Berlekamp-Massey did not find degree 256, and ``advance(by:)`` then steps).
    static let characteristicPolynomial: GF2Polynomial? = {
        // The lowest bit of the first state word over 512 steps from a nonzero state.
        var g = RNG(seed: 1)
        var bits = [UInt8](repeating: 0, count: 512)
        for j in 0..<512 { bits[j] = UInt8(g.state.0 & 1); g.step() }
        // Berlekamp-Massey over GF(2): the shortest c (c_0 = 1) with Σ_{i<=L} c_i b_{j-i} = 0.
        var c = [UInt8](repeating: 0, count: 513), b = c
        c[0] = 1; b[0] = 1
        var l = 0, m = -1
        for n in 0..<512 {
            var d = bits[n]
            if l > 0 { for i in 1...l { d ^= c[i] & bits[n - i] } }
            guard d == 1 else { continue }
            let previous = c
            for i in 0..<(512 - (n - m)) where b[i] == 1 { c[i + n - m] ^= 1 }
            if 2 * l <= n { l = n + 1 - l; m = n; b = previous }
        }
        guard l == 256 else { return nil }
        // p(x) = x^256 + Σ c_i x^(256 - i): the term of x^k is c_(256 - k).
        var p = GF2Polynomial()
        for k in 0..<256 where c[256 - k] == 1 { p.flip(k) }
        return p
    }()

    /// Standard normal (Box-Muller), from two draws.
    public mutating func normal() -> Float {
        let u1 = max(Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0), 1e-300)
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        return Float((-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2))
    }
}

/// A polynomial over GF(2) of degree below 256, its coefficients as 256 bits (``RNG/advance(by:)``).
struct GF2Polynomial: Sendable {
    var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    func bit(_ i: Int) -> Bool {
        let w: UInt64
        switch i >> 6 { case 0: w = words.0; case 1: w = words.1; case 2: w = words.2; default: w = words.3 }
        return (w >> UInt64(i & 63)) & 1 == 1
    }

    mutating func flip(_ i: Int) {
        let m: UInt64 = 1 << UInt64(i & 63)
        switch i >> 6 { case 0: words.0 ^= m; case 1: words.1 ^= m; case 2: words.2 ^= m; default: words.3 ^= m }
    }

    /// Adds (XORs) `other` into this polynomial.
    mutating func add(_ other: GF2Polynomial) {
        words.0 ^= other.words.0; words.1 ^= other.words.1; words.2 ^= other.words.2; words.3 ^= other.words.3
    }

    /// `self * x mod p`, `p` holding the terms below `x^256` of a monic polynomial of degree 256.
    func timesX(modulo p: GF2Polynomial) -> GF2Polynomial {
        var r = GF2Polynomial()
        r.words = (words.0 << 1, (words.1 << 1) | (words.0 >> 63), (words.2 << 1) | (words.1 >> 63), (words.3 << 1) | (words.2 >> 63))
        if words.3 >> 63 == 1 { r.add(p) }
        return r
    }

    /// `a * b mod p` (shift and add, from `b`'s highest coefficient down).
    static func product(_ a: GF2Polynomial, _ b: GF2Polynomial, modulo p: GF2Polynomial) -> GF2Polynomial {
        var r = GF2Polynomial()
        for i in stride(from: 255, through: 0, by: -1) {
            r = r.timesX(modulo: p)
            if b.bit(i) { r.add(a) }
        }
        return r
    }

    /// `x^e mod p` (square and multiply over the bits of `e`).
    static func power(ofXTo e: UInt64, modulo p: GF2Polynomial) -> GF2Polynomial {
        var r = GF2Polynomial()
        r.flip(0)
        for i in stride(from: 63, through: 0, by: -1) {
            r = product(r, r, modulo: p)
            if (e >> UInt64(i)) & 1 == 1 { r = r.timesX(modulo: p) }
        }
        return r
    }
}

import Foundation
@inline(__always) private func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Foundation.cos(x) }
