"""Smaller defects of issue 14, each pinned by a test that failed before its fix (the catalog
check of :func:`load_bundle` held already: its test pins the docstring's promise).

* the base model of a bundle is identified by the *contents* of its weights, not their sizes
  (a same-shape fine-tune is another model), and the digests are cached so loads stay fast;
* one load checksums each bundle file once (``read_manifest(..., verify=False)`` reads the
  manifest alone, for callers that look at it before :func:`load_bundle` verifies everything);
* :func:`load_bundle` checks the catalog it is given before it loads any weights;
* ``save_usage_png`` draws without pyplot and leaves matplotlib's backend alone.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

import neo_sdk.bundle as bundle_module
from neo_sdk import Catalog
from neo_sdk._files import sha256_file
from neo_sdk.bundle import MANIFEST, base_model_hash, load_bundle, read_manifest
from neo_sdk.errors import BundleError


def fake_base(folder: Path, weights: bytes) -> Path:
    """A base-model folder as :func:`base_model_hash` reads it: config, weights, a conversion note."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"hidden_size": 8}')
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "neo_conversion.json").write_text(json.dumps({"source_file": str(folder)}))
    old = 1_600_000_000_000_000_000  # written long ago: old enough to be cached (see cached_sha256)
    os.utime(folder / "model.safetensors", ns=(old, old))
    return folder


def age(path: Path, ns: int) -> None:
    os.utime(path, ns=(ns, ns))


# ------------------------------------------------------------------------- base model hash
def test_same_shape_weights_with_other_values_are_another_base_model(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NEO_HOME", str(tmp_path / "home"))
    base = fake_base(tmp_path / "base", b"\x00" * 4096)
    tuned = fake_base(tmp_path / "tuned", b"\x00" * 4095 + b"\x01")  # same size, one byte differs
    assert (base / "model.safetensors").stat().st_size == (tuned / "model.safetensors").stat().st_size
    assert base_model_hash(base) != base_model_hash(tuned)
    # the conversion note (machine paths) is not part of the model; the config is
    (base / "neo_conversion.json").write_text("{}")
    same = base_model_hash(base)
    assert base_model_hash(fake_base(tmp_path / "copy", b"\x00" * 4096)) == same
    (tmp_path / "copy" / "config.json").write_text('{"hidden_size": 9}')
    assert base_model_hash(tmp_path / "copy") != same


def test_base_model_digests_are_cached_until_the_file_changes(tmp_path: Path, monkeypatch) -> None:
    import neo_sdk._files as files

    monkeypatch.setenv("NEO_HOME", str(tmp_path / "home"))
    size = 1 << 20
    base = fake_base(tmp_path / "base", b"a" * size)
    calls: Counter[str] = Counter()
    real = files.sha256_file

    def counting(path: Path) -> str:
        calls[Path(path).name] += 1
        return real(path)

    monkeypatch.setattr(files, "sha256_file", counting)
    first = base_model_hash(base)
    files._DIGESTS.clear()  # a new process: the sidecar index answers
    assert base_model_hash(base) == first and calls["model.safetensors"] == 1
    index = json.loads((tmp_path / "home" / "models" / "sha256-index.json").read_text())
    assert str((base / "model.safetensors").resolve()) in index

    weights = base / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    weights.write_bytes(b"b" * size)  # same size, new contents
    age(weights, stamp + 1_000_000_000)
    changed = base_model_hash(base)
    assert changed != first and calls["model.safetensors"] == 2
    # a file rewritten just now is hashed again on every call: its time stamp may not move on the
    # next same-size write (coarse clocks), so it is not remembered until it is a few seconds old
    weights.write_bytes(b"c" * size)
    fresh = base_model_hash(base)
    weights.write_bytes(b"d" * size)
    assert base_model_hash(base) != fresh


def test_cached_sha256_equals_sha256_file_and_survives_a_broken_index(tmp_path: Path) -> None:
    from neo_sdk._files import cached_sha256

    data = tmp_path / "w.bin"
    data.write_bytes(os.urandom(3000))
    age(data, 1_600_000_000_000_000_000)
    index = tmp_path / "index.json"
    index.write_text("not json")
    assert cached_sha256(data, index) == sha256_file(data)
    assert json.loads(index.read_text())[str(data.resolve())]["sha256"] == sha256_file(data)


def test_a_bundle_records_the_content_hash_and_refuses_another_base(tmp_path: Path, monkeypatch) -> None:
    """The check ``load_bundle`` runs: the recorded hash against the folder ``resolve_base`` gives."""
    import neo_sdk.model as model_module

    monkeypatch.setenv("NEO_HOME", str(tmp_path / "home"))
    base = fake_base(tmp_path / "base", b"\x00" * 4096)
    tuned = fake_base(tmp_path / "tuned", b"\x00" * 4095 + b"\x01")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    manifest = {"base_model": {"ref": str(base), "hash": base_model_hash(base), "hash_of": "contents"}}
    monkeypatch.setattr(model_module, "resolve_base", lambda ref: Path(ref))
    bundle_module.check_base_model(bundle, manifest)  # the same folder passes
    with pytest.raises(BundleError, match="is not the one this bundle was trained on"):
        bundle_module.check_base_model(bundle, manifest, base=str(tuned))
    # bundles written before contents were hashed recorded names and sizes: still served, with a warning
    legacy = {"base_model": {"ref": str(base), "hash": bundle_module._size_hash(base)}}
    bundle_module.check_base_model(bundle, legacy)
    with pytest.raises(BundleError, match="is not the one"):
        bundle_module.check_base_model(bundle, legacy, base=str(fake_base(tmp_path / "big", b"\x00" * 5000)))


# -------------------------------------------------------------------- bundle checksums
@pytest.fixture
def count_checksums(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every file :mod:`neo_sdk.bundle` checksums, counted by path."""
    calls: Counter[str] = Counter()

    def counting(path: Path) -> str:
        calls[str(path)] += 1
        return sha256_file(path)

    monkeypatch.setattr(bundle_module, "sha256_file", counting)
    return calls


@pytest.mark.slow
def test_load_bundle_checksums_each_file_once(trained_bundle: Path, count_checksums: Counter[str]) -> None:
    files = read_manifest(trained_bundle)["files"]
    assert sorted(count_checksums.values()) == [1] * len(files)
    count_checksums.clear()
    assert read_manifest(trained_bundle, verify=False)["files"] == files and not count_checksums
    with Catalog(read_manifest(trained_bundle, verify=False)["catalog"]) as catalog:
        load_bundle(trained_bundle, catalog=catalog)
    assert {Path(p).relative_to(trained_bundle).as_posix() for p in count_checksums} == set(files)
    assert set(count_checksums.values()) == {1}


@pytest.mark.slow
def test_neo_load_checksums_each_file_once(trained_bundle: Path, count_checksums: Counter[str]) -> None:
    from neo_sdk.session import Neo

    with Neo.load(trained_bundle, sessions=":memory:"):
        pass
    assert len(count_checksums) == len(read_manifest(trained_bundle, verify=False)["files"])
    assert set(count_checksums.values()) == {1}


def test_read_manifest_without_verify_still_checks_the_format(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not a neo-sdk bundle"):
        read_manifest(tmp_path, verify=False)
    (tmp_path / MANIFEST).write_text(json.dumps({"format": 99, "files": {}}))
    with pytest.raises(BundleError, match="bundle format 99"):
        read_manifest(tmp_path, verify=False)
    (tmp_path / MANIFEST).write_text(json.dumps({"format": bundle_module.BUNDLE_FORMAT,
                                                 "files": {"gone.bin": "0" * 64}}))
    assert read_manifest(tmp_path, verify=False)["files"] == {"gone.bin": "0" * 64}
    with pytest.raises(BundleError, match="gone.bin is missing"):
        read_manifest(tmp_path)


# ------------------------------------------------------------ load_bundle's catalog check
@pytest.mark.slow
def test_load_bundle_refuses_a_catalog_that_lost_a_trained_sid_before_loading_weights(
    trained_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The docstring's promise: ``catalog``'s SID table must be the trained one or extend it."""
    import neo_sdk.model as model_module
    from tests.test_living_catalog import copy_catalog, edit_sids

    def no_weights(*args: object, **kwargs: object) -> None:
        raise AssertionError("the base model was loaded before the catalog was checked")

    monkeypatch.setattr(model_module, "load_base_model", no_weights)
    removed = copy_catalog(trained_bundle.parent / "sample.db", tmp_path / "removed.db")
    edit_sids(removed, lambda conn: conn.execute("DELETE FROM sids WHERE item_id='book:dune'"))
    with Catalog(removed) as catalog, pytest.raises(BundleError, match=r"book:dune: book:.* -> now none"):
        load_bundle(trained_bundle, catalog=catalog)
    unbuilt = shutil.copy(trained_bundle.parent / "sample.db", tmp_path / "nosids.db")
    with Catalog(unbuilt) as catalog:
        catalog.db.execute("DELETE FROM sids")
        catalog.db.execute("DELETE FROM sid_quantizers")
        catalog.db.execute("DELETE FROM sid_builds")
        with pytest.raises(BundleError, match=r"the author, book SIDs of .* were rebuilt \(or removed\)"):
            load_bundle(trained_bundle, catalog=catalog)


# ------------------------------------------------------------------ matplotlib backend
def test_save_usage_png_leaves_the_backend_alone(tmp_path: Path) -> None:
    import matplotlib

    from neo_sdk.sids._report import save_usage_png

    report = {"types": {"book": {"items": 6, "codes": 2, "unique_tuples": 4, "largest_bucket": 2,
                                 "per_level": [{"level": 1, "code_counts": [4, 2], "perplexity": 1.9},
                                               {"level": 2, "code_counts": [3, 3], "perplexity": 2.0}]}}}
    backend = matplotlib.get_backend()
    try:
        matplotlib.use("svg")  # a notebook's (or a user's) choice
        out = save_usage_png(report, tmp_path / "usage" / "u.png")
        assert matplotlib.get_backend() == "svg"
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "matplotlib.pyplot" not in sys.modules or not sys.modules["matplotlib.pyplot"].get_fignums()
    finally:
        matplotlib.use(backend)

