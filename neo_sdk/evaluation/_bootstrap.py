"""Confidence intervals by a paired bootstrap over users: a metric's mean, and the model-to-baseline ratio.

Under leave-one-out every user contributes one value per method (HR@10 is 0 or 1, NDCG@10 is in
[0, 1]), and every method is scored on the same users, so the values are *paired*. The ratio
reported is the ratio of means, ``mean(model) / mean(baseline)`` (= ``sum / sum``: the same users on
both sides). Its interval resamples users with replacement, recomputes the ratio on each resample,
and reads the percentiles (the percentile bootstrap; 95% by default). Resampling users, not values,
keeps each user's pair together, so the correlation between the methods narrows the interval
as it should.

``groups`` resample clusters instead of rows: with several seeds a user appears once per seed, and
resampling the user (with all their rows) keeps the interval from counting one user several times
as independent evidence.

A ratio to a baseline whose mean is 0 is undefined: :func:`ratio_ci` returns ``ratio=None`` (and no
interval) rather than an infinity. Resamples whose baseline sum is 0 count as ``+inf`` (the model
scored, the baseline did not) or are dropped when both sums are 0.

Example:
    >>> ci = ratio_ci([1, 0, 1, 1], [1, 0, 0, 1], n_resamples=1000, seed=0)
    >>> ci.ratio
    1.5
    >>> ci.low <= ci.ratio <= ci.high
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neo_sdk.errors import ConfigError

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
_CHUNK = 256  # resamples drawn at once: bounds memory at _CHUNK x n_groups indices


@dataclass(frozen=True)
class Interval:
    """A point estimate with a bootstrap interval.

    Attributes:
        value: the estimate on all users (``None`` when undefined, e.g. a ratio to a zero baseline).
        low, high: the interval's ends (``None`` when ``value`` is; ``high`` may be ``inf``).
        level: the interval's coverage (0.95 for 95%).
        n_resamples: bootstrap resamples drawn.
        n_groups: users (or clusters) resampled.
    """

    value: float | None
    low: float | None
    high: float | None
    level: float = DEFAULT_LEVEL
    n_resamples: int = DEFAULT_RESAMPLES
    n_groups: int = 0

    @property
    def ratio(self) -> float | None:
        """``value``, named for ratios."""
        return self.value

    def contains(self, x: float) -> bool:
        """``low <= x <= high`` (False when undefined)."""
        return self.low is not None and self.high is not None and self.low <= x <= self.high

    def format(self, suffix: str = "", digits: int = 2) -> str:
        """``1.42x [1.15, 1.73]`` (``n/a`` when undefined)."""
        if self.value is None:
            return "n/a"
        return f"{_num(self.value, digits)}{suffix} [{_num(self.low, digits)}, {_num(self.high, digits)}]"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; non-finite ends become ``None``."""
        return {"value": _finite(self.value), "low": _finite(self.low), "high": _finite(self.high),
                "level": self.level, "n_resamples": self.n_resamples, "n_groups": self.n_groups}


def ratio_ci(
    model: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    *,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> Interval:
    """``mean(model) / mean(baseline)`` with a paired percentile-bootstrap interval over users.

    Args:
        model, baseline: per-user values, aligned (row ``i`` of both is the same user and seed).
            Shape: (n_rows,).
        groups: the cluster of each row (e.g. the user id when rows repeat users across seeds);
            default: every row its own cluster.
        n_resamples: bootstrap resamples; the same ``seed`` gives the same interval.
        level: coverage of the interval, in (0, 1).

    Raises:
        ConfigError: misaligned inputs, or a bad ``n_resamples`` / ``level``.
    """
    num, den = _group_sums(model, baseline, groups=groups, n_resamples=n_resamples, level=level)
    total = float(den.sum())
    value = float(num.sum()) / total if total > 0 else None
    if value is None or not len(num):
        return Interval(None, None, None, level, n_resamples, len(num))
    rs_num, rs_den = _resample_sums(num, den, n_resamples, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(rs_den > 0, rs_num / np.where(rs_den > 0, rs_den, 1.0), np.inf)
    ratios = ratios[(rs_den > 0) | (rs_num > 0)]  # both zero: undefined, dropped
    low, high = _percentiles(ratios, level)
    return Interval(value, low, high, level, n_resamples, len(num))


def mean_ci(
    values: Sequence[float] | np.ndarray,
    *,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> Interval:
    """The mean of per-user values with a percentile-bootstrap interval over users (or ``groups``)."""
    values = np.asarray(values, dtype=np.float64)
    num, den = _group_sums(values, np.ones_like(values), groups=groups, n_resamples=n_resamples, level=level)
    if not len(num):
        return Interval(None, None, None, level, n_resamples, 0)
    rs_num, rs_den = _resample_sums(num, den, n_resamples, seed)
    low, high = _percentiles(rs_num / rs_den, level)
    return Interval(float(num.sum() / den.sum()), low, high, level, n_resamples, len(num))


# ------------------------------------------------------------------ helpers
def _group_sums(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *, groups: Any, n_resamples: int, level: float,
) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ConfigError(f"paired values must be two 1-D arrays of one length, got shapes {a.shape} and {b.shape}")
    if n_resamples < 1:
        raise ConfigError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0 < level < 1:
        raise ConfigError(f"level must be in (0, 1), got {level}")
    if groups is None:
        return a, b
    labels = np.asarray(groups, dtype=object)
    if labels.shape != a.shape:
        raise ConfigError(f"{labels.shape[0] if labels.ndim else 0} groups for {a.shape[0]} values")
    _, inverse = np.unique(labels.astype(str), return_inverse=True)
    n = int(inverse.max()) + 1 if inverse.size else 0
    return np.bincount(inverse, weights=a, minlength=n), np.bincount(inverse, weights=b, minlength=n)


def _resample_sums(num: np.ndarray, den: np.ndarray, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums of ``num`` and ``den`` over ``n_resamples`` draws of len(num) groups with replacement."""
    rng = np.random.default_rng(seed)
    out_num, out_den = np.empty(n_resamples), np.empty(n_resamples)
    for lo in range(0, n_resamples, _CHUNK):
        size = min(_CHUNK, n_resamples - lo)
        idx = rng.integers(0, len(num), size=(size, len(num)))  # (size, n_groups)
        out_num[lo : lo + size] = num[idx].sum(axis=1)
        out_den[lo : lo + size] = den[idx].sum(axis=1)
    return out_num, out_den


def _percentiles(samples: np.ndarray, level: float) -> tuple[float | None, float | None]:
    """The ``(1 - level) / 2`` and ``(1 + level) / 2`` order statistics (no interpolation, so ``inf`` is safe)."""
    if not samples.size:
        return None, None
    ordered = np.sort(samples)
    alpha = (1 - level) / 2
    lo = math.floor(alpha * (len(ordered) - 1))
    hi = math.ceil((1 - alpha) * (len(ordered) - 1))
    return float(ordered[lo]), float(ordered[hi])


def _finite(x: float | None) -> float | None:
    return round(x, 6) if x is not None and math.isfinite(x) else None


def _num(x: float | None, digits: int) -> str:
    if x is None:
        return "?"
    return "inf" if math.isinf(x) else f"{x:.{digits}f}"
