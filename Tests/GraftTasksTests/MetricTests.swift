import Foundation
import GraftSupport
import GraftTokenizers
import Testing
@testable import GraftTasks

private func loadJSON(_ name: String) throws -> JSONValue {
    let data = FileManager.default.contents(atPath: fixture(name))!
    return try JSONValue.parse([UInt8](data), path: name)
}

private func strings(_ v: JSONValue?) -> [String] { (v?.array ?? []).map { $0.string! } }

private func expectPRF(_ got: PRF, _ want: JSONValue, _ context: String) {
    #expect(abs(got.precision - want["precision"]!.double!) <= 1e-12, "\(context) precision")
    #expect(abs(got.recall - want["recall"]!.double!) <= 1e-12, "\(context) recall")
    #expect(abs(got.f1 - want["f1"]!.double!) <= 1e-12, "\(context) f1")
    if let s = want["support"]?.int { #expect(got.support == s, "\(context) support") }
}

@Suite struct SeqevalConformance {
    @Test func matchesSeqevalStrictMode() throws {
        let json = try loadJSON("seqeval.json")
        #expect(json["seqeval_version"]?.string == "1.2.2")
        let cases = json["cases"]!.array!
        #expect(cases.count > 250)
        var withEntities = 0
        for c in cases {
            let name = c["name"]!.string!
            let scheme: TagScheme = c["scheme"]!.string! == "iob2" ? .iob2 : .bioes
            let gold = c["gold"]!.array!.map(strings), predicted = c["predicted"]!.array!.map(strings)
            let scores = try EntityMetric.score(gold: gold, predicted: predicted, scheme: scheme)
            expectPRF(scores.micro, c["micro"]!, "\(name) micro")
            #expect(scores.types == strings(c["types"]), "\(name) types")
            for t in scores.types { expectPRF(scores.perType[t]!, c["per_type"]![t]!, "\(name) \(t)") }
            if let macro = c["macro"] { expectPRF(scores.macro, macro, "\(name) macro") }
            if let weighted = c["weighted"] { expectPRF(scores.weighted, weighted, "\(name) weighted") }
            // The entities themselves, sentence by sentence.
            for (key, seqs) in [("gold_entities", gold), ("predicted_entities", predicted)] {
                for (s, tags) in seqs.enumerated() {
                    let want = c[key]!.array![s].array!.map { e in
                        TokenSpan(start: e.array![0].int!, end: e.array![1].int!, type: e.array![2].string!)
                    }
                    #expect(try scheme.strictSpans(tags) == want, "\(name) \(key) sentence \(s)")
                }
            }
            if scores.gold > 0 { withEntities += 1 }
        }
        #expect(withEntities > 200)
    }

    @Test func rejectsForeignPrefixesAndLengthMismatch() {
        #expect(throws: TaskError.self) { try TagScheme.iob2.strictSpans(["B-PER", "E-PER"]) }
        #expect(throws: TaskError.self) { try EntityMetric.score(gold: [["O", "O"]], predicted: [["O"]]) }
    }
}

@Suite struct SquadConformance {
    @Test func matchesOfficialEvaluation() throws {
        let json = try loadJSON("squad.json")
        let items = json["items"]!.array!
        #expect(items.count > 300)
        var metric = QAMetric()
        for it in items {
            let prediction = it["prediction"]!.string!, gold = strings(it["ground_truths"])
            #expect(Array(SquadMetric.normalize(prediction).unicodeScalars) == Array(it["normalized_prediction"]!.string!.unicodeScalars),
                    "normalize \(prediction.debugDescription)")
            let s = SquadMetric.score(prediction: prediction, groundTruths: gold)
            #expect(abs(s.exactMatch - it["exact_match"]!.double!) <= 1e-12, "EM \(prediction.debugDescription) vs \(gold)")
            #expect(abs(s.f1 - it["f1"]!.double!) <= 1e-12, "F1 \(prediction.debugDescription) vs \(gold)")
            metric.add(prediction: prediction, groundTruths: gold)
        }
        #expect(abs(metric.exactMatch - json["exact_match_fraction"]!.double!) <= 1e-12)
        #expect(abs(metric.f1 - json["f1_fraction"]!.double!) <= 1e-12)
        #expect(abs(metric.officialExactMatch - json["exact_match"]!.double!) <= 1e-12)
        #expect(abs(metric.officialF1 - json["f1"]!.double!) <= 1e-12)
    }
}

@Suite struct ClassificationMetricTests {
    @Test func accuracyMacroF1AndConfusion() throws {
        let labels = try LabelSet(["neg", "neu", "pos"])
        var m = ClassificationMetric(labels: labels)
        let pairs = [("neg", "neg"), ("neg", "pos"), ("pos", "pos"), ("pos", "pos"), ("neu", "neg"), ("pos", "neu")]
        for (g, p) in pairs { try m.add(gold: g, predicted: p) }
        let s = m.scores
        #expect(s.examples == 6)
        #expect(s.accuracy == 3.0 / 6.0)
        #expect(s.confusion == [[1, 0, 1], [1, 0, 0], [0, 1, 2]])
        // neg: tp 1, predicted 2, gold 2; neu: tp 0; pos: tp 2, predicted 3, gold 3.
        #expect(s.perClass["neg"] == PRF(precision: 0.5, recall: 0.5, f1: 0.5, support: 2))
        #expect(s.perClass["neu"]!.f1 == 0)
        let posF1 = 2 * (2.0 / 3) * (2.0 / 3) / (2.0 / 3 + 2.0 / 3)
        #expect(abs(s.perClass["pos"]!.f1 - posF1) < 1e-15)
        #expect(abs(s.macroF1 - (0.5 + 0 + posF1) / 3) < 1e-15)
        #expect(throws: TaskError.self) { try m.add(gold: "neg", predicted: "mixed") }
    }
}
