import GraftSupport
/// Float math for the element-wise kernels, written as branch-free scalar polynomials so
/// that loops over them auto-vectorise in release builds (measured: 4M `exp` in ~9 ms vs
/// ~25 ms for libm `expf`; an explicit `SIMD8` version with `rounded`/`Int32` lane conversion
/// was 20x slower than either) and stay cheap in debug builds.
///
/// - ``exp(_:)``: Cephes-style range reduction + degree-6 polynomial; relative error < 2e-7
///   on [-87, 88] (inputs are clamped to that range, so `exp(-inf)` gives ~1e-38, not 0;
///   callers that need exact zeros mask them).
/// - ``erf(_:)``: rational approximation (the one Eigen uses), absolute error < 5e-7.
/// - ``tanh(_:)``: `1 - 2 / (exp(2x) + 1)`, absolute error < 3e-7.
/// All three are checked against libm in the tests.
public enum FastMath {
    public typealias V = SIMD8<Float>

    @inlinable @inline(__always)
    public static func exp(_ x0: Float) -> Float {
        var x = Swift.min(Swift.max(x0, -87), 88)
        // Round x * log2(e) to an integer n by adding 1.5 * 2^23; n sits in the low mantissa bits.
        let t = x * 1.44269504088896341 + 12_582_912.0
        let fx = t - 12_582_912.0
        x = x - fx * 0.693359375
        x = x + fx * 2.12194440e-4
        let z = x * x
        var y: Float = 1.9875691500e-4
        y = y * x + 1.3981999507e-3
        y = y * x + 8.3334519073e-3
        y = y * x + 4.1665795894e-2
        y = y * x + 1.6666665459e-1
        y = y * x + 5.0000001201e-1
        y = y * z + x + 1
        let bits = (t.bitPattern &- Float(12_582_912.0).bitPattern &+ 127) &<< 23
        return y * Float(bitPattern: bits)
    }

    @inlinable @inline(__always)
    public static func erf(_ a: Float) -> Float {
        let x = Swift.min(Swift.max(a, -4), 4)
        let x2 = x * x
        var p: Float = x2 * -2.72614225801306e-10 + 2.77068142495902e-08
        p = x2 * p + -2.10102402082508e-06
        p = x2 * p + -5.69250639462346e-05
        p = x2 * p + -7.34990630326855e-04
        p = x2 * p + -2.95459980854025e-03
        p = x2 * p + -1.60960333262415e-02
        p = x * p
        var q: Float = x2 * -1.45660718464996e-05 + -2.13374055278905e-04
        q = x2 * q + -1.68282697438203e-03
        q = x2 * q + -7.37332916720468e-03
        q = x2 * q + -1.42647390514189e-02
        return p / q
    }

    @inlinable @inline(__always)
    public static func tanh(_ x: Float) -> Float {
        1 - 2 / (exp(x + x) + 1)
    }

    @inlinable @inline(__always) public static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inlinable @inline(__always) public static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    /// `dst[i] = f(src[i])` for `i < n` (`dst` may equal `src`).
    ///
    /// In place the loop reads and writes through the one pointer: given two pointers that are
    /// equal, the vectoriser's run-time overlap check fails and the loop runs scalar (an
    /// erf-based GELU in place: 6.5 times slower, `benchmarks/in_place_map.swift`).
    @inlinable @inline(__always)
    public static func map(_ n: Int, _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ f: (Float) -> Float) {
        if src == UnsafePointer(dst) {
            for i in 0..<n { dst[i] = f(dst[i]) }
        } else {
            for i in 0..<n { dst[i] = f(src[i]) }
        }
    }

    /// `dst[i] = f(a[i], b[i])` for `i < n` (`dst` may equal `a` or `b`: then one pointer serves
    /// both, as in ``map(_:_:_:_:)``).
    @inlinable @inline(__always)
    public static func map2(_ n: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
                     _ f: (Float, Float) -> Float) {
        if a == UnsafePointer(dst) {
            for i in 0..<n { dst[i] = f(dst[i], b[i]) }
        } else if b == UnsafePointer(dst) {
            for i in 0..<n { dst[i] = f(a[i], dst[i]) }
        } else {
            for i in 0..<n { dst[i] = f(a[i], b[i]) }
        }
    }

    /// Counter-based uniform in [0, 1) for element `i` under `key` (SplitMix64 finaliser):
    /// any thread can draw element `i` and get the same number.
    @inlinable @inline(__always)
    public static func hashUniform(_ key: UInt64, _ i: Int) -> Float {
        let z = SplitMix64.mix(key &+ UInt64(truncatingIfNeeded: i) &* SplitMix64.increment)
        return Float(z >> 40) * (1.0 / 16_777_216.0)
    }

    /// Dropout keep flags for elements `start ..< start + n` under `key`: `flags[j]` is 1 when
    /// ``hashUniform(_:_:)`` of element `start + j` is below `keep`, else 0 — the same flags as
    /// the scalar draw, eight elements at a time (the hash in `SIMD8<UInt64>` lanes, the
    /// comparison on the 24-bit integer the uniform is made of: `u / 2^24 < keep` exactly when
    /// `u < ceil(keep * 2^24)`).
    @inlinable
    public static func keepFlags(_ key: UInt64, start: Int, count n: Int, keep: Float, into flags: UnsafeMutablePointer<UInt8>) {
        let limit = UInt64(Swift.max(0, Swift.min(16_777_216, (keep * 16_777_216).rounded(.up))))
        let threshold = SIMD8<UInt64>(repeating: limit)
        let lanes = SIMD8<UInt64>(0, 1, 2, 3, 4, 5, 6, 7) &* SplitMix64.increment
        let step = SplitMix64.increment &* 8
        var x = SIMD8<UInt64>(repeating: key &+ UInt64(truncatingIfNeeded: start) &* SplitMix64.increment) &+ lanes
        var j = 0
        while j + 8 <= n {
            var z = x
            z = (z ^ (z &>> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z &>> 27)) &* 0x94D0_49BB_1331_11EB
            let u = (z ^ (z &>> 31)) &>> 40
            // u < limit (both below 2^25) exactly when u - limit wraps: its top bit is the flag.
            let flag = (u &- threshold) &>> 63
            UnsafeMutableRawPointer(flags + j).storeBytes(of: SIMD8<UInt8>(truncatingIfNeeded: flag), as: SIMD8<UInt8>.self)
            x &+= SIMD8<UInt64>(repeating: step)
            j += 8
        }
        while j < n { flags[j] = hashUniform(key, start + j) < keep ? 1 : 0; j += 1 }
    }

    /// The largest `s[j]` (`j < n`) whose `mask[j]` is not 0; `-infinity` when every one is masked.
    @inlinable @inline(__always)
    public static func maskedMax(_ s: UnsafePointer<Float>, _ mask: UnsafePointer<Float>, _ n: Int) -> Float {
        let hidden = V(repeating: -Float.infinity), zero = V(repeating: 0)
        var acc = hidden
        var j = 0
        while j + 8 <= n {
            let v = load(s + j).replacing(with: hidden, where: load(mask + j) .== zero)
            acc = acc.replacing(with: v, where: v .> acc)
            j += 8
        }
        var m = laneMax(acc)
        while j < n { if mask[j] != 0 { m = Swift.max(m, s[j]) }; j += 1 }
        return m
    }
}

extension FastMath {
    /// Sum of `n` floats (8 lanes, then lanes summed).
    @inlinable @inline(__always)
    public static func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = V(repeating: 0)
        var i = 0
        while i + 8 <= n { acc += load(p + i); i += 8 }
        var s = acc.sum()
        while i < n { s += p[i]; i += 1 }
        return s
    }

    /// Dot product of `n` floats.
    @inlinable @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = V(repeating: 0)
        var i = 0
        while i + 8 <= n { acc += load(a + i) * load(b + i); i += 8 }
        var s = acc.sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// The largest of the eight lanes. (Written out, like the lane-wise maxima above: the
    /// standard library's `pointwiseMax` and `max()` on `SIMD8<Float>` were measured not inlined
    /// here, one call per eight floats, and slower than a scalar loop.)
    @inlinable @inline(__always)
    public static func laneMax(_ v: V) -> Float {
        var m = v[0]
        for l in 1..<8 { m = Swift.max(m, v[l]) }
        return m
    }

    /// Maximum of `n >= 1` floats.
    @inlinable @inline(__always)
    public static func max(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var i = 0
        var m = -Float.infinity
        if n >= 8 {
            var acc = load(p)
            i = 8
            while i + 8 <= n { let v = load(p + i); acc = acc.replacing(with: v, where: v .> acc); i += 8 }
            m = laneMax(acc)
        }
        while i < n { m = Swift.max(m, p[i]); i += 1 }
        return m
    }

    /// The index of the first maximum of `n >= 1` floats: what `best = 0; for j in 1..<n where
    /// p[j] > p[best] { best = j }` returns, in two lane-wise passes (the maximum, then the first
    /// element equal to it: 2.4-2.8x faster over 8,192-float rows, `benchmarks/first_argmax.swift`).
    /// A NaN maximum takes the scalar loop.
    @inlinable
    public static func firstArgmax(_ p: UnsafePointer<Float>, _ n: Int) -> Int {
        let m = max(p, n)
        if m.isNaN { return scalarFirstArgmax(p, n) }
        return firstIndex(of: m, in: p, n) ?? scalarFirstArgmax(p, n)   // nil not reached: some element equals the maximum
    }

    /// Whether ``firstArgmax(_:_:)`` of the `n` floats at `p` is `j`, given their maximum `m`
    /// (``max(_:_:)``, which a caller such as the cross-entropy has already taken): `p[j] == m`
    /// and no element before `j` equals `m`. Reads only `p[0...j]` unless `m` is NaN or -inf.
    @inlinable
    public static func isFirstArgmax(_ j: Int, _ p: UnsafePointer<Float>, _ n: Int, maximum m: Float) -> Bool {
        if m.isNaN { return scalarFirstArgmax(p, n) == j }
        if p[j] == m { return firstIndex(of: m, in: p, j + 1) == j }
        // `max` returns one of the elements, or its starting -inf when it saw none but NaNs (fewer
        // than 8 of them); then no element equals `m` and `firstArgmax` takes the scalar loop.
        return m == -.infinity && firstIndex(of: m, in: p, n) == nil && scalarFirstArgmax(p, n) == j
    }

    /// The first `j < n` with `p[j] == m` (8 lanes at a time), or nil.
    @inlinable
    static func firstIndex(of m: Float, in p: UnsafePointer<Float>, _ n: Int) -> Int? {
        let target = V(repeating: m)
        var j = 0
        scan: while j + 8 <= n {
            let equal = load(p + j) .== target
            for l in 0..<8 where equal[l] { break scan }
            j += 8
        }
        while j < n { if p[j] == m { return j }; j += 1 }
        return nil
    }

    @inlinable
    static func scalarFirstArgmax(_ p: UnsafePointer<Float>, _ n: Int) -> Int {
        var best = 0
        var value = p[0]
        for j in 1..<Swift.max(n, 1) where p[j] > value { value = p[j]; best = j }
        return best
    }

    /// `p[i] *= s`.
    @inlinable @inline(__always)
    public static func scale(_ p: UnsafeMutablePointer<Float>, _ n: Int, _ s: Float) {
        for i in 0..<n { p[i] *= s }
    }

    /// `sum (x[i] - m)^2`.
    @inlinable @inline(__always)
    public static func sumSquaredDeviations(_ x: UnsafePointer<Float>, _ n: Int, _ m: Float) -> Float {
        var acc = V(repeating: 0)
        var i = 0
        while i + 8 <= n { let d = load(x + i) - m; acc += d * d; i += 8 }
        var s = acc.sum()
        while i < n { let d = x[i] - m; s += d * d; i += 1 }
        return s
    }

    /// LayerNorm backward row sums: `(sum g*w, sum g*w*xhat)` with `xhat = (x - m) * rs`.
    @inlinable @inline(__always)
    public static func layerNormBackwardSums(_ g: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                      _ n: Int, _ m: Float, _ rs: Float) -> (Float, Float) {
        var a = V(repeating: 0), b = V(repeating: 0)
        var i = 0
        while i + 8 <= n {
            let dn = load(g + i) * load(w + i)
            a += dn
            b += dn * ((load(x + i) - m) * rs)
            i += 8
        }
        var sa = a.sum(), sb = b.sum()
        while i < n { let dn = g[i] * w[i]; sa += dn; sb += dn * (x[i] - m) * rs; i += 1 }
        return (sa, sb)
    }
}
