"""Power laws along a ladder: loss = a · x^(−α), fitted by least squares in log–log, extrapolated with a bootstrap
interval over seeds; and log–log interpolation between measured rungs (quality at a given cost)."""
from __future__ import annotations

import math
import random
import statistics


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


def extrapolate(points: dict[float, list[float]], at: float, reps: int = 2000, level: float = 0.95,
                seed: int = 0) -> dict | None:
    """Fit y = a·x^(−α) to the seed means at each x and predict y at `at`; the interval is the bootstrap's (seeds
    resampled with replacement within each x, `reps` times, percentile). It covers seed noise only: with few sizes,
    whether the law holds is a separate question. None with fewer than two sizes."""
    xs = sorted(x for x, v in points.items() if v)
    if len(xs) < 2:
        return None
    means = [statistics.fmean(points[x]) for x in xs]
    fit = power_law(xs, means)
    rng = random.Random(seed)
    draws = []
    for _ in range(reps):
        ys = [statistics.fmean(rng.choices(points[x], k=len(points[x]))) for x in xs]
        draws.append(predict(power_law(xs, ys), at))
    draws.sort()
    lo, hi = draws[int((1 - level) / 2 * reps)], draws[min(reps - 1, int((1 + level) / 2 * reps))]
    return {"alpha": fit[1], "log_a": fit[0], "at": at, "value": predict(fit, at), "lo": lo, "hi": hi,
            "sizes": len(xs)}


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
