import Foundation
import GraftTokenizers
import GraftSupport
import Testing
@testable import GraftTasks

@Suite struct AlignmentTests {
    let labels = try! LabelSet.tagging(entityTypes: ["PER", "LOC"], scheme: .iob2)

    @Test func firstSubwordCarriesTheLabel() throws {
        let sentence = try TaggedSentence(id: "s", words: ["Zoë", "Ångström", "visited", "Wolfeschlegelsteinhausen", "."],
                                          tags: ["B-PER", "I-PER", "O", "B-LOC", "O"], scheme: .iob2)
        let features = try FeatureBuilder.tokenClassification(sentence, example: 0, tokenizer: bertTokenizer, labels: labels,
                                                              options: WindowOptions(maxLength: 128))
        #expect(features.count == 1)
        let f = features[0]
        let l = f.labels!
        #expect(l.first == ignoreIndex && l.last == ignoreIndex)  // [CLS], [SEP]
        var seen = Set<Int>()
        for i in 0..<f.window.count {
            if let w = f.words[i], seen.insert(w).inserted {
                #expect(l[i] == labels.id(of: sentence.tags![w]))
            } else {
                #expect(l[i] == ignoreIndex)
            }
        }
        #expect(seen == Set(0..<5))
        // Every word is split into more than one piece somewhere, so continuations exist.
        #expect(l.filter { $0 == ignoreIndex }.count > 2)
    }

    /// A word the tokenizer splits at punctuation is labelled on the first subword of each of
    /// the tokenizer's words in it, continuing the word's entity: `graft tag` reads raw text by
    /// those words, and trained on the first piece alone it cut "co-codamol" into "co" and
    /// "codamol". Checked by hand against the BERT pre-tokenizer's pieces.
    @Test func wordsSplitAtPunctuationLabelEachPiece() throws {
        let words = ["She", "took", "co-codamol", "in", "the", "U.S.", "."]
        // The labels of the tokens that start a tokenizer word, in order ("." is one each time).
        let cases: [(TagScheme, [String], [String])] = [
            (.iob2, ["O", "O", "B-DRUG", "O", "O", "B-LOC", "O"],
             ["O", "O", "B-DRUG", "I-DRUG", "I-DRUG", "O", "O", "B-LOC", "I-LOC", "I-LOC", "I-LOC", "O"]),
            (.bioes, ["O", "O", "S-DRUG", "O", "O", "S-LOC", "O"],
             ["O", "O", "B-DRUG", "I-DRUG", "E-DRUG", "O", "O", "B-LOC", "I-LOC", "I-LOC", "E-LOC", "O"]),
            (.iob2, ["O", "O", "I-DRUG", "O", "O", "I-LOC", "O"],
             ["O", "O", "I-DRUG", "I-DRUG", "I-DRUG", "O", "O", "I-LOC", "I-LOC", "I-LOC", "I-LOC", "O"]),
            (.bioes, ["O", "O", "B-DRUG", "E-DRUG", "O", "O", "O"],
             ["O", "O", "B-DRUG", "I-DRUG", "I-DRUG", "E-DRUG", "O", "O", "O", "O", "O", "O"]),
        ]
        for (scheme, tags, expected) in cases {
            let labels = try LabelSet.tagging(entityTypes: ["DRUG", "LOC"], scheme: scheme)
            let sentence = try TaggedSentence(id: "s", words: words, tags: tags, scheme: scheme)
            let f = try #require(try FeatureBuilder.tokenClassification(sentence, example: 0, tokenizer: bertTokenizer, labels: labels,
                                                                        scheme: scheme, options: WindowOptions(maxLength: 128)).first)
            var starts: [String] = []
            for i in 0..<f.window.count where f.window.specialTokensMask[i] == 0 {
                let startsWord = i == 0 || f.window.wordIds[i] != f.window.wordIds[i - 1]
                if startsWord { starts.append(labels.label(f.labels![i])) } else { #expect(f.labels![i] == ignoreIndex) }
            }
            #expect(starts == expected, "\(scheme) \(tags)")
        }
        #expect(TagScheme.bioes.pieceTag("S-X", piece: 0, of: 1) == "S-X")
        #expect(TagScheme.bioes.pieceTag("E-X", piece: 0, of: 2) == "I-X")
    }

    @Test func windowsCoverLongDocumentsAndMergeByOffsets() throws {
        var rng = TestRNG(5)
        let vocabulary = ["Paris", "is", "lovely", "in", "spring", "Anne-Sophie", "visited", "Köln", "yesterday", "."]
        let words = (0..<180).map { _ in vocabulary.randomElement(using: &rng)! }
        let tags = words.map { ["Paris", "Köln"].contains($0) ? "B-LOC" : $0 == "Anne-Sophie" ? "B-PER" : "O" }
        let sentence = try TaggedSentence(id: "long", words: words, tags: tags, scheme: .iob2)
        let features = try FeatureBuilder.tokenClassification(sentence, example: 0, tokenizer: bertTokenizer, labels: labels,
                                                              options: WindowOptions(maxLength: 40, stride: 10))
        #expect(features.count > 4)
        #expect(features.allSatisfy { $0.window.count <= 40 })
        // Fake logits: each window predicts the gold tag of each token's word, plus a window-
        // dependent offset on one label so we can see which window each word was read from.
        let l = labels.count
        var rows: [[Float]] = []
        for (w, f) in features.enumerated() {
            var r = [Float](repeating: -5, count: f.window.count * l)
            for i in 0..<f.window.count {
                if let word = f.words[i] { r[i * l + labels.id(of: tags[word])!] = 5 }
                r[i * l] += Float(w) * 1e-3
            }
            rows.append(r)
        }
        let merged = try WindowMerge.wordRows(windows: features.map(\.window), wordIndices: features.map(\.words), rows: rows,
                                              labelCount: l, wordCount: words.count)
        #expect(merged.source.allSatisfy { $0 != nil })
        for (w, source) in merged.source.enumerated() {
            let (win, pos) = source!
            let window = features[win].window
            // It is the word's first token, read where it is most central.
            #expect(features[win].words[pos] == w)
            #expect(window.offsets[pos].lowerBound == sentence.wordOffsets[w].lowerBound)
            let content = (0..<window.count).filter { window.specialTokensMask[$0] == 0 }
            let centrality = min(pos - content.first!, content.last! - pos)
            for (other, f) in features.enumerated() where other != win {
                let c = (0..<f.window.count).filter { f.window.specialTokensMask[$0] == 0 }
                if let p = c.first(where: { f.words[$0] == w && f.window.offsets[$0].lowerBound == sentence.wordOffsets[w].lowerBound }) {
                    #expect(min(p - c.first!, c.last! - p) <= centrality)
                }
            }
        }
        // Decoding the merged rows recovers the gold entities exactly.
        let plugin = try TaggingPlugin(spec: try TaskSpec.parse("""
            name = "t"
            kind = "ner"
            labels = ["PER", "LOC"]
            [model]
            max_length = 40
            stride = 10
            """, path: "/tmp/t.toml"))
        let outputs = zip(features, rows).map { HeadOutput.tokens(logits: $1, count: $0.window.count) }
        let taskFeatures = try plugin.features(sentence, index: 0, tokenizer: bertTokenizer)
        let prediction = try plugin.decode(sentence, features: taskFeatures, outputs: outputs)
        #expect(prediction.tags == tags)
        #expect(prediction.entities.map { CharacterSpan(start: $0.start, end: $0.end, type: $0.type) } == sentence.entities)
        #expect(prediction.entities.allSatisfy { scalarSlice(sentence.text, $0.start..<$0.end) == $0.text })
    }

    @Test func tokenLevelMergeMatchesTheUnwindowedEncoding() throws {
        let text = Array(repeating: "Ångström's café-au-lait (1887) was remarkably unforgettable", count: 8).joined(separator: " ")
        let windows = try Windowing.windows(of: text, example: 0, tokenizer: bertTokenizer, options: WindowOptions(maxLength: 20, stride: 6))
        #expect(windows.count > 3)
        // Each window scores a token by its position and window index, so we can check where it came from.
        let rows = windows.enumerated().map { w, win in (0..<win.count).flatMap { [Float(w), Float($0)] } }
        let merged = try WindowMerge.tokenRows(windows: windows, rows: rows, labelCount: 2)
        let whole = try bertTokenizer.encode(text, addSpecialTokens: false)
        #expect(merged.offsets == whole.offsets)
        for t in 0..<merged.offsets.count {
            let w = Int(merged.rows[2 * t]), p = Int(merged.rows[2 * t + 1])
            let win = windows[w]
            #expect(win.offsets[p] == merged.offsets[t])
            let content = (0..<win.count).filter { win.specialTokensMask[$0] == 0 }
            let c = min(p - content.first!, content.last! - p)
            for other in windows {
                let oc = (0..<other.count).filter { other.specialTokensMask[$0] == 0 }
                if let q = oc.first(where: { other.offsets[$0] == merged.offsets[t] }) { #expect(min(q - oc.first!, oc.last! - q) <= c) }
            }
        }
    }

    @Test func rawDocumentsUseTheTokenizersWords() throws {
        let plugin = try TaggingPlugin(spec: try TaskSpec.parse("name = \"t\"\nkind = \"ner\"\nlabels = [\"PER\"]\n", path: "/tmp/t.toml"))
        let text = "Hello, Zoë!  Bye."
        let doc = try plugin.document(text, id: "doc", tokenizer: bertTokenizer)
        #expect(doc.words == ["Hello", ",", "Zoë", "!", "Bye", "."])
        #expect(zip(doc.words, doc.wordOffsets).allSatisfy { scalarSlice(text, $1) == $0 })
        #expect(throws: TaskError.self) { try plugin.document("", id: "empty", tokenizer: bertTokenizer) }
    }

    /// An accent-stripping tokenizer ends "Jose\u{301}"'s token before the combining mark, and a
    /// byte-level one starts " London" at the space: a raw document's words are whole
    /// characters without the whitespace, and only-whitespace words are dropped.
    @Test func rawDocumentWordsAreWholeCharactersWithoutSpaces() throws {
        let plugin = try TaggingPlugin(spec: try TaskSpec.parse("name = \"t\"\nkind = \"ner\"\nlabels = [\"PER\"]\n", path: "/tmp/t.toml"))
        let nfd = "Jose\u{301} Garci\u{301}a met Zoe\u{308}\u{301}."
        let doc = try plugin.document(nfd, id: "nfd", tokenizer: bertTokenizer)
        #expect(doc.words.map { Array($0.unicodeScalars) } == ["Jose\u{301}", "Garci\u{301}a", "met", "Zoe\u{308}\u{301}", "."].map { Array($0.unicodeScalars) })
        #expect(zip(doc.words, doc.wordOffsets).allSatisfy { Array(scalarSlice(nfd, $1).unicodeScalars) == Array($0.unicodeScalars) })
        let gpt2 = try Tokenizer.gpt2(encoderFile: packageRoot + "/vocab/gpt2/encoder.json", mergesFile: packageRoot + "/vocab/gpt2/vocab.bpe")
        let text = "Merkel  visited London\u{301} ."
        let g = try plugin.document(text, id: "gpt2", tokenizer: gpt2)
        #expect(g.words.map { Array($0.unicodeScalars) } == ["Merkel", "visited", "London\u{301}", "."].map { Array($0.unicodeScalars) })
        #expect(zip(g.words, g.wordOffsets).allSatisfy { scalarSlice(text, $1) == $0 })
    }

    /// A span starting at a combining mark after a space does not widen back onto the space
    /// (the two are one grapheme cluster).
    @Test func spansNeverWidenOntoWhitespace() {
        let spans = TextSpans("x \u{301}y")
        #expect(spans.snapped(2..<4) == 2..<4)   // scalars: x, space, U+0301, y
        #expect(spans.snapped(1..<4) == 2..<4)
        #expect(spans.snapped(0..<1) == 0..<1)
        #expect(spans.snapped(1..<2) == nil)
    }

    /// The word locator's binary search over ordered words gives what the per-scalar table gives
    /// (the only way for words out of order), token by token.
    @Test func wordLocatorSearchEqualsTheTable() throws {
        var rng = TestRNG(11)
        for _ in 0..<200 {
            var words: [Range<Int>] = [], at = 0
            for _ in 0..<Int.random(in: 0...12, using: &rng) {
                at += Int.random(in: 0...2, using: &rng)
                let n = Int.random(in: 0...4, using: &rng)
                words.append(at..<(at + n))
                at += n
            }
            let tokens = (0..<20).map { _ -> Range<Int> in
                let lo = Int.random(in: 0...(at + 2), using: &rng)
                return lo..<(lo + Int.random(in: 0...5, using: &rng))
            }
            let special = tokens.map { _ in Int32(Int.random(in: 0...5, using: &rng) == 0 ? 1 : 0) }
            let length = words.last?.upperBound ?? 0
            var owner = [Int?](repeating: nil, count: length)
            for (w, r) in words.enumerated() { for k in r where owner[k] == nil { owner[k] = w } }
            let table = tokens.enumerated().map { i, r -> Int? in
                guard special[i] == 0 else { return nil }
                for k in r where k < length { if let w = owner[k] { return w } }
                return nil
            }
            #expect(WordLocator(words).wordIndices(tokenOffsets: tokens, special: special) == table, "\(words) \(tokens)")
            // Reversed order takes the table path: the same answers with the indices mirrored.
            let reversed = WordLocator(words.reversed()).wordIndices(tokenOffsets: tokens, special: special)
            #expect(reversed == table.map { $0.map { words.count - 1 - $0 } })
        }
    }
}

@Suite struct QuestionFeatureTests {
    @Test func answerPositionsPointAtTheAnswer() throws {
        let context = "Marie Curie, née Skłodowska, won the Nobel Prize in Physics in 1903 and in Chemistry in 1911. "
            + String(repeating: "She worked in Paris for most of her life. ", count: 6)
        let answerText = "1911"
        let scalars = Array(context.unicodeScalars)
        let answerStart = (0..<scalars.count).first { i in i + 4 <= scalars.count && String(String.UnicodeScalarView(scalars[i..<(i + 4)])) == answerText }!
        let example = QuestionExample(id: "q1", question: "When did she win the chemistry prize?", context: context,
                                      answers: [AnswerSpan(text: answerText, start: answerStart)])
        let features = try FeatureBuilder.questionAnswering(example, index: 0, tokenizer: bertTokenizer,
                                                            options: WindowOptions(maxLength: 48, stride: 16))
        #expect(features.count > 1)
        var found = 0
        for f in features {
            #expect(f.window.count <= 48)
            let s = f.startPosition!, e = f.endPosition!
            if s == 0 && e == 0 { continue }
            found += 1
            #expect(f.contextMask[s] && f.contextMask[e])
            #expect(scalarSlice(context, f.window.offsets[s].lowerBound..<f.window.offsets[e].upperBound) == answerText)
        }
        #expect(found >= 1)
        // The question is whole in every window.
        let q = try bertTokenizer.encode(example.question, addSpecialTokens: false).ids
        #expect(features.allSatisfy { f in Array(f.window.inputIds[1...q.count]) == q })
    }
}

@Suite struct BatchingTests {
    @Test func lengthGroupedBatchesArePaddedAndSeeded() throws {
        var rng = TestRNG(3)
        let features = (0..<50).map { i -> TaskFeature in
            let n = Int.random(in: 3...30, using: &rng)
            var e = Encoding()
            e.ids = (0..<n).map { Int32($0 + 1) }
            e.typeIds = .init(repeating: 0, count: n)
            e.offsets = .init(repeating: 0..<0, count: n)
            e.specialTokensMask = .init(repeating: 0, count: n)
            e.sequenceIds = .init(repeating: 0, count: n)
            e.wordIds = .init(repeating: nil, count: n)
            e.attentionMask = .init(repeating: 1, count: n)
            return TaskFeature(window: Window(example: i, index: 0, encoding: e), target: .tokenLabels(.init(repeating: 1, count: n)))
        }
        let a = FeatureBatch.lengthGrouped(features, batchSize: 8, seed: 42)
        #expect(a == FeatureBatch.lengthGrouped(features, batchSize: 8, seed: 42))
        #expect(a != FeatureBatch.lengthGrouped(features, batchSize: 8, seed: 43))
        #expect(a.flatMap { $0 }.sorted() == Array(0..<50))
        let plain = FeatureBatch.lengthGrouped(features, batchSize: 8, seed: nil)
        let lengths = plain.flatMap { $0 }.map { features[$0].window.count }
        #expect(lengths == lengths.sorted())
        let batch = FeatureBatch(features, rows: a[0], padID: 0)
        #expect(batch.inputIds.count == batch.batchSize * batch.length)
        for (r, row) in a[0].enumerated() {
            let n = features[row].window.count
            #expect(batch.attentionMask[(r * batch.length)..<((r + 1) * batch.length)].reduce(0, +) == Int32(n))
            if case .tokenLabels(let l)? = batch.targets[r] {
                #expect(l.count == batch.length && l[n...].allSatisfy { $0 == ignoreIndex })
            } else {
                Issue.record("token labels expected")
            }
        }
        #expect(batch.tokenLabels?.count == batch.batchSize * batch.length)
        #expect(batch.classLabels == nil && batch.spanPositions == nil)
        // Splitting [B, T, L] logits drops each row's padding.
        let l = 3
        let logits = (0..<(batch.batchSize * batch.length * l)).map { Float($0) }
        let outputs = try batch.outputs(logits: logits, kind: .tokenClassification, labelCount: l)
        for (r, o) in outputs.enumerated() {
            guard case .tokens(let x, let n) = o else { Issue.record("token outputs expected"); continue }
            #expect(n == batch.lengths[r] && x == Array(logits[(r * batch.length * l)..<((r * batch.length + n) * l)]))
        }
        let qa = try batch.outputs(logits: logits.prefix(batch.batchSize * batch.length * 2).map { $0 }, kind: .questionAnswering, labelCount: 2)
        if case .span(let start, let end)? = qa.first {
            #expect(start.count == batch.lengths[0] && start.first == 0 && end.first == 1 && start.last == Float(2 * (batch.lengths[0] - 1)))
        }
        #expect(throws: TaskError.self) { try batch.outputs(logits: [1, 2], kind: .sequenceClassification, labelCount: 2) }
    }
}

@Suite struct ByteLevelTests {
    @Test func gpt2AnswersAndEntitiesKeepExactOffsets() throws {
        let gpt2 = try Tokenizer.gpt2(encoderFile: packageRoot + "/vocab/gpt2/encoder.json", mergesFile: packageRoot + "/vocab/gpt2/vocab.bpe")
        let context = "Le café de Flore se trouve à Paris, boulevard Saint-Germain, depuis 1887."
        let answer = "boulevard Saint-Germain"
        let start = Array(context.unicodeScalars).count - Array("boulevard Saint-Germain, depuis 1887.".unicodeScalars).count
        let example = QuestionExample(id: "g", question: "Où se trouve le café ?", context: context, answers: [AnswerSpan(text: answer, start: start)])
        let features = try FeatureBuilder.questionAnswering(example, index: 0, tokenizer: gpt2, options: WindowOptions(maxLength: 24, stride: 6))
        #expect(features.count > 1)
        var answered = 0
        for f in features {
            guard let s = f.startPosition, let e = f.endPosition, !(s == 0 && e == 0) else { continue }
            var starts = [Float](repeating: 0, count: f.window.count), ends = starts
            starts[s] = 9; ends[e] = 9
            let qa = QuestionAnsweringFeature(window: f.window, contextMask: f.contextMask, startPosition: nil, endPosition: nil)
            let best = try AnswerSearch.nBest(features: [qa], startLogits: [starts], endLogits: [ends], context: context, n: 1).first!
            #expect(best.text == answer && best.start == start)  // the byte-level leading space is trimmed
            answered += 1
        }
        #expect(answered >= 1)
        // An answer whose last token stops before a combining mark (an accent-stripping
        // normalizer) ends after the mark: whole characters only.
        let accented = "Elle habite a\u{300} Paris avec Jose\u{301}."
        let q = QuestionExample(id: "a", question: "Avec qui ?", context: accented, answers: [])
        let qf = try FeatureBuilder.questionAnswering(q, index: 0, tokenizer: bertTokenizer, options: WindowOptions(maxLength: 64))
        let w = qf[0].window
        let jose = try #require((0..<w.count).first { qf[0].contextMask[$0] && scalarSlice(accented, w.offsets[$0]) == "Jose" })
        #expect(w.offsets[jose].upperBound == Array(accented.unicodeScalars).count - 2)   // the token stops before U+0301
        var s = [Float](repeating: 0, count: w.count), e = s
        s[jose] = 9; e[jose] = 9
        let qa = QuestionAnsweringFeature(window: w, contextMask: qf[0].contextMask, startPosition: nil, endPosition: nil)
        let best = try #require(try AnswerSearch.nBest(features: [qa], startLogits: [s], endLogits: [e], context: accented, n: 1).first)
        #expect(Array(best.text.unicodeScalars) == Array("Jose\u{301}".unicodeScalars))
        // Tagging through byte-level tokens: entity offsets still slice the original text.
        let labels = try LabelSet.tagging(entityTypes: ["LOC"], scheme: .iob2)
        let sentence = try TaggedSentence(id: "s", words: ["Le", "café", "à", "Saint-Germain-des-Prés", "ferme", "😀"],
                                          tags: ["O", "O", "O", "B-LOC", "O", "O"], scheme: .iob2)
        let tf = try FeatureBuilder.tokenClassification(sentence, example: 0, tokenizer: gpt2, labels: labels, options: WindowOptions(maxLength: 8, stride: 2))
        let l = labels.count
        let rows = tf.map { f in
            (0..<f.window.count).flatMap { i -> [Float] in
                var r = [Float](repeating: 0, count: l)
                if let w = f.words[i] { r[labels.id(of: sentence.tags![w])!] = 9 }
                return r
            }
        }
        let merged = try WindowMerge.wordRows(windows: tf.map(\.window), wordIndices: tf.map(\.words), rows: rows.map { logSoftmax($0, l) },
                                              labelCount: l, wordCount: sentence.words.count)
        let entities = try ViterbiDecoder(labels: labels, scheme: .iob2).entities(merged.rows, wordOffsets: sentence.wordOffsets, text: sentence.text)
        #expect(entities.map(\.text) == ["Saint-Germain-des-Prés"])
        #expect(entities.allSatisfy { scalarSlice(sentence.text, $0.start..<$0.end) == $0.text })
    }
}
