import Dispatch

/// Where a computation's wall time goes: its GEMM regions (time and floating-point operations)
/// and named regions of it (a model's embeddings, each block's forward and backward, the head,
/// the optimizer), each with the GEMM time and operations inside it — `graft bench pretrain
/// --profile`'s table.
///
/// A profiler records only inside ``record(_:)`` on the task or thread that called it (bound as a
/// task-local, so other computations are not measured), and only the coordinating thread
/// records: a product split over threads or a per-head GEMM phase is timed as a whole. Without a
/// recording profiler a region costs one task-local read.
public final class Profiler: @unchecked Sendable {
    /// One named region: its total wall time and the GEMM time and operations inside it.
    public struct Region: Sendable {
        /// Its index in ``Profiler/regions``.
        public let id: Int
        public let name: String
        /// How many regions enclose it (0: a top-level region).
        public let depth: Int
        /// The index in ``Profiler/regions`` of the region that encloses it.
        public let parent: Int?
        public var seconds: Double = 0
        public var gemmSeconds: Double = 0
        public var gemmFlops: Double = 0
        public var calls = 0
    }

    /// Seconds spent in GEMM regions so far.
    public private(set) var seconds: Double = 0
    /// Floating-point operations of those regions.
    public private(set) var flops: Double = 0
    /// The named regions in the order they were first entered (``regionsInTreeOrder`` nests them).
    public private(set) var regions: [Region] = []
    private var index: [String: Int] = [:]   // "parent index/name" -> index in regions
    private var open: [Int] = []              // the regions entered and not yet left, outermost first

    /// The profiler recording the current task's products, if any.
    @TaskLocal public static var current: Profiler?

    public init() {}

    /// Runs `body`, measuring its GEMM and named regions into this profiler.
    public func record<R>(_ body: () throws -> R) rethrows -> R {
        try Profiler.$current.withValue(self) { try body() }
    }

    /// One kind of GEMM region: a product's shape (`"4096x1024x256 NT"`: `M`x`N`x`K` and the
    /// operands' transposes) or a per-head attention phase, with its time, operations and calls.
    public struct Shape: Sendable {
        public let name: String
        public var seconds: Double = 0
        public var flops: Double = 0
        public var calls = 0

        public init(name: String, seconds: Double = 0, flops: Double = 0, calls: Int = 0) {
            self.name = name
            self.seconds = seconds
            self.flops = flops
            self.calls = calls
        }
    }

    /// The GEMM regions by shape, in the order first seen.
    public private(set) var shapes: [Shape] = []
    private var shapeIndex: [String: Int] = [:]

    /// Runs a GEMM region of `f` floating-point operations; `shape` names its kind in ``shapes``
    /// (built only when a profiler records).
    @inlinable
    static func measure<R>(flops f: Double, shape: @autoclosure () -> String, _ body: () -> R) -> R {
        guard let profiler = current else { return body() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        // Products nested inside a measured region are part of it: they are not measured again.
        let r = $current.withValue(nil) { body() }
        profiler.add(seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9, flops: f, shape: shape())
        return r
    }

    @usableFromInline func add(seconds s: Double, flops f: Double, shape: String) {
        seconds += s
        flops += f
        let i = Self.slot(shape, in: &shapes, index: &shapeIndex) { Shape(name: shape) }
        shapes[i].seconds += s
        shapes[i].flops += f
        shapes[i].calls += 1
    }

    /// GEMM time of products run among other work inside a parallel loop (attention's per-head
    /// pipeline: scores, softmax and `P V` of one head on one thread while its scores are in
    /// cache): each item times its own products on the thread that runs it, per kind of
    /// product, and ``record(threads:)`` adds each kind's time summed over the items and divided
    /// by the number of threads that ran them (the items are alike, so that is each thread's
    /// share of the loop's wall time) to the profiler that was recording when the clock was
    /// made. Without a recording profiler nothing is timed.
    public final class ItemClock: @unchecked Sendable {
        @usableFromInline let profiler: Profiler?
        @usableFromInline let kinds: [(shape: String, flops: Double)]
        @usableFromInline let nanos: UnsafeMutablePointer<UInt64>
        @usableFromInline let items: Int

        /// `kinds`: each kind of product's shape name and its operations over all the items
        /// (built only when a profiler records).
        public init(items: Int, kinds: @autoclosure () -> [(shape: String, flops: Double)]) {
            profiler = Profiler.current
            self.kinds = profiler == nil ? [] : kinds()
            self.items = profiler == nil ? 0 : items
            nanos = .allocate(capacity: max(1, self.items * self.kinds.count))
            nanos.initialize(repeating: 0, count: max(1, self.items * self.kinds.count))
        }

        deinit { nanos.deallocate() }

        /// Runs `body`, the products of kind `kind` of item `item` (each item on one thread).
        @inlinable @inline(__always)
        public func time<R>(_ item: Int, _ kind: Int, _ body: () -> R) -> R {
            guard profiler != nil else { return body() }
            let t0 = DispatchTime.now().uptimeNanoseconds
            let r = body()
            nanos[item * kinds.count + kind] &+= DispatchTime.now().uptimeNanoseconds - t0
            return r
        }

        /// Adds the loop's GEMM time to the profiler (see the type); `threads`: how many ran it.
        public func record(threads: Int) {
            guard let profiler else { return }
            for (j, kind) in kinds.enumerated() {
                var total: UInt64 = 0
                for i in 0..<items { total &+= nanos[i * kinds.count + j] }
                profiler.add(seconds: Double(total) * 1e-9 / Double(max(1, threads)), flops: kind.flops, shape: kind.shape)
            }
        }
    }

    /// Runs `body` as the region `name` of the recording profiler (just `body` when none records;
    /// the name is then never built). A region entered inside another is its child: the same name
    /// under two parents (a layer's forward in training and in evaluation) is two regions.
    @inlinable
    public static func region<R>(_ name: @autoclosure () -> String, _ body: () throws -> R) rethrows -> R {
        guard let profiler = current else { return try body() }
        let m = profiler.begin(name())
        defer { profiler.end(m) }
        return try body()
    }

    /// The start of a region written inline: `let m = Profiler.mark("name")`, then
    /// `Profiler.end(m)` where it ends (nil, and nothing recorded, when none records).
    public static func mark(_ name: @autoclosure () -> String) -> Mark? {
        current.map { $0.begin(name()) }
    }

    /// Ends the region started by `mark`.
    public static func end(_ mark: Mark?) {
        if let mark { mark.profiler.end(mark) }
    }

    /// A region's start: its index, the clock and the GEMM counters when it began.
    public struct Mark {
        @usableFromInline let profiler: Profiler
        @usableFromInline let region: Int
        @usableFromInline let start: UInt64, gemmSeconds: Double, gemmFlops: Double
    }

    @usableFromInline func begin(_ name: String) -> Mark {
        let parent = open.last
        let key = "\(parent ?? -1)/\(name)"
        let id = regions.count, depth = open.count   // the new region's, if key is new
        let i = Self.slot(key, in: &regions, index: &index) { Region(id: id, name: name, depth: depth, parent: parent) }
        open.append(i)
        return Mark(profiler: self, region: i, start: DispatchTime.now().uptimeNanoseconds, gemmSeconds: seconds, gemmFlops: flops)
    }

    @usableFromInline func end(_ m: Mark) {
        let dt = Double(DispatchTime.now().uptimeNanoseconds - m.start) * 1e-9
        if let k = open.lastIndex(of: m.region) { open.removeSubrange(k...) }
        regions[m.region].seconds += dt
        regions[m.region].gemmSeconds += seconds - m.gemmSeconds
        regions[m.region].gemmFlops += flops - m.gemmFlops
        regions[m.region].calls += 1
    }

    /// One kind of operation (``beginOperation(_:)``): its time and the GEMM time and operations
    /// inside it, summed over every call in every region (all layers together).
    public struct Operation: Sendable {
        public let name: String
        public var seconds: Double = 0
        public var gemmSeconds: Double = 0
        public var gemmFlops: Double = 0
        public var calls = 0
    }

    /// The operations in the order first run (``beginOperation(_:)``).
    public private(set) var operations: [Operation] = []
    private var operationIndex: [String: Int] = [:]
    @usableFromInline var inOperation = false

    /// Starts one call of the operation `name` (a layer's forward or backward: LayerNorm, GELU,
    /// attention, a projection ...): `let op = Profiler.beginOperation("name")`, `defer {
    /// Profiler.endOperation(op) }` at the top of the function. Its time, and the GEMM time and
    /// operations inside it, are added to ``operations`` under `name` across every region, so a
    /// profile can say how the time outside the GEMMs splits between the kinds of operation over
    /// all layers. Operations do not nest: one begun inside another is part of the outer one
    /// (nil is returned). They are not regions: a region's own time includes the operations run
    /// in it. Nil, and nothing recorded, when no profiler records.
    @inlinable
    public static func beginOperation(_ name: @autoclosure () -> String) -> OperationMark? {
        guard let profiler = current, !profiler.inOperation else { return nil }
        profiler.inOperation = true
        return OperationMark(profiler: profiler, name: name(), start: DispatchTime.now().uptimeNanoseconds,
                             gemmSeconds: profiler.seconds, gemmFlops: profiler.flops)
    }

    /// Ends the operation `mark` started.
    @inlinable
    public static func endOperation(_ mark: OperationMark?) {
        guard let m = mark else { return }
        m.profiler.inOperation = false
        m.profiler.endOperation(m.name, seconds: Double(DispatchTime.now().uptimeNanoseconds - m.start) * 1e-9,
                                gemmSeconds: m.profiler.seconds - m.gemmSeconds, gemmFlops: m.profiler.flops - m.gemmFlops)
    }

    /// An operation's start: its name, the clock and the GEMM counters when it began.
    public struct OperationMark {
        @usableFromInline let profiler: Profiler
        @usableFromInline let name: String
        @usableFromInline let start: UInt64, gemmSeconds: Double, gemmFlops: Double

        @usableFromInline init(profiler: Profiler, name: String, start: UInt64, gemmSeconds: Double, gemmFlops: Double) {
            self.profiler = profiler; self.name = name; self.start = start; self.gemmSeconds = gemmSeconds; self.gemmFlops = gemmFlops
        }
    }

    @usableFromInline func endOperation(_ name: String, seconds s: Double, gemmSeconds: Double, gemmFlops: Double) {
        let i = Self.slot(name, in: &operations, index: &operationIndex) { Operation(name: name) }
        operations[i].seconds += s
        operations[i].gemmSeconds += gemmSeconds
        operations[i].gemmFlops += gemmFlops
        operations[i].calls += 1
    }

    /// Where `key`'s entry is in `entries` (looked up in `index`), appending `make()` the first time.
    private static func slot<T>(_ key: String, in entries: inout [T], index: inout [String: Int], _ make: () -> T) -> Int {
        if let i = index[key] { return i }
        entries.append(make())
        index[key] = entries.count - 1
        return entries.count - 1
    }

    /// The regions as a tree, depth first: each followed by its children in the order they were
    /// first entered.
    public var regionsInTreeOrder: [Region] {
        var children = [[Int]](repeating: [], count: regions.count)
        var roots: [Int] = []
        for (i, r) in regions.enumerated() {
            if let p = r.parent { children[p].append(i) } else { roots.append(i) }
        }
        var out: [Region] = []
        func visit(_ i: Int) {
            out.append(regions[i])
            children[i].forEach(visit)
        }
        roots.forEach(visit)
        return out
    }
}
