import GraftSupport
import Foundation
import Testing
@testable import GraftEngine

/// A one-block (post-LN, BERT) transformer over token sequences: token + position embeddings, a block, a head.
final class TinyTransformer {
    let store: ParameterStore
    let rng: SharedRNG
    let tok: Embedding, pos: Embedding
    let block: TransformerBlock
    let head: Linear
    let ce: CrossEntropyLoss
    let t: Int
    private var sum: Tensor?

    init(seed: UInt64, vocab: Int, t: Int, hidden: Int = 32, dropout: Float = 0) throws {
        store = ParameterStore(seed: seed)
        rng = SharedRNG(seed: seed &+ 1)
        self.t = t
        tok = try Embedding(store, name: "embeddings.word_embeddings", vocabSize: vocab, dim: hidden)
        pos = try Embedding(store, name: "embeddings.position_embeddings", vocabSize: t, dim: hidden)
        block = try TransformerBlock(store, prefix: "encoder.layer.0",
                                     config: .init(hidden: hidden, heads: 4, ffn: 2 * hidden, layerNormEps: 1e-5,
                                                   hiddenDropout: dropout, attentionDropout: dropout),
                                     rng: rng)
        head = try Linear(store, name: "cls.decoder", inFeatures: hidden, outFeatures: vocab)
        ce = try CrossEntropyLoss()
    }

    /// Forward + backward on a batch; returns the loss and (for accuracy) the logits.
    @discardableResult
    func step(ids: [Int32], targets: [Int32], batch: Int, training: Bool = true, lossScale: Float = 1) throws -> (Float, Tensor) {
        let x = Tensor.ensure(sum, [batch, t, block.config.hidden]); sum = x
        _ = try tok.forward(ids, shape: [batch, t], into: x)
        let p = try pos.forward((0..<batch * t).map { Int32($0 % t) }, shape: [batch, t])
        Kernels.add(x.data, p.data, x.data, x.count)
        let logits = try head.forward(block.forward(x, training: training))
        let loss = try ce.forward(logits, targets: targets)
        let dx = try block.backward(head.backward(ce.backward(scale: lossScale)))
        try tok.backward(dx)
        try pos.backward(dx)
        return (loss, logits)
    }
}

/// Trains a `TinyTransformer` (dropout 0.1) for `steps` AdamW updates with `threads` threads and
/// returns its weights. `between(step)` runs after each update, inside the thread binding.
func trainTiny(threads: Int, seed: UInt64 = 21, steps: Int = 3, between: (Int) throws -> Void = { _ in }) throws -> [Float] {
    try Engine.withThreads(threads) {
        let m = try TinyTransformer(seed: seed, vocab: 9, t: 16, hidden: 64, dropout: 0.1)
        let opt = AdamW(m.store)
        for s in 0..<steps {
            let (ids, tg) = reverseBatch(seed: UInt64(s), batch: 64, t: 16, vocab: 9)
            m.store.zeroGrads()
            try m.step(ids: ids, targets: tg, batch: 64)
            try opt.step(m.store, lr: 1e-3)
            try between(s)
        }
        return Array(UnsafeBufferPointer(start: m.store.values, count: m.store.count))
    }
}

/// Reverse-the-sequence batches, determined by `seed`.
func reverseBatch(seed: UInt64, batch: Int, t: Int, vocab: Int) -> (ids: [Int32], targets: [Int32]) {
    var r = RNG(seed: seed)
    var ids = [Int32](), tg = [Int32]()
    for _ in 0..<batch {
        let s = (0..<t).map { _ in Int32(r.int(below: vocab)) }
        ids += s
        tg += s.reversed()
    }
    return (ids, tg)
}

extension EngineTests {
    @Suite struct Training {
        /// A two-layer network fits a 3-arm spiral (300 points) to near-zero loss.
        @Test func mlpFitsSpiral() throws {
            var r = RNG(seed: 1)
            var xs = [Float](), ys = [Int32]()
            for c in 0..<3 { for i in 0..<100 {
                let rad = Float(i) / 100, ang = Float(c) * 4 + Float(i) / 100 * 4 + r.normal() * 0.2
                xs += [rad * sin(ang), rad * cos(ang)]
                ys.append(Int32(c))
            } }
            let store = ParameterStore(seed: 2)
            let l1 = try Linear(store, name: "l1", inFeatures: 2, outFeatures: 64, initializer: .normal(std: 1))
            let act = Tanh()
            let l2 = try Linear(store, name: "l2", inFeatures: 64, outFeatures: 3, initializer: .normal(std: 0.1))
            let ce = try CrossEntropyLoss()
            let opt = AdamW(store, weightDecay: 0)
            let x = Tensor(shape: [300, 2], values: xs)
            var loss: Float = 0
            for _ in 0..<1000 {
                store.zeroGrads()
                loss = try ce.forward(l2.forward(act.forward(l1.forward(x))), targets: ys)
                _ = try l1.backward(act.backward(l2.backward(ce.backward())))
                try opt.step(store, lr: 0.02)
            }
            let logits = try l2.forward(act.forward(l1.forward(x)))
            var correct = 0
            for i in 0..<300 {
                let row = (0..<3).map { logits.data[i * 3 + $0] }
                if row.firstIndex(of: row.max()!)! == Int(ys[i]) { correct += 1 }
            }
            #expect(loss < 0.05, "final loss \(loss)")
            #expect(correct >= 297, "accuracy \(correct)/300")
        }

        /// Clipping through the optimizer (the clip factor applied as each gradient is read) gives
        /// the update that clipping the stored gradients first gives, bit for bit, for AdamW and
        /// SGD, with and without clipping, over sizes with a scalar tail and all-zero blocks.
        @Test func clipFactorInTheStepEqualsClippingFirst() throws {
            func run(_ kind: String, clipInStep: Bool, maxNorm: Float) throws -> [Float] {
                let store = ParameterStore(seed: 3)
                _ = try store.declare("a", shape: [37, 5], initializer: .normal(std: 1))
                let b = try store.declare("b.bias", shape: [64], initializer: .normal(std: 1))   // no decay: untouched blocks are skipped
                let opt: Optimizer = kind == "adamw" ? AdamW(store, weightDecay: 0.01) : SGD(store, momentum: 0.9, weightDecay: 0.01)
                for step in 0..<3 {
                    let grads = randomArray(store.count, seed: UInt64(40 + step), scale: 3)
                    store.grads.update(from: grads, count: store.count)
                    (store.grad(b) + 16).update(repeating: 0, count: 24)   // blocks that never get a gradient
                    if clipInStep {
                        try opt.step(store, lr: 0.01, gradientScale: clipFactor(norm: store.gradNorm(), maxNorm: maxNorm))
                    } else {
                        clipGradNorm(store, maxNorm: maxNorm)
                        try opt.step(store, lr: 0.01)
                    }
                }
                return Array(UnsafeBufferPointer(start: store.values, count: store.count))
                    + opt.stateBuffers.flatMap { Array(UnsafeBufferPointer(start: $0.buffer, count: store.count)) }
            }
            for kind in ["adamw", "sgd"] {
                for maxNorm: Float in [1, 1e6] {
                    let first = try run(kind, clipInStep: false, maxNorm: maxNorm), inStep = try run(kind, clipInStep: true, maxNorm: maxNorm)
                    #expect(first.map(\.bitPattern) == inStep.map(\.bitPattern), "\(kind), max norm \(maxNorm)")
                }
            }
            #expect(clipFactor(norm: 4, maxNorm: 1) == Float(1.0 / (4 + 1e-6)) && clipFactor(norm: 0.5, maxNorm: 1) == 1)
        }

        /// A one-block transformer learns to reverse sequences of 5 tokens.
        @Test func transformerLearnsToReverse() throws {
            let vocab = 8, t = 5, batch = 16
            let m = try TinyTransformer(seed: 3, vocab: vocab, t: t)
            let opt = AdamW(m.store, weightDecay: 0.01)
            let sched = LRSchedule(baseLR: 5e-3, warmupSteps: 10, totalSteps: 250, decay: .cosine)
            var loss: Float = 0
            for s in 0..<250 {
                let (ids, tg) = reverseBatch(seed: UInt64(1000 + s), batch: batch, t: t, vocab: vocab)
                m.store.zeroGrads()
                loss = try m.step(ids: ids, targets: tg, batch: batch).0
                clipGradNorm(m.store, maxNorm: 1)
                try opt.step(m.store, lr: sched.lr(at: opt.stepCount))
            }
            let (ids, tg) = reverseBatch(seed: 7, batch: 64, t: t, vocab: vocab)
            let (evalLoss, logits) = try m.step(ids: ids, targets: tg, batch: 64, training: false)
            var correct = 0
            for i in 0..<(64 * t) {
                let row = (0..<vocab).map { logits.data[i * vocab + $0] }
                if row.firstIndex(of: row.max()!)! == Int(tg[i]) { correct += 1 }
            }
            #expect(evalLoss < 0.05, "held-out loss \(evalLoss) (last train loss \(loss))")
            #expect(correct == 64 * t, "held-out token accuracy \(correct)/\(64 * t)")
        }

        /// Save -> load -> continue gives bit-identical weights, moments and RNG to an uninterrupted
        /// run (dropout on, cosine schedule, clipping, 2-step gradient accumulation).
        @Test(arguments: ["adamw", "sgd"])
        func saveLoadContinueIsBitIdentical(optimizer kind: String) throws {
            let vocab = 7, t = 5, batch = 4
            let sched = LRSchedule(baseLR: 1e-2, warmupSteps: 3, totalSteps: 12, decay: .cosine)
            func makeOpt(_ s: ParameterStore) -> Optimizer {
                kind == "adamw" ? AdamW(s, weightDecay: 0.1) : SGD(s, momentum: 0.9, weightDecay: 0.01)
            }
            func train(_ m: TinyTransformer, _ opt: Optimizer, steps: Range<Int>) throws {
                for s in steps {
                    m.store.zeroGrads()
                    for micro in 0..<2 {
                        let (ids, tg) = reverseBatch(seed: UInt64(s * 2 + micro), batch: batch, t: t, vocab: vocab)
                        try m.step(ids: ids, targets: tg, batch: batch, lossScale: 0.5)
                    }
                    clipGradNorm(m.store, maxNorm: 0.5)
                    try opt.step(m.store, lr: sched.lr(at: opt.stepCount))
                }
            }
            let a = try TinyTransformer(seed: 11, vocab: vocab, t: t, hidden: 16, dropout: 0.1)
            let optA = makeOpt(a.store)
            try train(a, optA, steps: 0..<10)

            let b = try TinyTransformer(seed: 11, vocab: vocab, t: t, hidden: 16, dropout: 0.1)
            let optB = makeOpt(b.store)
            try train(b, optB, steps: 0..<5)
            let dir = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: dir) }
            let url = dir.appendingPathComponent("state.safetensors")
            try TrainingCheckpoint.save(to: url, store: b.store, optimizer: optB, schedule: sched, rng: b.rng,
                                        metadata: ["config": "tiny"])

            let c = try TinyTransformer(seed: 99, vocab: vocab, t: t, hidden: 16, dropout: 0.1)   // different init + RNG
            let optC = makeOpt(c.store)
            let restored = try TrainingCheckpoint.load(from: url, store: c.store, optimizer: optC, rng: c.rng)
            #expect(restored.step == 5)
            #expect(restored.schedule == sched)
            #expect(restored.metadata["config"] == "tiny")
            #expect(c.rng.rng == b.rng.rng)
            try train(c, optC, steps: 5..<10)

            let n = a.store.count
            #expect(memcmp(a.store.values, c.store.values, n * 4) == 0, "weights differ")
            for (ba, bc) in zip(optA.stateBuffers, optC.stateBuffers) {
                #expect(memcmp(ba.buffer, bc.buffer, n * 4) == 0, "\(ba.name) differs")
            }
            #expect(optA.stepCount == optC.stepCount)
            #expect(a.rng.rng == c.rng.rng)
            // Loading into the wrong optimizer kind is refused.
            let wrong: Optimizer = kind == "adamw" ? SGD(c.store) : AdamW(c.store)
            #expect(throws: EngineError.self) { try TrainingCheckpoint.load(from: url, store: c.store, optimizer: wrong) }
        }

        /// Gradient accumulation over two half-batches (loss scale 1/2) equals the full-batch gradient.
        @Test func gradientAccumulationMatchesFullBatch() throws {
            let vocab = 6, t = 4
            let m = try TinyTransformer(seed: 5, vocab: vocab, t: t, hidden: 16)
            let (ids, tg) = reverseBatch(seed: 1, batch: 8, t: t, vocab: vocab)
            m.store.zeroGrads()
            try m.step(ids: ids, targets: tg, batch: 8)
            let full = Array(UnsafeBufferPointer(start: m.store.grads, count: m.store.count))
            m.store.zeroGrads()
            try m.step(ids: Array(ids[0..<16]), targets: Array(tg[0..<16]), batch: 4, lossScale: 0.5)
            try m.step(ids: Array(ids[16...]), targets: Array(tg[16...]), batch: 4, lossScale: 0.5)
            let acc = Array(UnsafeBufferPointer(start: m.store.grads, count: m.store.count))
            var worst: Float = 0
            for i in 0..<full.count { worst = max(worst, abs(full[i] - acc[i]) / (1e-4 + abs(full[i]))) }
            #expect(worst < 1e-3, "worst relative difference \(worst)")
        }

        /// Same seed and thread count -> bit-identical results; 1 vs 2 threads agree closely.
        @Test func deterministicForSeedAndThreads() throws {
            let a = try trainTiny(threads: 2), b = try trainTiny(threads: 2)
            let identical = a == b   // outside #expect: a failure would diff every weight
            #expect(identical, "two 2-thread runs of the same seed differ")
            let c = try trainTiny(threads: 1)
            var worst: Float = 0
            for i in 0..<a.count { worst = max(worst, abs(a[i] - c[i])) }
            #expect(worst < 1e-4, "1 vs 2 threads max difference \(worst)")
            #expect(throws: EngineError.self) { try Engine.withThreads(0) {} }
        }
    }

    @Suite struct Optimizers {
        /// One AdamW step against the formula in Double; no decay on bias / LayerNorm by the name rule.
        @Test func adamWMatchesReference() throws {
            let store = ParameterStore(seed: 1)
            let w = try store.declare("encoder.layer.0.output.dense.weight", shape: [3], initializer: .normal(std: 1))
            let b = try store.declare("encoder.layer.0.output.dense.bias", shape: [3], initializer: .normal(std: 1))
            let ln = try store.declare("encoder.layer.0.output.LayerNorm.weight", shape: [3], initializer: .normal(std: 1))
            #expect(w.decay && !b.decay && !ln.decay)
            #expect(!ParameterStore.defaultDecayRule("h.0.ln_1.weight") && ParameterStore.defaultDecayRule("wte.weight"))
            let opt = AdamW(store, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1)
            var m = [Double](repeating: 0, count: store.count), v = m
            var p = (0..<store.count).map { Double(store.values[$0]) }
            let lr = 0.01
            for step in 1...3 {
                let g = randomArray(store.count, seed: UInt64(step))
                for i in 0..<store.count { store.grads[i] = g[i] }
                try opt.step(store, lr: Float(lr))
                for param in store.parameters {
                    for i in param.offset..<(param.offset + param.count) {
                        if param.decay { p[i] *= 1 - lr * 0.1 }
                        m[i] = 0.9 * m[i] + 0.1 * Double(g[i])
                        v[i] = 0.99 * v[i] + 0.01 * Double(g[i]) * Double(g[i])
                        let mh = m[i] / (1 - pow(0.9, Double(step))), vh = v[i] / (1 - pow(0.99, Double(step)))
                        p[i] -= lr * mh / (vh.squareRoot() + 1e-8)
                    }
                }
            }
            for param in store.parameters { for i in param.offset..<(param.offset + param.count) {
                #expect(abs(Double(store.values[i]) - p[i]) < 1e-5, "\(param.name)")
            } }
        }

        /// Blocks that never had a gradient are skipped without decay: every bit equals the plain
        /// Float update (the scalar formula), including untouched blocks, blocks touched once and
        /// zero afterwards (their moments keep moving them), and a decayed parameter with zero
        /// gradients (decay still applies).
        @Test func adamWSkipsUntouchedBlocksBitForBit() throws {
            let store = ParameterStore(seed: 3)
            try store.declare("embeddings.word_embeddings.weight", shape: [10, 8], initializer: .normal(std: 1))
            try store.declare("classifier.weight", shape: [4, 8], initializer: .normal(std: 1))
            for decay: Float in [0, 0.1] {
                let opt = AdamW(store, weightDecay: decay)
                var p = (0..<store.count).map { store.values[$0] }
                var m = [Float](repeating: 0, count: store.count), v = m
                for step in 1...4 {
                    let noise = randomArray(store.count, seed: UInt64(step))
                    // Rows (blocks of 8) with a gradient this step: row 1 only at step 1, row 3 at every
                    // step, row 5 from step 3 on; rows 0, 2, 4, 6–9 never; a -0 gradient in row 0.
                    for i in 0..<store.count {
                        let row = i / 8
                        let live = row == 3 || (row == 1 && step == 1) || (row == 5 && step >= 3) || (row >= 10 && step.isMultiple(of: 2))
                        store.grads[i] = live ? noise[i] : (row == 0 ? -0.0 : 0)
                    }
                    try opt.step(store, lr: 0.01)
                    let bc1 = 1 - Float(Foundation.pow(Double(Float(0.9)), Double(step)))
                    let bc2 = 1 - Float(Foundation.pow(Double(Float(0.999)), Double(step)))
                    for param in store.parameters {
                        let d: Float = param.decay ? 1 - 0.01 * decay : 1
                        for i in param.offset..<(param.offset + param.count) {
                            let g = store.grads[i]
                            m[i] = 0.9 * m[i] + (1 - 0.9) * g
                            v[i] = 0.999 * v[i] + (1 - 0.999) * g * g
                            p[i] = p[i] * d - (0.01 / bc1) * m[i] / (v[i].squareRoot() * (1 / bc2.squareRoot()) + 1e-8)
                        }
                    }
                    for i in 0..<store.count {
                        #expect(store.values[i].bitPattern == p[i].bitPattern, "decay \(decay) step \(step) value \(i)")
                    }
                }
                let bits = { (b: UnsafeMutablePointer<Float>) in (0..<store.count).map { b[$0].bitPattern } }
                #expect(bits(opt.stateBuffers[0].buffer) == m.map(\.bitPattern) && bits(opt.stateBuffers[1].buffer) == v.map(\.bitPattern))
                #expect(m[0] == 0 && m[0].sign == .plus && m[8] != 0, "untouched moments stay +0; touched ones move")
            }
        }

        @Test func sgdMomentumMatchesReference() throws {
            let store = ParameterStore(seed: 2)
            try store.declare("w", shape: [4], initializer: .normal(std: 1))
            let opt = SGD(store, momentum: 0.9, weightDecay: 0.05)
            var p = (0..<4).map { Double(store.values[$0]) }, buf = [Double](repeating: 0, count: 4)
            for step in 1...3 {
                let g = randomArray(4, seed: UInt64(step))
                for i in 0..<4 { store.grads[i] = g[i] }
                try opt.step(store, lr: 0.1)
                for i in 0..<4 {
                    buf[i] = 0.9 * buf[i] + Double(g[i]) + 0.05 * p[i]
                    p[i] -= 0.1 * buf[i]
                }
            }
            for i in 0..<4 { #expect(abs(Double(store.values[i]) - p[i]) < 1e-5) }
        }

        /// Parameter groups: a frozen parameter keeps its exact bytes (values and optimizer
        /// state), a scaled one moves as with the scaled learning rate, others as usual.
        @Test(arguments: ["adamw", "sgd"])
        func parameterGroupsFreezeAndScale(kind: String) throws {
            func make() throws -> ParameterStore {
                let s = ParameterStore(seed: 9)
                try s.declare("encoder.weight", shape: [5], initializer: .normal(std: 1))
                try s.declare("classifier.weight", shape: [3], initializer: .normal(std: 1))
                try s.declare("classifier.bias", shape: [2], initializer: .normal(std: 1))
                return s
            }
            func optimizer(_ s: ParameterStore, _ rule: ((Parameter) -> ParameterGroup)?) -> Optimizer {
                kind == "adamw" ? AdamW(s, weightDecay: 0.1, groups: rule) : SGD(s, momentum: 0.9, weightDecay: 0.1, groups: rule)
            }
            let grouped = try make(), frozenReference = try make(), scaledReference = try make()
            let opt = optimizer(grouped) { p in
                p.name.hasPrefix("encoder.") ? .frozen : p.name == "classifier.weight" ? ParameterGroup(learningRateScale: 8) : .standard
            }
            let plain = optimizer(scaledReference, nil)
            let before = grouped.array(grouped.parameters[0]).map(\.bitPattern)
            for step in 1...3 {
                let g = randomArray(grouped.count, seed: UInt64(step))
                for s in [grouped, scaledReference] { for i in 0..<s.count { s.grads[i] = g[i] } }
                try opt.step(grouped, lr: 0.0078125)   // powers of two: 8 x lr is exactly 0.0625
                try plain.step(scaledReference, lr: 0.0625)
            }
            #expect(grouped.array(grouped.parameters[0]).map(\.bitPattern) == before)
            #expect(opt.stateBuffers.allSatisfy { b in (0..<5).allSatisfy { b.buffer[$0] == 0 } })
            // classifier.weight moved as with lr 0.0625, classifier.bias with the group's own lr.
            let w = grouped.parameters[1], b = grouped.parameters[2]
            #expect(grouped.array(w) == scaledReference.array(w))
            #expect(grouped.array(b) != scaledReference.array(b) && grouped.array(b) != frozenReference.array(b))
            // Frozen gradients are zeroed before clipping.
            grouped.zeroGrads()
            for p in grouped.parameters { grouped.grad(p).update(repeating: 1, count: p.count) }
            opt.zeroFrozenGradients(grouped)
            #expect(grouped.gradNorm() == Double(grouped.parameters[1].count + grouped.parameters[2].count).squareRoot())
        }

        @Test func schedules() {
            let lin = LRSchedule(baseLR: 1, warmupSteps: 10, totalSteps: 110, decay: .linear)
            #expect(lin.lr(at: 0) == 0)
            #expect(lin.lr(at: 5) == 0.5)
            #expect(lin.lr(at: 10) == 1)
            #expect(lin.lr(at: 60) == 0.5)
            #expect(lin.lr(at: 110) == 0 && lin.lr(at: 200) == 0)
            let cosine = LRSchedule(baseLR: 2, warmupSteps: 0, totalSteps: 100, decay: .cosine)
            #expect(cosine.lr(at: 0) == 2)
            #expect(abs(cosine.lr(at: 50) - 1) < 1e-6)
            #expect(abs(cosine.lr(at: 25) - Float(1 + cos(Double.pi / 4))) < 1e-6)
            #expect(cosine.lr(at: 100) < 1e-6)
            #expect(LRSchedule(baseLR: 3, warmupSteps: 2, totalSteps: 5, decay: .constant).lr(at: 4) == 3)
        }

        @Test func clipByGlobalNorm() throws {
            let store = ParameterStore()
            try store.declare("a", shape: [2], initializer: .zeros)
            try store.declare("b", shape: [1], initializer: .zeros)
            store.grads[store.parameters[0].offset] = 3
            store.grads[store.parameters[0].offset + 1] = 0
            store.grads[store.parameters[1].offset] = 4
            #expect(clipGradNorm(store, maxNorm: 10) == 5)
            #expect(store.grads[store.parameters[1].offset] == 4)
            #expect(clipGradNorm(store, maxNorm: 1) == 5)
            #expect(abs(store.gradNorm() - 1) < 1e-5)
            #expect(abs(store.grads[store.parameters[0].offset] - 0.6) < 1e-5)
        }

        @Test func flatStoreLayout() throws {
            let store = ParameterStore(seed: 4)
            let a = try store.declare("a.weight", shape: [3, 5], initializer: .ones)
            let b = try store.declare("b.bias", shape: [7], initializer: .constant(2))
            #expect(a.offset == 0 && b.offset == 16 && store.count == 23)   // 64-byte aligned offsets
            #expect(store.value(b) == store.values + 16)
            #expect(store.array(b) == [Float](repeating: 2, count: 7))
            #expect(try store.parameter(named: "a.weight") == a)
            #expect(throws: EngineError.duplicateParameter("a.weight")) { try store.declare("a.weight", shape: [1], initializer: .zeros) }
            #expect(throws: EngineError.unknownParameter("nope")) { try store.parameter(named: "nope") }
        }

        /// Growing the buffers keeps every value and gradient bit (the gradient copy skips
        /// runs of zeros only), and new room reads as zeros.
        @Test func growingKeepsValuesAndGradients() throws {
            let store = ParameterStore(seed: 5)
            let a = try store.declare("a.weight", shape: [3000], initializer: .normal(std: 1))
            let values = store.array(a)
            let g = store.grad(a)
            g[5] = -0.0; g[1500] = 3.5; g[2999] = -1e-38   // a negative zero, and single values in later pages
            let b = try store.declare("b.weight", shape: [100_000], initializer: .zeros)   // grows the buffers
            #expect(store.array(a) == values)
            let ga = store.grad(a)
            #expect(ga[5].bitPattern == (-0.0 as Float).bitPattern && ga[1500] == 3.5 && ga[2999] == -1e-38)
            #expect((0..<3000).filter { ![5, 1500, 2999].contains($0) }.allSatisfy { ga[$0].bitPattern == 0 })
            #expect((0..<b.count).allSatisfy { store.grad(b)[$0] == 0 && store.value(b)[$0] == 0 })
        }
    }
}
