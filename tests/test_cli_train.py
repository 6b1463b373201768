"""`neo train`, `neo bundle verify` and `neo bundle export --merged` end to end (2-layer slice)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neo_sdk.cli import main
from tests.conftest import build_sample_catalog


@pytest.mark.slow
def test_train_verify_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "sample.db")
    build_sample_catalog(db).close()
    assert main(["sids", "build", "--db", db, "--levels", "2", "--codes", "2", "--no-progress"]) == 0
    capsys.readouterr()
    bundle = str(tmp_path / "bundle")
    assert main(["train", "--db", db, "--out", bundle, "--layers", "2", "--max-steps", "2",
                 "--max-minutes", "1", "--batch-size", "4", "--no-probes", "--tasks", "next_item,search",
                 "--replay-weights", "text_to_sid=3,sid_to_type=1,sid_to_text=0"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["instruct"]["loop"]["steps"] == 2
    assert main(["bundle", "verify", bundle]) == 0
    summary = json.loads(capsys.readouterr().out)
    training = json.loads((Path(bundle) / "manifest.json").read_text())["training"]
    assert training["replay_weights"] == [["text_to_sid", 3.0], ["sid_to_type", 1.0], ["sid_to_text", 0.0]]
    assert summary["kind"] == "lora" and summary["base_model"]["num_hidden_layers"] == 2
    out = tmp_path / "hf"
    assert main(["bundle", "export", bundle, "--merged", "--out", str(out)]) == 0
    assert (out / "config.json").exists() and (out / "model.safetensors").exists()
    assert json.loads((out / "neo_bundle.json").read_text())["sid_table_hash"] == summary["sid_table_hash"]
    capsys.readouterr()
    (Path(bundle) / "vocab.json").write_text("{}")
    assert main(["bundle", "verify", bundle]) == 1
    assert "vocab.json does not match its checksum" in capsys.readouterr().err


@pytest.mark.slow
def test_train_with_a_langchain_teacher_keeps_checked_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--teacher module:factory``: the model writes stage 3's labels, the checker filters them."""
    (tmp_path / "fake_teacher.py").write_text(
        "from langchain_core.language_models.fake_chat_models import FakeListChatModel\n\n"
        "def make():\n"
        "    return FakeListChatModel(responses=['A lovely pick.', 'Cyberpunk and romance from the 1990s.'])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    db = str(tmp_path / "sample.db")
    build_sample_catalog(db).close()
    assert main(["sids", "build", "--db", db, "--levels", "2", "--codes", "2", "--no-progress"]) == 0
    capsys.readouterr()
    bundle = tmp_path / "bundle"
    assert main(["train", "--db", db, "--out", str(bundle), "--layers", "1", "--max-steps", "1",
                 "--max-minutes", "1", "--batch-size", "4", "--no-probes", "--tasks", "explain,profile",
                 "--teacher", "fake_teacher:make"]) == 0
    teacher = json.loads(capsys.readouterr().out)["teacher"]
    # neither answer is a true label with a claim: every one is replaced by the template's
    assert teacher["name"] == "fake_teacher:make" and teacher["model_calls"] >= 2
    assert teacher["labels_kept"] == 0 and teacher["labels_replaced"] > 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["training"]["teacher"] == "fake_teacher:make"
    assert (tmp_path / "bundle.work" / "teacher.db").exists()


def test_train_rejects_bad_replay_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--db", "x.db", "--out", str(tmp_path / "b"), "--replay-weights", "text_to_sid=lots"])
    assert "expected TASK=WEIGHT" in capsys.readouterr().err
    assert main(["train", "--db", "x.db", "--out", str(tmp_path / "b"), "--replay-weights", "next_item=2"]) == 2
    assert "unknown task(s) ['next_item']" in capsys.readouterr().err


@pytest.mark.slow
def test_probes_run_outside_the_training_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from neo_sdk.training import TrainSettings, _pipeline
    from neo_sdk.training._budget import SAVE_RESERVE_SECONDS

    def slow_probe(*args, **kwargs):
        time.sleep(10)
        return {"hit@1": 0.0, "hit@10": 0.0}

    monkeypatch.setattr(_pipeline, "probe_text_to_sid", slow_probe)  # the stage-2 probe, before stage 3
    monkeypatch.setattr(_pipeline, "probe_next_item", lambda *a, **k: {"hr@10": 0.0})
    monkeypatch.setattr(_pipeline, "probe_sid_to_type", lambda *a, **k: 0.0)
    db = str(tmp_path / "sample.db")
    build_sample_catalog(db).close()
    assert main(["sids", "build", "--db", db, "--levels", "2", "--codes", "2", "--no-progress"]) == 0
    settings = TrainSettings(num_hidden_layers=2, max_minutes=1.0, max_steps=2, batch_size=4,
                             instruction_tasks=("next_item",))
    metrics = _pipeline.train(db, tmp_path / "bundle", settings)
    stage3_minutes = metrics["instruct"]["config"]["max_minutes"]
    charged_before_stage3 = (settings.max_minutes - stage3_minutes) * 60
    assert metrics["probe_seconds"] >= 20  # two text -> SID probes of 10 s each
    # the 10 s stage-2 probe is not charged; stage 3 leaves the save reserve for writing the bundle
    assert charged_before_stage3 - SAVE_RESERVE_SECONDS < metrics["train_seconds"]
    assert abs(metrics["train_seconds"] + metrics["probe_seconds"] - metrics["seconds"]) < 0.2
