import COpenBLAS
import Dispatch

/// Whether a matrix operand is used as stored or transposed.
public enum Transpose: Sendable {
    case none, transposed
    @inlinable var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
    @inlinable var flipped: Transpose { self == .none ? .transposed : .none }
}

/// Accumulates wall time spent in GEMM regions, for the benchmark's "share outside GEMM".
/// Only the coordinating thread records (per-head GEMM phases are timed as a whole).
public enum GemmProfiler {
    nonisolated(unsafe) public static var enabled = false
    nonisolated(unsafe) public static var seconds: Double = 0
    nonisolated(unsafe) public static var flops: Double = 0

    public static func reset() { seconds = 0; flops = 0 }

    @inlinable
    static func measure<R>(flops f: Double, _ body: () -> R) -> R {
        if !enabled { return body() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r = body()
        seconds += Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        flops += f
        return r
    }
}

/// Matrix products on OpenBLAS. All shapes are row-major.
public enum BLAS {
    /// `C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C`, one `cblas_sgemm` call.
    /// `lda`, `ldb`, `ldc` are the row strides of the matrices as stored.
    @inlinable
    public static func gemm(_ ta: Transpose, _ tb: Transpose, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        cblas_sgemm(CblasRowMajor, ta.cblas, tb.cblas, Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Row strides of a stored operand: `op(X)` is `[rows, cols]`.
    @inlinable static func ld(_ t: Transpose, rows: Int, cols: Int) -> Int { t == .none ? cols : rows }

    /// `C[M, N] = op(A) op(B)` (+ `beta * C`). `A` is stored `[M, K]` (or `[K, M]` when
    /// transposed), `B` is stored `[K, N]` (or `[N, K]`). Timed by ``GemmProfiler``.
    @inlinable
    public static func matmul(_ ta: Transpose, _ tb: Transpose, m: Int, n: Int, k: Int,
                              a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                              c: UnsafeMutablePointer<Float>, beta: Float = 0) {
        GemmProfiler.measure(flops: 2.0 * Double(m) * Double(n) * Double(k)) {
            gemm(ta, tb, m: m, n: n, k: k, a: a, lda: ld(ta, rows: m, cols: k),
                 b: b, ldb: ld(tb, rows: k, cols: n), beta: beta, c: c, ldc: n)
        }
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
        let pa = SendablePtr(UnsafeMutablePointer(mutating: a)), pb = SendablePtr(UnsafeMutablePointer(mutating: b))
        let pc = SendablePtr(c)
        GemmProfiler.measure(flops: 2.0 * Double(batch * m) * Double(n) * Double(k)) {
            Engine.withSingleThreadedBLAS {
                Engine.parallelFor(batch) { r in
                    for i in r {
                        gemm(ta, tb, m: m, n: n, k: k, a: pa.p + i * strideA, lda: lda,
                             b: pb.p + i * strideB, ldb: ldb, beta: beta, c: pc.p + i * strideC, ldc: n)
                    }
                }
            }
        }
    }

    /// Backward of ``batchedMatmul`` (accumulates into `dA`, `dB`). Strides of `dA`/`dB` equal
    /// those of `A`/`B`; a broadcast operand (stride 0) is not supported here.
    public static func batchedMatmulBackward(_ ta: Transpose, _ tb: Transpose, batch: Int, m: Int, n: Int, k: Int,
                                             a: UnsafePointer<Float>, strideA: Int,
                                             b: UnsafePointer<Float>, strideB: Int,
                                             dc: UnsafePointer<Float>, strideC: Int,
                                             da: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?) {
        let pa = SendablePtr(UnsafeMutablePointer(mutating: a)), pb = SendablePtr(UnsafeMutablePointer(mutating: b))
        let pdc = SendablePtr(UnsafeMutablePointer(mutating: dc))
        let pda = da.map(SendablePtr.init), pdb = db.map(SendablePtr.init)
        GemmProfiler.measure(flops: 4.0 * Double(batch * m) * Double(n) * Double(k)) {
            let saved = GemmProfiler.enabled
            GemmProfiler.enabled = false
            defer { GemmProfiler.enabled = saved }
            Engine.withSingleThreadedBLAS {
                Engine.parallelFor(batch) { r in
                    for i in r {
                        matmulBackward(ta, tb, m: m, n: n, k: k, a: pa.p + i * strideA, b: pb.p + i * strideB,
                                       dc: pdc.p + i * strideC,
                                       da: pda.map { $0.p + i * strideA }, db: pdb.map { $0.p + i * strideB })
                    }
                }
            }
        }
    }
}
