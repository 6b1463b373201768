"""A second domain, end to end through the command line: podcasts (shows, episodes, hosts).

Nothing here is about movies: three entity types with their own text fields (``topics`` as a list,
``language``, ``description``), two relations (episode ``part_of`` show, show ``hosted_by`` host),
ids that carry no type prefix, and users who mostly listen to episodes and sometimes follow a show.
The catalog is written by :func:`write_podcast_exports` as a catalog owner's export would be (CSV
and JSONL), then taken through ``neo catalog declare / import``, ``neo sids build``, ``neo train``
with the quality probes on, ``neo ask`` and ``neo eval``.

Structure a model can learn: each user follows one or two topics and listens to the episodes of a
few shows of those topics in order, so "the next episode of the show being listened to" and "an
episode of a show on the same topic" are good guesses.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from neo_sdk.cli import main

TOPICS = {
    "astronomy": ["telescopes", "planets", "black holes", "comets", "moons", "galaxies"],
    "cooking": ["bread", "spices", "fermentation", "knives", "soups", "pastry"],
    "true crime": ["heists", "forgery", "cold cases", "trials", "detectives", "smuggling"],
    "history": ["empires", "revolutions", "castles", "explorers", "plagues", "treaties"],
    "football": ["transfers", "tactics", "goalkeepers", "derbies", "academies", "cups"],
    "jazz": ["bebop", "big bands", "saxophone", "standards", "improvisation", "labels"],
    "startups": ["fundraising", "hiring", "pricing", "founders", "pivots", "growth"],
    "gardening": ["roses", "compost", "tomatoes", "pruning", "seeds", "ponds"],
}
SHOW_WORDS = ["Weekly", "Hour", "Notes", "Club", "Radio", "Talks"]
LANGUAGES = ["english", "spanish", "german"]
HOST_NAMES = ["Ada Park", "Ben Ortiz", "Cleo Marsh", "Dev Rao", "Eva Lind", "Femi Cole", "Gus Hahn", "Hana Ito",
              "Ivo Petrov", "Jude Kim", "Kai Moreno", "Lea Novak", "Max Ferro", "Nia Grant", "Oto Weiss",
              "Pia Costa", "Quin Hale", "Rosa Vidal", "Sam Doyle", "Tara Singh", "Uma Reyes", "Vic Lowe",
              "Wes Brandt", "Yara Haddad"]
SHOWS_PER_TOPIC = 5
EPISODES_PER_SHOW = 5
USERS = 100


def podcast_catalog_data(seed: int = 0) -> dict[str, list]:
    """Shows, episodes, hosts, relations, users and interactions of the fixture (deterministic)."""
    rng = random.Random(seed)
    shows, episodes, hosts, relations = [], [], [], []
    by_topic: dict[str, list[str]] = {}
    episodes_of: dict[str, list[str]] = {}
    for h, name in enumerate(HOST_NAMES):
        topic = list(TOPICS)[h % len(TOPICS)]
        hosts.append({"id": f"h{h:02d}", "title": name, "description": f"{name} hosts shows about {topic}"})
    for t, (topic, subjects) in enumerate(TOPICS.items()):
        for s in range(SHOWS_PER_TOPIC):
            show_id = f"pod{t}{s}"
            title = f"The {topic.title()} {SHOW_WORDS[s]}"
            language = LANGUAGES[(t + s) % len(LANGUAGES)]
            shows.append({"id": show_id, "title": title, "topics": f"{topic}; {subjects[s]}", "language": language,
                          "description": f"A {language} podcast about {topic}, mostly {subjects[s]}"})
            by_topic.setdefault(topic, []).append(show_id)
            host_ids = [f"h{(t + len(TOPICS) * k) % len(HOST_NAMES):02d}" for k in range(1 + s % 2)]
            relations += [{"src": show_id, "relation": "hosted_by", "dst": h} for h in host_ids]
            for e in range(EPISODES_PER_SHOW):
                episode_id = f"ep{t}{s}{e}"
                subject = subjects[(s + e) % len(subjects)]
                episodes.append({"id": episode_id, "title": f"{title} #{e + 1}: {subject.title()}",
                                 "topics": [topic, subject], "language": language,
                                 "description": f"Episode {e + 1} of {title}, on {subject}"})
                relations.append({"src": episode_id, "relation": "part_of", "dst": show_id})
                episodes_of.setdefault(show_id, []).append(episode_id)
    users, interactions = [], []
    topics = list(TOPICS)
    for u in range(USERS):
        user = f"listener{u:03d}"
        liked = rng.sample(topics, 1 + (u % 3 == 0))
        users.append({"id": user, "country": rng.choice(["es", "de", "uk", "us"])})
        followed = rng.sample([s for topic in liked for s in by_topic[topic]], 3)
        events: list[str] = []
        for show in followed:
            if rng.random() < 0.5:
                events.append(show)  # follows the show, then listens to it in order
            start = rng.randrange(2)
            events += episodes_of[show][start : start + rng.randint(2, 4)]
        clock = 1_700_000_000 + 1000 * u
        for n, item in enumerate(events):
            interactions.append({"user_id": user, "item_id": item, "timestamp": clock + 3600 * n,
                                 "event": "follow" if item.startswith("pod") else "listen"})
    return {"shows": shows, "episodes": episodes, "hosts": hosts, "relations": relations, "users": users,
            "interactions": interactions}


def write_podcast_exports(folder: Path, seed: int = 0) -> dict[str, Path]:
    """The fixture as export files (CSV and JSONL, one per kind). Returns ``name -> path``."""
    data = podcast_catalog_data(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}

    def write_csv(name: str, rows: list[dict]) -> None:
        paths[name] = folder / f"{name}.csv"
        with open(paths[name], "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    def write_jsonl(name: str, rows: list[dict]) -> None:
        paths[name] = folder / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(row) + "\n" for row in rows))

    write_csv("shows", data["shows"])
    write_jsonl("episodes", data["episodes"])  # topics as a JSON list
    write_csv("hosts", data["hosts"])
    write_csv("relations", data["relations"])
    write_jsonl("users", data["users"])
    write_csv("interactions", data["interactions"])
    return paths


def import_podcasts(folder: Path, db: str) -> None:
    """Declare the three types and import every export file, through the CLI only."""
    paths = write_podcast_exports(folder)
    assert main(["catalog", "declare", "show", "--text-fields", "title,topics,language,description",
                 "--db", db]) == 0
    assert main(["catalog", "declare", "episode", "--text-fields", "title,topics,description", "--db", db]) == 0
    assert main(["catalog", "declare", "host", "--text-fields", "title,description", "--db", db]) == 0
    for name, kind, etype in [("shows", "items", "show"), ("episodes", "items", "episode"),
                              ("hosts", "items", "host"), ("relations", "relations", None),
                              ("users", "users", None), ("interactions", "interactions", None)]:
        assert main(["catalog", "import", str(paths[name]), "--kind", kind, "--db", db,
                     *(["--type", etype] if etype else [])]) == 0


def build_podcast_catalog(root: Path) -> str:
    """Fixture imported and SIDs built (small levels and codes, as the sample catalog's tests)."""
    db = str(root / "podcasts.db")
    import_podcasts(root / "exports", db)
    assert main(["sids", "build", "--db", db, "--levels", "2", "--codes", "4", "--no-progress"]) == 0
    return db


def test_fixture_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "p.db")
    import_podcasts(tmp_path / "exports", db)
    capsys.readouterr()
    assert main(["catalog", "stats", "--db", db, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    counts = {t: c["items"] for t, c in stats["entity_types"].items()}
    assert counts == {"show": 40, "episode": 200, "host": 24}
    assert stats["users"] == USERS and stats["relations"]["part_of"] == 200
    assert main(["catalog", "show", "ep000", "--db", db, "--json"]) == 0
    item = json.loads(capsys.readouterr().out)
    assert item["fields"]["topics"] == ["astronomy", "telescopes"]
    assert item["relations"]["out"] == [["part_of", "pod00"]]


# --------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def podcasts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """declare -> import -> sids build -> train (2-layer slice, a few steps, probes on, small)."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("podcasts")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        db = build_podcast_catalog(root)
        bundle = str(root / "bundle")
        assert main(["train", "--db", db, "--out", bundle, "--layers", "2", "--max-steps", "4", "--max-minutes", "1",
                     "--batch-size", "4", "--probe-users", "8", "--probe-items", "16", "--seed", "0"]) == 0
    return {"db": db, "bundle": bundle, "sessions": str(root / "sessions.db"), "train_stdout": out.getvalue()}


@pytest.mark.slow
def test_train_probes_the_catalogs_own_types(podcasts: dict[str, str]) -> None:
    manifest = json.loads((Path(podcasts["bundle"]) / "manifest.json").read_text())
    metrics = manifest["metrics"]
    assert metrics["target_types"] == ["episode", "show"]  # from the log: episodes most, then shows
    probes = metrics["instruct"]
    next_item = probes["next_item_valid"]
    assert 0 < next_item["users"] <= 8
    assert set(next_item["per_type"]) <= {"episode", "show"} and "episode" in next_item["per_type"]
    for numbers in next_item["per_type"].values():
        assert {"hr@10", "ndcg@10", "popularity_hr@10", "popularity_ndcg@10"} <= set(numbers)
        assert all(0 <= numbers[k] <= 1 for k in ("hr@10", "ndcg@10", "popularity_hr@10", "popularity_ndcg@10"))
    assert set(probes["text_to_sid"]) == {"hit@1", "hit@10"} and 0 <= probes["sid_to_type"] <= 1
    assert "text_to_sid" in metrics["align"] and metrics["probe_seconds"] > 0
    assert probes["loop"]["steps"] == 4
    assert main(["bundle", "verify", podcasts["bundle"]]) == 0


def _ask(podcasts: dict[str, str], capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    capsys.readouterr()
    assert main(["ask", "--bundle", podcasts["bundle"], "--user", "listener001", "--sessions", podcasts["sessions"],
                 "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_ask_returns_catalog_items_of_the_requested_type(podcasts: dict[str, str],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from neo_sdk.catalog import Catalog

    data = podcast_catalog_data()
    type_of = {row["id"]: kind for kind in ("show", "episode", "host") for row in data[f"{kind}s"]}
    seen = {row["item_id"] for row in data["interactions"] if row["user_id"] == "listener001"}
    answers = {
        "recommend 3 episodes": ("next_item", "episode"),
        "episodes like this": ("like_this", "episode"),
        "find astronomy shows": ("search", "show"),
    }
    for request, (task, etype) in answers.items():
        answer = _ask(podcasts, capsys, request)
        assert (answer["task"], answer["entity_type"]) == (task, etype), (request, answer["request"]["reasons"])
        ids = [item["id"] for item in answer["items"] if item["role"] == "answer"]
        assert ids and all(type_of.get(i) == etype for i in ids), (request, ids)
        assert all(item["type"] == type_of[item["id"]] for item in answer["items"])
        if task == "next_item":
            assert len(ids) == 3 and not set(ids) & seen  # consumed items are excluded
    answer = _ask(podcasts, capsys, "--type", "host", "-k", "2", "recommend")
    assert answer["entity_type"] == "host" and len(answer["items"]) == 2
    assert all(type_of[item["id"]] == "host" for item in answer["items"])
    with Catalog(podcasts["db"]) as catalog:  # every answered id is a real catalog item
        assert all(catalog.has_item(item["id"]) for item in answer["items"])


@pytest.mark.slow
def test_eval_prints_model_and_baselines(podcasts: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    quick = ["--sasrec-minutes", "0.05", "--steer-prompts", "2", "--cold-start", "0", "--bootstrap", "100", "--search", "0", "--explain", "0"]
    assert main(["eval", "--bundle", podcasts["bundle"], "--users", "12", "--split", "valid", "--json", *quick]) == 0
    result = json.loads(capsys.readouterr().out)
    by_type = result["next_item"]
    assert set(by_type) | set(result["skipped"]) == {"episode", "show"} and "episode" in by_type
    for etype, comparison in by_type.items():
        assert comparison["stage"] == "valid" and 0 < comparison["n_users"] <= 12
        assert comparison["model"] == "neo (beam search)"
        assert set(comparison["methods"]) == {"neo (beam search)", "popularity", "popularity (seen incl.)",
                                              "item-knn", "sasrec-ce"}
        for method in comparison["methods"].values():
            assert {"HR@10", "NDCG@10", "HR@5", "NDCG@5"} <= set(method["metrics"])
            assert method["invalid_rate"] == 0.0
            assert method["excluded_rate"] == 0.0 or not method["exclude_seen"]  # only plain popularity repeats
        assert comparison["validity"]["wrong_type_rate"] == 0.0
        assert all(r["config"]["entity_type"] == etype for r in comparison["per_seed"][0]["reports"])
    assert main(["eval", "--bundle", podcasts["bundle"], "--db", podcasts["db"], "--users", "6", "--type", "episode",
                 "--no-sasrec", "--steer-prompts", "0", "--cold-start", "none", "--search", "0", "--explain", "0"]) == 0
    text = capsys.readouterr().out
    assert "next episode: test split, 6 users" in text and "neo (beam search)" in text
    assert "item-knn" in text and "/ popularity" in text
    assert main(["eval", "--bundle", podcasts["bundle"], "--type", "podcast"]) == 1
    assert "not an entity type of this catalog" in capsys.readouterr().err


EVAL_QUICK = ["--users", "6", "--split", "valid", "--no-sasrec", "--steer-prompts", "0", "--cold-start", "none",
              "--bootstrap", "50"]


def _is_share(value: float | None) -> bool:
    return value is None or 0.0 <= value <= 1.0


@pytest.mark.slow
def test_neo_eval_measures_search_and_explanations(podcasts: dict[str, str], tmp_path: Path,  
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    out = tmp_path / "eval"
    assert main(["eval", "--bundle", podcasts["bundle"], *EVAL_QUICK, "--search", "5", "--explain", "3",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "search: episode (200 items), up to 5 queries per family, k = 10" in text
    assert "explanations: 3 users x 2 mixed answers, 3 profiles" in text
    assert "  neo: pers hit@10 / popularity-among-matching" in text and "  mixed:" in text

    data = json.loads((out / "report.json").read_text())
    search = data["search"]
    assert search["status"] == "measured" and search["entity_type"] == "episode" and search["n"] == 5
    assert search["queries"]["navigational"] == 5
    assert "personalised" in search["skipped"] and "no year" in search["skipped"]["personalised"]  # podcasts: no years
    assert set(search["rows"]) == {"neo", "bm25", "dense-minilm", "hybrid", "popularity-among-matching",
                                   "collaborative-among-matching"}
    neo = search["rows"]["neo"]
    for family, count in search["queries"].items():
        if family != "personalised":
            assert neo["n"][family] == count, family
    assert neo["errors"] == 0 and neo["returned"] > 0
    assert neo["invalid_rate"] == 0.0 and neo["wrong_type_rate"] == 0.0  # asked for the type measured
    assert all(_is_share(v) for row in search["rows"].values() for v in row["metrics"].values())

    explained = data["explanations"]
    assert explained["status"] == "measured" and explained["users"] == 3
    assert explained["mixed"]["answers"] == 6 and explained["profiles"]["answers"] == 3
    for part in (explained["mixed"], explained["profiles"]):
        assert all(_is_share(part[k]) for k in ("explained_by_model", "shown_claims_true", "raw_claims_true"))
    assert data["plots"]["search"] == "search.png" and (out / "explanations.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "report.md").read_text()
    assert "## Search" in md and "| neo |" in md and "![search](search.png)" in md
    assert "## Explanations" in md and "| explained_by_model |" in md

    assert main(["eval", "--bundle", podcasts["bundle"], *EVAL_QUICK, "--search", "0", "--explain", "0", "--json"]) == 0
    skipped = json.loads(capsys.readouterr().out)
    assert skipped["search"]["summary"] == "not measured (--search 0)"
    assert skipped["explanations"]["summary"] == "not measured (--explain 0)"
