import Foundation

/// Streams the lines of a file (or standard input), split on `\n` only, in bounded memory.
///
/// Each line is validated as UTF-8; a bad byte raises ``TokenizerError/invalidUTF8(path:byteOffset:)``
/// with the offset of that byte in the whole file. A `\r` before the `\n` is part of the line,
/// as are U+2028, U+0085 and every other character: only `\n` ends a line.
public final class LineReader: Sequence, IteratorProtocol {
    public let path: String
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private var position = 0
    private var bufferFileOffset = 0
    private var eof = false
    private let chunkSize: Int
    /// 1-based number of the line last returned.
    public private(set) var lineNumber = 0
    /// Byte offset in the file of the line last returned.
    public private(set) var lineByteOffset = 0
    /// The first error met; iteration stops there.
    public private(set) var error: TokenizerError?

    /// Opens `path`; `"-"` reads standard input.
    public init(path: String, chunkSize: Int = 1 << 20) throws {
        self.path = path
        self.chunkSize = chunkSize
        if path == "-" {
            handle = FileHandle.standardInput
        } else {
            guard let h = FileHandle(forReadingAtPath: path) else {
                throw TokenizerError.io(path: path, reason: FileManager.default.fileExists(atPath: path) ? "cannot open file" : "no such file")
            }
            handle = h
        }
    }

    deinit { if path != "-" { try? handle.close() } }

    /// The next line's bytes (without the `\n`), or nil at the end.
    public func nextBytes() throws -> ArraySlice<UInt8>? {
        while true {
            if let nl = buffer[position...].firstIndex(of: 10) {
                let line = buffer[position..<nl]
                try finish(line)
                position = nl + 1
                return line
            }
            if eof {
                if position < buffer.count {
                    let line = buffer[position...]
                    try finish(line)
                    position = buffer.count
                    return line
                }
                return nil
            }
            // Keep the partial line, read more.
            bufferFileOffset += position
            buffer.removeSubrange(0..<position)
            position = 0
            let data = handle.readData(ofLength: chunkSize)
            if data.isEmpty { eof = true } else { buffer.append(contentsOf: data) }
        }
    }

    private func finish(_ line: ArraySlice<UInt8>) throws {
        lineNumber += 1
        lineByteOffset = bufferFileOffset + (line.startIndex)
        if let bad = line.withUnsafeBufferPointer({ UTF8Util.firstInvalidByte($0) }) {
            throw TokenizerError.invalidUTF8(path: path, byteOffset: lineByteOffset + bad)
        }
    }

    /// The next line as a string; errors end the iteration and are kept in ``error``.
    public func next() -> String? {
        guard error == nil else { return nil }
        do {
            guard let bytes = try nextBytes() else { return nil }
            return String(decoding: bytes, as: UTF8.self)
        } catch let e as TokenizerError {
            error = e
            return nil
        } catch {
            self.error = .io(path: path, reason: "\(error)")
            return nil
        }
    }
}

/// The offset (from the start of `bytes`) of the first byte that is not well-formed UTF-8
/// (Unicode's table 3-7: no overlongs, surrogates or values past U+10FFFF), or nil when all of
/// `bytes` is valid. Shared by every layer that reads user files.
public func firstInvalidUTF8Offset(_ bytes: ArraySlice<UInt8>) -> Int? {
    bytes.withUnsafeBufferPointer { UTF8Util.firstInvalidByte($0) }
}
