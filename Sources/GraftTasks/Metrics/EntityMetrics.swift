import Foundation

/// Precision, recall, F1 (fractions 0–1) and support (number of gold items).
public struct PRF: Sendable, Equatable, Codable {
    public var precision: Double
    public var recall: Double
    public var f1: Double
    public var support: Int

    public init(precision: Double, recall: Double, f1: Double, support: Int) {
        self.precision = precision
        self.recall = recall
        self.f1 = f1
        self.support = support
    }

    /// From counts, as seqeval / scikit-learn divide them: 0 when a denominator is 0
    /// (`zero_division="warn"` acts as 0), F1 = `2·p·r / (p + r)` with a zero denominator taken as 1.
    public init(correct: Int, predicted: Int, gold: Int) {
        let p = predicted == 0 ? 0 : Double(correct) / Double(predicted)
        let r = gold == 0 ? 0 : Double(correct) / Double(gold)
        let denominator = 1 * p + r
        self.init(precision: p, recall: r, f1: (1 + 1) * p * r / (denominator == 0 ? 1 : denominator), support: gold)
    }
}

/// seqeval's entity-level scores in strict mode (`classification_report(y_true, y_pred,
/// mode='strict', scheme=IOB2)`, or `scheme=IOBES` for BIOES), accumulated sentence by sentence
/// so evaluation can stream.
///
/// An entity is `(sentence, type, start, end)`; it is correct when the gold sentence has exactly
/// the same one. Micro averages sum the counts over types; macro averages the per-type scores;
/// weighted averages them by support.
public struct EntityMetric: Sendable {
    public let scheme: TagScheme
    private var sentence = 0
    private var counts: [String: (correct: Int, predicted: Int, gold: Int)] = [:]

    public init(scheme: TagScheme = .iob2) {
        self.scheme = scheme
    }

    /// Adds one sentence's gold and predicted tags (`[T]` each, same length).
    public mutating func add(gold: [String], predicted: [String]) throws {
        guard gold.count == predicted.count else {
            throw TaskError.invalidArgument("sentence \(sentence): \(gold.count) gold tags but \(predicted.count) predicted tags")
        }
        try add(gold: scheme.strictSpans(gold), predicted: scheme.strictSpans(predicted))
    }

    /// Adds one sentence's gold and predicted entities (already extracted).
    public mutating func add(gold: [TokenSpan], predicted: [TokenSpan]) {
        let g = Set(gold), p = Set(predicted)
        for s in g { counts[s.type, default: (0, 0, 0)].gold += 1 }
        for s in p {
            counts[s.type, default: (0, 0, 0)].predicted += 1
            if g.contains(s) { counts[s.type]!.correct += 1 }
        }
        sentence += 1
    }

    /// The scores so far.
    public var scores: EntityScores {
        let types = counts.keys.sorted()
        var perType: [String: PRF] = [:]
        var c = 0, p = 0, g = 0
        for t in types {
            let k = counts[t]!
            perType[t] = PRF(correct: k.correct, predicted: k.predicted, gold: k.gold)
            c += k.correct; p += k.predicted; g += k.gold
        }
        let micro = PRF(correct: c, predicted: p, gold: g)
        let rows = types.map { perType[$0]! }
        let n = Double(rows.count)
        let macro = rows.isEmpty ? PRF(precision: 0, recall: 0, f1: 0, support: 0)
            : PRF(precision: rows.reduce(0) { $0 + $1.precision } / n, recall: rows.reduce(0) { $0 + $1.recall } / n,
                  f1: rows.reduce(0) { $0 + $1.f1 } / n, support: g)
        let weighted: PRF
        if g == 0 {
            weighted = PRF(precision: 0, recall: 0, f1: 0, support: 0)  // seqeval: zero_division value 0
        } else {
            let w = Double(g)
            weighted = PRF(precision: rows.reduce(0) { $0 + $1.precision * Double($1.support) } / w,
                           recall: rows.reduce(0) { $0 + $1.recall * Double($1.support) } / w,
                           f1: rows.reduce(0) { $0 + $1.f1 * Double($1.support) } / w, support: g)
        }
        return EntityScores(micro: micro, macro: macro, weighted: weighted, perType: perType, types: types,
                            correct: c, predicted: p, gold: g, sentences: sentence)
    }

    /// Scores whole corpora at once: `gold[i]` and `predicted[i]` are sentence `i`'s tags.
    public static func score(gold: [[String]], predicted: [[String]], scheme: TagScheme = .iob2) throws -> EntityScores {
        guard gold.count == predicted.count else {
            throw TaskError.invalidArgument("\(gold.count) gold sentences but \(predicted.count) predicted sentences")
        }
        var m = EntityMetric(scheme: scheme)
        for (g, p) in zip(gold, predicted) { try m.add(gold: g, predicted: p) }
        return m.scores
    }
}

/// The result of ``EntityMetric``: what `classification_report(..., output_dict=True)` holds.
public struct EntityScores: Sendable, Equatable, Codable {
    /// Micro average: the headline precision / recall / F1.
    public var micro: PRF
    public var macro: PRF
    public var weighted: PRF
    /// Per entity type.
    public var perType: [String: PRF]
    /// Entity types, sorted (the report's row order).
    public var types: [String]
    public var correct: Int
    public var predicted: Int
    public var gold: Int
    public var sentences: Int
}
