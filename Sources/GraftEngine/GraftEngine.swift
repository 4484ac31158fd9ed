/// GraftEngine: float32 tensors, forward/backward kernels, optimizers and safetensors
/// checkpoints, with every GEMM on OpenBLAS.
import COpenBLAS

/// Errors thrown by the engine.
public enum EngineError: Error, Equatable {
    case shapeMismatch(String)
}
