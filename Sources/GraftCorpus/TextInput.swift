import Foundation
import GraftTokenizers

/// One line of an input file: its bytes (without the line break), 1-based number, and the byte
/// offset of its first byte in the file.
struct InputLine {
    var bytes: ArraySlice<UInt8>
    var number: Int
    var offset: Int
}

/// Reads a file line by line in 1 MiB chunks (bounded memory, whatever the file size).
///
/// Lines end at LF; a CR before the LF is dropped too (CRLF files). The last line need not end
/// with a line break.
struct LineReader {
    let path: String
    private let handle: UnsafeMutablePointer<FILE>
    private var chunk = [UInt8]()
    private var readBuffer = [UInt8](repeating: 0, count: 1 << 20)
    private var start = 0
    private var eof = false
    private var lineNumber = 0
    private var consumed = 0
    /// Bytes of the file handed out so far (for progress).
    var bytesRead: Int { consumed }

    init(path: String) throws {
        self.path = path
        guard let handle = fopen(path, "rb") else {
            throw CorpusError.unreadableFile(path: path, reason: String(cString: strerror(errno)))
        }
        self.handle = handle
    }

    func close() { fclose(handle) }

    private mutating func refill() {
        if start > 0 {
            chunk.removeSubrange(0..<start)
            start = 0
        }
        let n = readBuffer.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, handle) }
        if n == 0 { eof = true; return }
        readBuffer.withUnsafeBytes { chunk.append(contentsOf: $0[0..<n]) }
    }

    mutating func next() -> InputLine? {
        while true {
            if let nl = chunk[start...].firstIndex(of: 0x0A) {
                var end = nl
                if end > start && chunk[end - 1] == 0x0D { end -= 1 }
                lineNumber += 1
                let line = InputLine(bytes: chunk[start..<end], number: lineNumber, offset: consumed)
                consumed += nl + 1 - start
                start = nl + 1
                return line
            }
            if eof {
                if start < chunk.count {
                    var end = chunk.count
                    if chunk[end - 1] == 0x0D { end -= 1 }
                    lineNumber += 1
                    let line = InputLine(bytes: chunk[start..<end], number: lineNumber, offset: consumed)
                    consumed += chunk.count - start
                    start = chunk.count
                    return line
                }
                return nil
            }
            refill()
        }
    }
}

/// Size of a file in bytes, or nil when it cannot be stat'ed.
func fileSize(_ path: String) -> Int? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    return Int(st.st_size)
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
    let rel = firstInvalidUTF8Offset(bytes) ?? 0
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
