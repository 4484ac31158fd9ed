import Foundation
import GraftEngine

/// Network surgery: a model cut down to some of its transformer layers, as a new model of the
/// same architecture (BERT or GPT-2; base or head model) whose layers are renumbered `0..<k`.
///
/// The cut model's layer `j` holds exactly the weights of the original's layer `layers[j]`, and
/// every other parameter (embeddings, pooler, final norm, task head) is copied unchanged, so it
/// computes bit for bit what the original computes with the other layers skipped
/// (``BertModel/skippedLayers``, ``GPTForCausalLM/skippedLayers``). Its configuration differs
/// only in the layer count (`num_hidden_layers` / `n_layer`).
public enum ModelSurgery {
    /// `layers` checked against a model of `count` layers: not empty, strictly increasing (no
    /// duplicates, in order) and each in `0..<count`; otherwise an error saying which.
    @discardableResult
    public static func checkLayers(_ layers: [Int], of count: Int) throws -> [Int] {
        guard !layers.isEmpty else { throw ModelError.invalidArgument("the layer list is empty: keep at least one of layers 0..<\(count)") }
        for l in layers where l < 0 || l >= count {
            throw ModelError.invalidArgument("layer \(l) is out of range: the model has layers 0..<\(count)")
        }
        for (a, b) in zip(layers, layers.dropFirst()) {
            if a == b { throw ModelError.invalidArgument("layer \(a) is listed twice (\(list(layers)))") }
            if a > b { throw ModelError.invalidArgument("the layers are not in increasing order (\(b) after \(a) in \(list(layers))): surgery keeps their order, so list them sorted") }
        }
        return layers
    }

    /// Every `k`-th layer of `count`, counting from the first: `0, k, 2k, …` (`k` ≥ 1).
    public static func everyLayer(_ k: Int, of count: Int) throws -> [Int] {
        guard k >= 1 else { throw ModelError.invalidArgument("keeping every K-th layer needs K >= 1, got \(k)") }
        return Array(stride(from: 0, to: count, by: k))
    }

    /// Parses a comma-separated layer list (`"0,2,4"`; spaces allowed), checked as
    /// ``checkLayers(_:of:)`` does.
    public static func parseLayers(_ text: String, of count: Int) throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        if parts.count == 1 && parts[0].isEmpty { return try checkLayers([], of: count) }
        let layers = try parts.map { p -> Int in
            guard let i = Int(p) else { throw ModelError.invalidArgument("\"\(p)\" in the layer list \"\(text)\" is not a layer number") }
            return i
        }
        return try checkLayers(layers, of: count)
    }

    /// The block index and the rest of a parameter name inside one of the model's transformer
    /// layers (`encoder.layer.N.…` for BERT, `h.N.…` for GPT-2), or nil for any other parameter.
    public static func layerOf(_ name: String) -> (prefix: String, layer: Int, rest: Substring)? {
        for prefix in ["encoder.layer.", "h."] where name.hasPrefix(prefix) {
            let tail = name.dropFirst(prefix.count)
            guard let dot = tail.firstIndex(of: "."), let i = Int(tail[..<dot]) else { return nil }
            return (prefix, i, tail[dot...])
        }
        return nil
    }

    /// A new model of `model`'s architecture with only `layers` (checked with
    /// ``checkLayers(_:of:)``), renumbered in order, every other parameter copied. The new
    /// model's dropout generator is seeded by `seed`.
    public static func keepingLayers(_ layers: [Int], of model: any PretrainedModel, seed: UInt64 = 0) throws -> any PretrainedModel {
        try checkLayers(layers, of: model.config.layers)
        let entry = try ModelRegistry.architecture(named: model.architecture, file: "config.json")
        var config = model.config
        config.layers = layers.count
        if let pruned = model.config.prunedHeads {
            var renumbered: [Int: [Int]] = [:]
            for (j, l) in layers.enumerated() where !(pruned[l] ?? []).isEmpty { renumbered[j] = pruned[l] }
            config.prunedHeads = renumbered.isEmpty ? nil : renumbered
        }
        let names = Set(model.store.parameters.map(\.name))
        let cut = try entry.build(.init(config: config, seed: seed, checkpointNames: names))
        for p in cut.store.parameters {
            var source = p.name
            if let m = layerOf(p.name) { source = "\(m.prefix)\(layers[m.layer])\(m.rest)" }
            guard model.store.contains(source) else {
                throw ModelError.invalidArgument("surgery on \(model.architecture): the original has no parameter \(source) for \(p.name)")
            }
            let q = try model.store.parameter(named: source)
            guard q.shape == p.shape else {
                throw ModelError.invalidArgument("surgery on \(model.architecture): \(source) has shape \(q.shape), \(p.name) \(p.shape)")
            }
            cut.store.value(p).update(from: model.store.value(q), count: p.count)
        }
        return cut
    }

    /// Parses `--drop-heads`: `LAYER:HEAD` pairs separated by commas (`"0:1,2:0,2:3"`), heads
    /// numbered as in the unpruned layer; an error names a malformed pair.
    public static func parseHeads(_ text: String) throws -> [Int: [Int]] {
        var heads: [Int: [Int]] = [:]
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pair = item.split(separator: ":", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard pair.count == 2, let layer = pair[0], let head = pair[1] else {
                throw ModelError.invalidArgument("\"\(item)\" in the head list \"\(text)\" is not LAYER:HEAD (e.g. 0:1,2:3)")
            }
            heads[layer, default: []].append(head)
        }
        return heads
    }

    /// A new BERT model (base or head) without the attention heads `heads` (layer -> head indices
    /// of the unpruned layer, as HuggingFace's `prune_heads` and `config.json`'s `pruned_heads`):
    /// each such layer's query, key and value keep only the other heads' rows (weights and
    /// biases) and the attention output projection only their columns; everything else is copied.
    /// The configuration records them in ``ModelConfig/prunedHeads`` (merged with any pruned
    /// before), so the directory reopens alike and an exported one loads in transformers. A layer
    /// or head out of range, a head listed twice or already pruned, or all of a layer's heads, is
    /// an error naming it; GPT-2 (fused `c_attn`) is refused.
    public static func droppingHeads(_ heads: [Int: [Int]], of model: any PretrainedModel, seed: UInt64 = 0) throws -> any PretrainedModel {
        let old = model.config
        guard old.kind == .bert else { throw ModelError.invalidArgument("dropping attention heads is supported for BERT models only (GPT-2's attention is one fused c_attn)") }
        guard !heads.isEmpty else { throw ModelError.invalidArgument("the head list is empty") }
        var config = old
        var pruned = old.prunedHeads ?? [:]
        for layer in heads.keys.sorted() {
            guard layer >= 0, layer < old.layers else { throw ModelError.invalidArgument("layer \(layer) is out of range: the model has layers 0..<\(old.layers)") }
            for h in heads[layer]! {
                guard h >= 0, h < old.heads else { throw ModelError.invalidArgument("head \(h) of layer \(layer) is out of range: the layers have heads 0..<\(old.heads)") }
                guard !(pruned[layer] ?? []).contains(h) else {
                    throw ModelError.invalidArgument((old.prunedHeads?[layer] ?? []).contains(h) ? "head \(h) of layer \(layer) is already pruned" : "head \(h) of layer \(layer) is listed twice")
                }
                pruned[layer, default: []].append(h)
            }
            guard pruned[layer]!.count < old.heads else {
                throw ModelError.invalidArgument("dropping these heads would leave layer \(layer) with none of its \(old.heads) heads (keep at least one)")
            }
            pruned[layer]!.sort()
        }
        config.prunedHeads = pruned
        let entry = try ModelRegistry.architecture(named: model.architecture, file: "config.json")
        let cut = try entry.build(.init(config: config, seed: seed, checkpointNames: Set(model.store.parameters.map(\.name))))
        let d = old.hidden / old.heads
        for p in cut.store.parameters {
            let q = try model.store.parameter(named: p.name)
            let target = cut.store.value(p), source = model.store.value(q)
            guard let m = layerOf(p.name), heads[m.layer] != nil else {
                guard q.shape == p.shape else { throw ModelError.invalidArgument("surgery: \(p.name) has shape \(q.shape), expected \(p.shape)") }
                target.update(from: source, count: p.count)
                continue
            }
            // Positions of the kept heads among the heads the original layer has.
            let before = old.keptHeads(layer: m.layer)
            let rows = config.keptHeads(layer: m.layer).map { before.firstIndex(of: $0)! }
            switch m.rest {
            case ".attention.self.query.weight", ".attention.self.key.weight", ".attention.self.value.weight",
                 ".attention.self.query.bias", ".attention.self.key.bias", ".attention.self.value.bias":
                let width = p.shape.count == 2 ? p.shape[1] : 1   // a weight row is C floats, a bias row 1
                for (k, r) in rows.enumerated() {
                    (target + k * d * width).update(from: source + r * d * width, count: d * width)
                }
            case ".attention.output.dense.weight":
                let c = p.shape[0], a = p.shape[1], aOld = q.shape[1]
                for row in 0..<c {
                    for (k, r) in rows.enumerated() {
                        (target + row * a + k * d).update(from: source + row * aOld + r * d, count: d)
                    }
                }
            default:
                guard q.shape == p.shape else { throw ModelError.invalidArgument("surgery: \(p.name) has shape \(q.shape), expected \(p.shape)") }
                target.update(from: source, count: p.count)
            }
        }
        return cut
    }

    private static func list(_ layers: [Int]) -> String { layers.map(String.init).joined(separator: ",") }
}
