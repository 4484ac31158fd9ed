import GraftSupport
import Foundation
import GraftEngine

/// Picks the next token from logits: greedy (temperature 0), or sampling from
/// `softmax(logits / temperature)` restricted to the `topK` most likely tokens and then to the
/// smallest set whose probability reaches `topP` (nucleus). Seeded and deterministic.
public struct Sampler: Sendable {
    public let temperature: Float
    public let topK: Int?
    public let topP: Float?
    public private(set) var rng: RNG

    public init(temperature: Float = 1, topK: Int? = nil, topP: Float? = nil, seed: UInt64 = 0) throws {
        guard temperature >= 0, temperature.isFinite else { throw ModelError.invalidArgument("temperature \(temperature) must be >= 0") }
        if let topK, topK < 1 { throw ModelError.invalidArgument("top-k \(topK) must be >= 1") }
        if let topP, !(topP > 0 && topP <= 1) { throw ModelError.invalidArgument("top-p \(topP) must be in (0, 1]") }
        self.temperature = temperature; self.topK = topK; self.topP = topP
        rng = RNG(seed: seed)
    }

    /// Index of the first maximum.
    public static func argmax(_ logits: [Float]) -> Int32 {
        var best = 0
        for j in 1..<logits.count where logits[j] > logits[best] { best = j }
        return Int32(best)
    }

    /// The candidate tokens and their renormalised probabilities (descending), after
    /// temperature, top-k and top-p. Exposed for tests.
    public func distribution(_ logits: [Float]) -> [(id: Int32, p: Double)] {
        let t = Double(temperature)
        var order = Array(0..<logits.count)
        order.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        if let topK { order = Array(order.prefix(topK)) }
        let mx = Double(logits[order[0]])
        var probs = order.map { Foundation.exp((Double(logits[$0]) - mx) / t) }
        var total = probs.reduce(0, +)
        if let topP, topP < 1 {
            var cum = 0.0, keep = 0
            while keep < probs.count {
                cum += probs[keep] / total
                keep += 1
                if cum >= Double(topP) { break }
            }
            order = Array(order.prefix(keep)); probs = Array(probs.prefix(keep))
            total = probs.reduce(0, +)
        }
        return zip(order, probs).map { (Int32($0), $1 / total) }
    }

    /// The next token id.
    public mutating func sample(_ logits: [Float]) throws -> Int32 {
        guard !logits.isEmpty else { throw ModelError.invalidArgument("no logits") }
        guard logits.allSatisfy({ $0.isFinite }) else { throw ModelError.invalidArgument("non-finite logits") }
        if temperature == 0 { return Self.argmax(logits) }
        let dist = distribution(logits)
        let u = Double(rng.next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        var cum = 0.0
        for (id, p) in dist {
            cum += p
            if u < cum { return id }
        }
        return dist[dist.count - 1].id
    }
}
