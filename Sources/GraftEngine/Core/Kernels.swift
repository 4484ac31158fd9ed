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

    /// `sum x^2` in Double (SIMD8 Float partials per block of 4096, summed in Double in block
    /// order). The blocks are spread over ``Engine/threads`` and their sums added in order after,
    /// so the result does not depend on the thread count.
    public static func sumSquares(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
        let blocks = (n + sumBlock - 1) / sumBlock
        if Engine.threads == 1 || blocks < 2 * minChunk / sumBlock {
            var total = 0.0
            for b in 0..<blocks { total += blockSumSquares(x, b, n) }
            return total
        }
        var partial = [Double](repeating: 0, count: blocks)
        partial.withUnsafeMutableBufferPointer { buffer in
            let out = SharedPointer(buffer.baseAddress!), px = SharedPointer(UnsafeMutablePointer(mutating: x))
            Engine.parallelFor(blocks, minChunk: minChunk / sumBlock) { r in
                for b in r { out.value[b] = blockSumSquares(px.value, b, n) }
            }
        }
        var total = 0.0
        for s in partial { total += s }
        return total
    }

    /// The block size of ``sumSquares(_:_:)``.
    static let sumBlock = 4096

    /// `sum x^2` over block `b` of ``sumBlock`` floats (the last one may be short).
    @inline(__always)
    static func blockSumSquares(_ x: UnsafePointer<Float>, _ b: Int, _ n: Int) -> Double {
        let i = b * sumBlock, end = min(n, i + sumBlock)
        var acc = SIMD8<Float>(repeating: 0)
        var j = i
        while j + 8 <= end {
            let v = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self)
            acc += v * v
            j += 8
        }
        var s = Double(acc.sum())
        while j < end { s += Double(x[j] * x[j]); j += 1 }
        return s
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
        let px = SharedPointer(x)
        Engine.parallelFor(n, minChunk: minChunk) { r in
            cblas_sscal(Int32(r.count), alpha, px.value + r.lowerBound, 1)
        }
    }

    /// `out[j, i] += x[i, j]` for `x` `[rows, cols]` and `out` `[cols, rows]` (adds a transposed
    /// matrix), in 8 x 64 tiles, the rows of `out` split over the threads.
    public static func addTransposed(_ x: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
        let px = SharedPointer(UnsafeMutablePointer(mutating: x)), po = SharedPointer(out)
        Engine.parallelFor((cols + 7) / 8, minChunk: max(1, minChunk / max(1, 8 * rows))) { r in
            for tile in r {
                let j0 = tile * 8, j1 = min(cols, j0 + 8)
                var i0 = 0
                while i0 < rows {
                    let i1 = min(rows, i0 + 64)
                    for j in j0..<j1 {
                        let o = po.value + j * rows
                        for i in i0..<i1 { o[i] += px.value[i * cols + j] }
                    }
                    i0 = i1
                }
            }
        }
    }

    /// Column sums: `out[j] += sum_i x[i, j]` for `x` `[rows, cols]` (a bias gradient). Each
    /// column is summed down the rows in order, four rows at a time, into a partial per block of
    /// 64 rows that is added to the column's total, which is then added to `out[j]`; the columns
    /// are split over the threads in groups of 16, so the result does not depend on the thread
    /// count. (The BLAS gemv with a ones vector this replaces ran on one thread, and its bits
    /// change with how the columns are split.)
    public static func addColumnSums(_ x: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
        guard rows > 0, cols > 0 else { return }
        let groups = (cols + 15) / 16
        let px = SharedPointer(UnsafeMutablePointer(mutating: x)), po = SharedPointer(out)
        Engine.parallelFor(groups, minChunk: max(1, minChunk / max(1, 16 * rows))) { r in
            let width = columnSumWidth
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * width) { scratch in
                let total = scratch.baseAddress!, block = total + width
                var j0 = r.lowerBound * 16
                let end = min(cols, r.upperBound * 16)
                while j0 < end {
                    let w = min(width, end - j0)
                    total.update(repeating: 0, count: w)
                    var i = 0
                    while i < rows {
                        let i1 = min(rows, i + 64)
                        block.update(repeating: 0, count: w)
                        while i + 4 <= i1 {
                            let r0 = UnsafePointer(px.value + i * cols + j0), r1 = r0 + cols, r2 = r1 + cols, r3 = r2 + cols
                            for j in 0..<w { block[j] += (r0[j] + r1[j]) + (r2[j] + r3[j]) }
                            i += 4
                        }
                        while i < i1 {
                            let r0 = UnsafePointer(px.value + i * cols + j0)
                            for j in 0..<w { block[j] += r0[j] }
                            i += 1
                        }
                        for j in 0..<w { total[j] += block[j] }
                    }
                    let o = po.value + j0
                    for j in 0..<w { o[j] += total[j] }
                    j0 += w
                }
            }
        }
    }

    /// Columns per pass of ``addColumnSums(_:rows:cols:into:)`` (its two partial rows, 8 KB, stay in L1).
    static let columnSumWidth = 1024
}
