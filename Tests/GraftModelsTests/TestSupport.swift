import GraftSupport
import Foundation
import Testing
import GraftEngine
import GraftTokenizers
@testable import GraftModels

/// Package root, from this file's path.
let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Shared data directory: `GRAFT_DATA_DIR`, else `<package root>/../shared/data`.
let dataDir: URL = {
    if let d = ProcessInfo.processInfo.environment["GRAFT_DATA_DIR"], !d.isEmpty { return URL(fileURLWithPath: d) }
    return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data")
}()

func temporaryDirectory() throws -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent("graft-models-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}

/// A tiny configuration for numeric tests (dropout off).
func tinyConfig(_ kind: ModelKind, vocab: Int = 13) -> ModelConfig {
    ModelConfig(kind: kind, vocabSize: vocab, hidden: 8, layers: 2, heads: 2, ffn: 16, maxPositions: 8,
                dropout: 0, attentionDropout: 0, padTokenId: kind == .bert ? 0 : nil)
}

/// Overwrites every parameter with deterministic values of a larger scale than the 0.02
/// initialisation (LayerNorm weights around 1), so finite differences see O(1) curvature.
func randomize(_ store: ParameterStore, seed: UInt64, scale: Float = 0.4) {
    var r = RNG(seed: seed)
    for p in store.parameters {
        let v = store.value(p)
        let isNormWeight = p.name.contains("LayerNorm.weight") || p.name.hasSuffix("ln_1.weight")
            || p.name.hasSuffix("ln_2.weight") || p.name.hasSuffix("ln_f.weight")
        for i in 0..<p.count { v[i] = (isNormWeight ? 1 : 0) + r.normal() * scale }
    }
}

/// Central finite differences of a Float32 loss, compared with the analytic gradient.
///
/// Tolerance (stated): `|analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)` with
/// step `h = 2e-3`, `atol = 2e-3`, `rtol = 2e-2`. The loss is a Float32 forward pass (rounding
/// ~1e-7 relative, amplified by `1/(2h)` to ~1e-4); O(h^2) truncation is below that at this scale.
/// Checks up to `maxPerVar` evenly spaced entries of each parameter.
func expectGradientsMatch(_ store: ParameterStore, h: Float = 2e-3, atol: Double = 2e-3, rtol: Double = 2e-2,
                          maxPerVar: Int = 24, sourceLocation: SourceLocation = #_sourceLocation,
                          loss: () throws -> Double) rethrows -> Int {
    var failures: [String] = []
    var checked = 0
    let analytic = Array(UnsafeBufferPointer(start: store.grads, count: store.count))
    for p in store.parameters {
        let step = max(1, p.count / maxPerVar)
        var i = 0
        while i < p.count {
            let v = store.value(p)
            let saved = v[i]
            v[i] = saved + h
            let lp = try loss()
            v[i] = saved - h
            let lm = try loss()
            v[i] = saved
            let numeric = (lp - lm) / Double(2 * h)
            let a = Double(analytic[p.offset + i])
            if abs(a - numeric) > atol + rtol * max(abs(a), abs(numeric)) {
                failures.append("\(p.name)[\(i)]: analytic \(a) numeric \(numeric)")
            }
            checked += 1
            i += step
        }
    }
    #expect(failures.isEmpty, "gradient mismatches: \(failures.prefix(8))", sourceLocation: sourceLocation)
    return checked
}

/// A WordPiece tokenizer over a small fixed vocabulary (no shared data needed).
func smallWordPieceTokenizer() throws -> Tokenizer {
    let words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "dog", "sat", "on", "mat", "a", "ran",
                 "##s", "##ed", "and", ".", ",", "big", "small", "red", "blue", "house", "tree"]
    return try Tokenizer.bert(vocab: Vocabulary(tokens: words))
}

/// A byte-level BPE tokenizer trained on a few sentences (with `<|endoftext|>`).
func smallBPETokenizer() throws -> Tokenizer {
    let trainer = TokenizerTrainer(kind: .bpe, vocabSize: 300, minFrequency: 1, threads: 1)
    var counter = trainer.makeCounter(threads: 1)
    counter.add(documents: ["the cat sat on the mat.", "a big dog ran to the red house.", "the small cat and the blue tree."])
    return try trainer.finish(counter.counts())
}

/// Reads a JSON Lines file into dictionaries.
func readJSONLines(_ url: URL) throws -> [[String: Any]] {
    try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map {
        try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
    }
}
