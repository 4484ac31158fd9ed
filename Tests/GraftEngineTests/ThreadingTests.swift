import Dispatch
import Foundation
import GraftSupport
import Testing
@testable import GraftEngine

/// A computation's thread count is its own: nothing another computation does in the same process
/// changes it (issue: a determinism test failed at random while other suites changed the
/// process-wide thread settings of the engine and of OpenBLAS under it).
extension EngineTests {
    @Suite struct Threading {
        /// Runs `body` on a new thread and returns a handle to wait for it (errors are rethrown by `wait`).
        final class Worker<R>: @unchecked Sendable {
            private let done = DispatchSemaphore(value: 0)
            private var result: Result<R, Error>?
            init(_ body: @escaping () throws -> R) {
                let work = UncheckedBox(body)
                let thread = Thread { [self] in
                    result = Result { try work.value() }
                    done.signal()
                }
                thread.stackSize = 8 << 20
                thread.start()
            }
            func wait() throws -> R {
                done.wait()
                return try result!.get()
            }
        }

        /// The interference, reproduced deterministically: computation A trains at 2 threads; in
        /// the middle of it (after its first update) computation B enters a 1-thread scope on
        /// another thread and stays inside it while A makes its remaining updates. When the thread
        /// count was one process-wide variable, B's setting applied to A's later updates (its
        /// reductions were then chunked differently and its weights changed bits). Now A gets
        /// exactly the bits it gets alone.
        @Test func anotherComputationsThreadCountDoesNotLeakIn() throws {
            let alone = try trainTiny(threads: 2, steps: 4)
            let insideB = DispatchSemaphore(value: 0), releaseB = DispatchSemaphore(value: 0)
            var b: Worker<Int>?
            let withB = try trainTiny(threads: 2, steps: 4) { step in
                #expect(Engine.threads == 2)
                guard step == 0 else { return }
                b = Worker {
                    try Engine.withThreads(1) {
                        insideB.signal()
                        releaseB.wait()   // stays inside its 1-thread scope during A's updates 1...3
                        return Engine.threads
                    }
                }
                insideB.wait()
                #expect(Engine.threads == 2, "A sees its own count while B is inside its scope")
            }
            releaseB.signal()
            #expect(try b!.wait() == 1)
            let identical = withB == alone
            #expect(identical, "A's weights changed when B ran beside it")
        }

        /// Two models train at the same time in one process, one at 2 threads and one at 1, and
        /// each ends with exactly the weights it gets when it runs alone.
        @Test func twoModelsConcurrentlyGetTheirOwnBits() throws {
            let aloneTwo = try trainTiny(threads: 2, seed: 31, steps: 4)
            let aloneOne = try trainTiny(threads: 1, seed: 32, steps: 4)
            for _ in 0..<3 {
                let x = Worker { try trainTiny(threads: 2, seed: 31, steps: 4) }
                let y = Worker { try trainTiny(threads: 1, seed: 32, steps: 4) }
                let twoIdentical = try x.wait() == aloneTwo, oneIdentical = try y.wait() == aloneOne
                #expect(twoIdentical, "2-thread model beside a 1-thread one")
                #expect(oneIdentical, "1-thread model beside a 2-thread one")
            }
        }

        /// Bindings nest and unwind; parallel work items run with one thread; bad counts are refused.
        @Test func bindingsNestAndWorkItemsRunSingleThreaded() throws {
            let outer = Engine.threads
            try Engine.withThreads(3) {
                #expect(Engine.threads == 3)
                try Engine.withThreads(2) { #expect(Engine.threads == 2) }
                #expect(Engine.threads == 3)
                let seen = UnsafeMutablePointer<Int>.allocate(capacity: 3)
                defer { seen.deallocate() }
                let box = UncheckedBox(seen)
                Engine.parallelFor(3) { r in for i in r { box.value[i] = Engine.threads } }
                #expect((0..<3).map { seen[$0] } == [1, 1, 1])
            }
            #expect(Engine.threads == outer)
            #expect(throws: EngineError.self) { try Engine.withThreads(0) {} }
            #expect(throws: EngineError.self) { try Engine.withThreads(Engine.maxThreads + 1) {} }
        }

        /// Bands start on block boundaries, grow strictly, end at m, and differ by under 1.5 blocks.
        /// The worker pool runs every item of every job exactly once, job after job (a late worker
        /// must never claim an item of a newer job), also while three computations call it at
        /// once (the ones that find it busy fall back to libdispatch).
        @Test func concurrentRunsEveryItemOnceAcrossJobsAndCallers() throws {
            func hammer(_ seed: Int, jobs: Int) -> Bool {
                var ok = true
                for j in 0..<jobs {
                    let n = 2 + (j &* 7 &+ seed) % 5
                    let hits = UnsafeMutablePointer<Int>.allocate(capacity: n)
                    hits.initialize(repeating: 0, count: n)
                    let p = SharedPointer(hits)
                    Engine.concurrent(n) { c in p.value[c] += Engine.threads == 1 ? 1 : 100 }   // items run with 1 thread
                    ok = ok && (0..<n).allSatisfy { hits[$0] == 1 }
                    hits.deallocate()
                }
                return ok
            }
            #expect(hammer(0, jobs: 20_000))
            let callers = (1...3).map { s in Worker { hammer(s, jobs: 3_000) } }
            for c in callers { #expect(try c.wait()) }
        }

        @Test func bandsAreBalancedWholeBlocks() {
            for m in stride(from: 96, through: 5000, by: 7) {
                for threads in 2...8 {
                    let slices = BLAS.sliceCount(m: m, n: 512, k: 512, threads: threads)
                    guard slices > 1 else { continue }
                    let starts = (0..<slices).map { BLAS.bandStart($0, slices: slices, m: m) } + [m]
                    #expect(starts[0] == 0 && starts.dropLast().allSatisfy { $0 % BLAS.sliceRows == 0 })
                    let sizes = zip(starts, starts.dropFirst()).map { $1 - $0 }
                    #expect(sizes.allSatisfy { $0 >= BLAS.sliceRows / 2 }, "m \(m), \(slices) bands: \(sizes)")
                    #expect(sizes.max()! - sizes.min()! < BLAS.sliceRows * 3 / 2, "m \(m), \(slices) bands: \(sizes)")
                }
            }
        }

        /// No band is at or under the small-product limit (OpenBLAS would take another kernel for
        /// it than for the whole product), and a product is split whenever its bands can be that
        /// large: fewer bands only when more would make one too small.
        @Test func bandsStayAboveTheSmallProductLimit() {
            for m in stride(from: 16, through: 3000, by: 23) {
                for (n, k) in [(13, 33), (64, 64), (256, 256), (301, 1024), (1024, 4096)] {
                    for threads in 2...6 {
                        let slices = BLAS.sliceCount(m: m, n: n, k: k, threads: threads)
                        #expect(slices >= 1 && slices <= threads)
                        func smallest(_ s: Int) -> Int {
                            (0..<s).map { j in (j == s - 1 ? m : BLAS.bandStart(j + 1, slices: s, m: m)) - BLAS.bandStart(j, slices: s, m: m) }.min()!
                        }
                        if slices > 1 {
                            #expect(Double(smallest(slices) * n * k) > BLAS.smallProductLimit, "\(m)x\(n)x\(k), \(slices) bands")
                        }
                        if slices < min(threads, m / BLAS.sliceRows) {
                            #expect(Double(smallest(slices + 1) * n * k) <= BLAS.smallProductLimit, "\(m)x\(n)x\(k): \(slices + 1) bands were possible")
                        }
                    }
                }
            }
        }

        /// A product split over threads (bands of rows, every transpose) equals the single-call
        /// product bit for bit, whatever OpenBLAS kernel this machine gets (the shapes have
        /// remainders of every small size; 193 rows leaves a last band of one extra row; the
        /// smallest bands are just above the small-product limit). Run under
        /// `OPENBLAS_CORETYPE=COOPERLAKE` or `SKYLAKEX` too where the CPU has AVX-512
        /// (`benchmarks/gemm_band_bits.py` checks more shapes under any kernel).
        @Test(arguments: [(Transpose.none, Transpose.none), (.none, .transposed), (.transposed, .none), (.transposed, .transposed)])
        func slicedMatmulEqualsOneCall(ta: Transpose, tb: Transpose) throws {
            for (m, n, k) in [(203, 67, 400), (301, 45, 300), (193, 1536, 384), (600, 301, 64), (1000, 13, 333), (256, 1024, 512)] {
                let a = randomTensor([m * k], seed: 1), b = randomTensor([k * n], seed: 2)
                let whole = Tensor(shape: [m, n]), sliced = Tensor(shape: [m, n])
                try Engine.withThreads(1) { BLAS.matmul(ta, tb, m: m, n: n, k: k, a: a.data, b: b.data, c: whole.data) }
                for threads in [2, 3] {
                    #expect(BLAS.sliceCount(m: m, n: n, k: k, threads: threads) > 1)
                    try Engine.withThreads(threads) { BLAS.matmul(ta, tb, m: m, n: n, k: k, a: a.data, b: b.data, c: sliced.data) }
                    #expect(sliced.array == whole.array, "\(m)x\(n)x\(k) at \(threads) threads")
                }
            }
        }

        /// The GEMM profiler measures only the computation that asked for it.
        @Test func profilerIsPerComputation() throws {
            let a = randomTensor([64 * 64], seed: 1), c = Tensor(shape: [64, 64]), otherC = Tensor(shape: [64, 64])
            let profiler = Profiler()
            let other = Worker { () -> Void in
                for _ in 0..<20 { BLAS.matmul(.none, .none, m: 64, n: 64, k: 64, a: a.data, b: a.data, c: otherC.data) }
            }
            profiler.record { BLAS.matmul(.none, .none, m: 64, n: 64, k: 64, a: a.data, b: a.data, c: c.data) }
            try other.wait()
            withExtendedLifetime((a, c, otherC)) {}
            #expect(profiler.flops == 2.0 * 64 * 64 * 64)
        }
    }
}
