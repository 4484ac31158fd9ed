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

/// 1-based line number of byte offset `offset` in `bytes`.
func lineNumber(in bytes: [UInt8], at offset: Int) -> Int {
    var line = 1
    var i = 0
    let end = min(offset, bytes.count)
    while i < end {
        if bytes[i] == 0x0A { line += 1 }
        i += 1
    }
    return line
}

extension String {
    /// Number of Unicode scalars (code points), the unit of all character offsets in the store.
    var scalarCount: Int { unicodeScalars.count }
}
