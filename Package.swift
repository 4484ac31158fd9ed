// swift-tools-version: 6.0
// Graft: NLP transfer learning on an ordinary machine.
// Layers (imports flow one way; see ARCHITECTURE.md):
//   C shims (CUtf8proc, COpenBLAS) -> GraftTokenizers, GraftEngine -> GraftModels -> GraftTasks -> graft (CLI)
//   GraftCorpus (SQLite via GRDB) sits beside them and depends only on GraftTokenizers.
//   GraftTasks (task specs in TOML via TOMLKit, metrics, data readers, decoding) uses GraftModels and GraftCorpus.
import PackageDescription

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
            dependencies: ["COpenBLAS", "CGraftMPI", "GraftSupport"]
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
