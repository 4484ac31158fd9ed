/// A vocabulary: token strings by id, and ids looked up by the token's exact UTF-8 bytes.
///
/// Lookups never go through `String` hashing, which treats canonically equivalent strings
/// ("é" and "e\u{301}") as equal; two such tokens are two entries here.
public struct Vocabulary: Sendable {
    /// Token strings, indexed by id. Ids without a token (holes in a sparse vocabulary) hold "".
    public private(set) var tokens: [String]
    private var table: ByteKeyTable

    /// Builds a vocabulary whose ids are the positions in `tokens`.
    public init(tokens: [String]) {
        self.tokens = tokens
        table = ByteKeyTable(capacity: tokens.count)
        for (id, token) in tokens.enumerated() {
            var t = token
            t.withUTF8 { table.insert($0, value: Int32(id)) }
        }
    }

    /// Builds a vocabulary from `(token, id)` pairs; ids need not be contiguous.
    public init(pairs: [(String, Int)]) throws {
        let size = (pairs.map(\.1).max() ?? -1) + 1
        var tokens = [String](repeating: "", count: size)
        var table = ByteKeyTable(capacity: pairs.count)
        for (token, id) in pairs {
            guard id >= 0 else { throw TokenizerError.invalidArgument("negative id \(id) for token \(token)") }
            tokens[id] = token
            var t = token
            t.withUTF8 { table.insert($0, value: Int32(id)) }
        }
        self.tokens = tokens
        self.table = table
    }

    public var count: Int { tokens.count }

    /// The id of a token given as a string (compared by exact scalars).
    public func id(_ token: String) -> Int? {
        var t = token
        let v = t.withUTF8 { table.find($0) }
        return v < 0 ? nil : Int(v)
    }

    /// The id of a token given as UTF-8 bytes.
    @inline(__always)
    func id(bytes: UnsafeBufferPointer<UInt8>) -> Int32 {
        table.find(bytes)
    }

    /// The token of an id, if the id is in range.
    public func token(_ id: Int) -> String? {
        id >= 0 && id < tokens.count ? tokens[id] : nil
    }

    /// Adds a token at the next id (no-op if present); returns its id.
    @discardableResult
    public mutating func add(_ token: String) -> Int {
        if let existing = id(token) { return existing }
        let id = tokens.count
        tokens.append(token)
        var t = token
        t.withUTF8 { table.insert($0, value: Int32(id)) }
        return id
    }
}

/// Open-addressing hash table from byte strings to `Int32`, with its keys in one arena.
struct ByteKeyTable: Sendable {
    private var arena: [UInt8] = []
    private var keyStart: [Int32] = []
    private var keyLength: [Int32] = []
    private var values: [Int32] = []
    private var slots: [Int32]
    private var mask: Int

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 + 2 { size <<= 1 }
        slots = [Int32](repeating: -1, count: size)
        mask = size - 1
    }

    @inline(__always)
    static func hash(_ key: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325
        for b in key { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return h ^ (h >> 29)
    }

    @inline(__always)
    func find(_ key: UnsafeBufferPointer<UInt8>) -> Int32 {
        var i = Int(truncatingIfNeeded: ByteKeyTable.hash(key)) & mask
        return slots.withUnsafeBufferPointer { sl in
            arena.withUnsafeBufferPointer { ar in
                while true {
                    let e = sl[i]
                    if e < 0 { return -1 }
                    let e2 = Int(e)
                    if Int(keyLength[e2]) == key.count {
                        let start = Int(keyStart[e2])
                        var same = true
                        for k in 0..<key.count where ar[start + k] != key[k] { same = false; break }
                        if same { return values[e2] }
                    }
                    i = (i + 1) & mask
                }
            }
        }
    }

    mutating func insert(_ key: UnsafeBufferPointer<UInt8>, value: Int32) {
        if find(key) >= 0 {
            // Keep the first id for duplicate keys, as HF does for vocab.txt duplicates.
            return
        }
        if (values.count + 1) * 2 > slots.count { grow() }
        let entry = Int32(values.count)
        keyStart.append(Int32(arena.count))
        keyLength.append(Int32(key.count))
        arena.append(contentsOf: key)
        values.append(value)
        place(entry, hash: ByteKeyTable.hash(key))
    }

    private mutating func place(_ entry: Int32, hash: UInt64) {
        var i = Int(truncatingIfNeeded: hash) & mask
        while slots[i] >= 0 { i = (i + 1) & mask }
        slots[i] = entry
    }

    private mutating func grow() {
        slots = [Int32](repeating: -1, count: slots.count * 2)
        mask = slots.count - 1
        for e in 0..<values.count {
            let start = Int(keyStart[e]), len = Int(keyLength[e])
            let h = arena.withUnsafeBufferPointer { ByteKeyTable.hash(UnsafeBufferPointer(rebasing: $0[start..<(start + len)])) }
            place(Int32(e), hash: h)
        }
    }
}

/// Open-addressing hash map from `UInt64` keys to two `Int32` values (BPE merges, trie edges).
struct PairTable: Sendable {
    private var keys: [UInt64]
    private var first: [Int32]
    private var second: [Int32]
    private var mask: Int
    private(set) var count = 0
    private static let empty = UInt64.max

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 + 2 { size <<= 1 }
        keys = [UInt64](repeating: PairTable.empty, count: size)
        first = [Int32](repeating: 0, count: size)
        second = [Int32](repeating: 0, count: size)
        mask = size - 1
    }

    @inline(__always)
    static func slot(_ key: UInt64, _ mask: Int) -> Int {
        var h = key &* 0x9E3779B97F4A7C15
        h ^= h >> 32
        return Int(truncatingIfNeeded: h) & mask
    }

    /// Looks up `key`; returns `(first, second)` or nil.
    @inline(__always)
    func find(_ key: UInt64) -> (Int32, Int32)? {
        var i = PairTable.slot(key, mask)
        return keys.withUnsafeBufferPointer { k in
            while true {
                let e = k[i]
                if e == key { return (first[i], second[i]) }
                if e == PairTable.empty { return nil }
                i = (i + 1) & mask
            }
        }
    }

    /// Inserts if absent; returns false when the key was already there.
    @discardableResult
    mutating func insert(_ key: UInt64, _ a: Int32, _ b: Int32) -> Bool {
        if (count + 1) * 2 > keys.count { grow() }
        var i = PairTable.slot(key, mask)
        while keys[i] != PairTable.empty {
            if keys[i] == key { return false }
            i = (i + 1) & mask
        }
        keys[i] = key; first[i] = a; second[i] = b
        count += 1
        return true
    }

    private mutating func grow() {
        let oldKeys = keys, oldFirst = first, oldSecond = second
        let size = keys.count * 2
        keys = [UInt64](repeating: PairTable.empty, count: size)
        first = [Int32](repeating: 0, count: size)
        second = [Int32](repeating: 0, count: size)
        mask = size - 1
        count = 0
        for i in 0..<oldKeys.count where oldKeys[i] != PairTable.empty {
            insert(oldKeys[i], oldFirst[i], oldSecond[i])
        }
    }
}
