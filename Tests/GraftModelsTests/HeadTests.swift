import Foundation
import GraftSupport
import Testing
import GraftEngine
@testable import GraftModels

/// The task heads: finite-difference gradients (every parameter, encoder included), padding
/// invariance, inference = training with dropout 0, parameter groups and freezing, and parity
/// with HuggingFace transformers on fixtures made by `scripts/make_head_fixtures.py`.
@Suite struct HeadTests {
    /// Batch 3 x 6, right-padded to lengths 6, 4, 2 (ids never 0, the pad id).
    static let lengths = [6, 4, 2]
    static let seqLen = 6

    static func input(segments: Bool = true) -> HeadInput {
        var ids = [Int32](repeating: 0, count: 18), mask = [Int32](repeating: 0, count: 18), types = [Int32](repeating: 0, count: 18)
        var r = RNG(seed: 99)
        for (b, n) in lengths.enumerated() {
            for t in 0..<n {
                ids[b * seqLen + t] = Int32(1 + Int(r.uniform() * 11.99))
                mask[b * seqLen + t] = 1
                types[b * seqLen + t] = segments && t >= n / 2 ? 1 : 0
            }
        }
        return HeadInput(inputIds: ids, tokenTypeIds: segments ? types : nil, attentionMask: mask, batch: 3, seqLen: seqLen)
    }

    /// Row `b` of `input` alone, unpadded.
    static func single(_ input: HeadInput, row b: Int) -> HeadInput {
        let n = lengths[b], base = b * input.seqLen
        return HeadInput(inputIds: Array(input.inputIds[base..<(base + n)]),
                         tokenTypeIds: input.tokenTypeIds.map { Array($0[base..<(base + n)]) },
                         attentionMask: [Int32](repeating: 1, count: n), batch: 1, seqLen: n)
    }

    /// Token labels `[B * T]`: -100 on padding and at position 0 of row 0.
    static let tokenLabels: [Int32] = [-100, 2, 0, 1, 2, 1, 0, 0, 2, 1, -100, -100, 1, 2, -100, -100, -100, -100]

    // MARK: Finite differences

    @Test(arguments: [BertForSequenceClassification.Pooling.pooler, .mean])
    func bertSequenceGradients(pooling: BertForSequenceClassification.Pooling) throws {
        let model = try BertForSequenceClassification(config: tinyConfig(.bert), numLabels: 3, pooling: pooling, seed: 1)
        randomize(model.store, seed: 2)
        let input = Self.input(), labels: [Int32] = [2, 0, 1], weights: [Float] = [1, 0.5, 2]
        model.store.zeroGrads()
        let l = try model.loss(input, labels: labels, weights: weights, training: false)
        #expect(l.counted == 3 && l.loss > 0 && l.logits.shape == [3, 3])
        try model.backward(scale: 1)
        let n = try expectGradientsMatch(model.store) {
            Double(try model.loss(input, labels: labels, weights: weights, training: false).loss)
        }
        #expect(n > 300)
        #expect(model.store.contains("pooler.dense.weight") == (pooling == .pooler))
    }

    @Test func bertTokenGradients() throws {
        let model = try BertForTokenClassification(config: tinyConfig(.bert), numLabels: 3, seed: 3)
        randomize(model.store, seed: 4)
        let input = Self.input()
        model.store.zeroGrads()
        let l = try model.loss(input, labels: Self.tokenLabels, training: false)
        #expect(l.counted == 11 && l.logits.shape == [3, 6, 3])
        try model.backward(scale: 1)
        let n = try expectGradientsMatch(model.store) { Double(try model.loss(input, labels: Self.tokenLabels, training: false).loss) }
        #expect(n > 300)
    }

    @Test func bertQuestionAnsweringGradients() throws {
        let model = try BertForQuestionAnswering(config: tinyConfig(.bert), seed: 5)
        randomize(model.store, seed: 6)
        let input = Self.input()
        // Start -1 is clamped to 0 ([CLS]); end 9 is beyond T = 6 and ignored (as HF).
        let start: [Int32] = [1, 2, -1], end: [Int32] = [4, 2, 9]
        model.store.zeroGrads()
        let l = try model.loss(input, startPositions: start, endPositions: end, training: false)
        #expect(l.counted == 2 && l.logits.shape == [3, 6, 2])
        try model.backward(scale: 1)
        let n = try expectGradientsMatch(model.store) {
            Double(try model.loss(input, startPositions: start, endPositions: end, training: false).loss)
        }
        #expect(n > 300)
    }

    @Test func gptSequenceGradients() throws {
        let model = try GPT2ForSequenceClassification(config: tinyConfig(.gpt), numLabels: 3, seed: 7)
        randomize(model.store, seed: 8)
        let input = Self.input(segments: false), labels: [Int32] = [1, 2, 0]
        #expect(model.lastTokenRows(input) == [5, 9, 13])
        model.store.zeroGrads()
        _ = try model.loss(input, labels: labels, weights: [2, 1, 1], training: false)
        try model.backward(scale: 1)
        let n = try expectGradientsMatch(model.store) {
            Double(try model.loss(input, labels: labels, weights: [2, 1, 1], training: false).loss)
        }
        #expect(n > 300)
    }

    @Test func gptTokenGradients() throws {
        let model = try GPT2ForTokenClassification(config: tinyConfig(.gpt), numLabels: 3, classifierDropout: 0, seed: 9)
        randomize(model.store, seed: 10)
        let input = Self.input(segments: false)
        model.store.zeroGrads()
        _ = try model.loss(input, labels: Self.tokenLabels, training: false)
        try model.backward(scale: 1)
        let n = try expectGradientsMatch(model.store) { Double(try model.loss(input, labels: Self.tokenLabels, training: false).loss) }
        #expect(n > 300)
    }

    /// The shared head alone: d(loss)/d(rows) at random coordinates of random rows, with
    /// per-row weights and ignored rows, for several label counts.
    @Test(arguments: [2, 3, 7])
    func classificationHeadInputGradient(labels: Int) throws {
        let store = ParameterStore(seed: 11)
        let head = try ClassificationHead(store, name: "classifier", inFeatures: 5, numLabels: labels, dropout: 0, rng: SharedRNG(seed: 1))
        randomize(store, seed: 12, scale: 0.8)
        var r = RNG(seed: 13)
        let rows = Tensor(shape: [6, 5], values: (0..<30).map { _ in r.normal() })
        let targets: [Int32] = [0, Int32(labels - 1), -100, 1, 0, -100]
        let weights: [Float] = [1, 2, 5, 0.25, 0, 1]
        store.zeroGrads()
        _ = try head.loss(rows, targets: targets, weights: weights, training: false)
        let d = try #require(try head.backward(scale: 1)).array
        let h: Float = 1e-3
        var worst = 0.0
        for _ in 0..<10 {
            let i = Int(r.uniform() * 29.99)
            let saved = rows.data[i]
            rows.data[i] = saved + h
            let lp = Double(try head.loss(rows, targets: targets, weights: weights, training: false).loss)
            rows.data[i] = saved - h
            let lm = Double(try head.loss(rows, targets: targets, weights: weights, training: false).loss)
            rows.data[i] = saved
            worst = max(worst, abs((lp - lm) / Double(2 * h) - Double(d[i])))
        }
        #expect(worst < 2e-3, "worst row-gradient error \(worst)")
        // Ignored rows get no gradient; a zero weight counts for nothing.
        #expect(d[10..<15].allSatisfy { $0 == 0 } && d[20..<25].allSatisfy { $0 == 0 } && d[25..<30].allSatisfy { $0 == 0 })
    }

    /// The weighted loss is `Σ w_i l_i / Σ w_i`; unit weights give the plain mean.
    @Test func weightedCrossEntropy() throws {
        let ce = LabelCrossEntropy()
        let logits = Tensor(shape: [3, 2], values: [0, 1, 2, 0, 0, 0])
        let plain = try ce.forward(logits, targets: [1, 1, 0])
        let l0 = Double(try ce.forward(Tensor(shape: [1, 2], values: [0, 1]), targets: [1]))
        let l1 = Double(try ce.forward(Tensor(shape: [1, 2], values: [2, 0]), targets: [1]))
        let l2 = Double(try ce.forward(Tensor(shape: [1, 2], values: [0, 0]), targets: [0]))
        #expect(abs(Double(plain) - (l0 + l1 + l2) / 3) < 1e-6)
        let weighted = try ce.forward(logits, targets: [1, 1, 0], weights: [1, 3, 0])
        #expect(abs(Double(weighted) - (l0 + 3 * l1) / 4) < 1e-6)
        #expect(ce.countedRows == 3 && ce.correctRows == 2)
        #expect(throws: ModelError.self) { try ce.forward(logits, targets: [1, 2, 0]) }
        #expect(throws: ModelError.self) { try ce.forward(logits, targets: [1, 1, 0], weights: [1, -1, 1]) }
    }

    // MARK: Padding, inference and training paths

    /// A padded batch gives, at real positions, the logits of each example run alone.
    @Test func paddingInvariance() throws {
        let input = Self.input(), gptInput = Self.input(segments: false)
        func close(_ a: [Float], _ b: [Float]) -> Bool { a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) < 2e-5 } }
        let seq = try BertForSequenceClassification(config: tinyConfig(.bert), numLabels: 3, seed: 21)
        let mean = try BertForSequenceClassification(config: tinyConfig(.bert), numLabels: 3, pooling: .mean, seed: 22)
        let tok = try BertForTokenClassification(config: tinyConfig(.bert), numLabels: 3, seed: 23)
        let qa = try BertForQuestionAnswering(config: tinyConfig(.bert), seed: 24)
        let gseq = try GPT2ForSequenceClassification(config: tinyConfig(.gpt), numLabels: 3, seed: 25)
        let gtok = try GPT2ForTokenClassification(config: tinyConfig(.gpt), numLabels: 3, seed: 26)
        for s in [seq.store, mean.store, tok.store, qa.store, gseq.store, gtok.store] { randomize(s, seed: 27) }
        let batched = (seq: try seq.logits(input).array, mean: try mean.logits(input).array, tok: try tok.logits(input).array,
                       qa: try qa.logits(input).array, gseq: try gseq.logits(gptInput).array, gtok: try gtok.logits(gptInput).array)
        for b in 0..<3 {
            let one = Self.single(input, row: b), gOne = Self.single(gptInput, row: b), n = Self.lengths[b], t = Self.seqLen
            #expect(close(Array(batched.seq[(b * 3)..<(b * 3 + 3)]), try seq.logits(one).array))
            #expect(close(Array(batched.mean[(b * 3)..<(b * 3 + 3)]), try mean.logits(one).array))
            #expect(close(Array(batched.gseq[(b * 3)..<(b * 3 + 3)]), try gseq.logits(gOne).array))
            #expect(close(Array(batched.tok[(b * t * 3)..<(b * t * 3 + n * 3)]), try tok.logits(one).array))
            #expect(close(Array(batched.gtok[(b * t * 3)..<(b * t * 3 + n * 3)]), try gtok.logits(gOne).array))
            #expect(close(Array(batched.qa[(b * t * 2)..<(b * t * 2 + n * 2)]), try qa.logits(one).array))
        }
    }

    /// With dropout 0 the inference path's logits equal the training path's; after an
    /// inference call there is nothing to run backward on.
    @Test func inferenceEqualsTrainingWithoutDropout() throws {
        let input = Self.input()
        let seq = try BertForSequenceClassification(config: tinyConfig(.bert), numLabels: 3, seed: 31)
        randomize(seq.store, seed: 32)
        let inferred = try seq.logits(input).array
        #expect(try seq.loss(input, labels: [0, 1, 2], training: true).logits.array == inferred)
        _ = try seq.logits(input)
        #expect(throws: ModelError.self) { try seq.backward(scale: 1) }

        let tok = try BertForTokenClassification(config: tinyConfig(.bert), numLabels: 3, seed: 33)
        randomize(tok.store, seed: 34)
        let t = try tok.logits(input).array
        #expect(try tok.loss(input, labels: Self.tokenLabels, training: true).logits.array == t)
        let qa = try BertForQuestionAnswering(config: tinyConfig(.bert), seed: 35)
        randomize(qa.store, seed: 36)
        let q = try qa.logits(input).array
        #expect(try qa.loss(input, startPositions: [0, 1, 1], endPositions: [2, 3, 1], training: true).logits.array == q)
        _ = try qa.logits(input)
        #expect(throws: ModelError.self) { try qa.backward(scale: 1) }
        let g = try GPT2ForTokenClassification(config: tinyConfig(.gpt), numLabels: 3, classifierDropout: 0, seed: 37)
        randomize(g.store, seed: 38)
        let gi = Self.input(segments: false)
        let gl = try g.logits(gi).array
        #expect(try g.loss(gi, labels: Self.tokenLabels, training: true).logits.array == gl)
        // Mean pooling, and a GPT sequence classifier, the same way.
        let mean = try BertForSequenceClassification(config: tinyConfig(.bert), numLabels: 3, pooling: .mean, seed: 39)
        randomize(mean.store, seed: 40)
        let ml = try mean.logits(input).array
        #expect(try mean.loss(input, labels: [0, 1, 2], training: true).logits.array == ml)
        let gs = try GPT2ForSequenceClassification(config: tinyConfig(.gpt), numLabels: 3, seed: 43)
        randomize(gs.store, seed: 44)
        let gsl = try gs.logits(gi).array
        #expect(try gs.loss(gi, labels: [0, 1, 2], training: true).logits.array == gsl)
        // The encoder's own inference forward keeps nothing: a backward after it is refused.
        let h = try tok.bert.forward(input, training: false, inference: true)
        #expect(h.array == (try tok.bert.forward(input, training: false).array))
        _ = try tok.bert.forward(input, training: false, inference: true)
        #expect(throws: ModelError.self) { try tok.bert.backward(Tensor(shape: h.shape)) }
        #expect(throws: ModelError.self) { try tok.bert.forward(input, training: true, inference: true) }
    }

    /// With dropout, training is stochastic (seeded) and inference is deterministic.
    @Test func dropoutOnlyInTraining() throws {
        var cfg = tinyConfig(.bert)
        cfg.dropout = 0.3
        let model = try BertForSequenceClassification(config: cfg, numLabels: 3, seed: 41)
        randomize(model.store, seed: 42)
        let input = Self.input()
        let a = try model.logits(input).array
        #expect(try model.logits(input).array == a)
        let t1 = try model.loss(input, labels: [0, 1, 2], training: true).logits.array
        let t2 = try model.loss(input, labels: [0, 1, 2], training: true).logits.array
        #expect(t1 != a && t1 != t2)
    }

    @Test func labelValidation() throws {
        let model = try BertForTokenClassification(config: tinyConfig(.bert), numLabels: 3, seed: 43)
        let input = Self.input()
        #expect(throws: ModelError.self) { try model.loss(input, labels: [1, 2], training: false) }
        var bad = Self.tokenLabels; bad[1] = 3
        #expect(throws: ModelError.self) { try model.loss(input, labels: bad, training: false) }
        var badIds = input; badIds.inputIds[0] = 13
        #expect(throws: ModelError.self) { try model.logits(badIds) }
        // Nothing labelled: loss 0, backward a no-op.
        model.store.zeroGrads()
        let l = try model.loss(input, labels: [Int32](repeating: -100, count: 18), training: true)
        #expect(l.loss == 0 && l.counted == 0)
        try model.backward(scale: 1)
        #expect(model.store.gradNorm() == 0)
        #expect(throws: ModelError.self) { try BertForSequenceClassification(config: tinyConfig(.gpt), numLabels: 3, seed: 1) }
    }

    // MARK: Parameter groups

    @Test func parameterSections() throws {
        let bert = try BertForSequenceClassification(config: tinyConfig(.bert), numLabels: 3, seed: 51)
        #expect(bert.parameterSections.map(\.name) == ["embeddings", "layer.0", "layer.1", "pooler", "head"])
        #expect(bert.parameterSections.last!.parameters.map(\.name) == ["classifier.weight", "classifier.bias"])
        let gpt = try GPT2ForSequenceClassification(config: tinyConfig(.gpt), numLabels: 3, seed: 52)
        #expect(gpt.parameterSections.map(\.name) == ["embeddings", "layer.0", "layer.1", "final_norm", "head"])
        #expect(gpt.hfName("score.weight") == "score.weight" && gpt.hfName("h.0.ln_1.weight") == "transformer.h.0.ln_1.weight")
        #expect(bert.hfName("pooler.dense.bias") == "bert.pooler.dense.bias")
        for model in [bert, gpt] as [any TaskHeadModel] {
            let groups = model.parameterSections
            // Ranges are disjoint, in order, and cover every parameter.
            #expect(zip(groups, groups.dropFirst()).allSatisfy { $0.range.upperBound <= $1.range.lowerBound })
            #expect(groups.reduce(0) { $0 + $1.parameters.count } == model.store.parameters.count)
            #expect(groups.last!.range.upperBound == model.store.count)
            #expect(model.frozenSections(encoder: true).map(\.name) == groups.dropLast().map(\.name))
            #expect(model.frozenSections(encoder: false, lowerLayers: 1).map(\.name) == ["embeddings", "layer.0"])
            #expect(model.frozenSections(encoder: false).isEmpty)
        }
    }

    /// Frozen groups keep their bytes through AdamW steps (weight decay included); the rest trains.
    @Test(arguments: [(true, 0), (false, 1)])
    func frozenGroupsStayUnchanged(encoder: Bool, lowerLayers: Int) throws {
        let model = try BertForSequenceClassification(config: tinyConfig(.bert), numLabels: 3, seed: 61)
        randomize(model.store, seed: 62)
        let frozen = model.frozenSections(encoder: encoder, lowerLayers: lowerLayers)
        let trained = model.parameterSections.filter { g in !frozen.contains { $0.name == g.name } }
        #expect(!frozen.isEmpty && trained.contains { $0.name == "head" })
        func bytes(_ g: ParameterSection) -> [UInt32] {
            Array(UnsafeBufferPointer(start: model.store.values + g.range.lowerBound, count: g.range.count)).map(\.bitPattern)
        }
        let before = frozen.map(bytes), trainedBefore = trained.map(bytes)
        let frozenNames = Set(frozen.flatMap { $0.parameters.map(\.name) })
        let optimizer = AdamW(model.store, weightDecay: 0.1, groups: { frozenNames.contains($0.name) ? .frozen : .standard })
        for _ in 0..<3 {
            model.store.zeroGrads()
            _ = try model.loss(Self.input(), labels: [0, 1, 2], training: true)
            try model.backward(scale: 1)
            try optimizer.step(model.store, lr: 1e-2)
        }
        #expect(optimizer.stepCount == 3)
        #expect(frozen.map(bytes) == before)
        for (g, b) in zip(trained, trainedBefore) { #expect(bytes(g) != b, "group \(g.name) did not train") }
    }

    /// Backward without the frozen bottom stages (`skipBackward(frozenBottomStages:)`): the other
    /// sections get the same gradient bits as a full backward's, the skipped ones none — BERT and
    /// GPT-2 sequence classifiers, 0 (full), 1 (embeddings), 2 (and layer 0), 3 (the whole backbone).
    @Test(arguments: [0, 1, 2, 3])
    func backwardSkipsTheFrozenBottomStages(stop: Int) throws {
        let pairs: [(any TaskHeadModel, any TaskHeadModel, HeadInput)] = [
            (try BertForSequenceClassification(config: tinyConfig(.bert), numLabels: 3, seed: 71),
             try BertForSequenceClassification(config: tinyConfig(.bert), numLabels: 3, seed: 71), Self.input()),
            (try GPT2ForSequenceClassification(config: tinyConfig(.gpt), numLabels: 3, seed: 72),
             try GPT2ForSequenceClassification(config: tinyConfig(.gpt), numLabels: 3, seed: 72), Self.input(segments: false)),
        ]
        for (full, stopped, input) in pairs {
            randomize(full.store, seed: 73); randomize(stopped.store, seed: 73)
            stopped.skipBackward(frozenBottomStages: stop)
            for model in [full, stopped] {
                model.store.zeroGrads()
                switch model {
                case let m as BertForSequenceClassification: _ = try m.loss(input, labels: [0, 1, 2], training: true)
                case let m as GPT2ForSequenceClassification: _ = try m.loss(input, labels: [0, 1, 2], training: true)
                default: Issue.record("unexpected model")
                }
                try model.backward(scale: 1)
            }
            func grads(_ m: any TaskHeadModel, _ g: ParameterSection) -> [UInt32] {
                Array(UnsafeBufferPointer(start: m.store.grads + g.range.lowerBound, count: g.range.count)).map(\.bitPattern)
            }
            for section in full.parameterSections {
                let layer = section.name.hasPrefix("layer.") ? Int(section.name.dropFirst(6))! : nil
                let frozen = section.name == "embeddings" ? stop > 0 : layer.map { $0 + 1 < stop } ?? false
                let g = grads(stopped, section)
                if frozen {
                    #expect(g.allSatisfy { $0 == 0 }, "\(section.name), skipped with \(stop) stages, got a gradient")
                } else {
                    #expect(g == grads(full, section), "\(section.name) with \(stop) stages skipped")
                    #expect(g.contains { $0 != 0 }, "\(section.name) got no gradient")
                }
            }
        }
    }

    // MARK: HuggingFace parity

    static func fixture(_ name: String) throws -> (config: ModelConfig, weights: SafeTensors, reference: SafeTensors) {
        let dir = try #require(Bundle.module.url(forResource: "Fixtures/heads/\(name)", withExtension: nil))
        return (try ModelDirectory.config(dir.path),
                try SafeTensors(contentsOf: dir.appendingPathComponent("model.safetensors")),
                try SafeTensors(contentsOf: dir.appendingPathComponent("reference.safetensors")))
    }

    static func ints(_ f: SafeTensors, _ name: String) throws -> [Int32] { try f.int64s(name).map { Int32($0) } }

    static func referenceInput(_ ref: SafeTensors) throws -> HeadInput {
        let shape = try ref.info("input_ids").shape
        return HeadInput(inputIds: try ints(ref, "input_ids"),
                         tokenTypeIds: ref.names.contains("token_type_ids") ? try ints(ref, "token_type_ids") : nil,
                         attentionMask: try ints(ref, "attention_mask"), batch: shape[0], seqLen: shape[1])
    }

    static func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "\(a.count) vs \(b.count) values")
        return zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    /// Logits (1e-4), loss (1e-5) and the recorded gradients (1e-4 relative to the largest) of
    /// a model loaded by name from the fixture; returns the three differences.
    @discardableResult
    static func expectParity(_ model: any TaskHeadModel, _ ref: SafeTensors, logits: [Float], loss: Float,
                             sourceLocation: SourceLocation = #_sourceLocation) throws -> (Float, Float, Float) {
        let dLogits = maxDifference(logits, try ref.floats("logits"))
        let dLoss = abs(loss - (try ref.floats("loss")[0]))
        var dGrad: Float = 0
        for name in ref.names where name.hasPrefix("grad.") {
            let p = try model.store.parameter(named: String(name.dropFirst(5)))
            let expected = try ref.floats(name)
            let got = Array(UnsafeBufferPointer(start: model.store.grad(p), count: p.count))
            let scale = max(expected.map(abs).max() ?? 1, 1e-3)
            dGrad = max(dGrad, maxDifference(got, expected) / scale)
        }
        #expect(dLogits <= 1e-4, "logits differ by \(dLogits)", sourceLocation: sourceLocation)
        #expect(dLoss <= 1e-5, "loss differs by \(dLoss)", sourceLocation: sourceLocation)
        #expect(dGrad <= 1e-4, "gradients differ by \(dGrad) (relative)", sourceLocation: sourceLocation)
        print("HF parity \(type(of: model)): logits \(dLogits), loss \(dLoss), gradients \(dGrad) relative")
        return (dLogits, dLoss, dGrad)
    }

    @Test func hfBertSequenceClassification() throws {
        let (config, weights, ref) = try Self.fixture("bert_sequence")
        let model = try BertForSequenceClassification(config: config, numLabels: 3, seed: 0)
        try model.load(weights)
        let input = try Self.referenceInput(ref)
        #expect(try Self.maxDifference(model.logits(input).array, ref.floats("logits")) <= 1e-4)
        model.store.zeroGrads()
        let l = try model.loss(input, labels: Self.ints(ref, "labels"), training: true)
        let logits = l.logits.array
        try model.backward(scale: 1)
        try Self.expectParity(model, ref, logits: logits, loss: l.loss)
    }

    @Test func hfBertTokenClassification() throws {
        let (config, weights, ref) = try Self.fixture("bert_token")
        let model = try BertForTokenClassification(config: config, numLabels: 3, seed: 0)
        try model.load(weights)
        let input = try Self.referenceInput(ref)
        model.store.zeroGrads()
        let l = try model.loss(input, labels: Self.ints(ref, "labels"), training: true)
        let logits = l.logits.array
        try model.backward(scale: 1)
        try Self.expectParity(model, ref, logits: logits, loss: l.loss)
    }

    @Test func hfBertQuestionAnswering() throws {
        let (config, weights, ref) = try Self.fixture("bert_qa")
        let model = try BertForQuestionAnswering(config: config, seed: 0)
        try model.load(weights)
        let input = try Self.referenceInput(ref)
        model.store.zeroGrads()
        let l = try model.loss(input, startPositions: Self.ints(ref, "start_positions"), endPositions: Self.ints(ref, "end_positions"),
                               training: true)
        let z = l.logits.array
        let start = stride(from: 0, to: z.count, by: 2).map { z[$0] }, end = stride(from: 1, to: z.count, by: 2).map { z[$0] }
        try model.backward(scale: 1)
        #expect(try Self.maxDifference(end, ref.floats("end_logits")) <= 1e-4)
        // `expectParity` compares "logits": here the start logits (the end logits just above).
        let dStart = Self.maxDifference(start, try ref.floats("start_logits"))
        #expect(dStart <= 1e-4, "start logits differ by \(dStart)")
        let dLoss = abs(l.loss - (try ref.floats("loss")[0]))
        #expect(dLoss <= 1e-5, "loss differs by \(dLoss)")
        for name in ref.names where name.hasPrefix("grad.") {
            let p = try model.store.parameter(named: String(name.dropFirst(5)))
            let expected = try ref.floats(name)
            let got = Array(UnsafeBufferPointer(start: model.store.grad(p), count: p.count))
            let d = Self.maxDifference(got, expected) / max(expected.map(abs).max() ?? 1, 1e-3)
            #expect(d <= 1e-4, "\(name) differs by \(d) (relative)")
        }
        print("HF parity BertForQuestionAnswering: start logits \(dStart), loss \(dLoss)")
    }

    @Test func hfGPT2SequenceClassification() throws {
        let (config, weights, ref) = try Self.fixture("gpt2_sequence")
        let model = try GPT2ForSequenceClassification(config: config, numLabels: 3, seed: 0)
        try model.load(weights)
        let input = try Self.referenceInput(ref)
        // HF finds the last token from the pad id; the mask says the same here.
        var noMask = input; noMask.attentionMask = nil
        #expect(model.lastTokenRows(noMask) == model.lastTokenRows(input))
        model.store.zeroGrads()
        let l = try model.loss(input, labels: Self.ints(ref, "labels"), training: true)
        let logits = l.logits.array
        try model.backward(scale: 1)
        try Self.expectParity(model, ref, logits: logits, loss: l.loss)
    }

    @Test func hfGPT2TokenClassification() throws {
        let (config, weights, ref) = try Self.fixture("gpt2_token")
        let model = try GPT2ForTokenClassification(config: config, numLabels: 3, classifierDropout: 0, seed: 0)
        try model.load(weights)
        let input = try Self.referenceInput(ref)
        model.store.zeroGrads()
        let l = try model.loss(input, labels: Self.ints(ref, "labels"), training: true)
        let logits = l.logits.array
        try model.backward(scale: 1)
        try Self.expectParity(model, ref, logits: logits, loss: l.loss)
    }

    /// Every parameter's HF name is a tensor of the transformers checkpoint and vice versa
    /// (buffers aside), so an export by ``TaskHeadModel/hfName(_:)`` writes what transformers loads.
    @Test(arguments: ["bert_sequence", "bert_token", "bert_qa", "gpt2_sequence", "gpt2_token"])
    func hfNamesMatchTheCheckpoint(fixture: String) throws {
        let (config, weights, _) = try Self.fixture(fixture)
        let model: any TaskHeadModel
        switch fixture {
        case "bert_sequence": model = try BertForSequenceClassification(config: config, numLabels: 3, seed: 0)
        case "bert_token": model = try BertForTokenClassification(config: config, numLabels: 3, seed: 0)
        case "bert_qa": model = try BertForQuestionAnswering(config: config, seed: 0)
        case "gpt2_sequence": model = try GPT2ForSequenceClassification(config: config, numLabels: 3, seed: 0)
        default: model = try GPT2ForTokenClassification(config: config, numLabels: 3, seed: 0)
        }
        let ours = Set(model.store.parameters.map { model.hfName($0.name) })
        let theirs = Set(weights.names.filter { !$0.hasSuffix("position_ids") && !$0.hasSuffix(".attn.bias") && !$0.hasSuffix(".attn.masked_bias") })
        #expect(ours == theirs, "only ours: \(ours.subtracting(theirs)), only theirs: \(theirs.subtracting(ours))")
    }

    /// A checkpoint missing the head's tensors is refused, naming the file.
    @Test func loadRefusesMissingHead() throws {
        let (config, weights, _) = try Self.fixture("bert_token")
        let qa = try BertForQuestionAnswering(config: config, seed: 0)
        #expect(throws: ModelError.self) { try qa.load(weights) }
    }
}
