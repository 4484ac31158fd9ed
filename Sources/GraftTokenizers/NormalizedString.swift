/// A string under normalization that remembers where each of its scalars came from.
///
/// `scalars[i]` is the i-th Unicode scalar of the normalized text and `alignments[i]` is the
/// half-open range of scalar indices in the **original** text that produced it. A scalar that
/// an operation expands into several (NFD, lowercase of "İ") passes its range to all of them;
/// scalars that composition merges get the union of their ranges; removed scalars vanish.
/// The range of original text behind any normalized span is therefore
/// `alignments[start].lowerBound ..< alignments[end - 1].upperBound`.
public struct NormalizedString: Sendable {
    /// The normalized scalars.
    public internal(set) var scalars: [UInt32]
    /// For each normalized scalar, `(start, end)` in original scalar indices.
    public internal(set) var starts: [Int32]
    public internal(set) var ends: [Int32]

    /// Wraps `scalars` taken from an original text at scalar offset `base`.
    public init(scalars: ArraySlice<UInt32>, base: Int) {
        self.scalars = Array(scalars)
        let n = scalars.count
        starts = [Int32](unsafeUninitializedCapacity: n) { buf, count in
            for i in 0..<n { buf[i] = Int32(base + i) }
            count = n
        }
        ends = [Int32](unsafeUninitializedCapacity: n) { buf, count in
            for i in 0..<n { buf[i] = Int32(base + i + 1) }
            count = n
        }
    }

    /// Wraps a whole string.
    public init(_ text: String) {
        let s = UTF8Util.scalars(text)
        self.init(scalars: s[...], base: 0)
    }

    /// The normalized text.
    public var normalized: String { UTF8Util.string(scalars) }

    public var count: Int { scalars.count }

    /// Original scalar range behind the normalized range `start..<end` (empty input → nil).
    @inline(__always)
    public func originalRange(_ start: Int, _ end: Int) -> Range<Int>? {
        guard start < end, end <= scalars.count else { return nil }
        return Int(starts[start])..<Int(ends[end - 1])
    }

    // MARK: Transformations

    /// Replaces each scalar by zero or more scalars produced by `body`, which appends them to
    /// the buffer it receives. Every output scalar inherits the range of its input scalar.
    @inline(__always)
    public mutating func flatMap(_ body: (UInt32, inout [UInt32]) -> Void) {
        var newScalars = [UInt32]()
        newScalars.reserveCapacity(scalars.count + scalars.count / 8)
        var newStarts = [Int32]()
        newStarts.reserveCapacity(scalars.count + scalars.count / 8)
        var newEnds = [Int32]()
        newEnds.reserveCapacity(scalars.count + scalars.count / 8)
        scalars.withUnsafeBufferPointer { src in
            for i in 0..<src.count {
                let before = newScalars.count
                body(src[i], &newScalars)
                let added = newScalars.count - before
                if added > 0 {
                    let s = starts[i], e = ends[i]
                    for _ in 0..<added { newStarts.append(s); newEnds.append(e) }
                }
            }
        }
        scalars = newScalars
        starts = newStarts
        ends = newEnds
    }

    /// Maps scalars one to one.
    @inline(__always)
    public mutating func map(_ transform: (UInt32) -> UInt32) {
        scalars.withUnsafeMutableBufferPointer { buf in
            for i in 0..<buf.count { buf[i] = transform(buf[i]) }
        }
    }

    /// Keeps the scalars for which `keep` is true.
    @inline(__always)
    public mutating func filter(_ keep: (UInt32) -> Bool) {
        var w = 0
        let n = scalars.count
        scalars.withUnsafeMutableBufferPointer { sc in
            starts.withUnsafeMutableBufferPointer { st in
                ends.withUnsafeMutableBufferPointer { en in
                    for r in 0..<n where keep(sc[r]) {
                        sc[w] = sc[r]; st[w] = st[r]; en[w] = en[r]
                        w += 1
                    }
                }
            }
        }
        if w < n {
            scalars.removeSubrange(w...)
            starts.removeSubrange(w...)
            ends.removeSubrange(w...)
        }
    }

    /// Canonical reordering of combining marks (stable sort by combining class within runs of
    /// non-starters), aligned as HuggingFace aligns it. `firsts[i]` says whether scalar `i` is the
    /// first its input decomposed into: that one "consumes" the input's range, the others are
    /// insertions. The roles move with the marks; after sorting, consumers take the run's
    /// consumed ranges in their original order and each insertion copies the range of the
    /// scalar before it. Ranges so stay in text order and a span over a run reaches its last
    /// source (moving ranges with the marks made a run's last scalar point at an earlier
    /// source, cutting spans short).
    mutating func reorderCombiningMarks(firsts: [Bool]) {
        let n = scalars.count
        precondition(firsts.count == n, "one role per scalar")
        var i = 0
        while i < n {
            if UnicodeProps.combiningClass(scalars[i]) == 0 { i += 1; continue }
            var j = i
            while j < n && UnicodeProps.combiningClass(scalars[j]) != 0 { j += 1 }
            if j - i > 1 {
                var sources: [(Int32, Int32)] = []
                for k in i..<j where firsts[k] { sources.append((starts[k], ends[k])) }
                var run = (i..<j).map { (UnicodeProps.combiningClass(scalars[$0]), $0) }
                run.sort { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
                let sc = run.map { scalars[$0.1] }, roles = run.map { firsts[$0.1] }
                var next = 0
                var previous: (Int32, Int32) = i > 0 ? (starts[i - 1], ends[i - 1]) : (sources.first ?? (starts[i], ends[i]))
                for k in 0..<(j - i) {
                    if roles[k], next < sources.count { previous = sources[next]; next += 1 }
                    scalars[i + k] = sc[k]
                    (starts[i + k], ends[i + k]) = previous
                }
            }
            i = j
        }
    }

    /// Canonical composition (the second half of NFC/NFKC); merged scalars unite their ranges.
    mutating func composeCanonically() {
        let n = scalars.count
        guard n > 1 else { return }
        var outS = [UInt32](), outB = [Int32](), outE = [Int32]()
        outS.reserveCapacity(n); outB.reserveCapacity(n); outE.reserveCapacity(n)
        var starter: Int? = nil
        var lastClass = 0
        for i in 0..<n {
            let c = scalars[i]
            let cc = UnicodeProps.combiningClass(c)
            // No scalar below U+0300 is ever the second half of a canonical composition.
            if c >= 0x300, let s = starter {
                let adjacent = outS.count - 1 == s
                let blocked = !adjacent && (lastClass == 0 || lastClass >= cc)
                if !blocked, let composed = UnicodeProps.compose(outS[s], c) {
                    outS[s] = composed
                    outB[s] = min(outB[s], starts[i])
                    outE[s] = max(outE[s], ends[i])
                    continue
                }
            }
            outS.append(c); outB.append(starts[i]); outE.append(ends[i])
            if cc == 0 { starter = outS.count - 1 }
            lastClass = cc
        }
        scalars = outS; starts = outB; ends = outE
    }

    /// Keeps only `range` of the normalized scalars (with their alignments).
    func slice(_ range: Range<Int>) -> NormalizedString {
        var copy = self
        copy.scalars = Array(scalars[range])
        copy.starts = Array(starts[range])
        copy.ends = Array(ends[range])
        return copy
    }
}
