import GraftSupport
import Foundation
import Testing
@testable import GraftEngine

/// Deterministic random floats for tests.
func randomArray(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var r = RNG(seed: seed)
    return (0..<n).map { _ in r.normal() * scale }
}

func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
    Tensor(shape: shape, values: randomArray(shape.reduce(1, *), seed: seed, scale: scale))
}

func dot(_ t: Tensor, _ r: [Float]) -> Double {
    var s = 0.0
    for i in 0..<t.count { s += Double(t.data[i]) * Double(r[i]) }
    return s
}

/// A variable whose analytic gradient is checked: `count` floats at `pointer`.
struct GradVar {
    let name: String
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    let analytic: [Float]
}

/// Central finite differences in Float32 with the loss accumulated in Double.
///
/// Tolerance (stated): `|analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)` with
/// step `h = 5e-3`, `atol = 5e-3`, `rtol = 2e-2` by default. Float32 forward passes carry
/// ~1e-7 relative rounding, amplified by `1/h`; the O(h^2) truncation error is ~1e-5 here.
/// Checks up to `maxPerVar` evenly spaced indices of each variable.
func expectGradientsMatch(_ vars: [GradVar], h: Float = 5e-3, atol: Double = 5e-3, rtol: Double = 2e-2,
                          maxPerVar: Int = 64, sourceLocation: SourceLocation = #_sourceLocation,
                          loss: () throws -> Double) rethrows {
    var worst = 0.0
    var failures: [String] = []
    for v in vars {
        #expect(v.analytic.count == v.count, "analytic gradient size for \(v.name)", sourceLocation: sourceLocation)
        let step = max(1, v.count / maxPerVar)
        var i = 0
        while i < v.count {
            let saved = v.pointer[i]
            v.pointer[i] = saved + h
            let lp = try loss()
            v.pointer[i] = saved - h
            let lm = try loss()
            v.pointer[i] = saved
            let numeric = (lp - lm) / Double(2 * h)
            let a = Double(v.analytic[i])
            let err = abs(a - numeric)
            worst = max(worst, err / (atol + rtol * max(abs(a), abs(numeric))))
            if err > atol + rtol * max(abs(a), abs(numeric)) {
                failures.append("\(v.name)[\(i)]: analytic \(a) numeric \(numeric)")
            }
            i += step
        }
    }
    #expect(failures.isEmpty, "gradient mismatches (worst ratio to tolerance \(worst)): \(failures.prefix(8))",
            sourceLocation: sourceLocation)
}

/// Gradient variables for every parameter of a store (after a backward).
func paramVars(_ store: ParameterStore) -> [GradVar] {
    store.parameters.map {
        GradVar(name: $0.name, pointer: store.value($0), count: $0.count,
                analytic: Array(UnsafeBufferPointer(start: store.grad($0), count: $0.count)))
    }
}

/// Package root (for fixtures), from this file's path.
let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

let fixturesDir = packageRoot.appendingPathComponent("Tests/GraftEngineTests/Fixtures")

/// Shared data directory: `GRAFT_DATA_DIR`, else `<package root>/../shared/data`.
let dataDir: URL = {
    if let d = ProcessInfo.processInfo.environment["GRAFT_DATA_DIR"], !d.isEmpty { return URL(fileURLWithPath: d) }
    return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data")
}()

func temporaryDirectory() throws -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent("graft-engine-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}
