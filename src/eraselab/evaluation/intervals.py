"""95 % intervals for the grid's rates, defined once here (metrics/summary.json, the report, `eraselab compare`).

- A cell's rate (target, held-out, Pre-ASR, ASR) is ``k`` of ``n`` images: the **Wilson score interval**,
  which stays inside [0, 1] and is not degenerate at 0 or 1, unlike the normal approximation.
- Retention is the mean of the judge's per-kind accuracies on the *same* ``n`` retain images: treated as one
  proportion of ``n`` (pooling the kinds would count each image several times and narrow the interval).
- A method's mean over concepts is a mean of proportions. With equal ``n`` per concept it is the pooled
  proportion, so its Wilson interval is exact in the same sense; with unequal ``n`` (real prompt sets) the
  Wilson interval is taken at the mean with the effective sample size ``C² / Σ 1/n_c`` (the ``n`` whose
  binomial variance matches the mean's at equal rates).
- The worst case (per concept the highest ASR any attack reached, then the mean) uses each concept's worst
  attack's ``n``; the maximum of several noisy rates is biased upward, which no interval here corrects.

Two intervals that do not overlap are a conservative test of a difference (roughly p < 0.01 for two
independent rates); ``separated`` is what the report's summary sentence uses before it calls a difference.
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile
LEVEL = 0.95


def wilson(k: float, n: float, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of ``k`` successes in ``n`` trials (``k`` may be fractional: a mean rate
    times its ``n``); None where ``n`` is 0."""
    if not n or n <= 0:
        return None
    p = min(max(k / n, 0.0), 1.0)
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))  # exact at k = 0 or n despite rounding


def rate_interval(rate: float | None, n: float | None) -> list[float] | None:
    """[low, high] of a rate measured on ``n`` images, rounded for the summary; None where undefined."""
    if rate is None or not n:
        return None
    lo, hi = wilson(rate * n, n)
    return [round(lo, 4), round(hi, 4)]


def effective_n(ns: list[float]) -> float:
    """The sample size of a mean of ``len(ns)`` proportions measured on ``ns`` images each."""
    ns = [n for n in ns if n]
    return len(ns) ** 2 / sum(1 / n for n in ns) if ns else 0.0


def mean_interval(rates: list[float | None], ns: list[float | None]) -> list[float] | None:
    """[low, high] of the mean of several rates (one per concept), each on its own ``n`` images."""
    pairs = [(r, n) for r, n in zip(rates, ns) if r is not None and n]
    if not pairs:
        return None
    mean = sum(r for r, _ in pairs) / len(pairs)
    return rate_interval(mean, effective_n([n for _, n in pairs]))


def separated(a: list[float] | None, b: list[float] | None) -> bool:
    """Whether two intervals do not overlap (False where either is missing)."""
    return a is not None and b is not None and (a[1] < b[0] or b[1] < a[0])


def fmt_interval(value: float | None, interval: list[float] | None, digits: int = 2) -> str:
    """``0.41 (0.32–0.50)``; the bare value where there is no interval; ``–`` where there is no value."""
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    return text if not interval else f"{text} ({interval[0]:.{digits}f}–{interval[1]:.{digits}f})"
