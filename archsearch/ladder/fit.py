"""Power laws along a ladder: loss = a · x^(−α), fitted by least squares in log–log, extrapolated with a t interval
for seed noise; and log–log interpolation between measured rungs (quality at a given cost)."""
from __future__ import annotations

import math
import statistics

from ..search.stats import t_quantile


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
    means = [statistics.fmean(points[x]) for x in xs]
    fit = power_law(xs, means)
    value = predict(fit, at)
    out = {"alpha": fit[1], "log_a": fit[0], "at": at, "value": value, "lo": None, "hi": None, "df": None,
           "sizes": len(xs)}
    if any(len(points[x]) < 2 for x in xs):
        return out
    lx = [math.log(x) for x in xs]
    mx = statistics.fmean(lx)
    sxx = sum((u - mx) ** 2 for u in lx)
    weights = [1 / len(xs) + (math.log(at) - mx) * (u - mx) / sxx for u in lx]
    parts = [w * w * statistics.variance(points[x]) / (len(points[x]) * m * m)
             for w, x, m in zip(weights, xs, means)]
    var = sum(parts)
    if var == 0:
        return {**out, "lo": value, "hi": value, "df": math.inf}
    df = var ** 2 / sum(c * c / (len(points[x]) - 1) for c, x in zip(parts, xs))
    half = t_quantile(0.5 + level / 2, df) * math.sqrt(var)
    return {**out, "lo": value * math.exp(-half), "hi": value * math.exp(half), "df": df}


def interpolate(xs: list[float], ys: list[float], x: float) -> float | None:
    """y at x on the piecewise power law through the points (linear in log–log between neighbours); None outside
    the measured range (no extrapolation)."""
    pts = sorted(zip(xs, ys))
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= x <= x1:
            if x in (x0, x1):
                return y0 if x == x0 else y1
            w = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return math.exp((1 - w) * math.log(y0) + w * math.log(y1))
    if pts and pts[0][0] == x:
        return pts[0][1]
    return None
