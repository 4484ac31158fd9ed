/// GraftEngine: float32 tensors, forward/backward kernels, optimizers and safetensors
/// checkpoints, with every GEMM on OpenBLAS.
///
/// Layout (llm.c style):
/// - ``ParameterStore`` keeps every parameter in one contiguous `Float` buffer and every
///   gradient in a second one, with named views (`encoder.layer.0.attention.self.query.weight`).
/// - Layers (``Linear``, ``LayerNorm``, ``Embedding``, ``GELU``, ``Tanh``, ``Dropout``,
///   ``MultiHeadAttention``, ``MeanPool``, ``CrossEntropyLoss``, ``TransformerBlock``) each own
///   an explicit `forward` and `backward` and the activation buffers the backward needs;
///   backward scratch can come from a ``Workspace`` shared by the blocks of a model.
/// - ``AdamW`` / ``SGD`` keep their moments in flat buffers parallel to the parameters.
/// - ``SafeTensors`` reads and writes checkpoints; ``TrainingCheckpoint`` saves the whole state.
/// - Threads: each computation's own count, bound with ``Engine/withThreads(_:_:)-(_,()->R)``
///   (default ``Engine/defaultThreads``: `GRAFT_THREADS`, else `OPENBLAS_NUM_THREADS`, else all
///   cores). OpenBLAS itself always runs single-threaded; large GEMMs are split over the
///   computation's threads by ``BLAS/matmul``, per-head attention products spread over them.
///
/// A model in five steps:
///
/// ```swift
/// let store = ParameterStore(seed: 42)                       // 1. declare parameters by name
/// let fc1 = try Linear(store, name: "fc1", inFeatures: 2, outFeatures: 64)
/// let act = GELU(.erf)
/// let fc2 = try Linear(store, name: "fc2", inFeatures: 64, outFeatures: 3)
/// let loss = try CrossEntropyLoss()
/// let opt = AdamW(store, weightDecay: 0.01)                  // 2. optimizer over the flat buffers
/// let schedule = LRSchedule(baseLR: 1e-3, warmupSteps: 10, totalSteps: 1000, decay: .cosine)
/// for step in 0..<1000 {
///     store.zeroGrads()                                      // 3. forward, then backward in reverse
///     let l = try loss.forward(fc2.forward(act.forward(fc1.forward(x))), targets: y)
///     _ = try fc1.backward(act.backward(fc2.backward(loss.backward())))
///     clipGradNorm(store, maxNorm: 1)                        // 4. step
///     try opt.step(store, lr: schedule.lr(at: opt.stepCount))
/// }
/// try store.save(to: url)                                    // 5. weights by name (safetensors)
/// try TrainingCheckpoint.save(to: stateURL, store: store, optimizer: opt, schedule: schedule)
/// ```
import COpenBLAS

/// Errors thrown by the engine.
public enum EngineError: Error, Equatable, CustomStringConvertible {
    /// Two shapes that must agree do not.
    case shapeMismatch(String)
    /// An argument is outside its allowed range (a thread count, a probability, ...).
    case invalidArgument(String)
    /// A parameter name was declared twice or was not found.
    case unknownParameter(String)
    case duplicateParameter(String)
    /// A safetensors file is truncated, corrupt or otherwise unreadable.
    /// `file` is the path, `problem` says what is wrong.
    case corruptFile(file: String, problem: String)
    /// A tensor in a file has a dtype this engine does not convert.
    case unsupportedDType(file: String, tensor: String, dtype: String)
    /// Reading or writing a file failed at the operating-system level.
    case io(file: String, problem: String)
    /// A checkpoint does not match the model or optimizer it is loaded into.
    case checkpointMismatch(String)
    /// Data-parallel communication failed (the MPI library is missing, a collective failed).
    case communication(String)

    public var description: String {
        switch self {
        case .shapeMismatch(let s): return "shape mismatch: \(s)"
        case .invalidArgument(let s): return "invalid argument: \(s)"
        case .unknownParameter(let s): return "unknown parameter: \(s)"
        case .duplicateParameter(let s): return "duplicate parameter: \(s)"
        case .corruptFile(let f, let p): return "corrupt safetensors file \(f): \(p)"
        case .unsupportedDType(let f, let t, let d): return "\(f): tensor \(t) has unsupported dtype \(d)"
        case .io(let f, let p): return "I/O error on \(f): \(p)"
        case .checkpointMismatch(let s): return "checkpoint mismatch: \(s)"
        case .communication(let s): return "data-parallel communication: \(s)"
        }
    }
}
