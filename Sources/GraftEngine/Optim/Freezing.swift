/// An optimizer that leaves some parameters untouched (freezing: feature extraction, the lower
/// layers of an encoder). Before each step of the wrapped optimizer the frozen ranges' gradients
/// are zeroed (so its moments there stay as they were: zero for a range frozen from the start);
/// after it, their values are restored bit for bit (undoing weight decay).
///
/// Ranges are float offsets into ``ParameterStore/values`` (a model's parameter groups give
/// them). The state buffers and step count are the wrapped optimizer's, so checkpoints are
/// unchanged.
///
/// ```swift
/// let opt = FreezingOptimizer(AdamW(model.store), frozen: model.frozenGroups(encoder: true).map(\.range))
/// ```
public final class FreezingOptimizer: Optimizer {
    public let wrapped: any Optimizer
    /// Frozen float ranges, sorted and merged.
    public let frozen: [Range<Int>]
    private var saved: [Float] = []

    public init(_ wrapped: any Optimizer, frozen: [Range<Int>]) {
        self.wrapped = wrapped
        var merged: [Range<Int>] = []
        for r in frozen.filter({ !$0.isEmpty }).sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, r.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
            } else {
                merged.append(r)
            }
        }
        self.frozen = merged
    }

    public var stepCount: Int {
        get { wrapped.stepCount }
        set { wrapped.stepCount = newValue }
    }

    public var stateBuffers: [(name: String, buffer: UnsafeMutablePointer<Float>)] { wrapped.stateBuffers }

    public var metadata: [String: String] { wrapped.metadata }

    public func step(_ store: ParameterStore, lr: Float) throws {
        guard let end = frozen.last?.upperBound, frozen.first!.lowerBound >= 0, end <= store.count else {
            if frozen.isEmpty { return try wrapped.step(store, lr: lr) }
            throw EngineError.invalidArgument("frozen ranges \(frozen) outside the store's \(store.count) floats")
        }
        let total = frozen.reduce(0) { $0 + $1.count }
        if saved.count != total { saved = [Float](repeating: 0, count: total) }
        saved.withUnsafeMutableBufferPointer { s in
            var at = 0
            for r in frozen {
                (store.grads + r.lowerBound).update(repeating: 0, count: r.count)
                (s.baseAddress! + at).update(from: store.values + r.lowerBound, count: r.count)
                at += r.count
            }
        }
        try wrapped.step(store, lr: lr)
        saved.withUnsafeBufferPointer { s in
            var at = 0
            for r in frozen {
                (store.values + r.lowerBound).update(from: s.baseAddress! + at, count: r.count)
                at += r.count
            }
        }
    }
}
