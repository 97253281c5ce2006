#!/usr/bin/env python3
"""Fits the rational erf of LatheCodegen/FloatMath.swift: erf(x) ~ x P(x^2) / Q(x^2) on [0, 3.92]
(beyond it erf is +-1 in float32), P of degree 5 and Q of degree 5 in x^2, Q(0) = 1. Linearized
least squares, x P - erf(x) Q = 0, in t = (x / 3.92)^2 (better conditioned than x^2), each pass
reweighted by 1 / Q and by the last pass's error toward minimax; the best pass is kept. Prints
the coefficients in powers of x^2 as float32, and the error of their float32 evaluation.

    python3 tools/fit-erf.py      # needs numpy and scipy
"""
import numpy as np
from scipy.special import erf

BOUND, P_TERMS, Q_TERMS = 3.92, 6, 5


def fit(iterations=60):
    x = np.linspace(0, BOUND, 400001)
    y, t = erf(x), (x / BOUND) ** 2
    weights, best = np.ones_like(x), None
    for _ in range(iterations):
        a = np.concatenate([np.stack([x * t**i for i in range(P_TERMS)], 1), np.stack([-y * t**j for j in range(1, Q_TERMS + 1)], 1)], 1)
        c, *_ = np.linalg.lstsq(a * weights[:, None], y * weights, rcond=None)
        p, q = c[:P_TERMS], np.concatenate([[1.0], c[P_TERMS:]])
        qt = sum(q[j] * t**j for j in range(Q_TERMS + 1))
        error = x * sum(p[i] * t**i for i in range(P_TERMS)) / qt - y
        worst = np.abs(error).max()
        if best is None or worst < best[0]:
            best = (worst, p.copy(), q.copy())
        weights = weights / np.abs(qt) * (np.abs(error) / worst + 0.05)
        weights /= weights.max()
    _, p, q = best
    return [p[i] / BOUND**(2 * i) for i in range(P_TERMS)], [q[j] / BOUND**(2 * j) for j in range(Q_TERMS + 1)]


def evaluate_f32(p, q, x):
    x = np.clip(x.astype(np.float32), -BOUND, BOUND)
    x2 = x * x
    num, den = np.float32(p[-1]), np.float32(q[-1])
    for c in p[-2::-1]:
        num = np.float32(num * x2 + np.float32(c))
    for c in q[-2::-1]:
        den = np.float32(den * x2 + np.float32(c))
    return np.clip(x * num / den, -1, 1)


if __name__ == "__main__":
    p, q = fit()
    print("P:", [float(np.float32(v)) for v in p])
    print("Q:", [float(np.float32(v)) for v in q])
    xs = np.linspace(-5, 5, 4000001).astype(np.float32)
    exact = erf(xs.astype(np.float64))
    error = np.abs(evaluate_f32(p, q, xs) - exact)
    small = np.abs(xs) < 0.01
    print(f"max abs error {error.max():.3g}; max relative error below 0.01: {(error[small] / np.maximum(np.abs(exact[small]), 1e-30)).max():.3g}")
