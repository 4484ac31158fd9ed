import GraftSupport
import ArgumentParser
import COpenBLAS
import Dispatch
import Foundation
import GraftEngine

/// `graft bench engine [--json] [--threads 1,2]`: GEMM throughput of the engine's matmul paths
/// against raw `cblas_sgemm`, and forward+backward time of one BERT block.
struct EngineBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Benchmark the training engine (GEMM paths vs raw cblas_sgemm, one BERT block forward+backward)."
    )

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Comma-separated thread counts to measure (each figure gets a _<n>t key).")
    var threads: String = "1,2"

    @Option(help: "Timed repetitions per figure (the median is reported).")
    var repeats: Int = 7

    @Option(help: "Batch size of the BERT block benchmark.")
    var batch: Int = 32

    @Option(help: "Sequence length of the BERT block benchmark.")
    var seq: Int = 128

    func validate() throws {
        guard (1...1000).contains(repeats) else { throw ValidationError("--repeats must lie in 1...1000") }
        guard (1...4096).contains(batch), (1...8192).contains(seq) else { throw ValidationError("--batch must lie in 1...4096 and --seq in 1...8192") }
    }

    func run() throws {
        #if DEBUG
        FileHandle.standardError.write(Data("warning: debug build; engine figures are only meaningful from `swift build -c release`\n".utf8))
        #endif
        let counts = threads.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--threads needs positive integers") }
        let defaultThreads = Engine.threads
        var out: [(String, Double)] = []
        var lines: [String] = []
        for n in counts { try Engine.withThreads(n) {
            let s = "_\(n)t"
            // Large GEMMs: the Linear forward path (x W^T) and raw cblas_sgemm with identical arguments.
            for (m, k, nn) in [(4096, 256, 1024), (4096, 1024, 256), (4096, 256, 256)] {
                let (ours, raw) = benchGemm(m: m, k: k, n: nn)
                let key = "gemm_\(m)x\(k)x\(nn)"
                out += [("\(key)_gflops\(s)", ours), ("\(key)_cblas_gflops\(s)", raw), ("\(key)_ratio\(s)", ours / raw)]
                lines.append(String(format: "[%dt] GEMM %dx%dx%d (MxKxN)  engine %6.1f GFLOP/s  cblas %6.1f GFLOP/s  ratio %.3f",
                                    n, m, k, nn, ours, raw, ours / raw))
            }
            // Attention-sized products: 128 x (128x64 @ 64x128), engine batched path vs cblas loop.
            let (att, attRaw) = benchAttentionGemm(batch: batch * 4, t: seq, d: 64)
            out += [("attention_gemm_gflops\(s)", att), ("attention_gemm_cblas_loop_gflops\(s)", attRaw),
                    ("attention_gemm_ratio\(s)", att / attRaw)]
            lines.append(String(format: "[%dt] batched %d x %dx64x%d  engine %6.1f GFLOP/s  cblas loop (%d-thread BLAS) %6.1f GFLOP/s  ratio %.3f",
                                n, batch * 4, seq, seq, att, n, attRaw, att / attRaw))
            let (ms, share, gemmGflops) = try benchBlock(batch: batch, seq: seq)
            out += [("bert_block_fwd_bwd_ms\(s)", ms), ("bert_block_outside_gemm_share\(s)", share),
                    ("bert_block_gemm_gflops\(s)", gemmGflops)]
            lines.append(String(format: "[%dt] BERT block (hidden 256, 4 heads, FFN 1024, batch %d, seq %d) fwd+bwd %.1f ms, outside GEMM %.1f%%, GEMM regions %.1f GFLOP/s",
                                n, batch, seq, ms, share * 100, gemmGflops))
        } }
        // Headline keys at the default thread count (GRAFT_THREADS / cores), when measured.
        let headline = counts.contains(defaultThreads) ? defaultThreads : counts[0]
        let hs = "_\(headline)t"
        let dict = Dictionary(out, uniquingKeysWith: { a, _ in a })
        out.append(("threads", Double(headline)))
        out.append(("gemm_ratio_vs_cblas", dict["gemm_4096x256x1024_ratio\(hs)"]!))
        out.append(("bert_block_fwd_bwd_ms", dict["bert_block_fwd_bwd_ms\(hs)"]!))
        out.append(("bert_block_outside_gemm_share", dict["bert_block_outside_gemm_share\(hs)"]!))
        if json {
            // Four decimals, as the text output.
            print(JSONValue.object(out.map { ($0.0, .number(($0.1 * 1e4).rounded() / 1e4)) } + [("openblas_core", .string(BLAS.kernelCore))])
                .serialized(pretty: true))
        } else {
            print("OpenBLAS kernels: \(BLAS.kernelCore)")
            lines.forEach { print($0) }
            print(String(format: "gemm_ratio_vs_cblas (%dt, 4096x256x1024) = %.3f, bert_block_fwd_bwd_ms (%dt) = %.1f",
                         headline, dict["gemm_4096x256x1024_ratio\(hs)"]!, headline, dict["bert_block_fwd_bwd_ms\(hs)"]!))
        }
    }

    private func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// The reference side of the comparison: raw `cblas_sgemm` with OpenBLAS's own threading at
    /// `n` threads. OpenBLAS's thread count is process-wide, so this is done only here, where
    /// nothing else computes, and set back to the engine's 1 thread right after.
    private func withOpenBLASThreads(_ n: Int, _ body: () -> Void) {
        Engine.singleThreadedOpenBLAS
        if n > 1 { openblas_set_num_threads(Int32(n)) }
        body()
        if n > 1 { openblas_set_num_threads(1) }
    }

    private func filled(_ n: Int, seed: UInt64) -> [Float] {
        var r = RNG(seed: seed)
        return (0..<n).map { _ in r.uniform() - 0.5 }
    }

    /// Median GFLOP/s of `y[M,N] = x[M,K] W[N,K]^T` via the engine (`BLAS.matmul`, as `Linear`
    /// does) and via `cblas_sgemm` directly, calls interleaved.
    private func benchGemm(m: Int, k: Int, n: Int) -> (Double, Double) {
        let a = filled(m * k, seed: 1), b = filled(n * k, seed: 2)
        var c = [Float](repeating: 0, count: m * n)
        let flops = 2.0 * Double(m) * Double(n) * Double(k)
        var ours: [Double] = [], raw: [Double] = []
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    for rep in 0..<(repeats * 3 + 2) {
                        let t0 = now()
                        BLAS.matmul(.none, .transposed, m: m, n: n, k: k, a: pa.baseAddress!, b: pb.baseAddress!, c: pc.baseAddress!)
                        let t1 = now()
                        withOpenBLASThreads(Engine.threads) {
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1,
                                        pa.baseAddress!, Int32(k), pb.baseAddress!, Int32(k), 0, pc.baseAddress!, Int32(n))
                        }
                        let t2 = now()
                        if rep >= 2 {
                            ours.append(flops / Double(t1 - t0))
                            raw.append(flops / Double(t2 - t1))
                        }
                    }
                }
            }
        }
        return (median(ours), median(raw))
    }

    /// Median GFLOP/s of `batch` products `[t, d] x [d, t]^T`... the attention score shape
    /// (`S = Q K^T`, M = N = t, K = d): engine `batchedMatmul` (1-thread BLAS, batch over cores)
    /// vs a plain loop of `cblas_sgemm` with OpenBLAS at the engine's thread count.
    private func benchAttentionGemm(batch: Int, t: Int, d: Int) -> (Double, Double) {
        let q = filled(batch * t * d, seed: 3), k = filled(batch * t * d, seed: 4)
        var s = [Float](repeating: 0, count: batch * t * t)
        let flops = 2.0 * Double(batch) * Double(t) * Double(t) * Double(d)
        var ours: [Double] = [], raw: [Double] = []
        q.withUnsafeBufferPointer { pq in
            k.withUnsafeBufferPointer { pk in
                s.withUnsafeMutableBufferPointer { ps in
                    for rep in 0..<(repeats * 3 + 2) {
                        let t0 = now()
                        BLAS.batchedMatmul(.none, .transposed, batch: batch, m: t, n: t, k: d, a: pq.baseAddress!, strideA: t * d,
                                           b: pk.baseAddress!, strideB: t * d, c: ps.baseAddress!, strideC: t * t)
                        let t1 = now()
                        withOpenBLASThreads(Engine.threads) { for i in 0..<batch {
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(t), Int32(t), Int32(d), 1,
                                        pq.baseAddress! + i * t * d, Int32(d), pk.baseAddress! + i * t * d, Int32(d), 0,
                                        ps.baseAddress! + i * t * t, Int32(t))
                        } }
                        let t2 = now()
                        if rep >= 2 {
                            ours.append(flops / Double(t1 - t0))
                            raw.append(flops / Double(t2 - t1))
                        }
                    }
                }
            }
        }
        return (median(ours), median(raw))
    }

    /// One BERT block (post-LN, erf GELU, dropout 0.1, padding mask) forward + backward:
    /// median ms, share of wall time outside GEMM regions, GFLOP/s inside them.
    private func benchBlock(batch: Int, seq: Int) throws -> (Double, Double, Double) {
        let store = ParameterStore(seed: 1)
        let rng = SharedRNG(seed: 2)
        let block = try TransformerBlock(store, prefix: "encoder.layer.0",
                                         config: .init(hidden: 256, heads: 4, ffn: 1024), rng: rng)
        let x = Tensor(shape: [batch, seq, 256], values: filled(batch * seq * 256, seed: 5))
        let dy = Tensor(shape: [batch, seq, 256], values: filled(batch * seq * 256, seed: 6))
        var maskValues = [Float](repeating: 1, count: batch * seq)
        for b in 0..<batch { for t in (seq - b % 16)..<seq { maskValues[b * seq + t] = 0 } }   // some padding
        let mask = Tensor(shape: [batch, seq], values: maskValues)
        var times: [Double] = [], shares: [Double] = [], rates: [Double] = []
        for rep in 0..<(repeats + 2) {
            store.zeroGrads()
            let profiler = Profiler()
            let t0 = now()
            try profiler.record {
                _ = try block.forward(x, mask: mask, training: true)
                _ = try block.backward(dy)
            }
            let t1 = now()
            if rep >= 2 {
                let total = Double(t1 - t0) * 1e-9
                times.append(total * 1e3)
                shares.append(max(0, total - profiler.seconds) / total)
                rates.append(profiler.flops / profiler.seconds * 1e-9)
            }
        }
        return (median(times), median(shares), median(rates))
    }
}
