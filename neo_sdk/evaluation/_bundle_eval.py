"""``neo eval``: a trained bundle against the baselines it must beat, measured in one run of one harness.

For every entity type users interact with (or the types asked for), on one leave-one-out split:

* **next item**: the model (constrained beam search, :class:`BundleRanker`) next to popularity with
  seen items excluded and included, item-kNN and SASRec-CE (trained here on ``split.train`` within a
  wall-clock budget), the same users for all, full ranking, HR@K / NDCG@K;
* **ratios** of the model to every baseline, each with a paired bootstrap interval over users
  (:func:`ratio_ci`); with several seeds the user sample and the phrasings vary per seed, tables show
  mean ± standard deviation over seeds and intervals resample users across all seeds;
* **cold start**: the first seed's users with their history cut to the last 0, 1, 3 items, model
  against popularity (:mod:`neo_sdk.evaluation._cold_start`);
* **validity**: the model's invalid-item and wrong-type rates (0 by construction with the trie);
* **steerability** with the constraints off (:mod:`neo_sdk.evaluation._steer`).

:func:`neo_sdk.evaluation.write_report` turns the result into ``report.md``, ``report.json`` and plots.
SASRec is fitted once per type (seed ``sasrec_seed``); seeds vary what the model is asked and whom.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from neo_sdk.catalog import Catalog, Split
from neo_sdk.errors import ConfigError
from neo_sdk.evaluation._baselines import Popularity, resolve_entity_types
from neo_sdk.evaluation._bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES, Interval, mean_ci, ratio_ci
from neo_sdk.evaluation._bundle import (
    BASELINE_LABELS,
    BASELINES,
    MODEL_LABEL,
    BundleRanker,
    Method,
    fit_baselines,
    score_methods,
    target_split,
)
from neo_sdk.evaluation._cold_start import DEFAULT_LEVELS, cold_start, history_lengths
from neo_sdk.evaluation._metrics import DEFAULT_KS, rate, seed_spread
from neo_sdk.evaluation._protocol import DEV_SAMPLE_SIZE, EvalReport, Stage, sample_users
from neo_sdk.evaluation._steer import (
    DEFAULT_PROMPTS,
    MAX_NEW_TOKENS,
    SteerRow,
    generate_unconstrained,
    measure_steerability,
    render_request,
    steer_tasks,
)

Log = Callable[[str], None]


@dataclass(frozen=True)
class EvalSettings:
    """What ``neo eval`` measures; the CLI's flags map onto these fields.

    Attributes:
        stage: ``valid`` or ``test`` targets.
        sample_size: users per entity type (a fixed seeded sample); ``None``: all.
        seeds: one run per seed: the user sample and the model's phrasings vary.
        entity_types: types to evaluate; empty: every type users interact with.
        ks: cut-offs; the ranking depth (and the beam width) is the largest.
        family: the model's phrasing family (``eval``: held out from training).
        baselines: any of :data:`BASELINES`.
        sasrec_minutes: SASRec-CE's training budget per entity type (wall clock: on a loaded machine it
            buys fewer epochs; the epochs run are reported).
        sasrec_epochs: SASRec-CE's epoch cap (whichever of the two comes first stops it).
        sasrec_seed: SASRec-CE's seed.
        cold_start: history lengths of the cold-start curve (empty: skipped).
        steer_prompts: unconstrained requests per (entity type, format) (0: skipped).
        resamples, level: the bootstrap (seeded, so intervals repeat).
        batch_size: prompts per beam search.
    """

    stage: Stage = "test"
    sample_size: int | None = DEV_SAMPLE_SIZE
    seeds: tuple[int, ...] = (0,)
    entity_types: tuple[str, ...] = ()
    ks: tuple[int, ...] = DEFAULT_KS
    family: str = "eval"
    baselines: tuple[str, ...] = BASELINES
    sasrec_minutes: float = 3.0
    sasrec_epochs: int = 200
    sasrec_seed: int = 0
    cold_start: tuple[int, ...] = DEFAULT_LEVELS
    steer_prompts: int = DEFAULT_PROMPTS
    resamples: int = DEFAULT_RESAMPLES
    level: float = DEFAULT_LEVEL
    batch_size: int = 8

    def __post_init__(self) -> None:
        checks = [
            (self.stage in ("valid", "test"), f"stage must be 'valid' or 'test', got {self.stage!r}"),
            (self.sample_size is None or self.sample_size >= 1, "sample_size must be >= 1 or None (all users)"),
            (len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds), "seeds must be distinct, at least one"),
            (bool(self.ks) and min(self.ks) >= 1, f"cut-offs must be positive, got {self.ks}"),
            (set(self.baselines) <= set(BASELINES), f"baselines must be among {list(BASELINES)}"),
            (self.sasrec_minutes > 0 and self.sasrec_epochs >= 1, "sasrec_minutes and sasrec_epochs must be positive"),
            (all(n >= 0 for n in self.cold_start), "cold-start history lengths must be >= 0"),
            (self.steer_prompts >= 0, "steer_prompts must be >= 0"),
            (self.resamples >= 1 and 0 < self.level < 1, "resamples must be >= 1 and level in (0, 1)"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def headline_k(self) -> int:
        """The cut-off of the headline rows: 10 when measured (the protocol's K), else the largest."""
        return 10 if 10 in self.ks else max(self.ks)


@dataclass
class TypeEvaluation:
    """Everything measured on one entity type.

    Attributes:
        runs: one list per seed: the model's report first, then one per baseline (same users).
        fits: method label -> fitting record (seconds; SASRec: epochs run, steps, budget, loss).
        means: method label -> metric -> the mean over users (all seeds) with its interval.
        ratios: baseline label -> metric -> model / baseline with its paired interval.
        validity: the model's ranked ids, invalid ids (not catalog items) and wrong-type ids.
        cold_start: history cut (``"0"``, ``"1"``, ..., ``"all"``) -> method -> metrics.
        history: median / mean / minimum full history length of the cold-start users.
    """

    entity_type: str
    stage: str
    n_items: int
    seeds: tuple[int, ...]
    runs: list[list[EvalReport]]
    fits: dict[str, dict[str, Any]] = field(default_factory=dict)
    means: dict[str, dict[str, Interval]] = field(default_factory=dict)
    ratios: dict[str, dict[str, Interval]] = field(default_factory=dict)
    validity: dict[str, Any] = field(default_factory=dict)
    cold_start: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    history: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        """Method labels, the model first."""
        return [r.method for r in self.runs[0]]

    @property
    def n_users(self) -> int:
        return self.runs[0][0].n_users

    def spread(self) -> dict[str, dict[str, tuple[float, float]]]:
        """Method label -> metric -> (mean, std over seeds) (:func:`seed_spread`)."""
        return {label: seed_spread([run[j].metrics for run in self.runs]) for j, label in enumerate(self.labels)}

    def to_dict(self) -> dict[str, Any]:
        spread = self.spread()
        first = {r.method: r for r in self.runs[0]}
        methods = {
            label: {"metrics": {m: round(v[0], 6) for m, v in spread[label].items()},
                    "std_over_seeds": {m: round(v[1], 6) for m, v in spread[label].items()},
                    "interval": {m: ci.to_dict() for m, ci in self.means.get(label, {}).items()},
                    "invalid_rate": first[label].invalid_rate, "excluded_rate": first[label].excluded_rate,
                    "exclude_seen": first[label].config.get("exclude_seen", True),
                    "rank_seconds": round(sum(run[j].seconds for run in self.runs), 2),
                    "fit": self.fits.get(label, {})}
            for j, label in enumerate(self.labels)
        }
        return {
            "entity_type": self.entity_type, "stage": self.stage, "n_users": self.n_users, "n_items": self.n_items,
            "seeds": list(self.seeds), "model": self.labels[0], "methods": methods,
            "ratios": {base: {m: ci.to_dict() for m, ci in by.items()} for base, by in self.ratios.items()},
            "validity": self.validity, "cold_start": self.cold_start, "history": self.history,
            "per_seed": [{"seed": s, "users": run[0].users, "reports": [r.to_dict() for r in run]}
                         for s, run in zip(self.seeds, self.runs, strict=True)],
        }


@dataclass
class BundleEvaluation:
    """What ``neo eval`` measured (:func:`evaluate_bundle`).

    Attributes:
        types: one :class:`TypeEvaluation` per evaluated entity type, most interacted first.
        skipped: types left out, with the reason.
        steer: steerability rows (empty when skipped).
        training: the bundle's training record (seconds, steps, epochs, probe numbers, loss plot).
    """

    bundle: str
    catalog: str
    settings: EvalSettings
    types: list[TypeEvaluation] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    steer: list[SteerRow] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def model_label(self) -> str:
        return self.types[0].labels[0] if self.types else MODEL_LABEL

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "catalog": self.catalog,
                "settings": asdict(self.settings) | {"headline_k": self.settings.headline_k},
                "next_item": {t.entity_type: t.to_dict() for t in self.types}, "skipped": self.skipped,
                "steerability": [r.to_dict() for r in self.steer], "training": self.training,
                "seconds": round(self.seconds, 1)}


def evaluate_bundle(
    bundle: str | Path | Any,
    catalog: Catalog,
    settings: EvalSettings | None = None,
    *,
    log: Log | None = None,
    progress: bool = False,
) -> BundleEvaluation:
    """Measure a bundle against its baselines (module docstring) on ``catalog``.

    Args:
        bundle: a bundle folder or loaded ``BundleContents``, checked against ``catalog``.
        settings: what to measure; default :class:`EvalSettings`.
        log: receives one line per step (the plan and a time estimate first).
        progress: tqdm bars for the ranking loops and SASRec's epochs.

    Raises:
        ConfigError: a named type the catalog or bundle lacks, or one without targets.
    """
    from neo_sdk.bundle import load_bundle

    cfg = settings or EvalSettings()
    say: Log = log or (lambda _line: None)
    started = time.perf_counter()
    contents = bundle if hasattr(bundle, "manifest") else load_bundle(bundle, catalog=catalog)
    explicit = bool(cfg.entity_types)
    types = resolve_entity_types(catalog, list(cfg.entity_types) or None)
    ranker = BundleRanker.from_bundle(contents, catalog, types[0] if explicit else None, family=cfg.family,
                                      seed=cfg.seeds[0], batch_size=cfg.batch_size)
    result = BundleEvaluation(str(contents.path), str(catalog.path), cfg, training=training_record(contents))
    splits: dict[str, Split] = {}
    for etype in types:
        why = "no SIDs for this type in the bundle" if etype not in ranker.trie.types else None
        if why and explicit:
            raise ConfigError(f"the bundle's SID table has no {etype!r} items")
        split = target_split(catalog, etype, cfg.stage, explicit=explicit) if why is None else why
        if isinstance(split, str):
            result.skipped[etype] = split
        else:
            splits[etype] = split
    if not splits:
        raise ConfigError(f"nothing to evaluate: {result.skipped}")
    say(_plan(cfg, splits))
    say(_estimate(ranker, cfg, splits))
    steer_histories: dict[str, dict[str, list[str]]] = {}
    for etype, split in splits.items():
        result.types.append(_evaluate_type(ranker.for_type(etype), catalog, split, cfg, say, progress))
        histories = split.valid_history if cfg.stage == "valid" else split.test_history
        users = sample_users(split, cfg.stage, cfg.sample_size, cfg.seeds[0])[: max(cfg.steer_prompts, 1)]
        steer_histories[etype] = {u: list(histories.get(u, [])) for u in users}
    if cfg.steer_prompts:
        say(f"steerability: {cfg.steer_prompts} unconstrained greedy answers per (type, format)")
        result.steer = measure_steerability(ranker, steer_histories, n=cfg.steer_prompts, seed=cfg.seeds[0])
    result.seconds = time.perf_counter() - started
    say(f"done in {result.seconds / 60:.1f} min")
    return result


def training_record(contents: Any) -> dict[str, Any]:
    """What the bundle says about its training: seconds, steps, epochs, probes, the loss plot's path."""
    metrics = contents.manifest.get("metrics", {})
    instruct = metrics.get("instruct", {})
    loop = instruct.get("loop", {})
    loss = Path(contents.path) / "loss.png"
    return {
        "stage": metrics.get("stage"), "train_seconds": metrics.get("train_seconds"),
        "planned_epochs": metrics.get("budget", {}).get("epochs"), "steps": loop.get("steps"),
        "examples_seen": loop.get("examples"), "examples": instruct.get("examples"),
        "probe_next_item_valid": instruct.get("next_item_valid"),
        "stage2_fit_losses": metrics.get("align", {}).get("fit_losses"),
        "loss_png": str(loss) if loss.exists() else None,
        "base_model": contents.manifest.get("base_model", {}).get("ref"),
    }


# ------------------------------------------------------------------ one type
class _Recording:
    """A ranker that keeps every ranking it returns (for the invalid and wrong-type rates)."""

    def __init__(self, ranker: BundleRanker) -> None:
        self.ranker = ranker
        self.name = ranker.name
        self.entity_type = ranker.entity_type
        self.batch_size = ranker.batch_size
        self.rankings: list[list[str]] = []

    def rank(self, user_id: str, history: list[str], k: int, exclude: set[str]) -> list[str]:
        return self.rank_batch([user_id], [history], k, [exclude])[0]

    def rank_batch(self, users: Sequence[str], histories: Sequence[list[str]], k: int,
                   excludes: Sequence[set[str]]) -> list[list[str]]:
        got = self.ranker.rank_batch(users, histories, k, excludes)
        self.rankings += [list(r) for r in got]
        return got


def _evaluate_type(ranker: BundleRanker, catalog: Catalog, split: Split, cfg: EvalSettings, say: Log,
                   progress: bool) -> TypeEvaluation:
    from neo_sdk.evaluation._sasrec import SASRecConfig

    etype, stage, ks = ranker.entity_type, cfg.stage, tuple(sorted(set(cfg.ks)))
    names = [BASELINE_LABELS[b] for b in cfg.baselines]
    budget = f"; SASRec-CE up to {cfg.sasrec_minutes:g} min" if "sasrec-ce" in cfg.baselines else ""
    say(f"next {etype}: fitting {', '.join(names) or 'no baselines'} on the training histories{budget}")
    sasrec = SASRecConfig(max_seconds=cfg.sasrec_minutes * 60, epochs=cfg.sasrec_epochs, seed=cfg.sasrec_seed)
    methods = fit_baselines(split, catalog, etype, cfg.baselines, sasrec=sasrec, progress=progress)
    runs, recorders = [], []
    for seed in cfg.seeds:
        users = sample_users(split, stage, cfg.sample_size, seed)
        model = _Recording(replace(ranker, seed=seed))
        say(f"next {etype}, seed {seed}: {len(users)} users, {len(methods) + 1} methods, full ranking")
        runs.append(score_methods([Method(model, ranker.name), *methods], split, catalog, etype, users,
                                  stage=stage, ks=ks, progress=progress))
        recorders.append(model)
    result = TypeEvaluation(etype, stage, runs[0][0].config["n_items"], cfg.seeds, runs,
                            fits={m.label: {"seconds": round(m.fit_seconds, 2), **(m.log or {})} for m in methods})
    result.means, result.ratios = _intervals(runs, cfg)
    result.validity = _validity(catalog, etype, [r for rec in recorders for r in rec.rankings])
    if cfg.cold_start:
        say(f"next {etype}: cold start, histories cut to {', '.join(map(str, cfg.cold_start))} items")
        popularity = next((m for m in methods if m.label == BASELINE_LABELS["popularity"]), None) or Method(
            Popularity.fit(split.train, catalog, etype), BASELINE_LABELS["popularity"])
        users = runs[0][0].users
        curve = cold_start([Method(replace(ranker, seed=cfg.seeds[0]), ranker.name), popularity], split, catalog,
                           etype, users, stage=stage, ks=ks, levels=cfg.cold_start, progress=progress)
        keep = {ranker.name, popularity.label}
        result.cold_start = {str(n): {r.method: r.metrics for r in reports} for n, reports in curve.items()}
        result.cold_start["all"] = {r.method: r.metrics for r in runs[0] if r.method in keep}
        result.history = history_lengths(split, stage, users)
    return result


def _intervals(runs: list[list[EvalReport]], cfg: EvalSettings) -> tuple[dict[str, dict[str, Interval]],
                                                                          dict[str, dict[str, Interval]]]:
    """Means and model/baseline ratios with bootstrap intervals, users pooled over seeds."""
    groups = np.concatenate([np.asarray(run[0].users, dtype=object) for run in runs])
    per_method: list[dict[str, np.ndarray]] = []
    for j in range(len(runs[0])):
        arrays = [run[j].per_user() for run in runs]
        per_method.append({m: np.concatenate([a[m] for a in arrays]) for m in arrays[0]})
    kw = {"groups": groups, "n_resamples": cfg.resamples, "level": cfg.level, "seed": 0}
    labels = [r.method for r in runs[0]]
    means = {label: {m: mean_ci(v, **kw) for m, v in values.items()} for label, values in zip(labels, per_method,
                                                                                                strict=True)}
    model = per_method[0]
    ratios = {label: {m: ratio_ci(model[m], values[m], **kw) for m in values}
              for label, values in zip(labels[1:], per_method[1:], strict=True)}
    return means, ratios


def _validity(catalog: Catalog, entity_type: str, rankings: Sequence[Sequence[str]]) -> dict[str, Any]:
    types = {item.id: item.entity_type for item in catalog.items()}
    ranked = sum(len(r) for r in rankings)
    invalid = sum(1 for r in rankings for i in r if i not in types)
    wrong = sum(1 for r in rankings for i in r if i in types and types[i] != entity_type)
    return {"ranked": ranked, "invalid": invalid, "wrong_type": wrong,
            "invalid_rate": rate(invalid, ranked), "wrong_type_rate": rate(wrong, ranked)}


# ------------------------------------------------------------------ plan and estimate
def _plan(cfg: EvalSettings, splits: dict[str, Split]) -> str:
    users = {t: len(sample_users(s, cfg.stage, cfg.sample_size, cfg.seeds[0])) for t, s in splits.items()}
    parts = [
        f"plan: next item on the {cfg.stage} split for {', '.join(f'{n} {t} users' for t, n in users.items())}",
        f"{len(cfg.seeds)} seed(s), K = {', '.join(map(str, sorted(cfg.ks)))}, full ranking",
        f"the model and {', '.join(BASELINE_LABELS[b] for b in cfg.baselines) or 'no baselines'}",
    ]
    if "sasrec-ce" in cfg.baselines:
        parts.append(f"SASRec-CE trained up to {cfg.sasrec_minutes:g} min per type")
    if cfg.cold_start:
        parts.append(f"cold start at {', '.join(map(str, cfg.cold_start))} history items")
    if cfg.steer_prompts:
        parts.append(f"{cfg.steer_prompts} unconstrained answers per (type, format)")
    parts.append(f"{cfg.resamples} bootstrap resamples")
    return "; ".join(parts)


def _estimate(ranker: BundleRanker, cfg: EvalSettings, splits: dict[str, Split]) -> str:
    """Time one batch of beam search (after a warm-up) and one unconstrained answer, and extrapolate
    (cold-start prompts are shorter, so their share is an upper bound)."""

    etype, split = next(iter(splits.items()))
    histories = split.valid_history if cfg.stage == "valid" else split.test_history
    users = sample_users(split, cfg.stage, cfg.sample_size, cfg.seeds[0])[: cfg.batch_size]
    typed = ranker.for_type(etype)
    seen = [list(histories.get(u, [])) for u in users]
    typed.rank_batch(users[:1], seen[:1], max(cfg.ks), [set(h) for h in seen[:1]])  # warm-up, not timed
    clock = time.perf_counter()
    typed.rank_batch(users, seen, max(cfg.ks), [set(h) for h in seen])
    per_user = (time.perf_counter() - clock) / max(1, len(users))
    n_users = sum(len(sample_users(s, cfg.stage, cfg.sample_size, seed)) for s in splits.values() for seed in cfg.seeds)
    first = sum(len(sample_users(s, cfg.stage, cfg.sample_size, cfg.seeds[0])) for s in splits.values())
    model = per_user * n_users
    cold = per_user * first * len(cfg.cold_start)
    sasrec = cfg.sasrec_minutes * 60 * len(splits) if "sasrec-ce" in cfg.baselines else 0.0
    steer = 0.0
    tasks = steer_tasks(ranker.prompts)
    if cfg.steer_prompts and tasks and users:
        fmt, (task, _) = next(iter(tasks.items()))
        clock = time.perf_counter()
        generate_unconstrained(ranker, render_request(typed, task, fmt, random.Random(0), etype,
                                                      histories.get(users[0], []), users[0]), MAX_NEW_TOKENS)
        rows = sum(len(splits) if named else 1 for _, named in tasks.values())
        steer = (time.perf_counter() - clock) * rows * cfg.steer_prompts
    total = model + cold + sasrec + steer
    return (f"estimate (one timed batch, {per_user:.2f} s per user): about {total / 60:.1f} min in all"
            f" (model {model / 60:.1f}, cold start {cold / 60:.1f}, SASRec-CE {sasrec / 60:.1f},"
            f" steerability {steer / 60:.1f})")
