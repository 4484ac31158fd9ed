import Dispatch
import Foundation
import GraftEngine
import GraftSupport

/// Where the time of `steps` training updates went, from a ``Profiler`` that recorded them: per
/// region its milliseconds per update, share of the update and the GEMM time inside it (nested
/// regions indented under the one that encloses them), then the GEMM rate against an SGEMM
/// ceiling. `graft bench pretrain --profile` and `graft pretrain|finetune --profile` print it.
struct ProfileReport {
    let lines: [String]
    let json: JSONValue

    /// `seconds`: the wall time of the `steps` updates (the regions' reference); `ceiling`: the
    /// SGEMM GFLOP/s the GEMM rate is compared with (``sgemmCeiling()``).
    init(_ p: Profiler, steps: Int, seconds: Double, ceiling: Double) {
        let n = Double(max(steps, 1))
        let step = seconds / n
        func r1(_ x: Double) -> JSONValue { .number((x * 10).rounded() / 10) }
        func r3(_ x: Double) -> JSONValue { .number((x * 1000).rounded() / 1000) }
        var rows: [JSONValue] = []
        func padded(_ name: String) -> String { name.count >= 30 ? name : name + String(repeating: " ", count: 30 - name.count) }
        var lines = [padded("region (per update)") + "        ms   share    own ms   GEMM ms   GFLOP/s"]
        // A region's own time: outside the regions nested in it.
        var nested = [Double](repeating: 0, count: p.regions.count)
        for r in p.regions { if let parent = r.parent { nested[parent] += r.seconds } }
        let own = p.regions.map { $0.seconds - nested[$0.id] }
        for r in p.regionsInTreeOrder {
            let gflops = r.gemmSeconds > 0 ? r.gemmFlops / r.gemmSeconds * 1e-9 : 0
            let ownSeconds = max(0, own[r.id])
            rows.append(.object([("region", .string(r.name)), ("depth", .number(Double(r.depth))),
                                 ("ms_per_step", r1(r.seconds / n * 1e3)), ("share", r3(r.seconds / n / step)),
                                 ("own_ms_per_step", r1(ownSeconds / n * 1e3)),
                                 ("gemm_ms_per_step", r1(r.gemmSeconds / n * 1e3)), ("gemm_gflops", r1(gflops))]))
            let name = String(repeating: "  ", count: r.depth) + r.name
            lines.append(padded(name) + String(format: " %9.1f %6.1f%% %9.1f %9.1f %9.1f", r.seconds / n * 1e3,
                                               r.seconds / n / step * 100, ownSeconds / n * 1e3, r.gemmSeconds / n * 1e3, gflops))
        }
        let covered = p.regions.filter { $0.depth == 0 }.reduce(0) { $0 + $1.seconds } / n
        let other = max(0, step - covered)
        lines.append(padded("outside the regions") + String(format: " %9.1f %6.1f%%", other * 1e3, other / step * 100))
        let gemmRate = p.seconds > 0 ? p.flops / p.seconds * 1e-9 : 0
        let stepRate = p.flops / n / step * 1e-9
        lines.append(String(format: "update %.1f ms; GEMM %.1f ms (%.1f%%) at %.1f GFLOP/s = %.1f%% of the SGEMM ceiling (%.1f GFLOP/s); "
                            + "GEMM work over the whole update %.1f GFLOP/s = %.1f%% of the ceiling",
                            step * 1e3, p.seconds / n * 1e3, p.seconds / n / step * 100, gemmRate, gemmRate / ceiling * 100,
                            ceiling, stepRate, stepRate / ceiling * 100))
        self.lines = lines
        json = .object([
            ("steps", .number(Double(steps))), ("ms_per_step", r1(step * 1e3)),
            ("regions", .array(rows)), ("outside_regions_ms_per_step", r1(other * 1e3)),
            ("gemm_ms_per_step", r1(p.seconds / n * 1e3)), ("gemm_share", r3(p.seconds / n / step)),
            ("gemm_gflops", r1(gemmRate)), ("step_gflops", r1(stepRate)), ("sgemm_ceiling_gflops", r1(ceiling)),
            ("gemm_of_ceiling", r3(gemmRate / ceiling)), ("step_of_ceiling", r3(stepRate / ceiling)),
        ])
    }
}

/// Median GFLOP/s of the engine's product `x[4096, 256] W[1024, 256]^T` at the current engine
/// threads (five timed runs after two untimed): the SGEMM ceiling that `graft bench engine` reports
/// as `gemm_4096x256x1024_gflops`.
func sgemmCeiling() -> Double {
    let (m, k, n) = (4096, 256, 1024)
    var rng = RNG(seed: 7)
    let a = Tensor(shape: [m, k], values: (0..<(m * k)).map { _ in rng.uniform() - 0.5 })
    let w = Tensor(shape: [n, k], values: (0..<(n * k)).map { _ in rng.uniform() - 0.5 })
    let c = Tensor(shape: [m, n])
    var rates: [Double] = []
    for rep in 0..<7 {
        let t0 = DispatchTime.now().uptimeNanoseconds
        BLAS.matmul(.none, .transposed, m: m, n: n, k: k, a: a.data, b: w.data, c: c.data)
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0)
        if rep >= 2 { rates.append(2.0 * Double(m * n * k) / dt) }
    }
    withExtendedLifetime((a, w, c)) {}
    return median(rates)
}
