"""A dialogue corpus: how a :class:`Session` reads follow-ups as people talk (steering resolution).

Each dialogue of ``tests/dialogues/*.yaml`` is one test case: its turns are asked in order in one
session (``persist=False``) over a tiny bundle trained on that catalog, and every turn's
expectations are checked against the resolved request and the answer. The model is tiny and
barely trained, so only resolution and runtime guarantees are asserted, never answer quality.

Corpus format (one YAML file per catalog, a list of dialogues)::

    - name: why the second one, then the author       # unique in the file; the test id
      user: chloe                                     # a catalog user; omit for a visitor
      history: [book:dune]                            # optional: item ids the session starts from
      turns:
        - say: top 5 books for me
          expect: {task: next_item, format: ids, k: 5}
        - say: why would I like the second one?
          expect: {task: about, aspect: why, focus: list:2, first_item: list:2}
        - say: would I like it?
          expect: {task: about, aspect: why, focus: prev:1}
          xfail: "why the current code reads it otherwise"  # strict: the turn must fail

Item references (``focus``, ``first_item``, ``exclude_has``, entries of ``items``, ``{...}`` in
``reason``):

* ``prev:N`` / ``prev:last``: the N-th (last) answer item of the previous turn's answer;
* ``list:N`` / ``list:last``: the N-th (last) answer item of the *list on screen*: the last answer
  before this turn that was not a question about one item (task ``about``);
* ``history:last``: the last item of the session's starting history;
* anything else: a catalog item id (``book:dune``, ``pod50``).

``items`` (the answer's items, exactly and in order): a list of references, or ``list:A-B`` (items
A to B of the list), ``list:without:N[,M]`` (the list minus those positions, same order),
``list:matching`` (the list's items that have the request's years, categories and related items,
in order, at most k), ``list:all``, ``none`` (no item).

Expectation keys (a missing key is not checked):

* request: ``task`` (a name or a list of accepted names), ``aspect``, ``format``, ``type``, ``k``,
  ``focus`` (a reference, or ``null``), ``years`` (``[min, max]``, ``null`` for an open bound),
  ``categories`` (exactly these, case-insensitive), ``related`` (exactly these item ids),
  ``within`` (true: the request narrows the list on screen; false: it does not), ``refines``
  (true/false: the request refines an earlier turn), ``exclude_has`` (references the request
  excludes), ``reason`` (a string or list: each is the start of one of ``request.reasons``);
* answer: ``first_item``, ``items``, ``n_items``, ``min_items``, ``max_items``, ``new_items``
  (true: no item the dialogue showed before), ``subset_of_list`` (the answer's items are items of
  the list on screen, in the same order), ``items_in_years`` (each item's year in the request's
  years), ``items_have_category`` (each item has that category value), ``items_related_to`` (each
  item is linked to that item), ``cites_related`` (the answer cites at least one item, each linked
  to the focus), ``checks_year`` (the answer states the focus's catalog year, and "Yes"/"No" for
  the request's years when it states some), ``text_has`` (a substring of the answer's text);
* ``error``: the name of the exception ``ask`` raises (nothing else is checked).

Runtime guarantees checked on every turn: an ``ids`` answer has at most ``k`` items; the items of a
recommendation or search have the request's type, years, categories and related items; an
``about`` answer starts with its focus; a narrowing answers with items of ``request.within``, in
order.

A turn marked ``xfail`` is a phrasing people use that the library does not read as expected yet:
the dialogue is reported as xfail while that turn fails, and fails (strict) once it passes. Every
other turn must pass. Set ``NEO_DIALOGUE_LOG`` to a file path to get one JSON line per turn (the
resolved request, the answer's items, the outcome).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from neo_sdk import Neo
from neo_sdk.session import Answer, Session

pytestmark = pytest.mark.slow

CORPUS = Path(__file__).parent / "dialogues"
CATALOGS = ("books", "podcasts")
EXPECT_KEYS = {"task", "aspect", "format", "type", "k", "focus", "years", "categories", "related", "within",
               "refines", "exclude_has", "reason", "first_item", "items", "n_items", "min_items", "max_items",
               "new_items", "subset_of_list", "items_in_years", "items_have_category", "items_related_to",
               "cites_related", "checks_year", "text_has", "error"}
TURN_KEYS = {"say", "expect", "xfail"}
DIALOGUE_KEYS = {"name", "user", "history", "turns"}
RESULTS: Counter[str] = Counter()  # turn outcomes of this run: passed, xfailed, failed, xpassed
TIMES: dict[str, float] = {}


def load_corpus(catalog: str) -> list[dict[str, Any]]:
    dialogues = yaml.safe_load((CORPUS / f"{catalog}.yaml").read_text())
    names = [d["name"] for d in dialogues]
    assert len(names) == len(set(names)), f"{catalog}.yaml: duplicate dialogue names"
    for d in dialogues:
        assert set(d) <= DIALOGUE_KEYS, f"{catalog}.yaml {d['name']!r}: unknown keys {set(d) - DIALOGUE_KEYS}"
        for n, turn in enumerate(d["turns"], 1):
            assert set(turn) <= TURN_KEYS and "say" in turn, f"{d['name']!r} turn {n}: keys {sorted(turn)}"
            unknown = set(turn.get("expect") or {}) - EXPECT_KEYS
            assert not unknown, f"{d['name']!r} turn {n}: unknown expectation keys {sorted(unknown)}"
    return dialogues


def cases() -> list[Any]:
    return [pytest.param(catalog, d, id=f"{catalog}: {d['name']}") for catalog in CATALOGS
            for d in load_corpus(catalog)]


# ------------------------------------------------------------------------------------- bundles
@pytest.fixture(scope="module")
def podcasts_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The podcasts catalog of ``test_domain_e2e`` (shows, episodes, hosts), trained like the sample
    bundle (2-layer slice, a few steps, no probes)."""
    from neo_sdk.cli import main
    from tests.test_domain_e2e import build_podcast_catalog

    root = tmp_path_factory.mktemp("dialogue_podcasts")
    with contextlib.redirect_stdout(io.StringIO()):
        db = build_podcast_catalog(root)
        assert main(["train", "--db", db, "--out", str(root / "bundle"), "--layers", "2", "--max-steps", "4",
                     "--max-minutes", "1", "--batch-size", "4", "--no-probes", "--seed", "0"]) == 0
    return root / "bundle"


_LOADED: dict[str, Neo] = {}


def load_bundle(catalog: str, request: pytest.FixtureRequest) -> Neo:
    """The catalog's bundle, trained on first use (the sample catalog's is shared with other tests)."""
    if catalog not in _LOADED:
        _LOADED[catalog] = Neo.load(request.getfixturevalue("trained_bundle" if catalog == "books" else "podcasts_bundle"))
    return _LOADED[catalog]


class _Summary:
    """A plugin registered by the module: how many turns resolved as expected, in the terminal summary."""

    @staticmethod
    def pytest_terminal_summary(terminalreporter: Any) -> None:
        total = sum(RESULTS.values())
        if total:
            terminalreporter.write_line(
                f"dialogue corpus: {total} turns, {RESULTS['passed']} resolved as expected, "
                f"{RESULTS['xfailed']} known misreadings (xfail), {RESULTS['failed']} failed, "
                f"{RESULTS['xpassed']} xfail turns now passing; "
                + ", ".join(f"{c}: {TIMES[c]:.1f} s asking" for c in sorted(TIMES)))


@pytest.fixture(scope="module", autouse=True)
def corpus_summary(request: pytest.FixtureRequest) -> Iterator[None]:
    """Registers the summary; closes the loaded bundles after the module."""
    if not request.config.pluginmanager.has_plugin("neo-dialogue-summary"):
        request.config.pluginmanager.register(_Summary(), "neo-dialogue-summary")
    yield
    while _LOADED:
        _LOADED.popitem()[1].close()


# ------------------------------------------------------------------------------------ the runner
class Turn:
    """What a turn's expectations are checked against: the answer and the dialogue before it."""

    def __init__(self, neo: Neo, session: Session, answer: Answer, before: list[Answer]) -> None:
        self.neo, self.session, self.answer, self.before = neo, session, answer, before
        self.request = answer.request
        self.items = [i.id for i in answer.answer_items]
        self.prev = [i.id for i in before[-1].answer_items] if before else None
        shown_list = next((a for a in reversed(before) if a.task != "about"), None)
        self.list = [i.id for i in shown_list.answer_items] if shown_list is not None else None
        self.shown = {i.id for a in before for i in a.answer_items}

    # references -------------------------------------------------------------------------------
    def _sequence(self, name: str) -> list[str]:
        seq = {"prev": self.prev, "list": self.list}[name]
        if seq is None:
            raise AssertionError(f"'{name}:' used on the first turn (no earlier answer)")
        return seq

    def ref(self, text: str) -> str:
        head, _, rest = str(text).partition(":")
        if head == "history" and rest == "last":
            if not self.session.history:
                raise AssertionError("history:last with an empty history")
            return self.session.history[-1]
        if head not in ("prev", "list"):
            return str(text)
        seq = self._sequence(head)
        index = len(seq) if rest == "last" else int(rest)
        if not 1 <= index <= len(seq):
            raise AssertionError(f"{text}: the {head} has {len(seq)} item(s): {seq}")
        return seq[index - 1]

    def item_list(self, spec: Any) -> list[str]:
        if isinstance(spec, list):
            return [self.ref(s) for s in spec]
        if spec == "none":
            return []
        head, _, rest = str(spec).partition(":")
        seq = self._sequence(head)
        if rest == "all":
            return list(seq)
        if rest == "matching":
            return [i for i in seq if self.has_facts(i)][: self.request.k]
        if rest.startswith("without:"):
            drop = {len(seq) if p == "last" else int(p) for p in rest[len("without:"):].split(",")}
            if max(drop) > len(seq):
                raise AssertionError(f"{spec}: the {head} has {len(seq)} item(s): {seq}")
            return [i for n, i in enumerate(seq, 1) if n not in drop]
        if "-" in rest:
            low, high = (int(x) for x in rest.split("-"))
            if high > len(seq):
                raise AssertionError(f"{spec}: the {head} has {len(seq)} item(s): {seq}")
            return seq[low - 1: high]
        return [self.ref(spec)]

    # catalog facts ----------------------------------------------------------------------------
    def in_years(self, item: str) -> bool:
        r, year = self.request, self.neo.facts.year(item)
        if year is None or not r.dated:
            return True  # a type without years is not filtered
        return (r.year_min is None or year >= r.year_min) and (r.year_max is None or year <= r.year_max)

    def has_category(self, item: str, value: str) -> bool:
        return value.lower() in {g.lower() for g in self.neo.facts.genres(item)}

    def linked(self, item: str, other: str, relation: str | None = None) -> bool:
        facts = self.neo.facts
        out = any(o == other and relation in (None, r) for r, o in facts.forward.get(item, []))
        return out or any(o == other and relation in (None, r) for r, o in facts.reverse.get(item, []))

    def has_facts(self, item: str) -> bool:
        r = self.request
        return (self.neo.facts.type_of(item) == r.entity_type and self.in_years(item)
                and all(self.has_category(item, c) for c in r.categories)
                and all(self.linked(item, o, rel) for rel, o in r.related))

    # checks -----------------------------------------------------------------------------------
    def invariants(self) -> list[str]:
        """Runtime guarantees that hold for any trained model."""
        r, out = self.request, []
        if r.format == "ids" and len(self.items) > r.k:
            out.append(f"an ids answer of {len(self.items)} items for k={r.k}")
        if r.task == "about":
            if self.items[:1] != [r.focus]:
                out.append(f"about answer starts with {self.items[:1]}, not its focus {r.focus}")
        elif r.task != "profile":
            wrong = [i for i in self.items if not self.has_facts(i)]
            if wrong:
                out.append(f"items {wrong} lack the request's type/years/categories/related")
        if r.within and [i for i in r.within if i in self.items] != self.items:
            out.append(f"narrowing answer {self.items} is not an ordered subset of within {list(r.within)}")
        return out

    def check(self, key: str, want: Any) -> str | None:  # one branch per key
        r, items = self.request, self.items
        got: Any
        if key == "task":
            ok = r.task in want if isinstance(want, list) else r.task == want
            return None if ok else f"task {r.task!r}, expected {want!r}"
        if key in ("aspect", "format", "k"):
            got = getattr(r, key)
            ok = got in want if isinstance(want, list) else got == want
            return None if ok else f"{key} {got!r}, expected {want!r}"
        if key == "type":
            return None if r.entity_type == want else f"type {r.entity_type!r}, expected {want!r}"
        if key == "focus":
            expected = None if want is None else self.ref(want)
            return None if r.focus == expected else f"focus {r.focus!r}, expected {want} = {expected!r}"
        if key == "years":
            got = [r.year_min, r.year_max]
            return None if got == list(want) else f"years {got}, expected {want}"
        if key == "categories":
            got = sorted(c.lower() for c in r.categories)
            return None if got == sorted(c.lower() for c in want) else f"categories {list(r.categories)}, expected {want}"
        if key == "related":
            got = sorted(o for _, o in r.related)
            return None if got == sorted(want) else f"related {list(r.related)}, expected {want}"
        if key == "within":
            return None if bool(r.within) == want else f"within {list(r.within)}, expected {'a narrowing' if want else 'none'}"
        if key == "refines":
            return None if (r.refines is not None) == want else f"refines {r.refines}, expected {want}"
        if key == "exclude_has":
            missing = [self.ref(w) for w in (want if isinstance(want, list) else [want]) if self.ref(w) not in r.exclude]
            return None if not missing else f"exclude {list(r.exclude)} lacks {missing}"
        if key == "reason":
            missing = []
            for prefix in want if isinstance(want, list) else [want]:
                text = re.sub(r"\{([^{}]+)\}", lambda m: self.ref(m.group(1)), prefix)
                if not any(reason.startswith(text) for reason in r.reasons):
                    missing.append(text)
            return None if not missing else f"no reason starting with {missing}"
        if key == "first_item":
            expected = self.ref(want)
            return None if items[:1] == [expected] else f"first item {items[:1]}, expected {want} = {expected!r}"
        if key == "items":
            expected = self.item_list(want)
            return None if items == expected else f"items {items}, expected {want} = {expected}"
        if key in ("n_items", "min_items", "max_items"):
            ok = {"n_items": len(items) == want, "min_items": len(items) >= want, "max_items": len(items) <= want}[key]
            return None if ok else f"{len(items)} items, expected {key} {want}"
        if key == "new_items":
            repeated = [i for i in items if i in self.shown]
            return None if (not repeated) == want else f"items shown before: {repeated}"
        if key == "subset_of_list":
            seq = self._sequence("list")
            ok = [i for i in seq if i in items] == items
            return None if ok == want else f"items {items} vs the list on screen {seq}"
        if key == "items_in_years":
            wrong = [i for i in items if not self.in_years(i)]
            return None if not wrong else f"items outside {r.year_min}-{r.year_max}: {wrong}"
        if key == "items_have_category":
            wrong = [i for i in items if not self.has_category(i, want)]
            return None if not wrong else f"items without category {want!r}: {wrong}"
        if key == "items_related_to":
            wrong = [i for i in items if not self.linked(i, want)]
            return None if not wrong else f"items not linked to {want}: {wrong}"
        if key == "cites_related":
            cited = [i.id for i in self.answer.items if i.role == "cited"]
            wrong = [c for c in cited if not self.linked(r.focus or "", c)]
            return None if cited and not wrong else f"cited {cited}, not linked to {r.focus}: {wrong}"
        if key == "checks_year":
            year = self.neo.facts.year(r.focus or "")
            text = self.answer.text
            if year is None:
                return None if "no year" in text else f"text {text!r} should say there is no year"
            if f"it is from {year}" not in text.lower():
                return f"text {text!r} does not state {year}"
            if r.dated:
                inside = (r.year_min or -10**9) <= year <= (r.year_max or 10**9)
                if ("Yes:" if inside else "No:") not in text:
                    return f"text {text!r} should answer {'Yes' if inside else 'No'} for {r.year_min}-{r.year_max}"
            return None
        if key == "text_has":
            return None if want in self.answer.text else f"text {self.answer.text!r} lacks {want!r}"
        raise AssertionError(f"unknown expectation {key!r}")


def _describe(answer: Answer | None) -> str:
    if answer is None:
        return ""
    r = answer.request
    return (f"\n      resolved: task={r.task} aspect={r.aspect} type={r.entity_type} format={r.format} k={r.k}"
            f" focus={r.focus} years={r.year_min}-{r.year_max} categories={list(r.categories)}"
            f" related={[o for _, o in r.related]} within={len(r.within)} refines={r.refines}"
            f"\n      reasons={list(r.reasons)}\n      items={[i.id for i in answer.answer_items]}")


@pytest.mark.parametrize(("catalog", "dialogue"), cases())
def test_dialogue(catalog: str, dialogue: dict[str, Any], request: pytest.FixtureRequest) -> None:
    neo = load_bundle(catalog, request)
    session = neo.session(user=dialogue.get("user"), history=dialogue.get("history"), persist=False)
    failures: list[str] = []
    expected_failures: list[str] = []
    started = time.perf_counter()
    log = os.environ.get("NEO_DIALOGUE_LOG")
    for n, turn in enumerate(dialogue["turns"], 1):
        said, expect, xfail = turn["say"], turn.get("expect") or {}, turn.get("xfail")
        where = f"{catalog}: {dialogue['name']!r}, turn {n} {said!r}"
        before = list(session.answers)
        answer: Answer | None = None
        problems: list[str] = []
        try:
            answer = session.ask(said)
        except Exception as error:  # an expected error is an expectation like any other
            if expect.get("error") != type(error).__name__:
                problems.append(f"raised {type(error).__name__}: {error}")
        else:
            if "error" in expect:
                problems.append(f"expected {expect['error']}, got an answer")
            else:
                checked = Turn(neo, session, answer, before)
                problems += checked.invariants()
                for key, want in expect.items():
                    try:
                        problem = checked.check(key, want)
                    except AssertionError as error:
                        problem = f"{key}: {error}"
                    if problem:
                        problems.append(f"{key}: {problem}")
        outcome = ("xfailed" if problems else "xpassed") if xfail else ("failed" if problems else "passed")
        RESULTS[outcome] += 1
        if log:
            with open(log, "a") as handle:
                handle.write(json.dumps({"catalog": catalog, "dialogue": dialogue["name"], "turn": n, "say": said,
                                         "outcome": outcome, "xfail": xfail, "problems": problems,
                                         "request": answer.request.model_dump(mode="json") if answer else None,
                                         "items": [i.id for i in answer.answer_items] if answer else None}) + "\n")
        message = f"{where}: " + "; ".join(problems) + _describe(answer)
        if outcome == "failed":
            failures.append(message)
        elif outcome == "xfailed":
            expected_failures.append(f"{message}\n      known: {xfail}")
        elif outcome == "xpassed":
            failures.append(f"{where}: marked xfail ({xfail}) but resolved as expected: remove the mark"
                            + _describe(answer))
    TIMES[catalog] = TIMES.get(catalog, 0.0) + time.perf_counter() - started
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)
    if expected_failures:
        pytest.xfail("\n".join(expected_failures))


def test_corpus_size() -> None:
    """At least 40 dialogues and 100 turns over the two catalogs, each catalog a real share."""
    counts = {c: load_corpus(c) for c in CATALOGS}
    dialogues = sum(len(d) for d in counts.values())
    turns = {c: sum(len(d["turns"]) for d in ds) for c, ds in counts.items()}
    assert dialogues >= 40 and sum(turns.values()) >= 100, (dialogues, turns)
    assert all(t >= 30 for t in turns.values()), turns
