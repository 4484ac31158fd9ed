import Foundation
import GraftSupport

/// An optimizer whose state lives in flat buffers parallel to ``ParameterStore/values``.
public protocol Optimizer: AnyObject {
    /// Number of updates made so far.
    var stepCount: Int { get set }
    /// Applies one update with learning rate `lr` using the gradients in `store`, each multiplied
    /// by `gradientScale` as it is read (``clipFactor(norm:maxNorm:)``: clipping without a pass
    /// that rewrites the gradients; the stored gradients are left as they are).
    func step(_ store: ParameterStore, lr: Float, gradientScale: Float) throws
    /// Named flat state buffers (e.g. `exp_avg`, `exp_avg_sq`), each `store.count` floats,
    /// saved per parameter as `optimizer.<buffer>.<parameter name>`.
    var stateBuffers: [(name: String, buffer: UnsafeMutablePointer<Float>)] { get }
    /// Hyper-parameters and step as strings, for checkpoint metadata.
    var metadata: [String: String] { get }
    /// The group of each parameter, in ``ParameterStore/parameters`` order.
    var groups: [ParameterGroup] { get }
}

extension Optimizer {
    /// Applies one update with learning rate `lr` using the gradients in `store` as they are.
    public func step(_ store: ParameterStore, lr: Float) throws {
        try step(store, lr: lr, gradientScale: 1)
    }

    /// Sets the gradients of frozen parameters to zero (before clipping, so that they count
    /// neither in the global norm nor anywhere else).
    public func zeroFrozenGradients(_ store: ParameterStore) {
        for (p, g) in zip(store.parameters, groups) where g.frozen { store.grad(p).update(repeating: 0, count: p.count) }
    }
}

/// Optimizer settings for a group of parameters (as PyTorch's parameter groups): a multiplier of
/// the scheduled learning rate (e.g. a larger one for a fresh task head) and whether the
/// parameters are frozen. An optimizer skips frozen parameters entirely: their values and
/// optimizer state keep their exact bytes.
public struct ParameterGroup: Sendable, Equatable, Codable {
    /// Multiplies the learning rate of every update (and so AdamW's decoupled weight decay).
    public var learningRateScale: Float
    /// Never updated.
    public var frozen: Bool

    public init(learningRateScale: Float = 1, frozen: Bool = false) {
        self.learningRateScale = learningRateScale; self.frozen = frozen
    }

    /// Updated with the scheduled learning rate.
    public static let standard = ParameterGroup()
    /// Never updated.
    public static let frozen = ParameterGroup(frozen: true)
}

/// Per-parameter groups of an optimizer, parallel to ``ParameterStore/parameters``.
func groups(for store: ParameterStore, _ rule: ((Parameter) -> ParameterGroup)?) -> [ParameterGroup] {
    store.parameters.map { rule?($0) ?? .standard }
}

func allocFloats(_ n: Int) -> UnsafeMutablePointer<Float> {
    let p = UnsafeMutableRawPointer.allocate(byteCount: max(1, n) * 4, alignment: 64).bindMemory(to: Float.self, capacity: max(1, n))
    p.initialize(repeating: 0, count: max(1, n))
    return p
}

/// AdamW (Loshchilov & Hutter; PyTorch `torch.optim.AdamW` semantics): decoupled weight decay
/// `p -= lr * wd * p` for parameters whose ``Parameter/decay`` is true (not biases or LayerNorm
/// weights under the default rule), then the bias-corrected Adam update.
/// Moments `exp_avg`, `exp_avg_sq` are flat buffers of `store.count` floats.
public final class AdamW: Optimizer {
    public var beta1: Float
    public var beta2: Float
    public var eps: Float
    public var weightDecay: Float
    public var stepCount = 0
    public let count: Int
    /// The group of each parameter; ``regroup(_:_:)`` changes them between updates (gradual
    /// unfreezing). A parameter's moments are kept while it is frozen.
    public private(set) var groups: [ParameterGroup]
    let m: UnsafeMutablePointer<Float>
    let v: UnsafeMutablePointer<Float>

    /// Create after every parameter of `store` is declared. `groups` gives each parameter its
    /// learning-rate multiplier and frozen flag (default: every parameter `.standard`).
    public init(_ store: ParameterStore, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8,
                weightDecay: Float = 0.01, groups rule: ((Parameter) -> ParameterGroup)? = nil) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        count = store.count
        groups = GraftEngine.groups(for: store, rule)
        m = allocFloats(count)
        v = allocFloats(count)
    }

    deinit { UnsafeMutableRawPointer(m).deallocate(); UnsafeMutableRawPointer(v).deallocate() }

    /// Replaces every parameter's group by `rule`'s (from the next update on).
    public func regroup(_ store: ParameterStore, _ rule: (Parameter) -> ParameterGroup) {
        groups = store.parameters.map(rule)
    }

    public var stateBuffers: [(name: String, buffer: UnsafeMutablePointer<Float>)] { [("exp_avg", m), ("exp_avg_sq", v)] }

    public var metadata: [String: String] {
        ["optimizer": "adamw", "optimizer.step": String(stepCount), "optimizer.beta1": "\(beta1)",
         "optimizer.beta2": "\(beta2)", "optimizer.eps": "\(eps)", "optimizer.weight_decay": "\(weightDecay)"]
    }

    public func step(_ store: ParameterStore, lr: Float, gradientScale: Float) throws {
        guard store.count == count else {
            throw EngineError.shapeMismatch("AdamW built for \(count) floats, store has \(store.count)")
        }
        stepCount += 1
        let b1 = beta1, b2 = beta2, eps = eps
        let bc1 = 1 - Float(Foundation.pow(Double(b1), Double(stepCount)))
        let bc2 = 1 - Float(Foundation.pow(Double(b2), Double(stepCount)))
        let invSqrtBc2 = 1 / bc2.squareRoot()
        guard groups.count == store.parameters.count else {
            throw EngineError.shapeMismatch("AdamW built for \(groups.count) parameters, store has \(store.parameters.count)")
        }
        for (p, group) in zip(store.parameters, groups) where !group.frozen {
            let groupLR = group.learningRateScale == 1 ? lr : lr * group.learningRateScale
            let stepSize = groupLR / bc1
            let decay: Float = p.decay ? 1 - groupLR * weightDecay : 1
            let skipUntouched = decay == 1
            let w = SharedPointer(store.value(p)), g = SharedPointer(store.grad(p))
            let mp = SharedPointer(m + p.offset), vp = SharedPointer(v + p.offset)
            Engine.parallelFor(p.count, minChunk: Kernels.minChunk) { r in
                // Eight lanes at a time, then the scalar tail: the same operations in the same order
                // (IEEE sqrt and division are exact in either form), so the bits do not depend on the
                // split. The scalar loop alone compiled to vsqrtss / vdivss and made this step
                // compute-bound (~7% of a fine-tuning update).
                var i = r.lowerBound
                let vb1 = SIMD8<Float>(repeating: b1), vc1 = SIMD8<Float>(repeating: 1 - b1)
                let vb2 = SIMD8<Float>(repeating: b2), vc2 = SIMD8<Float>(repeating: 1 - b2)
                let vDecay = SIMD8<Float>(repeating: decay), vStep = SIMD8<Float>(repeating: stepSize)
                let vInv = SIMD8<Float>(repeating: invSqrtBc2), vEps = SIMD8<Float>(repeating: eps)
                let zero = SIMD8<Float>(repeating: 0), vScale = SIMD8<Float>(repeating: gradientScale)
                while i + 8 <= r.upperBound {
                    let gi = UnsafeRawPointer(g.value + i).loadUnaligned(as: SIMD8<Float>.self) * vScale
                    let m0 = UnsafeRawPointer(mp.value + i).loadUnaligned(as: SIMD8<Float>.self)
                    let v0 = UnsafeRawPointer(vp.value + i).loadUnaligned(as: SIMD8<Float>.self)
                    // Eight weights that never had a gradient (an embedding row of a token not seen
                    // yet: gradient and both moments zero): without decay the update leaves every bit
                    // as it is (m and v stay +0, never -0; w - 0 = w), so skip the loads and stores.
                    if skipUntouched && gi == zero && m0 == zero && v0 == zero { i += 8; continue }
                    let mi = vb1 * m0 + vc1 * gi
                    let vi = vb2 * v0 + vc2 * gi * gi
                    UnsafeMutableRawPointer(mp.value + i).storeBytes(of: mi, as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(vp.value + i).storeBytes(of: vi, as: SIMD8<Float>.self)
                    let wi = UnsafeRawPointer(w.value + i).loadUnaligned(as: SIMD8<Float>.self)
                    let updated = wi * vDecay - vStep * mi / (vi.squareRoot() * vInv + vEps)
                    UnsafeMutableRawPointer(w.value + i).storeBytes(of: updated, as: SIMD8<Float>.self)
                    i += 8
                }
                while i < r.upperBound {
                    let gi = g.value[i] * gradientScale
                    let mi = b1 * mp.value[i] + (1 - b1) * gi
                    let vi = b2 * vp.value[i] + (1 - b2) * gi * gi
                    mp.value[i] = mi
                    vp.value[i] = vi
                    w.value[i] = w.value[i] * decay - stepSize * mi / (vi.squareRoot() * invSqrtBc2 + eps)
                    i += 1
                }
            }
        }
    }
}

/// SGD with momentum (PyTorch semantics, no dampening): `buf = mu * buf + (g + wd * p)`,
/// `p -= lr * buf` (`wd` only on parameters with ``Parameter/decay``).
public final class SGD: Optimizer {
    public var momentum: Float
    public var weightDecay: Float
    public var stepCount = 0
    public let count: Int
    public let groups: [ParameterGroup]
    let buf: UnsafeMutablePointer<Float>

    /// `groups` gives each parameter its learning-rate multiplier and frozen flag.
    public init(_ store: ParameterStore, momentum: Float = 0.9, weightDecay: Float = 0,
                groups rule: ((Parameter) -> ParameterGroup)? = nil) {
        self.momentum = momentum; self.weightDecay = weightDecay
        count = store.count
        groups = GraftEngine.groups(for: store, rule)
        buf = allocFloats(count)
    }

    deinit { UnsafeMutableRawPointer(buf).deallocate() }

    public var stateBuffers: [(name: String, buffer: UnsafeMutablePointer<Float>)] { [("momentum_buffer", buf)] }

    public var metadata: [String: String] {
        ["optimizer": "sgd", "optimizer.step": String(stepCount), "optimizer.momentum": "\(momentum)",
         "optimizer.weight_decay": "\(weightDecay)"]
    }

    public func step(_ store: ParameterStore, lr: Float, gradientScale: Float) throws {
        guard store.count == count else {
            throw EngineError.shapeMismatch("SGD built for \(count) floats, store has \(store.count)")
        }
        stepCount += 1
        let mu = momentum
        guard groups.count == store.parameters.count else {
            throw EngineError.shapeMismatch("SGD built for \(groups.count) parameters, store has \(store.parameters.count)")
        }
        for (p, group) in zip(store.parameters, groups) where !group.frozen {
            let groupLR = group.learningRateScale == 1 ? lr : lr * group.learningRateScale
            let wd: Float = p.decay ? weightDecay : 0
            let w = SharedPointer(store.value(p)), g = SharedPointer(store.grad(p)), b = SharedPointer(buf + p.offset)
            Engine.parallelFor(p.count, minChunk: Kernels.minChunk) { r in
                for i in r {
                    let gi = g.value[i] * gradientScale + wd * w.value[i]
                    let bi = mu * b.value[i] + gi
                    b.value[i] = bi
                    w.value[i] -= groupLR * bi
                }
            }
        }
    }
}

/// Scales all gradients so their global L2 norm is at most `maxNorm` (PyTorch
/// `clip_grad_norm_`: factor `maxNorm / (norm + 1e-6)` when `norm > maxNorm`).
/// Returns the norm before clipping. (A training loop can skip this pass: pass
/// ``clipFactor(norm:maxNorm:)`` of ``ParameterStore/gradNorm()`` to
/// ``Optimizer/step(_:lr:gradientScale:)``, which gives the same update.)
@discardableResult
public func clipGradNorm(_ store: ParameterStore, maxNorm: Float) -> Double {
    let norm = store.gradNorm()
    let factor = clipFactor(norm: norm, maxNorm: maxNorm)
    if factor != 1 { Kernels.scale(store.grads, factor, store.count) }
    return norm
}

/// The factor ``clipGradNorm(_:maxNorm:)`` scales gradients of global norm `norm` by:
/// `maxNorm / (norm + 1e-6)` when `norm > maxNorm`, else 1.
public func clipFactor(norm: Double, maxNorm: Float) -> Float {
    norm > Double(maxNorm) ? Float(Double(maxNorm) / (norm + 1e-6)) : 1
}

/// Learning-rate schedule: linear warm-up from 0 over `warmupSteps`, then linear or cosine
/// decay to 0 at `totalSteps` (HuggingFace `get_linear_schedule_with_warmup` /
/// `get_cosine_schedule_with_warmup`), or constant.
public struct LRSchedule: Sendable, Equatable {
    public enum Decay: String, Sendable, Codable, CaseIterable { case linear, cosine, constant }
    public var baseLR: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var decay: Decay

    public init(baseLR: Float, warmupSteps: Int = 0, totalSteps: Int, decay: Decay = .linear) {
        self.baseLR = baseLR; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps; self.decay = decay
    }

    /// Learning rate for update number `step` (0-based, i.e. the optimizer's `stepCount` before the update).
    public func lr(at step: Int) -> Float {
        if step < warmupSteps { return baseLR * Float(step) / Float(max(1, warmupSteps)) }
        switch decay {
        case .constant: return baseLR
        case .linear:
            return baseLR * max(0, Float(totalSteps - step) / Float(max(1, totalSteps - warmupSteps)))
        case .cosine:
            let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
            return baseLR * Float(max(0, 0.5 * (1 + Foundation.cos(Double.pi * progress))))
        }
    }

    var metadata: [String: String] {
        ["schedule.base_lr": "\(baseLR)", "schedule.warmup_steps": String(warmupSteps),
         "schedule.total_steps": String(totalSteps), "schedule.decay": decay.rawValue]
    }

    init?(metadata m: [String: String]) {
        guard let lr = m["schedule.base_lr"].flatMap(Float.init), let w = m["schedule.warmup_steps"].flatMap(Int.init),
              let t = m["schedule.total_steps"].flatMap(Int.init), let d = m["schedule.decay"].flatMap(Decay.init)
        else { return nil }
        self.init(baseLR: lr, warmupSteps: w, totalSteps: t, decay: d)
    }
}
