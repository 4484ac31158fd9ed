import GraftSupport
import Foundation
import Testing
@testable import GraftEngine

/// The engine's tests. They share no process-wide state (each computation binds its own thread
/// count with `Engine.withThreads`), so they run concurrently with each other and other suites.
@Suite struct EngineTests {}

extension EngineTests {
    /// Finite-difference checks of every operation's backward (tolerance: see `expectGradientsMatch`).
    @Suite struct GradientChecks {
        @Test(arguments: [(Transpose.none, Transpose.none), (.none, .transposed), (.transposed, .none), (.transposed, .transposed)])
        func matmul(ta: Transpose, tb: Transpose) throws {
            let m = 3, n = 4, k = 5
            let a = randomTensor([m * k], seed: 1), b = randomTensor([k * n], seed: 2), r = randomArray(m * n, seed: 3)
            let c = Tensor(shape: [m, n])
            func loss() -> Double {
                BLAS.matmul(ta, tb, m: m, n: n, k: k, a: a.data, b: b.data, c: c.data)
                return dot(c, r)
            }
            let da = Tensor(shape: a.shape), db = Tensor(shape: b.shape)
            BLAS.matmulBackward(ta, tb, m: m, n: n, k: k, a: a.data, b: b.data, dc: r, da: da.data, db: db.data)
            expectGradientsMatch([GradVar(name: "A", pointer: a.data, count: a.count, analytic: da.array),
                                  GradVar(name: "B", pointer: b.data, count: b.count, analytic: db.array)], loss: loss)
        }

        @Test(arguments: [(Transpose.none, Transpose.none), (.none, .transposed), (.transposed, .none), (.transposed, .transposed)])
        func batchedMatmul(ta: Transpose, tb: Transpose) throws {
            let batch = 3, m = 2, n = 3, k = 4
            let a = randomTensor([batch, m * k], seed: 4), b = randomTensor([batch, k * n], seed: 5)
            let r = randomArray(batch * m * n, seed: 6)
            let c = Tensor(shape: [batch, m, n])
            func loss() -> Double {
                BLAS.batchedMatmul(ta, tb, batch: batch, m: m, n: n, k: k, a: a.data, strideA: m * k,
                                   b: b.data, strideB: k * n, c: c.data, strideC: m * n)
                return dot(c, r)
            }
            let da = Tensor(shape: a.shape), db = Tensor(shape: b.shape)
            r.withUnsafeBufferPointer { dc in
                for i in 0..<batch {   // each product's backward (attention's backward does the same per head)
                    BLAS.matmulBackward(ta, tb, m: m, n: n, k: k, a: a.data + i * m * k, b: b.data + i * k * n,
                                        dc: dc.baseAddress! + i * m * n, da: da.data + i * m * k, db: db.data + i * k * n)
                }
            }
            expectGradientsMatch([GradVar(name: "A", pointer: a.data, count: a.count, analytic: da.array),
                                  GradVar(name: "B", pointer: b.data, count: b.count, analytic: db.array)], loss: loss)
        }

        @Test func linear() throws {
            let store = ParameterStore(seed: 7)
            let lin = try Linear(store, name: "dense", inFeatures: 5, outFeatures: 4, initializer: .normal(std: 0.5))
            try store.set(lin.bias!, randomArray(4, seed: 8))
            let x = randomTensor([2, 3, 5], seed: 9)
            let r = randomArray(2 * 3 * 4, seed: 10)
            store.zeroGrads()
            _ = try lin.forward(x)
            let dx = try lin.backward(Tensor(shape: [2, 3, 4], values: r)).array
            try expectGradientsMatch([GradVar(name: "x", pointer: x.data, count: x.count, analytic: dx)] + paramVars(store)) {
                dot(try lin.forward(x), r)
            }
        }

        /// A weight gradient with fewer outputs than inputs and enough work is taken as `dW^T` and
        /// added transposed: it adds onto what the gradient held, matches a Double reference, and
        /// has the same bits at 1, 2 and 3 threads. `Kernels.addTransposed` on ragged sizes.
        @Test func weightGradientTakenTransposed() throws {
            let (rows, inF, outF) = (300, 256, 64)
            #expect(Double(rows * inF * outF) >= Linear.transposedGradientWork)
            let x = randomTensor([rows, inF], seed: 21), dy = randomTensor([rows, outF], seed: 22)
            let before = randomArray(outF * inF, seed: 23)
            var results: [[Float]] = []
            for threads in [1, 2, 3] {
                let store = ParameterStore(seed: 7)
                let lin = try Linear(store, name: "dense", inFeatures: inF, outFeatures: outF)
                store.zeroGrads()
                store.grad(lin.weight).update(from: before, count: before.count)
                try Engine.withThreads(threads) {
                    _ = try lin.forward(x)
                    _ = try lin.backward(dy)
                }
                results.append(Array(UnsafeBufferPointer(start: store.grad(lin.weight), count: outF * inF)))
            }
            #expect(results[1] == results[0] && results[2] == results[0])
            var worst = 0.0
            for o in 0..<outF {
                for i in 0..<inF {
                    var ref = Double(before[o * inF + i])
                    for r in 0..<rows { ref += Double(dy.data[r * outF + o]) * Double(x.data[r * inF + i]) }
                    worst = max(worst, abs(Double(results[0][o * inF + i]) - ref) / max(1, abs(ref)))
                }
            }
            #expect(worst < 5e-5, "largest relative error \(worst)")
            for (r, c) in [(67, 13), (1, 9), (130, 8), (9, 1)] {
                let src = randomArray(r * c, seed: 24), dst0 = randomArray(c * r, seed: 25)
                var dst = dst0
                try Engine.withThreads(2) {
                    src.withUnsafeBufferPointer { s in dst.withUnsafeMutableBufferPointer { Kernels.addTransposed(s.baseAddress!, rows: r, cols: c, into: $0.baseAddress!) } }
                }
                #expect((0..<(r * c)).allSatisfy { k in dst[k] == dst0[k] + src[(k % r) * c + k / r] }, "\(r)x\(c)")
            }
        }

        /// `Kernels.addColumnSums` (the bias gradient) adds onto what `out` held, matches a Double
        /// reference, and has the same bits at 1, 2 and 3 threads, on ragged sizes and sizes over
        /// its 1,024-column pass and 64-row block (the 4096 x 8192 masked-LM decoder's included).
        @Test func columnSumsMatchDoubleAtEveryThreadCount() throws {
            for (rows, cols) in [(4096, 8192), (300, 1030), (67, 13), (1, 9), (130, 8), (9, 1), (5, 2049), (64, 16)] {
                let x = randomArray(rows * cols, seed: 31), before = randomArray(cols, seed: 32)
                var results: [[Float]] = []
                for threads in [1, 2, 3] {
                    var out = before
                    try Engine.withThreads(threads) {
                        x.withUnsafeBufferPointer { xs in
                            out.withUnsafeMutableBufferPointer { Kernels.addColumnSums(xs.baseAddress!, rows: rows, cols: cols, into: $0.baseAddress!) }
                        }
                    }
                    results.append(out)
                }
                #expect(results[1] == results[0] && results[2] == results[0], "\(rows)x\(cols)")
                var worst = 0.0
                for j in 0..<cols {
                    var ref = 0.0, magnitude = 0.0
                    for i in 0..<rows { ref += Double(x[i * cols + j]); magnitude += abs(Double(x[i * cols + j])) }
                    let err = abs(Double(results[0][j]) - (Double(before[j]) + ref))
                    worst = max(worst, err / max(1, magnitude))
                }
                #expect(worst < 1e-6, "\(rows)x\(cols): largest error \(worst) of the column's absolute sum")
            }
        }

        /// An embedding's lookup and table gradient split over threads (rows, then 16-column groups)
        /// equal the serial loops bit for bit, ids repeated, at 1, 2 and 3 threads; a bad id is refused.
        @Test func embeddingOverThreadsEqualsTheSerialLoops() throws {
            let (vocab, dim, n) = (50, 40, 3000)
            var rng = RNG(seed: 41)
            let ids = (0..<n).map { _ in Int32(rng.int(below: vocab)) }
            let dy = randomArray(n * dim, seed: 42), before = randomArray(vocab * dim, seed: 43)
            let table = before
            var grad = before
            for i in 0..<n { for j in 0..<dim { grad[Int(ids[i]) * dim + j] += dy[i * dim + j] } }
            for threads in [1, 2, 3] {
                let store = ParameterStore(seed: 44)
                let emb = try Embedding(store, name: "e", vocabSize: vocab, dim: dim)
                table.withUnsafeBufferPointer { store.value(emb.weight).update(from: $0.baseAddress!, count: vocab * dim) }
                store.grad(emb.weight).update(from: before, count: vocab * dim)
                try Engine.withThreads(threads) {
                    let y = try emb.forward(ids, shape: [n]).array
                    #expect((0..<(n * dim)).allSatisfy { y[$0] == table[Int(ids[$0 / dim]) * dim + $0 % dim] }, "\(threads) threads")
                    try emb.backward(Tensor(shape: [n, dim], values: dy))
                }
                #expect(Array(UnsafeBufferPointer(start: store.grad(emb.weight), count: vocab * dim)) == grad, "\(threads) threads")
                #expect(throws: EngineError.self) { try emb.forward([0, Int32(vocab)], shape: [2]) }
            }
        }

        /// Weight tying: an Embedding and a Linear decoder share one table; gradients from both add up.
        @Test func tiedEmbeddingDecoder() throws {
            let store = ParameterStore(seed: 42)
            let emb = try Embedding(store, name: "embeddings.word_embeddings", vocabSize: 5, dim: 3, initializer: .normal(std: 1))
            let dec = try Linear(store, tiedWeight: emb.weight, biasName: "cls.predictions.bias")
            #expect(dec.inFeatures == 3 && dec.outFeatures == 5)
            #expect(store.parameters.map(\.name) == ["embeddings.word_embeddings.weight", "cls.predictions.bias"])
            let ids: [Int32] = [0, 3, 3, 4]
            let r = randomArray(4 * 5, seed: 43)
            func run() throws -> Double { dot(try dec.forward(try emb.forward(ids, shape: [4])), r) }
            store.zeroGrads()
            _ = try run()
            try emb.backward(try dec.backward(Tensor(shape: [4, 5], values: r)))
            try expectGradientsMatch(paramVars(store), loss: run)
        }

        @Test func embedding() throws {
            let store = ParameterStore(seed: 11)
            let emb = try Embedding(store, name: "embeddings.word_embeddings", vocabSize: 6, dim: 3)
            let ids: [Int32] = [1, 4, 1, 0, 5, 1]   // repeated ids accumulate
            let r = randomArray(ids.count * 3, seed: 12)
            store.zeroGrads()
            _ = try emb.forward(ids, shape: [2, 3])
            try emb.backward(Tensor(shape: [2, 3, 3], values: r))
            try expectGradientsMatch(paramVars(store)) { dot(try emb.forward(ids, shape: [2, 3]), r) }
            #expect(throws: EngineError.self) { try emb.forward([6], shape: [1]) }
        }

        @Test(arguments: [Float(1e-12), 1e-5])
        func layerNorm(eps: Float) throws {
            let store = ParameterStore(seed: 13)
            let ln = try LayerNorm(store, name: "LayerNorm", dim: 6, eps: eps)
            try store.set(ln.weight, randomArray(6, seed: 14))
            try store.set(ln.bias, randomArray(6, seed: 15))
            let x = randomTensor([4, 6], seed: 16, scale: 2)
            let r = randomArray(24, seed: 17)
            store.zeroGrads()
            _ = try ln.forward(x)
            let dx = try ln.backward(Tensor(shape: [4, 6], values: r)).array
            try expectGradientsMatch([GradVar(name: "x", pointer: x.data, count: x.count, analytic: dx)] + paramVars(store),
                                     h: 1e-2) {
                dot(try ln.forward(x), r)
            }
        }

        @Test(arguments: [GELU.Form.erf, .tanh])
        func gelu(form: GELU.Form) throws {
            let g = GELU(form)
            let x = randomTensor([3, 7], seed: 18, scale: 2)
            let r = randomArray(21, seed: 19)
            _ = g.forward(x)
            let dx = try g.backward(Tensor(shape: [3, 7], values: r)).array
            expectGradientsMatch([GradVar(name: "x", pointer: x.data, count: x.count, analytic: dx)]) { dot(g.forward(x), r) }
        }

        @Test func geluValues() {
            // Reference values: x * Phi(x) (erf form) and the tanh approximation, from the formulas in Double.
            let xs: [Float] = [-3, -1, -0.5, 0, 0.5, 1, 3]
            let y = GELU(.erf).forward(Tensor(shape: [7], values: xs)).array
            let yt = GELU(.tanh).forward(Tensor(shape: [7], values: xs)).array
            for (i, x) in xs.enumerated() {
                let d = Double(x)
                #expect(abs(Double(y[i]) - 0.5 * d * (1 + erf(d / 2.0.squareRoot()))) < 1e-6)
                #expect(abs(Double(yt[i]) - 0.5 * d * (1 + tanh((2 / Double.pi).squareRoot() * (d + 0.044715 * d * d * d)))) < 1e-6)
            }
        }

        @Test func tanhActivation() throws {
            let t = Tanh()
            let x = randomTensor([5, 3], seed: 20)
            let r = randomArray(15, seed: 21)
            _ = t.forward(x)
            let dx = try t.backward(Tensor(shape: [5, 3], values: r)).array
            expectGradientsMatch([GradVar(name: "x", pointer: x.data, count: x.count, analytic: dx)]) { dot(t.forward(x), r) }
        }

        /// Gradient reversal is the identity forward, so the finite-difference gradient of
        /// `dot(tanh(GRL(x)), r)` is tanh's; its backward must be exactly that gradient negated
        /// and scaled by λ (bit for bit against tanh's own backward, within the stated tolerance
        /// against finite differences).
        @Test(arguments: [Float(0.75), 1, 0]) func gradientReversal(lambda: Float) throws {
            let grl = GradientReversal(lambda: lambda), t = Tanh()
            let x = randomTensor([4, 3], seed: 60)
            let r = randomArray(12, seed: 61)
            #expect(grl.forward(x) === x)
            _ = t.forward(grl.forward(x))
            let g = try t.backward(Tensor(shape: [4, 3], values: r)).array
            let dx = try grl.backward(Tensor(shape: [4, 3], values: g)).array
            #expect(dx == g.map { -lambda * $0 })
            if lambda != 0 {
                expectGradientsMatch([GradVar(name: "x", pointer: x.data, count: x.count, analytic: dx.map { $0 / -lambda })]) {
                    dot(t.forward(grl.forward(x)), r)
                }
            } else {
                #expect(dx.allSatisfy { $0 == 0 })
            }
            #expect(throws: EngineError.self) { try grl.backward(Tensor(shape: [3, 4])) }
        }

        @Test func dropout() throws {
            let rng = SharedRNG(seed: 22)
            let d = try Dropout(p: 0.4, rng: rng)
            let x = randomTensor([40], seed: 23)
            let r = randomArray(40, seed: 24)
            rng.rng = RNG(seed: 99)
            let y = d.forward(x, training: true).array
            let zeros = y.filter { $0 == 0 }.count
            #expect(zeros > 5 && zeros < 30, "about 40% dropped, got \(zeros)/40")
            for i in 0..<40 where y[i] != 0 { #expect(abs(y[i] - x[i] / 0.6) < 1e-6) }
            let dx = d.backward(Tensor(shape: [40], values: r)).array
            expectGradientsMatch([GradVar(name: "x", pointer: x.data, count: x.count, analytic: dx)]) {
                rng.rng = RNG(seed: 99)   // same mask for every evaluation
                return dot(d.forward(x, training: true), r)
            }
            #expect(d.forward(x, training: false) === x)
        }

        /// Dropout with the residual added in the same pass equals dropout, then the sum, bit for
        /// bit (same draws, same mask for the backward), over a multi-chunk tensor on 2 threads.
        @Test func dropoutAddingResidual() throws {
            let n = 100_003
            let x = randomTensor([n], seed: 25), residual = randomTensor([n], seed: 26), dy = randomTensor([n], seed: 27)
            for training in [true, false] {
                let (separate, separateGrad) = try Engine.withThreads(2) {
                    let rng = SharedRNG(seed: 31), d = try Dropout(p: 0.1, rng: rng)
                    let y = Tensor(shape: [n], values: x.array)
                    d.forwardInPlace(y, training: training)
                    Kernels.add(residual.data, y.data, y.data, n)
                    return (y.array, d.backward(dy).array)
                }
                let (fused, fusedGrad) = try Engine.withThreads(2) {
                    let rng = SharedRNG(seed: 31), d = try Dropout(p: 0.1, rng: rng)
                    let y = Tensor(shape: [n], values: x.array)
                    #expect(d.forwardInPlace(y, adding: residual, training: training) === y)
                    return (y.array, d.backward(dy).array)
                }
                #expect(fused == separate, "training \(training)")
                #expect(fusedGrad == separateGrad, "training \(training)")
            }
        }

        /// Attention with separate Q/K/V, every combination of padding mask, causal mask and dropout.
        @Test(arguments: [(false, false, Float(0)), (true, false, 0), (false, true, 0), (true, true, 0), (true, false, 0.3)])
        func attention(padding: Bool, causal: Bool, dropout: Float) throws {
            let b = 2, t = 4, c = 6, heads = 2
            let rng = SharedRNG(seed: 25)
            let attn = try MultiHeadAttention(heads: heads, causal: causal, dropout: dropout, rng: rng)
            let q = randomTensor([b, t, c], seed: 26), k = randomTensor([b, t, c], seed: 27), v = randomTensor([b, t, c], seed: 28)
            // batch 0: last key padded; batch 1: first two real.
            let mask: Tensor? = padding ? Tensor(shape: [b, t], values: [1, 1, 1, 0, 1, 1, 0, 0]) : nil
            let r = randomArray(b * t * c, seed: 29)
            func run() throws -> Tensor {
                rng.rng = RNG(seed: 77)
                return try attn.forward(q: q, k: k, v: v, mask: mask, training: dropout > 0)
            }
            let y = try run()
            if causal || padding {
                // Probabilities of masked keys are exactly 0 and rows sum to 1.
                let p = attn.probabilities!
                for bi in 0..<b { for h in 0..<heads { for i in 0..<t {
                    var s: Float = 0
                    for j in 0..<t {
                        let pij = p.data[((bi * heads + h) * t + i) * t + j]
                        s += pij
                        if (causal && j > i) || (mask != nil && mask!.data[bi * t + j] == 0) { #expect(pij == 0) }
                    }
                    #expect(abs(s - 1) < 1e-5)
                } } }
            }
            _ = y
            let (dq, dk, dv) = try attn.backward(Tensor(shape: [b, t, c], values: r))
            let gq = dq.array, gk = dk.array, gv = dv.array
            try expectGradientsMatch([GradVar(name: "q", pointer: q.data, count: q.count, analytic: gq),
                                      GradVar(name: "k", pointer: k.data, count: k.count, analytic: gk),
                                      GradVar(name: "v", pointer: v.data, count: v.count, analytic: gv)]) {
                dot(try run(), r)
            }
        }

        /// Fewer queries than keys (`Tq = 1`, as the `[CLS]`-only last block asks), with padding and
        /// dropout: gradients by finite differences, and the output equal to that query's row of
        /// the full attention (no dropout), bit for bit or to the GEMMs' rounding.
        @Test(arguments: [Float(0), 0.3])
        func attentionWithFewerQueries(dropout: Float) throws {
            let b = 2, tq = 1, tk = 4, c = 6, heads = 2
            let rng = SharedRNG(seed: 125)
            let attn = try MultiHeadAttention(heads: heads, dropout: dropout, rng: rng)
            let q = randomTensor([b, tq, c], seed: 126), k = randomTensor([b, tk, c], seed: 127), v = randomTensor([b, tk, c], seed: 128)
            let mask = Tensor(shape: [b, tk], values: [1, 1, 1, 0, 1, 1, 0, 0])
            let r = randomArray(b * tq * c, seed: 129)
            func run() throws -> Tensor {
                rng.rng = RNG(seed: 78)
                return try attn.forward(q: q, k: k, v: v, mask: mask, training: dropout > 0)
            }
            let y = try run()
            #expect(y.shape == [b, tq, c])
            #expect(attn.probabilities!.shape == [b, heads, tq, tk])
            let (dq, dk, dv) = try attn.backward(Tensor(shape: [b, tq, c], values: r))
            #expect(dq.shape == [b, tq, c] && dk.shape == [b, tk, c] && dv.shape == [b, tk, c])
            let gq = dq.array, gk = dk.array, gv = dv.array
            try expectGradientsMatch([GradVar(name: "q", pointer: q.data, count: q.count, analytic: gq),
                                      GradVar(name: "k", pointer: k.data, count: k.count, analytic: gk),
                                      GradVar(name: "v", pointer: v.data, count: v.count, analytic: gv)]) {
                dot(try run(), r)
            }
            if dropout == 0 {
                // Row 0 of full self-attention whose query 0 is q.
                var qFull = k.array
                for bi in 0..<b { for j in 0..<c { qFull[bi * tk * c + j] = q.data[bi * c + j] } }
                let full = try MultiHeadAttention(heads: heads)
                let yf = try full.forward(q: Tensor(shape: [b, tk, c], values: qFull), k: k, v: v, mask: mask).array
                for bi in 0..<b { for j in 0..<c { #expect(abs(y.data[bi * c + j] - yf[bi * tk * c + j]) < 1e-6) } }
            }
            #expect(throws: EngineError.self) {
                try MultiHeadAttention(heads: heads, causal: true).forward(q: q, k: k, v: v)   // causal needs Tq = Tk
            }
        }

        @Test func fusedAttentionMatchesSeparate() throws {
            let b = 2, t = 3, c = 4
            let qkv = randomTensor([b, t, 3 * c], seed: 30)
            let mask = Tensor(shape: [b, t], values: [1, 1, 0, 1, 1, 1])
            let r = randomArray(b * t * c, seed: 31)
            let fused = try MultiHeadAttention(heads: 2)
            _ = try fused.forward(qkv: qkv, mask: mask)
            let g = try fused.backwardFused(Tensor(shape: [b, t, c], values: r)).array
            try expectGradientsMatch([GradVar(name: "qkv", pointer: qkv.data, count: qkv.count, analytic: g)]) {
                dot(try fused.forward(qkv: qkv, mask: mask), r)
            }
            // Same output as separate tensors.
            var q = [Float](), k = [Float](), v = [Float]()
            for row in 0..<(b * t) {
                q += Array(qkv.array[(row * 3 * c)..<(row * 3 * c + c)])
                k += Array(qkv.array[(row * 3 * c + c)..<(row * 3 * c + 2 * c)])
                v += Array(qkv.array[(row * 3 * c + 2 * c)..<(row * 3 * c + 3 * c)])
            }
            let sep = try MultiHeadAttention(heads: 2)
            let ys = try sep.forward(q: Tensor(shape: [b, t, c], values: q), k: Tensor(shape: [b, t, c], values: k),
                                     v: Tensor(shape: [b, t, c], values: v), mask: mask).array
            let yf = try fused.forward(qkv: qkv, mask: mask).array
            #expect(ys == yf)
        }

        @Test(arguments: [(Float(0), false), (0, true), (0.1, true)])
        func crossEntropy(smoothing: Float, ignore: Bool) throws {
            let ce = try CrossEntropyLoss(labelSmoothing: smoothing)
            let logits = randomTensor([5, 4], seed: 32, scale: 2)
            let targets: [Int32] = ignore ? [1, -100, 3, 0, -100] : [1, 2, 3, 0, 2]
            let l = try ce.forward(logits, targets: targets)
            #expect(ce.countedRows == (ignore ? 3 : 5))
            // Argmax hits, against the scalar first-maximum loop over the counted rows.
            let hits = (0..<5).filter { r in
                guard targets[r] != -100 else { return false }
                var best = 0
                for j in 1..<4 where logits.data[r * 4 + j] > logits.data[r * 4 + best] { best = j }
                return best == Int(targets[r])
            }.count
            #expect(ce.correctRows == hits)
            // Direct Double computation of the same loss.
            var ref = 0.0, n = 0.0
            for r in 0..<5 where targets[r] != -100 {
                let row = (0..<4).map { Double(logits.data[r * 4 + $0]) }
                let lz = log(row.map { exp($0) }.reduce(0, +))
                ref += (1 - Double(smoothing)) * (lz - row[Int(targets[r])]) + Double(smoothing) * row.map { lz - $0 }.reduce(0, +) / 4
                n += 1
            }
            #expect(abs(Double(l) - ref / n) < 1e-5)
            let g = try ce.backward().array
            #expect(throws: EngineError.self) { try ce.backward() }   // once per forward
            for r in 0..<5 where targets[r] == -100 { #expect(g[(r * 4)..<(r * 4 + 4)].allSatisfy { $0 == 0 }) }
            try expectGradientsMatch([GradVar(name: "logits", pointer: logits.data, count: logits.count, analytic: g)],
                                     atol: 1e-3) {
                Double(try ce.forward(logits, targets: targets))
            }
        }

        @Test func meanPool() throws {
            let pool = MeanPool()
            let x = randomTensor([2, 3, 4], seed: 33)
            let mask = Tensor(shape: [2, 3], values: [1, 1, 0, 1, 0, 0])
            let r = randomArray(8, seed: 34)
            let y = try pool.forward(x, mask: mask).array
            #expect(abs(y[0] - (x.data[0] + x.data[4]) / 2) < 1e-6)
            #expect(y[4] == x.data[12])
            let dx = try pool.backward(Tensor(shape: [2, 4], values: r)).array
            try expectGradientsMatch([GradVar(name: "x", pointer: x.data, count: x.count, analytic: dx)]) {
                dot(try pool.forward(x, mask: mask), r)
            }
        }

        @Test func reshapeAndSlice() throws {
            let x = randomTensor([2, 3, 6], seed: 37)
            #expect(try x.reshaped([6, 6]).data == x.data)
            #expect(try x.batchSlice(1..<2).data[0] == x.data[18])
            #expect(throws: EngineError.self) { try x.reshaped([5, 7]) }
        }

        /// A whole BERT post-LN transformer block with padding mask and hidden/attention dropout,
        /// end to end: input and every parameter (the pre-LN causal block is GPT2Block, below).
        /// Hidden 8: the query, key and value biases (8 floats) do not lie back to back in the
        /// flat buffers (parameters start on 16-float boundaries), so the three projections run
        /// separately; hidden 16: they do, and the block projects through the fused `qkv` view.
        @Test(arguments: [8, 16]) func transformerBlock(hidden c: Int) throws {
            let store = ParameterStore(seed: 38)
            let rng = SharedRNG(seed: 39)
            let cfg = TransformerBlock.Config(hidden: c, heads: 2, ffn: 12, layerNormEps: 1e-12,
                                              gelu: .erf, hiddenDropout: 0.1, attentionDropout: 0.1)
            let block = try TransformerBlock(store, prefix: "encoder.layer.0", config: cfg, rng: rng)
            #expect((block.qkv != nil) == (c == 16))
            for p in store.parameters where p.name.hasSuffix("bias") || p.name.contains("LayerNorm") {
                try store.set(p, randomArray(p.count, seed: UInt64(p.offset), scale: 0.3).map { p.name.hasSuffix("weight") ? 1 + $0 : $0 })
            }
            for p in store.parameters where !p.name.hasSuffix("bias") && !p.name.contains("LayerNorm") {
                try store.set(p, randomArray(p.count, seed: UInt64(p.offset) + 1, scale: 0.3))
            }
            let x = randomTensor([2, 3, c], seed: 40)
            let mask = Tensor(shape: [2, 3], values: [1, 1, 1, 1, 1, 0])
            let r = randomArray(6 * c, seed: 41)
            func run() throws -> Tensor {
                rng.rng = RNG(seed: 5)
                return try block.forward(x, mask: mask, training: true)
            }
            store.zeroGrads()
            _ = try run()
            let dx = try block.backward(Tensor(shape: [2, 3, c], values: r)).array
            #expect(store.parameters.count == 16)
            try expectGradientsMatch([GradVar(name: "x", pointer: x.data, count: x.count, analytic: dx)] + paramVars(store),
                                     h: 1e-2, maxPerVar: 24) {
                dot(try run(), r)
            }
        }

        /// A BERT block (hidden 8, 2 heads, FFN 12, dropout on) asked for `selection`'s rows of
        /// `[2, T, 8]` inputs by `forward(block, x, mask, training)`: finite differences through
        /// every parameter and the whole input, and in inference the same rows as the full
        /// forward. Returns the block and its input for further checks.
        func checkSelectedRows(seed: UInt64, attentionHeads: Int? = nil, seqLen t: Int, mask: [Float], selection: RowSelection,
                               forward: (TransformerBlock, Tensor, Tensor, Bool) throws -> Tensor) throws -> (TransformerBlock, Tensor) {
            let store = ParameterStore(seed: seed)
            let rng = SharedRNG(seed: seed + 1)
            let cfg = TransformerBlock.Config(hidden: 8, heads: 2, ffn: 12, layerNormEps: 1e-12, gelu: .erf,
                                              hiddenDropout: 0.1, attentionDropout: 0.1, attentionHeads: attentionHeads)
            let block = try TransformerBlock(store, prefix: "encoder.layer.0", config: cfg, rng: rng)
            for p in store.parameters {
                try store.set(p, randomArray(p.count, seed: UInt64(p.offset) + seed, scale: 0.3)
                    .map { p.name.contains("LayerNorm") && p.name.hasSuffix("weight") ? 1 + $0 : $0 })
            }
            let x = randomTensor([2, t, 8], seed: seed + 2), maskTensor = Tensor(shape: [2, t], values: mask)
            let r = selection.perItem
            let dy = randomArray(2 * r * 8, seed: seed + 3)
            func run() throws -> Tensor {
                rng.rng = RNG(seed: seed + 4)
                return try forward(block, x, maskTensor, true)
            }
            store.zeroGrads()
            #expect(try run().shape == [2, r, 8])
            let dx = try block.backward(Tensor(shape: [2, r, 8], values: dy))
            #expect(dx.shape == [2, t, 8])
            try expectGradientsMatch([GradVar(name: "x", pointer: x.data, count: x.count, analytic: dx.array)] + paramVars(store),
                                     h: 1e-2, maxPerVar: 24) {
                dot(try run(), dy)
            }
            let picked = try forward(block, x, maskTensor, false).array
            let full = try block.forward(x, mask: maskTensor, training: false).array
            for i in 0..<2 * r {
                let source = (i / r) * t + Int(selection.rows[i])
                for j in 0..<8 { #expect(abs(picked[i * 8 + j] - full[source * 8 + j]) < 1e-5) }
            }
            return (block, x)
        }

        /// The BERT block computing position 0 only (a `[CLS]` classifier's last layer).
        @Test func transformerBlockFirstToken() throws {
            let (block, _) = try checkSelectedRows(seed: 138, seqLen: 3, mask: [1, 1, 1, 1, 1, 0], selection: .firstToken(batch: 2)) {
                try $0.forwardFirstToken($1, mask: $2, training: $3)
            }
            // After a full forward the backward is the full one again.
            #expect(try block.backward(Tensor(shape: [2, 3, 8], values: randomArray(48, seed: 142))).shape == [2, 3, 8])
        }

        /// Selected rows (repeated ones, a padded key among the others) on a block with a pruned
        /// head (attention width 4 of 8); a row outside the sequence is refused.
        @Test func transformerBlockSelectedRowsPrunedHead() throws {
            let selection = RowSelection(rows: [3, 1, 3, 0, 2, 2], perItem: 3)
            let (block, x) = try checkSelectedRows(seed: 143, attentionHeads: 1, seqLen: 4, mask: [1, 1, 1, 1, 1, 1, 1, 0],
                                                   selection: selection) {
                try $0.forwardRows($1, selecting: selection, mask: $2, training: $3)
            }
            #expect(throws: EngineError.self) { try block.forwardRows(x, selecting: RowSelection(rows: [0, 4], perItem: 1)) }
        }

        /// GPT-2 block (fused QKV, causal, tanh GELU, dropout on) end to end, with a padding mask.
        @Test func gpt2Block() throws {
            let store = ParameterStore(seed: 50)
            let rng = SharedRNG(seed: 51)
            let block = try GPT2Block(store, prefix: "h.0", hidden: 8, heads: 2, ffn: 12, rng: rng)
            #expect(store.parameters.map(\.name) == [
                "h.0.ln_1.weight", "h.0.ln_1.bias", "h.0.attn.c_attn.weight", "h.0.attn.c_attn.bias",
                "h.0.attn.c_proj.weight", "h.0.attn.c_proj.bias", "h.0.ln_2.weight", "h.0.ln_2.bias",
                "h.0.mlp.c_fc.weight", "h.0.mlp.c_fc.bias", "h.0.mlp.c_proj.weight", "h.0.mlp.c_proj.bias"])
            #expect(GPT2Block.isConv1DWeight("h.0.attn.c_attn.weight") && !GPT2Block.isConv1DWeight("h.0.attn.c_attn.bias"))
            for p in store.parameters {
                try store.set(p, randomArray(p.count, seed: UInt64(p.offset) + 3, scale: 0.3).map { p.name.contains("ln_") && p.name.hasSuffix("weight") ? 1 + $0 : $0 })
            }
            let x = randomTensor([2, 4, 8], seed: 52)
            let mask = Tensor(shape: [2, 4], values: [1, 1, 1, 1, 1, 1, 1, 0])
            let r = randomArray(64, seed: 53)
            func run() throws -> Tensor {
                rng.rng = RNG(seed: 6)
                return try block.forward(x, mask: mask, training: true)
            }
            store.zeroGrads()
            _ = try run()
            let dx = try block.backward(Tensor(shape: [2, 4, 8], values: r)).array
            try expectGradientsMatch([GradVar(name: "x", pointer: x.data, count: x.count, analytic: dx)] + paramVars(store),
                                     h: 1e-2, maxPerVar: 24) {
                dot(try run(), r)
            }
            // Causality: changing the last position leaves earlier outputs bit-identical.
            let before = try block.forward(x, mask: nil, training: false).array
            for j in 0..<8 { x.data[3 * 8 + j] += 1 }
            let after = try block.forward(x, mask: nil, training: false).array
            #expect(Array(before[0..<24]) == Array(after[0..<24]))
            #expect(Array(before[24..<32]) != Array(after[24..<32]))
        }
    }
}

extension EngineTests {
    @Suite struct FastMathAccuracy {
        /// Vectorised exp / erf / tanh against libm over their useful ranges.
        @Test func againstLibm() {
            var worstExp = 0.0, worstErf = 0.0, worstTanh = 0.0
            var x: Float = -87
            while x < 88 {
                let d = Double(x)
                worstExp = max(worstExp, abs(Double(FastMath.exp(x)) - Foundation.exp(d)) / Foundation.exp(d))
                worstErf = max(worstErf, abs(Double(FastMath.erf(x * 0.05)) - Foundation.erf(Double(x * 0.05))))
                worstTanh = max(worstTanh, abs(Double(FastMath.tanh(x * 0.1)) - Foundation.tanh(Double(x * 0.1))))
                x += 0.00173
            }
            #expect(worstExp < 2e-7, "exp max relative error \(worstExp)")
            #expect(worstErf < 5e-7, "erf max absolute error \(worstErf)")
            #expect(worstTanh < 3e-7, "tanh max absolute error \(worstTanh)")
        }

        /// The eight-lane dropout flags are the scalar draw's, element for element, at any start,
        /// length and keep probability (including 0, 1 and values whose threshold is an integer).
        @Test func keepFlagsEqualTheScalarDraw() {
            let n = 1_000
            let flags = UnsafeMutablePointer<UInt8>.allocate(capacity: n)
            defer { flags.deallocate() }
            for keep: Float in [0, 0.1, 0.5, 0.9, 0.8999999, 1 - 1 / 16_777_216, 1] {
                for key: UInt64 in [0, 7, 0xDEAD_BEEF_CAFE_BABE] {
                    for (start, count) in [(0, n), (13, 997), (4_294_967_290, 21), (5, 7)] {
                        flags.update(repeating: 2, count: n)
                        FastMath.keepFlags(key, start: start, count: count, keep: keep, into: flags)
                        let wrong = (0..<count).filter { flags[$0] != (FastMath.hashUniform(key, start + $0) < keep ? 1 : 0) }
                        #expect(wrong.isEmpty, "keep \(keep) key \(key) start \(start): \(wrong.count) flags differ")
                        #expect((count..<n).allSatisfy { flags[$0] == 2 }, "wrote past \(count) flags")
                    }
                }
            }
        }

        /// The lane-wise first argmax is the scalar loop's: ties (the first wins), -0 beside +0,
        /// lengths around the lane width, a NaN maximum; `isFirstArgmax` holds at that index alone.
        @Test func firstArgmaxEqualsTheScalarLoop() {
            var rng = RNG(seed: 4)
            for n in [1, 2, 7, 8, 9, 16, 17, 100, 1_000] {
                for trial in 0..<20 {
                    // Few distinct values, so maxima tie often.
                    var p = (0..<n).map { _ in Float(Int(rng.uniform() * 5)) - 4 }
                    if trial == 1 { p = p.map { $0 == 0 ? -0.0 : $0 } }
                    if trial == 2, n > 3 { p[n / 2] = .nan }
                    if trial == 3 { p = [Float](repeating: .nan, count: n) }
                    var best = 0
                    for j in 1..<max(n, 1) where p[j] > p[best] { best = j }
                    #expect(FastMath.firstArgmax(p, n) == best, "n \(n), trial \(trial): \(p)")
                    let m = FastMath.max(p, n)
                    #expect((0..<n).filter { FastMath.isFirstArgmax($0, p, n, maximum: m) } == [best], "n \(n), trial \(trial): \(p)")
                }
            }
        }

        /// The lane-wise masked maximum equals the scalar loop over the visible elements.
        @Test func maskedMaxEqualsTheScalarLoop() {
            var rng = RNG(seed: 3)
            for n in [1, 7, 8, 9, 64, 130] {
                for density in [0.0, 0.3, 1.0] {
                    let s = (0..<n).map { _ in rng.uniform() * 20 - 10 }
                    let m: [Float] = (0..<n).map { _ in rng.uniform() < Float(density) ? 1 : 0 }
                    var expected = -Float.infinity
                    for j in 0..<n where m[j] != 0 { expected = max(expected, s[j]) }
                    #expect(FastMath.maskedMax(s, m, n) == expected, "n \(n), density \(density)")
                }
            }
        }
    }
}
