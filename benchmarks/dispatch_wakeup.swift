// DispatchQueue.concurrentPerform(iterations: 2) against a spinning worker pool (the design of
// GraftEngine/Core/WorkerPool.swift) on two chunks of a dependent float loop, 31-500 us each.
// Build and run: swiftc -O benchmarks/dispatch_wakeup.swift -o dispatch_wakeup && ./dispatch_wakeup
import Dispatch
import Foundation
import Synchronization

final class SpinPool: @unchecked Sendable {
  let ticket = Atomic<UInt64>(0)      // gen << 32 | chunks << 16 | next
  let finished = Atomic<Int>(0)
  let busy = Atomic<Bool>(false)
  var body: ((Int) -> Void)? = nil
  let cond = NSCondition()
  var sleepers = 0
  var workers = 0
  init() {}
  func ensure(_ n: Int) {
    while workers < n {
      workers += 1
      let t = Thread { [unowned self] in self.loop() }
      t.start()
    }
  }
  func loop() {
    var seen = ticket.load(ordering: .acquiring) >> 32
    while true {
      var spins = 0
      var t = ticket.load(ordering: .acquiring)
      while t >> 32 == seen {
        spins += 1
        if spins > 200_000 {
          cond.lock(); sleepers += 1
          while ticket.load(ordering: .acquiring) >> 32 == seen { cond.wait() }
          sleepers -= 1; cond.unlock()
          spins = 0
        }
        t = ticket.load(ordering: .acquiring)
      }
      seen = t >> 32
      runChunks(gen: seen)
    }
  }
  @inline(__always) func runChunks(gen: UInt64) {
    while true {
      let t = ticket.load(ordering: .acquiring)
      if t >> 32 != gen { return }
      let chunks = (t >> 16) & 0xFFFF, next = t & 0xFFFF
      if next >= chunks { return }
      if ticket.compareExchange(expected: t, desired: t + 1, ordering: .acquiringAndReleasing).exchanged {
        body!(Int(next))
        finished.add(1, ordering: .releasing)
      }
    }
  }
  func run(_ chunks: Int, _ b: @escaping (Int) -> Void) {
    ensure(chunks - 1)
    body = b
    finished.store(0, ordering: .relaxed)
    let gen = (ticket.load(ordering: .relaxed) >> 32) &+ 1
    ticket.store(gen << 32 | UInt64(chunks) << 16, ordering: .releasing)
    cond.lock(); if sleepers > 0 { cond.broadcast() }; cond.unlock()
    runChunks(gen: gen)
    while finished.load(ordering: .acquiring) < chunks {}
  }
}

let len = 1 << 14
let data = UnsafeMutablePointer<Float>.allocate(capacity: 2 * len)
for i in 0..<(2 * len) { data[i] = Float(i % 13) }
let out = UnsafeMutablePointer<Float>.allocate(capacity: 2)
let bits = UInt(bitPattern: data), obits = UInt(bitPattern: out)
@inline(never) func work(_ c: Int, reps: Int) {
  let d = UnsafeMutablePointer<Float>(bitPattern: bits)! + c * len
  var s: Float = 0
  for _ in 0..<reps { for i in 0..<len { s = s * 0.999 + d[i] } }
  UnsafeMutablePointer<Float>(bitPattern: obits)![c] += s
}
let pool = SpinPool()
for reps in [1, 4, 16] {
  let n = 3000
  let t0 = Date()
  for _ in 0..<n { DispatchQueue.concurrentPerform(iterations: 2) { c in work(c, reps: reps) } }
  let dt = Date().timeIntervalSince(t0) / Double(n) * 1e6
  let t2 = Date()
  for _ in 0..<n { pool.run(2) { c in work(c, reps: reps) } }
  let dt2 = Date().timeIntervalSince(t2) / Double(n) * 1e6
  let t1 = Date()
  for _ in 0..<n { work(0, reps: reps) }
  let dt1 = Date().timeIntervalSince(t1) / Double(n) * 1e6
  print("reps \(reps): one chunk \(String(format: "%.1f", dt1)) us; concurrentPerform(2) \(String(format: "%.1f", dt)) us; spin pool \(String(format: "%.1f", dt2)) us")
}
print(out[0] + out[1])
