"""What a ``neo train --max-minutes M`` budget buys, measured before training starts.

The budget bounds the whole run (model loading, example building, stage 2 and stage 3, saving);
only the quality probes run outside it, timed apart. Before stage 2 the pipeline times one frozen
forward pass on real examples and plans:

* **stage 2** (feature pass + output fit) gets at most ``align_share`` of the budget: the feature
  pass is sized to fit (fewer text -> SID queries when the budget is short), then stops at its
  deadline whatever the estimate said;
* **stage 3** gets everything left, less a reserve for saving the bundle; the plan estimates its
  steps and epochs from the measured forward time.

A budget that cannot buy one stage-3 step is refused before any training, with the minutes it
would need (:class:`~neo_sdk.errors.ConfigError`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from neo_sdk.encoding import Encoded
from neo_sdk.errors import ConfigError
from neo_sdk.training._format import collate

log = logging.getLogger(__name__)

MAX_MINUTES = 15.0
"""The default budget of ``neo train`` (``TrainSettings.max_minutes``) and of stage 3 run alone
(``InstructConfig.max_minutes``): what the bench's CPU runs were measured at (2 cores)."""
#: A stage-3 step costs about this many frozen forward passes of its batch (backward through the
#: adapted top layers plus the optimizer; a 2-core profile: 1.5 s forward, 0.7 s backward, 0.1 s
#: optimizer at batch 16). Full fine-tuning backpropagates through every layer.
STEP_COST = {"lora": 1.7, "full": 3.2}
SAVE_RESERVE_SECONDS = 10.0  # writing the bundle (safetensors, checksums, manifest)
ESTIMATE_MARGIN = 1.3  # the feature pass ran up to 1.25x its per-token estimate (length-sorted chunks)
MIN_FEATURE_EXAMPLES = 32  # fewer than one batch of text -> SID queries: the output fit is skipped


@torch.no_grad()
def seconds_per_token(model: Any, examples: Sequence[Encoded], *, pad_id: int, batch_size: int = 16,
                      seed: int = 0) -> float:
    """Wall seconds per (padded) token of a frozen forward pass over ``batch_size`` examples drawn
    at random, after a one-example warm-up (the first call on CPU needs one).

    Per token, so the estimate does not charge the padding of a random batch: the feature pass and
    stage 3 batch examples of similar length. Prompts are short (~100 tokens), where a forward
    pass costs about linearly in tokens.
    """
    if not examples:
        return 0.0
    rng = random.Random(seed)
    sample = [examples[rng.randrange(len(examples))] for _ in range(batch_size)]
    body = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    warm = collate(sample[:1], pad_id)
    body(input_ids=warm.input_ids.to(device), attention_mask=warm.attention_mask.to(device))
    batch = collate(sample, pad_id)
    started = time.perf_counter()
    body(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device))
    seconds = time.perf_counter() - started
    model.train(was_training)
    return seconds / batch.input_ids.numel()


def mean_length(examples: Sequence[Encoded]) -> float:
    return sum(len(e.input_ids) for e in examples) / max(1, len(examples))


def fit_seconds(*, steps: int, positions: int, new_tokens: int, hidden: int, batches: int = 32) -> float:
    """Estimated seconds of the stage 2 output fit (:func:`~neo_sdk.training.alignment.fit_output_rows`):
    three of its steps timed on random features of the real shapes, times ``steps``."""
    if steps <= 0 or new_tokens <= 0:
        return 0.0
    batch = max(1024, positions // batches)
    h = torch.randn(batch, hidden)
    weight = torch.nn.Parameter(torch.randn(new_tokens, hidden) * 0.02)
    started = time.perf_counter()
    for _ in range(3):
        torch.logsumexp(h @ weight.T, -1).mean().backward()
    return (time.perf_counter() - started) / 3 * steps


@dataclass(frozen=True)
class BudgetPlan:
    """The split of one training budget, stated before training (all times in seconds)."""

    total: float
    setup: float  # already spent: model load, catalog facts, examples
    align: float  # stage 2 allowance (0 when the stage does not run)
    align_fit: float  # of which the output fit (its feature pass stops this long before the end)
    align_examples: int  # feature-pass examples that fit the allowance
    align_examples_wanted: int  # feature-pass examples the settings ask for
    instruct: float  # stage 3 allowance (0 when the stage does not run)
    instruct_examples: int
    step_seconds: float  # estimated seconds per stage 3 step
    steps: int  # estimated stage 3 steps (capped by max_steps)
    batch_size: int

    @property
    def epochs(self) -> float:
        return self.steps * self.batch_size / max(1, self.instruct_examples)

    def describe(self) -> str:
        lines = [f"training budget {self.total / 60:.1f} min: {self.setup:.0f} s spent loading and building examples"]
        if self.align_examples_wanted:
            capped = (f" (of {self.align_examples_wanted:,} wanted: the budget is short)"
                      if self.align_examples < self.align_examples_wanted else "")
            lines.append(f"stage 2: up to {self.align:.0f} s, feature pass on {self.align_examples:,}"
                         f" examples{capped}, then the output fit")
        if self.instruct_examples:
            lines.append(f"stage 3: {self.instruct:.0f} s, about {self.steps:,} steps of {self.batch_size}"
                         f" at ~{self.step_seconds:.2f} s/step = {self.epochs:.2f} epochs of"
                         f" {self.instruct_examples:,} examples")
        lines.append(f"saving: {SAVE_RESERVE_SECONDS:.0f} s reserved; quality probes run after, timed apart")
        return "\n  ".join(lines)


def plan_budget(
    *, total_seconds: float, spent_seconds: float, align_share: float, stages: str,
    feature_seconds_per_example: float, feature_examples_wanted: int, output_fit_seconds: float,
    instruct_examples: int, batch_seconds: float, batch_size: int, full: bool,
    max_steps: int | None,
) -> BudgetPlan:
    """Split what is left of the budget between the stages (module docs).

    Args:
        feature_seconds_per_example: measured frozen-forward seconds per stage 2 example.
        output_fit_seconds: estimated seconds of the output fit (:func:`fit_seconds`).
        batch_seconds: measured frozen-forward seconds of one stage 3 batch.
        stages: ``align``, ``instruct`` or ``all``.

    Raises:
        ConfigError: the budget cannot buy a single stage 3 step (says how many minutes would).
    """
    left = total_seconds - spent_seconds - SAVE_RESERVE_SECONDS
    step_seconds = batch_seconds * STEP_COST["full" if full else "lora"]
    run_align, run_instruct = stages in ("align", "all"), stages in ("instruct", "all")
    align = 0.0
    if run_align:
        align = max(0.0, left * (align_share if run_instruct else 1.0))
    per_example = max(feature_seconds_per_example, 1e-6)
    fit = min(2 * output_fit_seconds, 0.2 * align)  # seconds, cheap to over-reserve; it stops at the deadline
    align_examples = min(feature_examples_wanted, int((align - fit) / (ESTIMATE_MARGIN * per_example)))
    if run_align and run_instruct:  # a ceiling: what stage 2 does not need goes to stage 3
        align = min(align, ESTIMATE_MARGIN * feature_examples_wanted * per_example + 2 * output_fit_seconds)
    instruct = max(0.0, left - align) if run_instruct else 0.0
    steps = int(instruct / step_seconds) if step_seconds > 0 else 0
    if max_steps is not None:
        steps = min(steps, max_steps)
    plan = BudgetPlan(total_seconds, spent_seconds, align, fit if run_align else 0.0, align_examples,
                      feature_examples_wanted,
                      instruct, instruct_examples, step_seconds, steps, batch_size)
    if run_instruct and steps < 1:
        need = (spent_seconds + SAVE_RESERVE_SECONDS + (align if run_align else 0.0) + 10 * step_seconds) / 60
        raise ConfigError(
            f"--max-minutes {total_seconds / 60:g} cannot buy one stage 3 step: {spent_seconds:.0f} s went to"
            f" loading and building examples and a step takes ~{step_seconds:.1f} s; give at least"
            f" {need:.1f} minutes (ten steps), or fewer users/items\n  {plan.describe()}")
    return plan
