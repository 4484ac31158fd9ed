import Foundation
import GRDB

/// The three parts of a split.
public enum SplitPart: String, Sendable, CaseIterable, Codable {
    case train, dev, test
}

/// Ratios of a named split scheme. Each document falls into a part by its `splitKey` (the first
/// 63 bits of the SHA-256 of its text), so the assignment depends only on the document itself:
/// adding documents never moves existing ones. Documents imported with an explicit split
/// (e.g. `--split dev` for a file that is a dev set) keep that part in every scheme.
public struct SplitScheme: Sendable, Codable, Equatable {
    public var name: String
    public var train: Double
    public var dev: Double
    public var test: Double

    public init(name: String = "default", train: Double = 0.8, dev: Double = 0.1, test: Double = 0.1) {
        self.name = name
        self.train = train
        self.dev = dev
        self.test = test
    }

    /// The scheme used when none named "default" was defined: 0.8 / 0.1 / 0.1.
    public static let standard = SplitScheme()

    func validate() throws {
        for (n, v) in [("train", train), ("dev", dev), ("test", test)] where !(v >= 0 && v <= 1) {
            throw CorpusError.invalidSplitRatios("\(n) = \(v) is not in [0, 1]")
        }
        let sum = train + dev + test
        guard abs(sum - 1) < 1e-9 else {
            throw CorpusError.invalidSplitRatios("train + dev + test = \(sum), expected 1")
        }
    }

    /// The splitKey range `[lo, hi)` of a part (`hi` nil = up to the largest key).
    func keyRange(_ part: SplitPart) -> (lo: Int64, hi: Int64?) {
        let scale = 9_223_372_036_854_775_808.0  // 2^63
        func key(_ fraction: Double) -> Int64 {
            let v = fraction * scale
            return v >= scale ? Int64.max : Int64(v)
        }
        let trainHi = key(train), devHi = key(train + dev)
        switch part {
        case .train: return (0, train >= 1 ? nil : trainHi)
        case .dev: return (trainHi, train + dev >= 1 ? nil : devHi)
        case .test: return (devHi, nil)
        }
    }

    /// SQL condition selecting the part on table alias `d`, with its arguments.
    func condition(_ part: SplitPart) -> (sql: String, arguments: StatementArguments) {
        let (lo, hi) = keyRange(part)
        if let hi {
            return ("(d.fixedSplit = ? OR (d.fixedSplit IS NULL AND d.splitKey >= ? AND d.splitKey < ?))", [part.rawValue, lo, hi])
        }
        return ("(d.fixedSplit = ? OR (d.fixedSplit IS NULL AND d.splitKey >= ?))", [part.rawValue, lo])
    }

    /// The part a document with this hash-derived key falls into (ignoring explicit splits).
    public func part(forKey key: Int64) -> SplitPart {
        for p in SplitPart.allCases {
            let (lo, hi) = keyRange(p)
            if key >= lo && (hi == nil || key < hi!) { return p }
        }
        return .test
    }
}

/// Which documents a stream reads: all, or one part of a split scheme.
public struct DocumentFilter: Sendable {
    public var part: SplitPart?
    public var scheme: String
    public var sourceID: Int64?

    public init(part: SplitPart? = nil, scheme: String = "default", sourceID: Int64? = nil) {
        self.part = part
        self.scheme = scheme
        self.sourceID = sourceID
    }

    public static let all = DocumentFilter()

    /// SQL condition over alias `d` (always non-empty), with arguments.
    func condition(_ db: Database) throws -> (sql: String, arguments: StatementArguments) {
        var parts = ["1"]
        var args = StatementArguments()
        if let part {
            let scheme = try CorpusStore.scheme(named: scheme, db)
            let c = scheme.condition(part)
            parts.append(c.sql)
            args += c.arguments
        }
        if let sourceID {
            parts.append("d.sourceId = ?")
            args += [sourceID]
        }
        return (parts.joined(separator: " AND "), args)
    }
}

extension CorpusStore {
    static func scheme(named name: String, _ db: Database) throws -> SplitScheme {
        if let row = try Row.fetchOne(db, sql: "SELECT * FROM split WHERE name = ?", arguments: [name]) {
            return SplitScheme(name: name, train: row["train"], dev: row["dev"], test: row["test"])
        }
        if name == "default" { return .standard }
        throw CorpusError.unknownSplit(name)
    }

    /// Defines (or redefines) a named split scheme and returns the document counts per part.
    @discardableResult
    public func defineSplit(name: String = "default", train: Double, dev: Double, test: Double) throws -> [SplitPart: Int] {
        let scheme = SplitScheme(name: name, train: train, dev: dev, test: test)
        try scheme.validate()
        try write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO split(name, train, dev, test, createdAt) VALUES (?, ?, ?, ?, ?)",
                arguments: [name, train, dev, test, Date().timeIntervalSince1970])
        }
        return try splitCounts(name: name)
    }

    /// The scheme named `name` ("default" falls back to ``SplitScheme/standard``).
    public func splitScheme(named name: String = "default") throws -> SplitScheme {
        try read { try Self.scheme(named: name, $0) }
    }

    /// Documents per part under the scheme `name`.
    public func splitCounts(name: String = "default") throws -> [SplitPart: Int] {
        try read { db in
            let scheme = try Self.scheme(named: name, db)
            var counts: [SplitPart: Int] = [:]
            for part in SplitPart.allCases {
                let c = scheme.condition(part)
                counts[part] = try Int.fetchOne(db, sql: "SELECT count(*) FROM document d WHERE \(c.sql)", arguments: c.arguments) ?? 0
            }
            return counts
        }
    }
}

/// The split key of a text hash: its first 8 bytes, big-endian, shifted right by one (0 ..< 2^63).
func splitKey(ofHash hash: [UInt8]) -> Int64 {
    var v: UInt64 = 0
    for i in 0..<8 { v = v << 8 | UInt64(hash[i]) }
    return Int64(v >> 1)
}
