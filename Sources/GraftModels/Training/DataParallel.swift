import Foundation
import GraftEngine
import GraftSupport

/// How the ranks of a data-parallel job share the updates of one ``Trainer`` run (the default,
/// ``init()``, is one process and changes nothing).
///
/// With N ranks an update is ``OptimizationOptions/accumulation`` micro-batches in all (the
/// *global* count: N × the per-rank accumulation); rank r runs micro-batches r, r+N, r+2N, …
/// Every rank still reads and collates every micro-batch (cheap next to forward and backward),
/// so the data position, the masking generator and the token count advance identically on all
/// ranks and a checkpoint's data position does not depend on N; the dropout generator is
/// advanced past the other ranks' micro-batches by the draws one forward makes. Each rank scales
/// its backward by 1/accumulation exactly as one process accumulating would; the gradient
/// buffer is then summed over the ranks, so every rank holds the same gradients and applies the
/// same update. N ranks with batch b therefore train as one process with batch b and
/// accumulation N.
///
/// Gradients are summed in buckets. A model that reports finished blocks
/// (``ParameterStore/finishedGradients(_:)``, called by BERT's and GPT-2's backward after each
/// block) has them started (`MPI_Iallreduce`) during the last micro-batch's backward as soon as
/// at least ``bucketFloats`` are finished, so communication overlaps the remaining blocks'
/// backward; the rest (embeddings tied to the LM head, pooler, head) is reduced after backward,
/// each contiguous range as one all-reduce.
public final class DataParallel {
    public let communicator: Communicator?
    /// This process's rank (0 without a communicator).
    public var rank: Int { communicator?.rank ?? 0 }
    /// Ranks in the job (1 without a communicator).
    public var size: Int { communicator?.size ?? 1 }
    /// Rank 0 writes checkpoints, `best/`, run records and progress.
    public var isLeader: Bool { rank == 0 }
    /// Finished-block gradient floats gathered before their all-reduce starts (one block per
    /// bucket when a block is at least this large: what the cost model in BENCHMARKS.md favours).
    public var bucketFloats: Int
    /// Seconds spent waiting for gradient sums after backward (the communication not hidden
    /// behind computation), over the whole run.
    public private(set) var exposedCommunicationSeconds = 0.0
    /// Seconds in ``Trainer`` updates (forward, backward and all-reduce), over the whole run.
    public internal(set) var updateSeconds = 0.0
    /// Buckets started during backward (overlapped) and after it, over the whole run.
    public private(set) var overlappedBuckets = 0
    public private(set) var trailingBuckets = 0

    /// Dropout draws of one training forward (measured on the first micro-batch this rank runs).
    private var drawsPerForward: Int?
    /// Micro-batches skipped before the draws per forward were known.
    private var pendingSkips = 0
    /// Gradient ranges already started in this update, and the finished span not started yet.
    private var started: [Range<Int>] = []
    private var span: Range<Int>?
    private var armed = false

    /// The sum of this rank's earlier micro-batch gradients of the update (when it runs more
    /// than one), and whether the gradient buffer still needs it added.
    private var accumulated: UnsafeMutablePointer<Float>?
    private var accumulatedCount = 0
    private var pendingAdd = false

    deinit { accumulated?.deallocate() }

    /// One process: every micro-batch is this process's, nothing is communicated.
    public init() {
        communicator = nil
        bucketFloats = 1 << 18
    }

    /// The ranks of `communicator` (nil: one process). `bucketBytes`: the least size of a
    /// gradient bucket started during backward (default 1 MiB).
    public init(_ communicator: Communicator?, bucketBytes: Int = 1 << 20) {
        self.communicator = communicator
        bucketFloats = max(1024, bucketBytes / 4)
    }

    /// Whether micro-batch `index` of an update is this rank's.
    func owns(_ index: Int) -> Bool { index % size == rank }

    // MARK: Dropout generator

    /// Advances the dropout generator past another rank's micro-batch.
    func skipForward(_ rng: SharedRNG?) {
        guard size > 1, let rng else { return }
        if let k = drawsPerForward { Self.advance(&rng.rng, by: k) } else { pendingSkips += 1 }
    }

    /// Runs this rank's training forward with the dropout generator where one process would
    /// have it. The first time, the forward also measures its draws; when micro-batches were
    /// skipped before that, it is run again from the right state.
    func forward<T>(_ rng: SharedRNG?, _ body: () throws -> T) throws -> T {
        guard size > 1, let rng else { return try body() }
        let start = rng.rng
        var result = try body()
        if let k = drawsPerForward {
            var expected = start
            Self.advance(&expected, by: k)
            guard expected == rng.rng else {
                throw ModelError.invalidArgument("data-parallel training needs the same number of dropout draws in every training forward (\(k) the first time, another count now)")
            }
            return result
        }
        var probe = start, k = 0
        while probe != rng.rng {
            _ = probe.next()
            k += 1
            guard k <= 1 << 20 else { throw ModelError.invalidArgument("a training forward drew more than 2^20 dropout numbers; data-parallel training cannot follow it") }
        }
        drawsPerForward = k
        if pendingSkips > 0 && k > 0 {
            var s = start
            Self.advance(&s, by: pendingSkips * k)
            rng.rng = s
            result = try body()
        }
        pendingSkips = 0
        return result
    }

    static func advance(_ rng: inout RNG, by draws: Int) {
        for _ in 0..<draws { _ = rng.next() }
    }

    // MARK: Gradients

    /// Before this rank's second, third, … backward of an update: moves the gradients so far
    /// into the accumulation buffer (`first`: the buffer starts from them) and zeroes the
    /// gradients. Each micro-batch's gradient is thus computed from zero and the micro-batches
    /// are added in order, `((g0 + g1) + g2) + …`: the order in which the ranks' gradients are
    /// summed, so that 2 ranks and one process accumulating 2 agree bit for bit.
    func stash(_ store: ParameterStore, first: Bool) {
        if accumulated == nil || accumulatedCount != store.count {
            accumulated?.deallocate()
            accumulated = .allocate(capacity: max(1, store.count))
            accumulatedCount = store.count
        }
        let acc = accumulated!, g = store.grads
        if first {
            acc.update(from: g, count: store.count)
        } else {
            for i in 0..<store.count { acc[i] += g[i] }
        }
        store.zeroGrads()
        pendingAdd = true
    }

    /// Adds the stashed sum into a finished range of the gradient buffer.
    private func complete(_ range: Range<Int>, _ store: ParameterStore) {
        guard pendingAdd, let acc = accumulated else { return }
        let g = store.grads
        for i in range { g[i] = acc[i] + g[i] }
    }

    /// After this rank's last backward of an update without other ranks: the stashed sum added.
    func completeLocal(_ store: ParameterStore) {
        complete(0..<store.count, store)
        pendingAdd = false
    }

    /// Called before this rank's last backward of an update: finished blocks start their sums.
    func armOverlap(_ store: ParameterStore) {
        guard let communicator, communicator.size > 1 else { return }
        started.removeAll(keepingCapacity: true)
        span = nil
        armed = true
        store.gradientsFinishedHandler = { [weak self] range in
            guard let self, self.armed else { return }
            do { try self.finished(range, store) } catch { self.failure = error }
        }
    }

    private var failure: Error?

    private func finished(_ range: Range<Int>, _ store: ParameterStore) throws {
        guard let communicator, !range.isEmpty else { return }
        if let s = span, s.lowerBound == range.upperBound {
            span = range.lowerBound..<s.upperBound
        } else {
            if let s = span { try start(s, store) }
            span = range
        }
        if let s = span, s.count >= bucketFloats {
            try start(s, store)
            span = nil
        }
        try communicator.progress()
    }

    private func start(_ range: Range<Int>, _ store: ParameterStore) throws {
        complete(range, store)
        try communicator!.startAllReduceSum(UnsafeMutableBufferPointer(start: store.grads + range.lowerBound, count: range.count))
        started.append(range)
        if armed { overlappedBuckets += 1 } else { trailingBuckets += 1 }
    }

    /// Sums the gradient buffer over all ranks: the buckets not started during backward now, then
    /// waits for all of them.
    func reduceGradients(_ store: ParameterStore) throws {
        guard let communicator, communicator.size > 1 else { return }
        store.gradientsFinishedHandler = nil
        if let failure { self.failure = nil; throw failure }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let wasArmed = armed
        armed = false   // what starts now waited for the end of backward
        if let s = span, wasArmed { try start(s, store) }
        span = nil
        // The complement of the started ranges, from the top down.
        var covered = started.sorted { $0.lowerBound > $1.lowerBound }
        var gaps: [Range<Int>] = []
        var top = store.count
        for r in covered {
            if r.upperBound < top { gaps.append(r.upperBound..<top) }
            top = min(top, r.lowerBound)
        }
        if top > 0 { gaps.append(0..<top) }
        for g in gaps { try start(g, store) }   // whole: they all start now, so pieces would only add latency
        pendingAdd = false
        try communicator.waitAll()
        covered.removeAll()
        started.removeAll(keepingCapacity: true)
        exposedCommunicationSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }

    /// Sums a few per-update statistics (loss, counts, flags) over the ranks.
    func sum(_ values: [Double]) throws -> [Double] {
        guard let communicator, communicator.size > 1 else { return values }
        var v = values
        try communicator.allReduceSum(&v)
        return v
    }
}

extension Trainer {
    /// The micro-batches of one update: this rank's forward and backward (scaled by
    /// 1/accumulation, each micro-batch's gradient from zero, added in order), the gradients
    /// summed over the ranks, and the update's loss sum, right predictions, counted predictions
    /// and tokens over all ranks.
    func accumulateGradients() throws -> (lossSum: Float, correct: Int, counted: Int, tokens: Int) {
        let dp = dataParallel, store = objective.store, rng = objective.dropoutRNG
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer { dp.updateSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
        let micro = options.accumulation, scale = 1 / Float(micro)
        var lossSum: Float = 0, correct = 0, counted = 0, tokens = 0
        var own = 0
        for i in 0..<micro {
            let batch = try objective.trainingBatch(try nextExamples())
            tokens += objective.tokenCount(batch)
            guard dp.owns(i) else { dp.skipForward(rng); continue }
            let r = try dp.forward(rng) { try objective.loss(batch, training: true) }
            if own > 0 { dp.stash(store, first: own == 1) }
            own += 1
            if i + dp.size >= micro { dp.armOverlap(store) }   // this rank's last backward of the update
            try objective.backward(scale: scale)
            lossSum += r.loss
            correct += r.correct
            counted += r.counted
        }
        guard dp.size > 1 else {
            dp.completeLocal(store)
            return (lossSum, correct, counted, tokens)
        }
        try dp.reduceGradients(store)
        let total = try dp.sum([Double(lossSum), Double(correct), Double(counted)])
        return (Float(total[0]), Int(total[1]), Int(total[2]), tokens)
    }

    /// Whether to stop after this update: a stop request (``shouldStop``, Ctrl-C) and early
    /// stopping (patience, known to rank 0, which alone evaluates). One process: as given; a
    /// data-parallel job: whether any rank says so (all ranks then stop after the same update,
    /// with one checkpoint).
    func agreedStop(interrupt: Bool, early: Bool) throws -> (interrupt: Bool, early: Bool) {
        guard let communicator = dataParallel.communicator, communicator.size > 1 else { return (interrupt, early) }
        var flags = [interrupt ? 1.0 : 0.0, early ? 1.0 : 0.0]
        try communicator.allReduceMax(&flags)
        return (flags[0] > 0, flags[1] > 0)
    }
}
