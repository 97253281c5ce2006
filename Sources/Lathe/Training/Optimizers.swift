import Foundation

/// Optimizers as graph ops: each adds, for every parameter, the update of its state and of the
/// parameter itself as elementwise nodes ending in assigns, so the update runs inside the
/// compiled step and writes each parameter in place. The formulas are PyTorch's (torch.optim),
/// so a Lathe run and a PyTorch run of one model agree step by step.
public enum Optimizer: Sendable {
    case sgd(learningRate: Float)
    /// v = μ v + g; p -= lr v (Nesterov: p -= lr (g + μ v)).
    case momentum(learningRate: Float, momentum: Float = 0.9, nesterov: Bool = false)
    /// s = ρ s + (1 - ρ) g²; p -= lr g / (sqrt(s) + ε); PyTorch's defaults.
    case rmsprop(learningRate: Float = 1e-2, rho: Float = 0.99, epsilon: Float = 1e-8)
    /// Adam with bias correction; PyTorch's defaults.
    case adam(learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8)
    /// Adam with decoupled weight decay: p -= lr λ p before the Adam step; PyTorch's defaults.
    case adamW(learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 1e-2)

    public var learningRate: Float {
        switch self {
        case let .sgd(lr), let .momentum(lr, _, _), let .rmsprop(lr, _, _), let .adam(lr, _, _, _), let .adamW(lr, _, _, _, _): return lr
        }
    }

    /// The names of the scalar inputs [1] a step feeds: the learning rate, and Adam's
    /// bias-corrected step size lr / (1 - β1^t) and 1 / sqrt(1 - β2^t).
    public static let learningRateInput = "learning_rate", adamStepInput = "adam_step_size", adamVarianceInput = "adam_variance_scale"

    /// The values of the scalar inputs for step `t` (counting from 1) at learning rate `lr`.
    public func scalars(step t: Int, learningRate lr: Float) -> [String: Float] {
        var values = [Self.learningRateInput: lr]
        switch self {
        case let .adam(_, beta1, beta2, _), let .adamW(_, beta1, beta2, _, _):
            values[Self.adamStepInput] = Float(Double(lr) / (1 - pow(Double(beta1), Double(t))))
            values[Self.adamVarianceInput] = Float(1 / (1 - pow(Double(beta2), Double(t))).squareRoot())
        default: break
        }
        return values
    }

    /// Adds the updates of `parameters` (variables) given their `gradients` to the graph.
    public func addUpdates(_ graph: Graph, parameters: [ValueID], gradients: [ValueID]) throws {
        func scalar(_ name: String) throws -> ValueID {
            if let existing = graph.inputs.first(where: { $0.name == name }) { return existing.id }
            return try graph.addInput(name: name, shape: [1])
        }
        let lr = try scalar(Self.learningRateInput)
        for (p, g) in zip(parameters, gradients) {
            let name = graph[p].name
            func state(_ role: String) -> ValueID { graph.addVariable(HostTensor(shape: graph[p].type.shape), name: "\(name).\(role)") }
            func node(_ formula: ScalarExpr, _ operands: [ValueID], _ role: String) throws -> ValueID {
                try graph.addNode(.fusedElementwise(formula), operands, name: "\(name).\(role)")
            }
            func assign(_ variable: ValueID, _ value: ValueID) throws { try graph.addNode(.assign, [variable, value], name: "\(graph[variable].name).update") }
            let (a0, a1, a2, a3, a4) = (ScalarExpr.arg(0), ScalarExpr.arg(1), ScalarExpr.arg(2), ScalarExpr.arg(3), ScalarExpr.arg(4))
            switch self {
            case .sgd:
                try assign(p, try node(a0 - a2 * a1, [p, g, lr], "sgd"))
            case let .momentum(_, mu, nesterov):
                let v = state("velocity")
                let moved = try node(.const(mu) * a0 + a1, [v, g], "velocity_next")
                try assign(v, moved)
                let step = nesterov ? a0 - a3 * (a1 + .const(mu) * a2) : a0 - a3 * a2
                try assign(p, try node(step, [p, g, moved, lr], "momentum"))
            case let .rmsprop(_, rho, epsilon):
                let s = state("square_average")
                let moved = try node(.const(rho) * a0 + .const(1 - rho) * a1 * a1, [s, g], "square_average_next")
                try assign(s, moved)
                try assign(p, try node(a0 - a3 * a1 / (.unary(.sqrt, a2) + .const(epsilon)), [p, g, moved, lr], "rmsprop"))
            case let .adam(_, beta1, beta2, epsilon), let .adamW(_, beta1, beta2, epsilon, _):
                var decay: Float = 0
                if case let .adamW(_, _, _, _, weightDecay) = self { decay = weightDecay }
                let (m, v) = (state("m"), state("v"))
                let mNext = try node(.const(beta1) * a0 + .const(1 - beta1) * a1, [m, g], "m_next")
                let vNext = try node(.const(beta2) * a0 + .const(1 - beta2) * a1 * a1, [v, g], "v_next")
                try assign(m, mNext)
                try assign(v, vNext)
                let stepSize = try scalar(Self.adamStepInput), varianceScale = try scalar(Self.adamVarianceInput)
                // p (1 - lr λ) - a m / (sqrt(v) b + ε), with a and b the bias corrections.
                let decayed: ScalarExpr = decay == 0 ? a0 : a0 * (.const(1) - .arg(5) * .const(decay))
                let update = decayed - a3 * a1 / (.unary(.sqrt, a2) * a4 + .const(epsilon))
                try assign(p, try node(update, [p, mNext, vNext, stepSize, varianceScale, lr], "adam"))
            }
        }
    }
}
