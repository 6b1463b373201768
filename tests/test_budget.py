"""The training budget bounds the whole run; a budget that buys nothing is refused before training."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from neo_sdk import Catalog
from neo_sdk.cli import main
from neo_sdk.errors import ConfigError
from neo_sdk.training._budget import ESTIMATE_MARGIN, SAVE_RESERVE_SECONDS, plan_budget
from tests.conftest import build_sample_catalog

PLAN = {"align_share": 0.25, "stages": "all", "feature_seconds_per_example": 0.1, "output_fit_seconds": 5.0,
        "instruct_examples": 1000, "batch_seconds": 1.0, "batch_size": 8, "full": False, "max_steps": None}


def test_stage_2_shrinks_to_its_share_and_stage_3_gets_the_rest() -> None:
    plan = plan_budget(total_seconds=600, spent_seconds=40, feature_examples_wanted=3000, **PLAN)
    left = 600 - 40 - SAVE_RESERVE_SECONDS
    assert plan.align == pytest.approx(0.25 * left)
    # 3,000 examples at 0.1 s (1.3 x the estimate, its margin) would take 390 s; 137.5 s of stage 2
    # less the fit (twice its 5 s estimate) buys 980
    assert plan.align_examples == int((0.25 * left - 10.0) / (ESTIMATE_MARGIN * 0.1)) < 3000
    assert plan.align_fit == 10.0
    assert plan.instruct == pytest.approx(left - plan.align)
    assert plan.steps == int(plan.instruct / 1.7)
    assert plan.align + plan.instruct + plan.setup + SAVE_RESERVE_SECONDS == pytest.approx(600)
    assert "the budget is short" in plan.describe() and "epochs" in plan.describe()


def test_what_stage_2_does_not_need_goes_to_stage_3() -> None:
    plan = plan_budget(total_seconds=600, spent_seconds=40, feature_examples_wanted=100, **PLAN)
    assert plan.align_examples == 100
    assert plan.align == pytest.approx(ESTIMATE_MARGIN * 100 * 0.1 + 2 * 5.0)
    assert plan.instruct == pytest.approx(600 - 40 - SAVE_RESERVE_SECONDS - plan.align)


def test_max_steps_caps_the_estimate_and_stage_2_alone_gets_everything() -> None:
    assert plan_budget(total_seconds=600, spent_seconds=0, feature_examples_wanted=10,
                       **PLAN | {"max_steps": 7}).steps == 7
    alone = plan_budget(total_seconds=600, spent_seconds=0, feature_examples_wanted=10**6, **PLAN | {"stages": "align"})
    assert alone.instruct == 0 and alone.align == pytest.approx(600 - SAVE_RESERVE_SECONDS)


def test_a_budget_that_buys_no_step_is_refused_with_the_minutes_it_needs() -> None:
    with pytest.raises(ConfigError, match=r"cannot buy one stage 3 step.*give at least [0-9.]+ minutes"):
        plan_budget(total_seconds=60, spent_seconds=55, feature_examples_wanted=100, **PLAN)


def _train(db: str, out: Path, *extra: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["train", "--db", db, "--out", str(out), "--layers", "2", "--batch-size", "4",
                     "--no-probes", *extra])
    return code, err.getvalue()


def test_cli_refuses_before_training_a_budget_or_type_that_cannot_work(tmp_path: Path) -> None:
    db = str(tmp_path / "sample.db")
    build_sample_catalog(db).close()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["sids", "build", "--db", db, "--levels", "2", "--codes", "2", "--no-progress"]) == 0
    code, err = _train(db, tmp_path / "b1", "--max-minutes", "0.01")
    assert code == 1 and "cannot buy one stage 3 step" in err and "stage 3:" in err
    assert not (tmp_path / "b1").exists()
    code, err = _train(db, tmp_path / "b2", "--type", "movie")
    assert code == 1 and "not an entity type of this catalog" in err and "book" in err
    with Catalog(db) as catalog:
        catalog.declare_type("series")  # declared, but no user interacts with a series
    code, err = _train(db, tmp_path / "b3", "--type", "series")
    assert code == 1 and "no user interacts" in err
    assert not (tmp_path / "b2").exists() and not (tmp_path / "b3").exists()
