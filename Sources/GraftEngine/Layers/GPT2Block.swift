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
public final class GPT2Block {
    public let ln1, ln2: LayerNorm
    public let cAttn, cProj, fc, proj: Linear
    public let attention: MultiHeadAttention
    public let gelu = GELU(.tanh)
    private let drop1, drop2: Dropout
    private let res1 = Residual(), res2 = Residual()
    private var dh: Tensor?
    private var dx: Tensor?

    /// Whether a (prefix-free) GPT-2 parameter name is a `Conv1D` weight stored `[in, out]`.
    public static func isConv1DWeight(_ name: String) -> Bool {
        name.hasSuffix("c_attn.weight") || name.hasSuffix("c_proj.weight") || name.hasSuffix("c_fc.weight")
    }

    public init(_ store: ParameterStore, prefix: String, hidden: Int, heads: Int, ffn: Int? = nil,
                layerNormEps: Float = 1e-5, residualDropout: Float = 0.1, attentionDropout: Float = 0.1,
                rng: SharedRNG) throws {
        guard hidden % heads == 0 else { throw EngineError.invalidArgument("hidden \(hidden) not divisible by \(heads) heads") }
        let f = ffn ?? 4 * hidden
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

    /// `x` `[B, T, C]` -> `[B, T, C]`; `mask` `[B, T]` optionally hides padded keys.
    public func forward(_ x: Tensor, mask: Tensor? = nil, training: Bool = false) throws -> Tensor {
        let ctx = try attention.forward(qkv: cAttn.forward(ln1.forward(x)), mask: mask, training: training)
        let h = try res1.forward(x, drop1.forward(cProj.forward(ctx), training: training))
        let m = drop2.forward(try proj.forward(gelu.forward(fc.forward(ln2.forward(h)))), training: training)
        return try res2.forward(h, m)
    }

    /// `dy` `[B, T, C]` -> `dx`; accumulates every parameter gradient.
    public func backward(_ dy: Tensor) throws -> Tensor {
        let n = dy.count
        let dn2 = try fc.backward(gelu.backward(proj.backward(drop2.backward(dy))))
        let g = Tensor.ensure(dh, dy.shape); dh = g
        Kernels.add(dy.data, try ln2.backward(dn2).data, g.data, n)
        let dn1 = try cAttn.backward(attention.backwardFused(cProj.backward(drop1.backward(g))))
        let d = Tensor.ensure(dx, dy.shape); dx = d
        Kernels.add(g.data, try ln1.backward(dn1).data, d.data, n)
        return d
    }
}
