"""Power laws along a ladder: loss = a · x^(−α), fitted by least squares in log–log, extrapolated with a t interval
for seed noise; and log–log interpolation between measured rungs (quality at a given cost), likewise."""
from __future__ import annotations

import math
import statistics

from ..search.stats import excludes_zero, t_quantile


def power_law(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """(log a, α) of y = a · x^(−α) through the points, least squares on log y against log x (≥ 2 distinct x)."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    sxx = sum((u - mx) ** 2 for u in lx)
    if sxx == 0:
        raise ValueError("a power law needs points at two sizes at least")
    slope = sum((u - mx) * (v - my) for u, v in zip(lx, ly)) / sxx
    return my - slope * mx, -slope


def predict(fit: tuple[float, float], x: float) -> float:
    log_a, alpha = fit
    return math.exp(log_a - alpha * math.log(x))


def _log_parts(points: dict[float, list[float]], xs: list[float], weights: list[float]) -> list[tuple[float, int]]:
    """The variance of Σ wᵢ·log(meanᵢ) over the sizes xs, split into one (variance, seeds) part per size: each
    log mean's variance is sᵢ²/(nᵢ·meanᵢ²) by the delta method (0 for a single seed, which leaves no interval)."""
    out = []
    for w, x in zip(weights, xs):
        v, m, n = points[x], statistics.fmean(points[x]), len(points[x])
        out.append((w * w * statistics.variance(v) / (n * m * m) if n > 1 else 0.0, n))
    return out


def _t_half(parts: list[tuple[float, int]], level: float) -> tuple[float, float] | None:
    """(half width, degrees of freedom) of a `level` interval for a sum of independent parts (variance, seeds):
    Student's t with Welch–Satterthwaite degrees of freedom; None where a part rests on one seed."""
    if any(n < 2 for _, n in parts):
        return None
    var = sum(v for v, _ in parts)
    if var == 0:
        return 0.0, math.inf
    df = var ** 2 / sum(v * v / (n - 1) for v, n in parts)
    return t_quantile(0.5 + level / 2, df) * math.sqrt(var), df


def _estimate(points: dict[float, list[float]], xs: list[float], weights: list[float], level: float) -> dict:
    """exp(Σ wᵢ·log(meanᵢ)) with its `level` interval for seed noise (lo = hi = None without one), and the parts of
    its log variance (for a difference with another estimate)."""
    value = math.exp(sum(w * math.log(statistics.fmean(points[x])) for w, x in zip(weights, xs)))
    parts = _log_parts(points, xs, weights)
    t = _t_half(parts, level)
    return {"value": value, "lo": None if t is None else value * math.exp(-t[0]),
            "hi": None if t is None else value * math.exp(t[0]), "df": None if t is None else t[1], "parts": parts}


def extrapolate(points: dict[float, list[float]], at: float, level: float = 0.95) -> dict | None:
    """Fit y = a·x^(−α) to the seed means at each x and predict y at `at`, with a `level` interval for seed noise:
    the prediction is a fixed linear combination Σ wᵢ·log(meanᵢ) of the sizes' log means, whose variance is
    Σ wᵢ²·sᵢ²/(nᵢ·meanᵢ²) (the delta method), and the interval uses Student's t with Welch–Satterthwaite degrees of
    freedom. With 2–3 seeds a size, a bootstrap over seeds covers the truth far less often than it says (about 79% for
    a nominal 95% at 3 seeds and 2 sizes): the t interval widens for how little 3 seeds say about their spread. It
    covers seed noise only: whether the law holds beyond the measured sizes is a separate question. None with fewer
    than two sizes; no interval (lo = hi = None) where a size has a single seed."""
    xs = sorted(x for x, v in points.items() if v)
    if len(xs) < 2:
        return None
    log_a, alpha = power_law(xs, [statistics.fmean(points[x]) for x in xs])
    lx = [math.log(x) for x in xs]
    mx = statistics.fmean(lx)
    sxx = sum((u - mx) ** 2 for u in lx)
    weights = [1 / len(xs) + (math.log(at) - mx) * (u - mx) / sxx for u in lx]
    return {"alpha": alpha, "log_a": log_a, "at": at, "sizes": len(xs), **_estimate(points, xs, weights, level)}


def read_off(points: dict[float, list[float]], at: float, level: float = 0.95) -> dict | None:
    """y at `at` on the piecewise power law through the seed means (linear in log–log between the neighbouring
    x), with a `level` interval for seed noise as extrapolate's; None outside the measured range (no
    extrapolation). It does not cover the noise in the x themselves (measured times vary between runs)."""
    near = neighbours(sorted(x for x, v in points.items() if v), at)
    if len(near) == 2:
        x0, x1 = near
        w = (math.log(at) - math.log(x0)) / (math.log(x1) - math.log(x0))
        return _estimate(points, near, [1 - w, w], level)
    return _estimate(points, near, [1.0], level) if near else None


def neighbours(xs: list[float], at: float) -> list[float]:
    """The measured x that read_off reads `at` from, of the sorted `xs`: [at] where it was measured, the two around it
    where it lies between two, [] outside them."""
    if at in xs:
        return [at]
    return next(([x0, x1] for x0, x1 in zip(xs, xs[1:]) if x0 < at < x1), [])


def difference(estimate: dict, values: list[float], level: float = 0.95) -> dict | None:
    """estimate − mean(values) with a `level` interval: the estimate's log variance in its own units (delta method)
    plus the mean's, Student's t with Welch–Satterthwaite degrees of freedom; None without an interval."""
    if len(values) < 2:
        return None
    v = estimate["value"]
    parts = [(v * v * c, n) for c, n in estimate["parts"]] + [(statistics.variance(values) / len(values), len(values))]
    t = _t_half(parts, level)
    if t is None:
        return None
    diff = v - statistics.fmean(values)
    return {"diff": diff, "low": diff - t[0], "high": diff + t[0], "df": t[1], "level": level}


def timing_margin(points: dict[float, list[float]], budget: float, values: list[float], level: float = 0.95,
                  limit: float = 0.5, step: float = 0.001) -> float | None:
    """How far the timings may be off before an equal-time reading changes its verdict: the relative error e of
    smallest size such that reading the line at budget·(1 + e) gives a `level` interval for
    difference(read_off(points, ·), values) that includes 0 where the reading at the budget excludes it, or excludes
    0 where it includes it. Searched outwards in steps of `step` up to ±`limit` (the interval's width moves with the
    interpolation, so the verdict need not change monotonically), then the crossing found by bisection within its
    step. None where no such error lies within ±limit on the measured line, or the reading has no interval."""
    def excludes(e: float) -> bool | None:
        at = read_off(points, budget * (1 + e), level)
        d = difference(at, values, level) if at else None
        return None if d is None else excludes_zero(d)

    now = excludes(0.0)
    if now is None:
        return None
    for i in range(1, round(limit / step) + 1):
        for sign in (1, -1):
            flipped = excludes(sign * i * step)
            if flipped is not None and flipped != now:
                inside, out = sign * (i - 1) * step, sign * i * step
                for _ in range(40):
                    mid = (inside + out) / 2
                    inside, out = (mid, out) if excludes(mid) == now else (inside, mid)
                return out
    return None
