"""Stage 3 examples (capability induction): multi-task instruction data from training histories.

Tasks (phrasings from ``prompts/``; every prompt names the task, target type and output format):

* ``next_item``: a user's history (item markers, most recent last, the last ``max_history``) -> the
  next item. Several cut points per user; the history may mix types (cross-type history where the
  catalog has it). Types nobody interacts with (the demo's ``person``) become targets through the
  relations of the true next item: "recommend a person" after a history whose next movie was
  directed by them (``meta["derived_from"]``).
* ``search``: a query built from facts of an anchor item (decade, genres, roles, a related person,
  e.g. ``1990s crime thriller directed by Quentin Tarantino``) -> the best-known items that match
  **all** of the facts (training popularity order).
* ``explain``: history -> the next item and a grounded explanation (the teacher).
* ``profile``: history -> a short interest summary (the teacher).
* ``like_this``: an item -> items seen by the same training users (else sharing people or
  genres); the ``mixed`` format gives one item and why (the teacher).
* ``about``: a history and one of its later items (a question about an item the user sees, "why
  would I like the second one?") -> that item and why it fits (the teacher, as for ``explain``).

No leakage: only ``split.train`` is read (histories, popularity, co-occurrence), so no validation
or test interaction is ever seen. Deterministic given ``seed``: each task has its own generator.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import zip_longest

from tqdm import tqdm

from neo_sdk._names import TASKS
from neo_sdk.catalog import Catalog, Split
from neo_sdk.errors import ConfigError
from neo_sdk.prompts import PromptSet, load_prompts
from neo_sdk.tasks._alignment import _configure, _disable
from neo_sdk.tasks._example import Example, item_marker
from neo_sdk.tasks._facts import CatalogFacts, format_history
from neo_sdk.tasks._grounds import explanation_grounds, profile_grounds
from neo_sdk.tasks._teachers import Teacher, TemplateTeacher

MAX_HISTORY = 10
"""History items in a prompt (the most recent ones): the one default of stage 3 examples, ``neo train``,
its next-item probe and the runtime (a bundle records the value it was trained with)."""
_SEARCH_MAX_MATCHES = 50  # add a fact while a query matches more items than this


@dataclass(frozen=True)
class InstructionConfig:
    """What :func:`build_instruction_examples` builds. Defaults are sized for 2 CPU cores."""

    tasks: tuple[str, ...] = field(default=TASKS, metadata={"help": "stage 3 tasks"})
    families: tuple[str, ...] = field(
        default=("train",), metadata={"help": "phrasing families to sample from (eval: held out)"}
    )
    max_history: int = field(
        default=MAX_HISTORY, metadata={"help": "history items in a prompt (the last ones); prompt length"
                                       " is the main CPU cost"}
    )
    cuts_per_user: int = field(
        default=6, metadata={"help": "next_item cut points per user (the last one always); 6 keeps next item's"
                             " share of a short budget against the longer explanation examples (4: HR@10 1.40x"
                             " popularity on all validation users, 6: 1.70x, 15 CPU minutes, bench/RESULTS.md)"}
    )
    derived_targets: bool = field(
        default=True, metadata={"help": "next_item for types without interactions, through the"
                                " relations of the true next item (one per user)"}
    )
    explain_per_user: int = field(default=1, metadata={"help": "explain examples per user"})
    profile_per_user: int = field(default=1, metadata={"help": "profile examples per user"})
    search_examples: int | None = field(
        default=None, metadata={"help": "search examples (default: min(2000, 2 x items))"}
    )
    search_max_k: int = field(default=3, metadata={"help": "most items in a search answer"})
    like_this_examples: int | None = field(
        default=None, metadata={"help": "like_this examples (default: min(1000, items))"}
    )
    like_this_max_k: int = field(default=3, metadata={"help": "most items in an ids answer"})
    about_examples: int | None = field(
        default=None, metadata={"help": "about examples (default: min(400, a third of the users)); kept small:"
                                " the runtime writes the item and its grounds, the model only the sentence"}
    )
    like_this_mixed: float = field(
        default=0.5, metadata={"help": "share of like_this examples with a reason (mixed format)"}
    )

    def __post_init__(self) -> None:
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise ConfigError(
                f"instruction tasks must be among {', '.join(TASKS)} (got {list(self.tasks)})"
            )
        if not self.families:
            raise ConfigError("families: name at least one phrasing family, e.g. ('train',)")
        for name in ("max_history", "cuts_per_user", "search_max_k", "like_this_max_k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if not 0.0 <= self.like_this_mixed <= 1.0:
            raise ConfigError(f"like_this_mixed must be in [0, 1] (got {self.like_this_mixed})")


def build_instruction_examples(
    catalog: Catalog,
    split: Split,
    prompts: PromptSet | None = None,
    *,
    seed: int = 0,
    teacher: Teacher | None = None,
    config: InstructionConfig | None = None,
    progress: bool | None = None,
    facts: CatalogFacts | None = None,
    **options: object,
) -> list[Example]:
    """Stage 3 examples built from ``split.train`` only, deterministic given ``seed``.

    Args:
        catalog: the catalog.
        split: its split; only ``split.train`` is read.
        prompts: templates (default: :func:`load_prompts`).
        seed: seed of every random choice.
        teacher: writes explanations and profiles (default :class:`TemplateTeacher`).
        config: an :class:`InstructionConfig`; ``options`` override its fields
            (``tasks=("next_item",)``, ``max_history=10``, ``cuts_per_user=2``, ...).
        progress: tqdm bars (``None``: only on a terminal).
        facts: a prebuilt :class:`CatalogFacts` over ``split.train`` to reuse.

    Returns:
        Examples grouped by task in ``config.tasks`` order.
    """
    config = _configure(config or InstructionConfig(), options)
    prompts = prompts or load_prompts()
    teacher = teacher or TemplateTeacher()
    for task in config.tasks:
        prompts.phrasings(task, config.families)  # fail early on a missing task/family
    facts = facts or CatalogFacts(catalog, prompts, split.train)
    build = _Builder(facts, prompts, teacher, config, seed, progress)
    out: list[Example] = []
    for task in config.tasks:
        out += list(getattr(build, task)())
    return out


class _Builder:
    def __init__(
        self, facts: CatalogFacts, prompts: PromptSet, teacher: Teacher,
        config: InstructionConfig, seed: int, progress: bool | None,
    ) -> None:
        self.facts, self.prompts, self.teacher, self.config = facts, prompts, teacher, config
        self.seed, self.progress = seed, progress
        self.users = sorted(u for u, h in facts.train.items() if h)

    def _rng(self, task: str) -> random.Random:
        return random.Random(f"{self.seed}:{task}")

    def _bar(self, items: list[str], task: str) -> Iterator[str]:
        yield from tqdm(items, desc=f"stage 3 {task}", unit="it", disable=_disable(self.progress))

    def _example(
        self, task: str, rng: random.Random, completion: str, target_type: str | None,
        fmt: str, meta: dict[str, object], **values: object,
    ) -> Example:
        ph = self.prompts.choose(task, self.config.families, rng)
        prompt = self.prompts.fill(ph, format=fmt, **values)
        return Example(task, prompt, completion, target_type=target_type,  # type: ignore[arg-type]
                       format=fmt, family=ph.family,  # type: ignore[arg-type]
                       meta={**meta, "phrasing": ph.id})

    # ----------------------------------------------------------- per user
    def next_item(self) -> Iterator[Example]:
        rng, f, cfg = self._rng("next_item"), self.facts, self.config
        targetless = set(f.by_type) - f.interacted_types
        for user in self._bar(self.users, "next_item"):
            history = f.train[user]
            n = len(history)
            if n < 2:
                continue
            earlier = list(range(1, n - 1))
            cuts = sorted(rng.sample(earlier, min(cfg.cuts_per_user - 1, len(earlier))) + [n - 1])
            user_text = f.user_text(user)
            for t in cuts:
                target, seen = history[t], format_history(history[:t], cfg.max_history)
                kind = f.type_of(target)
                meta = {"user": user, "target": target, "cut": t}
                yield self._example("next_item", rng, item_marker(target), kind, "ids", meta,
                                    history=seen, type=kind, user=user_text)
            if cfg.derived_targets and targetless:
                target = history[n - 1]
                linked = [(r, d) for r, d in f.forward.get(target, []) if f.type_of(d) in targetless]
                if linked:
                    relation, person = linked[0] if rng.random() < 0.5 else rng.choice(linked)
                    kind = f.type_of(person)
                    meta = {"user": user, "target": person, "cut": n - 1,
                            "derived_from": target, "relation": relation}
                    yield self._example(
                        "next_item", rng, item_marker(person), kind, "ids", meta,
                        history=format_history(history[: n - 1], cfg.max_history), type=kind,
                        user=user_text,
                    )

    def explain(self) -> Iterator[Example]:
        rng, f, cfg = self._rng("explain"), self.facts, self.config
        for user in self._bar(self.users, "explain"):
            history = f.train[user]
            if len(history) < 2:
                continue
            cuts = [len(history) - 1 - j for j in range(min(cfg.explain_per_user, len(history) - 1))]
            for t in cuts:
                yield self._explained("explain", rng, user, t)

    def profile(self) -> Iterator[Example]:
        rng, f, cfg = self._rng("profile"), self.facts, self.config
        for user in self._bar(self.users, "profile"):
            history = f.train[user]
            if len(history) < 2:
                continue
            for j in range(min(cfg.profile_per_user, len(history) - 1)):
                end = len(history) - j * max(1, len(history) // (cfg.profile_per_user + 1))
                seen = history[max(0, end - cfg.max_history): end]
                grounds = profile_grounds(f, seen).line(f)
                yield self._example(
                    "profile", rng, f"{grounds} {self.teacher.profile(f, seen, rng)}", None, "text",
                    {"user": user, "cut": end, "teacher": self.teacher.name, "grounds": grounds},
                    history=format_history(seen), user=f.user_text(user),
                )

    def about(self) -> Iterator[Example]:
        rng, f, cfg = self._rng("about"), self.facts, self.config
        users = [u for u in self.users if len(f.train[u]) >= 2]
        total = cfg.about_examples if cfg.about_examples is not None else min(400, len(users) // 3)
        for user in self._bar(sorted(rng.sample(users, min(total, len(users)))), "about"):
            yield self._explained("about", rng, user, rng.randrange(1, len(f.train[user])))

    def _explained(self, task: str, rng: random.Random, user: str, t: int) -> Example:
        """The user's item at ``t`` with the grounds and the teacher's reason over the items before it
        (``explain``: the history asks for it; ``about``: the prompt names it too)."""
        f = self.facts
        history = f.train[user]
        target, seen = history[t], history[max(0, t - self.config.max_history): t]
        reason = self.teacher.explain(f, seen, target, rng)
        grounds = explanation_grounds(f, seen, target).line(f)
        kind = f.type_of(target)
        named = {"item": item_marker(target)} if task == "about" else {}
        return self._example(
            task, rng, f"{item_marker(target)} {grounds} {reason}", kind, "mixed",
            {"user": user, "target": target, "cut": t, "teacher": self.teacher.name, "grounds": grounds},
            history=format_history(seen), type=kind, user=f.user_text(user), **named,
        )

    # ---------------------------------------------------------- per item
    def _search_facts(self, item_id: str) -> list[tuple[str, ...]]:
        f = self.facts
        out: list[tuple[str, ...]] = []
        if f.decade(item_id):
            out.append(("decade", f.decade(item_id) or ""))
        out += [("genre", g) for g in f.genres(item_id)]
        roles = f.items[item_id].fields.get("roles")
        if isinstance(roles, list):
            out += [("role", str(r)) for r in roles]
        out += [("rel", r, d) for r, d in f.forward[item_id]]
        return out

    def _query(self, chosen: list[tuple[str, ...]]) -> str:
        f, order = self.facts, {"decade": 0, "genre": 1, "role": 2, "rel": 3}
        words = []
        for fact in sorted(chosen, key=lambda x: order[x[0]]):
            if fact[0] == "rel":
                words.append(f"{f.relation_words(fact[1])} {f.title(fact[2])}")
            else:
                words.append(fact[1].lower() if fact[0] != "decade" else fact[1])
        return " ".join(words)

    def search(self) -> Iterator[Example]:
        rng, f, cfg = self._rng("search"), self.facts, self.config
        index: dict[tuple[str, ...], set[str]] = defaultdict(set)
        anchors: dict[str, list[str]] = defaultdict(list)  # per type: each type gets a fair share
        for item_id in sorted(f.items):
            item_facts = self._search_facts(item_id)
            for fact in item_facts:
                index[(f.type_of(item_id), *fact)].add(item_id)
            if item_facts:
                anchors[f.type_of(item_id)].append(item_id)
        kinds = sorted(anchors)
        total = cfg.search_examples if cfg.search_examples is not None else min(2000, 2 * len(f.items))
        seen: set[tuple[str, ...]] = set()
        built = 0
        bar = tqdm(total=total, desc="stage 3 search", unit="it", disable=_disable(self.progress))
        for _ in range(total * 5):
            if built >= total or not anchors:
                break
            kind = rng.choice(kinds)
            anchor = rng.choice(anchors[kind])
            options = self._search_facts(anchor)
            rels = [x for x in options if x[0] == "rel"]
            others = [x for x in options if x[0] != "rel"]
            rng.shuffle(others)
            chosen = [rng.choice(rels)] if rels and rng.random() < 0.5 else []
            matches: set[str] = set(index[(kind, *chosen[0])]) if chosen else set()
            for fact in others:  # narrow the query until it is specific enough
                if chosen and (len(chosen) >= 3 or len(matches) <= _SEARCH_MAX_MATCHES):
                    break
                matches = matches & index[(kind, *fact)] if chosen else set(index[(kind, *fact)])
                chosen.append(fact)
            key = (kind, *sorted("|".join(c) for c in chosen))
            if not chosen or key in seen:
                continue
            seen.add(key)
            ranked = sorted(matches, key=lambda i: (-f.popularity[i], i))
            k = min(len(ranked), rng.randint(1, cfg.search_max_k))
            completion = " ".join(item_marker(i) for i in ranked[:k])
            built += 1
            bar.update(1)
            yield self._example(
                "search", rng, completion, kind, "ids",
                {"anchor": anchor, "facts": ["|".join(c) for c in chosen], "matches": len(ranked)},
                query=self._query(chosen), type=kind, k=k,
            )
        bar.close()

    def like_this(self) -> Iterator[Example]:
        rng, f, cfg = self._rng("like_this"), self.facts, self.config
        per_type = [sorted(f.by_type[t]) for t in sorted(f.by_type)]
        for group in per_type:
            rng.shuffle(group)
        ids = [i for row in zip_longest(*per_type) for i in row if i is not None]  # types interleaved
        total = cfg.like_this_examples if cfg.like_this_examples is not None else min(1000, len(ids))
        built = 0
        bar = tqdm(total=total, desc="stage 3 like_this", unit="it", disable=_disable(self.progress))
        for anchor in ids:
            if built >= total:
                break
            scored, via = f.similar(anchor)
            neighbours = [i for i, _ in scored]
            if not neighbours:
                continue
            kind = f.type_of(anchor)
            meta: dict[str, object] = {"anchor": anchor, "via": via}
            if rng.random() < cfg.like_this_mixed:
                item = neighbours[0]
                reason = self.teacher.explain(f, [anchor], item, rng)  # the anchor is the basis
                grounds = explanation_grounds(f, [anchor], item).line(f)
                completion, fmt, k = f"{item_marker(item)} {grounds} {reason}", "mixed", 1
                meta.update(teacher=self.teacher.name, grounds=grounds, target=item)
            else:
                k = min(len(neighbours), rng.randint(1, cfg.like_this_max_k))
                completion, fmt = " ".join(item_marker(i) for i in neighbours[:k]), "ids"
            built += 1
            bar.update(1)
            yield self._example("like_this", rng, completion, kind, fmt, meta,
                                item=item_marker(anchor), type=kind, k=k)
        bar.close()
