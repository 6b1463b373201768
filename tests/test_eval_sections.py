"""``neo eval``'s search and explanations sections: the shared measurements (``bench/search.py``,
``bench/explanations.py``) summarised by hand on built rows."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from neo_sdk.evaluation import (
    SearchQuery,
    SearchRow,
    SearchSetup,
    explanation_summary,
    explanations_section,
    search_section,
    search_summary,
)
from neo_sdk.evaluation._explain_bench import explanation_of


# ------------------------------------------------------------------ by hand
def _row(by: str, text: str, shown: tuple[int, int], raw: tuple[int, int] | None, false: list[str],
         ms: float | None, faults: tuple[str, ...] = (), task: str = "explain", cites_focus: bool = False) -> dict:
    return {"explained_by": by, "text": text, "shown_claims": shown[0], "shown_true": shown[1],
            "shown_false": false, "raw_claims": raw[0] if raw else None, "raw_true": raw[1] if raw else None,
            "raw_false": (["x"] if raw and raw[1] < raw[0] else []) if raw else None, "ms": ms,
            "shown_faults": list(faults), "task": task, "cites_focus": cites_focus}


def test_explanation_summary_by_hand() -> None:
    rows = [_row("model", "a", (2, 2), (2, 2), [], 100.0, task="like_this", cites_focus=True),
            _row("catalog facts", "b", (1, 1), (3, 2), [], 300.0, faults=("comparison", "capital")),
            _row("model", "a", (1, 0), None, ["wrong category (comedy)"], None, faults=("capital",), task="like_this")]
    got = explanation_summary(rows)
    assert got == {
        "answers": 3, "explained_by_model": 0.667, "distinct_texts": 2, "distinct_model_texts": 1,
        "shown_claims_per_answer": 1.33, "shown_claims_true": 0.75,  # 3 true of 4 shown claims
        "comparisons_without_item": 1, "ungrammatical_lists": 2, "like_this_cite_focus": 0.5,
        "raw_checked": 2, "raw_claims_per_answer": 2.5, "raw_claims_true": 0.8,  # 4 of 5
        "raw_all_true": 0.5, "p50_ms": 200.0, "p95_ms": 100.0,  # ms[int(0.95 * 1)] of [100, 300]
        "false_reasons": [("wrong category", 1)],
    }
    assert explanation_summary([]) == {}


def test_the_explanation_is_read_from_duck_typed_segments() -> None:
    item = SimpleNamespace(id="ep000", label=lambda: "Ep 1")
    segments = [SimpleNamespace(item=item), SimpleNamespace(text=" like "),
                SimpleNamespace(item=SimpleNamespace(id="ep001", label=lambda: "Ep 2")), SimpleNamespace(text=".")]
    marked, shown = explanation_of(SimpleNamespace(segments=segments))
    assert shown == "like Ep 2." and "ep001" in marked and "ep000" not in marked


def test_search_summary_by_hand() -> None:
    nav = [SearchQuery(f"q{i}", "navigational", "episode", target="e", matching=frozenset({"e"})) for i in range(2)]
    desc = [SearchQuery("d", "descriptive", "episode", target="e", matching=frozenset({"e"}))]
    setup = SearchSetup(SimpleNamespace(entity_type="episode", ids=["e", "f"]),
                        {"navigational": nav, "descriptive": desc, "attribute": [], "personalised": []},
                        {"attribute": "no stated fact matches at least 10 items"}, frozenset({"e", "f"}), 2, 0)
    neo = SearchRow("neo", scores={"navigational": [1.0, 0.0], "personalised": [1.0, 1.0, 0.0, 1.0]},
                    latency_s=[0.1, 0.3], returned=8, invalid=0, wrong_type=2, seen=1)
    pop = SearchRow("popularity-among-matching", scores={"personalised": [1.0, 0.0, 0.0, 1.0]})
    result = search_summary(setup, [neo, pop], 10, runtimes=["neo"]) | {"seconds": 1.0}
    assert result["neo_personalised_over_popularity"] == {"neo": pytest.approx(0.75 / 0.5)}
    rows = result["rows"]
    assert rows["neo"]["metrics"] == {"navigational": 0.5, "personalised": 0.75}
    assert (rows["neo"]["invalid_rate"], rows["neo"]["wrong_type_rate"], rows["neo"]["seen_rate"]) == (0.0, 0.25, 0.125)
    assert rows["neo"]["latency_p50_s"] == pytest.approx(0.2) and rows["popularity-among-matching"]["latency_p50_s"] is None
    assert result["descriptive_unique_share"] == 1.0 and result["queries"]["navigational"] == 2
    section = search_section(result)
    assert section["status"] == "measured" and "attribute skipped (no stated fact" in section["summary"]
    assert "neo: pers hit@10 / popularity-among-matching 1.50x" in section["summary"]
    assert "wrong type 0.250, seen 0.125 of 8 items" in section["summary"]
    assert "| neo | 0.500 | – | – | 0.750 | – | 0.2000 |" in section["markdown"]
    json.dumps(section, allow_nan=False)  # strict JSON: no NaN for a method without latencies


def test_an_explanations_section_without_users() -> None:
    section = explanations_section({"users": 0, "grounded": False, "mixed": {}, "profiles": {},
                                    "profile_top3_named_2plus": None, "probe": {}, "seconds": 0.0})
    assert section["summary"] == "no user has a long enough history to ask"


# ------------------------------------------------------------------ end to end
QUICK = ["--users", "6", "--split", "valid", "--no-sasrec", "--steer-prompts", "0", "--cold-start", "none",
         "--bootstrap", "50"]


def _share(value: float | None) -> bool:
    return value is None or 0.0 <= value <= 1.0
