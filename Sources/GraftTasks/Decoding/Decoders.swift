import Foundation

/// An entity found in a text: `[start, end)` in Unicode scalars of the original text, its type,
/// its text (the original sliced at those offsets) and a score (mean probability of the chosen
/// tags over its words).
public struct Entity: Sendable, Equatable, Codable {
    public var start: Int
    public var end: Int
    public var type: String
    public var text: String
    public var score: Double

    public init(start: Int, end: Int, type: String, text: String, score: Double) {
        self.start = start
        self.end = end
        self.type = type
        self.text = text
        self.score = score
    }
}

/// Viterbi decoding over the transitions a tag scheme allows: the highest-scoring tag sequence
/// (sum of per-token log-probabilities) among the valid ones, so `I-X` only ever follows `B-X` or
/// `I-X` (and in BIOES every entity is closed by `E-X`, or is a single `S-X`).
public struct ViterbiDecoder: Sendable {
    public let labels: LabelSet
    public let scheme: TagScheme
    let parsed: [ParsedTag]
    /// `allowed[from * L + to]`.
    let allowed: [Bool]
    let start: [Bool]
    let end: [Bool]

    public init(labels: LabelSet, scheme: TagScheme) throws {
        self.labels = labels
        self.scheme = scheme
        let parsed = labels.labels.map(ParsedTag.init)
        let valid = parsed.map { scheme.allowedPrefixes.contains($0.prefix) }
        let l = labels.count
        var allowed = [Bool](repeating: false, count: l * l)
        for a in 0..<l where valid[a] {
            for b in 0..<l where valid[b] { allowed[a * l + b] = scheme.allowsTransition(from: parsed[a], to: parsed[b]) }
        }
        self.parsed = parsed
        self.allowed = allowed
        start = (0..<l).map { valid[$0] && scheme.allowsStart(parsed[$0]) }
        end = (0..<l).map { valid[$0] && scheme.allowsEnd(parsed[$0]) }
        guard start.contains(true), end.contains(true) else {
            throw TaskError.invalidArgument("the label set \(labels.labels) has no valid \(scheme.rawValue) sequence (no O tag?)")
        }
    }

    /// ``TagDecoding/greedy``: each row's most probable tag (the first on ties), then only the
    /// entities of seqeval's strict reading of those tags, the other words `O`; a valid sequence.
    public func greedy(_ logProbs: [Float], count t: Int) throws -> [Int] {
        let l = labels.count
        guard logProbs.count == t * l else {
            throw TaskError.invalidArgument("expected \(t) × \(l) log-probabilities, got \(logProbs.count)")
        }
        let argmax = (0..<t).map { i in (0..<l).max { logProbs[i * l + $0] < logProbs[i * l + $1] }! }
        let spans = scheme.strictSpans(parsed: argmax.map { parsed[$0] })
        let tags = try scheme.tags(for: spans, count: t)
        return try tags.map { tag in
            guard let id = labels.id(of: tag) else { throw TaskError.invalidArgument("tag \(tag) is not in the label set \(labels.labels)") }
            return id
        }
    }

    /// The best valid tag ids for `[T, L]` log-probabilities (row-major), and its score.
    public func decode(_ logProbs: [Float], count t: Int) throws -> (tags: [Int], score: Double) {
        let l = labels.count
        guard logProbs.count == t * l else {
            throw TaskError.invalidArgument("expected \(t) × \(l) log-probabilities, got \(logProbs.count)")
        }
        if t == 0 { return ([], 0) }
        var score = [Double](repeating: -.infinity, count: l)
        var back = [Int](repeating: -1, count: t * l)
        for j in 0..<l where start[j] { score[j] = Double(logProbs[j]) }
        for i in 1..<max(t, 1) {
            var next = [Double](repeating: -.infinity, count: l)
            for j in 0..<l {
                var best = -Double.infinity, arg = -1
                for k in 0..<l where allowed[k * l + j] && score[k] > best { best = score[k]; arg = k }
                if arg >= 0 { next[j] = best + Double(logProbs[i * l + j]); back[i * l + j] = arg }
            }
            score = next
        }
        var last = -1, best = -Double.infinity
        for j in 0..<l where end[j] && score[j] > best { best = score[j]; last = j }
        guard last >= 0 else {
            throw TaskError.invalidArgument("no valid tag sequence has a finite score (log-probabilities of -inf everywhere allowed?)")
        }
        var tags = [Int](repeating: 0, count: t)
        tags[t - 1] = last
        var i = t - 1
        while i > 0 { tags[i - 1] = back[i * l + tags[i]]; i -= 1 }
        return (tags, best)
    }

    /// Decodes `[W, L]` word log-probabilities into entities of `text`, given each word's scalar
    /// range in `text`.
    public func entities(_ logProbs: [Float], wordOffsets: [Range<Int>], text: String, decoding: TagDecoding = .viterbi) throws -> [Entity] {
        try entities(logProbs, tags: tags(logProbs, count: wordOffsets.count, decoding: decoding), wordOffsets: wordOffsets, text: text)
    }

    /// The tag ids of `[T, L]` log-probabilities under `decoding`.
    public func tags(_ logProbs: [Float], count t: Int, decoding: TagDecoding) throws -> [Int] {
        switch decoding {
        case .viterbi: try decode(logProbs, count: t).tags
        case .greedy: try greedy(logProbs, count: t)
        }
    }

    /// The entities of already decoded (valid) `tags`, scored by their words' mean probability
    /// under `logProbs`.
    public func entities(_ logProbs: [Float], tags: [Int], wordOffsets: [Range<Int>], text: String) throws -> [Entity] {
        let l = labels.count
        let spans = scheme.strictSpans(parsed: tags.map { parsed[$0] })
        let ranges = spans.map { wordOffsets[$0.start].lowerBound..<wordOffsets[$0.end - 1].upperBound }
        return zip(zip(spans, ranges), scalarSlices(text, ranges)).map { sr, entityText in
            let (s, range) = sr
            var p = 0.0
            for w in s.start..<s.end { p += exp(Double(logProbs[w * l + tags[w]])) }
            return Entity(start: range.lowerBound, end: range.upperBound, type: s.type,
                          text: entityText, score: p / Double(s.end - s.start))
        }
    }
}

/// An answer span found by ``AnswerSearch``.
public struct AnswerCandidate: Sendable, Equatable, Codable {
    /// `[start, end)` in Unicode scalars of the context.
    public var start: Int
    public var end: Int
    /// The context sliced at `start..<end`.
    public var text: String
    /// `start_logit + end_logit`.
    public var score: Double
    /// Token positions in the window the span was read from, and that window's index.
    public var startToken: Int
    public var endToken: Int
    public var window: Int
}

/// Extractive-QA span search: the n best `(start, end)` token pairs by `start_logit + end_logit`
/// with both tokens in the context, `end >= start` and at most `maxAnswerLength` tokens, over all
/// windows of one question; answers are the context sliced at the tokens' scalar offsets
/// (whitespace at either end trimmed, so byte-level tokens' leading spaces are not part of it,
/// and widened to whole grapheme clusters: ``TextSpans``).
public enum AnswerSearch {
    /// - Parameters:
    ///   - features: the question's windows.
    ///   - startLogits, endLogits: for each window, `[T_w]`.
    ///   - context: the original context the offsets point into.
    public static func nBest(features: [QuestionAnsweringFeature], startLogits: [[Float]], endLogits: [[Float]],
                             context: String, n: Int = 20, maxAnswerLength: Int = 30) throws -> [AnswerCandidate] {
        guard features.count == startLogits.count, features.count == endLogits.count else {
            throw TaskError.invalidArgument("\(features.count) windows but \(startLogits.count) / \(endLogits.count) logit rows")
        }
        let spans = TextSpans(context)
        var all: [(score: Double, w: Int, i: Int, j: Int)] = []
        for (w, f) in features.enumerated() {
            let t = f.window.count
            guard startLogits[w].count == t, endLogits[w].count == t else {
                throw TaskError.invalidArgument("window \(w): \(t) tokens but \(startLogits[w].count) / \(endLogits[w].count) logits")
            }
            let ctx = (0..<t).filter { f.contextMask[$0] && !f.window.offsets[$0].isEmpty }
            for (a, i) in ctx.enumerated() {
                for j in ctx[a...] {
                    if j - i + 1 > maxAnswerLength { break }
                    all.append((Double(startLogits[w][i]) + Double(endLogits[w][j]), w, i, j))
                }
            }
        }
        all.sort { $0.score != $1.score ? $0.score > $1.score : ($0.w, $0.i, $0.j) < ($1.w, $1.i, $1.j) }
        var out: [AnswerCandidate] = []
        var seen = Set<Range<Int>>()
        for c in all {
            if out.count >= n { break }
            let f = features[c.w].window
            // Byte-level tokens (GPT-2) carry their leading space, and an accent-stripping
            // normalizer leaves the end short of its combining marks: trim and widen.
            guard let range = spans.snapped(f.offsets[c.i].lowerBound..<f.offsets[c.j].upperBound) else { continue }
            guard seen.insert(range).inserted else { continue }  // the same span from an overlapping window
            out.append(AnswerCandidate(start: range.lowerBound, end: range.upperBound, text: scalarSlice(context, range),
                                       score: c.score, startToken: c.i, endToken: c.j, window: c.w))
        }
        return out
    }
}

/// Text classification over windows: a long document's windows are scored separately and
/// their probabilities averaged.
public enum ClassificationDecoder {
    /// Softmax of `[L]` logits (in Double, max-shifted).
    public static func softmax(_ logits: [Float]) -> [Double] {
        guard let m = logits.max() else { return [] }
        let e = logits.map { exp(Double($0 - m)) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    /// The mean of the windows' `[L]` probability rows.
    public static func average(_ windows: [[Double]], labelCount: Int) throws -> [Double] {
        guard !windows.isEmpty else { throw TaskError.invalidArgument("no windows to average") }
        var out = [Double](repeating: 0, count: labelCount)
        for w in windows {
            guard w.count == labelCount else { throw TaskError.invalidArgument("a window has \(w.count) probabilities, expected \(labelCount)") }
            for k in 0..<labelCount { out[k] += w[k] }
        }
        return out.map { $0 / Double(windows.count) }
    }

    /// The label with the highest probability (the first on ties) and the probabilities by label.
    public static func decide(_ probabilities: [Double], labels: LabelSet) -> (label: String, scores: [String: Double]) {
        var best = 0
        for k in 1..<max(probabilities.count, 1) where probabilities[k] > probabilities[best] { best = k }
        var scores: [String: Double] = [:]
        for (k, p) in probabilities.enumerated() { scores[labels.label(k)] = p }
        return (labels.label(best), scores)
    }
}
