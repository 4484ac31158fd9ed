import COpenBLAS
import Dispatch
import GraftSupport

/// Whether a matrix operand is used as stored or transposed.
public enum Transpose: Sendable {
    case none, transposed
    @inlinable var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
    @inlinable var flipped: Transpose { self == .none ? .transposed : .none }
}

/// Matrix products on OpenBLAS. All shapes are row-major. OpenBLAS always runs single-threaded
/// (see ``Engine``); ``matmul`` splits a large product over the calling computation's threads.
public enum BLAS {
    /// `C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C`, one single-threaded
    /// `cblas_sgemm` call on the calling thread.
    /// `lda`, `ldb`, `ldc` are the row strides of the matrices as stored.
    @inlinable
    public static func gemm(_ ta: Transpose, _ tb: Transpose, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        Engine.singleThreadedOpenBLAS
        cblas_sgemm(CblasRowMajor, ta.cblas, tb.cblas, Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// A product's shape as ``Profiler/shapes`` names it: `"MxNxK"` and `N` or `T` for each operand.
    @usableFromInline
    static func shapeName(_ ta: Transpose, _ tb: Transpose, m: Int, n: Int, k: Int) -> String {
        "\(m)x\(n)x\(k) " + (ta == .none ? "N" : "T") + (tb == .none ? "N" : "T")
    }

    /// Row strides of a stored operand: `op(X)` is `[rows, cols]`.
    @inlinable static func ld(_ t: Transpose, rows: Int, cols: Int) -> Int { t == .none ? cols : rows }

    /// `C[M, N] = op(A) op(B)` (+ `beta * C`). `A` is stored `[M, K]` (or `[K, M]` when
    /// transposed), `B` is stored `[K, N]` (or `[N, K]`). Timed by ``Profiler``.
    /// With `bias` (`[N]`), every row of `C` is first set to it and the product added
    /// (`beta` is then ignored): `C = bias + op(A) op(B)`, each band writing its own rows, so
    /// the copy is split over the threads like the product.
    ///
    /// Large products are split into up to ``Engine/threads`` bands of rows of `C` (never along
    /// `K`), each one single-threaded `cblas_sgemm`, so that every element is computed exactly as
    /// the single call computes it: bands start on multiples of ``sliceRows`` rows (the OpenBLAS
    /// SGEMM row unrolling of the kernel in use), each at the block boundary nearest to its even
    /// share of the rows (bands differ by under 1.5 blocks), the last band ends with the
    /// product's own remainder rows, and every band stays above OpenBLAS's small-matrix size
    /// (``sliceCount(m:n:k:threads:)``). Columns are never cut: OpenBLAS's column blocking makes a
    /// column split change the bits. The split depends only on the shapes, the thread count and
    /// the OpenBLAS kernel.
    @inlinable
    public static func matmul(_ ta: Transpose, _ tb: Transpose, m: Int, n: Int, k: Int,
                              a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                              c: UnsafeMutablePointer<Float>, beta: Float = 0, bias: UnsafePointer<Float>? = nil) {
        Profiler.measure(flops: 2.0 * Double(m) * Double(n) * Double(k), shape: shapeName(ta, tb, m: m, n: n, k: k)) {
            let lda = ld(ta, rows: m, cols: k), ldb = ld(tb, rows: k, cols: n)
            let slices = sliceCount(m: m, n: n, k: k, threads: Engine.threads)
            let beta = bias == nil ? beta : 1
            if slices <= 1 {
                if let bias { fillRows(c, rows: 0..<m, with: bias, n: n) }
                gemm(ta, tb, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: n)
                return
            }
            let pa = SharedPointer(UnsafeMutablePointer(mutating: a)), pb = SharedPointer(UnsafeMutablePointer(mutating: b))
            let pc = SharedPointer(c), pbias = bias.map { SharedPointer(UnsafeMutablePointer(mutating: $0)) }
            Engine.parallelFor(slices) { r in
                for s in r {
                    // Band s starts at the block boundary nearest to s·m/slices rows; the last one ends at m.
                    let lo = bandStart(s, slices: slices, m: m)
                    let hi = s == slices - 1 ? m : bandStart(s + 1, slices: slices, m: m)
                    if let pbias { fillRows(pc.value, rows: lo..<hi, with: pbias.value, n: n) }
                    gemm(ta, tb, m: hi - lo, n: n, k: k, a: pa.value + (ta == .none ? lo * lda : lo), lda: lda,
                         b: pb.value, ldb: ldb, beta: beta, c: pc.value + lo * n, ldc: n)
                }
            }
        }
    }

    /// Sets rows `rows` of `c` (`n` floats each) to `row`.
    @inlinable
    static func fillRows(_ c: UnsafeMutablePointer<Float>, rows: Range<Int>, with row: UnsafePointer<Float>, n: Int) {
        for r in rows { (c + r * n).update(from: row, count: n) }
    }

    /// The row granularity of ``matmul``'s bands: the SGEMM row unrolling of the OpenBLAS kernel
    /// in use, found by comparing split and whole products bit for bit under each
    /// `OPENBLAS_CORETYPE` (`benchmarks/gemm_band_bits.py`): 16 on the AVX-512 kernels
    /// (SkylakeX, Cooperlake), where 48 would split a 256-row product 144 / 112 over two threads;
    /// elsewhere 48, the least common multiple of the unrollings seen (24 on Haswell and Zen, 16
    /// on Prescott). Coarser blocks cost balance: with 96, the ~860-row products of a fine-tuning
    /// batch split 384 / 476 over two threads.
    public static let sliceRows: Int = ["skylakex", "cooperlake"].contains(kernelCore.lowercased()) ? 16 : 48

    /// The core whose kernels OpenBLAS runs (`"Haswell"`, `"SkylakeX"`, ...), as it names it.
    public static let kernelCore: String = openblas_get_corename().map { String(cString: $0) } ?? ""

    /// The largest `M N K` OpenBLAS may compute with other kernels than a large product's
    /// (0.3.21 on SkylakeX-class cores: its small-matrix kernels up to `100^3`, and for row-major
    /// `NN` products with `alpha = 1`, `beta = 0` its "direct" kernel), summing in another order:
    /// no band of a split product is this small, so that the bands take the whole product's kernel.
    public static let smallProductLimit = 1_000_000.0

    /// The first row of band `s` of `slices` over `m` rows: `s·m/slices` rounded to the nearest
    /// multiple of ``sliceRows`` (strictly increasing in `s` while `m >= slices · sliceRows`, and the
    /// last band keeps at least half a block).
    @inlinable
    public static func bandStart(_ s: Int, slices: Int, m: Int) -> Int {
        (2 * s * m + slices * sliceRows) / (2 * slices * sliceRows) * sliceRows
    }

    /// How many bands ``matmul`` cuts a product into: up to `threads`, each of whole
    /// ``sliceRows`` blocks, and as many as keep the smallest band's `rows N K` above
    /// ``smallProductLimit`` (1 for a product of fewer than two blocks of rows or about
    /// `2 * 10^6` multiply-adds).
    @inlinable
    public static func sliceCount(m: Int, n: Int, k: Int, threads: Int) -> Int {
        var slices = max(1, min(threads, m / sliceRows))
        while slices > 1 {
            // The smallest band: bands differ, so check each (at most `threads` of them).
            var smallest = m
            for s in 0..<slices {
                let hi = s == slices - 1 ? m : bandStart(s + 1, slices: slices, m: m)
                smallest = min(smallest, hi - bandStart(s, slices: slices, m: m))
            }
            if Double(smallest) * Double(n) * Double(k) > smallProductLimit { break }
            slices -= 1
        }
        return slices
    }

    /// Backward of ``matmul``: given `dC[M, N]`, accumulates (`+=`) into `dA` (stored like `A`)
    /// and `dB` (stored like `B`). Either may be nil when not needed.
    @inlinable
    public static func matmulBackward(_ ta: Transpose, _ tb: Transpose, m: Int, n: Int, k: Int,
                                      a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                      dc: UnsafePointer<Float>,
                                      da: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?) {
        if let da {
            if ta == .none {
                // dA[M, K] = dC[M, N] * op(B)^T
                matmul(.none, tb.flipped, m: m, n: k, k: n, a: dc, b: b, c: da, beta: 1)
            } else {
                // dA[K, M] = op(B)[K, N] * dC^T
                matmul(tb, .transposed, m: k, n: m, k: n, a: b, b: dc, c: da, beta: 1)
            }
        }
        if let db {
            if tb == .none {
                // dB[K, N] = op(A)^T * dC
                matmul(ta.flipped, .none, m: k, n: n, k: m, a: a, b: dc, c: db, beta: 1)
            } else {
                // dB[N, K] = dC^T * op(A)
                matmul(.transposed, ta, m: n, n: k, k: m, a: dc, b: a, c: db, beta: 1)
            }
        }
    }

    /// Batched `C[i] = op(A[i]) op(B[i])` for `i` in `0..<batch`, with consecutive matrices
    /// `strideA`, `strideB`, `strideC` floats apart (0 broadcasts one operand). Each product runs
    /// single-threaded BLAS; the batch is spread over ``Engine/threads`` cores.
    public static func batchedMatmul(_ ta: Transpose, _ tb: Transpose, batch: Int, m: Int, n: Int, k: Int,
                                     a: UnsafePointer<Float>, strideA: Int,
                                     b: UnsafePointer<Float>, strideB: Int,
                                     c: UnsafeMutablePointer<Float>, strideC: Int, beta: Float = 0) {
        let lda = ld(ta, rows: m, cols: k), ldb = ld(tb, rows: k, cols: n)
        let pa = SharedPointer(UnsafeMutablePointer(mutating: a)), pb = SharedPointer(UnsafeMutablePointer(mutating: b))
        let pc = SharedPointer(c)
        Profiler.measure(flops: 2.0 * Double(batch * m) * Double(n) * Double(k),
                         shape: "\(batch) x " + shapeName(ta, tb, m: m, n: n, k: k)) {
            Engine.parallelFor(batch) { r in
                for i in r {
                    gemm(ta, tb, m: m, n: n, k: k, a: pa.value + i * strideA, lda: lda,
                         b: pb.value + i * strideB, ldb: ldb, beta: beta, c: pc.value + i * strideC, ldc: n)
                }
            }
        }
    }
}
