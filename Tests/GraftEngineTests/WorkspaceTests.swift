import GraftSupport
import Foundation
import Testing
@testable import GraftEngine

extension EngineTests {
    /// Blocks that share one ``Workspace`` (one set of backward buffers, ping-pong for the
    /// gradient passed between blocks) against the same blocks with a workspace each.
    @Suite struct SharedWorkspace {
        struct Stack {
            let store: ParameterStore
            let rng: SharedRNG
            let workspaces: [Workspace]
            let forward: (Tensor, Tensor?) throws -> Tensor
            let backward: (Tensor) throws -> Tensor
        }

        /// Two blocks of `kind` in sequence (dropout on), parameters randomised the same way
        /// whatever `shared` is.
        func stack(_ kind: String, shared: Bool) throws -> Stack {
            let store = ParameterStore(seed: 60)
            let rng = SharedRNG(seed: 61)
            let ws: Workspace? = shared ? Workspace() : nil
            var forwards: [(Tensor, Tensor?) throws -> Tensor] = []
            var backwards: [(Tensor) throws -> Tensor] = []
            var workspaces: [Workspace] = []
            for l in 0..<2 {
                if kind == "gpt2" {
                    let b = try GPT2Block(store, prefix: "h.\(l)", hidden: 8, heads: 2, ffn: 12, rng: rng, workspace: ws)
                    forwards.append { try b.forward($0, mask: $1, training: true) }
                    backwards.append { try b.backward($0) }
                    workspaces.append(b.workspace)
                } else {
                    let cfg = TransformerBlock.Config(hidden: 8, heads: 2, ffn: 12, layerNormEps: 1e-12,
                                                      gelu: .erf, hiddenDropout: 0.1, attentionDropout: 0.1)
                    let b = try TransformerBlock(store, prefix: "encoder.layer.\(l)", config: cfg, rng: rng, workspace: ws)
                    forwards.append { try b.forward($0, mask: $1, training: true) }
                    backwards.append { try b.backward($0) }
                    workspaces.append(b.workspace)
                }
            }
            for p in store.parameters {
                let isNormWeight = (p.name.contains("LayerNorm") || p.name.contains("ln_")) && p.name.hasSuffix("weight")
                try store.set(p, randomArray(p.count, seed: UInt64(p.offset) + 9, scale: 0.3).map { isNormWeight ? 1 + $0 : $0 })
            }
            let fs = forwards, bs = backwards
            return Stack(store: store, rng: rng, workspaces: workspaces,
                         forward: { x, mask in
                             rng.rng = RNG(seed: 8)   // same dropout masks on every call
                             var h = x
                             for f in fs { h = try f(h, mask) }
                             return h
                         },
                         backward: { dy in
                             var d = dy
                             for b in bs.reversed() { d = try b(d) }
                             return d
                         })
        }

        @Test(arguments: ["post-LN", "gpt2"])
        func sharedEqualsUnshared(kind: String) throws {
            let a = try stack(kind, shared: true), b = try stack(kind, shared: false)
            #expect(a.workspaces[0] === a.workspaces[1] && b.workspaces[0] !== b.workspaces[1])
            let x = randomTensor([2, 4, 8], seed: 62)
            let mask = Tensor(shape: [2, 4], values: [1, 1, 1, 1, 1, 1, 1, 0])
            // Two steps, the second with a different upstream gradient: buffers are reused.
            for step in 0..<2 {
                let r = randomArray(64, seed: 63 + UInt64(step))
                var results: [([Float], [Float], [Float])] = []
                for s in [a, b] {
                    s.store.zeroGrads()
                    let y = try s.forward(x, mask).array
                    let dy = Tensor(shape: [2, 4, 8], values: r)
                    let dx = try s.backward(dy)
                    #expect(dy.array == r, "the upstream gradient is only read")
                    results.append((y, dx.array, Array(UnsafeBufferPointer(start: s.store.grads, count: s.store.count))))
                }
                #expect(results[0].0 == results[1].0, "\(kind) step \(step): outputs")
                #expect(results[0].1 == results[1].1, "\(kind) step \(step): input gradient")
                #expect(results[0].2 == results[1].2, "\(kind) step \(step): parameter gradients")
            }
            // One set of buffers for both blocks: the shared workspace holds one block's buffers
            // plus the second ping-pong gradient buffer.
            #expect(b.workspaces[0].bytes == b.workspaces[1].bytes)
            #expect(a.workspaces[0].bytes == b.workspaces[0].bytes + x.count * 4)
            // And the shared stack against finite differences, end to end.
            let r = randomArray(64, seed: 70)
            a.store.zeroGrads()
            _ = try a.forward(x, mask)
            let dx = try a.backward(Tensor(shape: [2, 4, 8], values: r)).array
            try expectGradientsMatch([GradVar(name: "x", pointer: x.data, count: x.count, analytic: dx)] + paramVars(a.store),
                                     h: 1e-2, maxPerVar: 12) {
                dot(try a.forward(x, mask), r)
            }
        }

        /// Inference through blocks sharing a workspace gives the values of the forward without
        /// dropout, bit for bit (full sequence, and at selected rows for the post-LN block), and
        /// holds one set of buffers however many blocks run.
        @Test(arguments: ["post-LN", "post-LN, separate q/k/v", "gpt2"])
        func inferenceEqualsForward(kind: String) throws {
            let hidden = kind.contains("separate") ? 8 : 16   // [8] biases are not 16-float multiples: no fused qkv
            let store = ParameterStore(seed: 90)
            let rng = SharedRNG(seed: 91)
            let ws = Workspace()
            var forwards: [(Tensor, Tensor?) throws -> Tensor] = [], infers: [(Tensor, Tensor?) throws -> Tensor] = []
            var encoderBlocks: [TransformerBlock] = []
            for l in 0..<3 {
                if kind == "gpt2" {
                    let b = try GPT2Block(store, prefix: "h.\(l)", hidden: hidden, heads: 2, ffn: 12, rng: rng, workspace: ws)
                    forwards.append { try b.forward($0, mask: $1, training: false) }
                    infers.append { try b.infer($0, mask: $1) }
                } else {
                    let cfg = TransformerBlock.Config(hidden: hidden, heads: 2, ffn: 12, layerNormEps: 1e-12,
                                                      gelu: .erf, hiddenDropout: 0.1, attentionDropout: 0.1)
                    let b = try TransformerBlock(store, prefix: "encoder.layer.\(l)", config: cfg, rng: rng, workspace: ws)
                    #expect((b.qkv == nil) == kind.contains("separate"))
                    forwards.append { try b.forward($0, mask: $1, training: false) }
                    infers.append { try b.infer($0, mask: $1) }
                    encoderBlocks.append(b)
                }
            }
            for p in store.parameters {
                let isNormWeight = (p.name.contains("LayerNorm") || p.name.contains("ln_")) && p.name.hasSuffix("weight")
                try store.set(p, randomArray(p.count, seed: UInt64(p.offset) + 19, scale: 0.3).map { isNormWeight ? 1 + $0 : $0 })
            }
            let x = randomTensor([2, 5, hidden], seed: 92)
            let xValues = x.array
            let mask = Tensor(shape: [2, 5], values: [1, 1, 1, 1, 1, 1, 1, 1, 0, 0])
            func run(_ steps: [(Tensor, Tensor?) throws -> Tensor]) throws -> Tensor {
                var h = x
                for f in steps { h = try f(h, mask) }
                return h
            }
            // Inference first, on a fresh workspace: two blocks (one set of buffers and both
            // outputs of the pair), then all three, then again.
            _ = try infers[1](infers[0](x, mask), mask)
            let twoBlocks = ws.bytes
            let inferred = try run(infers).array
            #expect(ws.bytes == twoBlocks, "\(kind): three blocks hold what two hold")
            #expect(try run(infers).array == inferred)
            #expect(x.array == xValues, "the input is only read")
            #expect(try run(forwards).array == inferred, "\(kind): inference equals the forward without dropout")
            guard encoderBlocks.count == 3 else { return }
            // The last block at selected rows (two per item, one repeated).
            let selection = RowSelection(rows: [0, 3, 2, 2], perItem: 2)
            var h = x, g = x
            for b in encoderBlocks.dropLast() { h = try b.forward(h, mask: mask, training: false); g = try b.infer(g, mask: mask) }
            let rowsForward = try encoderBlocks[2].forwardRows(h, selecting: selection, mask: mask, training: false).array
            #expect(try encoderBlocks[2].inferRows(g, selecting: selection, mask: mask).array == rowsForward)
        }

        /// The GELU backward that also rebuilds the forward's output gives exactly the plain
        /// backward's gradient and the forward's output, in place or not, over several chunks.
        @Test(arguments: [GELU.Form.erf, .tanh])
        func geluBackwardRebuildsOutput(form: GELU.Form) throws {
            let n = 3 * Kernels.minChunk + 5
            let x = randomTensor([n], seed: 80, scale: 2), r = randomArray(n, seed: 81)
            let g = GELU(form)
            let y = g.forward(x).array
            let dx = try g.backward(Tensor(shape: [n], values: r)).array
            let rebuilt = Tensor(shape: [n]), into = Tensor(shape: [n])
            #expect(try g.backward(Tensor(shape: [n], values: r), into: into, recomputingOutputInto: rebuilt).array == dx)
            #expect(rebuilt.array == y)
            let dy = Tensor(shape: [n], values: r), rebuilt2 = Tensor(shape: [n])
            #expect(try g.backward(dy, into: dy, recomputingOutputInto: rebuilt2) === dy)
            #expect(dy.array == dx && rebuilt2.array == y)
        }

        @Test func workspaceBuffers() throws {
            let ws = Workspace()
            let t = ws.tensor("a", [2, 3])
            #expect(t.shape == [2, 3] && ws.bytes == 24)
            let u = ws.tensor("a", [3])   // smaller request: same memory
            #expect(u.storage === t.storage && t.shape == [2, 3])
            let v = ws.tensor("a", [4, 4])   // larger: new memory; the old tensor keeps its own
            #expect(v.storage !== t.storage && ws.bytes == 64)
            let p = ws.alternate("g", [5], avoiding: v)
            let q = ws.alternate("g", [5], avoiding: p)
            #expect(p.storage !== q.storage)
            #expect(ws.alternate("g", [5], avoiding: q).storage === p.storage)
        }
    }
}
