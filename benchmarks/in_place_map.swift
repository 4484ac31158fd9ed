// FastMath.map and map2 in place (dst == src), as GraftEngine calls them: the erf-based GELU of
// inference (GELU.inferInPlace), the exp over a row of logits of the cross-entropy that overwrites
// them, the attention softmax's masked exp; and the GELU out of place for comparison. Given two
// equal pointers, a loop `dst[i] = f(src[i])` fails the vectoriser's run-time overlap check and
// runs scalar; FastMath.map now loops through one pointer when they are equal.
//
// Build and run (from the repository root; the flags are Package.swift's for AVX-512 machines,
// `-target-cpu haswell` alone for AVX2 ones):
//   grep -v '^import GraftSupport' Sources/GraftEngine/Core/FastMath.swift > /tmp/FastMath.swift
//   sed -n '/^public struct SplitMix64/,/^}/p' Sources/GraftSupport/RNG.swift > /tmp/SplitMix64.swift
//   swiftc -O -wmo -target-cpu skylake-avx512 -Xcc -Xclang -Xcc -target-feature -Xcc -Xclang -Xcc -prefer-256-bit \
//       /tmp/SplitMix64.swift /tmp/FastMath.swift benchmarks/in_place_map.swift -parse-as-library -o /tmp/in_place_map && /tmp/in_place_map
import Foundation
@inline(never) func gelu(_ n: Int, _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>) {
    FastMath.map(n, src, dst) { v in 0.5 * v * (1 + FastMath.erf(v * 0.70710678118654752)) }
}
@inline(never) func expInPlace(_ n: Int, _ p: UnsafeMutablePointer<Float>, _ mx: Float) {
    FastMath.map(n, p, p) { FastMath.exp($0 - mx) }
}
@inline(never) func maskedExp(_ n: Int, _ s: UnsafeMutablePointer<Float>, _ mask: UnsafePointer<Float>, _ mx: Float) {
    FastMath.map2(n, s, mask, s) { v, k in FastMath.exp(v - mx) * k }
}
@main
enum InPlaceMap {
    static func main() {
        let n = 1 << 22
        let a = UnsafeMutablePointer<Float>.allocate(capacity: n), b = UnsafeMutablePointer<Float>.allocate(capacity: n)
        let m = UnsafeMutablePointer<Float>.allocate(capacity: n)
        for i in 0..<n { a[i] = Float(i % 1000) / 250 - 2; b[i] = a[i]; m[i] = i % 7 == 0 ? 0 : 1 }
        func time(_ name: String, _ f: () -> Void) {
            var best = 1e9
            for _ in 0..<7 { let t0 = Date(); f(); best = min(best, Date().timeIntervalSince(t0)) }
            print(name.padding(toLength: 34, withPad: " ", startingAt: 0), String(format: "%6.2f ms  %5.2f G elements/s", best * 1e3, Double(n) / best / 1e9))
        }
        time("GELU, out of place") { gelu(n, a, b) }
        time("GELU, in place") { gelu(n, b, b) }
        time("exp, in place (cross-entropy)") { for i in stride(from: 0, to: n, by: 8192) { expInPlace(8192, b + i, 1) } }
        time("masked exp, in place (softmax)") { maskedExp(n, b, m, 1) }
    }
}
