import Dispatch
import Foundation
import GraftEngine
import GraftSupport

/// Where the time of `steps` training updates went, from a ``Profiler`` that recorded them: per
/// region its milliseconds per update, share of the update and the GEMM time inside it (nested
/// regions indented under the one that encloses them), then the GEMM rate against an SGEMM
/// ceiling, then the time of each kind of operation over all layers (``Profiler/beginOperation(_:)``:
/// LayerNorm, GELU, attention, the projections ..., with the GEMM time inside each), then the
/// GEMM regions by shape (the 12 longest, the rest summed in one row; JSON `gemm_shapes_all` lists every one), each
/// with its rate against the ceiling. `graft bench pretrain --profile` and
/// `graft pretrain|finetune --profile` print it.
struct ProfileReport {
    let lines: [String]
    let json: JSONValue

    /// `seconds`: the wall time of the `steps` updates (the regions' reference); `ceiling`: the
    /// SGEMM GFLOP/s the GEMM rate is compared with (``sgemmCeiling()``); `pairedUpdates`: per
    /// update, its GEMM work rate over the ceiling sampled beside it (`graft bench pretrain`),
    /// reported as their median and range.
    init(_ p: Profiler, steps: Int, seconds: Double, ceiling: Double, pairedUpdates: [Double] = []) {
        let n = Double(max(steps, 1))
        let step = seconds / n
        func r1(_ x: Double) -> JSONValue { .number((x * 10).rounded() / 10) }
        func r3(_ x: Double) -> JSONValue { .number((x * 1000).rounded() / 1000) }
        var rows: [JSONValue] = []
        // A table's first column, padded to `width` characters (longer names run on).
        func padded(_ name: String, to width: Int = 30) -> String {
            name.count >= width ? name : name + String(repeating: " ", count: width - name.count)
        }
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
        if !pairedUpdates.isEmpty {
            lines.append(String(format: "each update's GEMM work rate against the ceiling sampled just before and after it: median %.1f%%, %.1f-%.1f%% over %d updates",
                                median(pairedUpdates) * 100, (pairedUpdates.min() ?? 0) * 100, (pairedUpdates.max() ?? 0) * 100, pairedUpdates.count))
        }
        // The operations (every layer's forward and backward kinds, all layers together), the
        // longest first: how the time outside the GEMMs splits between them.
        var operationRows: [JSONValue] = []
        lines.append(padded("operation (per update, all layers)", to: 52) + "  calls        ms   share   GEMM ms  other ms")
        var inOperations = 0.0
        for o in p.operations.sorted(by: { $0.seconds > $1.seconds }) {
            inOperations += o.seconds
            let rest = max(0, o.seconds - o.gemmSeconds)
            operationRows.append(.object([("operation", .string(o.name)), ("calls_per_step", r1(Double(o.calls) / n)),
                                          ("ms_per_step", r1(o.seconds / n * 1e3)), ("share", r3(o.seconds / n / step)),
                                          ("gemm_ms_per_step", r1(o.gemmSeconds / n * 1e3)), ("other_ms_per_step", r1(rest / n * 1e3))]))
            lines.append(padded("  " + o.name, to: 52) + String(format: " %6.1f %9.1f %6.1f%% %9.1f %9.1f", Double(o.calls) / n, o.seconds / n * 1e3,
                                                        o.seconds / n / step * 100, o.gemmSeconds / n * 1e3, rest / n * 1e3))
        }
        let outsideOperations = max(0, step - inOperations / n)
        lines.append(padded("  the rest (optimizer, norms, sums, copies)", to: 52) + String(format: "        %9.1f %6.1f%%",
                                                                              outsideOperations * 1e3, outsideOperations / step * 100))
        // The GEMM regions by shape, the longest first (the first 12, then the rest as one row):
        // which products fall short of the ceiling.
        var shapeRows: [JSONValue] = []
        lines.append(padded("GEMM shape (per update)", to: 56) + "  calls        ms   share   GFLOP/s  of ceiling")
        let sorted = p.shapes.sorted { $0.seconds > $1.seconds }
        var shown = Array(sorted.prefix(12))
        if sorted.count > 12 {
            let rest = sorted.dropFirst(12)
            var other = Profiler.Shape(name: "\(rest.count) other shapes")
            for sh in rest { other.seconds += sh.seconds; other.flops += sh.flops; other.calls += sh.calls }
            shown.append(other)
        }
        func shapeRow(_ sh: Profiler.Shape) -> JSONValue {
            let rate = sh.seconds > 0 ? sh.flops / sh.seconds * 1e-9 : 0
            return .object([("shape", .string(sh.name)), ("calls_per_step", r1(Double(sh.calls) / n)),
                            ("ms_per_step", r1(sh.seconds / n * 1e3)), ("share", r3(sh.seconds / n / step)),
                            ("gflops", r1(rate)), ("of_ceiling", r3(rate / ceiling))])
        }
        for sh in shown {
            let rate = sh.seconds > 0 ? sh.flops / sh.seconds * 1e-9 : 0
            shapeRows.append(shapeRow(sh))
            lines.append(padded("  " + sh.name, to: 56) + String(format: " %6.1f %9.1f %6.1f%% %9.1f %10.1f%%", Double(sh.calls) / n,
                                                              sh.seconds / n * 1e3, sh.seconds / n / step * 100, rate, rate / ceiling * 100))
        }
        self.lines = lines
        json = .object([
            ("steps", .number(Double(steps))), ("ms_per_step", r1(step * 1e3)),
            ("regions", .array(rows)), ("outside_regions_ms_per_step", r1(other * 1e3)),
            ("gemm_ms_per_step", r1(p.seconds / n * 1e3)), ("gemm_share", r3(p.seconds / n / step)),
            ("gemm_gflops", r1(gemmRate)), ("step_gflops", r1(stepRate)), ("sgemm_ceiling_gflops", r1(ceiling)),
            ("gemm_of_ceiling", r3(gemmRate / ceiling)), ("step_of_ceiling", r3(stepRate / ceiling)),
            ("gemm_shapes", .array(shapeRows)), ("gemm_shapes_all", .array(sorted.map(shapeRow))),
            ("operations", .array(operationRows)), ("outside_operations_ms_per_step", r1(outsideOperations * 1e3)),
        ] + (pairedUpdates.isEmpty ? [] : [
            ("update_of_ceiling_median", r3(median(pairedUpdates))), ("update_of_ceiling_min", r3(pairedUpdates.min() ?? 0)),
            ("update_of_ceiling_max", r3(pairedUpdates.max() ?? 0)),
        ]))
    }
}

/// The SGEMM ceiling: the GFLOP/s of the engine's product `x[4096, 256] W[1024, 256]^T` at the
/// current engine threads, the figure `graft bench engine` reports as `gemm_4096x256x1024_gflops`.
/// ``sample(_:)`` times it (after two untimed runs the first time); ``gflops`` is the median of
/// every sample taken. On a shared machine whose speed drifts, samples taken between the timed
/// updates (`graft bench pretrain --profile`) see the machine the updates saw.
final class SGEMMCeiling {
    private let a: Tensor, w: Tensor, c: Tensor
    private var rates: [Double] = []
    private var warm = false
    static let (m, k, n) = (4096, 256, 1024)

    init() {
        var rng = RNG(seed: 7)
        a = Tensor(shape: [Self.m, Self.k], values: (0..<(Self.m * Self.k)).map { _ in rng.uniform() - 0.5 })
        w = Tensor(shape: [Self.n, Self.k], values: (0..<(Self.n * Self.k)).map { _ in rng.uniform() - 0.5 })
        c = Tensor(shape: [Self.m, Self.n])
    }

    /// Times the product `times` times (not counted in any profiler region: call it outside
    /// ``Profiler/record(_:)``); returns those samples' GFLOP/s.
    @discardableResult
    func sample(_ times: Int) -> [Double] {
        if !warm { run(); run(); warm = true }
        var taken: [Double] = []
        for _ in 0..<times {
            let t0 = DispatchTime.now().uptimeNanoseconds
            run()
            taken.append(2.0 * Double(Self.m * Self.n * Self.k) / Double(DispatchTime.now().uptimeNanoseconds - t0))
        }
        rates += taken
        return taken
    }

    private func run() {
        BLAS.matmul(.none, .transposed, m: Self.m, n: Self.n, k: Self.k, a: a.data, b: w.data, c: c.data)
    }

    /// Median GFLOP/s of the samples so far (five are taken first when there are none).
    var gflops: Double {
        if rates.isEmpty { sample(5) }
        return median(rates)
    }
}

/// Median GFLOP/s of five timed runs of the SGEMM ceiling's product, measured now.
func sgemmCeiling() -> Double { SGEMMCeiling().gflops }
