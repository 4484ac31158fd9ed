import Foundation
import GraftEngine
import GraftSupport

/// A positive-definite kernel on embedding vectors.
public enum EmbeddingKernel: Sendable, Equatable {
    /// `k(x, y) = x · y`.
    case linear
    /// `k(x, y) = exp(-γ ‖x - y‖²)`.
    case rbf(gamma: Double)

    /// The kernel matrix `[n, m]` of the rows of `x` `[n, d]` and `y` `[m, d]` (row-major), one GEMM
    /// (`x yᵀ`) plus, for the RBF kernel, the squared norms.
    public func matrix(_ x: [Float], _ y: [Float], n: Int, m: Int, d: Int) -> [Float] {
        var k = [Float](repeating: 0, count: n * m)
        guard n > 0, m > 0, d > 0 else { return k }
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeBufferPointer { yp in
                k.withUnsafeMutableBufferPointer { kp in
                    BLAS.matmul(.none, .transposed, m: n, n: m, k: d, a: xp.baseAddress!, b: yp.baseAddress!, c: kp.baseAddress!)
                }
            }
        }
        guard case .rbf(let gamma) = self else { return k }
        let nx = EmbeddingKernel.squaredNorms(x, count: n, d: d), ny = EmbeddingKernel.squaredNorms(y, count: m, d: d)
        for i in 0..<n {
            for j in 0..<m {
                let dist = max(0, nx[i] + ny[j] - 2 * Double(k[i * m + j]))
                k[i * m + j] = Float(Foundation.exp(-gamma * dist))
            }
        }
        return k
    }

    static func squaredNorms(_ x: [Float], count: Int, d: Int) -> [Double] {
        (0..<count).map { i in (0..<d).reduce(0.0) { $0 + Double(x[i * d + $1]) * Double(x[i * d + $1]) } }
    }

    /// The median heuristic: `γ = 1 / (2 σ²)` with `σ²` the median squared distance between
    /// distinct rows of `points` `[n, d]` (1 when all rows coincide).
    public static func medianHeuristic(_ points: [Float], n: Int, d: Int) -> EmbeddingKernel {
        guard n > 1 else { return .rbf(gamma: 1) }
        let gram = EmbeddingKernel.linear.matrix(points, points, n: n, m: n, d: d)   // ‖x_i - x_j‖² = g_ii + g_jj - 2 g_ij
        var distances: [Double] = []
        distances.reserveCapacity(n * (n - 1) / 2)
        for i in 0..<n {
            for j in (i + 1)..<n {
                distances.append(max(0, Double(gram[i * n + i]) + Double(gram[j * n + j]) - 2 * Double(gram[i * n + j])))
            }
        }
        let sigma2 = median(distances)
        return .rbf(gamma: sigma2 > 0 ? 1 / (2 * sigma2) : 1)
    }
}

/// Maximum mean discrepancy between two samples under a kernel: the biased (V-statistic)
/// estimate `MMD² = mean k(x, x') + mean k(y, y') - 2 mean k(x, y)` over all pairs (diagonals
/// included), which is `‖mean(x) - mean(y)‖²` for the linear kernel; 0 for identical samples.
public func maximumMeanDiscrepancy(_ x: [Float], _ y: [Float], n: Int, m: Int, d: Int, kernel: EmbeddingKernel) -> Double {
    func mean(_ k: [Float]) -> Double { k.reduce(0.0) { $0 + Double($1) } / Double(max(k.count, 1)) }
    let value = mean(kernel.matrix(x, x, n: n, m: n, d: d)) + mean(kernel.matrix(y, y, n: m, m: m, d: d))
        - 2 * mean(kernel.matrix(x, y, n: n, m: m, d: d))
    return max(0, value)
}

/// The linear MMD² of `x` `[n, d]` and `y` `[m, d]` divided by the total variance (the trace
/// of the covariance) of all `n + m` rows: scale-free, so it compares spaces of different scale,
/// e.g. embeddings before and after a projection.
public func relativeLinearMMD(_ x: [Float], _ y: [Float], n: Int, m: Int, d: Int) -> Double {
    let all = x + y, count = n + m
    var spread = 0.0
    for c in 0..<d {
        let mean = (0..<count).reduce(0.0) { $0 + Double(all[$1 * d + c]) } / Double(count)
        spread += (0..<count).reduce(0.0) { $0 + pow(Double(all[$1 * d + c]) - mean, 2) } / Double(count)
    }
    return spread > 0 ? maximumMeanDiscrepancy(x, y, n: n, m: m, d: d, kernel: .linear) / spread : 0
}

/// Transfer component analysis (Pan, Tsang, Kwok & Yang, *Domain Adaptation via Transfer
/// Component Analysis*, IEEE TNN 2011): a projection of source and target points into `m`
/// components that keeps their variance while minimising the MMD between the projected sets.
///
/// With the kernel matrix `K` `[n, n]` of all `n = n_s + n_t` points (source first), the MMD
/// matrix `L = e eᵀ` (`e_i = 1/n_s` on source rows, `-1/n_t` on target rows) and the centering
/// `H = I - 11ᵀ/n`, the projection `W` `[n, m]` is the top `m` eigenvectors of
/// `(K L K + μ I)⁻¹ K H K`, solved as the symmetric-definite problem `K H K w = λ (K L K + μ I) w`
/// (LAPACK `ssygvd`; `Wᵀ (K L K + μ I) W = I`). A point `x` maps to `k(x, points) W`; the training
/// points to the rows of `K W`. The kernel is `n × n`: at most ``maxPoints`` points.
public struct TransferComponentAnalysis {
    /// The largest `n_s + n_t` accepted (the kernel and the eigenproblem are `n × n`: 4,000 points
    /// is 64 MB per matrix and a few seconds of LAPACK).
    public static let maxPoints = 4000

    public let kernel: EmbeddingKernel
    public let components: Int
    public let mu: Double
    /// The embedding dimension.
    public let dimension: Int
    /// The training points `[n, d]`, source rows first.
    let points: [Float]
    public let sourceCount: Int, targetCount: Int
    /// `[n, m]`.
    let projection: [Float]
    /// The eigenvalues of the kept components, largest first.
    public let eigenvalues: [Float]
    /// `K W`: the projected training points `[n, m]` (source rows first).
    public let projected: [Float]

    /// Fits the projection of `source` `[n_s, d]` and `target` `[n_t, d]` (row-major).
    public init(source: [Float], sourceCount ns: Int, target: [Float], targetCount nt: Int, dimension d: Int,
                kernel: EmbeddingKernel, components m: Int, mu: Double = 1) throws {
        let n = ns + nt
        guard ns > 0, nt > 0, d > 0, source.count == ns * d, target.count == nt * d else {
            throw ModelError.invalidArgument("TCA needs source and target points of dimension \(d) (got \(source.count) and \(target.count) values for \(ns) and \(nt) points)")
        }
        guard n <= Self.maxPoints else {
            throw ModelError.invalidArgument("TCA on \(n) points (\(ns) source + \(nt) target): the kernel is n × n, at most \(Self.maxPoints) points; sample fewer")
        }
        guard m >= 1, m <= n else { throw ModelError.invalidArgument("TCA components \(m) must be between 1 and the \(n) points") }
        guard mu > 0, mu.isFinite else { throw ModelError.invalidArgument("TCA's μ must be positive, got \(mu)") }
        let points = source + target
        let k = kernel.matrix(points, points, n: n, m: n, d: d)
        // K e (the MMD direction) and K 1 (for the centering).
        var ke = [Double](repeating: 0, count: n), k1 = [Double](repeating: 0, count: n)
        for i in 0..<n {
            for j in 0..<n {
                let v = Double(k[i * n + j])
                ke[i] += v * (j < ns ? 1 / Double(ns) : -1 / Double(nt))
                k1[i] += v
            }
        }
        // K H K = K K - (K 1)(K 1)ᵀ / n; K L K + μ I = (K e)(K e)ᵀ + μ I.
        var kk = [Float](repeating: 0, count: n * n)
        k.withUnsafeBufferPointer { kp in
            kk.withUnsafeMutableBufferPointer { op in
                BLAS.matmul(.none, .none, m: n, n: n, k: n, a: kp.baseAddress!, b: kp.baseAddress!, c: op.baseAddress!)
            }
        }
        var a = [Float](repeating: 0, count: n * n), b = [Float](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n {
                a[i * n + j] = Float(Double(kk[i * n + j]) - k1[i] * k1[j] / Double(n))
                b[i * n + j] = Float(ke[i] * ke[j] + (i == j ? mu : 0))
            }
        }
        for i in 0..<n { for j in 0..<i { let s = (a[i * n + j] + a[j * n + i]) / 2; a[i * n + j] = s; a[j * n + i] = s } }
        let (values, vectors) = try LAPACK.generalizedSymmetricEigen(a, b, n: n)
        var w = [Float](repeating: 0, count: n * m)
        for c in 0..<m { let col = n - 1 - c; for i in 0..<n { w[i * m + c] = vectors[i * n + col] } }
        var z = [Float](repeating: 0, count: n * m)
        k.withUnsafeBufferPointer { kp in
            w.withUnsafeBufferPointer { wp in
                z.withUnsafeMutableBufferPointer { zp in
                    BLAS.matmul(.none, .none, m: n, n: m, k: n, a: kp.baseAddress!, b: wp.baseAddress!, c: zp.baseAddress!)
                }
            }
        }
        self.kernel = kernel; self.components = m; self.mu = mu; self.dimension = d
        self.points = points; sourceCount = ns; targetCount = nt
        projection = w
        eigenvalues = (0..<m).map { values[n - 1 - $0] }
        projected = z
    }

    /// The projected source rows `[n_s, m]`.
    public var projectedSource: [Float] { Array(projected[0..<(sourceCount * components)]) }
    /// The projected target rows `[n_t, m]`.
    public var projectedTarget: [Float] { Array(projected[(sourceCount * components)...]) }

    /// Projects new points `x` `[count, d]`: `k(x, points) W` `[count, m]`.
    public func project(_ x: [Float], count: Int) throws -> [Float] {
        guard x.count == count * dimension else {
            throw ModelError.invalidArgument("TCA projection of \(x.count) values as \(count) points of dimension \(dimension)")
        }
        let n = sourceCount + targetCount
        let k = kernel.matrix(x, points, n: count, m: n, d: dimension)
        var z = [Float](repeating: 0, count: count * components)
        guard count > 0 else { return z }
        k.withUnsafeBufferPointer { kp in
            projection.withUnsafeBufferPointer { wp in
                z.withUnsafeMutableBufferPointer { zp in
                    BLAS.matmul(.none, .none, m: count, n: components, k: n, a: kp.baseAddress!, b: wp.baseAddress!, c: zp.baseAddress!)
                }
            }
        }
        return z
    }
}

/// Multi-class logistic regression, one-vs-rest with an L2 penalty `λ/2 ‖β‖²` (bias not
/// penalised), fitted by Newton's method (iteratively reweighted least squares: each step solves
/// `(Xᵀ diag(p(1-p)) X + λI) δ = Xᵀ(p - y) + λβ` with LAPACK `dposv`) on standardised features
/// (the training features' column means and deviations). Deterministic; a handful of steps
/// converge on the low-dimensional TCA features it is meant for.
public struct LogisticRegression {
    public let classes: Int
    public let dimension: Int
    /// `[classes, dimension + 1]`: weights then bias, on standardised features.
    let coefficients: [Double]
    let mean: [Double], scale: [Double]

    /// Fits `features` `[count, dimension]` (row-major) to `labels` (class ids `0..<classes`).
    public init(features: [Float], count: Int, dimension d: Int, labels: [Int], classes: Int, l2: Double = 1e-2,
                maxIterations: Int = 50) throws {
        guard count > 0, d > 0, features.count == count * d, labels.count == count, classes >= 2,
              labels.allSatisfy({ $0 >= 0 && $0 < classes }) else {
            throw ModelError.invalidArgument("logistic regression needs \(count) labels in 0..<\(classes) for [\(count), \(d)] features")
        }
        guard l2 > 0 else { throw ModelError.invalidArgument("logistic regression's L2 penalty must be positive") }
        var mean = [Double](repeating: 0, count: d), scale = [Double](repeating: 1, count: d)
        for c in 0..<d {
            mean[c] = (0..<count).reduce(0.0) { $0 + Double(features[$1 * d + c]) } / Double(count)
            let v = (0..<count).reduce(0.0) { $0 + pow(Double(features[$1 * d + c]) - mean[c], 2) } / Double(count)
            scale[c] = v > 0 ? v.squareRoot() : 1
        }
        let p = d + 1
        var x = [Double](repeating: 1, count: count * p)   // standardised features, then 1 for the bias
        for i in 0..<count {
            for c in 0..<d { x[i * p + c] = (Double(features[i * d + c]) - mean[c]) / scale[c] }
        }
        var coefficients = [Double](repeating: 0, count: classes * p)
        for k in 0..<classes {
            var beta = [Double](repeating: 0, count: p)
            for _ in 0..<maxIterations {
                var hessian = [Double](repeating: 0, count: p * p), gradient = [Double](repeating: 0, count: p)
                for i in 0..<count {
                    let row = x[(i * p)..<((i + 1) * p)]
                    let z = zip(row, beta).reduce(0.0) { $0 + $1.0 * $1.1 }
                    let prob = 1 / (1 + Foundation.exp(-z)), y = labels[i] == k ? 1.0 : 0.0
                    let w = max(prob * (1 - prob), 1e-12)
                    for (a, xa) in row.enumerated() {
                        gradient[a] += (prob - y) * xa
                        for (b, xb) in row.enumerated() where b <= a { hessian[a * p + b] += w * xa * xb }
                    }
                }
                for a in 0..<d { gradient[a] += l2 * beta[a]; hessian[a * p + a] += l2 }
                hessian[d * p + d] += 1e-9   // the bias: keeps the system definite when a class is absent
                for a in 0..<p { for b in 0..<a { hessian[b * p + a] = hessian[a * p + b] } }
                let step = try LAPACK.solvePositiveDefinite(hessian, gradient, n: p)
                for a in 0..<p { beta[a] -= step[a] }
                if step.reduce(0.0, { max($0, abs($1)) }) < 1e-10 { break }
            }
            for a in 0..<p { coefficients[k * p + a] = beta[a] }
        }
        self.classes = classes; dimension = d; self.coefficients = coefficients; self.mean = mean; self.scale = scale
    }

    /// Class probabilities of `features` `[count, dimension]`: each class's one-vs-rest
    /// probability, normalised to sum to 1.
    public func probabilities(_ features: [Float], count: Int) throws -> [[Double]] {
        guard features.count == count * dimension else {
            throw ModelError.invalidArgument("\(features.count) values for \(count) points of dimension \(dimension)")
        }
        let p = dimension + 1
        return (0..<count).map { i in
            let scores = (0..<classes).map { k -> Double in
                var z = coefficients[k * p + dimension]
                for c in 0..<dimension { z += coefficients[k * p + c] * (Double(features[i * dimension + c]) - mean[c]) / scale[c] }
                return 1 / (1 + Foundation.exp(-z))
            }
            let total = scores.reduce(0, +)
            return scores.map { total > 0 ? $0 / total : 1 / Double(classes) }
        }
    }
}
