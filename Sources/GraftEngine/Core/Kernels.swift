import COpenBLAS
import GraftSupport

/// Small element-wise and reduction kernels over raw pointers (SIMD8, split over cores when
/// the arrays are large). Reductions sum per-chunk partials in a fixed order, so results depend
/// only on the data and ``Engine/threads``.
public enum Kernels {
    /// Elements per chunk below which element-wise kernels stay on one thread.
    public static let minChunk = 32_768

    /// `sqrt(sum x^2)` accumulated in Double.
    public static func l2Norm(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
        sumSquares(x, n).squareRoot()
    }

    /// `sum x^2` in Double (SIMD8 Float partials per block of 4096, summed in Double).
    public static func sumSquares(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
        var total = 0.0
        var i = 0
        while i < n {
            let end = min(n, i + 4096)
            var acc = SIMD8<Float>(repeating: 0)
            var j = i
            while j + 8 <= end {
                let v = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self)
                acc += v * v
                j += 8
            }
            var s = Double(acc.sum())
            while j < end { s += Double(x[j] * x[j]); j += 1 }
            total += s
            i = end
        }
        return total
    }

    /// `out = a + b` (n floats). `out` may alias `a` or `b`.
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
        let pa = SharedPointer(UnsafeMutablePointer(mutating: a)), pb = SharedPointer(UnsafeMutablePointer(mutating: b))
        let po = SharedPointer(out)
        Engine.parallelFor(n, minChunk: minChunk) { r in
            var i = r.lowerBound
            while i + 8 <= r.upperBound {
                let v = UnsafeRawPointer(pa.value + i).loadUnaligned(as: SIMD8<Float>.self)
                    + UnsafeRawPointer(pb.value + i).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(po.value + i).storeBytes(of: v, as: SIMD8<Float>.self)
                i += 8
            }
            while i < r.upperBound { po.value[i] = pa.value[i] + pb.value[i]; i += 1 }
        }
    }

    /// `y += alpha * x` (BLAS saxpy).
    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        Engine.singleThreadedOpenBLAS
        cblas_saxpy(Int32(n), alpha, x, 1, y, 1)
    }

    /// `x *= alpha`.
    public static func scale(_ x: UnsafeMutablePointer<Float>, _ alpha: Float, _ n: Int) {
        Engine.singleThreadedOpenBLAS
        cblas_sscal(Int32(n), alpha, x, 1)
    }

    /// Column sums: `out[j] += sum_i x[i, j]` for `x` `[rows, cols]` (BLAS gemv with a ones vector).
    public static func addColumnSums(_ x: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>,
                              ones: inout [Float]) {
        if ones.count < rows { ones = [Float](repeating: 1, count: rows) }
        Engine.singleThreadedOpenBLAS
        ones.withUnsafeBufferPointer { o in
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(rows), Int32(cols), 1, x, Int32(cols), o.baseAddress!, 1, 1, out, 1)
        }
    }
}
