import GraftSupport
/// A GPT-2 decoder block with HuggingFace GPT-2 parameter names under `prefix` (e.g. `h.0`):
///
/// - `ln_1` ``LayerNorm``, `attn.c_attn` ``Linear`` `C -> 3C` (fused Q, K, V), `attn.c_proj` `C -> C`
/// - `ln_2` ``LayerNorm``, `mlp.c_fc` `C -> 4C`, `mlp.c_proj` `4C -> C`
///
/// `h = x + drop(c_proj(attn(c_attn(ln_1(x)))))`, `y = h + drop(mlp.c_proj(gelu(mlp.c_fc(ln_2(h)))))`,
/// causal attention over the fused `[B, T, 3C]` projection, tanh GELU, LayerNorm eps 1e-5.
///
/// HF GPT-2 stores these projections as `Conv1D` weights `[in, out]`; ``Linear`` keeps
/// `[out, in]`, so load them with `store.load(from:transposed: GPT2Block.isConv1DWeight)`.
///
/// Memory as in ``TransformerBlock``: dropout and residual sums run in place, the GELU output
/// lives in the ``Workspace`` (rebuilt in the backward's GELU pass), and every backward buffer, the
/// returned `dx` included, comes from the workspace (shared by the blocks of a model).
public final class GPT2Block {
    public let ln1, ln2: LayerNorm
    public let cAttn, cProj, fc, proj: Linear
    public let attention: MultiHeadAttention
    public let gelu = GELU(.tanh)
    /// Scratch buffers (shared with the other blocks of a model when passed at construction).
    public let workspace: Workspace
    public let hidden: Int
    private let drop1, drop2: Dropout
    private var act: Tensor?      // the GELU output of the last forward (workspace memory)

    /// Whether a (prefix-free) GPT-2 parameter name is a `Conv1D` weight stored `[in, out]`.
    public static func isConv1DWeight(_ name: String) -> Bool {
        name.hasSuffix("c_attn.weight") || name.hasSuffix("c_proj.weight") || name.hasSuffix("c_fc.weight")
    }

    /// `workspace`: shared scratch for the forward's GELU output and every backward buffer;
    /// pass one per model to all its blocks. Without it the block makes its own.
    public init(_ store: ParameterStore, prefix: String, hidden: Int, heads: Int, ffn: Int? = nil,
                layerNormEps: Float = 1e-5, residualDropout: Float = 0.1, attentionDropout: Float = 0.1,
                rng: SharedRNG, workspace: Workspace? = nil) throws {
        guard hidden % heads == 0 else { throw EngineError.invalidArgument("hidden \(hidden) not divisible by \(heads) heads") }
        let f = ffn ?? 4 * hidden
        let ws = workspace ?? Workspace()
        self.workspace = ws
        self.hidden = hidden
        ln1 = try LayerNorm(store, name: "\(prefix).ln_1", dim: hidden, eps: layerNormEps)
        cAttn = try Linear(store, name: "\(prefix).attn.c_attn", inFeatures: hidden, outFeatures: 3 * hidden)
        cProj = try Linear(store, name: "\(prefix).attn.c_proj", inFeatures: hidden, outFeatures: hidden)
        ln2 = try LayerNorm(store, name: "\(prefix).ln_2", dim: hidden, eps: layerNormEps)
        fc = try Linear(store, name: "\(prefix).mlp.c_fc", inFeatures: hidden, outFeatures: f)
        proj = try Linear(store, name: "\(prefix).mlp.c_proj", inFeatures: f, outFeatures: hidden)
        attention = try MultiHeadAttention(heads: heads, causal: true, dropout: attentionDropout, rng: rng)
        drop1 = try Dropout(p: residualDropout, rng: rng)
        drop2 = try Dropout(p: residualDropout, rng: rng)
    }

    /// `x` `[B, T, C]` -> `[B, T, C]` (owned by the block, valid until its next forward);
    /// `mask` `[B, T]` optionally hides padded keys.
    public func forward(_ x: Tensor, mask: Tensor? = nil, training: Bool = false) throws -> Tensor {
        guard x.rank == 3, x.shape[2] == hidden else {
            throw EngineError.shapeMismatch("GPT2Block expects [B, T, \(hidden)], got \(x.shape)")
        }
        let ctx = try attention.forward(qkv: cAttn.forward(ln1.forward(x)), mask: mask, training: training)
        // h = x + drop1(c_proj(ctx)), in place in c_proj's output
        let h = drop1.forwardInPlace(try cProj.forward(ctx), adding: x, training: training)
        let f = try fc.forward(ln2.forward(h))
        let a = gelu.forward(f, into: workspace.tensor("block.ffn.act", f.shape))
        act = a
        // y = h + drop2(mlp.c_proj(gelu(...))), in place in mlp.c_proj's output
        let y = drop2.forwardInPlace(try proj.forward(a), adding: h, training: training)
        return y
    }

    /// Inference: `x` `[B, T, C]` -> `[B, T, C]`, the values of ``forward(_:mask:training:)``
    /// without dropout, with nothing kept for a backward: the intermediates in the
    /// ``Workspace``'s backward buffers, the result in the one of its ``Workspace/blockGradient``
    /// pair not holding `x` (as ``TransformerBlock/infer(_:mask:)``).
    public func infer(_ x: Tensor, mask: Tensor? = nil) throws -> Tensor {
        guard x.rank == 3, x.shape[2] == hidden else {
            throw EngineError.shapeMismatch("GPT2Block expects [B, T, \(hidden)], got \(x.shape)")
        }
        let ws = workspace, shape = x.shape, n = x.count
        let n1 = try ln1.infer(x, into: ws.tensor("block.c1", shape))
        let qkv = try cAttn.infer(n1, into: ws.tensor("block.qkv", [shape[0], shape[1], 3 * hidden]))
        let ctx = try attention.infer(qkv: qkv, mask: mask, into: ws.tensor("block.c2", shape))
        // h = x + c_proj(ctx)
        let h = try cProj.infer(ctx, into: ws.tensor("block.c3", shape))
        Kernels.add(x.data, h.data, h.data, n)
        let f = try fc.infer(ln2.infer(h, into: n1), into: ws.tensor("block.f1", [shape[0], shape[1], fc.outFeatures]))
        // y = h + mlp.c_proj(gelu(f))
        let y = try proj.infer(gelu.inferInPlace(f), into: ws.alternate(Workspace.blockGradient, shape, avoiding: x))
        Kernels.add(h.data, y.data, y.data, n)
        return y
    }

    /// `dy` `[B, T, C]` -> `dx` (workspace memory); accumulates every parameter gradient.
    /// `dy` is only read.
    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let a = act, dy.count == a.count / fc.outFeatures * hidden else {
            throw EngineError.shapeMismatch("GPT2Block backward: dy \(dy.shape) does not match the last forward")
        }
        let n = dy.count, shape = dy.shape, ws = workspace
        let s1 = ws.tensor("block.c1", shape), s2 = ws.tensor("block.c2", shape), s3 = ws.tensor("block.c3", shape)
        let f1 = ws.tensor("block.f1", a.shape)
        let qkv = ws.tensor("block.qkv", [shape[0], shape[1], 3 * hidden])
        let t = drop2.backward(dy, into: s1)                             // s1: d m (or dy itself)
        let dAct = try proj.backwardInput(t, into: f1)
        let dI = try gelu.backward(dAct, into: f1, recomputingOutputInto: a)   // a: mlp.c_proj's input again
        try proj.backwardParameters(t)
        let dn2 = try fc.backward(dI, into: s2)
        let dln2 = try ln2.backward(dn2, into: s3)
        let g = s1                                                       // s1: dh = dy + dLN2 until the end
        Kernels.add(dy.data, dln2.data, g.data, n)
        let t2 = drop1.backward(g, into: s2)
        let dctx = try cProj.backward(t2, into: s3)
        let dn1 = try cAttn.backward(attention.backwardFused(dctx, into: qkv), into: s2)
        let dln1 = try ln1.backward(dn1, into: s3)
        let d = ws.alternate(Workspace.blockGradient, shape, avoiding: dy)
        Kernels.add(g.data, dln1.data, d.data, n)
        return d
    }
}
