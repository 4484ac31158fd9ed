import Foundation

// Building a `JSONValue` from Swift values, so that every JSON text goes through
// `JSONValue.serialized`: `Encodable` values (in place of JSONEncoder) and Foundation JSON
// objects (`[String: Any]` as JSONSerialization reads them, in place of its writer).

extension JSONValue {
    /// The JSON value of an `Encodable` value, as `JSONEncoder` with default strategies would
    /// write it: integers exact, `Float` in its own shortest digits, `Double` shortest
    /// round-trip, `nil` optionals left out, `URL` as its absolute string, `Data` as base64,
    /// `Date` as seconds since 2001 (the default `deferredToDate`).
    ///
    /// Members keep the order in which the value encodes them (a struct's declaration order);
    /// with `sortedKeys`, every object's keys are sorted by their UTF-8 bytes (as JSONEncoder's
    /// `.sortedKeys`, so the same value gives the same text).
    /// - Throws: `EncodingError.invalidValue` for a NaN or infinite number (as JSONEncoder).
    public init(encoding value: some Encodable, sortedKeys: Bool = false) throws {
        let root = EncodingNode()
        try root.store(value, codingPath: [])
        self = root.value(sortedKeys: sortedKeys)
    }

    /// The JSON value of Foundation JSON objects (`NSNull`, `String`, `NSNumber` and the Swift
    /// numbers and `Bool`, arrays, `[String: Any]`), written as JSONSerialization wrote them:
    /// booleans as `true`/`false`, integers and decimals exactly, a `Float` in its own shortest
    /// digits, a `Double` shortest round-trip. A dictionary has no order, so its keys are sorted
    /// as JSONSerialization's `.sortedKeys` sorts them (``foundationKeyOrder(_:_:)``): document
    /// metadata and exports keep the bytes they had when JSONSerialization wrote them.
    /// - Throws: ``SupportError/invalidArgument(_:)`` for anything else.
    public init(jsonObject: Any) throws {
        switch jsonObject {
        case is NSNull: self = .null
        case let s as String: self = .string(s)
        case let n as NSNumber: self = JSONValue(number: n)
        case let items as [Any]: self = .array(try items.map(JSONValue.init(jsonObject:)))
        case let members as [String: Any]:
            self = .object(try members.keys.sorted(by: JSONValue.foundationKeyOrder).map { ($0, try JSONValue(jsonObject: members[$0]!)) })
        default: throw SupportError.invalidArgument("\(type(of: jsonObject)) is not a JSON value")
        }
    }

    private init(number n: NSNumber) {
        if type(of: n) == type(of: NSNumber(value: true)) { self = .bool(n.boolValue); return }
        if n is NSDecimalNumber { self = .exactNumber(n.stringValue); return }
        switch String(cString: n.objCType) {
        case "d": self = .number(n.doubleValue)
        case "f": self = .float(n.floatValue)
        default: self = .exactNumber(n.stringValue)  // an integer type
        }
    }

    /// JSONSerialization's `.sortedKeys` order: Foundation's comparison with the numeric,
    /// case-insensitive and forced-ordering options in the system locale (`"a2" < "a10"`,
    /// `"a" < "B"`). Kept only so that stored document metadata keeps its bytes; new
    /// formats sort by UTF-8 bytes (``init(encoding:sortedKeys:)``).
    public static func foundationKeyOrder(_ a: String, _ b: String) -> Bool {
        a.compare(b, options: [.numeric, .caseInsensitive, .forcedOrdering], range: a.startIndex..<a.endIndex,
                  locale: NSLocale.system) == .orderedAscending
    }
}

// MARK: - The Encoder

/// One value under construction: a finished value, an object or an array whose members are
/// nodes themselves (containers hand out nested containers that fill in later).
final class EncodingNode {
    enum Kind { case unset, value, object, array }
    var kind = Kind.unset
    var primitive = JSONValue.null
    var keys: [String] = []
    var members: [String: EncodingNode] = [:]
    var items: [EncodingNode] = []

    func value(sortedKeys: Bool) -> JSONValue {
        switch kind {
        case .unset: return .object([])  // asked for no container (JSONEncoder writes {})
        case .value: return primitive
        case .array: return .array(items.map { $0.value(sortedKeys: sortedKeys) })
        case .object:
            let ordered = sortedKeys ? keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) } : keys
            return .object(ordered.map { ($0, members[$0]!.value(sortedKeys: sortedKeys)) })
        }
    }

    /// The member `key` of this object node (created, or reused when encoded again).
    func member(_ key: String) -> EncodingNode {
        becomeObject()
        if let node = members[key] { return node }
        let node = EncodingNode()
        keys.append(key)
        members[key] = node
        return node
    }

    func appended() -> EncodingNode {
        becomeArray()
        items.append(EncodingNode())
        return items[items.count - 1]
    }

    func becomeObject() { if kind != .object { kind = .object; keys = []; members = [:] } }
    func becomeArray() { if kind != .array { kind = .array; items = [] } }

    func store(_ value: some Encodable, codingPath: [CodingKey]) throws {
        switch value {
        case let v as Double: try store(double: v, codingPath: codingPath)
        case let v as Float:
            guard v.isFinite else { throw EncodingNode.nonFinite(v, codingPath) }
            store(primitive: .float(v))
        case let v as URL: store(primitive: .string(v.absoluteString))
        case let v as Data: store(primitive: .string(v.base64EncodedString()))
        case let v as Decimal: store(primitive: .exactNumber(v.description))
        default: try value.encode(to: NodeEncoder(node: self, codingPath: codingPath))
        }
    }

    func store(double v: Double, codingPath: [CodingKey]) throws {
        guard v.isFinite else { throw EncodingNode.nonFinite(v, codingPath) }
        store(primitive: .number(v))
    }

    /// A finished value (`null`, `Bool`, `String`, a number).
    func store(primitive value: JSONValue) { kind = .value; primitive = value }

    static func nonFinite(_ value: Any, _ codingPath: [CodingKey]) -> EncodingError {
        EncodingError.invalidValue(value, .init(codingPath: codingPath, debugDescription: "\(value) is not a valid JSON number"))
    }
}

struct NodeEncoder: Encoder {
    let node: EncodingNode
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        node.becomeObject()
        return KeyedEncodingContainer(KeyedNodeContainer<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> UnkeyedEncodingContainer {
        node.becomeArray()
        return UnkeyedNodeContainer(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> SingleValueEncodingContainer { SingleNodeContainer(node: node, codingPath: codingPath) }
}

/// A coding key for positions in arrays and the `super` key.
struct IndexKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) { stringValue = String(intValue); self.intValue = intValue }
}

/// The one place the three containers put a value: every primitive overload of the
/// `Encoder` protocols forwards here with the node it writes into.
protocol NodeContainer {
    var codingPath: [CodingKey] { get }
}

extension NodeContainer {
    func put(_ value: some Encodable, into node: EncodingNode, key: CodingKey?) throws {
        let path = key.map { codingPath + [$0] } ?? codingPath
        switch value {
        case let v as Bool: node.store(primitive: .bool(v))
        case let v as String: node.store(primitive: .string(v))
        case let v as any BinaryInteger: node.store(primitive: .exactNumber(String(describing: v)))
        default: try node.store(value, codingPath: path)
        }
    }
}

struct KeyedNodeContainer<Key: CodingKey>: KeyedEncodingContainerProtocol, NodeContainer {
    let node: EncodingNode
    let codingPath: [CodingKey]

    mutating func encodeNil(forKey key: Key) throws { node.member(key.stringValue).store(primitive: .null) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: String, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try put(value, key) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { try put(value, key) }

    private func put(_ value: some Encodable, _ key: Key) throws {
        try put(value, into: node.member(key.stringValue), key: key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        NodeEncoder(node: node.member(key.stringValue), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> UnkeyedEncodingContainer {
        NodeEncoder(node: node.member(key.stringValue), codingPath: codingPath + [key]).unkeyedContainer()
    }

    mutating func superEncoder() -> Encoder { superEncoder(key: IndexKey(stringValue: "super")) }
    mutating func superEncoder(forKey key: Key) -> Encoder { superEncoder(key: key) }

    private func superEncoder(key: CodingKey) -> Encoder {
        NodeEncoder(node: node.member(key.stringValue), codingPath: codingPath + [key])
    }
}

struct UnkeyedNodeContainer: UnkeyedEncodingContainer, NodeContainer {
    let node: EncodingNode
    let codingPath: [CodingKey]
    var count: Int { node.items.count }

    private var nextKey: IndexKey { IndexKey(intValue: node.items.count) }

    mutating func encodeNil() throws { node.appended().store(primitive: .null) }
    mutating func encode(_ value: Bool) throws { try append(value) }
    mutating func encode(_ value: String) throws { try append(value) }
    mutating func encode(_ value: Double) throws { try append(value) }
    mutating func encode(_ value: Float) throws { try append(value) }
    mutating func encode(_ value: Int) throws { try append(value) }
    mutating func encode(_ value: Int8) throws { try append(value) }
    mutating func encode(_ value: Int16) throws { try append(value) }
    mutating func encode(_ value: Int32) throws { try append(value) }
    mutating func encode(_ value: Int64) throws { try append(value) }
    mutating func encode(_ value: UInt) throws { try append(value) }
    mutating func encode(_ value: UInt8) throws { try append(value) }
    mutating func encode(_ value: UInt16) throws { try append(value) }
    mutating func encode(_ value: UInt32) throws { try append(value) }
    mutating func encode(_ value: UInt64) throws { try append(value) }
    mutating func encode<T: Encodable>(_ value: T) throws { try append(value) }

    private func append(_ value: some Encodable) throws {
        let key = nextKey
        try put(value, into: node.appended(), key: key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let key = nextKey
        return NodeEncoder(node: node.appended(), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> UnkeyedEncodingContainer {
        let key = nextKey
        return NodeEncoder(node: node.appended(), codingPath: codingPath + [key]).unkeyedContainer()
    }

    mutating func superEncoder() -> Encoder {
        let key = nextKey
        return NodeEncoder(node: node.appended(), codingPath: codingPath + [key])
    }
}

struct SingleNodeContainer: SingleValueEncodingContainer, NodeContainer {
    let node: EncodingNode
    let codingPath: [CodingKey]

    mutating func encodeNil() throws { node.store(primitive: .null) }
    mutating func encode(_ value: Bool) throws { try put(value, into: node, key: nil) }
    mutating func encode(_ value: String) throws { try put(value, into: node, key: nil) }
    mutating func encode(_ value: Double) throws { try put(value, into: node, key: nil) }
    mutating func encode(_ value: Float) throws { try put(value, into: node, key: nil) }
    mutating func encode(_ value: Int) throws { try put(value, into: node, key: nil) }
    mutating func encode(_ value: Int8) throws { try put(value, into: node, key: nil) }
    mutating func encode(_ value: Int16) throws { try put(value, into: node, key: nil) }
    mutating func encode(_ value: Int32) throws { try put(value, into: node, key: nil) }
    mutating func encode(_ value: Int64) throws { try put(value, into: node, key: nil) }
    mutating func encode(_ value: UInt) throws { try put(value, into: node, key: nil) }
    mutating func encode(_ value: UInt8) throws { try put(value, into: node, key: nil) }
    mutating func encode(_ value: UInt16) throws { try put(value, into: node, key: nil) }
    mutating func encode(_ value: UInt32) throws { try put(value, into: node, key: nil) }
    mutating func encode(_ value: UInt64) throws { try put(value, into: node, key: nil) }
    mutating func encode<T: Encodable>(_ value: T) throws { try put(value, into: node, key: nil) }
}
