import Foundation
import GraftEngine
import GraftSupport
import Testing
@testable import GraftModels

/// MMD, the kernels and transfer component analysis (``TransferComponentAnalysis``) against
/// hand computations and what the math gives.
struct DomainShiftTests {
    /// `[n, d]` points from N(shift, I), seeded.
    static func cloud(_ n: Int, d: Int, shift: [Float], seed: UInt64) -> [Float] {
        var rng = RNG(seed: seed)
        return (0..<(n * d)).map { rng.normal() + shift[$0 % d] }
    }

    @Test func mmdMatchesAHandComputation() {
        // Relative: (mean difference)² / total variance; {0, 2} vs {1, 3}: 1 / var{0, 1, 2, 3} = 1 / 1.25.
        #expect(abs(relativeLinearMMD([0, 2], [1, 3], n: 2, m: 2, d: 1) - 0.8) < 1e-12)
        // x = {0, 2}, y = {1, 3} on a line.
        let x: [Float] = [0, 2], y: [Float] = [1, 3]
        // Linear: ‖mean x - mean y‖² = (1 - 2)².
        #expect(abs(maximumMeanDiscrepancy(x, y, n: 2, m: 2, d: 1, kernel: .linear) - 1) < 1e-6)
        // RBF, γ = 1/2: mean k(x,x') = (2 + 2e^-2)/4 = mean k(y,y'); mean k(x,y) = (3e^-0.5 + e^-4.5)/4.
        let expected = 1 + exp(-2.0) - (3 * exp(-0.5) + exp(-4.5)) / 2
        #expect(abs(maximumMeanDiscrepancy(x, y, n: 2, m: 2, d: 1, kernel: .rbf(gamma: 0.5)) - expected) < 1e-6)
        // Identical samples: 0 under both kernels.
        let p = Self.cloud(5, d: 3, shift: [0, 0, 0], seed: 1)
        #expect(maximumMeanDiscrepancy(p, p, n: 5, m: 5, d: 3, kernel: .linear) < 1e-6)
        #expect(maximumMeanDiscrepancy(p, p, n: 5, m: 5, d: 3, kernel: .rbf(gamma: 0.3)) < 1e-6)
        // Median heuristic on {0, 1, 3}: squared distances 1, 4, 9 → σ² = 4, γ = 1/8.
        #expect(EmbeddingKernel.medianHeuristic([0, 1, 3], n: 3, d: 1) == .rbf(gamma: 0.125))
    }

    @Test func symmetricEigenSolvesTheDefinition() throws {
        let a: [Float] = [4, 1, 0, 1, 3, 1, 0, 1, 2], b: [Float] = [2, 0, 0, 0, 1, 0, 0, 0, 1]
        let (values, v) = try LAPACK.generalizedSymmetricEigen(a, b, n: 3)
        #expect(values == values.sorted())
        for j in 0..<3 {
            for i in 0..<3 {
                let av = (0..<3).reduce(Float(0)) { $0 + a[i * 3 + $1] * v[$1 * 3 + j] }
                let bv = (0..<3).reduce(Float(0)) { $0 + b[i * 3 + $1] * v[$1 * 3 + j] }
                #expect(abs(av - values[j] * bv) < 1e-4)
            }
            // Vᵀ B V = I.
            for k in 0..<3 {
                let dot = (0..<3).reduce(Float(0)) { s, i in s + v[i * 3 + j] * (0..<3).reduce(Float(0)) { $0 + b[i * 3 + $1] * v[$1 * 3 + k] } }
                #expect(abs(dot - (j == k ? 1 : 0)) < 1e-4)
            }
        }
        #expect(throws: EngineError.self) { try LAPACK.generalizedSymmetricEigen(a, [Float](repeating: 0, count: 9), n: 3) }
    }

    /// Source = target: the MMD term `K L K` vanishes, so TCA is kernel PCA with `μ`. For the
    /// linear kernel on centered data `K H K = K²` and the top d components give `Z Zᵀ = K²/μ`;
    /// with `K = [[A, A], [A, A]]` (`A = X Xᵀ`) the projected source has `Z_s Z_sᵀ = 2 A² / μ`
    /// (inner products are those of `X` through `Xᵀ X`, up to a rotation of the components), and
    /// each target row equals its source row.
    @Test func identicalSetsGiveKernelPCA() throws {
        let n = 7, d = 3
        var x = Self.cloud(n, d: d, shift: [0, 0, 0], seed: 4)
        for c in 0..<d {   // center
            let mean = (0..<n).reduce(Float(0)) { $0 + x[$1 * d + c] } / Float(n)
            for i in 0..<n { x[i * d + c] -= mean }
        }
        let mu = 2.0
        let tca = try TransferComponentAnalysis(source: x, sourceCount: n, target: x, targetCount: n, dimension: d,
                                                kernel: .linear, components: d, mu: mu)
        let zs = tca.projectedSource, zt = tca.projectedTarget
        let a = EmbeddingKernel.linear.matrix(x, x, n: n, m: n, d: d)
        for i in 0..<n {
            for j in 0..<n {
                let zz = (0..<d).reduce(0.0) { $0 + Double(zs[i * d + $1]) * Double(zs[j * d + $1]) }
                let a2 = (0..<n).reduce(0.0) { $0 + Double(a[i * n + $1]) * Double(a[$1 * n + j]) }
                #expect(abs(zz - 2 * a2 / mu) <= 1e-3 * max(1, abs(2 * a2 / mu)), "(\(i), \(j)): \(zz) vs \(2 * a2 / mu)")
            }
        }
        for i in 0..<(n * d) { #expect(abs(zs[i] - zt[i]) <= 1e-4 * max(1, abs(zs[i]))) }
        // New points project as the training points do.
        let again = try tca.project(x, count: n)
        for i in 0..<(n * d) { #expect(abs(again[i] - zs[i]) <= 1e-4 * max(1, abs(zs[i]))) }
    }

    /// Two Gaussian clouds 3 apart along the first axis: the top 2 transfer components leave out
    /// that axis, so the MMD between the projected sets (relative to their spread) falls.
    @Test func shiftedCloudsGetCloser() throws {
        let n = 60, d = 4
        let source = Self.cloud(n, d: d, shift: [0, 0, 0, 0], seed: 8), target = Self.cloud(n, d: d, shift: [3, 0, 0, 0], seed: 9)
        func relativeMMD(_ s: [Float], _ t: [Float], _ dim: Int) -> Double { relativeLinearMMD(s, t, n: n, m: n, d: dim) }
        let before = relativeMMD(source, target, d)
        for kernel in [EmbeddingKernel.linear, EmbeddingKernel.medianHeuristic(source + target, n: 2 * n, d: d)] {
            let tca = try TransferComponentAnalysis(source: source, sourceCount: n, target: target, targetCount: n, dimension: d,
                                                    kernel: kernel, components: 2, mu: 1)
            let after = relativeMMD(tca.projectedSource, tca.projectedTarget, 2)
            #expect(before > 1.0 && after < 0.05 * before, "\(kernel): relative MMD \(before) → \(after)")
        }
        #expect(throws: ModelError.self) {
            try TransferComponentAnalysis(source: [Float](repeating: 0, count: 4 * (TransferComponentAnalysis.maxPoints)), sourceCount: TransferComponentAnalysis.maxPoints,
                                          target: [0, 0, 0, 0], targetCount: 1, dimension: 4, kernel: .linear, components: 2)
        }
    }
}
