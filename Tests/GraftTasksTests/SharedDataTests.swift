import Foundation
import GraftTokenizers
import Testing
@testable import GraftTasks

/// Offsets property over the shared CoNLL and QA data: every entity and answer that the task
/// layer reports, sliced out of the original text at its offsets, is the reported text —
/// through the readers, the tokenizer's windows, window merging and decoding.
@Suite(.enabled(if: sharedDataDirectory != nil, "needs the shared data ($GRAFT_DATA_DIR or ../shared/data)"))
struct SharedDataOffsetTests {
    let data = sharedDataDirectory ?? ""
    var miniLM: Tokenizer { get throws { try Tokenizer.load(from: data + "/models/all-MiniLM-L6-v2/tokenizer.json") } }

    /// Oracle logits for a token-classification window: the gold tag of each token's word.
    func oracle(_ f: TaskFeature, tags: [String], labels: LabelSet) -> HeadOutput {
        let l = labels.count
        var logits = [Float](repeating: 0, count: f.window.count * l)
        for i in 0..<f.window.count {
            if let w = f.words?[i] { logits[i * l + labels.id(of: tags[w])!] = 8 } else { logits[i * l] = 8 }
        }
        return .tokens(logits: logits, count: f.window.count)
    }

    /// The sentence with vowels accented (NFC and NFD forms), some words in Greek or CJK, and an
    /// emoji, keeping its tags.
    func accented(_ s: TaggedSentence, scheme: TagScheme) throws -> TaggedSentence {
        let words = s.words.enumerated().map { i, w -> String in
            switch i % 5 {
            case 0: String(String.UnicodeScalarView(w.unicodeScalars.map { $0 == "a" ? "ä" : $0 == "o" ? "ø" : $0 }))
            case 1: w.replacingOccurrences(of: "e", with: "e\u{301}")
            case 2: "Ζεύς" + w
            case 3: w + "東京"
            default: w == "." ? "😀" : w
            }
        }
        return try TaggedSentence(id: s.id + "+accents", words: words, tags: s.tags, scheme: scheme)
    }

    @Test(arguments: [("conll2003", "ner-conll2003", 128, 32), ("wnut16", "ner-wnut16", 24, 8)])
    func entityOffsets(set: String, specName: String, maxLength: Int, stride: Int) throws {
        var spec = try TaskSpec.load(packageRoot + "/tasks/\(specName).toml", environment: ["GRAFT_DATA_DIR": data])
        spec.window = WindowOptions(maxLength: maxLength, stride: stride)
        let plugin = try TaggingPlugin(spec: spec)
        let tokenizer = try miniLM
        var entities = 0, nonASCII = 0, windowed = 0
        var evaluator = plugin.makeEvaluator()
        for file in ["train", "dev"] {
            let sentences = try plugin.examples(from: .file("\(data)/ner/\(set)/\(file).txt"))
            #expect(!sentences.isEmpty)
            for s in sentences {
                for e in s.entities {
                    let slice = scalarSlice(s.text, e.start..<e.end)
                    let words = zip(s.words, s.wordOffsets).filter { $0.1.lowerBound >= e.start && $0.1.upperBound <= e.end }.map(\.0)
                    #expect(slice == words.joined(separator: " "))
                    entities += 1
                    if slice.unicodeScalars.contains(where: { !$0.isASCII }) { nonASCII += 1 }
                }
                guard file == "dev" else { continue }
                // Through windows, merging and Viterbi with oracle logits; the shared NER files
                // are pure ASCII, so each sentence also runs with accented / non-Latin words.
                for variant in [s, try accented(s, scheme: spec.scheme)] {
                    let features = try plugin.features(variant, index: 0, tokenizer: tokenizer)
                    if features.count > 1 { windowed += 1 }
                    let prediction = try plugin.decode(variant, features: features,
                                                       outputs: features.map { oracle($0, tags: variant.tags!, labels: plugin.labels!) })
                    for e in prediction.entities {
                        #expect(scalarSlice(variant.text, e.start..<e.end) == e.text)
                        if e.text.unicodeScalars.contains(where: { !$0.isASCII }) { nonASCII += 1 }
                    }
                    #expect(prediction.entities.map { CharacterSpan(start: $0.start, end: $0.end, type: $0.type) } == variant.entities, "\(variant.id)")
                    try evaluator.add(variant, prediction)
                }
            }
        }
        #expect(entities > 1000)
        #expect(nonASCII > 0)
        #expect(windowed > 0)
        #expect(evaluator.scores.values["f1"] == 1)
    }

    @Test(arguments: [(384, 128), (64, 16)])
    func answerOffsets(maxLength: Int, stride: Int) throws {
        var spec = try TaskSpec.load(packageRoot + "/tasks/qa-shared.toml", environment: ["GRAFT_DATA_DIR": data])
        spec.window = WindowOptions(maxLength: maxLength, stride: stride)
        spec.maxAnswerLength = 64
        let plugin = try QuestionAnsweringPlugin(spec: spec)
        let tokenizer = try miniLM
        var evaluator = plugin.makeEvaluator()
        var nonASCII = 0, windowed = 0
        for file in ["train", "dev"] {
            let questions = try plugin.examples(from: .file("\(data)/qa/\(file).json"))
            #expect(!questions.isEmpty)
            for (index, q) in questions.enumerated() {
                for a in q.answers {
                    #expect(scalarSlice(q.context, a.start..<a.end) == a.text)
                    if a.text.unicodeScalars.contains(where: { !$0.isASCII }) { nonASCII += 1 }
                }
                let features = try plugin.features(q, index: index, tokenizer: tokenizer)
                if features.count > 1 { windowed += 1 }
                // Oracle logits: high at the labelled start/end of windows holding the answer.
                let outputs = features.map { f -> HeadOutput in
                    var s = [Float](repeating: 0, count: f.window.count), e = s
                    if case .span(let a, let b)? = f.target, a != 0 || b != 0 { s[a] = 10; e[b] = 10 }
                    return .span(start: s, end: e)
                }
                let prediction = try plugin.decode(q, features: features, outputs: outputs)
                for c in prediction.nBest { #expect(scalarSlice(q.context, c.start..<c.end) == c.text) }
                try evaluator.add(q, prediction)
            }
        }
        #expect(nonASCII > 0)
        if maxLength == 64 { #expect(windowed > 100) }
        // Token boundaries can only widen an answer by a few characters: the oracle scores high.
        let scores = evaluator.scores.values
        #expect(scores["f1"]! > 0.95)
        #expect(scores["exact_match"]! > 0.9)
    }
}
