import Foundation

/// Writes files so that a crash or a failure at any step leaves either the old file or the new
/// one, never a mix, and never a stray temporary file.
///
/// The steps: create a temporary file in the target's directory (same file system, so the
/// rename is atomic), write all bytes, fsync the file, rename it over the target, fsync the
/// directory (so the rename itself is durable). A failure at any step removes the temporary
/// file and throws ``SupportError/io(path:operation:reason:)`` naming the target and the step.
/// A target that exists and is not a regular file (a device such as `/dev/stdout`, a pipe) is
/// written in place, its errors reported the same way.
public enum AtomicFile {
    /// One step of an atomic write, for failure injection in tests.
    public enum Step: String, Sendable, CaseIterable {
        case create, write, fsyncFile = "fsync", rename, fsyncDirectory = "directory fsync"
    }

    /// Writes `bytes` to `path` atomically and durably.
    public static func write(_ bytes: [UInt8], to path: String, failing: ((Step) -> Bool)? = nil) throws {
        try write(to: path, failing: failing) { file in try bytes.withUnsafeBytes { try file.write($0) } }
    }

    /// Writes `text` as UTF-8 to `path` atomically and durably.
    public static func write(_ text: String, to path: String) throws {
        try write(Array(text.utf8), to: path)
    }

    /// The temporary file being written by ``write(to:failing:contents:)``.
    public struct Writer {
        let fd: Int32
        let path: String
        let failing: ((Step) -> Bool)?

        /// Appends `bytes` to the file.
        public func write(_ bytes: UnsafeRawBufferPointer) throws {
            if failing?(.write) ?? false {
                throw SupportError.io(path: path, operation: Step.write.rawValue, reason: "injected failure")
            }
            var done = 0
            while done < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw SupportError.io(path: path, operation: Step.write.rawValue, reason: errnoDescription())
                }
                done += n
            }
        }

        /// Appends `bytes` to the file.
        public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }
    }

    /// Writes the file `contents` produces (through a ``Writer``) to `path`, atomically and
    /// durably. `failing(step)` returning true makes that step fail as if the system call had
    /// (tests use this to check every failure path); pass nil outside tests.
    public static func write(to path: String, failing: ((Step) -> Bool)? = nil, contents: (Writer) throws -> Void) throws {
        /// Runs one step's system call, unless the step is injected to fail (then it is skipped,
        /// as if the call had failed before doing anything).
        func run(_ step: Step, _ call: () -> Bool) throws {
            if failing?(step) ?? false {
                throw SupportError.io(path: path, operation: step.rawValue, reason: "injected failure")
            }
            guard call() else { throw SupportError.io(path: path, operation: step.rawValue, reason: errnoDescription()) }
        }
        // A device, pipe or socket (`-o /dev/stdout`, a FIFO) is written in place: there is
        // no file to replace, and a rename would put a regular file where the device was.
        var st = stat()
        if stat(path, &st) == 0 && (st.st_mode & S_IFMT) != S_IFREG && (st.st_mode & S_IFMT) != S_IFDIR {
            var fd: Int32 = -1
            try run(.create) {
                fd = open(path, O_WRONLY | O_CLOEXEC)
                return fd >= 0
            }
            defer { if fd >= 0 { close(fd) } }
            try contents(Writer(fd: fd, path: path, failing: failing))
            try run(.fsyncFile) {
                let closed = close(fd) == 0
                fd = -1
                return closed
            }
            return
        }
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let tmp = directory + "/.\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        var fd: Int32 = -1
        try run(.create) {
            fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            return fd >= 0
        }
        var renamed = false
        defer {
            if fd >= 0 { close(fd) }
            if !renamed { unlink(tmp) }
        }
        try contents(Writer(fd: fd, path: path, failing: failing))
        try run(.fsyncFile) {
            let synced = fsync(fd) == 0
            let closed = close(fd) == 0
            fd = -1
            return synced && closed
        }
        try run(.rename) { rename(tmp, path) == 0 }
        renamed = true
        try run(.fsyncDirectory) {
            let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard dfd >= 0 else { return false }
            defer { close(dfd) }
            return fsync(dfd) == 0
        }
    }

    /// Fsyncs a directory so that renames and creations inside it are durable.
    public static func syncDirectory(_ directory: String) throws {
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw SupportError.io(path: directory, operation: Step.fsyncDirectory.rawValue, reason: errnoDescription()) }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else {
            throw SupportError.io(path: directory, operation: Step.fsyncDirectory.rawValue, reason: errnoDescription())
        }
    }
}
