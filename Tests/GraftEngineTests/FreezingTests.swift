import Foundation
import Testing
@testable import GraftEngine

extension EngineTests {
    /// ``FreezingOptimizer``: frozen ranges keep their bytes, the rest steps exactly as the
    /// wrapped optimizer alone would.
    @Suite struct Freezing {
        func store() throws -> ParameterStore {
            let s = ParameterStore(seed: 3)
            try s.declare("a.weight", shape: [4, 3], initializer: .normal(std: 1))
            try s.declare("a.bias", shape: [4], initializer: .normal(std: 1))
            try s.declare("b.weight", shape: [5], initializer: .normal(std: 1))
            return s
        }

        func fillGrads(_ s: ParameterStore, step: Int) {
            for i in 0..<s.count { s.grads[i] = Float((i * 7 + step * 3) % 11) - 5 }
        }

        @Test(arguments: ["adamw", "sgd"])
        func frozenRangesKeepTheirBytes(kind: String) throws {
            let frozen = try store(), free = try store()
            let a = try frozen.parameter(named: "a.weight"), b = try frozen.parameter(named: "b.weight")
            func make(_ s: ParameterStore) -> any Optimizer {
                kind == "adamw" ? AdamW(s, weightDecay: 0.1) : SGD(s, momentum: 0.9, weightDecay: 0.1)
            }
            // Overlapping and unsorted ranges are merged.
            let opt = FreezingOptimizer(make(frozen), frozen: [b.offset..<(b.offset + b.count), a.offset..<(a.offset + 6), a.offset + 2..<(a.offset + 4)])
            #expect(opt.frozen.count == 2)
            let reference = make(free)
            let before = Array(UnsafeBufferPointer(start: frozen.values, count: frozen.count)).map(\.bitPattern)
            for step in 0..<3 {
                fillGrads(frozen, step: step); fillGrads(free, step: step)
                try opt.step(frozen, lr: 0.05)
                try reference.step(free, lr: 0.05)
            }
            #expect(opt.stepCount == 3)
            for i in 0..<frozen.count {
                let isFrozen = opt.frozen.contains { $0.contains(i) }
                if isFrozen {
                    #expect(frozen.values[i].bitPattern == before[i], "frozen float \(i) changed")
                } else {
                    #expect(frozen.values[i] == free.values[i], "trainable float \(i) differs from the unwrapped optimizer")
                }
            }
            let trained = (0..<frozen.count).filter { i in !opt.frozen.contains { $0.contains(i) } }
            #expect(trained.contains { frozen.values[$0].bitPattern != before[$0] })
        }

        @Test func rangesOutsideTheStoreAreRefused() throws {
            let s = try store()
            let opt = FreezingOptimizer(AdamW(s), frozen: [0..<(s.count + 1)])
            #expect(throws: EngineError.self) { try opt.step(s, lr: 0.1) }
        }
    }
}
