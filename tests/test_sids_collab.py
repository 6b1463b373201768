"""Collaborative SIDs: co-occurrence vectors, no leakage of held-out targets, relation fallback."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from neo_sdk.catalog import Catalog, Interaction, Item, Relation
from neo_sdk.cli import main
from neo_sdk.errors import ConfigError, SIDError
from neo_sdk.sids import SIDConfig, SIDTable, assign_new, build_sids, load_quantizers
from neo_sdk.sids._collab import collaborative_vectors, ppmi_svd
from tests.test_sids import BagEmbedder


@pytest.fixture(autouse=True)
def _home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEO_HOME", str(tmp_path_factory.mktemp("neo_home")))


def _taste_catalog(path: Path, *, n_items: int = 240, n_users: int = 200) -> Catalog:
    """Two tastes: even items are consumed together, odd items together; text says nothing of it."""
    rng = random.Random(0)
    words = [f"w{k}" for k in range(60)]
    cat = Catalog(path)
    cat.declare_type("movie", text_fields=["plot"])
    cat.declare_type("person", text_fields=["plot"])
    cat.add_items([Item(f"m{i:03d}", "movie", f"movie {i}", {"plot": " ".join(rng.sample(words, 5))})
                   for i in range(n_items)])
    cat.add_items([Item(f"p{i}", "person", f"person {i}", {"plot": " ".join(rng.sample(words, 5))})
                   for i in range(4)])
    cat.add_users([(f"u{u}", {}) for u in range(n_users)])
    events = []
    for u in range(n_users):
        taste = u % 2
        chosen = rng.sample(range(taste, n_items, 2), min(30, n_items // 2))
        events += [Interaction(f"u{u}", f"m{i:03d}", float(t)) for t, i in enumerate(chosen)]
    cat.add_interactions(events)
    # p0 acts in even movies, p1 in odd ones; p2 in nothing
    cat.add_relations([Relation(f"m{i:03d}", "actor", "p0") for i in range(0, 20, 2)]
                      + [Relation(f"m{i:03d}", "actor", "p1") for i in range(1, 20, 2)])
    return cat


def _purity(codes: np.ndarray, taste: np.ndarray) -> float:
    """Share of items whose level-1 code is mostly of their own taste."""
    good = 0
    for code in np.unique(codes):
        members = taste[codes == code]
        good += max(int(members.sum()), int(len(members) - members.sum()))
    return good / len(taste)


def test_ppmi_vectors_separate_tastes() -> None:
    rng = random.Random(1)
    sequences = [[f"i{k}" for k in rng.sample(range(u % 2, 100, 2), 20)] for u in range(120)]
    ids, vectors = ppmi_svd(sequences, window=5, dim=8)
    assert vectors.shape == (100, 8)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    taste = np.array([int(i[1:]) % 2 for i in ids])
    sims = vectors @ vectors.T
    same = sims[taste[:, None] == taste[None, :]].mean()
    other = sims[taste[:, None] != taste[None, :]].mean()
    assert same > other + 0.3
    # a pair budget shrinks the window, then samples histories: still vectors, still tastes
    ids, vectors = ppmi_svd(sequences, window=5, dim=8, max_pairs=1500)
    taste = np.array([int(i[1:]) % 2 for i in ids])
    sims = vectors @ vectors.T
    assert len(ids) > 60 and sims[taste[:, None] == taste[None, :]].mean() > sims[taste[:, None] != taste[None, :]].mean()


def test_collaborative_build_groups_items_by_taste(tmp_path: Path) -> None:
    content = _taste_catalog(tmp_path / "a.db")
    mixed = _taste_catalog(tmp_path / "b.db")
    config = {"levels": 2, "codes": 8, "per_type": {"person": (2, 2)}}
    build_sids(content, SIDConfig(collaborative=0.0, **config), embedder=BagEmbedder(), progress=False)
    result = build_sids(mixed, SIDConfig(collaborative=2.0, **config), embedder=BagEmbedder(), progress=False)
    taste = np.array([int(i[1:]) % 2 for i in SIDTable.load(mixed).by_type("movie").item_ids])
    plain = _purity(SIDTable.load(content).by_type("movie").codes[:, 0], taste)
    collab = _purity(SIDTable.load(mixed).by_type("movie").codes[:, 0], taste)
    assert collab > 0.8 and plain < 0.65  # measured 0.875 vs 0.571
    assert result.stats["movie"].collaborative_items == 240
    info = load_quantizers(mixed)["movie"].info
    assert info["content_dim"] == 32 and info["collaborative"]["weight"] == 2.0
    assert load_quantizers(mixed)["movie"].quantizer.dim == 32 + info["collaborative"]["dim"]
    assert "collaborative" not in load_quantizers(content)["movie"].info


def test_held_out_targets_do_not_shape_vectors(tmp_path: Path) -> None:
    """Items seen only as users' validation or test targets get no vector (no leakage)."""
    cat = _taste_catalog(tmp_path / "c.db")
    cat.add_items([Item("late", "movie", "late", {"plot": "w1 w2"})])
    cat.add_interactions([Interaction(f"u{u}", "late", 1000.0 + k) for k, u in enumerate(range(0, 40, 2))])
    ids = ["m000", "m001", "late", "p0", "p1", "p2"]
    vectors = collaborative_vectors(cat, ids, window=5, dim=8)
    assert vectors is not None
    norms = np.linalg.norm(vectors, axis=1)
    assert norms[2] == 0.0  # "late" is every one of its users' last (test) interaction
    assert norms[5] == 0.0  # p2: no history, no relation
    # people take the mean vector of the movies they are linked to
    assert vectors[3] @ vectors[0] > vectors[3] @ vectors[1]
    assert vectors[4] @ vectors[1] > vectors[4] @ vectors[0]


def test_thin_histories_fall_back_to_content(tmp_path: Path) -> None:
    cat = _taste_catalog(tmp_path / "d.db", n_items=40, n_users=4)
    assert collaborative_vectors(cat, ["m000"], window=5, dim=48) is None
    result = build_sids(cat, SIDConfig(levels=2, codes=4, per_type={"person": (2, 2)}), embedder=BagEmbedder(),
                        progress=False)
    assert result.stats["movie"].collaborative_items == 0
    assert "collaborative" not in load_quantizers(cat)["movie"].info


def test_new_items_are_placed_by_content_after_a_collaborative_build(tmp_path: Path) -> None:
    cat = _taste_catalog(tmp_path / "e.db")
    build_sids(cat, SIDConfig(levels=2, codes=8, per_type={"person": (2, 2)}), embedder=BagEmbedder(), progress=False)
    cat.add_items([Item(f"new{i}", "movie", f"new {i}", {"plot": f"w{i} w{i + 1} w{i + 2}"}) for i in range(5)])
    added = assign_new(cat, embedder=BagEmbedder(), progress=False)["movie"]
    table = SIDTable.load(cat)
    assert len(added) == 5 and all(table.item_of("movie", sid.codes) == i for i, sid in added)
    cat.add_items([Item("newer", "movie", "newer", {"plot": "w3 w4"})])
    with pytest.raises(SIDError, match="expects 32-d"):
        assign_new(cat, embedder=BagEmbedder(dim=16), progress=False)


def test_config_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="collaborative"):
        SIDConfig(collaborative=-1)
    with pytest.raises(ConfigError, match="cf_window"):
        SIDConfig(cf_window=0)
    config = SIDConfig(collaborative=0.25, cf_window=7, cf_dim=16)
    assert SIDConfig.from_json(config.to_json()) == config
    assert main(["sids", "build", "--db", str(tmp_path / "missing.db"), "--collaborative", "0"]) == 1
    assert "does not exist" in capsys.readouterr().err
