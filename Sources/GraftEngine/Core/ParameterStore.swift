import GraftSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
/// How a newly declared parameter is filled.
public enum Initializer: Sendable, Equatable {
    case zeros
    case ones
    case constant(Float)
    /// Normal with mean 0 and the given standard deviation (BERT and GPT-2 use 0.02).
    case normal(std: Float)
    /// Uniform in `[-bound, bound]`.
    case uniform(bound: Float)
}

/// A named view into a ``ParameterStore``: `count` floats at `offset` of the flat buffers.
public struct Parameter: Sendable, Hashable {
    /// HuggingFace-style name, e.g. `encoder.layer.0.attention.self.query.weight`.
    public let name: String
    public let shape: [Int]
    /// Offset (in floats) into ``ParameterStore/values`` and ``ParameterStore/grads``.
    public let offset: Int
    public let count: Int
    /// Whether AdamW applies weight decay (see ``ParameterStore/defaultDecayRule(_:)``).
    public let decay: Bool
}

/// All parameters of a model in ONE contiguous `Float` buffer and all gradients in ONE
/// parallel buffer (as llm.c does), with named views.
///
/// A data-parallel step is therefore a single all-reduce over ``grads``, an optimizer step is
/// one pass over flat memory, and checkpoints load and save by name.
///
/// Declare parameters while building layers; declaring may move the buffers, so layers keep
/// ``Parameter`` handles and ask ``value(_:)`` / ``grad(_:)`` for pointers at each call.
///
/// ```swift
/// let store = ParameterStore(seed: 42)
/// let w = try store.declare("classifier.weight", shape: [2, 16], initializer: .normal(std: 0.02))
/// store.value(w)[0] = 1   // raw pointer into the flat buffer
/// ```
public final class ParameterStore: @unchecked Sendable {
    public private(set) var parameters: [Parameter] = []
    private var index: [String: Int] = [:]
    /// Total number of floats.
    public private(set) var count: Int = 0
    private var capacity: Int = 0
    /// Flat parameter buffer (`count` floats).
    public private(set) var values: UnsafeMutablePointer<Float>
    /// Flat gradient buffer (`count` floats), parallel to ``values``.
    public private(set) var grads: UnsafeMutablePointer<Float>
    /// Generator used by initializers.
    public var rng: RNG
    /// Decides weight decay for a name; applied at declaration.
    public let decayRule: @Sendable (String) -> Bool
    /// The parameters whose random initial values ``declare(_:shape:initializer:)`` does not
    /// draw (``withInitialValues(comingFrom:_:)`` was running when the store was made).
    private let valuesComingFromElsewhere: Set<String>
    /// Random initial values not drawn: the parameter, its initializer, and the generator as it
    /// stood when the parameter was declared.
    private var deferred: [(parameter: Parameter, initializer: Initializer, rng: RNG)] = []
    @TaskLocal static var namesWithValuesFromElsewhere: Set<String> = []

    /// Runs `body` (which builds a model) so that the stores it makes leave the random initial
    /// values of the parameters named in `names` undrawn: such a parameter is declared with its
    /// values at zero and the generator moved past the draws they would take
    /// (``RNG/skipNormals(_:)``: a jump, instead of a logarithm and a cosine per value), so
    /// every other parameter gets exactly the values it would get otherwise. For a model about to
    /// be loaded from a checkpoint holding those names (``ModelDirectory``): drawing
    /// all-MiniLM-L6-v2's 22 million normals took 0.9 s of the 1.3 s `graft classify` spent on one
    /// sentence. ``drawDeferredValues(of:)`` draws those a load then did not fill.
    public static func withInitialValues<T>(comingFrom names: Set<String>, _ body: () throws -> T) rethrows -> T {
        try $namesWithValuesFromElsewhere.withValue(names, operation: body)
    }

    /// Draws the initial values left undrawn (``withInitialValues(comingFrom:_:)``) of the
    /// parameters named in `names`, bit for bit those an eager declaration draws (values the
    /// model's builder wrote over them afterwards, such as a padding row's zeros, are not
    /// rewritten), and forgets the rest: their values came from elsewhere.
    public func drawDeferredValues(of names: Set<String>) {
        for d in deferred where names.contains(d.parameter.name) {
            var generator = d.rng
            Self.fill(values + d.parameter.offset, count: d.parameter.count, with: d.initializer, rng: &generator)
        }
        deferred.removeAll()
    }

    /// The parameters whose random initial values were left undrawn (``withInitialValues(comingFrom:_:)``).
    public var deferredParameters: [String] { deferred.map(\.parameter.name) }

    /// HuggingFace's rule: no decay for biases and LayerNorm weights (names ending in `bias`,
    /// or containing `LayerNorm`, `layer_norm`, `layernorm`, `ln_`/`.ln` or `norm.`).
    public static func defaultDecayRule(_ name: String) -> Bool {
        let lower = name.lowercased()
        if lower.hasSuffix("bias") { return false }
        for marker in ["layernorm", "layer_norm", "ln_", ".ln", "norm."] where lower.contains(marker) {
            return false
        }
        return true
    }

    public init(seed: UInt64 = 0, decayRule: @escaping @Sendable (String) -> Bool = ParameterStore.defaultDecayRule) {
        rng = RNG(seed: seed)
        self.decayRule = decayRule
        valuesComingFromElsewhere = Self.namesWithValuesFromElsewhere
        Engine.singleThreadedOpenBLAS   // before the first BLAS call (see Engine)
        values = Self.alloc(0)
        grads = Self.alloc(0)
    }

    deinit {
        Self.free(values, capacity)
        Self.free(grads, capacity)
    }

    /// Zero-filled room for `n` floats (at least one) in anonymous pages, which the system
    /// backs with memory only where they are first written: the gradients of a model that only
    /// runs inference, and the unused tail of a buffer grown by doubling, take none (measured:
    /// `graft embed` of one sentence with all-MiniLM-L6-v2, 310 MB peak when both buffers were
    /// zero-filled at their doubled capacity).
    private static func alloc(_ n: Int) -> UnsafeMutablePointer<Float> {
        let bytes = max(1, n) * 4
        // No reservation (MAP_NORESERVE): a doubled capacity or an inference model's gradients
        // are address space, and must not fail a machine's overcommit check for memory they
        // never touch.
        guard let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), raw != MAP_FAILED else {
            preconditionFailure("ParameterStore: cannot map \(bytes) bytes for parameters (errno \(errno))")
        }
        return raw.bindMemory(to: Float.self, capacity: max(1, n))
    }

    private static func free(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        munmap(UnsafeMutableRawPointer(p), max(1, n) * 4)
    }

    /// Copies `count` floats into fresh zero pages, skipping each 4 KiB run that holds only
    /// zeros (gradients not yet written stay unbacked; the copy is the same either way).
    private static func copyWritten(from src: UnsafeMutablePointer<Float>, to dst: UnsafeMutablePointer<Float>, count: Int) {
        let run = 1024
        var start = 0
        while start < count {
            let n = min(run, count - start)
            let s = src + start
            var zero = true
            for i in 0..<n where s[i].bitPattern != 0 { zero = false; break }
            if !zero { (dst + start).update(from: s, count: n) }
            start += n
        }
    }

    private func reserve(_ n: Int) {
        guard n > capacity else { return }
        let newCap = max(n, capacity * 2, 1024)
        let nv = Self.alloc(newCap), ng = Self.alloc(newCap)
        nv.update(from: values, count: count)
        Self.copyWritten(from: grads, to: ng, count: count)
        Self.free(values, capacity)
        Self.free(grads, capacity)
        values = nv; grads = ng; capacity = newCap
    }

    /// Declares a parameter, appends it to the flat buffers and fills it.
    /// Offsets are rounded up to 16 floats (64 bytes) so every parameter is aligned.
    @discardableResult
    public func declare(_ name: String, shape: [Int], initializer: Initializer) throws -> Parameter {
        guard index[name] == nil else { throw EngineError.duplicateParameter(name) }
        guard shape.allSatisfy({ $0 > 0 }) else { throw EngineError.invalidArgument("parameter \(name) shape \(shape)") }
        let n = shape.reduce(1, *)
        let offset = (count + 15) / 16 * 16
        reserve(offset + n)
        let p = Parameter(name: name, shape: shape, offset: offset, count: n, decay: decayRule(name))
        count = offset + n
        index[name] = parameters.count
        parameters.append(p)
        switch initializer {
        case .normal where valuesComingFromElsewhere.contains(name):
            deferred.append((p, initializer, rng))
            rng.skipNormals(n)
        case .uniform where valuesComingFromElsewhere.contains(name):
            deferred.append((p, initializer, rng))
            rng.skipUniforms(n)
        default:
            Self.fill(values + offset, count: n, with: initializer, rng: &rng)
        }
        return p
    }

    private static func fill(_ v: UnsafeMutablePointer<Float>, count n: Int, with initializer: Initializer, rng: inout RNG) {
        switch initializer {
        case .zeros: v.update(repeating: 0, count: n)
        case .ones: v.update(repeating: 1, count: n)
        case .constant(let c): v.update(repeating: c, count: n)
        case .normal(let std): for i in 0..<n { v[i] = rng.normal() * std }
        case .uniform(let b): for i in 0..<n { v[i] = (rng.uniform() * 2 - 1) * b }
        }
    }

    /// One parameter viewing `parameters` when they lie back to back in the flat buffers (each
    /// starting where the previous one ends) and share their trailing dimensions: shape
    /// `[sum of first dimensions] + rest`, named `name`, not declared (the store's parameter
    /// list, checkpoints and optimizer see only the parts). Nil when they are not contiguous.
    public func contiguousView(_ name: String, of parts: [Parameter]) -> Parameter? {
        guard let first = parts.first, !first.shape.isEmpty else { return nil }
        let rest = Array(first.shape.dropFirst())
        var end = first.offset
        for p in parts {
            guard p.offset == end, Array(p.shape.dropFirst()) == rest, p.decay == first.decay else { return nil }
            end += p.count
        }
        return Parameter(name: name, shape: [parts.reduce(0) { $0 + $1.shape[0] }] + rest, offset: first.offset,
                         count: end - first.offset, decay: first.decay)
    }

    /// The parameter with this name.
    public func parameter(named name: String) throws -> Parameter {
        guard let i = index[name] else { throw EngineError.unknownParameter(name) }
        return parameters[i]
    }

    public func contains(_ name: String) -> Bool { index[name] != nil }

    /// Pointer to a parameter's values (valid until the next ``declare``).
    @inlinable public func value(_ p: Parameter) -> UnsafeMutablePointer<Float> { values + p.offset }
    /// Pointer to a parameter's gradient (valid until the next ``declare``).
    @inlinable public func grad(_ p: Parameter) -> UnsafeMutablePointer<Float> { grads + p.offset }

    /// A copy of a parameter's values.
    public func array(_ p: Parameter) -> [Float] { Array(UnsafeBufferPointer(start: value(p), count: p.count)) }

    /// Overwrites a parameter's values.
    public func set(_ p: Parameter, _ v: [Float]) throws {
        guard v.count == p.count else { throw EngineError.shapeMismatch("\(p.name): \(v.count) values for \(p.shape)") }
        v.withUnsafeBufferPointer { value(p).update(from: $0.baseAddress!, count: p.count) }
    }

    /// Data-parallel overlap (see `DataParallel` in GraftModels): when set, a model's backward
    /// reports each range of ``grads`` it has finished (a whole block: this backward adds nothing
    /// more there), so that range's all-reduce can start while the rest of backward runs.
    public var gradientsFinishedHandler: ((Range<Int>) -> Void)?

    /// Reports a range of ``grads`` this backward no longer changes (no-op without a handler).
    @inline(__always) public func finishedGradients(_ range: Range<Int>) { gradientsFinishedHandler?(range) }

    /// Sets all gradients to zero (call before each accumulation cycle), split over the calling
    /// computation's threads.
    public func zeroGrads() {
        let g = SharedPointer(grads)
        Engine.parallelFor(max(count, 1), minChunk: 1 << 18) { r in (g.value + r.lowerBound).update(repeating: 0, count: r.count) }
    }

    /// Global L2 norm of the gradients (summed in Double, fixed order).
    public func gradNorm() -> Double { Kernels.l2Norm(grads, count) }

    /// Loads every tensor of `file` whose (renamed) name matches a parameter, converting
    /// F16/BF16 to F32. Throws on a shape mismatch.
    ///
    /// - `stripPrefix`: removed from file names that start with it (e.g. `bert.`).
    /// - `rename`: maps a file name (after stripping) to a parameter name, or nil to skip it.
    /// - `transposed`: for names it returns true, a 2-D file tensor `[a, b]` is transposed into a
    ///   `[b, a]` parameter (GPT-2's `Conv1D` weights are stored `[in, out]`).
    /// Returns the parameters that received no value and the file tensors that were not used,
    /// so callers can decide what is acceptable (e.g. a fresh classifier head); `strict`
    /// makes either non-empty list an error.
    @discardableResult
    public func load(from file: SafeTensors, stripPrefix: String? = nil, rename: ((String) -> String?)? = nil,
                     transposed: ((String) -> Bool)? = nil, strict: Bool = false) throws
        -> (missing: [String], unexpected: [String])
    {
        var loaded = Set<String>()
        var unexpected: [String] = []
        for info in file.tensors {
            var name = info.name
            if let pre = stripPrefix, name.hasPrefix(pre) { name = String(name.dropFirst(pre.count)) }
            if let rename {
                guard let r = rename(name) else { unexpected.append(info.name); continue }
                name = r
            }
            guard let i = index[name] else { unexpected.append(info.name); continue }
            let p = parameters[i]
            let flip = transposed?(name) ?? false
            let fileShape = flip && info.shape.count == 2 ? [info.shape[1], info.shape[0]] : info.shape
            guard fileShape == p.shape else {
                throw EngineError.shapeMismatch("\(file.path): \(info.name) has shape \(info.shape)\(flip ? " (transposed)" : ""), parameter \(p.name) is \(p.shape)")
            }
            if flip && info.shape.count == 2 {
                let src = try file.floats(info.name)
                let rows = info.shape[0], cols = info.shape[1], dst = value(p)
                for r in 0..<rows { for c in 0..<cols { dst[c * rows + r] = src[r * cols + c] } }
            } else {
                try file.readFloats(info.name, into: value(p))
            }
            loaded.insert(name)
        }
        let missing = parameters.map(\.name).filter { !loaded.contains($0) }
        if strict && (!missing.isEmpty || !unexpected.isEmpty) {
            throw EngineError.checkpointMismatch("\(file.path): missing \(missing), unexpected \(unexpected)")
        }
        return (missing, unexpected)
    }
}
