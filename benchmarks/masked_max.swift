// The attention softmax's masked row maximum over 16,384 rows of 128: a scalar loop, the
// standard library's pointwiseMax on SIMD8<Float>, an 8-float array, and replacing(with:where:)
// (FastMath.maskedMax's form). The last column is a checksum: all four must agree.
// Build and run: swiftc -O -target-cpu haswell benchmarks/masked_max.swift -o masked_max && ./masked_max
import Foundation
typealias V = SIMD8<Float>
@inline(__always) func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
@inline(never) func scalarMax(_ s: UnsafePointer<Float>, _ mask: UnsafePointer<Float>, _ n: Int) -> Float {
    var mx = -Float.infinity
    for j in 0..<n where mask[j] != 0 { mx = Swift.max(mx, s[j]) }
    return mx
}
@inline(never) func v1(_ s: UnsafePointer<Float>, _ mask: UnsafePointer<Float>, _ n: Int) -> Float {
    let hidden = V(repeating: -Float.infinity), zero = V(repeating: 0)
    var acc = hidden
    var j = 0
    while j + 8 <= n {
        acc = pointwiseMax(acc, load(s + j).replacing(with: hidden, where: load(mask + j) .== zero))
        j += 8
    }
    var m = acc.max()
    while j < n { if mask[j] != 0 { m = Swift.max(m, s[j]) }; j += 1 }
    return m
}
@inline(never) func v2(_ s: UnsafePointer<Float>, _ mask: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = [Float](repeating: -Float.infinity, count: 8)
    return acc.withUnsafeMutableBufferPointer { a in
        var j = 0
        while j + 8 <= n {
            for l in 0..<8 {
                let v = mask[j + l] != 0 ? s[j + l] : -Float.infinity
                a[l] = v > a[l] ? v : a[l]
            }
            j += 8
        }
        var m = -Float.infinity
        for l in 0..<8 { m = Swift.max(m, a[l]) }
        while j < n { if mask[j] != 0 { m = Swift.max(m, s[j]) }; j += 1 }
        return m
    }
}
@inline(never) func v3(_ s: UnsafePointer<Float>, _ mask: UnsafePointer<Float>, _ n: Int) -> Float {
    let hidden = V(repeating: -Float.infinity), zero = V(repeating: 0)
    var acc = hidden
    var j = 0
    while j + 8 <= n {
        let v = load(s + j).replacing(with: hidden, where: load(mask + j) .== zero)
        acc = acc.replacing(with: v, where: v .> acc)
        j += 8
    }
    var m = -Float.infinity
    for l in 0..<8 { m = Swift.max(m, acc[l]) }
    while j < n { if mask[j] != 0 { m = Swift.max(m, s[j]) }; j += 1 }
    return m
}
let rows = 16384, n = 128
let s = UnsafeMutablePointer<Float>.allocate(capacity: rows * n), m = UnsafeMutablePointer<Float>.allocate(capacity: rows * n)
for i in 0..<(rows*n) { s[i] = Float.random(in: -5...5); m[i] = i % 128 < 100 ? 1 : 0 }
for f in [("scalar", scalarMax), ("v1", v1), ("v2", v2), ("v3", v3)] as [(String, (UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Float)] {
    var best = 1e9; var chk: Float = 0
    for _ in 0..<5 {
        let t0 = DispatchTime.now().uptimeNanoseconds
        chk = 0
        for r in 0..<rows { chk += f.1(s + r * n, m + r * n, n) }
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
    }
    print(f.0, best, "ms", chk)
}
