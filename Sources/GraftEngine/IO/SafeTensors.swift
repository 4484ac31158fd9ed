import Foundation
import GraftSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One tensor entry of a safetensors header.
public struct SafeTensorInfo: Sendable, Equatable {
    public let name: String
    /// `F32`, `F16`, `BF16`, `I64`, ... as written in the file.
    public let dtype: String
    public let shape: [Int]
    /// Byte range relative to the start of the data section.
    public let begin: Int
    public let end: Int
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A safetensors file: 8-byte little-endian header length, a JSON header
/// (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {String: String}}`),
/// then the raw little-endian tensor bytes.
///
/// Reading validates everything before any tensor is touched (header length, JSON, dtypes,
/// shapes, offsets inside the file, byte sizes matching shapes, no overlaps), so a truncated
/// or corrupt file gives an ``EngineError/corruptFile(file:problem:)`` naming the file and the
/// problem, never a crash. F32, F16 and BF16 read as `Float`; I64 buffers (e.g.
/// `embeddings.position_ids`) read with ``int64s(_:)``.
public final class SafeTensors: @unchecked Sendable {
    public let path: String
    /// Entries in data order.
    public let tensors: [SafeTensorInfo]
    /// The `__metadata__` map (empty if absent).
    public let metadata: [String: String]
    private let bytes: Data
    private let dataStart: Int
    private let byName: [String: Int]

    static let dtypeSizes: [String: Int] = [
        "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
        "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
    ]

    /// Opens and validates a file (memory-mapped).
    public convenience init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw EngineError.io(file: url.path, problem: "cannot read: \(error.localizedDescription)")
        }
        try self.init(data: data, path: url.path)
    }

    /// Parses and validates safetensors bytes; `path` is used in error messages.
    public init(data: Data, path: String) throws {
        self.path = path
        bytes = data
        func bad(_ p: String) -> EngineError { .corruptFile(file: path, problem: p) }
        let size = data.count
        guard size >= 8 else { throw bad("file is \(size) bytes, shorter than the 8-byte header length") }
        var n64: UInt64 = 0
        for i in 0..<8 { n64 |= UInt64(data[data.startIndex + i]) << (8 * UInt64(i)) }
        guard n64 <= 100_000_000 else { throw bad("header length \(n64) is implausibly large (> 100 MB)") }
        let n = Int(n64)
        guard n >= 2 else { throw bad("header length \(n) is too small for a JSON object") }
        guard 8 + n <= size else {
            throw bad("header length \(n) runs past the end of the file (\(size) bytes): file truncated?")
        }
        dataStart = 8 + n
        let headerData = data.subdata(in: data.startIndex + 8 ..< data.startIndex + 8 + n)
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: headerData) } catch {
            throw bad("header is not valid JSON")
        }
        guard let root = json as? [String: Any] else { throw bad("header is not a JSON object") }
        let dataSize = size - dataStart
        var meta: [String: String] = [:]
        var infos: [SafeTensorInfo] = []
        func int(_ v: Any) -> Int? {
            guard let num = v as? NSNumber else { return nil }
            let d = num.doubleValue
            guard d >= 0, d == d.rounded(), d < 9.0e15 else { return nil }
            return Int(d)
        }
        for (key, value) in root {
            if key == "__metadata__" {
                guard let m = value as? [String: Any] else { throw bad("__metadata__ is not an object") }
                for (mk, mv) in m {
                    guard let s = mv as? String else { throw bad("__metadata__ value for \(mk) is not a string") }
                    meta[mk] = s
                }
                continue
            }
            guard let entry = value as? [String: Any] else { throw bad("entry \(key) is not an object") }
            guard let dtype = entry["dtype"] as? String else { throw bad("tensor \(key) has no dtype string") }
            guard let shapeAny = entry["shape"] as? [Any] else { throw bad("tensor \(key) has no shape array") }
            var shape: [Int] = []
            for s in shapeAny {
                guard let d = int(s) else { throw bad("tensor \(key) has an invalid dimension in its shape") }
                shape.append(d)
            }
            guard let offs = entry["data_offsets"] as? [Any], offs.count == 2,
                  let b = int(offs[0]), let e = int(offs[1]) else {
                throw bad("tensor \(key) has no valid data_offsets [begin, end]")
            }
            guard b <= e else { throw bad("tensor \(key) has data_offsets begin \(b) > end \(e)") }
            guard e <= dataSize else {
                throw bad("tensor \(key) data ends at byte \(e) but the data section has only \(dataSize) bytes: file truncated?")
            }
            var elements = 1
            for d in shape {
                let (r, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw bad("tensor \(key) shape \(shape) overflows") }
                elements = r
            }
            if let es = SafeTensors.dtypeSizes[dtype] {
                let (bytes, o) = elements.multipliedReportingOverflow(by: es)
                guard !o else { throw bad("tensor \(key) shape \(shape) overflows") }
                guard bytes == e - b else {
                    throw bad("tensor \(key) is \(dtype) \(shape) = \(bytes) bytes but data_offsets span \(e - b) bytes")
                }
            }
            infos.append(SafeTensorInfo(name: key, dtype: dtype, shape: shape, begin: b, end: e))
        }
        infos.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        for i in infos.indices.dropFirst() where infos[i].begin < infos[i - 1].end {
            throw bad("tensors \(infos[i - 1].name) and \(infos[i].name) overlap")
        }
        tensors = infos
        metadata = meta
        var idx: [String: Int] = [:]
        for (i, t) in infos.enumerated() { idx[t.name] = i }
        byName = idx
    }

    /// The entry for a name.
    public func info(_ name: String) throws -> SafeTensorInfo {
        guard let i = byName[name] else { throw EngineError.unknownParameter("\(name) (not in \(path))") }
        return tensors[i]
    }

    public var names: [String] { tensors.map(\.name) }

    /// Reads a F32/F16/BF16 tensor converted to `Float`.
    public func floats(_ name: String) throws -> [Float] {
        let t = try info(name)
        var out = [Float](repeating: 0, count: t.elementCount)
        try out.withUnsafeMutableBufferPointer { try readFloats(name, into: $0.baseAddress!) }
        return out
    }

    /// Reads a F32/F16/BF16 tensor into `dst` (`elementCount` floats).
    public func readFloats(_ name: String, into dst: UnsafeMutablePointer<Float>) throws {
        let t = try info(name)
        let n = t.elementCount
        let start = dataStart + t.begin
        try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let src = raw.baseAddress! + start
            switch t.dtype {
            case "F32":
                memcpy(dst, src, n * 4)
            case "F16":
                for i in 0..<n { dst[i] = halfToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
            case "BF16":
                for i in 0..<n {
                    let h = src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                    dst[i] = Float(bitPattern: UInt32(h) << 16)
                }
            default:
                throw EngineError.unsupportedDType(file: path, tensor: name, dtype: t.dtype)
            }
        }
    }

    /// Reads an I64 tensor.
    public func int64s(_ name: String) throws -> [Int64] {
        let t = try info(name)
        guard t.dtype == "I64" else { throw EngineError.unsupportedDType(file: path, tensor: name, dtype: t.dtype) }
        let start = dataStart + t.begin
        return bytes.withUnsafeBytes { raw in
            (0..<t.elementCount).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: start + 8 * $0, as: Int64.self)) }
        }
    }

    /// IEEE half -> float, including subnormals, infinities and NaN.
    @inline(__always)
    static func halfToFloatBits(_ h: UInt16) -> UInt32 {
        let sign = UInt32(h & 0x8000) << 16
        let exp = Int((h >> 10) & 0x1F)
        var mant = UInt32(h & 0x3FF)
        if exp == 0x1F { return sign | 0x7F80_0000 | (mant << 13) }
        if exp == 0 {
            if mant == 0 { return sign }
            var e = -1
            repeat { mant <<= 1; e += 1 } while mant & 0x400 == 0
            mant &= 0x3FF
            return sign | UInt32(127 - 15 - e) << 23 | (mant << 13)
        }
        return sign | UInt32(exp - 15 + 127) << 23 | (mant << 13)
    }

    /// A tensor to write: name, shape and `shape.product` floats.
    public struct Entry {
        public let name: String
        public let shape: [Int]
        public let data: UnsafePointer<Float>
        public init(name: String, shape: [Int], data: UnsafePointer<Float>) {
            self.name = name; self.shape = shape; self.data = data
        }
    }

    /// Writes F32 tensors (in the given order) and string metadata atomically: the bytes go to
    /// a temporary file in the same directory, which is fsynced and renamed over `url`.
    public static func write(_ entries: [Entry], metadata: [String: String] = [:], to url: URL) throws {
        var names = Set<String>()
        for e in entries {
            guard names.insert(e.name).inserted, e.name != "__metadata__" else {
                throw EngineError.duplicateParameter(e.name)
            }
        }
        var members: [(String, JSONValue)] = []
        if !metadata.isEmpty {
            members.append(("__metadata__", .object(metadata.keys.sorted().map { ($0, .string(metadata[$0]!)) })))
        }
        var offset = 0
        for e in entries {
            let bytes = e.shape.reduce(1, *) * 4
            members.append((e.name, .object([("dtype", .string("F32")), ("shape", .array(e.shape.map { .number(Double($0)) })),
                                             ("data_offsets", .array([.number(Double(offset)), .number(Double(offset + bytes))]))])))
            offset += bytes
        }
        var headerBytes = Array(JSONValue.object(members).serialized().utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var lenBytes = [UInt8](repeating: 0, count: 8)
        for i in 0..<8 { lenBytes[i] = UInt8((UInt64(headerBytes.count) >> (8 * UInt64(i))) & 0xFF) }
        do {
            try AtomicFile.write(to: url.path) { file in
                try file.write(lenBytes)
                try file.write(headerBytes)
                for e in entries { try file.write(UnsafeRawBufferPointer(start: e.data, count: e.shape.reduce(1, *) * 4)) }
            }
        } catch let error as SupportError {
            throw EngineError.io(file: url.path, problem: "\(error)")
        }
    }
}

@inline(__always) func halfToFloat(_ h: UInt16) -> Float { Float(bitPattern: SafeTensors.halfToFloatBits(h)) }
