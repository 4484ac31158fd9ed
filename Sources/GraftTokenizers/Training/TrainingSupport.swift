// Internal building blocks shared by the word counter and the trainers: byte-string hashing,
// a byte-keyed counting table, a UInt64-keyed index table, UTF-8 helpers and a parallel loop.
import Dispatch

// MARK: - Hashing

/// Hashes a byte string (8 bytes at a time, multiply-xorshift mixing). Not cryptographic.
@inline(__always)
func trainerHashBytes(_ base: UnsafePointer<UInt8>?, _ count: Int) -> UInt64 {
    var h: UInt64 = 0x243F_6A88_85A3_08D3 ^ (UInt64(truncatingIfNeeded: count) &* 0x9E37_79B9_7F4A_7C15)
    guard let base, count > 0 else { return h }
    let raw = UnsafeRawPointer(base)
    var i = 0
    while i + 8 <= count {
        let w = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        h = (h ^ w) &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 29
        i += 8
    }
    if i < count {
        var w: UInt64 = 0
        var shift: UInt64 = 0
        while i < count {
            w |= UInt64(base[i]) << shift
            shift += 8
            i += 1
        }
        h = (h ^ w) &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 29
    }
    h ^= h >> 32
    h = h &* 0xD6E8_FEB8_6659_FD93
    h ^= h >> 32
    return h
}

/// Mixes a 64-bit key (a packed symbol pair) into a well-spread hash.
@inline(__always)
func trainerHashKey(_ key: UInt64) -> UInt64 {
    var h = key &* 0x9E37_79B9_7F4A_7C15
    h ^= h >> 31
    h = h &* 0xBF58_476D_1CE4_E5B9
    h ^= h >> 29
    return h
}

// MARK: - Byte-string counting table

/// An open-addressing hash table from byte strings to 64-bit counts that keeps insertion
/// order. Keys are compared byte for byte, never through `String` equality, so canonically
/// equivalent spellings ("é" and "e\u{301}") stay distinct.
struct ByteCountTable: Sendable {
    /// All keys, concatenated in insertion order.
    private(set) var storage: [UInt8] = []
    /// `ends[i]` is the end offset of key `i` in `storage` (its start is `ends[i - 1]` or 0).
    private(set) var ends: [Int] = []
    private(set) var hashes: [UInt64] = []
    private(set) var counts: [Int64] = []
    private var slots: [Int32]
    private var mask: Int

    init(minimumCapacity: Int = 1024) {
        var capacity = 16
        while capacity < minimumCapacity * 2 { capacity <<= 1 }
        slots = Array(repeating: -1, count: capacity)
        mask = capacity - 1
    }

    /// Number of distinct keys.
    var count: Int { counts.count }

    @inline(__always)
    func range(of entry: Int) -> Range<Int> {
        (entry == 0 ? 0 : ends[entry - 1])..<ends[entry]
    }

    /// Adds `amount` to the count of `key`, inserting it if new. Returns the entry index.
    @discardableResult
    mutating func add(_ key: UnsafeBufferPointer<UInt8>, amount: Int64) -> Int {
        add(key, hash: trainerHashBytes(key.baseAddress, key.count), amount: amount)
    }

    @discardableResult
    mutating func add(_ key: UnsafeBufferPointer<UInt8>, hash: UInt64, amount: Int64) -> Int {
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = Int(slots[slot])
            if entry < 0 { break }
            if hashes[entry] == hash && keyEquals(entry, key) {
                counts[entry] += amount
                return entry
            }
            slot = (slot + 1) & mask
        }
        let entry = counts.count
        storage.append(contentsOf: key)
        ends.append(storage.count)
        hashes.append(hash)
        counts.append(amount)
        slots[slot] = Int32(entry)
        if counts.count * 2 > slots.count { grow() }
        return entry
    }

    /// The entry index of `key`, or nil.
    func find(_ key: UnsafeBufferPointer<UInt8>) -> Int? {
        let hash = trainerHashBytes(key.baseAddress, key.count)
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = Int(slots[slot])
            if entry < 0 { return nil }
            if hashes[entry] == hash && keyEquals(entry, key) { return entry }
            slot = (slot + 1) & mask
        }
    }

    @inline(__always)
    private func keyEquals(_ entry: Int, _ key: UnsafeBufferPointer<UInt8>) -> Bool {
        let r = range(of: entry)
        if r.count != key.count { return false }
        if r.isEmpty { return true }
        return storage.withUnsafeBufferPointer { s in
            memcmpBytes(s.baseAddress! + r.lowerBound, key.baseAddress!, r.count)
        }
    }

    private mutating func grow() {
        let capacity = slots.count * 2
        var newSlots = [Int32](repeating: -1, count: capacity)
        let newMask = capacity - 1
        for entry in 0..<counts.count {
            var slot = Int(truncatingIfNeeded: hashes[entry]) & newMask
            while newSlots[slot] >= 0 { slot = (slot + 1) & newMask }
            newSlots[slot] = Int32(entry)
        }
        slots = newSlots
        mask = newMask
    }

    /// Adds every entry of `other` into this table (its insertion order is kept after ours).
    mutating func merge(_ other: ByteCountTable) {
        other.storage.withUnsafeBufferPointer { s in
            for entry in 0..<other.count {
                let r = other.range(of: entry)
                let key = UnsafeBufferPointer(rebasing: s[r])
                add(key, hash: other.hashes[entry], amount: other.counts[entry])
            }
        }
    }
}

@inline(__always)
func memcmpBytes(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    var i = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while i + 8 <= n {
        if ra.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            != rb.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
        i += 8
    }
    while i < n {
        if a[i] != b[i] { return false }
        i += 1
    }
    return true
}

// MARK: - UInt64-keyed index table

/// An open-addressing map from non-reserved `UInt64` keys (packed symbol pairs) to dense
/// `Int32` indices assigned in insertion order.
struct PairIndexTable {
    private var keys: [UInt64]
    private var values: [Int32]
    private var mask: Int
    private(set) var count = 0
    private static let empty = UInt64.max

    init(minimumCapacity: Int = 1024) {
        var capacity = 16
        while capacity < minimumCapacity * 2 { capacity <<= 1 }
        keys = Array(repeating: PairIndexTable.empty, count: capacity)
        values = Array(repeating: -1, count: capacity)
        mask = capacity - 1
    }

    /// The index of `key`, or -1.
    @inline(__always)
    func find(_ key: UInt64) -> Int32 {
        var slot = Int(truncatingIfNeeded: trainerHashKey(key)) & mask
        while true {
            let k = keys[slot]
            if k == key { return values[slot] }
            if k == PairIndexTable.empty { return -1 }
            slot = (slot + 1) & mask
        }
    }

    /// The index of `key`, inserting it with index `count` if absent. `inserted` tells which.
    @inline(__always)
    mutating func findOrInsert(_ key: UInt64, inserted: inout Bool) -> Int32 {
        var slot = Int(truncatingIfNeeded: trainerHashKey(key)) & mask
        while true {
            let k = keys[slot]
            if k == key { inserted = false; return values[slot] }
            if k == PairIndexTable.empty { break }
            slot = (slot + 1) & mask
        }
        let index = Int32(count)
        keys[slot] = key
        values[slot] = index
        count += 1
        inserted = true
        if count * 2 > keys.count { grow() }
        return index
    }

    private mutating func grow() {
        let capacity = keys.count * 2
        var newKeys = [UInt64](repeating: PairIndexTable.empty, count: capacity)
        var newValues = [Int32](repeating: -1, count: capacity)
        let newMask = capacity - 1
        for slot in 0..<keys.count where keys[slot] != PairIndexTable.empty {
            var s = Int(truncatingIfNeeded: trainerHashKey(keys[slot])) & newMask
            while newKeys[s] != PairIndexTable.empty { s = (s + 1) & newMask }
            newKeys[s] = keys[slot]
            newValues[s] = values[slot]
        }
        keys = newKeys
        values = newValues
        mask = newMask
    }
}

@inline(__always)
func packPair(_ a: Int32, _ b: Int32) -> UInt64 {
    (UInt64(UInt32(bitPattern: a)) << 32) | UInt64(UInt32(bitPattern: b))
}

// MARK: - UTF-8

/// Decodes the scalar starting at `i` in valid UTF-8 and advances `i` past it.
@inline(__always)
func decodeUTF8Scalar(_ p: UnsafePointer<UInt8>, _ i: inout Int) -> UInt32 {
    let b0 = UInt32(p[i])
    if b0 < 0x80 {
        i += 1
        return b0
    } else if b0 < 0xE0 {
        let v = ((b0 & 0x1F) << 6) | (UInt32(p[i + 1]) & 0x3F)
        i += 2
        return v
    } else if b0 < 0xF0 {
        let v = ((b0 & 0x0F) << 12) | ((UInt32(p[i + 1]) & 0x3F) << 6) | (UInt32(p[i + 2]) & 0x3F)
        i += 3
        return v
    } else {
        let v = ((b0 & 0x07) << 18) | ((UInt32(p[i + 1]) & 0x3F) << 12)
            | ((UInt32(p[i + 2]) & 0x3F) << 6) | (UInt32(p[i + 3]) & 0x3F)
        i += 4
        return v
    }
}
