"""A trained bundle as a ranker, scored in the same harness and on the same users as the baselines.

:class:`BundleRanker` asks the model for the next item of one entity type with a held-out
(``eval``) phrasing of the ``next_item`` task and ranks by constrained beam search: only catalog
items of that type can come out, the user's history excluded by the trie (the protocol's
``exclude_seen``). The training probes rank with the same class (:meth:`BundleRanker.from_decoder`),
so a probe and ``neo eval`` score the same prompts the same way.

:func:`fit_baselines` fits the baselines on ``split.train`` only: popularity (seen items excluded,
and seen items included), item-kNN and SASRec-CE (within a wall-clock budget).
:func:`compare_next_item` runs the model next to them on one leave-one-out split per entity type;
``neo eval`` (:func:`neo_sdk.evaluation.evaluate_bundle`) adds seeds, intervals, cold start and
steerability on top.

Nothing here assumes a domain: the entity types come from the catalog (the types users interact
with, most interacted first, :meth:`Catalog.interacted_types`) unless the caller names them.

Example:
    >>> from neo_sdk.evaluation import compare_next_item
    >>> result = compare_next_item("demo/bundle", catalog, stage="test", sample_size=200)  # doctest: +SKIP
    >>> print(result.table())                                                              # doctest: +SKIP
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from neo_sdk.catalog import Catalog, Split, leave_one_out
from neo_sdk.errors import ConfigError
from neo_sdk.evaluation._baselines import ItemKNN, Popularity, resolve_entity_types
from neo_sdk.evaluation._protocol import (
    DEV_SAMPLE_SIZE,
    EvalReport,
    Stage,
    evaluate_ranker,
    sample_users,
)
from neo_sdk.tasks import MAX_HISTORY

MODEL_LABEL = "neo (beam search)"
#: Baseline names and their labels in tables: popularity with seen items excluded (the protocol's
#: default), popularity with seen items included, item-kNN, SASRec with full cross-entropy.
BASELINE_LABELS: dict[str, str] = {
    "popularity": "popularity",
    "popularity-seen": "popularity (seen incl.)",
    "item-knn": "item-knn",
    "sasrec-ce": "sasrec-ce",
}
BASELINES = tuple(BASELINE_LABELS)
DEFAULT_BASELINES = ("popularity", "item-knn")  # the cheap ones; neo eval asks for all four


@dataclass
class BundleRanker:
    """Next-item ranking by a trained model: constrained beam search over one entity type.

    Build it with :meth:`from_bundle` (or :meth:`from_decoder` for a model in memory);
    :meth:`for_type` gives the same model for another type. The phrasing asked of each user is
    drawn by a generator seeded with ``(seed, user)``, so a user's prompt does not depend on who
    else is evaluated or in which batch.

    Attributes:
        entity_type: the type ranked (the trie is filtered to it).
        facts: catalog facts for ``{user}`` (light user features); ``None`` fills it with the
            prompts' unknown-user word, as :meth:`CatalogFacts.user_text` does for a featureless user.
        family: prompt phrasing family: ``eval`` (held out from training) or ``train``.
        max_history: most recent history items put in the prompt (the bundle's training value).
        batch_size: prompts decoded together (:meth:`rank_batch`).
    """

    model: Any
    encoder: Any
    trie: Any
    tokens: Any
    prompts: Any
    facts: Any
    entity_type: str
    family: str = "eval"
    max_history: int = MAX_HISTORY
    seed: int = 0
    batch_size: int = 8
    name: str = field(default=MODEL_LABEL)

    @classmethod
    def from_bundle(cls, bundle: str | Path | Any, catalog: Catalog, entity_type: str | None = None,
                    **kwargs: Any) -> BundleRanker:
        """Load a bundle (path, or the ``BundleContents`` of :func:`neo_sdk.bundle.load_bundle`)
        checked against ``catalog``. ``entity_type``: default the catalog's most interacted type
        that the bundle has SIDs for."""
        from neo_sdk.bundle import load_bundle
        from neo_sdk.decoding import build_decoder
        from neo_sdk.encoding import ExampleEncoder
        from neo_sdk.prompts import load_prompts
        from neo_sdk.tasks import CatalogFacts

        contents = bundle if hasattr(bundle, "manifest") else load_bundle(bundle, catalog=catalog)
        prompts = load_prompts(contents.prompts_dir, defaults=False)
        decoder = build_decoder(contents.model, ExampleEncoder(contents.tokenizer, contents.vocab, system=prompts.system))
        kwargs.setdefault("max_history", int(contents.manifest.get("training", {}).get("max_history", MAX_HISTORY)))
        if entity_type is None:  # the most interacted type the bundle has SIDs for
            types = resolve_entity_types(catalog)
            entity_type = next((t for t in types if t in decoder.trie.types), types[0])
        return cls.from_decoder(decoder, prompts, entity_type, facts=CatalogFacts(catalog, prompts), **kwargs)

    @classmethod
    def from_decoder(cls, decoder: Any, prompts: Any, entity_type: str, *, facts: Any = None,
                     **kwargs: Any) -> BundleRanker:
        """The ranker of a :class:`neo_sdk.decoding.Decoder` (model, encoder, trie) in memory."""
        if entity_type not in decoder.trie.types:
            raise ConfigError(f"the bundle's SID table has no {entity_type!r} items"
                              f" (it has {list(decoder.trie.types)})")
        return cls(decoder.model, decoder.encoder, decoder.trie, decoder.tokens, prompts, facts, entity_type,
                   **kwargs)

    def for_type(self, entity_type: str) -> BundleRanker:
        """The same model ranking another entity type."""
        if entity_type not in self.trie.types:
            raise ConfigError(f"the bundle's SID table has no {entity_type!r} items")
        return replace(self, entity_type=entity_type)

    def user_text(self, user_id: str) -> str:
        """The ``{user}`` value: light user features, or the unknown-user word without facts."""
        if self.facts is None:
            return str(self.prompts.word("misc", "unknown_user", "unknown"))
        return str(self.facts.user_text(user_id))

    def prompt_text(self, user_id: str, history: Sequence[str], task: str = "next_item",
                    output_format: str | None = None) -> str:
        """The request for one user (phrasing fixed per ``(seed, user, task)``); an empty history
        gives an empty ``{history}``."""
        from neo_sdk.tasks import format_history

        key = f"{self.seed}|{user_id}" if task == "next_item" else f"{self.seed}|{user_id}|{task}"
        return self.prompts.render(task, self.family, random.Random(key), format=output_format,
                                   type=self.entity_type, history=format_history(list(history), self.max_history),
                                   user=self.user_text(user_id))

    def prompt_ids(self, user_id: str, history: Sequence[str]) -> list[int]:
        """The token ids of the next-item request for one user (phrasing fixed per user)."""
        return self.encoder.prompt_ids(self.prompt_text(user_id, history))

    def rank(self, user_id: str, history: list[str], k: int, exclude: set[str]) -> list[str]:
        return self.rank_batch([user_id], [history], k, [exclude])[0]

    def rank_batch(self, users: Sequence[str], histories: Sequence[list[str]], k: int,
                   excludes: Sequence[set[str]]) -> list[list[str]]:
        """:meth:`rank` for several users in one beam search (one prefill per batch)."""
        import torch

        from neo_sdk.decoding import TrieFilter, beam_search_items

        out: list[list[str]] = [[] for _ in users]
        rows, prompts, filters = [], [], []
        for row, (user, history, exclude) in enumerate(zip(users, histories, excludes, strict=True)):
            flt = TrieFilter.create(self.trie, entity_types=[self.entity_type], exclude=exclude)
            if flt.num_allowed == 0:  # every item of the type already seen: nothing to rank
                continue
            rows.append(row)
            prompts.append(self.prompt_ids(user, history))
            filters.append(flt)
        if prompts:
            with torch.no_grad():
                ranked = beam_search_items(self.model, prompts, self.trie, self.tokens, k=k, filters=filters,
                                           pad_token_id=self.encoder.end_id)
            for row, items in zip(rows, ranked, strict=True):
                out[row] = [r.item_id for r in items]
        return out


@dataclass
class Method:
    """One ranker in a comparison and how the harness asks it.

    Attributes:
        ranker: the ranker (``rank`` / ``rank_batch``).
        label: its name in tables (:data:`BASELINE_LABELS`, or the model's).
        exclude_seen: whether the user's history is excluded (False only for plain popularity).
        fit_seconds: wall time of fitting on ``split.train``.
        log: the fitting record, where there is one (SASRec: epochs and steps run, loss, budget).
    """

    ranker: Any
    label: str
    exclude_seen: bool = True
    fit_seconds: float = 0.0
    log: dict[str, Any] | None = None


def fit_baselines(
    split: Split,
    catalog: Catalog,
    entity_type: str,
    names: Sequence[str] = DEFAULT_BASELINES,
    *,
    sasrec: Any = None,
    progress: bool = False,
) -> list[Method]:
    """Fit the named baselines (:data:`BASELINES`) on ``split.train`` only, ranking ``entity_type``.

    Args:
        sasrec: the :class:`SASRecConfig` for ``sasrec-ce`` (its ``max_seconds`` is the budget);
            default: ``SASRecConfig()``.

    Raises:
        ConfigError: an unknown baseline name.
    """
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        raise ConfigError(f"unknown baselines {unknown}; known: {list(BASELINES)}")
    out: list[Method] = []
    popularity: Popularity | None = None
    for name in names:
        started = time.perf_counter()
        log: dict[str, Any] | None = None
        if name in ("popularity", "popularity-seen"):
            popularity = popularity or Popularity.fit(split.train, catalog, entity_type)
            ranker: Any = popularity
        elif name == "item-knn":
            ranker = ItemKNN.fit(split.train, catalog, entity_type)
        else:
            from neo_sdk.evaluation._sasrec import SASRec

            ranker = SASRec.fit(split.train, catalog, sasrec, entity_type=entity_type, progress=progress)
            log = {k: v for k, v in ranker.log.items() if k != "loss"} | {"final_loss": ranker.log["loss"][-1]}
        out.append(Method(ranker, BASELINE_LABELS[name], exclude_seen=name != "popularity-seen",
                          fit_seconds=time.perf_counter() - started, log=log))
    return out


def score_methods(
    methods: Sequence[Method],
    split: Split,
    catalog: Catalog,
    entity_type: str,
    users: Sequence[str],
    *,
    stage: Stage,
    ks: Sequence[int],
    progress: bool = False,
) -> list[EvalReport]:
    """Every method on the same users, full ranking to the largest of ``ks`` (:func:`evaluate_ranker`)."""
    reports = []
    for method in methods:
        report = evaluate_ranker(method.ranker, split, catalog=catalog, stage=stage, users=users, k=max(ks),
                                 ks=ks, entity_type=entity_type, exclude_seen=method.exclude_seen,
                                 method=method.label, progress=progress)
        report.config["fit_seconds"] = round(method.fit_seconds, 2)
        reports.append(report)
    return reports


@dataclass
class NextItemComparison:
    """The model and its baselines on one entity type, the same users for all.

    Attributes:
        entity_type: the type whose next item is predicted (targets and ranked items).
        stage: ``valid`` or ``test``.
        reports: the model's report first, then one per baseline.
    """

    entity_type: str
    stage: str
    reports: list[EvalReport]

    def to_dict(self) -> dict[str, Any]:
        return {"entity_type": self.entity_type, "stage": self.stage,
                "users": self.reports[0].n_users if self.reports else 0,
                "model": self.reports[0].method if self.reports else None,
                "methods": {r.method: r.to_dict() for r in self.reports}}


@dataclass
class EvalResult:
    """What :func:`compare_next_item` measured: one :class:`NextItemComparison` per entity type.

    Attributes:
        skipped: entity types left out, with the reason (e.g. no user has a target of the type).
        ks: the cut-offs reported.
    """

    bundle: str
    comparisons: list[NextItemComparison]
    skipped: dict[str, str] = field(default_factory=dict)
    ks: tuple[int, ...] = (5, 10)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "next_item": [c.to_dict() for c in self.comparisons],
                "skipped": self.skipped, "seconds": round(self.seconds, 1)}

    def table(self) -> str:
        """A plain-text table: one block per entity type, the model first, then the baselines,
        with the ratio of the model's HR and NDCG at the largest cut-off to each baseline's."""
        k = max(self.ks)
        names = [f"{m}@{c}" for c in self.ks for m in ("HR", "NDCG")]
        lines = []
        for comp in self.comparisons:
            n = comp.reports[0].n_users if comp.reports else 0
            lines.append(f"next {comp.entity_type} ({comp.stage}, {n} users, full ranking, seen items excluded)")
            lines.append(f"  {'method':<24}" + "".join(f"{name:>10}" for name in names) + f"{'invalid':>9}")
            model = comp.reports[0]
            for report in comp.reports:
                cells = "".join(f"{report.metrics.get(name, float('nan')):>10.4f}" for name in names)
                lines.append(f"  {report.method:<24}{cells}{report.invalid_rate:>9.3f}")
            for base in comp.reports[1:]:
                ratios = []
                for metric in (f"HR@{k}", f"NDCG@{k}"):
                    b = base.metrics.get(metric, 0.0)
                    ratios.append(f"{metric} {model.metrics.get(metric, 0.0) / b:.2f}x" if b else f"{metric} n/a")
                lines.append(f"  model vs {base.method}: " + ", ".join(ratios))
        for etype, why in self.skipped.items():
            lines.append(f"next {etype}: skipped ({why})")
        return "\n".join(lines)


def target_split(catalog: Catalog, entity_type: str, stage: Stage, *, explicit: bool = False) -> Split | str:
    """The leave-one-out split whose targets are items of ``entity_type``, or why there is none.

    Raises:
        ConfigError: no target of the type when the type was named explicitly.
    """
    split = leave_one_out(catalog, entity_type=entity_type)
    if split.valid if stage == "valid" else split.test:
        return split
    why = f"no user has two or more {entity_type} interactions after three in all, so no {stage} target"
    if explicit:
        raise ConfigError(f"--type {entity_type}: {why}")
    return why


def compare_next_item(
    bundle: str | Path | Any,
    catalog: Catalog,
    *,
    entity_types: Sequence[str] | None = None,
    stage: Stage = "test",
    sample_size: int | None = DEV_SAMPLE_SIZE,
    seed: int = 0,
    ks: Sequence[int] = (5, 10),
    family: str = "eval",
    baselines: Sequence[str] = DEFAULT_BASELINES,
    sasrec: Any = None,
    progress: bool = False,
) -> EvalResult:
    """Next-item HR/NDCG of a bundle next to its baselines, per entity type.

    For each type: a leave-one-out split whose targets are items of that type (other items stay
    in the histories), a fixed user sample (:func:`sample_users`), the baselines fitted on
    ``split.train`` only (:func:`fit_baselines`), every method ranking every item of the type,
    all scored by :func:`evaluate_ranker` on the same users.

    Args:
        bundle: a bundle folder (or loaded ``BundleContents``), checked against ``catalog``.
        entity_types: types to evaluate; default every type users interact with (most first),
            skipping those without targets. An explicitly named type without targets raises.
        stage: ``valid`` or ``test`` targets.
        sample_size: users per type (``None``: all users with a target).
        ks: cut-offs; the ranking depth (and the beam width) is the largest.
        family: the model's phrasing family (``eval``: never trained on).
        baselines: any of :data:`BASELINES`.
        sasrec: the ``SASRecConfig`` of ``sasrec-ce`` (default settings without it).

    Raises:
        ConfigError: an unknown type or baseline, or a named type with no targets.
    """
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ConfigError(f"unknown baselines {unknown}; known: {list(BASELINES)}")
    started = time.perf_counter()
    explicit = bool(entity_types)
    types = resolve_entity_types(catalog, entity_types)
    ranker = BundleRanker.from_bundle(bundle, catalog, types[0], family=family, seed=seed)
    ks = tuple(sorted(set(ks)))
    result = EvalResult(str(getattr(bundle, "path", bundle)), [], ks=ks)
    for etype in types:
        if etype not in ranker.trie.types:
            if explicit:
                raise ConfigError(f"the bundle's SID table has no {etype!r} items")
            result.skipped[etype] = "no SIDs for this type in the bundle"
            continue
        split = target_split(catalog, etype, stage, explicit=explicit)
        if isinstance(split, str):
            result.skipped[etype] = split
            continue
        users = sample_users(split, stage, sample_size, seed)
        methods = [Method(ranker.for_type(etype), ranker.name),
                   *fit_baselines(split, catalog, etype, baselines, sasrec=sasrec, progress=progress)]
        reports = score_methods(methods, split, catalog, etype, users, stage=stage, ks=ks, progress=progress)
        for report in reports:
            report.config["sample_size"] = sample_size  # the users are a fixed sample of this size
            report.config["users"] = "all" if sample_size is None else "sample"
        result.comparisons.append(NextItemComparison(etype, stage, reports))
    result.seconds = time.perf_counter() - started
    return result
