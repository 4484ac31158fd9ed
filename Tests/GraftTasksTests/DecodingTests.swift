import Foundation
import GraftTokenizers
import GraftSupport
import Testing
@testable import GraftTasks

@Suite struct SchemeTests {
    @Test func labelSetExpansion() throws {
        let iob2 = try LabelSet.tagging(entityTypes: ["PER", "LOC"], scheme: .iob2)
        #expect(iob2.labels == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
        #expect(iob2.id(of: "I-PER") == 2 && iob2.label2id["B-LOC"] == 3 && iob2.id2label[4] == "I-LOC")
        #expect(iob2.entityTypes == ["PER", "LOC"])
        let bioes = try LabelSet.tagging(entityTypes: ["X"], scheme: .bioes)
        #expect(bioes.labels == ["O", "B-X", "I-X", "E-X", "S-X"])
        #expect(throws: TaskError.self) { try LabelSet(["a", "a"]) }
    }

    @Test func tagsSpansRoundTrip() throws {
        var rng = TestRNG(7)
        for scheme in TagScheme.allCases {
            for _ in 0..<300 {
                let n = Int.random(in: 0...12, using: &rng)
                var spans: [TokenSpan] = [], i = 0
                while i < n {
                    if Bool.random(using: &rng) { i += 1; continue }
                    let len = min(Int.random(in: 1...3, using: &rng), n - i)
                    spans.append(TokenSpan(start: i, end: i + len, type: ["PER", "LOC", "geo-loc"].randomElement(using: &rng)!))
                    i += len
                }
                let tags = try scheme.tags(for: spans, count: n)
                #expect(scheme.firstViolation(tags) == nil)
                #expect(try scheme.strictSpans(tags) == spans)
                #expect(scheme.lenientSpans(tags) == spans)
                // Character spans through offsets of words joined by spaces.
                let words = (0..<n).map { "w\($0)é" }
                let sentence = try TaggedSentence(id: "t", words: words, tags: tags, scheme: scheme)
                let chars = SpanConversion.characterSpans(spans, tokenOffsets: sentence.wordOffsets)
                #expect(sentence.entities == chars)
                #expect(try SpanConversion.tokenSpans(chars, tokenOffsets: sentence.wordOffsets) == spans)
                for (c, s) in zip(chars, spans) {
                    #expect(scalarSlice(sentence.text, c.start..<c.end) == words[s.start..<s.end].joined(separator: " "))
                }
            }
        }
    }

    @Test func violationsAndRepair() throws {
        #expect(TagScheme.iob2.firstViolation(["O", "I-PER"])?.index == 1)
        #expect(TagScheme.iob2.firstViolation(["B-PER", "I-LOC"])?.index == 1)
        #expect(TagScheme.iob2.firstViolation(["I-PER"])?.index == 0)
        #expect(TagScheme.bioes.firstViolation(["B-PER", "I-PER"])?.index == 1)
        #expect(try TagScheme.iob2.repaired(["O", "I-PER", "I-PER", "I-LOC"]) == ["O", "B-PER", "I-PER", "B-LOC"])
        #expect(try TagScheme.bioes.repaired(["B-PER", "I-PER", "O", "I-X"]) == ["B-PER", "E-PER", "O", "S-X"])
        let offsets = [0..<3, 4..<9]
        #expect(throws: TaskError.self) {
            try SpanConversion.tokenSpans([CharacterSpan(start: 1, end: 9, type: "X")], tokenOffsets: offsets)
        }
    }
}

/// All tag sequences of length `t` over `l` labels.
private func allSequences(_ t: Int, _ l: Int) -> [[Int]] {
    var out: [[Int]] = [[]]
    for _ in 0..<t { out = out.flatMap { p in (0..<l).map { p + [$0] } } }
    return out
}

@Suite struct ViterbiTests {
    @Test func neverEmitsInvalidSequences() throws {
        var rng = TestRNG(11)
        for scheme in TagScheme.allCases {
            let labels = try LabelSet.tagging(entityTypes: ["PER", "LOC", "ORG"], scheme: scheme)
            let decoder = try ViterbiDecoder(labels: labels, scheme: scheme)
            for _ in 0..<500 {
                let t = Int.random(in: 1...30, using: &rng)
                // Peaked random scores that often favour invalid tags (e.g. I- everywhere).
                let logits = (0..<(t * labels.count)).map { _ in Float.random(in: -6...6, using: &rng) }
                let logProbs = logSoftmax(logits, labels.count)
                let path = try decoder.decode(logProbs, count: t).tags.map { labels.label($0) }
                #expect(scheme.firstViolation(path) == nil, "\(path)")
            }
        }
    }

    @Test func equalsBruteForce() throws {
        var rng = TestRNG(12)
        for scheme in TagScheme.allCases {
            let labels = try LabelSet.tagging(entityTypes: scheme == .iob2 ? ["A", "B"] : ["A"], scheme: scheme)
            let decoder = try ViterbiDecoder(labels: labels, scheme: scheme)
            let l = labels.count
            for t in 1...5 {
                let sequences = allSequences(t, l).filter { scheme.firstViolation($0.map { labels.label($0) }) == nil }
                for _ in 0..<40 {
                    let lp = logSoftmax((0..<(t * l)).map { _ in Float.random(in: -4...4, using: &rng) }, l)
                    func score(_ s: [Int]) -> Double { s.enumerated().reduce(0) { $0 + Double(lp[$1.offset * l + $1.element]) } }
                    let best = sequences.max { score($0) < score($1) }!
                    let got = try decoder.decode(lp, count: t)
                    #expect(got.tags == best)
                    #expect(abs(got.score - score(best)) < 1e-9)
                }
            }
        }
    }

    /// Greedy decoding keeps exactly the entities seqeval's strict mode reads from the argmax tags
    /// (what transformers' argmax predictions score as), in a valid sequence.
    @Test func greedyKeepsTheStrictEntitiesOfTheArgmaxTags() throws {
        var rng = TestRNG(13)
        for scheme in TagScheme.allCases {
            let labels = try LabelSet.tagging(entityTypes: ["PER", "LOC"], scheme: scheme)
            let decoder = try ViterbiDecoder(labels: labels, scheme: scheme)
            let l = labels.count
            for _ in 0..<300 {
                let t = Int.random(in: 1...20, using: &rng)
                let lp = logSoftmax((0..<(t * l)).map { _ in Float.random(in: -6...6, using: &rng) }, l)
                let argmax = (0..<t).map { i in (0..<l).max { lp[i * l + $0] < lp[i * l + $1] }! }.map { labels.label($0) }
                let tags = try decoder.greedy(lp, count: t).map { labels.label($0) }
                #expect(scheme.firstViolation(tags) == nil, "\(tags)")
                #expect(try scheme.strictSpans(tags) == scheme.strictSpans(argmax))
            }
        }
        // O I-PER I-PER B-LOC: the I-PER run starts no entity in strict IOB2; Viterbi makes one of it.
        let labels = try LabelSet.tagging(entityTypes: ["PER", "LOC"], scheme: .iob2)
        let decoder = try ViterbiDecoder(labels: labels, scheme: .iob2)
        let names = labels.labels
        let want = ["O", "I-PER", "I-PER", "B-LOC"]
        var lp = [Float](repeating: Float(log(0.05)), count: want.count * names.count)
        for (w, tag) in want.enumerated() { lp[w * names.count + names.firstIndex(of: tag)!] = Float(log(0.6)) }
        lp[1 * names.count + names.firstIndex(of: "B-PER")!] = Float(log(0.3))
        #expect(try decoder.greedy(lp, count: 4).map { labels.label($0) } == ["O", "O", "O", "B-LOC"])
        #expect(try decoder.decode(lp, count: 4).tags.map { labels.label($0) } == ["O", "B-PER", "I-PER", "B-LOC"])
    }

    @Test func entitiesAreCharacterSpansWithMeanProbability() throws {
        let labels = try LabelSet.tagging(entityTypes: ["PER", "LOC"], scheme: .iob2)
        let decoder = try ViterbiDecoder(labels: labels, scheme: .iob2)
        let text = "Zoë Ångström visited Paris ."
        let words = TaggedSentence.whitespaceWords(text)
        // Word 0: B-PER 0.9; word 1: I-PER 0.6 (else O); word 2: O; word 3: B-LOC; word 4: O.
        let want = [(1, 0.9), (2, 0.6), (0, 0.8), (3, 0.7), (0, 0.99)]
        var lp = [Float](repeating: 0, count: words.count * labels.count)
        for (w, (tag, p)) in want.enumerated() {
            for k in 0..<labels.count { lp[w * labels.count + k] = Float(log(k == tag ? p : (1 - p) / Double(labels.count - 1))) }
        }
        let entities = try decoder.entities(lp, wordOffsets: words, text: text)
        #expect(entities.map(\.text) == ["Zoë Ångström", "Paris"])
        #expect(entities.map(\.type) == ["PER", "LOC"])
        #expect(entities[0].start == 0 && entities[0].end == 12)
        #expect(abs(entities[0].score - 0.75) < 1e-6)
        #expect(abs(entities[1].score - 0.7) < 1e-6)
    }
}

func logSoftmax(_ x: [Float], _ l: Int) -> [Float] {
    var out = x
    for r in 0..<(x.count / l) {
        let row = x[(r * l)..<((r + 1) * l)]
        let m = row.max()!
        let lse = m + Float(log(row.reduce(0.0) { $0 + exp(Double($1 - m)) }))
        for k in 0..<l { out[r * l + k] = x[r * l + k] - lse }
    }
    return out
}

@Suite struct AnswerSearchTests {
    @Test func equalsBruteForce() throws {
        var rng = TestRNG(21)
        let context = "Der Fluss fließt durch München und Köln, dann weiter zur Nordsee."
        let example = QuestionExample(id: "q", question: "Wohin fließt der Fluss?", context: context, answers: [])
        for maxLength in [24, 32, 48] {
            let features = try FeatureBuilder.questionAnswering(example, index: 0, tokenizer: bertTokenizer,
                                                                options: WindowOptions(maxLength: maxLength, stride: 4))
            for _ in 0..<30 {
                let starts = features.map { f in (0..<f.window.count).map { _ in Float.random(in: -5...5, using: &rng) } }
                let ends = features.map { f in (0..<f.window.count).map { _ in Float.random(in: -5...5, using: &rng) } }
                let maxAnswer = Int.random(in: 1...6, using: &rng)
                let got = try AnswerSearch.nBest(features: features, startLogits: starts, endLogits: ends, context: context,
                                                 n: 5, maxAnswerLength: maxAnswer)
                // Brute force: every pair of positions in every window.
                var best: (Double, Range<Int>)?
                for (w, f) in features.enumerated() {
                    for i in 0..<f.window.count {
                        for j in 0..<f.window.count {
                            guard f.contextMask[i], f.contextMask[j], j >= i, j - i + 1 <= maxAnswer else { continue }
                            let s = Double(starts[w][i]) + Double(ends[w][j])
                            if best == nil || s > best!.0 { best = (s, f.window.offsets[i].lowerBound..<f.window.offsets[j].upperBound) }
                        }
                    }
                }
                #expect(got.first?.score == best?.0)
                #expect(got.first.map { $0.start..<$0.end } == best?.1)
                #expect(got.first?.text == best.map { scalarSlice(context, $0.1) })
                #expect(zip(got, got.dropFirst()).allSatisfy { $0.score >= $1.score })
                for c in got {
                    #expect(c.endToken >= c.startToken && c.endToken - c.startToken < maxAnswer)
                    #expect(features[c.window].contextMask[c.startToken] && features[c.window].contextMask[c.endToken])
                }
            }
        }
    }
}

@Suite struct ClassificationWindowTests {
    @Test func longDocumentsAreWindowedAndAveraged() throws {
        let text = Array(repeating: "a remarkably long and winding review of a film", count: 12).joined(separator: " ")
        let windows = try FeatureBuilder.textClassification(TextExample(id: "d", text: text, label: nil), index: 0,
                                                            tokenizer: bertTokenizer, options: WindowOptions(maxLength: 32, stride: 8))
        #expect(windows.count > 2)
        #expect(windows.allSatisfy { $0.count <= 32 })
        let p = try ClassificationDecoder.average([[0.2, 0.8], [0.6, 0.4]], labelCount: 2)
        #expect(abs(p[0] - 0.4) < 1e-15 && abs(p[1] - 0.6) < 1e-15)
        #expect(ClassificationDecoder.decide(p, labels: try LabelSet(["neg", "pos"])).label == "pos")
    }
}
