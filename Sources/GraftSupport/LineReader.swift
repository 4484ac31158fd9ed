import Foundation

/// One line of a file: its bytes without the `\n`, its 1-based number and the byte offset of its
/// first byte in the file.
public struct Line: Sendable {
    public var bytes: ArraySlice<UInt8>
    public var number: Int
    public var offset: Int
    public init(bytes: ArraySlice<UInt8>, number: Int, offset: Int) {
        self.bytes = bytes
        self.number = number
        self.offset = offset
    }
}

/// Streams the lines of a file (or standard input) in bounded memory, split on `\n` only.
///
/// A `\r` before the `\n` (or anywhere) is part of the line, as are U+2028, U+0085 and every
/// other character; the last line need not end with `\n`; an empty file has no lines. Lines are
/// handed out as raw bytes: callers validate them with ``UTF8Validation`` and report errors in
/// their own layer's terms (file, line, byte offset). File formats whose records end in CRLF
/// (CSV, for one) drop the `\r` themselves.
public final class LineReader {
    public let path: String
    private let handle: UnsafeMutablePointer<FILE>
    private let ownsHandle: Bool
    private var chunk: [UInt8] = []
    private var readBuffer: [UInt8]
    private var start = 0
    private var chunkFileOffset = 0
    private var eof = false
    private var lineNumber = 0

    /// The number of lines handed out so far (the last one's 1-based number).
    public var linesRead: Int { lineNumber }

    /// Bytes of the file handed out so far (for progress).
    public var bytesRead: Int { chunkFileOffset + start }

    /// Opens `path`; `"-"` reads standard input.
    /// - Throws: ``SupportError/io(path:operation:reason:)`` when the file cannot be opened.
    public init(path: String, chunkSize: Int = 1 << 20) throws {
        self.path = path
        readBuffer = [UInt8](repeating: 0, count: max(1, chunkSize))
        if path == "-" {
            guard let h = fdopen(STDIN_FILENO, "rb") else {
                throw SupportError.io(path: path, operation: "open", reason: errnoDescription())
            }
            handle = h
            ownsHandle = false
        } else {
            guard let h = fopen(path, "rb") else {
                throw SupportError.io(path: path, operation: "open", reason: errnoDescription())
            }
            handle = h
            ownsHandle = true
        }
    }

    deinit { if ownsHandle { fclose(handle) } }

    /// The next line, or nil at the end of the file.
    /// - Throws: ``SupportError/io(path:operation:reason:)`` on a read error (never a short file).
    public func next() throws -> Line? {
        while true {
            if let nl = chunk[start...].firstIndex(of: 0x0A) {
                lineNumber += 1
                let line = Line(bytes: chunk[start..<nl], number: lineNumber, offset: chunkFileOffset + start)
                start = nl + 1
                return line
            }
            if eof {
                guard start < chunk.count else { return nil }
                lineNumber += 1
                let line = Line(bytes: chunk[start...], number: lineNumber, offset: chunkFileOffset + start)
                start = chunk.count
                return line
            }
            try refill()
        }
    }

    private func refill() throws {
        if start > 0 {
            chunk.removeSubrange(0..<start)
            chunkFileOffset += start
            start = 0
        }
        let n = readBuffer.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, handle) }
        if n == 0 {
            if ferror(handle) != 0 {
                throw SupportError.io(path: path, operation: "read", reason: errnoDescription())
            }
            eof = true
            return
        }
        readBuffer.withUnsafeBytes { chunk.append(contentsOf: $0[0..<n]) }
    }
}
