/// One post-LN transformer encoder block (BERT) built from the engine's layers, with HuggingFace
/// BERT parameter names under `prefix` (e.g. `encoder.layer.0`):
///
/// - `attention.self.{query,key,value}` ``Linear`` `C -> C`
/// - `attention.output.dense` ``Linear`` `C -> C`, `attention.output.LayerNorm`
/// - `intermediate.dense` ``Linear`` `C -> F`, `output.dense` ``Linear`` `F -> C`, `output.LayerNorm`
///
/// `h = LN1(x + drop(O(attn(x))))`, `y = LN2(h + drop(FFN(h)))`. Input and output `[B, T, C]`;
/// optional key padding mask `[B, T]`. (The pre-LN causal decoder block is ``GPT2Block``.)
///
/// The query, key and value parameters are declared back to back (the three weights, then the
/// three biases), so the full-sequence forward projects all three in one `C -> 3A` product over
/// them (``qkv``) and the backward takes `dX` in one product with `K = 3A` and `dW` in one with
/// `M = 3A`: wider products than three `C -> A` ones, one bias pass and no sum of three input
/// gradients. (Where the flat buffers do not lay them out contiguously — a width whose weight is
/// not a multiple of 16 floats — the three projections run separately; the results agree up to
/// the GEMMs' rounding.)
///
/// Memory: the forward keeps only what the backward reads (dropout and the residual sums run
/// in place on the projection outputs; the GELU output lives in the ``Workspace`` and is
/// rebuilt in the backward, in the pass that computes the GELU gradient). Every temporary gradient buffer of the backward, and the
/// returned `dx`, come from the workspace, so blocks built with one shared workspace share
/// one set of them. A returned `dx` stays valid until the second-next backward of a block on
/// the same workspace (two buffers alternate).
public final class TransformerBlock {
    public struct Config: Sendable {
        public var hidden: Int
        public var heads: Int
        public var ffn: Int
        public var layerNormEps: Float
        public var gelu: GELU.Form
        public var hiddenDropout: Float
        public var attentionDropout: Float
        /// The heads this block keeps (pruned heads removed, HuggingFace `pruned_heads`), each of
        /// width `hidden / heads`; nil: all `heads`. The query, key and value projections are then
        /// `C -> A` and the attention output `A -> C`, `A = attentionHeads * hidden / heads`.
        public var attentionHeads: Int?

        public init(hidden: Int, heads: Int, ffn: Int, layerNormEps: Float = 1e-12, gelu: GELU.Form = .erf,
                    hiddenDropout: Float = 0.1, attentionDropout: Float = 0.1, attentionHeads: Int? = nil) {
            self.hidden = hidden; self.heads = heads; self.ffn = ffn; self.layerNormEps = layerNormEps
            self.gelu = gelu; self.hiddenDropout = hiddenDropout; self.attentionDropout = attentionDropout
            self.attentionHeads = attentionHeads
        }

        /// The width `A` of the attention projections: kept heads × head width.
        public var attentionWidth: Int { (attentionHeads ?? heads) * (hidden / heads) }
    }

    public let config: Config
    public let query, key, value, attnOut, intermediate, output: Linear
    /// Query, key and value as one `C -> 3A` projection over their parameters (a view, not a
    /// parameter of its own), when they lie contiguously in the flat buffers; else nil.
    public let qkv: Linear?
    public let attnNorm, outNorm: LayerNorm
    public let attention: MultiHeadAttention
    public let gelu: GELU
    /// Scratch buffers (shared with the other blocks of a model when passed at construction).
    public let workspace: Workspace
    private let drop1, drop2: Dropout
    private var act: Tensor?      // the GELU output of the last forward (workspace memory)
    private var selected: (selection: RowSelection, seqLen: Int)?   // the last forward's rows, when it computed some only

    /// `workspace`: shared scratch for the forward's GELU output and every backward buffer;
    /// pass one per model to all its blocks. Without it the block makes its own.
    public init(_ store: ParameterStore, prefix: String, config: Config, rng: SharedRNG, workspace: Workspace? = nil) throws {
        self.config = config
        let c = config.hidden, f = config.ffn
        guard c % config.heads == 0 else { throw EngineError.invalidArgument("hidden \(c) not divisible by \(config.heads) heads") }
        let kept = config.attentionHeads ?? config.heads
        guard kept >= 1, kept <= config.heads else {
            throw EngineError.invalidArgument("\(prefix): \(kept) attention heads kept of \(config.heads) (at least one)")
        }
        let a = config.attentionWidth
        let ws = workspace ?? Workspace()
        self.workspace = ws
        // The three weights, then the three biases (zeros: the initial weights draw the same numbers
        // in the same order as when each bias followed its weight).
        let names = ["query", "key", "value"].map { "\(prefix).attention.self.\($0)" }
        let weights = try names.map { try store.declare("\($0).weight", shape: [a, c], initializer: .normal(std: 0.02)) }
        let biases = try names.map { try store.declare("\($0).bias", shape: [a], initializer: .zeros) }
        query = try Linear(store, weight: weights[0], bias: biases[0])
        key = try Linear(store, weight: weights[1], bias: biases[1])
        value = try Linear(store, weight: weights[2], bias: biases[2])
        if let w = store.contiguousView("\(prefix).attention.self.qkv.weight", of: weights),
           let b = store.contiguousView("\(prefix).attention.self.qkv.bias", of: biases) {
            qkv = try Linear(store, weight: w, bias: b)
        } else {
            qkv = nil
        }
        attnOut = try Linear(store, name: "\(prefix).attention.output.dense", inFeatures: a, outFeatures: c)
        attnNorm = try LayerNorm(store, name: "\(prefix).attention.output.LayerNorm", dim: c, eps: config.layerNormEps)
        intermediate = try Linear(store, name: "\(prefix).intermediate.dense", inFeatures: c, outFeatures: f)
        output = try Linear(store, name: "\(prefix).output.dense", inFeatures: f, outFeatures: c)
        outNorm = try LayerNorm(store, name: "\(prefix).output.LayerNorm", dim: c, eps: config.layerNormEps)
        attention = try MultiHeadAttention(heads: kept, causal: false, dropout: config.attentionDropout, rng: rng)
        gelu = GELU(config.gelu)
        drop1 = try Dropout(p: config.hiddenDropout, rng: rng)
        drop2 = try Dropout(p: config.hiddenDropout, rng: rng)
    }

    /// `x` `[B, T, C]` -> `[B, T, C]` (owned by the block, valid until its next forward).
    public func forward(_ x: Tensor, mask: Tensor? = nil, training: Bool = false) throws -> Tensor {
        guard x.rank == 3, x.shape[2] == config.hidden else {
            throw EngineError.shapeMismatch("TransformerBlock expects [B, T, \(config.hidden)], got \(x.shape)")
        }
        selected = nil
        let ctx = if let qkv {
            try attention.forward(qkv: qkv.forward(x), mask: mask, training: training)
        } else {
            try attention.forward(q: query.forward(x), k: key.forward(x), v: value.forward(x), mask: mask, training: training)
        }
        return try finishForward(ctx, residual: x, training: training)
    }

    /// The block's output at position 0 only: `x` `[B, T, C]` -> `[B, 1, C]`, equal to row 0 of
    /// ``forward(_:mask:training:)`` (up to the GEMMs' rounding; dropout draws differ): what a
    /// sequence classifier pooling `[CLS]` reads from the last block, at about a sixth of the
    /// block's cost. ``forwardRows(_:selecting:mask:training:)`` with ``RowSelection/firstToken(batch:)``.
    public func forwardFirstToken(_ x: Tensor, mask: Tensor? = nil, training: Bool = false) throws -> Tensor {
        try forwardRows(x, selecting: .firstToken(batch: x.rank == 3 ? x.shape[0] : 0), mask: mask, training: training)
    }

    /// The block's output at the selected positions only: `x` `[B, T, C]` -> `[B, R, C]` with
    /// `R` = ``RowSelection/perItem``, row `j` of item `i` equal to row `selection.rows[i R + j]`
    /// of ``forward(_:mask:training:)`` (up to the GEMMs' rounding; dropout draws differ). Keys
    /// and values are projected for every position, but the query, the attention output, both
    /// LayerNorms and the feed-forward run on the `R` rows alone: what a head that reads a few
    /// positions of the last block (a `[CLS]` classifier, the masked-LM head at the masked
    /// positions) needs. Its ``backward(_:)`` takes `[B, R, C]` and returns `[B, T, C]`; a
    /// position selected twice gets both rows' gradients.
    public func forwardRows(_ x: Tensor, selecting selection: RowSelection, mask: Tensor? = nil,
                            training: Bool = false) throws -> Tensor {
        let xr = try selectedRows(x, selection)
        selected = (selection, x.shape[1])
        let ctx = try attention.forward(q: query.forward(xr), k: key.forward(x), v: value.forward(x),
                                        mask: mask, training: training)
        return try finishForward(ctx, residual: xr, training: training)
    }

    /// The selected rows of `x` `[B, T, C]` as `[B, R, C]` (workspace `block.rows.x`), after
    /// checking the shapes and that every selected position lies in `0..<T`.
    private func selectedRows(_ x: Tensor, _ selection: RowSelection) throws -> Tensor {
        guard x.rank == 3, x.shape[2] == config.hidden else {
            throw EngineError.shapeMismatch("TransformerBlock expects [B, T, \(config.hidden)], got \(x.shape)")
        }
        let b = x.shape[0], t = x.shape[1], c = config.hidden, r = selection.perItem
        guard selection.rows.count == b * r, selection.rows.allSatisfy({ $0 >= 0 && Int($0) < t }) else {
            throw EngineError.invalidArgument("TransformerBlock: row selection of \(selection.rows.count) rows (\(r) per item) for [B, T] = [\(b), \(t)]")
        }
        let xr = workspace.tensor("block.rows.x", [b, r, c])
        selection.rows.withUnsafeBufferPointer { rows in
            for i in 0..<b * r { (xr.data + i * c).update(from: x.data + ((i / r) * t + Int(rows[i])) * c, count: c) }
        }
        return xr
    }

    /// Everything after attention: `ctx` and the residual `x`, both `[B, R, C]` -> `[B, R, C]`.
    private func finishForward(_ ctx: Tensor, residual x: Tensor, training: Bool) throws -> Tensor {
        let ffnShape = [x.shape[0], x.shape[1], config.ffn]
        // r1 = x + drop1(O(ctx)), in place in O's output; h = LN1(r1)
        let r1 = drop1.forwardInPlace(try attnOut.forward(ctx), adding: x, training: training)
        let h = try attnNorm.forward(r1)
        let a = gelu.forward(try intermediate.forward(h), into: workspace.tensor("block.ffn.act", ffnShape))
        act = a
        // r2 = h + drop2(Out(gelu(I(h)))), in place in Out's output; y = LN2(r2)
        let r2 = drop2.forwardInPlace(try output.forward(a), adding: h, training: training)
        return try outNorm.forward(r2)
    }

    /// Inference: `x` `[B, T, C]` -> `[B, T, C]`, the values of ``forward(_:mask:training:)``
    /// without dropout, with nothing kept for a backward: every intermediate lives in the
    /// ``Workspace``'s backward buffers (dead outside a backward) and the result in one of its
    /// ``Workspace/blockGradient`` pair (the one not holding `x`), so the blocks of a model
    /// share one set, however many there are. The result stays valid until the next forward,
    /// backward or inference of a block on the same workspace, except that the next block's
    /// inference may read it (it writes the other buffer of the pair).
    public func infer(_ x: Tensor, mask: Tensor? = nil) throws -> Tensor {
        guard x.rank == 3, x.shape[2] == config.hidden else {
            throw EngineError.shapeMismatch("TransformerBlock expects [B, T, \(config.hidden)], got \(x.shape)")
        }
        let ws = workspace, b = x.shape[0], t = x.shape[1], w = config.attentionWidth
        let ctx: Tensor
        if let qkv {
            let projected = try qkv.infer(x, into: ws.tensor("block.f1", [b, t, 3 * w]))
            ctx = try attention.infer(qkv: projected, mask: mask, into: ws.tensor("block.c1", [b, t, w]))
        } else {
            let q = try query.infer(x, into: ws.tensor("block.c3", [b, t, w]))
            let k = try key.infer(x, into: ws.tensor("block.c4", [b, t, w]))
            let v = try value.infer(x, into: ws.tensor("block.c5", [b, t, w]))
            ctx = try attention.infer(q: q, k: k, v: v, mask: mask, into: ws.tensor("block.c1", [b, t, w]))
        }
        return try finishInference(ctx, residual: x, output: ws.alternate(Workspace.blockGradient, x.shape, avoiding: x))
    }

    /// Inference at the selected positions only: `x` `[B, T, C]` -> `[B, R, C]`, the values of
    /// ``forwardRows(_:selecting:mask:training:)`` without dropout, kept as ``infer(_:mask:)``
    /// keeps its own.
    public func inferRows(_ x: Tensor, selecting selection: RowSelection, mask: Tensor? = nil) throws -> Tensor {
        let xr = try selectedRows(x, selection)
        let ws = workspace, b = x.shape[0], t = x.shape[1], c = config.hidden, r = selection.perItem, w = config.attentionWidth
        let q = try query.infer(xr, into: ws.tensor("block.c3", [b, r, w]))
        let k = try key.infer(x, into: ws.tensor("block.c4", [b, t, w]))
        let v = try value.infer(x, into: ws.tensor("block.c5", [b, t, w]))
        let ctx = try attention.infer(q: q, k: k, v: v, mask: mask, into: ws.tensor("block.c1", [b, r, w]))
        return try finishInference(ctx, residual: xr, output: ws.alternate(Workspace.blockGradient, [b, r, c], avoiding: x))
    }

    /// ``finishForward(_:residual:training:)`` for inference: `ctx` `[B, R, A]` and the residual
    /// `x` `[B, R, C]` -> `output` `[B, R, C]`, the intermediates in workspace buffers that
    /// ``infer(_:mask:)`` is done with (`block.c2`, `block.c3`, `block.f1`).
    private func finishInference(_ ctx: Tensor, residual x: Tensor, output y: Tensor) throws -> Tensor {
        let ws = workspace, b = x.shape[0], r = x.shape[1], c = config.hidden, n = x.count
        // r1 = x + O(ctx); h = LN1(r1), in place
        let r1 = try attnOut.infer(ctx, into: ws.tensor("block.c2", [b, r, c]))
        Kernels.add(x.data, r1.data, r1.data, n)
        let h = try attnNorm.infer(r1, into: r1)
        // r2 = h + Out(gelu(I(h))); y = LN2(r2)
        let a = gelu.inferInPlace(try intermediate.infer(h, into: ws.tensor("block.f1", [b, r, config.ffn])))
        let r2 = try output.infer(a, into: ws.tensor("block.c3", [b, r, c]))
        Kernels.add(h.data, r2.data, r2.data, n)
        return try outNorm.infer(r2, into: y)
    }

    /// `dy` `[B, T, C]` -> `dx` `[B, T, C]` (workspace memory); accumulates all parameter gradients.
    /// After ``forwardRows(_:selecting:mask:training:)``: `dy` `[B, R, C]` -> `dx` `[B, T, C]`.
    /// `dy` is only read.
    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let a = act, dy.count == a.count / config.ffn * config.hidden else {
            throw EngineError.shapeMismatch("TransformerBlock backward: dy \(dy.shape) does not match the last forward")
        }
        let n = dy.count, shape = dy.shape, ws = workspace
        let s1 = ws.tensor("block.c1", shape), s2 = ws.tensor("block.c2", shape)
        // Through the feed-forward and LN1 (the same for both forwards): s1 holds dh's work, s2 dr1.
        // After a fused forward, dr1 goes straight into the returned buffer, and the projections'
        // input gradient is added onto it in their product.
        let fused = selected == nil ? qkv : nil   // the full forward projects through qkv whenever there is one
        let dReturned = fused == nil ? nil : ws.alternate(Workspace.blockGradient, shape, avoiding: dy)
        let dr1 = try feedForwardBackward(dy, act: a, s1: s1, s2: s2, dr1Buffer: dReturned)
        if let selected { return try selectedRowsAttentionBackward(dy, dr1: dr1, selected.selection, seqLen: selected.seqLen, s1: s1) }
        let s3 = ws.tensor("block.c3", shape)
        let t2 = drop1.backward(dr1, into: s3)
        // With pruned heads the attention tensors are [B, T, A]: narrower views of the same buffers.
        let width = config.attentionWidth
        func narrow(_ name: String, _ full: Tensor) -> Tensor { width == config.hidden ? full : ws.tensor(name, [shape[0], shape[1], width]) }
        let dctx = try attnOut.backward(t2, into: narrow("block.c1", s1))
        if let fused, let d = dReturned {
            // dQKV [B, T, 3A] in the feed-forward's buffer (dead since LN1's backward), then
            // dx = dr1 + dQKV W_qkv (d holds dr1) and dW_qkv += dQKV^T x, each one product.
            let dqkv = try attention.backwardFused(dctx, into: ws.tensor("block.f1", [shape[0], shape[1], 3 * width]))
            return try fused.backward(dqkv, accumulatingInto: d)
        }
        let s4 = ws.tensor("block.c4", shape), s5 = ws.tensor("block.c5", shape)
        let (dq, dk, dv) = try attention.backward(dctx, into: (narrow("block.c3", s3), narrow("block.c4", s4), narrow("block.c5", s5)))
        let d = ws.alternate(Workspace.blockGradient, shape, avoiding: dy)
        let gq = try query.backward(dq, into: s1), gk = try key.backward(dk, into: s3), gv = try value.backward(dv, into: s4)
        Kernels.add(gq.data, gk.data, d.data, n)
        Kernels.add(d.data, gv.data, d.data, n)
        Kernels.add(d.data, dr1.data, d.data, n)
        return d
    }

    /// `y = LN2(h + drop2(Out(gelu(I(h)))))`, `h = LN1(r1)`: `dy` -> `dr1` (in `dr1Buffer` when
    /// given, else `s2`); `s1` is scratch.
    private func feedForwardBackward(_ dy: Tensor, act a: Tensor, s1: Tensor, s2: Tensor, dr1Buffer: Tensor? = nil) throws -> Tensor {
        let f1 = workspace.tensor("block.f1", a.shape)
        let dr2 = try outNorm.backward(dy, into: s1)                 // s1: d(h + o)
        let t = drop2.backward(dr2, into: s2)
        let dAct = try output.backwardInput(t, into: f1)
        let dI = try gelu.backward(dAct, into: f1, recomputingOutputInto: a)   // a: Out's input again
        try output.backwardParameters(t)
        let g = try intermediate.backward(dI, accumulatingInto: dr2)  // s1: dh = dr2 + dI W_I, in the product
        return try attnNorm.backward(g, into: dr1Buffer ?? s2)       // s2 (or the caller's): dr1
    }

    /// The attention part of the backward after ``forwardRows(_:selecting:mask:training:)``: `dr1`
    /// `[B, R, C]` -> `dx` `[B, T, C]`: keys and values give every row, the query and the
    /// residual add into the selected rows.
    private func selectedRowsAttentionBackward(_ dy: Tensor, dr1: Tensor, _ selection: RowSelection, seqLen t: Int,
                                               s1: Tensor) throws -> Tensor {
        let ws = workspace, b = dr1.shape[0], r = selection.perItem, c = config.hidden, w = config.attentionWidth
        let full = [b, t, c]
        let t2 = drop1.backward(dr1, into: ws.tensor("block.c3", [b, r, c]))
        let dctx = try attnOut.backward(t2, into: ws.tensor("block.c1", [b, r, w]))
        let (dq, dk, dv) = try attention.backward(dctx, into: (ws.tensor("block.c3", [b, r, w]), ws.tensor("block.c4", [b, t, w]),
                                                                  ws.tensor("block.c5", [b, t, w])))
        let d = ws.alternate(Workspace.blockGradient, full, avoiding: dy)
        let gq = try query.backward(dq, into: s1)
        _ = try key.backward(dk, into: d)
        let gv = try value.backward(dv, into: ws.tensor("block.c4", full))   // dk is spent
        Kernels.add(d.data, gv.data, d.data, b * t * c)
        selection.rows.withUnsafeBufferPointer { rows in
            for i in 0..<b * r {
                let row = d.data + ((i / r) * t + Int(rows[i])) * c
                Kernels.add(row, gq.data + i * c, row, c)
                Kernels.add(row, dr1.data + i * c, row, c)
            }
        }
        return d
    }
}

/// Positions whose output a block is asked for (``TransformerBlock/forwardRows(_:selecting:mask:training:)``):
/// ``perItem`` row indices into `0..<T` for each batch item, `[B * perItem]` item-major. A
/// position may be selected more than once (padding a short item's list).
public struct RowSelection: Sendable, Equatable {
    public let rows: [Int32]
    public let perItem: Int

    public init(rows: [Int32], perItem: Int) {
        self.rows = rows
        self.perItem = perItem
    }

    /// Position 0 of each of `batch` items: the `[CLS]` rows.
    public static func firstToken(batch: Int) -> RowSelection {
        RowSelection(rows: [Int32](repeating: 0, count: batch), perItem: 1)
    }
}
