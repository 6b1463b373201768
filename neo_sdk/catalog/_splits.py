"""Evaluation splits over the interaction log.

Both splits keep one relevant item per user and history, as in the NEO paper and the benchmark
protocol (``shared/design/benchmarks.md``). Histories follow :meth:`Catalog.history` order
(timestamp, then insertion order).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from neo_sdk.catalog._store import Catalog
from neo_sdk.errors import CatalogError


@dataclass(frozen=True)
class Split:
    """Training histories and held-out targets.

    Attributes:
        train: user id -> item ids seen in training, oldest first.
        valid: user id -> the validation target item.
        test: user id -> the test target item.
        valid_history / test_history: user id -> what the model may see before predicting
            that target (validation: ``train``; test: ``train`` + the validation item).
        kind: ``"leave_one_out"`` or ``"temporal"``.
    """

    kind: str
    train: dict[str, list[str]]
    valid: dict[str, str]
    test: dict[str, str]
    valid_history: dict[str, list[str]] = field(default_factory=dict)
    test_history: dict[str, list[str]] = field(default_factory=dict)

    def held_out(self) -> list[tuple[str, str]]:
        """Every held-out ``(user_id, item_id)``: the validation targets, then the test targets."""
        return [*self.valid.items(), *self.test.items()]


def leave_one_out(
    catalog: Catalog, *, entity_type: str | None = None, min_history: int = 3
) -> Split:
    """Last interaction of each user = test, second-to-last = validation, the rest = train.

    Users with fewer than ``min_history`` interactions keep everything in train and get no target.
    With ``entity_type`` only items of that type are considered targets (others stay in history).
    """
    if min_history < 3:
        raise CatalogError("leave_one_out needs min_history >= 3 (train, validation and test)")
    types = {i.id: i.entity_type for i in catalog.items()} if entity_type else {}
    train: dict[str, list[str]] = {}
    valid: dict[str, str] = {}
    test: dict[str, str] = {}
    valid_hist: dict[str, list[str]] = {}
    test_hist: dict[str, list[str]] = {}
    for user, events in catalog.histories().items():
        items = [e.item_id for e in events]
        target_positions = [
            k for k, item in enumerate(items) if entity_type is None or types[item] == entity_type
        ]
        if len(items) < min_history or len(target_positions) < 2:
            train[user] = items
            continue
        t, v = target_positions[-1], target_positions[-2]
        test[user] = items[t]
        valid[user] = items[v]
        train[user] = items[:v]
        valid_hist[user] = items[:v]
        test_hist[user] = items[:t]
    return Split("leave_one_out", train, valid, test, valid_hist, test_hist)


def temporal_split(
    catalog: Catalog, *, valid_fraction: float = 0.1, test_fraction: float = 0.1
) -> Split:
    """Global temporal cut: two time points split the log into train / valid / test periods.

    The cuts sit at the quantiles of all timestamps. Each user with activity in a later period gets
    their first item of that period as target; the history is everything before the period.
    """
    if not (0 < valid_fraction < 1 and 0 < test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise CatalogError("valid_fraction and test_fraction must be in (0, 1) and sum below 1")
    stamps = catalog.timestamps()
    if not stamps:
        raise CatalogError("temporal_split: the catalog has no interactions")
    t_valid = stamps[int(len(stamps) * (1 - valid_fraction - test_fraction))]
    t_test = stamps[int(len(stamps) * (1 - test_fraction))]
    train: dict[str, list[str]] = {}
    valid: dict[str, str] = {}
    test: dict[str, str] = {}
    valid_hist: dict[str, list[str]] = {}
    test_hist: dict[str, list[str]] = {}
    for user, events in catalog.histories().items():
        before_valid = [e.item_id for e in events if e.timestamp < t_valid]
        before_test = [e.item_id for e in events if e.timestamp < t_test]
        in_valid = [e.item_id for e in events if t_valid <= e.timestamp < t_test]
        in_test = [e.item_id for e in events if e.timestamp >= t_test]
        train[user] = before_valid
        if in_valid and before_valid:
            valid[user] = in_valid[0]
            valid_hist[user] = before_valid
        if in_test and before_test:
            test[user] = in_test[0]
            test_hist[user] = before_test
    return Split("temporal", train, valid, test, valid_hist, test_hist)
