import CGraftMPI
import Foundation

/// The ranks of a data-parallel job and the few collective operations Graft needs: summing the
/// flat gradient buffer (blocking or in non-blocking buckets), summing a handful of statistics,
/// and moving bytes (inputs from rank 0, outputs back to it).
///
/// A process started without `mpirun` has no communicator (``MPICommunicator/world()`` is nil)
/// and every caller takes its single-process path.
public protocol Communicator: AnyObject {
    /// This process's rank, 0..<size.
    var rank: Int { get }
    /// Ranks in the job.
    var size: Int { get }
    /// Sums `buffer` over all ranks, in place; every rank receives the same bits.
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    /// Starts summing `buffer` over all ranks in place; the buffer must not be touched until
    /// ``waitAll()`` returns.
    func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    /// Lets started reductions advance (MPI progresses non-blocking collectives only inside MPI calls).
    func progress() throws
    /// Waits for every started reduction.
    func waitAll() throws
    /// Sums doubles over all ranks, in place.
    func allReduceSum(_ values: inout [Double]) throws
    /// The largest value of each element over all ranks, in place.
    func allReduceMax(_ values: inout [Double]) throws
    /// Rank `root`'s bytes, on every rank (`bytes` is read on the root only).
    func broadcast(_ bytes: [UInt8], root: Int) throws -> [UInt8]
    /// Sends bytes to one rank (matched by `receive(from:tag:)` there, in order).
    func send(_ bytes: [UInt8], to rank: Int, tag: Int) throws
    func receive(from rank: Int, tag: Int) throws -> [UInt8]
    func barrier() throws
}

/// Open MPI, loaded at run time: Graft links nothing from MPI, so it builds and runs where MPI is
/// not installed. Under `mpirun` (the launcher sets `OMPI_COMM_WORLD_SIZE`, or `PMIX_RANK` under
/// a PMIx launcher) ``world()`` loads `libmpi` (`GRAFT_MPI_LIBRARY`, else `libmpi.so.40`, else
/// `libmpi.so`) with `dlopen`, resolves the functions and Open MPI's handles (the addresses of
/// `ompi_mpi_comm_world`, `ompi_mpi_float`, `ompi_mpi_op_sum`, …) with `dlsym`, and initialises
/// MPI once per process (`MPI_THREAD_SERIALIZED`: only one thread calls MPI at a time).
///
/// Errors: Open MPI's default handler (`MPI_ERRORS_ARE_FATAL`) ends the job when a peer dies,
/// so a collective never returns a failure silently; failures to load or initialise are thrown.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    private var pending: [UnsafeMutableRawPointer?] = []

    private init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
    }

    nonisolated(unsafe) private static var shared: MPICommunicator?
    nonisolated(unsafe) private static var initialised = false
    private static let lock = NSLock()

    /// Whether the launcher started this process as one rank of several (without loading anything).
    public static func launchedByMPI(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        if let size = environment["OMPI_COMM_WORLD_SIZE"].flatMap(Int.init) { return size > 1 }
        return environment["PMIX_RANK"] != nil
    }

    /// The job's communicator, initialising MPI on first use; nil when the process was not
    /// started by `mpirun` with more than one rank. Throws when it was, but MPI cannot be loaded
    /// or initialised (the message says what was tried and how to fix it).
    public static func world() throws -> MPICommunicator? {
        lock.lock()
        defer { lock.unlock() }
        if initialised { return shared }
        let env = ProcessInfo.processInfo.environment
        guard launchedByMPI(environment: env) else { return nil }
        var message = [CChar](repeating: 0, count: 2048)
        let path = env["GRAFT_MPI_LIBRARY"]
        let launcher = env["OMPI_COMM_WORLD_SIZE"].map { "mpirun (OMPI_COMM_WORLD_SIZE=\($0))" } ?? "an MPI launcher (PMIX_RANK is set)"
        guard graft_mpi_load(path, &message, message.count) == 0 else {
            let problem = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw EngineError.communication("graft was started by \(launcher) but \(problem). Install Open MPI (Debian: apt-get install openmpi-bin libopenmpi3) or set GRAFT_MPI_LIBRARY to its libmpi.so")
        }
        var rank: Int32 = 0, size: Int32 = 0
        let rc = graft_mpi_init(&rank, &size)
        guard rc == 0 else { throw EngineError.communication("MPI_Init_thread failed: \(errorString(rc))") }
        initialised = true
        shared = size > 1 ? MPICommunicator(rank: Int(rank), size: Int(size)) : nil
        return shared
    }

    /// Whether MPI was initialised in this process (so it must be finalised or aborted).
    public static var isInitialised: Bool {
        lock.lock(); defer { lock.unlock() }
        return initialised
    }

    /// Ends MPI at a normal exit (every rank must call it).
    public static func finalize() {
        lock.lock(); defer { lock.unlock() }
        guard initialised else { return }
        _ = graft_mpi_finalize()
        initialised = false
        shared = nil
    }

    /// Ends every rank of the job (after a failure on this one: the others must not wait for it).
    public static func abort(code: Int32 = 1) -> Never {
        graft_mpi_abort(code)
        exit(code)
    }

    static func errorString(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 600)
        graft_mpi_error_string(code, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private func check(_ rc: Int32, _ what: String) throws {
        guard rc == 0 else { throw EngineError.communication("\(what) failed on rank \(rank): \(Self.errorString(rc))") }
    }

    /// MPI counts are ints: larger buffers go in pieces.
    private static let maxCount = 1 << 30

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = buffer.baseAddress else { return }
        var at = 0
        while at < buffer.count {
            let n = min(Self.maxCount, buffer.count - at)
            try check(graft_mpi_allreduce_float_sum(base + at, Int32(n)), "MPI_Allreduce")
            at += n
        }
    }

    public func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = buffer.baseAddress else { return }
        var at = 0
        while at < buffer.count {
            let n = min(Self.maxCount, buffer.count - at)
            var request: UnsafeMutableRawPointer?
            try check(graft_mpi_iallreduce_float_sum(base + at, Int32(n), &request), "MPI_Iallreduce")
            pending.append(request)
            at += n
        }
    }

    public func progress() throws {
        for i in pending.indices where pending[i] != nil {
            var done: Int32 = 0
            try check(graft_mpi_test(&pending[i], &done), "MPI_Test")
            if done != 0 { pending[i] = nil }
            else { break }   // later buckets wait behind this one anyway
        }
    }

    public func waitAll() throws {
        for i in pending.indices where pending[i] != nil {
            try check(graft_mpi_wait(&pending[i]), "MPI_Wait")
        }
        pending.removeAll(keepingCapacity: true)
    }

    public func allReduceSum(_ values: inout [Double]) throws {
        let n = Int32(values.count)
        try values.withUnsafeMutableBufferPointer { try check(graft_mpi_allreduce_double_sum($0.baseAddress, n), "MPI_Allreduce") }
    }

    public func allReduceMax(_ values: inout [Double]) throws {
        let n = Int32(values.count)
        try values.withUnsafeMutableBufferPointer { try check(graft_mpi_allreduce_double_max($0.baseAddress, n), "MPI_Allreduce") }
    }

    public func broadcast(_ bytes: [UInt8], root: Int) throws -> [UInt8] {
        var length = UInt64(rank == root ? bytes.count : 0)
        try check(graft_mpi_bcast_bytes(&length, 8, Int32(root)), "MPI_Bcast")
        var out = rank == root ? bytes : [UInt8](repeating: 0, count: Int(length))
        var at = 0
        while at < out.count {
            let n = min(Self.maxCount, out.count - at)
            try out.withUnsafeMutableBytes { try check(graft_mpi_bcast_bytes($0.baseAddress! + at, Int32(n), Int32(root)), "MPI_Bcast") }
            at += n
        }
        return out
    }

    public func send(_ bytes: [UInt8], to destination: Int, tag: Int) throws {
        var length = UInt64(bytes.count)
        try check(graft_mpi_send_bytes(&length, 8, Int32(destination), Int32(tag)), "MPI_Send")
        var at = 0
        while at < bytes.count {
            let n = min(Self.maxCount, bytes.count - at)
            try bytes.withUnsafeBytes { try check(graft_mpi_send_bytes($0.baseAddress! + at, Int32(n), Int32(destination), Int32(tag)), "MPI_Send") }
            at += n
        }
    }

    public func receive(from source: Int, tag: Int) throws -> [UInt8] {
        var length: UInt64 = 0
        try check(graft_mpi_recv_bytes(&length, 8, Int32(source), Int32(tag)), "MPI_Recv")
        var out = [UInt8](repeating: 0, count: Int(length))
        var at = 0
        while at < out.count {
            let n = min(Self.maxCount, out.count - at)
            try out.withUnsafeMutableBytes { try check(graft_mpi_recv_bytes($0.baseAddress! + at, Int32(n), Int32(source), Int32(tag)), "MPI_Recv") }
            at += n
        }
        return out
    }

    public func barrier() throws { try check(graft_mpi_barrier(), "MPI_Barrier") }
}
