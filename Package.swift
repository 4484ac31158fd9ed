// swift-tools-version: 6.0
// Graft: NLP transfer learning on an ordinary machine.
// Layers (imports flow one way; see ARCHITECTURE.md):
//   C shims (CUtf8proc, COpenBLAS) -> GraftTokenizers, GraftEngine -> GraftModels -> GraftTasks -> graft (CLI)
//   GraftCorpus (SQLite via GRDB) sits beside them and depends only on GraftTokenizers.
//   GraftTasks (task specs in TOML via TOMLKit, metrics, data readers, decoding) uses GraftModels and GraftCorpus.
import PackageDescription
import Foundation

// The engine's element-wise kernels (GELU, softmax, LayerNorm, AdamW, dropout, …) are plain loops
// that the compiler vectorises; built for baseline x86-64 they get 4-wide SSE. Where the machine
// building Graft (which, built from source, is the machine running it) has AVX2 and FMA, the
// engine is compiled for `haswell` (8-wide AVX2, FMA; what x86-64-v3 names), as llama.cpp builds for the native CPU;
// where it also has AVX-512 (F, CD, BW, DQ, VL: Skylake-SP and later Xeons, Zen 4), for
// `skylake-avx512` with 16-wide vectors (LLVM's tuning for those cores keeps loops 8-wide unless
// `prefer-256-bit` is switched off): the time outside GEMMs of a BERT-Mini update fell by 12-20%
// on a Xeon (BENCHMARKS.md, session 13).
// Results do not change: no floating-point contraction or reassociation is enabled, so every
// element is computed by the same IEEE operations in the same order (fine-tuning weights were
// identical bit for bit between the 8- and 16-wide builds). GRAFT_TARGET_CPU overrides it:
// `baseline` (portable binaries), or an LLVM CPU name such as `haswell` (used as given).
let engineSettings: [SwiftSetting] = {
    let requested = ProcessInfo.processInfo.environment["GRAFT_TARGET_CPU"]
    if requested == "baseline" { return [] }
    if let requested, !requested.isEmpty { return [.unsafeFlags(["-target-cpu", requested])] }
    #if arch(x86_64) && os(Linux)
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
    let flags = Set(flagsLine.split(separator: " ").map(String.init))
    guard ["avx", "avx2", "fma", "bmi2", "movbe"].allSatisfy(flags.contains) else { return [] }
    if ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains) {
        // The feature reaches LLVM through the Clang importer's target options.
        return [.unsafeFlags(["-target-cpu", "skylake-avx512",
                              "-Xcc", "-Xclang", "-Xcc", "-target-feature", "-Xcc", "-Xclang", "-Xcc", "-prefer-256-bit"])]
    }
    return [.unsafeFlags(["-target-cpu", "haswell"])]
    #else
    return []
    #endif
}()

let package = Package(
    name: "Graft",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "graft", targets: ["GraftCLI"]),
        .library(name: "GraftSupport", targets: ["GraftSupport"]),
        .library(name: "GraftTokenizers", targets: ["GraftTokenizers"]),
        .library(name: "GraftEngine", targets: ["GraftEngine"]),
        .library(name: "GraftCorpus", targets: ["GraftCorpus"]),
        .library(name: "GraftModels", targets: ["GraftModels"]),
        .library(name: "GraftTasks", targets: ["GraftTasks"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.0"),
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // MARK: C system libraries (Debian: libutf8proc-dev, libopenblas-dev)
        .systemLibrary(
            name: "CUtf8proc",
            path: "Sources/CUtf8proc",
            pkgConfig: "libutf8proc",
            providers: [.apt(["libutf8proc-dev"]), .brew(["utf8proc"])]
        ),
        .systemLibrary(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]
        ),

        // Open MPI, loaded with dlopen only under mpirun (no link-time dependency; see ARCHITECTURE.md).
        .target(
            name: "CGraftMPI",
            path: "Sources/CGraftMPI",
            linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]
        ),

        // MARK: Layers
        // GraftSupport: one copy of each shared utility (Foundation/Glibc only); every layer may import it.
        .target(name: "GraftSupport"),
        .target(
            name: "GraftTokenizers",
            dependencies: ["CUtf8proc", "GraftSupport"]
        ),
        .target(
            name: "GraftEngine",
            dependencies: ["COpenBLAS", "CGraftMPI", "GraftSupport"],
            swiftSettings: engineSettings
        ),
        .target(
            name: "GraftCorpus",
            dependencies: [
                "GraftSupport",
                "GraftTokenizers",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "GraftModels",
            dependencies: ["GraftSupport", "GraftEngine", "GraftTokenizers"]
        ),
        .target(
            name: "GraftTasks",
            dependencies: [
                "GraftSupport",
                "GraftModels",
                "GraftEngine",
                "GraftCorpus",
                "GraftTokenizers",
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),
        .executableTarget(
            name: "GraftCLI",
            dependencies: [
                "GraftSupport",
                "GraftTokenizers",
                "GraftEngine",
                "GraftCorpus",
                "GraftModels",
                "GraftTasks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: Tests
        .testTarget(
            name: "GraftSupportTests",
            dependencies: ["GraftSupport"]
        ),
        .testTarget(
            name: "GraftTokenizersTests",
            dependencies: ["GraftTokenizers", "GraftSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "GraftEngineTests",
            dependencies: ["GraftEngine", "GraftSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "GraftModelsTests",
            dependencies: ["GraftModels", "GraftEngine", "GraftTokenizers", "GraftSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "GraftCorpusTests",
            dependencies: ["GraftCorpus", "GraftTokenizers", "GraftSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "GraftTasksTests",
            dependencies: ["GraftTasks", "GraftModels", "GraftEngine", "GraftCorpus", "GraftTokenizers", "GraftSupport"],
            resources: [.copy("Fixtures")]
        ),
    ]
)
