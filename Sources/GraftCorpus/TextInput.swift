import Foundation
import GraftSupport
import GraftTokenizers

/// Size of a file in bytes, or nil when it cannot be stat'ed.
func fileSize(_ path: String) -> Int? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    return Int(st.st_size)
}

/// Whether `path` names a regular file (not a directory, pipe, socket or device).
func isRegularFile(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
}

/// Reads a whole file into memory (used for single-document text files and SQuAD JSON).
func readWholeFile(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CorpusError.unreadableFile(path: path, reason: "no such file or not readable")
    }
    return [UInt8](data)
}

/// SHA-256 of a file's bytes, read in 1 MiB chunks.
func hashFile(_ path: String) throws -> [UInt8] {
    guard let handle = fopen(path, "rb") else {
        throw CorpusError.unreadableFile(path: path, reason: String(cString: strerror(errno)))
    }
    defer { fclose(handle) }
    var hasher = SHA256()
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = buffer.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, handle) }
        if n == 0 { break }
        buffer.withUnsafeBytes { hasher.update(buffer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }
    return hasher.finalize()
}

/// Decodes UTF-8 exactly, or throws ``CorpusError/invalidUTF8(file:line:byteOffset:)`` with the
/// absolute byte offset of the first bad byte. `lineAt` maps an offset inside `bytes` to a line
/// number (for whole-file input); for a single line pass a constant.
func decodeUTF8(_ bytes: ArraySlice<UInt8>, file: String, baseOffset: Int, lineAt: (Int) -> Int) throws -> String {
    if let s = String(validating: bytes, as: UTF8.self) { return s }
    let rel = UTF8Validation.firstInvalidByte(bytes) ?? 0
    throw CorpusError.invalidUTF8(file: file, line: lineAt(rel), byteOffset: baseOffset + rel)
}

/// 1-based line numbers of byte offsets in a whole file's bytes: the newlines' offsets found on
/// the first question, each answer then a binary search (a file with an error per record is
/// not scanned once per error).
final class LineIndex {
    private let bytes: [UInt8]
    private lazy var newlines: [Int] = bytes.indices.filter { bytes[$0] == 0x0A }

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The line holding byte `offset` (1 + the newlines before it).
    func line(at offset: Int) -> Int {
        var lo = 0, hi = newlines.count
        while lo < hi { let mid = (lo + hi) / 2; if newlines[mid] < offset { lo = mid + 1 } else { hi = mid } }
        return lo + 1
    }
}

extension String {
    /// Number of Unicode scalars (code points), the unit of all character offsets in the store.
    var scalarCount: Int { unicodeScalars.count }
}
