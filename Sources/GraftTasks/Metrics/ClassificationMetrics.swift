import Foundation

/// Accuracy, per-class precision / recall / F1, macro-F1 and the confusion matrix of a
/// single-label classifier, accumulated example by example.
///
/// Classes are the label set's ids; macro averages run over every class of the label set (as
/// scikit-learn's `f1_score(average="macro", labels=all_labels)`, a class never seen scoring 0).
public struct ClassificationMetric: Sendable {
    public let labels: LabelSet
    /// `confusion[gold][predicted]`: `[L, L]` counts.
    public private(set) var confusion: [[Int]]

    public init(labels: LabelSet) {
        self.labels = labels
        confusion = Array(repeating: Array(repeating: 0, count: labels.count), count: labels.count)
    }

    /// Adds one example by class id.
    public mutating func add(gold: Int, predicted: Int) throws {
        guard (0..<labels.count).contains(gold), (0..<labels.count).contains(predicted) else {
            throw TaskError.invalidArgument("class id out of range: gold \(gold), predicted \(predicted) (\(labels.count) classes)")
        }
        confusion[gold][predicted] += 1
    }

    /// Adds one example by label.
    public mutating func add(gold: String, predicted: String) throws {
        guard let g = labels.id(of: gold) else { throw TaskError.invalidArgument("unknown gold label \"\(gold)\"") }
        guard let p = labels.id(of: predicted) else { throw TaskError.invalidArgument("unknown predicted label \"\(predicted)\"") }
        try add(gold: g, predicted: p)
    }

    public var scores: ClassificationScores {
        let n = labels.count
        var total = 0, right = 0
        var perClass: [String: PRF] = [:]
        for c in 0..<n {
            let tp = confusion[c][c]
            let predicted = (0..<n).reduce(0) { $0 + confusion[$1][c] }
            let gold = confusion[c].reduce(0, +)
            perClass[labels.label(c)] = PRF(correct: tp, predicted: predicted, gold: gold)
            total += gold
            right += tp
        }
        let rows = labels.labels.map { perClass[$0]! }
        let macroF1 = rows.isEmpty ? 0 : rows.reduce(0) { $0 + $1.f1 } / Double(rows.count)
        return ClassificationScores(accuracy: total == 0 ? 0 : Double(right) / Double(total), macroF1: macroF1,
                                    perClass: perClass, labels: labels.labels, confusion: confusion, examples: total)
    }
}

/// The result of ``ClassificationMetric``.
public struct ClassificationScores: Sendable, Equatable, Codable {
    public var accuracy: Double
    public var macroF1: Double
    public var perClass: [String: PRF]
    /// Class names in id order (the rows and columns of `confusion`).
    public var labels: [String]
    /// `confusion[gold][predicted]`.
    public var confusion: [[Int]]
    public var examples: Int
}
