// Dropout keep flags for 2M elements: the scalar SplitMix64 draw per element against the
// eight-lane version of FastMath.keepFlags (checks first that both give the same flags).
// Build and run: swiftc -O -target-cpu haswell benchmarks/keep_flags.swift -o keep_flags && ./keep_flags
import Foundation
@inline(__always) func mix(_ x: UInt64) -> UInt64 {
    var z = x
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}
let inc: UInt64 = 0x9E37_79B9_7F4A_7C15
@inline(__always) func hashUniform(_ key: UInt64, _ i: Int) -> Float {
    let z = mix(key &+ UInt64(truncatingIfNeeded: i) &* inc)
    return Float(z >> 40) * (1.0 / 16_777_216.0)
}
@inline(never) func scalar(_ key: UInt64, _ start: Int, _ n: Int, _ keep: Float, _ m: UnsafeMutablePointer<UInt8>) {
    for j in 0..<n { m[j] = hashUniform(key, start + j) < keep ? 1 : 0 }
}
@inline(never) func simd(_ key: UInt64, _ start: Int, _ n: Int, _ keep: Float, _ m: UnsafeMutablePointer<UInt8>) {
    let thr = SIMD8<UInt64>(repeating: UInt64((keep * 16_777_216).rounded(.up)))
    let lane = SIMD8<UInt64>(0, 1, 2, 3, 4, 5, 6, 7)
    var j = 0
    while j + 8 <= n {
        var z = SIMD8<UInt64>(repeating: key) &+ (SIMD8<UInt64>(repeating: UInt64(truncatingIfNeeded: start + j)) &+ lane) &* inc
        z = (z ^ (z &>> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z &>> 27)) &* 0x94D0_49BB_1331_11EB
        let u = (z ^ (z &>> 31)) &>> 40
        let flag = (u &- thr) &>> 63
        UnsafeMutableRawPointer(m + j).storeBytes(of: SIMD8<UInt8>(truncatingIfNeeded: flag), as: SIMD8<UInt8>.self)
        j += 8
    }
    while j < n { m[j] = hashUniform(key, start + j) < keep ? 1 : 0; j += 1 }
}
let n = 2_097_152
let a = UnsafeMutablePointer<UInt8>.allocate(capacity: n), b = UnsafeMutablePointer<UInt8>.allocate(capacity: n)
for keep: Float in [0.9, 0.5, 0.8999999, 1.0, 0.0] {
    for key: UInt64 in [1, 0xdeadbeefcafebabe, 42] {
        scalar(key, 12345, n - 3, keep, a); simd(key, 12345, n - 3, keep, b)
        for i in 0..<(n-3) where a[i] != b[i] { print("MISMATCH", keep, key, i); exit(1) }
    }
}
for _ in 0..<3 {
    var t0 = DispatchTime.now().uptimeNanoseconds
    scalar(7, 0, n, 0.9, a)
    var t1 = DispatchTime.now().uptimeNanoseconds
    print("scalar", Double(t1 - t0) / 1e6, "ms")
    t0 = DispatchTime.now().uptimeNanoseconds
    simd(7, 0, n, 0.9, b)
    t1 = DispatchTime.now().uptimeNanoseconds
    print("simd", Double(t1 - t0) / 1e6, "ms")
}
