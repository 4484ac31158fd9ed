import GraftSupport
import Foundation

extension ParameterStore {
    /// Safetensors entries for every parameter (by name, declaration order).
    public var safetensorsEntries: [SafeTensors.Entry] {
        parameters.map { SafeTensors.Entry(name: $0.name, shape: $0.shape, data: UnsafePointer(value($0))) }
    }

    /// Writes every parameter as F32 under its name (atomically), with `metadata`.
    public func save(to url: URL, metadata: [String: String] = [:]) throws {
        try SafeTensors.write(safetensorsEntries, metadata: metadata, to: url)
    }
}

/// A whole training state in one safetensors file: weights under their names, optimizer
/// buffers as `optimizer.<buffer>.<name>`, and in `__metadata__` the optimizer kind,
/// hyper-parameters and step, the learning-rate schedule, the RNG state and caller metadata.
/// Restoring it and continuing gives bit-identical results to an uninterrupted run.
public enum TrainingCheckpoint {
    public static let formatKey = "graft.format"
    public static let formatValue = "graft-training-state-1"
    /// The most updates a state may record (2⁴⁰: far past any run, and small enough that counts
    /// derived from it, tokens and examples, cannot overflow).
    public static let maxSteps = 1 << 40

    /// Saves `store` values, `optimizer` state, `schedule`, `rng` and `metadata` to `url`.
    public static func save(to url: URL, store: ParameterStore, optimizer: Optimizer, schedule: LRSchedule? = nil,
                            rng: SharedRNG? = nil, metadata: [String: String] = [:]) throws {
        var entries = store.safetensorsEntries
        for (bufName, buf) in optimizer.stateBuffers {
            for p in store.parameters {
                entries.append(SafeTensors.Entry(name: "optimizer.\(bufName).\(p.name)", shape: p.shape, data: UnsafePointer(buf + p.offset)))
            }
        }
        var meta = metadata
        meta[formatKey] = formatValue
        for (k, v) in optimizer.metadata { meta[k] = v }
        if let schedule { for (k, v) in schedule.metadata { meta[k] = v } }
        if let rng { meta["rng.state"] = rng.rng.stateWords.map(String.init).joined(separator: ",") }
        try SafeTensors.write(entries, metadata: meta, to: url)
    }

    /// What ``load(from:store:optimizer:rng:)`` restored besides the tensors.
    public struct Restored {
        public let step: Int
        public let schedule: LRSchedule?
        public let metadata: [String: String]
    }

    /// Restores values, optimizer buffers and step, and the RNG state from a file written by
    /// ``save(to:store:optimizer:schedule:rng:metadata:)``. The store must have the same
    /// parameter names and shapes, and the optimizer the same kind.
    @discardableResult
    public static func load(from url: URL, store: ParameterStore, optimizer: Optimizer, rng: SharedRNG? = nil) throws -> Restored {
        let file = try SafeTensors(contentsOf: url)
        let meta = file.metadata
        guard meta[formatKey] == formatValue else {
            throw EngineError.checkpointMismatch("\(url.path) is not a Graft training state (\(formatKey) = \(meta[formatKey] ?? "absent"))")
        }
        guard meta["optimizer"] == optimizer.metadata["optimizer"] else {
            throw EngineError.checkpointMismatch("\(url.path) holds optimizer \(meta["optimizer"] ?? "?"), not \(optimizer.metadata["optimizer"] ?? "?")")
        }
        guard let step = meta["optimizer.step"].flatMap(Int.init) else {
            throw EngineError.checkpointMismatch("\(url.path): missing optimizer.step")
        }
        for p in store.parameters {
            let info = try file.info(p.name)
            guard info.shape == p.shape else { throw EngineError.shapeMismatch("\(url.path): \(p.name) \(info.shape) vs \(p.shape)") }
            try file.readFloats(p.name, into: store.value(p))
            for (bufName, buf) in optimizer.stateBuffers {
                let n = "optimizer.\(bufName).\(p.name)"
                let bi = try file.info(n)
                guard bi.shape == p.shape else { throw EngineError.shapeMismatch("\(url.path): \(n) \(bi.shape) vs \(p.shape)") }
                try file.readFloats(n, into: buf + p.offset)
            }
        }
        guard (0...maxSteps).contains(step) else {
            throw EngineError.checkpointMismatch("\(url.path): optimizer.step \(step) is outside 0...\(maxSteps)")
        }
        /// A hyper-parameter as written, when present: in its domain, or the state is refused
        /// (a NaN β₁ or a zero ε would only show up as a diverged run).
        func hyper(_ key: String, _ domain: String, _ valid: (Float) -> Bool) throws -> Float? {
            guard let text = meta[key] else { return nil }
            guard let x = Float(text), x.isFinite, valid(x) else {
                throw EngineError.checkpointMismatch("\(url.path): \(key) \(text.prefix(40)) is not \(domain)")
            }
            return x
        }
        let decay = try hyper("optimizer.weight_decay", "a weight decay ≥ 0") { $0 >= 0 }
        optimizer.stepCount = step
        if let h = optimizer as? AdamW {
            if let x = try hyper("optimizer.beta1", "a β₁ in [0, 1)", { $0 >= 0 && $0 < 1 }) { h.beta1 = x }
            if let x = try hyper("optimizer.beta2", "a β₂ in [0, 1)", { $0 >= 0 && $0 < 1 }) { h.beta2 = x }
            if let x = try hyper("optimizer.eps", "an ε above 0", { $0 > 0 }) { h.eps = x }
            if let decay { h.weightDecay = decay }
        } else if let s = optimizer as? SGD {
            if let x = try hyper("optimizer.momentum", "a momentum in [0, 1)", { $0 >= 0 && $0 < 1 }) { s.momentum = x }
            if let decay { s.weightDecay = decay }
        }
        if let rng {
            guard let words = meta["rng.state"]?.split(separator: ",").compactMap({ UInt64($0) }) else {
                throw EngineError.checkpointMismatch("\(url.path): no rng.state")
            }
            rng.rng = try RNG(state: words)
        }
        return Restored(step: step, schedule: LRSchedule(metadata: meta), metadata: meta)
    }
}
