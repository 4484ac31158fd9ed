import COpenBLAS

/// Symmetric eigen-decompositions through the LAPACK that Debian's OpenBLAS carries (`ssyevd`,
/// `ssygvd`; divide and conquer), on row-major `Float` matrices. A symmetric matrix is its own
/// transpose, so row-major and LAPACK's column-major read the same lower triangle.
public enum LAPACK {
    /// The eigenvalues (ascending) and eigenvectors of the symmetric `[n, n]` matrix `a`:
    /// `vectors` is `[n, n]` with eigenvector `j` in column `j` (`a · v_j = λ_j v_j`, orthonormal).
    public static func symmetricEigen(_ a: [Float], n: Int) throws -> (values: [Float], vectors: [Float]) {
        try generalizedSymmetricEigen(a, nil, n: n)
    }

    /// The generalized problem `a · v = λ b · v` with `a` symmetric and `b` symmetric positive
    /// definite (both `[n, n]`): eigenvalues ascending, eigenvectors in the columns of the `[n, n]`
    /// result, normalised so that `Vᵀ b V = I`. `b` nil is the identity (``symmetricEigen(_:n:)``).
    public static func generalizedSymmetricEigen(_ a: [Float], _ b: [Float]?, n: Int) throws -> (values: [Float], vectors: [Float]) {
        guard n > 0, a.count == n * n, b.map({ $0.count == n * n }) ?? true else {
            throw EngineError.shapeMismatch("eigen-decomposition of \(a.count) (and \(b?.count ?? 0)) values as [\(n), \(n)]")
        }
        guard n <= Int(Int32.max) / max(n, 1) else { throw EngineError.invalidArgument("eigen-decomposition of order \(n) is too large") }
        var work = a   // column-major view of the same symmetric matrix; overwritten by the eigenvectors
        var other = b ?? []
        var values = [Float](repeating: 0, count: n)
        var jobz = CChar(UInt8(ascii: "V")), uplo = CChar(UInt8(ascii: "L"))
        var order = Int32(n), lda = Int32(n), ldb = Int32(n), itype: Int32 = 1, info: Int32 = 0
        var lwork: Int32 = -1, liwork: Int32 = -1
        var workSize: Float = 0, iworkSize: Int32 = 0
        func call(_ w: UnsafeMutablePointer<Float>, _ iw: UnsafeMutablePointer<Int32>) {
            work.withUnsafeMutableBufferPointer { ap in
                values.withUnsafeMutableBufferPointer { vp in
                    if b == nil {
                        ssyevd_(&jobz, &uplo, &order, ap.baseAddress, &lda, vp.baseAddress, w, &lwork, iw, &liwork, &info, 1, 1)
                    } else {
                        other.withUnsafeMutableBufferPointer { bp in
                            ssygvd_(&itype, &jobz, &uplo, &order, ap.baseAddress, &lda, bp.baseAddress, &ldb, vp.baseAddress,
                                    w, &lwork, iw, &liwork, &info, 1, 1)
                        }
                    }
                }
            }
        }
        call(&workSize, &iworkSize)   // workspace query
        guard info == 0 else { throw EngineError.invalidArgument("LAPACK workspace query failed (info \(info))") }
        lwork = Int32(workSize.rounded(.up)); liwork = iworkSize
        var w = [Float](repeating: 0, count: Int(max(lwork, 1)))
        var iw = [Int32](repeating: 0, count: Int(max(liwork, 1)))
        w.withUnsafeMutableBufferPointer { wp in iw.withUnsafeMutableBufferPointer { ip in call(wp.baseAddress!, ip.baseAddress!) } }
        if info > Int32(n) {
            throw EngineError.invalidArgument("the second matrix of a generalized eigenproblem is not positive definite (LAPACK info \(info))")
        }
        guard info == 0 else { throw EngineError.invalidArgument("the eigen-decomposition did not converge (LAPACK info \(info))") }
        // Column-major eigenvectors (vector j = work[j*n ..< (j+1)*n]) -> row-major [n, n] with vector j in column j.
        var vectors = [Float](repeating: 0, count: n * n)
        for j in 0..<n { for i in 0..<n { vectors[i * n + j] = work[j * n + i] } }
        return (values, vectors)
    }

    /// Solves `a · x = b` for a symmetric positive definite `[n, n]` matrix `a` (LAPACK `dposv`,
    /// Cholesky): `x` `[n]`.
    public static func solvePositiveDefinite(_ a: [Double], _ b: [Double], n: Int) throws -> [Double] {
        guard n > 0, a.count == n * n, b.count == n else {
            throw EngineError.shapeMismatch("solving [\(n), \(n)] with \(a.count) and \(b.count) values")
        }
        var m = a, x = b
        var uplo = CChar(UInt8(ascii: "L")), order = Int32(n), nrhs: Int32 = 1, lda = Int32(n), ldb = Int32(n), info: Int32 = 0
        m.withUnsafeMutableBufferPointer { mp in
            x.withUnsafeMutableBufferPointer { xp in
                dposv_(&uplo, &order, &nrhs, mp.baseAddress, &lda, xp.baseAddress, &ldb, &info, 1)
            }
        }
        guard info == 0 else { throw EngineError.invalidArgument("the system is not positive definite (LAPACK dposv info \(info))") }
        return x
    }
}
