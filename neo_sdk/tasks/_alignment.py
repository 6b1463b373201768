"""Stage 2 examples (domain grounding): every item of every type, SID <-> text.

* ``sid_to_text``: the item marker -> the item's short text (:meth:`CatalogFacts.label`).
* ``text_to_sid``: a query from a few fields (title; title + year; title + genres; title + a
  related person; a person's name + role; title + the start of the description) -> the marker.
* ``sid_to_type``: the item marker -> its entity type name.

Phrasings come from ``prompts/alignment.yaml``; pick ``families=("eval",)`` for held-out
phrasings (evaluation), the default ``("train",)`` for training.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tqdm import tqdm

from neo_sdk._names import ALIGNMENT_TASKS
from neo_sdk.catalog import Catalog
from neo_sdk.errors import ConfigError
from neo_sdk.prompts import PromptSet, load_prompts
from neo_sdk.tasks._example import Example, item_marker
from neo_sdk.tasks._facts import CatalogFacts

_DESCRIPTION_WORDS = 8
C = TypeVar("C", bound=Any)


@dataclass(frozen=True)
class AlignmentConfig:
    """What :func:`build_alignment_examples` builds."""

    tasks: tuple[str, ...] = field(
        default=ALIGNMENT_TASKS, metadata={"help": "stage 2 tasks to build, in this order"}
    )
    families: tuple[str, ...] = field(
        default=("train",), metadata={"help": "phrasing families to sample from (eval: held out)"}
    )
    entity_types: tuple[str, ...] | None = field(
        default=None, metadata={"help": "only items of these types (default: every type)"}
    )
    queries_per_item: int = field(
        default=2, metadata={"help": "text_to_sid examples per item, each from another query kind"}
    )

    def __post_init__(self) -> None:
        unknown = [t for t in self.tasks if t not in ALIGNMENT_TASKS]
        if unknown or not self.tasks:
            raise ConfigError(
                f"alignment tasks must be among {', '.join(ALIGNMENT_TASKS)} (got {list(self.tasks)})"
            )
        if not self.families:
            raise ConfigError("families: name at least one phrasing family, e.g. ('train',)")
        if self.queries_per_item < 1:
            raise ConfigError(f"queries_per_item must be >= 1 (got {self.queries_per_item})")


def item_queries(facts: CatalogFacts, item_id: str) -> list[tuple[str, str]]:
    """Search-box queries that name one item, as ``(kind, text)``, most specific kinds last."""
    title = facts.title(item_id)
    out = [("title", title)]
    year = facts.year(item_id)
    if year:
        out.append(("title_year", f"{title} ({year})"))
    genres = facts.genres(item_id)
    if genres:
        out.append(("title_genres", f"{title}, {facts.join(genres[:2]).lower()}"))
    if facts.forward[item_id]:
        relation, dst = facts.forward[item_id][0]
        out.append(("title_person", f"{title} {facts.relation_words(relation)} {facts.title(dst)}"))
    roles = facts.roles(item_id)
    if roles:
        out.append(("name_role", f"{title}, {facts.join(roles[:2])}"))
    description = facts.items[item_id].fields.get("description")
    if isinstance(description, str) and description.strip():
        words = description.split()[:_DESCRIPTION_WORDS]
        out.append(("title_description", f"{title}: {' '.join(words)}"))
    return out


def build_alignment_examples(
    catalog: Catalog,
    prompts: PromptSet | None = None,
    *,
    seed: int = 0,
    config: AlignmentConfig | None = None,
    progress: bool | None = None,
    facts: CatalogFacts | None = None,
    **options: object,
) -> list[Example]:
    """Stage 2 examples for every item (of the chosen types), deterministic given ``seed``.

    Args:
        catalog: the catalog.
        prompts: templates (default: :func:`load_prompts`).
        seed: seed of the phrasing and query choices.
        config: an :class:`AlignmentConfig`; ``options`` override its fields
            (``families=("eval",)``, ``queries_per_item=3``, ...).
        progress: tqdm bar (``None``: only on a terminal).
        facts: a prebuilt :class:`CatalogFacts` to reuse.

    Returns:
        Examples in item-id order, the tasks of one item together.

    Raises:
        ConfigError: an unknown option or task, or templates missing for a task.
    """
    config = _configure(config or AlignmentConfig(), options)
    prompts = prompts or load_prompts()
    facts = facts or CatalogFacts(catalog, prompts)
    for task in config.tasks:
        prompts.phrasings(task, config.families)  # fail early on a missing task/family
    types = config.entity_types or tuple(sorted(facts.by_type))
    missing = [t for t in types if t not in facts.types]
    if missing:
        raise ConfigError(f"entity_types: unknown type(s) {missing} (catalog has {sorted(facts.types)})")
    ids = [i for t in types for i in sorted(facts.by_type.get(t, []))]
    examples: list[Example] = []
    for item_id in tqdm(ids, desc="stage 2 examples", unit="item", disable=_disable(progress)):
        rng = random.Random(f"{seed}:align:{item_id}")  # per item: adding items changes nothing else
        kind = facts.type_of(item_id)
        marker = item_marker(item_id)
        for task in config.tasks:
            if task == "sid_to_text":
                ph = prompts.choose(task, config.families, rng)
                examples.append(Example(
                    task, prompts.fill(ph, item=marker, type=kind), facts.label(item_id),
                    target_type=None, format="text", family=ph.family,
                    meta={"item": item_id, "phrasing": ph.id},
                ))
            elif task == "sid_to_type":
                ph = prompts.choose(task, config.families, rng)
                examples.append(Example(
                    task, prompts.fill(ph, item=marker), kind, target_type=None, format="text",
                    family=ph.family, meta={"item": item_id, "phrasing": ph.id},
                ))
            else:
                queries = item_queries(facts, item_id)
                picked = rng.sample(queries, min(config.queries_per_item, len(queries)))
                for query_kind, query in picked:
                    ph = prompts.choose(task, config.families, rng)
                    examples.append(Example(
                        task, prompts.fill(ph, query=query, type=kind), marker, target_type=kind,
                        format="ids", family=ph.family,
                        meta={"item": item_id, "query_kind": query_kind, "phrasing": ph.id},
                    ))
    return examples


def _configure(config: C, options: dict[str, object]) -> C:
    """``config`` with ``options`` replacing fields; tuples accept a list or a single string."""
    fields = {f.name: f for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {unknown}; {type(config).__name__} fields: {sorted(fields)}"
        )
    fixed = {
        k: _sequence(v) if isinstance(v, (str, list, tuple)) and "tuple" in str(fields[k].type)
        else v
        for k, v in options.items()
    }
    return dataclasses.replace(config, **fixed)  # type: ignore[type-var]


def _disable(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: ``None`` shows the bar only on a terminal."""
    return None if progress is None else not progress


def _sequence(value: Sequence[str] | str) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)
