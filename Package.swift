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

        // MARK: Layers
        .target(
            name: "GraftTokenizers",
            dependencies: ["CUtf8proc"]
        ),
        .target(
            name: "GraftEngine",
            dependencies: ["COpenBLAS"]
        ),
        .target(
            name: "GraftCorpus",
            dependencies: [
                "GraftTokenizers",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "GraftModels",
            dependencies: ["GraftEngine", "GraftTokenizers"]
        ),
        .target(
            name: "GraftTasks",
            dependencies: [
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
                "GraftTokenizers",
                "GraftEngine",
                "GraftCorpus",
                "GraftModels",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: Tests
        .testTarget(
            name: "GraftTokenizersTests",
            dependencies: ["GraftTokenizers"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "GraftEngineTests",
            dependencies: ["GraftEngine"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "GraftModelsTests",
            dependencies: ["GraftModels", "GraftEngine", "GraftTokenizers"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "GraftCorpusTests",
            dependencies: ["GraftCorpus", "GraftTokenizers"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "GraftTasksTests",
            dependencies: ["GraftTasks", "GraftCorpus", "GraftTokenizers"],
            resources: [.copy("Fixtures")]
        ),
    ]
)
