// First argmax of 2,048 rows of 8,192 floats: the scalar compare-and-branch loop against two
// lane-wise passes (maximum, then the first element equal to it; FastMath.firstArgmax's form).
// The checksum must agree.
// Build and run: swiftc -O -target-cpu haswell benchmarks/first_argmax.swift -o first_argmax && ./first_argmax
import Foundation
typealias V = SIMD8<Float>
@inline(__always) func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
@inline(never) func scalarArg(_ p: UnsafePointer<Float>, _ v: Int) -> Int {
    var best = 0; var bv = p[0]
    for j in 1..<v where p[j] > bv { bv = p[j]; best = j }
    return best
}
@inline(__always) func laneMax(_ v: V) -> Float { var m = v[0]; for l in 1..<8 { m = Swift.max(m, v[l]) }; return m }
@inline(__always) func vmax(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var i = 0; var m = -Float.infinity
    if n >= 8 { var acc = load(p); i = 8
        while i + 8 <= n { let v = load(p + i); acc = acc.replacing(with: v, where: v .> acc); i += 8 }
        m = laneMax(acc) }
    while i < n { m = Swift.max(m, p[i]); i += 1 }
    return m
}
@inline(never) func simdArg(_ p: UnsafePointer<Float>, _ n: Int) -> Int {
    let m = vmax(p, n)
    var j = 0
    let mv = V(repeating: m)
    while j + 8 <= n {
        let eq = load(p + j) .== mv
        var hit = false
        for l in 0..<8 where eq[l] { hit = true; break }
        if hit { break }
        j += 8
    }
    while j < n { if p[j] == m { return j }; j += 1 }
    return scalarArg(p, n)
}
let rows = 2048, v = 8192
let p = UnsafeMutablePointer<Float>.allocate(capacity: rows * v)
for i in 0..<(rows*v) { p[i] = Float.random(in: -5...5) }
for r in stride(from: 0, to: rows, by: 7) { p[r * v + (r * 13) % v] = 9 }   // some rows with a planted max
for f in [("scalar", scalarArg), ("simd", simdArg)] as [(String, (UnsafePointer<Float>, Int) -> Int)] {
    var best = 1e9; var chk = 0
    for _ in 0..<5 {
        let t0 = DispatchTime.now().uptimeNanoseconds
        chk = 0
        for r in 0..<rows { chk &+= f.1(p + r * v, v) * (r + 1) }
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
    }
    print(f.0, best, "ms", chk)
}
