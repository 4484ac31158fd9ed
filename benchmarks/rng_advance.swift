// RNG.advance(by:) (a jump through the characteristic polynomial of xoshiro256**'s state
// transition) against stepping as many times, and one x^k mod p. GraftSupport's RNG.swift is
// compiled in with this file (it needs only SupportError from the rest of the module).
//
// Build and run (from the repository root):
//   sed 's/^import Foundation$//' Sources/GraftSupport/RNG.swift | sed '1i import Foundation' > /tmp/RNG.swift
//   swiftc -O -wmo -parse-as-library /tmp/RNG.swift benchmarks/rng_advance.swift -o /tmp/rng_advance && /tmp/rng_advance
import Foundation

enum SupportError: Error { case invalidArgument(String) }

@main
enum RNGAdvance {
    static func main() {
        let distance = 23_440_000   // all-MiniLM-L6-v2's word embeddings: 2 draws x 30,522 x 384
        var jumped = RNG(seed: 3)
        _ = RNG.characteristicPolynomial   // found once (Berlekamp-Massey), not timed
        var best = 1e9
        for _ in 0..<20 {
            let t0 = Date()
            jumped.advance(by: distance)
            best = min(best, Date().timeIntervalSince(t0))
        }
        print(String(format: "advance(by: %d), best of 20: %.1f us", distance, best * 1e6))
        var stepped = RNG(seed: 3)
        let t0 = Date()
        for _ in 0..<distance { stepped.step() }
        print(String(format: "stepping %d times: %.1f ms (state bit %d)", distance, Date().timeIntervalSince(t0) * 1e3, Int(stepped.state.0 & 1)))
    }
}
