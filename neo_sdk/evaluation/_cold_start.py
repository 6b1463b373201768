"""Cold-start and short-history users: the same users, their history cut to the last few items.

Each level ``n`` replaces the histories the harness shows (``split.valid_history`` or
``split.test_history``) with their last ``n`` items (``n = 0``: an empty history, which the model
sees as an empty ``{history}`` in its prompt); targets, users and the fitted baselines stay as they
are. Only the cut history is excluded from the ranking: a user who has seen one item is treated as
one who has seen one item. Users with fewer than ``n`` items keep what they have.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from neo_sdk.catalog import Catalog, Split
from neo_sdk.errors import ConfigError
from neo_sdk.evaluation._bundle import Method, score_methods
from neo_sdk.evaluation._protocol import EvalReport, Stage

DEFAULT_LEVELS: tuple[int, ...] = (0, 1, 3)


def cut_histories(split: Split, stage: Stage, n: int) -> Split:
    """A copy of ``split`` whose ``stage`` histories keep only their last ``n`` items.

    Raises:
        ConfigError: a negative ``n`` or an unknown stage.
    """
    if n < 0:
        raise ConfigError(f"a history cut must be >= 0 items, got {n}")
    if stage not in ("valid", "test"):
        raise ConfigError(f"stage must be 'valid' or 'test', got {stage!r}")
    key = f"{stage}_history"
    cut = {user: list(items[-n:]) if n else [] for user, items in getattr(split, key).items()}
    return dataclasses.replace(split, **{key: cut})


def cold_start(
    methods: Sequence[Method],
    split: Split,
    catalog: Catalog,
    entity_type: str,
    users: Sequence[str],
    *,
    stage: Stage,
    ks: Sequence[int],
    levels: Sequence[int] = DEFAULT_LEVELS,
    progress: bool = False,
) -> dict[int, list[EvalReport]]:
    """History length -> one report per method on ``users``, their histories cut to that length."""
    out: dict[int, list[EvalReport]] = {}
    for n in sorted(set(levels)):
        reports = score_methods(methods, cut_histories(split, stage, n), catalog, entity_type, users,
                                stage=stage, ks=ks, progress=progress)
        for report in reports:
            report.config["history_cut"] = n
        out[n] = reports
    return out


def history_lengths(split: Split, stage: Stage, users: Sequence[str]) -> dict[str, Any]:
    """Median, mean and minimum history length of ``users`` (for the curve's "all" point)."""
    import numpy as np

    histories = split.valid_history if stage == "valid" else split.test_history
    lengths = np.array([len(histories.get(u, [])) for u in users], dtype=np.float64)
    if not lengths.size:
        return {"median": 0.0, "mean": 0.0, "min": 0}
    return {"median": float(np.median(lengths)), "mean": round(float(lengths.mean()), 1), "min": int(lengths.min())}
