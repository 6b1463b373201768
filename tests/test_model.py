"""Base-model loading: GGUF conversion cached once, offline behaviour, truncated loads, chat, CLI.

The full SmolLM2-135M-Instruct is converted once per test run into a session temp ``NEO_HOME``
(about 20 s on 2 cores); every other test reuses that folder.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from neo_sdk.cli import main
from neo_sdk.errors import ConfigError, ModelLoadError
from neo_sdk.model import DEFAULT_BASE, chat, load_base_model, load_tokenizer, resolve_base

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # On the shared 2-core test machine, other processes keep the cores busy and torch's two
    # OpenMP threads then spin-wait on each other: greedy chat measured 7-9 s with 2 threads versus
    # 0.85 s with 1. Restored afterwards, since the setting is process-wide.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def neo_home_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("neo_home")
    yield home
    # pytest keeps the temp dirs of the last 3 runs; don't keep 540 MB of weights in each.
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(autouse=True)
def _isolated_home(neo_home_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEO_HOME", str(neo_home_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def converted(neo_home_dir: Path) -> Path:
    """The default base converted once for the whole run."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEO_HOME", str(neo_home_dir))
        mp.setenv("HF_HUB_OFFLINE", "1")
        return resolve_base()


@pytest.fixture(scope="session")
def base(converted: Path):
    """The full default base model and tokenizer, loaded from the converted folder."""
    return load_base_model(str(converted))


@pytest.mark.slow
def test_full_model_answers_offline(base) -> None:
    model, tokenizer = base
    assert model.config.num_hidden_layers == 30
    assert model.dtype == torch.float32
    assert not model.training
    answer = chat(model, tokenizer, QUESTION)
    assert "Paris" in answer


@pytest.mark.slow
def test_chat_stays_greedy_when_the_checkpoint_asks_for_sampling(base) -> None:
    model, tokenizer = base
    greedy = chat(model, tokenizer, QUESTION, max_new_tokens=8)
    saved = copy.deepcopy(model.generation_config)
    # At temperature 5 a sampled continuation of 8 tokens practically never equals the greedy one.
    model.generation_config.do_sample = True
    model.generation_config.temperature = 5.0
    try:
        assert chat(model, tokenizer, QUESTION, max_new_tokens=8) == greedy
    finally:
        model.generation_config = saved


def test_converted_folder_is_cached_and_complete(converted: Path, neo_home_dir: Path) -> None:
    start = time.perf_counter()
    again = resolve_base()
    assert time.perf_counter() - start < 1.0
    assert again == converted == neo_home_dir / "models" / DEFAULT_BASE
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in converted.iterdir()
    }
    # No temporary sibling survives a finished conversion; only the folder and its lock file remain.
    assert sorted(p.name for p in converted.parent.iterdir()) == [f".{DEFAULT_BASE}.lock", DEFAULT_BASE]
    record = json.loads((converted / "neo_conversion.json").read_text())
    source = Path(record["source_file"])
    assert source.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert record["source_size_bytes"] == source.stat().st_size
    assert len(record["source_sha256"]) == 64
    assert record["output_size_bytes"] > 500_000_000  # float32: 134.5M parameters x 4 bytes
    assert {"transformers_version", "torch_version", "num_parameters", "dtype"} <= record.keys()
    config = json.loads((converted / "config.json").read_text())
    assert "quantization_config" not in config


def test_hub_id_offline_is_refused_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("snapshot_download must not be called offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    with pytest.raises(ModelLoadError, match=r"hub is offline \(HF_HUB_OFFLINE=1\)"):
        resolve_base("HuggingFaceTB/SmolLM2-135M-Instruct")
    with pytest.raises(ModelLoadError, match="offline"):
        load_base_model("HuggingFaceTB/SmolLM2-135M-Instruct")


def test_local_folder_without_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="config.json is missing"):
        resolve_base(str(tmp_path))
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_base(str(tmp_path / "nowhere"))


def test_broken_local_folder_is_translated(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="cannot load") as info:
        load_base_model(str(tmp_path))
    assert info.value.__cause__ is not None


def test_first_layers_only_share_the_full_weights(converted: Path, base) -> None:
    full, _ = base
    small, tokenizer = load_base_model(str(converted), num_hidden_layers=4)
    assert len(small.model.layers) == small.config.num_hidden_layers == 4
    assert not small.training
    torch.testing.assert_close(
        small.model.layers[3].mlp.down_proj.weight, full.model.layers[3].mlp.down_proj.weight, rtol=0, atol=0
    )
    assert tokenizer.get_vocab() == load_tokenizer(str(converted)).get_vocab()
    with pytest.raises(ConfigError, match="between 1 and 30"):
        load_base_model(str(converted), num_hidden_layers=31)


@pytest.mark.slow
def test_cli_prepare_and_chat(converted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "prepare"]) == 0
    assert capsys.readouterr().out.strip() == str(converted)
    assert main(["model", "chat", QUESTION]) == 0
    assert "Paris" in capsys.readouterr().out


def test_cli_reports_offline_hub_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "prepare", "--base", "org/name"]) == 1
    assert "hub is offline" in capsys.readouterr().err
