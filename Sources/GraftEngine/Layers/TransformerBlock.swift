/// One transformer encoder/decoder block built from the engine's layers, with HuggingFace
/// BERT parameter names under `prefix` (e.g. `encoder.layer.0`):
///
/// - `attention.self.{query,key,value}` ``Linear`` `C -> C`
/// - `attention.output.dense` ``Linear`` `C -> C`, `attention.output.LayerNorm`
/// - `intermediate.dense` ``Linear`` `C -> F`, `output.dense` ``Linear`` `F -> C`, `output.LayerNorm`
///
/// Post-LN (BERT): `h = LN1(x + drop(O(attn(x))))`, `y = LN2(h + drop(FFN(h)))`.
/// Pre-LN (GPT-2 style, ``Config/preLayerNorm``): `h = x + drop(O(attn(LN1(x))))`,
/// `y = h + drop(FFN(LN2(h)))`; with ``Config/causal`` it is a decoder block.
/// Input and output `[B, T, C]`; optional key padding mask `[B, T]`.
public final class TransformerBlock {
    public struct Config: Sendable {
        public var hidden: Int
        public var heads: Int
        public var ffn: Int
        public var layerNormEps: Float
        public var gelu: GELU.Form
        public var hiddenDropout: Float
        public var attentionDropout: Float
        public var causal: Bool
        public var preLayerNorm: Bool

        public init(hidden: Int, heads: Int, ffn: Int, layerNormEps: Float = 1e-12, gelu: GELU.Form = .erf,
                    hiddenDropout: Float = 0.1, attentionDropout: Float = 0.1, causal: Bool = false,
                    preLayerNorm: Bool = false) {
            self.hidden = hidden; self.heads = heads; self.ffn = ffn; self.layerNormEps = layerNormEps
            self.gelu = gelu; self.hiddenDropout = hiddenDropout; self.attentionDropout = attentionDropout
            self.causal = causal; self.preLayerNorm = preLayerNorm
        }
    }

    public let config: Config
    public let query, key, value, attnOut, intermediate, output: Linear
    public let attnNorm, outNorm: LayerNorm
    public let attention: MultiHeadAttention
    public let gelu: GELU
    private let drop1, drop2: Dropout
    private let res1 = Residual(), res2 = Residual()
    private var dx: Tensor?
    private var dh: Tensor?

    public init(_ store: ParameterStore, prefix: String, config: Config, rng: SharedRNG) throws {
        self.config = config
        let c = config.hidden, f = config.ffn
        guard c % config.heads == 0 else { throw EngineError.invalidArgument("hidden \(c) not divisible by \(config.heads) heads") }
        query = try Linear(store, name: "\(prefix).attention.self.query", inFeatures: c, outFeatures: c)
        key = try Linear(store, name: "\(prefix).attention.self.key", inFeatures: c, outFeatures: c)
        value = try Linear(store, name: "\(prefix).attention.self.value", inFeatures: c, outFeatures: c)
        attnOut = try Linear(store, name: "\(prefix).attention.output.dense", inFeatures: c, outFeatures: c)
        attnNorm = try LayerNorm(store, name: "\(prefix).attention.output.LayerNorm", dim: c, eps: config.layerNormEps)
        intermediate = try Linear(store, name: "\(prefix).intermediate.dense", inFeatures: c, outFeatures: f)
        output = try Linear(store, name: "\(prefix).output.dense", inFeatures: f, outFeatures: c)
        outNorm = try LayerNorm(store, name: "\(prefix).output.LayerNorm", dim: c, eps: config.layerNormEps)
        attention = try MultiHeadAttention(heads: config.heads, causal: config.causal,
                                           dropout: config.attentionDropout, rng: rng)
        gelu = GELU(config.gelu)
        drop1 = try Dropout(p: config.hiddenDropout, rng: rng)
        drop2 = try Dropout(p: config.hiddenDropout, rng: rng)
    }

    /// `x` `[B, T, C]` -> `[B, T, C]`.
    public func forward(_ x: Tensor, mask: Tensor? = nil, training: Bool = false) throws -> Tensor {
        if config.preLayerNorm {
            let n1 = try attnNorm.forward(x)
            let ctx = try attention.forward(q: query.forward(n1), k: key.forward(n1), v: value.forward(n1),
                                            mask: mask, training: training)
            let h = try res1.forward(x, drop1.forward(attnOut.forward(ctx), training: training))
            let n2 = try outNorm.forward(h)
            let o = drop2.forward(try output.forward(gelu.forward(intermediate.forward(n2))), training: training)
            return try res2.forward(h, o)
        } else {
            let ctx = try attention.forward(q: query.forward(x), k: key.forward(x), v: value.forward(x),
                                            mask: mask, training: training)
            let h = try attnNorm.forward(res1.forward(x, drop1.forward(attnOut.forward(ctx), training: training)))
            let o = drop2.forward(try output.forward(gelu.forward(intermediate.forward(h))), training: training)
            return try outNorm.forward(res2.forward(h, o))
        }
    }

    /// `dy` `[B, T, C]` -> `dx` `[B, T, C]`; accumulates all parameter gradients.
    public func backward(_ dy: Tensor) throws -> Tensor {
        let n = dy.count
        if config.preLayerNorm {
            // y = h + o ; o = drop2(Out(gelu(I(LN2(h)))))
            let dn2 = try intermediate.backward(gelu.backward(output.backward(drop2.backward(dy))))
            let dln2 = try outNorm.backward(dn2)
            let g = Tensor.ensure(dh, dy.shape); dh = g
            Kernels.add(dy.data, dln2.data, g.data, n)
            // h = x + drop1(O(attn(LN1(x))))
            let (dq, dk, dv) = try attention.backward(attnOut.backward(drop1.backward(g)))
            let d = Tensor.ensure(dx, dy.shape); dx = d
            let gq = try query.backward(dq), gk = try key.backward(dk), gv = try value.backward(dv)
            Kernels.add(gq.data, gk.data, d.data, n)
            Kernels.add(d.data, gv.data, d.data, n)
            let dln1 = try attnNorm.backward(d)
            Kernels.add(dln1.data, g.data, d.data, n)
            return d
        } else {
            // y = LN2(h + o) ; o = drop2(Out(gelu(I(h))))
            let dr2 = try outNorm.backward(dy)
            let dhFfn = try intermediate.backward(gelu.backward(output.backward(drop2.backward(dr2))))
            let g = Tensor.ensure(dh, dy.shape); dh = g
            Kernels.add(dr2.data, dhFfn.data, g.data, n)
            // h = LN1(x + drop1(O(attn(x))))
            let dr1 = try attnNorm.backward(g)
            let (dq, dk, dv) = try attention.backward(attnOut.backward(drop1.backward(dr1)))
            let d = Tensor.ensure(dx, dy.shape); dx = d
            let gq = try query.backward(dq), gk = try key.backward(dk), gv = try value.backward(dv)
            Kernels.add(gq.data, gk.data, d.data, n)
            Kernels.add(d.data, gv.data, d.data, n)
            Kernels.add(d.data, dr1.data, d.data, n)
            return d
        }
    }
}
